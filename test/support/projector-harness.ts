/**
 * What the projector tests share: both event-store adapters behind one factory, a fresh migrated
 * read-model database per test, appending call events through the port, waiting for a projector
 * to catch up, and a snapshot of the read models to compare runs with.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type pg from 'pg';
import { inject } from 'vitest';
import { callStreamName, callStreamPrefix } from '../../src/archive/streams.ts';
import { migrateReadModels, openDatabase, type Database } from '../../src/database/database.ts';
import type { EventStore, ProposedEvent } from '../../src/event-store/event-store.ts';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { createLogger, type Logger } from '../../src/logger.ts';
import type { ProjectorOptions, RunningProjector } from '../../src/projector/projector.ts';
import { proposedCallEvent, type CallEventSpec } from './call-events.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { sleep, waitFor } from './wait.ts';

export type AdapterKind = 'postgres' | 'eventstoredb';
export const adapterKinds: readonly AdapterKind[] = ['postgres', 'eventstoredb'];

export interface OpenedEventStore {
  readonly eventStore: EventStore;
  /** The event-store database (postgres adapter only), to cut its connections. */
  readonly database?: TestDatabase;
  dispose(): Promise<void>;
}

export const openEventStore = async (kind: AdapterKind): Promise<OpenedEventStore> => {
  if (kind === 'eventstoredb') {
    const eventStore = connectEventStoreDb(inject('eventStoreDbUrl'), { timeoutMs: 5_000 });
    return { eventStore, dispose: () => eventStore.close() };
  }
  const database = await createTestDatabase('projector_events');
  const eventStore = await openPostgresEventStore(database.url, { timeoutMs: 5_000, pollIntervalMs: 200 });
  return {
    eventStore,
    database,
    dispose: async () => {
      await eventStore.close();
      await database.drop();
    },
  };
};

export interface ReadModels {
  readonly database: Database;
  readonly testDatabase: TestDatabase;
  dispose(): Promise<void>;
}

export const openReadModels = async (label = 'projector_reads'): Promise<ReadModels> => {
  const testDatabase = await createTestDatabase(label);
  // A session per projection for its leader lock, another per projection for a rebuild, and readers.
  const database = openDatabase(testDatabase.url, { max: 10 });
  await migrateReadModels(database);
  return {
    database,
    testDatabase,
    dispose: async () => {
      await database.close();
      await testDatabase.drop();
    },
  };
};

/** A namespace of call ids (and so of stream names) no other test shares. */
export const newScope = () => {
  const tag = `t${randomBytes(5).toString('hex')}`;
  return {
    tag,
    streamPrefixes: [`${callStreamPrefix}${tag}-`],
    callId: (name: string) => `${tag}-${name}`,
  };
};

/** Appends each event on its own (so calls interleave in $all), with exact expected revisions. */
export const appendCallEvents = async (
  eventStore: EventStore,
  specs: readonly CallEventSpec[],
  revisions: Map<string, bigint> = new Map(),
): Promise<ProposedEvent[]> => {
  const proposed: ProposedEvent[] = [];
  for (const spec of specs) {
    const event = proposedCallEvent(spec);
    const expected = revisions.get(spec.callId);
    const result = await eventStore.append(callStreamName(spec.callId), [event], expected ?? 'no-stream');
    if (result.outcome !== 'appended') throw new Error(`append to ${spec.callId} failed: ${result.outcome}`);
    revisions.set(spec.callId, result.nextRevision);
    proposed.push(event);
  }
  return proposed;
};

/** Appends raw records (poison included) to a call stream. */
export const appendRaw = async (
  eventStore: EventStore,
  callId: string,
  events: readonly ProposedEvent[],
  revisions: Map<string, bigint>,
): Promise<void> => {
  const result = await eventStore.append(
    callStreamName(callId),
    events,
    revisions.get(callId) ?? 'no-stream',
  );
  if (result.outcome !== 'appended') throw new Error(`append to ${callId} failed: ${result.outcome}`);
  revisions.set(callId, result.nextRevision);
};

export { sleep, waitFor };

export const waitUntilCaughtUp = async (projector: RunningProjector, timeoutMs = 15_000): Promise<void> => {
  await waitFor(
    'the projector to catch up',
    async () => {
      await Promise.all(projector.runners.map((runner) => runner.refreshLag()));
      return projector.status().every((status) => status.caughtUp);
    },
    timeoutMs,
  );
};

/** Short intervals, small batches: the tests exercise many batches and every timer. */
export const testProjectorOptions = (streamPrefixes: readonly string[]): Partial<ProjectorOptions> => ({
  streamPrefixes,
  maxBatchEvents: 25,
  watchdogIntervalMs: 200,
  stallTimeoutMs: 1_000,
  standbyPollMs: 100,
  retryInitialMs: 50,
  retryMaxMs: 400,
  lagCountLimit: 1_000,
  lagLogIntervalMs: 60_000,
  analyzeAfterEvents: 1,
});

/** A logger whose lines the test can inspect. */
export const capturingLogger = (): { logger: Logger; lines: () => Record<string, unknown>[] } => {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines: () => lines };
};

export interface ReadModelSnapshot {
  readonly calls: Record<string, unknown>[];
  readonly timeline: Record<string, unknown>[];
  readonly terminations: Record<string, unknown>[];
}

export const snapshotReadModels = async (pool: pg.Pool): Promise<ReadModelSnapshot> => ({
  calls: (await pool.query<Record<string, unknown>>('SELECT * FROM calls ORDER BY call_id')).rows,
  timeline: (await pool.query<Record<string, unknown>>('SELECT * FROM call_timeline ORDER BY event_id')).rows,
  terminations: (await pool.query<Record<string, unknown>>('SELECT * FROM terminations ORDER BY call_id'))
    .rows,
});

export const deadLetters = async (pool: pg.Pool) =>
  (
    await pool.query<{ projection: string; event_id: string; stream_revision: string; error: string }>(
      'SELECT projection, event_id, stream_revision, error FROM projection_dead_letters ORDER BY projection, stream_revision',
    )
  ).rows;
