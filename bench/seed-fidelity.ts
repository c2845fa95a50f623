/**
 * The seed writes the event-store table directly, so it must keep writing exactly what ingest
 * stores. Before seeding, a few generated deliveries go through the real webhook (the app, in
 * process, on a database of its own) and the stored records are compared with what the seed would
 * write for them; any difference stops the run instead of benchmarking the wrong data.
 */
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { buildApp } from '../src/app.ts';
import { adminTokens } from '../src/access/api-tokens.ts';
import { loadConfig, type Config } from '../src/config.ts';
import { migrateReadModels, openDatabase } from '../src/database/database.ts';
import { openPostgresEventStore } from '../src/event-store/postgres/postgres-event-store.ts';
import { createMetrics } from '../src/metrics.ts';
import { apiToken, webhookSecret } from './context.ts';
import { archivedRecordOf, signedHeaders, trafficTimeline } from './flireo-traffic.ts';

/** Reception details that differ by nature between two receptions of the same body (the signature
 * covers the delivery's timestamp). */
const perReception = ['receivedAt', 'requestId', 'sourceAddress', 'provenance'];

const withoutPerReception = (metadata: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(metadata).filter(([key]) => !perReception.includes(key)));

export class SeedFidelityError extends Error {
  override readonly name = 'SeedFidelityError';
}

export const checkSeedMatchesIngest = async (url: string, deliveries = 40): Promise<void> => {
  const defaults = loadConfig({});
  const config: Config = {
    ...defaults,
    eventStoreUrl: url,
    databaseUrl: url,
    dataDir: '.',
    host: '127.0.0.1',
    port: 0,
    logLevel: 'silent',
    webhook: { ...defaults.webhook, secret: webhookSecret },
    apiTokens: adminTokens([apiToken]),
  };
  const eventStore = await openPostgresEventStore(url, { timeoutMs: 3_000 });
  const database = openDatabase(url, { max: 2 });
  const reader = new pg.Client(url);
  try {
    await migrateReadModels(database);
    await reader.connect();
    const app = await buildApp(
      { config, eventStore, database, metrics: createMetrics(), clock: () => new Date() },
      { logger: false },
    );
    try {
      let checked = 0;
      for (const delivery of trafficTimeline({
        seed: 11,
        startMs: Date.parse('2026-01-05T00:00:00.000Z'),
        spanMs: 3_600_000,
        expectedCalls: 10,
        callIdPrefix: 'fidelity-',
      })) {
        if (checked === deliveries) break;
        checked += 1;
        const response = await app.inject({
          method: 'POST',
          url: '/webhooks/flireo',
          payload: delivery.body,
          headers: signedHeaders(webhookSecret, delivery.body, Date.now()),
        });
        if (response.statusCode !== 202) {
          throw new SeedFidelityError(`the webhook answered ${response.statusCode}: ${response.body}`);
        }
        const { eventId } = response.json<{ eventId: string }>();
        const { rows } = await reader.query<{
          stream_name: string;
          event_type: string;
          data: string;
          metadata: string;
        }>(
          `SELECT stream_name, event_type, data::text AS data, metadata::text AS metadata
             FROM event_store.events WHERE event_id = $1`,
          [eventId],
        );
        const stored = rows[0];
        const seeded = archivedRecordOf(delivery, 'seed');
        const metadata = JSON.parse(stored?.metadata ?? '{}') as Record<string, unknown>;
        const problems = [
          eventId !== seeded.eventId && 'event id',
          stored?.stream_name !== seeded.streamName && 'stream',
          stored?.event_type !== seeded.eventType && 'event type',
          stored?.data !== JSON.stringify(seeded.data) && 'data',
          !isDeepStrictEqual(withoutPerReception(metadata), withoutPerReception(seeded.metadata)) &&
            'metadata',
        ].filter((problem) => problem !== false);
        if (problems.length > 0) {
          throw new SeedFidelityError(
            `the seed no longer writes what ingest stores (${problems.join(', ')} differ); ` +
              `ingest stored ${stored?.data ?? 'nothing'} with ${stored?.metadata ?? 'no metadata'}`,
          );
        }
      }
    } finally {
      await app.close();
    }
  } finally {
    await reader.end().catch(() => {});
    await eventStore.close();
    await database.close();
  }
};
