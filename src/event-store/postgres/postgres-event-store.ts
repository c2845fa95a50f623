/**
 * The PostgreSQL adapter of the event-store port: events in the `event_store` schema of any Postgres
 * database (the embedded default, or one given by URL), with EventStoreDB's semantics. The pieces:
 * `migrations.ts` (schema, applied on open), `group-commit.ts` (appends), `scan.ts` (reads),
 * `stored-events.ts` (a range's stored bytes, for verification), `subscription.ts` +
 * `change-listener.ts` (catch-up and live subscriptions).
 */
import pg from 'pg';
import type { Logger } from '../../logger.ts';
import {
  EventStoreUnavailableError,
  type EventStore,
  type HashedEventPage,
  noHashedEvents,
  type ReadAllOptions,
  type ReadEventHashesOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type StoredEventBytes,
  type StoredEventRangeOptions,
  type SubscribeToAllOptions,
  type Subscription,
} from '../event-store.ts';
import { ChangeListener } from './change-listener.ts';
import { GroupCommitWriter } from './group-commit.ts';
import { migrateEventStore } from './migrations.ts';
import {
  exclusiveLowerBound,
  firstAtOrAfter,
  lastAtOrBefore,
  maxStoredPosition,
  positionOf,
} from './positions.ts';
import { EventReader, keepJsonText } from './scan.ts';
import { readStoredRange } from './stored-events.ts';
import { openSubscription } from './subscription.ts';
import {
  encodeEvents,
  validateExpectedRevision,
  validateReadAllOptions,
  validateReadEventHashesOptions,
  validateReadStreamOptions,
  validateStoredEventRangeOptions,
  validateStreamName,
} from './validation.ts';

export { EventStoreMigrationError, migrateEventStore } from './migrations.ts';

export interface PostgresEventStoreOptions {
  /**
   * The bound on every operation that needs the database: connecting, an append (queueing
   * included), one read page, a ping. Past it, `EventStoreUnavailableError`.
   */
  readonly timeoutMs: number;
  readonly logger?: Logger;
  /** Connections for reads and subscriptions (appends have their own one). Default 10. */
  readonly readConnections?: number;
  /** How long a live subscription waits for a notification before reading anyway. Default 1000. */
  readonly pollIntervalMs?: number;
  /** Most appends written by one transaction. Default 500. */
  readonly maxBatchAppends?: number;
  /** Soft bound on the JSON bytes one transaction writes. Default 16 MiB. */
  readonly maxBatchBytes?: number;
  /** Positions read per query by reads and subscriptions. Default 500. */
  readonly pageSize?: number;
  /** A subscription checkpoint every this many considered events. Default 32, as EventStoreDB. */
  readonly checkpointInterval?: number;
}

export interface PostgresEventStore extends EventStore {
  readonly kind: 'postgres';
  readonly reportsWrites: true;
  readEventHashes(options: ReadEventHashesOptions): Promise<HashedEventPage>;
  readStoredEvents(
    options: StoredEventRangeOptions,
    visit: (event: StoredEventBytes) => void,
  ): Promise<number>;
  /** Transactions committed by this process's appends and the appends they carried. */
  readonly appendStats: { readonly transactions: number; readonly appends: number };
}

const postgresUrlPattern = /^postgres(ql)?:\/\//;

/**
 * Connects to the database at `url`, applies pending event-store migrations (safe when several
 * processes open at once) and returns the store. Throws `EventStoreUnavailableError` when the
 * database cannot be reached within `timeoutMs`, `EventStoreMigrationError` when a migration fails.
 */
