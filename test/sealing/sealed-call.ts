/**
 * A call archived through the real webhook route (signed by Flireo's scheme, so its provenance can be
 * re-checked) and sealed by a real sealer, on either event store: the material for the proof,
 * evidence and offline verification suites.
 */
import { randomUUID } from 'node:crypto';
import { archiveStreamPrefixes } from '../../src/archive/streams.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { createLogger } from '../../src/logger.ts';
import { readDigestEvents } from '../../src/sealing/digest-stream.ts';
import { startSealer } from '../../src/sealing/sealer.ts';
import { generateSigningKey, type SigningKey } from '../../src/sealing/signing-key.ts';
import { buildApp } from '../../src/app.ts';
import { createMetrics } from '../../src/metrics.ts';
import {
  createTestClock,
  signatureHeaders,
  testConfig,
  testWebhookToken,
  type TestApp,
} from '../support/app.ts';
import { apiToken, openAuditStores, type AuditStores, type EventStoreKind } from '../audit/support.ts';
import { sealerTestOptions } from './archive-sealing.ts';

export interface SealedCallFixture {
  readonly stores: AuditStores;
  readonly test: TestApp;
  readonly key: SigningKey;
  /** Posts one status update of `callId` (signed, or with the webhook token); resolves when stored. */
  post(callId: string, options?: { status?: string; token?: boolean }): Promise<void>;
  /** Runs a sealer until every archived event is sealed. */
  sealEverything(): Promise<void>;
  close(): Promise<void>;
}

export const waitFor = async (
  condition: () => Promise<boolean> | boolean,
  what: string,
  boundMs = 20_000,
) => {
  const deadline = Date.now() + boundMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

const countArchived = async (eventStore: EventStore): Promise<number> => {
  let count = 0;
  for await (const _ of eventStore.readAll({ streamPrefixes: archiveStreamPrefixes })) count += 1;
  return count;
};

let sequence = 0;

export const openSealedCallFixture = async (kind: EventStoreKind): Promise<SealedCallFixture> => {
  const stores = await openAuditStores(kind);
  const key = generateSigningKey();
  // The application holds the sealing key, as serve's does: exports and replays carry manifests.
  const clock = createTestClock();
  const metrics = createMetrics();
  const config = testConfig({ apiTokens: [apiToken] });
  const app = await buildApp(
    {
      config,
      eventStore: stores.eventStore,
      database: stores.database,
      metrics,
      clock: clock.now,
      sealingKey: key,
    },
    { logger: false },
  );
  await app.ready();
  const test: TestApp = { app, clock, metrics, config };
  return {
    stores,
    test,
    key,
    post: async (callId, options = {}) => {
      sequence += 1;
      const body = JSON.stringify({
        eventTimestamp: test.clock.now().getTime() + sequence,
        eventType: 'status-update',
        callSession: callId,
        fromCaller: '+31612345678',
        toAssistant: '+31850123456',
        status: options.status ?? 'in-progress',
        note: `é ${randomUUID()}`,
      });
      const response = await test.app.inject({
        method: 'POST',
        url: options.token === true ? `/webhooks/flireo/${testWebhookToken}` : '/webhooks/flireo',
        payload: body,
        headers: {
          'content-type': 'application/json',
          'x-webhook-event': 'status-update',
          ...(options.token === true ? {} : signatureHeaders(body, { at: test.clock.now() })),
        },
      });
      if (response.statusCode !== 202)
        throw new Error(`webhook answered ${response.statusCode}: ${response.body}`);
    },
    sealEverything: async () => {
      const total = await countArchived(stores.eventStore);
      const sealer = startSealer(
        {
          eventStore: stores.eventStore,
          pool: stores.database.pool,
          key,
          logger: createLogger({ level: 'silent' }),
          clock: () => new Date(),
        },
        sealerTestOptions,
      );
      try {
        await waitFor(async () => {
          let sealed = 0;
          for await (const entry of readDigestEvents(stores.eventStore))
            sealed += (entry.data as { eventCount: number }).eventCount;
          return sealed >= total;
        }, 'the sealer to seal every event');
      } finally {
        await sealer.stop();
      }
    },
    close: async () => {
      await test.app.close();
      await stores.close();
    },
  };
};
