/**
 * What the audit tests share: real stores (a fresh Postgres database for the read models, and an
 * event store of either kind with nothing in it but this file's events), the real app on them, and
 * read models filled with the rows the projection fold produces for given events.
 */
import { randomUUID } from 'node:crypto';
import { inArray } from 'drizzle-orm';
import { callStreamName, quarantineStreamPrefix } from '../../src/archive/streams.ts';
import { migrateReadModels, openDatabase, type Database } from '../../src/database/database.ts';
import type { EventStore, ProposedEvent, RecordedEvent } from '../../src/event-store/event-store.ts';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { decodeCallEvent } from '../../src/archive/call-event.ts';
import { callTimeline, timelineEntries } from '../../projections/call-timeline/read-model.ts';
import { calls, evolveCall, type CallRow } from '../../projections/calls/read-model.ts';
import { terminationOfCall, terminations } from '../../projections/terminations/read-model.ts';
import { quarantineProjection } from '../../projections/quarantine/projection.ts';
import { startEventStoreDbTestServer, type EventStoreDbTestServer } from '../eventstoredb-server/server.ts';
import { buildTestApp, testApiToken, testConfig, type TestApp } from '../support/app.ts';
import { createTestDatabase } from '../support/database.ts';

export const apiToken = testApiToken;
export const secondApiToken = 'second-api-token-abcdefghijklmnop';
export const bearer = (token = apiToken) => ({ authorization: `Bearer ${token}` });

export type EventStoreKind = 'postgres' | 'eventstoredb';
export const eventStoreKinds: readonly EventStoreKind[] = ['postgres', 'eventstoredb'];

export interface AuditStores {
  readonly eventStore: EventStore;
  readonly database: Database;
  /** The read-model database's URL (also the Postgres event store's). */
  readonly databaseUrl: string;
  /** The EventStoreDB test server, for fault injection (EventStoreDB stores only). */
  readonly eventStoreServer?: EventStoreDbTestServer;
  close(): Promise<void>;
}

/**
 * Fresh stores: a new database for the read models (and the Postgres event store, in its own
 * schema), or a new EventStoreDB test server, so listings over the whole archive see only this
 * file's events.
 */
export const openAuditStores = async (kind: EventStoreKind): Promise<AuditStores> => {
  const testDatabase = await createTestDatabase(`audit_${kind}`);
  const database = openDatabase(testDatabase.url);
  await migrateReadModels(database);
  const closers: (() => Promise<void>)[] = [];
  let eventStore: EventStore;
  let eventStoreServer: EventStoreDbTestServer | undefined;
  if (kind === 'postgres') {
    eventStore = await openPostgresEventStore(testDatabase.url, { timeoutMs: 5_000 });
  } else {
    const server = await startEventStoreDbTestServer();
    eventStoreServer = server;
    closers.push(() => server.stop());
    eventStore = connectEventStoreDb(server.url, { timeoutMs: 2_000 });
  }
  return {
    eventStore,
    database,
    databaseUrl: testDatabase.url,
    ...(eventStoreServer ? { eventStoreServer } : {}),
    close: async () => {
      await eventStore.close();
      for (const close of closers) await close();
      await database.close();
      await testDatabase.drop();
    },
  };
};

export const startAuditApp = async (stores: AuditStores): Promise<TestApp> =>
  buildTestApp({
    eventStore: stores.eventStore,
    database: stores.database,
    config: testConfig({ apiTokens: [apiToken, secondApiToken] }),
  });

export const appendAll = async (
  eventStore: EventStore,
  streamName: string,
  events: readonly ProposedEvent[],
) => {
  for (const event of events) {
    const result = await eventStore.append(streamName, [event], 'any');
    if (result.outcome !== 'appended') throw new Error(`append to ${streamName} failed: ${result.outcome}`);
  }
};

export const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
};

/** The rows the projection fold makes of these events (one call's, or many calls'). */
export const foldRows = (events: Iterable<RecordedEvent>): Map<string, CallRow> => {
  const rows = new Map<string, CallRow>();
  for (const recorded of events) {
    const event = decodeCallEvent(recorded);
    rows.set(event.callId, evolveCall(rows.get(event.callId), event));
  }
  return rows;
};

/** Writes the read-model rows the projection would write for these events. */
export const writeReadModels = async (
  database: Database,
  events: readonly RecordedEvent[],
): Promise<CallRow[]> => {
  const rows = [...foldRows(events).values()];
  const { db } = database;
  const callIds = rows.map((row) => row.callId);
  if (callIds.length === 0) return rows;
  await db.transaction(async (tx) => {
    await tx.delete(calls).where(inArray(calls.callId, callIds));
    await tx.delete(callTimeline).where(inArray(callTimeline.callId, callIds));
    await tx.delete(terminations).where(inArray(terminations.callId, callIds));
    for (let start = 0; start < rows.length; start += 500) {
      await tx.insert(calls).values(rows.slice(start, start + 500));
    }
    const entries = timelineEntries(events.map(decodeCallEvent));
    for (let start = 0; start < entries.length; start += 500) {
      await tx.insert(callTimeline).values(entries.slice(start, start + 500));
    }
    const ended = rows.map(terminationOfCall).filter((row) => row !== undefined);
    for (let start = 0; start < ended.length; start += 500) {
      await tx.insert(terminations).values(ended.slice(start, start + 500));
    }
  });
  return rows;
};

/** Reads a call's stream back and writes its read-model rows, as the projector would. */
export const projectCall = async (stores: AuditStores, callId: string): Promise<CallRow | undefined> => {
  const events = await collect(stores.eventStore.readStream(callStreamName(callId)));
  return (await writeReadModels(stores.database, events))[0];
};

/** Reads the quarantine streams and writes their read-model rows through the projection itself. */
export const projectQuarantine = async (stores: AuditStores): Promise<void> => {
  const records = await collect(stores.eventStore.readAll({ streamPrefixes: [quarantineStreamPrefix] }));
  const client = await stores.database.pool.connect();
  try {
    await quarantineProjection.apply(
      client,
      records.map((record) => quarantineProjection.decode(record)),
    );
  } finally {
    client.release();
  }
};

/** A run-unique tag, so call ids (and replay prefixes) never collide with another test's. */
export const runTag = (): string => randomUUID().slice(0, 8);
