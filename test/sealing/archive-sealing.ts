/**
 * A sealed archive on either event store, for the sealing and verification suites: events written,
 * a sealer run until everything is sealed, and the means to tamper with the store underneath.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { callStreamName, sealedStreamPrefixes } from '../../src/archive/streams.ts';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { createLogger } from '../../src/logger.ts';
import { readDigestEvents } from '../../src/sealing/digest-stream.ts';
import { startSealer, type RunningSealer, type SealerOptions } from '../../src/sealing/sealer.ts';
import { generateSigningKey, type PublicKey, type SigningKey } from '../../src/sealing/signing-key.ts';
import { verifyArchive, type VerifyReport, type VerifyScope } from '../../src/sealing/verify.ts';
import { startEventStoreDbTestServer, type EventStoreDbTestServer } from '../eventstoredb-server/server.ts';
import { proposedCallEvent, statusUpdate } from '../support/call-events.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

export interface ArchiveUnderTest {
  readonly kind: 'postgres' | 'eventstoredb';
  readonly eventStore: EventStore;
  /** The database holding the sealer's lock (and, for PostgreSQL, the events). */
  readonly database: TestDatabase;
  readonly pool: pg.Pool;
  readonly key: SigningKey;
  readonly server: EventStoreDbTestServer | undefined;
  /** Appends `count` status updates to a new call; returns the call's stream. */
  writeCall(count: number): Promise<string>;
  startSealer(overrides?: Partial<SealerOptions>): RunningSealer;
  /** Runs a sealer until every archived event is sealed, then stops it. */
  sealEverything(overrides?: Partial<SealerOptions>): Promise<void>;
  verify(
    scope?: VerifyScope,
    options?: {
      unsealedGraceMs?: number;
      keys?: PublicKey[];
      maxEventsAhead?: number;
      onProgress?: (eventsChecked: number, totalSealed: number, allDigestsRead: boolean) => void;
      /** Told of each digest as verify reads it from the digest stream. */
      onDigestRead?: (data: unknown) => void;
    },
  ): Promise<VerifyReport>;
  /** SQL against the event store's database (PostgreSQL only). */
  sql(text: string, params?: unknown[]): Promise<pg.QueryResult>;
  close(): Promise<void>;
}

export const sealerTestOptions: SealerOptions = {
  streamPrefixes: sealedStreamPrefixes,
  maxEvents: 5,
  maxSeconds: 0.2,
  digestDirectory: undefined,
  standbyPollMs: 100,
  retryInitialMs: 50,
  retryMaxMs: 500,
};

const waitFor = async (condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

const countArchived = async (eventStore: EventStore): Promise<number> => {
  let count = 0;
  for await (const _ of eventStore.readAll({ streamPrefixes: sealedStreamPrefixes })) count += 1;
  return count;
};

export const openArchive = async (kind: 'postgres' | 'eventstoredb'): Promise<ArchiveUnderTest> => {
  const database = await createTestDatabase(`sealing_${kind}`);
  const pool = new pg.Pool({ connectionString: database.url, max: 4 });
  pool.on('error', () => {});
  const server = kind === 'eventstoredb' ? await startEventStoreDbTestServer() : undefined;
  const eventStore =
    server === undefined
      ? await openPostgresEventStore(database.url, { timeoutMs: 5_000 })
      : connectEventStoreDb(server.url, { timeoutMs: 5_000 });
  const key = generateSigningKey();
  const logger = createLogger({ level: 'silent' });
  const open = (overrides: Partial<SealerOptions> = {}) =>
    startSealer(
      { eventStore, pool, key, logger, clock: () => new Date() },
      { ...sealerTestOptions, ...overrides },
    );
  const archive: ArchiveUnderTest = {
    kind,
    eventStore,
    database,
    pool,
    key,
    server,
    writeCall: async (count) => {
      const callId = `sealing-${randomUUID()}`;
      const events = Array.from({ length: count }, (_, index) =>
        proposedCallEvent(
          statusUpdate(callId, 'in-progress', new Date(Date.UTC(2026, 2, 1, 10, 0, index)).toISOString()),
        ),
      );
      for (const [revision, event] of events.entries()) {
        await eventStore.append(
          callStreamName(callId),
          [event],
          revision === 0 ? 'no-stream' : BigInt(revision - 1),
        );
      }
      return callStreamName(callId);
    },
    startSealer: open,
    sealEverything: async (overrides) => {
      const total = await countArchived(eventStore);
      const sealer = open(overrides);
      try {
        await waitFor(async () => {
          let sealed = 0;
          for await (const entry of readDigestEvents(eventStore)) {
            sealed += (entry.data as { eventCount: number }).eventCount;
          }
          return sealed >= total;
        }, 'the sealer to seal every event');
      } finally {
        await sealer.stop();
      }
    },
    verify: async (scope = { kind: 'all' }, options = {}) =>
      verifyArchive(eventStore, {
        digests: (async function* () {
          for await (const entry of readDigestEvents(eventStore)) {
            options.onDigestRead?.(entry.data);
            yield { where: `digest stream revision ${entry.revision}`, type: entry.type, data: entry.data };
          }
        })(),
        keys: new Map((options.keys ?? [key]).map((each) => [each.keyId, each])),
        scope,
        streamPrefixes: sealedStreamPrefixes,
        unsealedGraceMs: options.unsealedGraceMs ?? 60_000,
        now: new Date(),
        checkStreams: kind === 'eventstoredb',
        ...(options.maxEventsAhead === undefined ? {} : { maxEventsAhead: options.maxEventsAhead }),
        ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      }),
    sql: async (text, params = []) => {
      if (kind !== 'postgres') throw new Error('SQL tampering needs the PostgreSQL event store');
      return pool.query(text, params);
    },
    close: async () => {
      await eventStore.close();
      await server?.stop();
      await pool.end();
      await database.drop();
    },
  };
  return archive;
};
