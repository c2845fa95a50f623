/**
 * Relay mode while the event store is away, on each real event store: calls are still answered
 * through the customer's handler (the request is journaled within the archive budget instead of
 * waiting for the store), and once the store is back every relayed request and its exchange are in
 * the request's stream exactly once, the request first.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/database/database.ts';
import type { RelayExchange } from '../../src/relay/exchange.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { readStream, storeSubjects, type StoreUnderTest } from '../webhook/stores.ts';
import { startCustomerHandler, type CustomerHandler } from './customer-handler.ts';
import {
  assistantRequest,
  closedPort,
  deliver,
  exchangeOf,
  relayTestConfig,
  startRelayApp,
  toolCalls,
  waitFor,
} from './harness.ts';

describe.each(storeSubjects)('relay mode through an outage of $name', (subject) => {
  let store: StoreUnderTest;
  let testDatabase: TestDatabase;
  let database: Database;
  let handler: CustomerHandler;
  let root: string;

  beforeAll(async () => {
    store = await subject.open({ timeoutMs: 1_000 });
    testDatabase = await createTestDatabase('relay_outage');
    database = openDatabase(testDatabase.url, { max: 2 });
    handler = await startCustomerHandler({ slowMs: 2_000 });
    root = await mkdtemp(path.join(os.tmpdir(), 'calltrail-relay-'));
  });

  afterAll(async () => {
    await store?.bringBack();
    await handler?.close();
    await store?.close();
    await database?.close();
    await testDatabase?.drop();
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  it('answers every call through the handler while the store is down, and stores each record once', async () => {
    const config = {
      ...relayTestConfig(handler, await closedPort(), undefined, root),
      appendTimeoutMs: 1_000,
    };
    const running = await startRelayApp(store, database, config);
    try {
      const { test, outage } = running;
      const calls = [randomUUID(), randomUUID()];
      // One relayed request per call before the outage, so the streams exist already.
      const eventIds = new Map<string, string[]>(calls.map((call) => [call, []]));
      const relay = async (call: string, task: string) => {
        const response = await deliver(test, toolCalls(call, 'fast', [task]));
        expect(response.statusCode).toBe(200);
        expect(response.json()).toEqual({ results: [{ toolCallId: task, result: `done ${task}` }] });
        eventIds.get(call)!.push(response.headers['x-calltrail-event-id'] as string);
      };
      for (const call of calls) await relay(call, 'before');

      await store.takeDown();
      for (let round = 0; round < 3; round += 1) {
        await Promise.all(calls.map((call) => relay(call, `during-${round}`)));
      }
      const assistant = await deliver(test, assistantRequest('fast'));
      expect(assistant.statusCode).toBe(200);
      expect(assistant.json()).toMatchObject({ assistant: { name: 'Front desk' } });
      expect(outage.archive.status().journaledTotal).toBeGreaterThan(0);

      await store.bringBack();
      for (const call of calls) {
        const expected = eventIds.get(call)!;
        const events = await waitFor(
          `call-${call} with every request and exchange`,
          async () => {
            const stored = await readStream(store.eventStore, `call-${call}`);
            return stored.length >= expected.length * 2 ? stored : undefined;
          },
          60_000,
        );
        // Exactly once each: no id twice, and nothing beyond the requests and their exchanges.
        expect(new Set(events.map((event) => event.id)).size).toBe(events.length);
        expect(events).toHaveLength(expected.length * 2);
        // The requests in the order they were answered, each before its own exchange.
        expect(events.filter((event) => event.type === 'tool-calls').map((event) => event.id)).toEqual(
          expected,
        );
        const exchanges = expected.map((eventId) => exchangeOf(events, eventId));
        expect(exchanges.slice(1).some((exchange: RelayExchange) => exchange.requestJournaled)).toBe(true);
      }
      await waitFor(
        'the journal drained',
        async () => (outage.archive.status().depth === 0 ? true : undefined),
        60_000,
      );
    } finally {
      await running.close();
    }
  });
});
