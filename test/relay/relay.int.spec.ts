/**
 * Relay mode through the real webhook on each real event store, against a real local HTTP server as
 * the customer's handler: the answers Flireo gets for a fast, slow, failing, garbage, huge, hanging,
 * closing, redirecting and absent handler; what was forwarded (the exact bytes, Flireo's headers,
 * the event id); the request and its `relay-exchange` archived in that order in the request's
 * stream; the fallbacks; and the metrics.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/database/database.ts';
import type { RelayExchange } from '../../src/relay/exchange.ts';
import { signatureHeaders, type TestApp } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { readStream, storeSubjects, type StoreUnderTest } from '../webhook/stores.ts';
import { startCustomerHandler, type CustomerHandler } from './customer-handler.ts';
import {
  assistantFor,
  assistantRequest,
  closedPort,
  deadlineMs,
  deliver,
  exchangeOf,
  metricValue,
  relayTestConfig,
  startRelayApp,
  streamWith,
  toolCalls,
  waitFor,
} from './harness.ts';

describe.each(storeSubjects)('relay mode on $name', (subject) => {
  let store: StoreUnderTest;
  let testDatabase: TestDatabase;
  let database: Database;
  let handler: CustomerHandler;
  let test: TestApp;
  let downPort: number;
  let root: string;
  let running: Awaited<ReturnType<typeof startRelayApp>>;

  beforeAll(async () => {
    store = await subject.open({ timeoutMs: 3_000 });
    testDatabase = await createTestDatabase('relay');
    database = openDatabase(testDatabase.url, { max: 2 });
    handler = await startCustomerHandler({ slowMs: deadlineMs + 1_000 });
    downPort = await closedPort();
    root = await mkdtemp(path.join(os.tmpdir(), 'calltrail-relay-'));
    running = await startRelayApp(store, database, relayTestConfig(handler, downPort, undefined, root));
    test = running.test;
  });

  afterAll(async () => {
    await running?.close();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
    await handler?.close();
    await store?.close();
    await database?.close();
    await testDatabase?.drop();
  });

  it('forwards a tool-calls request verbatim and answers with the handler’s answer, archived after the request', async () => {
    const callId = randomUUID();
    const body = toolCalls(callId, 'fast', ['task-1', 'task-2']);
    const response = await deliver(test, body);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/json');
    expect(response.json()).toEqual({
      results: [
        { toolCallId: 'task-1', result: 'done task-1' },
        { toolCallId: 'task-2', result: 'done task-2' },
      ],
    });
    const eventId = response.headers['x-calltrail-event-id'] as string;

    const forwarded = handler.received.find((r) => r.headers['x-calltrail-event-id'] === eventId)!;
    expect(forwarded.body.toString('utf8')).toBe(body);
    expect(forwarded.headers['content-type']).toBe('application/json');
    expect(forwarded.headers['x-webhook-event']).toBe('relayed');
    const signed = signatureHeaders(body, { at: test.clock.now() });
    expect(forwarded.headers['x-webhook-signature']).toBe(signed['x-webhook-signature']);
    expect(forwarded.headers['x-webhook-timestamp']).toBe(signed['x-webhook-timestamp']);

    const events = await streamWith(store, `call-${callId}`, 2);
    expect(events.map((event) => event.type)).toEqual(['tool-calls', 'relay-exchange']);
    expect(events[0]!.id).toBe(eventId);
    const exchange = exchangeOf(events, eventId);
    expect(exchange).toMatchObject({
      requestType: 'tool-calls',
      callId,
      destination: handler.url('/fast'),
      outcome: 'answered',
      failure: null,
      answeredWith: 'destination',
      answerStatus: 200,
      response: { status: 200, contentType: 'application/json', bodyOmitted: false },
    });
    expect(exchange.response!.body!.rawBody).toBe(response.body);
    expect(exchange.latencyMs).toBeGreaterThan(0);
  });

  it('relays an assistant-request and archives the exchange in the per-day stream beside it', async () => {
    const response = await deliver(test, assistantRequest('fast'));
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ assistant: { name: 'Front desk', firstMessage: 'Hello' } });
    const eventId = response.headers['x-calltrail-event-id'] as string;
    const stream = `assistant-requests-${test.clock.now().toISOString().slice(0, 10)}`;
    const events = await waitFor('the exchange', async () => {
      const all = await readStream(store.eventStore, stream);
      return all.some(
        (e) => e.type === 'relay-exchange' && (e.data as RelayExchange).requestEventId === eventId,
      )
        ? all
        : undefined;
    });
    expect(exchangeOf(events, eventId)).toMatchObject({
      requestType: 'assistant-request',
      outcome: 'answered',
    });
  });

  it.each([
    ['slow', 504, 'timeout'],
    ['hang', 504, 'timeout'],
    ['fail', 502, 'non-2xx'],
    ['garbage', 502, 'invalid-body'],
    ['wrong-ids', 502, 'invalid-body'],
    ['huge', 502, 'too-large'],
    ['close', 502, 'connection-closed'],
    ['redirect', 502, 'non-2xx'],
    ['down', 502, 'refused'],
  ] as const)(
    'answers %s with a problem %i and archives the failure %s',
    async (scenario, status, failure) => {
      const callId = randomUUID();
      const host = scenario === 'down' ? `127.0.0.1:${downPort}` : new URL(handler.url('/')).host;
      const labels = `destination="${host}",event_type="tool-calls",outcome="${failure}"`;
      const before = await metricValue(test, labels);
      const response = await deliver(test, toolCalls(callId, scenario, ['task-1']));
      expect(response.statusCode).toBe(status);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      const problem = response.json<{ status: number; detail: string }>();
      expect(problem.status).toBe(status);
      expect(problem.detail).toContain(failure);

      const events = await streamWith(store, `call-${callId}`, 2);
      expect(events.map((event) => event.type)).toEqual(['tool-calls', 'relay-exchange']);
      const exchange = exchangeOf(events, events[0]!.id);
      expect(exchange).toMatchObject({
        outcome: 'failed',
        failure,
        answeredWith: 'problem',
        answerStatus: status,
      });
      expect(exchange.failureDetail).toEqual(expect.any(String));
      expect(await metricValue(test, labels)).toBe(before + 1);
      if (scenario === 'fail') {
        expect(exchange.response).toMatchObject({ status: 500, bodyOmitted: false });
      }
      if (scenario === 'redirect') {
        // Not followed: the handler saw the redirecting request and nothing at its target for this call.
        expect(handler.received.filter((r) => r.body.toString().includes(callId)).map((r) => r.path)).toEqual(
          ['/redirect'],
        );
        expect(exchange.response).toMatchObject({ status: 302 });
      }
      if (scenario === 'huge') {
        // Read up to the bound only, archived as its hash and length.
        expect(exchange.response).toMatchObject({ status: 200, bytes: 1_048_576, bodyOmitted: true });
        expect(exchange.response!.body).toBeUndefined();
        expect(exchange.response!.sha256).toMatch(/^[0-9a-f]{64}$/);
      }
    },
  );

  it('answers with the configured fallbacks when the handler fails, recorded as such', async () => {
    const fallbackRoot = await mkdtemp(path.join(os.tmpdir(), 'calltrail-relay-'));
    const fallbackApp = await startRelayApp(
      store,
      database,
      relayTestConfig(
        handler,
        downPort,
        {
          assistantRequest: { assistant: { name: 'Fallback desk' } },
          toolCalls: { check_availability: 'try again later' },
        },
        fallbackRoot,
      ),
    );
    const withFallbacks = fallbackApp.test;
    try {
      const callId = randomUUID();
      const tools = await deliver(withFallbacks, toolCalls(callId, 'fail', ['task-9']));
      expect(tools.statusCode).toBe(200);
      expect(tools.json()).toEqual({ results: [{ toolCallId: 'task-9', result: 'try again later' }] });
      const events = await streamWith(store, `call-${callId}`, 2);
      expect(exchangeOf(events, events[0]!.id)).toMatchObject({
        failure: 'non-2xx',
        answeredWith: 'fallback',
        answerStatus: 200,
      });

      const assistant = await deliver(withFallbacks, assistantRequest('down'));
      expect(assistant.statusCode).toBe(200);
      expect(assistant.json()).toEqual({ assistant: { name: 'Fallback desk' } });
    } finally {
      await fallbackApp.close();
      await rm(fallbackRoot, { recursive: true, force: true });
    }
  });

  it('keeps every request before its exchange when one call’s requests arrive together', async () => {
    const callId = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 6 }, (_, index) => deliver(test, toolCalls(callId, 'fast', [`task-${index}`]))),
    );
    for (const response of responses) expect(response.statusCode).toBe(200);
    const events = await streamWith(store, `call-${callId}`, 12);
    expect(events).toHaveLength(12);
    for (const response of responses) exchangeOf(events, response.headers['x-calltrail-event-id'] as string);
  });

  it('acknowledges status updates as before, without relaying them', async () => {
    const callId = randomUUID();
    const body = JSON.stringify({
      eventTimestamp: 1756368117035,
      eventType: 'status-update',
      callSession: callId,
      fromCaller: '+31612345678',
      toAssistant: assistantFor('fast'),
      status: 'in-progress',
    });
    const seen = handler.received.length;
    const response = await deliver(test, body);
    expect(response.statusCode).toBe(202);
    expect(handler.received.length).toBe(seen);
  });
});