export const openPostgresEventStore = async (
  url: string,
  options: PostgresEventStoreOptions,
): Promise<PostgresEventStore> => {
  if (!postgresUrlPattern.test(url)) throw new TypeError('url must be a postgres:// or postgresql:// URL');
  const { timeoutMs } = options;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0)
    throw new TypeError('timeoutMs must be a positive integer');
  const applied = await migrateEventStore(url, { timeoutMs });
  if (applied.length > 0) options.logger?.info({ migrations: applied }, 'event-store migrations applied');

  const poolConfig = (max: number, role: string): pg.PoolConfig => ({
    connectionString: url,
    max,
    connectionTimeoutMillis: timeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: `calltrail event store ${role}`,
    types: keepJsonText,
    // Server-side bounds matching ours, so an abandoned statement or a stuck lock holder cannot
    // outlive the caller who gave up on it.
    statement_timeout: timeoutMs,
    lock_timeout: timeoutMs,
    idle_in_transaction_session_timeout: Math.max(5_000, 2 * timeoutMs),
  });
  const writerPool = new pg.Pool(poolConfig(1, 'writer'));
  const readerPool = new pg.Pool(poolConfig(options.readConnections ?? 10, 'reader'));
  // A connection that loses its server, idle or checked out between statements, must not crash the
  // process: the query in flight, or the next one, reports it.
  for (const pool of [writerPool, readerPool]) {
    pool.on('error', () => {});
    pool.on('connect', (client) => client.on('error', () => {}));
  }

  const writer = new GroupCommitWriter(writerPool, {
    timeoutMs,
    maxBatchAppends: options.maxBatchAppends ?? 500,
    maxBatchBytes: options.maxBatchBytes ?? 16 * 1024 * 1024,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const reader = new EventReader(readerPool, timeoutMs);
  const listener = new ChangeListener(url, timeoutMs);
  const subscriptions = new Set<Subscription>();
  const pageSize = options.pageSize ?? 500;
  const subscriptionSettings = {
    pageSize,
    checkpointInterval: options.checkpointInterval ?? 32,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
  };
  let closed = false;

  async function* readStream(
    streamName: string,
    readOptions?: ReadStreamOptions,
  ): AsyncGenerator<RecordedEvent> {
    validateStreamName(streamName);
    const { fromRevision, maxCount, direction } = validateReadStreamOptions(readOptions);
    let next = fromRevision;
    let remaining = maxCount;
    while (remaining > 0) {
      const limit = Math.min(pageSize, remaining);
      const page = await reader.streamPage(streamName, direction, next, limit);
      for (const event of page) yield event;
      remaining -= page.length;
      const last = page.at(-1);
      if (last === undefined || page.length < limit) return;
      next = direction === 'forwards' ? last.revision + 1n : last.revision - 1n;
      if (next < 0n) return;
    }
  }

  async function* readAll(readOptions: ReadAllOptions): AsyncGenerator<RecordedEvent> {
    const { from, streamPrefixes, maxCount, direction } = validateReadAllOptions(readOptions);
    let bound = direction === 'forwards' ? firstAtOrAfter(from) : lastAtOrBefore(from);
    let remaining = maxCount;
    while (bound !== undefined && remaining > 0) {
      const window = await reader.window(direction, bound, streamPrefixes, pageSize);
      for (const { event } of window) {
        if (event === undefined) continue;
        yield event;
        remaining -= 1;
        if (remaining === 0) return;
      }
      const last = window.at(-1);
      if (last === undefined || window.length < pageSize) return;
      bound = direction === 'forwards' ? last.position + 1n : last.position - 1n;
      if (bound < 0n) return;
    }
  }

  const readEventHashes = async (hashOptions: ReadEventHashesOptions): Promise<HashedEventPage> => {
    const { after, streamPrefixes, limit } = validateReadEventHashesOptions(hashOptions);
    const bound = exclusiveLowerBound(after);
    if (bound >= maxStoredPosition) return { events: noHashedEvents, lookedAt: undefined, reachedEnd: true };
    const window = await reader.hashWindow(bound, streamPrefixes, limit);
    return {
      events: window.events,
      lookedAt: window.lookedAt === undefined ? undefined : positionOf(window.lookedAt),
      reachedEnd: window.positions < limit,
    };
  };

  const readStoredEvents = async (
    rangeOptions: StoredEventRangeOptions,
    visit: (event: StoredEventBytes) => void,
  ): Promise<number> => {
    const { after, last, streamPrefixes } = validateStoredEventRangeOptions(rangeOptions);
    const upper = lastAtOrBefore(last);
    const lower = exclusiveLowerBound(after);
    if (upper === undefined || upper <= lower) return 0;
    return readStoredRange(readerPool, timeoutMs, { lower, upper, streamPrefixes }, visit);
  };

  const store: PostgresEventStore = {
    kind: 'postgres',
    reportsWrites: true,
    get appendStats() {
      return { ...writer.stats };
    },

    append: async (streamName, events, expectedRevision) => {
      if (closed) throw new EventStoreUnavailableError('the event store is closed');
      return writer.append({
        streamName: validateStreamName(streamName),
        events: encodeEvents(events),
        expected: validateExpectedRevision(expectedRevision),
      });
    },

    readStream,
    readAll,
    readEventHashes,
    readStoredEvents,

    subscribeToAll: (subscribeOptions: SubscribeToAllOptions) => {
      const subscription = openSubscription(
        reader,
        listener,
        subscribeOptions,
        subscriptionSettings,
        (ended) => subscriptions.delete(ended),
      );
      if (closed) void subscription.close();
      else subscriptions.add(subscription);
      return subscription;
    },

    ping: async () => {
      await reader.query('SELECT 1', [], 'ping');
    },

    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.all([...subscriptions].map((subscription) => subscription.close()));
      await writer.close();
      await listener.close();
      await Promise.all([writerPool.end(), readerPool.end()]);
    },
  };
  return store;
};
