/**
 * The Flireo webhook through the real HTTP stack (`app.inject`, and a real socket where the transport
 * matters) on each real event store: authentication, exactly-once storage across redeliveries,
 * restarts and racing processes, quarantine of refused requests, and behaviour while the store is down.
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import {
  decodeRawBody,
  type ArchivedCallEvent,
  type QuarantinedRequest,
  type ReceptionMetadata,
} from '../../src/archive/archived-event.ts';
import { verifyProvenance } from '../../src/webhook/provenance.ts';
import type { Config } from '../../src/config.ts';
import { openDatabase, type Database } from '../../src/database/database.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import type { Metrics } from '../../src/metrics.ts';
import {
  buildTestApp,
  createTestClock,
  signatureHeaders,
  testConfig,
  testWebhookSecret,
  testWebhookToken,
  type TestApp,
  type TestClock,
} from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { allExamples, gen1AssistantRequest } from '../flireo/examples.ts';
import { readStream, storeSubjects, type StoreUnderTest } from './stores.ts';

const appendTimeoutMs = 1_500;
const storeTimeoutMs = 1_000;

const statusUpdate = (callId: string, changes: Record<string, unknown> = {}): string =>
  JSON.stringify({
    eventTimestamp: 1756368117035,
    eventType: 'status-update',
    callSession: callId,
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
    status: 'in-progress',
    ...changes,
  });

interface Delivery {
  readonly url?: string;
  readonly headers?: Record<string, string>;
  /** Undefined sends no Content-Type at all. */
  readonly contentType?: string | undefined;
}

const deliver = (app: App, payload: string | Buffer, delivery: Delivery = {}) =>
  app.inject({
    method: 'POST',
    url: delivery.url ?? '/webhooks/flireo',
    payload,
    headers: {
      ...('contentType' in delivery
        ? delivery.contentType === undefined
          ? {}
          : { 'content-type': delivery.contentType }
        : { 'content-type': 'application/json' }),
      ...delivery.headers,
    },
  });

const signatureHeadersAsKept = (body: string, at: Date) => {
  const headers = signatureHeaders(body, { at });
  return { signature: headers['x-webhook-signature'], timestamp: headers['x-webhook-timestamp'] };
};

const signed = (test: TestApp, payload: string | Buffer, delivery: Delivery = {}) =>
  deliver(test.app, payload, {
    ...delivery,
    headers: { ...signatureHeaders(payload, { at: test.clock.now() }), ...delivery.headers },
  });

const withToken = (test: TestApp, payload: string | Buffer, delivery: Delivery = {}) =>
  deliver(test.app, payload, {
    ...delivery,
    headers: { 'x-webhook-token': testWebhookToken, ...delivery.headers },
  });

const outcomes = async (metrics: Metrics): Promise<Record<string, number>> =>
  Object.fromEntries((await metrics.webhooks.get()).values.map((v) => [String(v.labels.outcome), v.value]));

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

const eventually = async <T>(attempt: () => Promise<T>, done: (value: T) => boolean): Promise<T> => {
  let last = await attempt();
  for (let tries = 0; tries < 40 && !done(last); tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    last = await attempt();
  }
  return last;
};

