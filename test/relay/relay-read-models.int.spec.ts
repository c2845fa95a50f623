/**
 * Relay exchanges in the read models, on each real event store: the exchanges that sit in a call's
 * stream between its events are folded by the relay-exchanges projection alone (the calls and
 * timeline projections pass them by, with no dead letter), and `GET /calls/:callId` shows them
 * beside the call's timeline.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startProjector } from '../../src/projector/projector.ts';
import type { RelayExchangeView } from '../../src/relay/exchange-queries.ts';
import { testApiToken } from '../support/app.ts';
import {
  deadLetters,
  openReadModels,
  testProjectorOptions,
  waitUntilCaughtUp,
  type ReadModels,
} from '../support/projector-harness.ts';
import { readStream, storeSubjects, type StoreUnderTest } from '../webhook/stores.ts';
import { startCustomerHandler, type CustomerHandler } from './customer-handler.ts';
import {
  assistantFor,
  closedPort,
  deliver,
  relayTestConfig,
  startRelayApp,
  streamWith,
  toolCalls,
  waitFor,
} from './harness.ts';

describe.each(storeSubjects)('relay exchanges in the read models on $name', (subject) => {
  let store: StoreUnderTest;
  let readModels: ReadModels;
  let handler: CustomerHandler;
  let root: string;

  beforeAll(async () => {
    store = await subject.open({ timeoutMs: 3_000 });
    readModels = await openReadModels('relay_reads');
    handler = await startCustomerHandler({ slowMs: 2_000 });
    root = await mkdtemp(path.join(os.tmpdir(), 'calltrail-relay-'));
  });

  afterAll(async () => {
    await handler?.close();
    await store?.close();
    await readModels?.dispose();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('projects exchanges into relay_exchanges and shows them with the call, never as dead letters', async () => {
    const running = await startRelayApp(
      store,
      readModels.database,
      relayTestConfig(handler, await closedPort(), undefined, root),
    );
    const tag = `relay${randomUUID().slice(0, 8)}`;
    const callId = `${tag}-call`;
    try {
      const { test } = running;
      const status = JSON.stringify({
        eventTimestamp: 1756368117035,
        eventType: 'status-update',
        callSession: callId,
        fromCaller: '+31612345678',
        toAssistant: '+31850123456',
        status: 'in-progress',
      });
      expect((await deliver(test, status)).statusCode).toBe(202);
      const answered = await deliver(test, toolCalls(callId, 'fast', ['task-a']));
      expect(answered.statusCode).toBe(200);
      const failed = await deliver(test, toolCalls(callId, 'fail', ['task-b']));
      expect(failed.statusCode).toBe(502);
      await streamWith(store, `call-${callId}`, 5);

      const projector = await startProjector(
        {
          eventStore: store.eventStore,
          database: readModels.database,
          logger: createLogger({ level: 'silent' }),
          metrics: createMetrics(),
          clock: () => new Date(),
        },
        testProjectorOptions([`call-${tag}`]),
      );
      try {
        await waitUntilCaughtUp(projector, 60_000);
      } finally {
        await projector.stop();
      }
      expect(await deadLetters(readModels.database.pool)).toEqual([]);

      const response = await test.app.inject({
        method: 'GET',
        url: `/calls/${callId}`,
        headers: { authorization: `Bearer ${testApiToken}` },
      });
      expect(response.statusCode).toBe(200);
      const detail = response.json<{
        call: { eventCount: number };
        timeline: { eventType: string }[];
        relayExchanges: RelayExchangeView[];
      }>();
      expect(detail.call.eventCount).toBe(3);
      expect(detail.timeline.map((entry) => entry.eventType).sort()).toEqual([
        'status-update',
        'tool-calls',
        'tool-calls',
      ]);
      expect(detail.relayExchanges).toEqual([
        expect.objectContaining({
          requestEventId: answered.headers['x-calltrail-event-id'],
          requestType: 'tool-calls',
          destination: handler.url('/fast'),
          outcome: 'answered',
          failure: null,
          answeredWith: 'destination',
          answerStatus: 200,
          responseStatus: 200,
          revision: 2,
        }),
        expect.objectContaining({
          requestEventId: failed.headers['x-calltrail-event-id'],
          outcome: 'failed',
          failure: 'non-2xx',
          answeredWith: 'problem',
          answerStatus: 502,
          responseStatus: 500,
          revision: 4,
        }),
      ]);

      // The console's Call page shows them too: destination, status, latency, outcome.
      const page = await test.app.inject({
        method: 'GET',
        url: `/console/calls/${callId}`,
        headers: { cookie: `calltrail_session=${testApiToken}` },
      });
      expect(page.statusCode).toBe(200);
      const section = page.body.slice(page.body.indexOf('<h2>Relay exchanges</h2>'));
      expect(section).toContain('<table class="relay-exchanges">');
      const rows = section.slice(0, section.indexOf('</table>')).split('<tr data-outcome=').slice(1);
      expect(rows).toHaveLength(2);
      expect(rows[0]).toContain(handler.url('/fast'));
      expect(rows[0]).toMatch(/<td class="number">\s*200\s*<\/td>/);
      expect(rows[0]).toMatch(/<td class="number">\s*\d+\.\d ms\s*<\/td>/);
      expect(rows[0]).toMatch(/the handler(&#39;|&#x27;|')s answer\s*\(200\)/);
      expect(rows[1]).toContain('failed: non-2xx');
      expect(rows[1]).toMatch(/<td class="number">\s*500\s*<\/td>/);
      expect(rows[1]).toMatch(/a problem\s*\(502\)/);
    } finally {
      await running.close();
    }
  });
  it('projects the exchanges of requests without a call and lists them, newest first', async () => {
    const running = await startRelayApp(
      store,
      readModels.database,
      relayTestConfig(handler, await closedPort(), undefined, root),
    );
    try {
      const { test } = running;
      // Distinct callers: without a call id or a time, the delivery's timestamp alone tells them apart.
      const request = (scenario: 'fast' | 'fail') =>
        JSON.stringify({
          eventType: 'assistant-request',
          fromCaller: `+3161${randomUUID().replace(/\D/g, '').slice(0, 7)}`,
          toAssistant: assistantFor(scenario),
        });
      const answered = await deliver(test, request('fast'));
      expect(answered.statusCode).toBe(200);
      const failed = await deliver(test, request('fail'));
      expect(failed.statusCode).toBe(502);
      const stream = `assistant-requests-${test.clock.now().toISOString().slice(0, 10)}`;
      const requestIds = [answered, failed].map((reply) => String(reply.headers['x-calltrail-event-id']));
      await waitFor('both exchanges archived', async () => {
        const events = await readStream(store.eventStore, stream);
        const exchanged = events.filter(
          (event) =>
            event.type === 'relay-exchange' &&
            requestIds.includes((event.data as { requestEventId: string }).requestEventId),
        );
        return exchanged.length === 2 ? exchanged : undefined;
      });

      const projector = await startProjector(
        {
          eventStore: store.eventStore,
          database: readModels.database,
          logger: createLogger({ level: 'silent' }),
          metrics: createMetrics(),
          clock: () => new Date(),
        },
        testProjectorOptions(['assistant-requests-']),
      );
      try {
        await waitUntilCaughtUp(projector, 60_000);
      } finally {
        await projector.stop();
      }
      expect(await deadLetters(readModels.database.pool)).toEqual([]);

      const list = async (query: string) => {
        const response = await test.app.inject({
          method: 'GET',
          url: `/assistant-requests/relay-exchanges${query}`,
          headers: { authorization: `Bearer ${testApiToken}` },
        });
        return response;
      };
      type Page = { exchanges: (RelayExchangeView & { stream: string })[]; nextCursor: string | null };
      const all = await list('?limit=1000');
      expect(all.statusCode).toBe(200);
      const ours = all
        .json<Page>()
        .exchanges.filter((exchange) => requestIds.includes(exchange.requestEventId));
      // Newest first: the failed request was relayed last.
      expect(ours).toEqual([
        expect.objectContaining({
          requestEventId: requestIds[1],
          requestType: 'assistant-request',
          stream,
          outcome: 'failed',
          failure: 'non-2xx',
          answeredWith: 'problem',
          answerStatus: 502,
          responseStatus: 500,
        }),
        expect.objectContaining({
          requestEventId: requestIds[0],
          requestType: 'assistant-request',
          stream,
          destination: handler.url('/fast'),
          outcome: 'answered',
          answeredWith: 'destination',
          answerStatus: 200,
        }),
      ]);

      const answeredOnly = (await list('?outcome=answered&limit=1000')).json<Page>().exchanges;
      expect(answeredOnly.map((exchange) => exchange.requestEventId)).toContain(requestIds[0]);
      expect(answeredOnly.map((exchange) => exchange.requestEventId)).not.toContain(requestIds[1]);

      // Keyset paging walks every exchange once.
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: Page = (await list(`?limit=1${cursor === null ? '' : `&cursor=${cursor}`}`)).json<Page>();
        seen.push(...page.exchanges.map((exchange) => exchange.eventId));
        cursor = page.nextCursor;
      } while (cursor !== null);
      expect(seen).toEqual(all.json<Page>().exchanges.map((exchange) => exchange.eventId));

      const bad = await list('?outcome=maybe');
      expect(bad.statusCode).toBe(400);
      expect(bad.body).toContain('outcome');
      expect((await list('?cursor=nope')).statusCode).toBe(400);
    } finally {
      await running.close();
    }
  });
});