describe.each(storeSubjects)('POST /webhooks/flireo on $name', (subject) => {
  let store: StoreUnderTest;
  let testDatabase: TestDatabase;
  let database: Database;
  const apps: App[] = [];
  let days = 0;

  beforeAll(async () => {
    store = await subject.open({ timeoutMs: storeTimeoutMs });
    testDatabase = await createTestDatabase('webhook');
    database = openDatabase(testDatabase.url, { max: 2 });
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await store?.close();
    await database?.close();
    await testDatabase?.drop();
  });

  /** Each app starts on a day of its own, so the per-day streams it writes are its own too. */
  const start = async (
    options: { config?: Config; eventStore?: EventStore; clock?: TestClock; logger?: Logger } = {},
  ): Promise<TestApp> => {
    days += 1;
    const built = await buildTestApp({
      eventStore: options.eventStore ?? store.eventStore,
      database,
      config: options.config ?? testConfig({ appendTimeoutMs }),
      clock: options.clock ?? createTestClock(new Date(Date.UTC(2025, 0, days, 8, 2, 0))),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
    });
    apps.push(built.app);
    return built;
  };

  const quarantined = async (test: TestApp) => {
    const day = test.clock.now().toISOString().slice(0, 10);
    return readStream(store.eventStore, `quarantine-${day}`);
  };

  describe('authentication', () => {
    let test: TestApp;
    beforeAll(async () => {
      test = await start();
    });

    const expectRefused = async (
      response: Awaited<ReturnType<typeof deliver>>,
      callId: string,
      reason: RegExp,
    ) => {
      expect(response.statusCode).toBe(401);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.headers['www-authenticate']).toBe('Bearer');
      const problem = response.json<{ status: number; detail: string }>();
      expect(problem.status).toBe(401);
      expect(problem.detail).toMatch(reason);
      expect(problem.detail).not.toContain(testWebhookSecret);
      expect(problem.detail).not.toContain(testWebhookToken);
      expect(await readStream(store.eventStore, `call-${callId}`)).toEqual([]);
    };

    it('accepts a valid HMAC signature and records how the request was authenticated', async () => {
      const callId = randomUUID();
      const body = statusUpdate(callId);
      const response = await signed(test, body);
      expect(response.statusCode).toBe(202);
      const [event] = await readStream(store.eventStore, `call-${callId}`);
      expect(event?.metadata).toMatchObject({ authentication: 'signature', signatureVerified: true });
    });

    it('keeps the signature headers as received, so the stored bytes can be re-verified later', async () => {
      const callId = randomUUID();
      const body = statusUpdate(callId);
      const headers: Record<string, string> = {
        ...signatureHeaders(body, { at: test.clock.now(), prefix: true }),
        'x-webhook-event': 'status-update',
      };
      expect((await deliver(test.app, body, { headers })).statusCode).toBe(202);
      const [event] = await readStream(store.eventStore, `call-${callId}`);
      const metadata = event?.metadata as ReceptionMetadata;
      expect(metadata.provenance).toEqual({
        signature: headers['x-webhook-signature'],
        timestamp: headers['x-webhook-timestamp'],
        event: 'status-update',
        tokenName: null,
      });
      const rawBody = decodeRawBody(event?.data as ArchivedCallEvent);
      expect(verifyProvenance(testWebhookSecret, rawBody, metadata.provenance)).toEqual({ ok: true });
      expect(verifyProvenance('another-secret-of-16+', rawBody, metadata.provenance)).toEqual({
        ok: false,
        reason: 'mismatch',
      });
      const altered = Buffer.from(rawBody);
      altered.writeUInt8(altered.readUInt8(5) ^ 0x01, 5);
      expect(verifyProvenance(testWebhookSecret, altered, metadata.provenance)).toEqual({
        ok: false,
        reason: 'mismatch',
      });
    });

    it('accepts the sha256= prefix on the signature', async () => {
      const body = statusUpdate(randomUUID());
      const response = await deliver(test.app, body, {
        headers: signatureHeaders(body, { at: test.clock.now(), prefix: true }),
      });
      expect(response.statusCode).toBe(202);
    });

    it('refuses a signature made with another secret', async () => {
      const callId = randomUUID();
      const body = statusUpdate(callId);
      const headers = signatureHeaders(body, {
        at: test.clock.now(),
        secret: 'another-secret-of-enough-length',
      });
      await expectRefused(await deliver(test.app, body, { headers }), callId, /does not match/);
    });

    it('refuses stale and future timestamps, and accepts them inside the tolerance', async () => {
      for (const [offsetSeconds, status] of [
        [-301, 401],
        [301, 401],
        [-299, 202],
        [299, 202],
      ] as const) {
        const callId = randomUUID();
        const body = statusUpdate(callId);
        const at = new Date(test.clock.now().getTime() + offsetSeconds * 1000);
        const response = await deliver(test.app, body, { headers: signatureHeaders(body, { at }) });
        if (status === 401) await expectRefused(response, callId, /more than 300 s/);
        else expect(response.statusCode).toBe(202);
      }
    });

    it('refuses a request missing either signature header, or both', async () => {
      const callId = randomUUID();
      const body = statusUpdate(callId);
      const headers = signatureHeaders(body, { at: test.clock.now() });
      await expectRefused(
        await deliver(test.app, body, {
          headers: { 'x-webhook-signature': headers['x-webhook-signature']! },
        }),
        callId,
        /X-Webhook-Timestamp header is missing/,
      );
      await expectRefused(
        await deliver(test.app, body, {
          headers: { 'x-webhook-timestamp': headers['x-webhook-timestamp']! },
        }),
        callId,
        /X-Webhook-Signature must be/,
      );
      await expectRefused(await deliver(test.app, body), callId, /not signed.*no webhook token/);
    });

    it('refuses a body altered by one byte after signing', async () => {
      const callId = randomUUID();
      const body = statusUpdate(callId);
      const headers = signatureHeaders(body, { at: test.clock.now() });
      const altered = Buffer.from(body);
      const at = altered.length - 3;
      altered.writeUInt8(altered.readUInt8(at) ^ 0x01, at);
      await expectRefused(await deliver(test.app, altered, { headers }), callId, /does not match/);
      // The signature covers the exact bytes: the same JSON re-serialized differently also fails.
      const reformatted = JSON.stringify(JSON.parse(body), null, 2);
      await expectRefused(await deliver(test.app, reformatted, { headers }), callId, /does not match/);
    });

    it('accepts the token as a bearer token, in X-Webhook-Token, or as the last path segment', async () => {
      const deliveries: Delivery[] = [
        { headers: { authorization: `Bearer ${testWebhookToken}` } },
        { headers: { 'x-webhook-token': testWebhookToken } },
        { url: `/webhooks/flireo/${testWebhookToken}` },
      ];
      for (const delivery of deliveries) {
        const callId = randomUUID();
        const response = await deliver(test.app, statusUpdate(callId), delivery);
        expect(response.statusCode).toBe(202);
        const [event] = await readStream(store.eventStore, `call-${callId}`);
        expect(event?.metadata).toMatchObject({
          authentication: 'token',
          signatureVerified: false,
          provenance: { signature: null, timestamp: null, tokenName: 'webhook-token' },
        });
        expect(JSON.stringify(event?.metadata)).not.toContain(testWebhookToken);
      }
    });

    it('refuses a wrong token, whichever way it is presented', async () => {
      const wrong = `${testWebhookToken.slice(0, -1)}X`;
      const deliveries: Delivery[] = [
        { headers: { authorization: `Bearer ${wrong}` } },
        { headers: { 'x-webhook-token': wrong } },
        { url: `/webhooks/flireo/${wrong}` },
        { headers: { authorization: `Basic ${testWebhookToken}` } },
      ];
      for (const delivery of deliveries) {
        const callId = randomUUID();
        await expectRefused(await deliver(test.app, statusUpdate(callId), delivery), callId, /token/);
      }
    });

    it('counts refusals and acceptances in the metrics', async () => {
      const before = await outcomes(test.metrics);
      await deliver(test.app, statusUpdate(randomUUID()));
      await withToken(test, statusUpdate(randomUUID()));
      const after = await outcomes(test.metrics);
      expect(after['unauthorized']).toBe((before['unauthorized'] ?? 0) + 1);
      expect(after['accepted']).toBe((before['accepted'] ?? 0) + 1);
    });

    it('with only a secret, refuses a token; with only a token, refuses a signature', async () => {
      const secretOnly = await start({
        config: testConfig({ appendTimeoutMs, webhook: { token: undefined } }),
      });
      const tokenOnly = await start({
        config: testConfig({ appendTimeoutMs, webhook: { secret: undefined } }),
      });
      const first = randomUUID();
      await expectRefused(await withToken(secretOnly, statusUpdate(first)), first, /X-Webhook-Timestamp/);
      const second = randomUUID();
      await expectRefused(await signed(tokenOnly, statusUpdate(second)), second, /no webhook token/);
      expect((await signed(secretOnly, statusUpdate(randomUUID()))).statusCode).toBe(202);
      expect((await withToken(tokenOnly, statusUpdate(randomUUID()))).statusCode).toBe(202);
    });

    it('with no authentication configured, accepts only when insecure webhooks are allowed', async () => {
      const none = { secret: undefined, token: undefined };
      const insecure = await start({
        config: testConfig({ appendTimeoutMs, webhook: { ...none, insecure: true } }),
      });
      const closed = await start({
        config: testConfig({ appendTimeoutMs, webhook: { ...none, insecure: false } }),
      });
      const callId = randomUUID();
      expect((await deliver(insecure.app, statusUpdate(callId))).statusCode).toBe(202);
      const [event] = await readStream(store.eventStore, `call-${callId}`);
      expect(event?.metadata).toMatchObject({ authentication: 'none', signatureVerified: false });
      const refused = randomUUID();
      await expectRefused(await deliver(closed.app, statusUpdate(refused)), refused, /not configured/);
    });
  });

  it('never logs a secret, token, signature or body content', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const test = await start({ logger: createLogger({ level: 'trace', destination }) });
    const recording = 'https://recordings.flireo.example/r/stereo.wav?X-Signature=c0ffee0123';
    const body = statusUpdate(randomUUID(), { recordings: { linkStereo: recording } });
    const wrongToken = 'wrong-token-which-must-not-be-logged';
    const headers = signatureHeaders(body, { at: test.clock.now() });
    const responses = [
      await deliver(test.app, body, { url: `/webhooks/flireo/${testWebhookToken}` }),
      await deliver(test.app, body, { url: `/webhooks/flireo/${wrongToken}` }),
      await deliver(test.app, body, { headers: { authorization: `Bearer ${wrongToken}` } }),
      await deliver(test.app, body, { headers }),
      await deliver(test.app, `${body}}`, { headers: { ...headers, 'x-webhook-token': testWebhookToken } }),
      await withToken(test, statusUpdate(randomUUID(), { status: 5, transcriptText: recording })),
    ];
    expect(responses.map((r) => r.statusCode)).toEqual([202, 401, 401, 202, 400, 400]);
    const log = lines.join('');
    expect(log).toContain('webhook request quarantined');
    expect(log).toContain('/webhooks/flireo/[redacted]');
    for (const secret of [
      testWebhookToken,
      testWebhookSecret,
      wrongToken,
      headers['x-webhook-signature']!,
      'X-Signature',
      'linkStereo',
    ]) {
      expect(log).not.toContain(secret);
    }
  });

  it('describes both routes completely in the OpenAPI document', async () => {
    const test = await start();
    const document = test.app.swagger() as {
      paths: Record<
        string,
        { post?: { responses?: Record<string, unknown>; parameters?: { name: string; in: string }[] } }
      >;
    };
    for (const path of ['/webhooks/flireo', '/webhooks/flireo/{token}']) {
      const operation = document.paths[path]?.post;
      expect(Object.keys(operation?.responses ?? {}).sort()).toEqual([
        '202',
        '400',
        '401',
        '413',
        '415',
        // Relay mode's answers when the customer's handler fails.
        '502',
        '503',
        '504',
      ]);
      expect(operation?.responses?.['400']).toMatchObject({
        content: { 'application/problem+json': { schema: { type: 'object' } } },
      });
    }
    expect(document.paths['/webhooks/flireo/{token}']?.post?.parameters).toEqual([
      expect.objectContaining({ name: 'token', in: 'path' }),
    ]);
  });

  describe('archiving', () => {
    it('archives every documented example with its normalization, raw bytes and reception metadata', async () => {
      const test = await start();
      for (const example of allExamples) {
        const response = await signed(test, example.raw, {
          headers: { 'x-request-id': `example-${apps.length}`, 'user-agent': 'Flireo-Webhooks/2.1' },
        });
        expect(response.statusCode, example.name).toBe(202);
        const { eventId, stream, duplicate } = response.json<{
          eventId: string;
          stream: string;
          duplicate: boolean;
        }>();
        expect(duplicate).toBe(false);
        const day = test.clock.now().toISOString().slice(0, 10);
        expect(stream).toBe(
          example.normalized.callId === null
            ? `assistant-requests-${day}`
            : `call-${example.normalized.callId}`,
        );
        const stored = (await readStream(store.eventStore, stream)).find((event) => event.id === eventId);
        expect(stored?.type).toBe(example.normalized.eventType);
        expect(stored?.data).toEqual({
          schemaVersion: 1,
          ...example.normalized,
          rawBody: example.raw,
          rawBodyEncoding: 'utf8',
        });
        expect(stored?.metadata).toEqual({
          receivedAt: test.clock.now().toISOString(),
          requestId: `example-${apps.length}`,
          sourceAddress: '127.0.0.1',
          signatureVerified: true,
          authentication: 'signature',
          userAgent: 'Flireo-Webhooks/2.1',
          contentType: 'application/json',
          provenance: {
            ...signatureHeadersAsKept(example.raw, test.clock.now()),
            event: null,
            tokenName: null,
          },
        });
      }
    });

    it('stores the same body delivered twice once, also after a restart on the same store', async () => {
      const first = await start();
      const callId = randomUUID();
      const body = statusUpdate(callId);
      const one = await signed(first, body);
      const two = await signed(first, body);
      expect(one.statusCode).toBe(202);
      expect(two.statusCode).toBe(202);
      expect(one.json()).toMatchObject({ duplicate: false, stream: `call-${callId}` });
      expect(two.json()).toEqual({ ...one.json<object>(), duplicate: true });

      // The same event re-serialized (key order, whitespace) is the same event.
      const reordered = JSON.stringify(
        Object.fromEntries(Object.entries(JSON.parse(body) as object).reverse()),
        null,
        1,
      );
      expect((await signed(first, reordered)).json()).toEqual({ ...one.json<object>(), duplicate: true });

      // A new process: a new adapter connection, a new app, nothing remembered in memory.
      await first.app.close();
      const restarted = await start({ eventStore: await store.connectAnother(), clock: first.clock });
      const three = await signed(restarted, body);
      expect(three.statusCode).toBe(202);
      expect(three.json()).toEqual({ ...one.json<object>(), duplicate: true });
      expect(await outcomes(restarted.metrics)).toMatchObject({ duplicate: 1 });

      const events = await readStream(store.eventStore, `call-${callId}`);
      expect(events.map((e) => e.id)).toEqual([one.json<{ eventId: string }>().eventId]);
    });

    it('stores 30 concurrent deliveries of distinct events for one call at revisions 0..29', async () => {
      const test = await start();
      const callId = randomUUID();
      const bodies = Array.from({ length: 30 }, (_, i) =>
        statusUpdate(callId, {
          eventTimestamp: 1756368117035 + i,
          status: i === 29 ? 'ended' : 'in-progress',
        }),
      );
      const responses = await Promise.all(bodies.map((body) => signed(test, body)));
      expect(responses.map((r) => r.statusCode)).toEqual(bodies.map(() => 202));
      expect(responses.every((r) => r.json<{ duplicate: boolean }>().duplicate === false)).toBe(true);
      const events = await readStream(store.eventStore, `call-${callId}`);
      expect(events.map((e) => e.revision)).toEqual(bodies.map((_, i) => BigInt(i)));
      expect(new Set(events.map((e) => e.id))).toEqual(
        new Set(responses.map((r) => r.json<{ eventId: string }>().eventId)),
      );
    });

    it('stores each event once when two processes race to ingest the same events', async () => {
      const clock = createTestClock(new Date(Date.UTC(2025, 5, 1, 8, 0, 0)));
      const one = await start({ clock });
      const two = await start({ eventStore: await store.connectAnother(), clock });
      const callId = randomUUID();
      const bodies = Array.from({ length: 30 }, (_, i) =>
        statusUpdate(callId, { eventTimestamp: 1756368200000 + i }),
      );
      const responses = await Promise.all(bodies.flatMap((body) => [signed(one, body), signed(two, body)]));
      expect(responses.map((r) => r.statusCode)).toEqual(responses.map(() => 202));
      const ids = responses.map((r) => r.json<{ eventId: string }>().eventId);
      for (let i = 0; i < ids.length; i += 2) expect(ids[i]).toBe(ids[i + 1]);

      const events = await readStream(store.eventStore, `call-${callId}`);
      expect(events).toHaveLength(30);
      expect(events.map((e) => e.revision)).toEqual(bodies.map((_, i) => BigInt(i)));
      expect(new Set(events.map((e) => e.id))).toEqual(new Set(ids));
      // Redelivered afterwards to either process: a duplicate.
      for (const test of [one, two]) {
        expect((await signed(test, bodies[7]!)).json()).toMatchObject({ duplicate: true });
      }
    });

    it('keeps two identical generation 1 assistant-requests of different calls, and dedupes a redelivery', async () => {
      const test = await start();
      const day = test.clock.now().toISOString().slice(0, 10);
      const body = gen1AssistantRequest.raw;
      const first = await signed(test, body);
      const redelivered = await signed(test, body);
      test.clock.advance(90_000);
      const nextCall = await signed(test, body);
      const byToken = await withToken(test, body);
      expect([first, redelivered, nextCall, byToken].map((r) => r.statusCode)).toEqual([202, 202, 202, 202]);
      expect(first.json()).toMatchObject({ stream: `assistant-requests-${day}`, duplicate: false });
      expect(redelivered.json()).toEqual({ ...first.json<object>(), duplicate: true });
      expect(nextCall.json<{ eventId: string }>().eventId).not.toBe(
        first.json<{ eventId: string }>().eventId,
      );
      const events = await readStream(store.eventStore, `assistant-requests-${day}`);
      expect(events).toHaveLength(3);
    });

    it('answers tool-calls and assistant-request like any event: 202 with the archive receipt', async () => {
      const test = await start();
      const toolCalls = allExamples.find((e) => e.normalized.eventType === 'tool-calls')!;
      const response = await withToken(
        test,
        toolCalls.raw.replace(toolCalls.normalized.callId!, randomUUID()),
      );
      expect(response.statusCode).toBe(202);
      expect(Object.keys(response.json<object>()).sort()).toEqual(['duplicate', 'eventId', 'stream']);
    });
  });

  describe('refused requests', () => {
    const expectProblem = (response: Awaited<ReturnType<typeof deliver>>, status: number) => {
      expect(response.statusCode).toBe(status);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      return response.json<{ status: number; errors?: { field: string; message: string }[] }>();
    };

    const expectHealthy = async (test: TestApp) => {
      expect((await test.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      expect((await signed(test, statusUpdate(randomUUID()))).statusCode).toBe(202);
    };

    it('quarantines malformed JSON with its exact bytes and answers 400 naming the body', async () => {
      const test = await start();
      const body = '{"eventType": "status-update", "callSession": "secret-looking-value", ';
      const problem = expectProblem(
        await signed(test, body, { headers: { 'x-request-id': 'malformed-1' } }),
        400,
      );
      expect(problem.errors).toHaveLength(1);
      expect(problem.errors?.[0]?.field).toBe('body');
      expect(problem.errors?.[0]?.message).toMatch(/^is not valid JSON \(at character \d+\)$/);
      expect(JSON.stringify(problem)).not.toContain('secret-looking-value');

      const [record, ...others] = await quarantined(test);
      expect(others).toEqual([]);
      expect(record?.type).toBe('quarantined-request');
      const data = record?.data as QuarantinedRequest;
      expect(data).toMatchObject({
        schemaVersion: 1,
        reason: 'malformed-json',
        problems: problem.errors,
        contentType: 'application/json',
        rawBodyEncoding: 'utf8',
      });
      expect(decodeRawBody(data).equals(Buffer.from(body))).toBe(true);
      expect(record?.metadata).toMatchObject({ requestId: 'malformed-1', authentication: 'signature' });
      expect(await outcomes(test.metrics)).toMatchObject({ quarantined: 1 });
      await expectHealthy(test);
    });

    it('never echoes a token from the path in a problem answer', async () => {
      const test = await start();
      const response = await deliver(test.app, '{"broken', { url: `/webhooks/flireo/${testWebhookToken}` });
      const problem = expectProblem(response, 400);
      expect(response.body).not.toContain(testWebhookToken);
      expect(problem).toMatchObject({ instance: '/webhooks/flireo/:token' });
    });

    it('quarantines a body that is not UTF-8 byte for byte', async () => {
      const test = await start();
      const body = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]);
      const problem = expectProblem(await withToken(test, body), 400);
      expect(problem.errors).toEqual([{ field: 'body', message: 'is not valid UTF-8' }]);
      const data = (await quarantined(test))[0]?.data as QuarantinedRequest;
      expect(data.rawBodyEncoding).toBe('base64');
      expect(decodeRawBody(data).equals(body)).toBe(true);
    });

    it('quarantines wrong types and a missing call id, naming each field', async () => {
      const test = await start();
      const wrongTypes = statusUpdate(randomUUID(), { eventTimestamp: '2025-08-28', status: 3 });
      const problem = expectProblem(await signed(test, wrongTypes), 400);
      expect(problem.errors).toEqual([
        { field: '/eventTimestamp', message: 'must be integer' },
        { field: '/status', message: 'must be string' },
      ]);
      const missingCallId = JSON.stringify({ ...JSON.parse(statusUpdate('x')), callSession: undefined });
      expect(expectProblem(await signed(test, missingCallId), 400).errors).toEqual([
        { field: '/callSession', message: 'is required' },
      ]);
      const records = await quarantined(test);
      expect(records.map((r) => (r.data as QuarantinedRequest).reason)).toEqual([
        'invalid-event',
        'invalid-event',
      ]);
      expect(records.map((r) => decodeRawBody(r.data as QuarantinedRequest).toString())).toEqual([
        wrongTypes,
        missingCallId,
      ]);
      expect((records[0]?.data as QuarantinedRequest).problems).toEqual(problem.errors);
      await expectHealthy(test);
    });

    it('stores nothing for an unauthenticated invalid request', async () => {
      const test = await start();
      expectProblem(await deliver(test.app, '{not json'), 401);
      expectProblem(await deliver(test.app, 'hello', { contentType: 'text/plain' }), 401);
      expect(await quarantined(test)).toEqual([]);
    });

    it('refuses a 2 MiB body with 413, keeping only a record of it for a token-authenticated sender', async () => {
      const test = await start();
      const body = Buffer.from(
        JSON.stringify({ ...JSON.parse(statusUpdate(randomUUID())), pad: 'x'.repeat(2 * 1024 * 1024) }),
      );
      const response = await withToken(test, body);
      expect(expectProblem(response, 413).errors).toEqual([
        { field: 'body', message: 'exceeds the limit of 1000000 bytes' },
      ]);
      expect(response.headers['connection']).toBe('close');

      const [record, ...others] = await quarantined(test);
      expect(others).toEqual([]);
      const data = record?.data as QuarantinedRequest;
      expect(data).toMatchObject({
        reason: 'body-too-large',
        bodyTruncated: true,
        declaredBytes: body.length,
      });
      expect(decodeRawBody(data).equals(body.subarray(0, 4096))).toBe(true);
      expect(data.receivedBytes).toBeGreaterThanOrEqual(4096);
      expect(data.receivedBytes).toBeLessThanOrEqual(body.length);
      expect(data.receivedSha256).toBe(sha256(body.subarray(0, data.receivedBytes)));
      expect(JSON.stringify(record?.data).length).toBeLessThan(16 * 1024);

      // Signed only (unverifiable without the whole body) or unauthenticated: 413, nothing kept.
      expectProblem(await signed(test, body), 413);
      expectProblem(await deliver(test.app, body), 413);
      expect(await quarantined(test)).toHaveLength(1);
      await expectHealthy(test);
    });

    it('refuses a valid event too large to archive as one record, keeping a truncated record', async () => {
      const test = await start();
      // Under the body limit, but every quote doubles when the raw body is stored as a JSON string.
      const body = Buffer.from(
        JSON.stringify({
          eventTimestamp: 1756368305120,
          eventType: 'end-of-call-report',
          callId: randomUUID(),
          transcriptText: '"'.repeat(450_000),
        }),
      );
      expect(body.length).toBeLessThan(test.config.webhook.bodyLimitBytes);
      const problem = expectProblem(await withToken(test, body), 413);
      expect(problem.errors).toEqual([
        { field: 'body', message: 'is too large to archive (over 1000000 bytes once encoded)' },
      ]);
      const malformed = Buffer.concat([body, Buffer.from('}')]);
      expectProblem(await withToken(test, malformed), 400);

      const records = (await quarantined(test)).map((r) => r.data as QuarantinedRequest);
      expect(records.map((r) => r.reason)).toEqual(['body-too-large', 'malformed-json']);
      for (const [record, bytes] of [
        [records[0]!, body],
        [records[1]!, malformed],
      ] as const) {
        expect(record).toMatchObject({
          bodyTruncated: true,
          receivedBytes: bytes.length,
          declaredBytes: bytes.length,
          receivedSha256: sha256(bytes),
        });
        expect(decodeRawBody(record).equals(bytes.subarray(0, 4096))).toBe(true);
      }
      await expectHealthy(test);
    });

    it('refuses a chunked body that grows past the limit, over a real socket', async () => {
      const test = await start({
        config: testConfig({ appendTimeoutMs, webhook: { bodyLimitBytes: 64 * 1024 } }),
      });
      await test.app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = test.app.server.address() as { port: number };
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      const status = await new Promise<number>((resolve, reject) => {
        const request = http.request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: `/webhooks/flireo/${testWebhookToken}`,
            headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
          },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        );
        request.on('error', reject);
        let sent = 0;
        const write = () => {
          while (sent < 40) {
            sent += 1;
            if (!request.write(chunk)) {
              request.once('drain', write);
              return;
            }
          }
          request.end();
        };
        write();
      });
      expect(status).toBe(413);
      const data = (await quarantined(test))[0]?.data as QuarantinedRequest;
      expect(data).toMatchObject({ reason: 'body-too-large', bodyTruncated: true, declaredBytes: null });
      expect(data.receivedBytes).toBeGreaterThan(64 * 1024);
      expect(decodeRawBody(data).equals(Buffer.alloc(4096, 0x61))).toBe(true);
    });

    it('refuses other content types with 415, quarantined when authenticated by token or signature', async () => {
      const test = await start();
      const body = statusUpdate(randomUUID());
      const byToken = expectProblem(await withToken(test, body, { contentType: 'text/plain' }), 415);
      expect(byToken.errors).toEqual([{ field: 'content-type', message: 'must be application/json' }]);
      expectProblem(await signed(test, 'a=1&b=2', { contentType: 'application/x-www-form-urlencoded' }), 415);
      expectProblem(await withToken(test, body, { contentType: undefined }), 415);
      expectProblem(
        await withToken(test, body, { contentType: 'application/json; charset=iso-8859-1' }),
        415,
      );
      const records = await quarantined(test);
      expect(records.map((r) => (r.data as QuarantinedRequest).contentType)).toEqual([
        'text/plain',
        'application/x-www-form-urlencoded',
        null,
        'application/json; charset=iso-8859-1',
      ]);
      expect(records.every((r) => (r.data as QuarantinedRequest).reason === 'unsupported-media-type')).toBe(
        true,
      );
      expect(decodeRawBody(records[1]!.data as QuarantinedRequest).toString()).toBe('a=1&b=2');
      expect(records[1]?.metadata).toMatchObject({ authentication: 'signature', signatureVerified: true });
    });

    it('accepts application/*+json and an explicit UTF-8 charset', async () => {
      const test = await start();
      for (const contentType of ['application/json; charset=UTF-8', 'application/vnd.flireo.event+json']) {
        expect((await signed(test, statusUpdate(randomUUID()), { contentType })).statusCode).toBe(202);
      }
    });
  });

  describe('when the event store is down', () => {
    it('answers 503 with Retry-After within the bound, writes nothing, and recovers', async () => {
      const test = await start();
      const callId = randomUUID();
      const body = statusUpdate(callId);
      await store.takeDown();
      try {
        const started = performance.now();
        const response = await signed(test, body);
        const elapsed = performance.now() - started;
        expect(response.statusCode).toBe(503);
        expect(response.headers['retry-after']).toBe('5');
        expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(elapsed).toBeLessThan(appendTimeoutMs + 1_000);
        // Evidence that cannot be quarantined is not answered as a mere 400.
        expect((await signed(test, '{broken')).statusCode).toBe(503);
        expect(await outcomes(test.metrics)).toMatchObject({ unavailable: 2 });
        expect((await test.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      } finally {
        await store.bringBack();
      }

      const recovered = await eventually(
        () => signed(test, body),
        (response) => response.statusCode === 202,
      );
      expect(recovered.statusCode).toBe(202);
      expect(recovered.json()).toMatchObject({ duplicate: false });
      expect(await readStream(store.eventStore, `call-${callId}`)).toHaveLength(1);
      expect(await quarantined(test)).toEqual([]);
      expect((await signed(test, '{broken')).statusCode).toBe(400);
      expect(await quarantined(test)).toHaveLength(1);
    });
  });
});
