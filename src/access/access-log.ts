/**
 * The access log: who read what. Every request to a route the table marks `recorded`, made with a
 * known token (allowed or refused for its scope), becomes an `api-access` event in the stream of its
 * UTC day, `access-<YYYY-MM-DD>`, appended through the event-store port, so the sealer seals it like
 * the archive and `calltrail verify` covers it. Projections ignore these streams (none subscribes to
 * the prefix).
 *
 * Off the request's critical path: a request only puts its record in a bounded buffer; a writer
 * appends the buffer in batches, one append per day stream. A record waits a moment (`lingerMs`)
 * for others before its append, so requests made one after another (a person paging through the
 * console) share an append instead of each paying for a commit of its own. When the store fails, the records stay
 * buffered and the writer retries with backoff. When the buffer is full, a new record is dropped,
 * counted (`calltrail_access_events_total{outcome="dropped"}`) and logged: nothing is lost without
 * a trace. On close the writer gets a bounded time to write what is buffered; what remains is
 * counted and logged as dropped too.
 */
import { randomUUID } from 'node:crypto';
import Type from 'typebox';
import { Counter, Gauge } from 'prom-client';
import { accessStreamName } from '../archive/streams.ts';
import type { EventStore } from '../event-store/event-store.ts';
import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../metrics.ts';

export const accessEventType = 'api-access';

export const AccessRecord = Type.Object({
  /** When the request arrived (ISO 8601, UTC). */
  at: Type.String(),
  token: Type.String({ description: "The token's name" }),
  role: Type.String(),
  method: Type.String(),
  /** The route's pattern, e.g. `/calls/:callId`. */
  route: Type.String(),
  /** The path asked for, e.g. `/calls/abc`. */
  path: Type.String(),
  query: Type.Record(Type.String(), Type.Union([Type.String(), Type.Array(Type.String())])),
  status: Type.Integer(),
  /** Calls, events, rows or entries the answer held, when the route knows. */
  resultCount: Type.Optional(Type.Integer()),
  /** Body bytes sent, when known (not for the live event stream). */
  bytes: Type.Optional(Type.Integer()),
  sourceAddress: Type.String(),
  requestId: Type.String(),
});
export type AccessRecord = Type.Static<typeof AccessRecord>;

export interface AccessLogOptions {
  /** Records waiting to be written at most; past it, new ones are dropped (counted and logged). */
  readonly maxBuffered: number;
  /** Records per append at most. */
  readonly batchSize: number;
  /** How long the first buffered record waits for others before the append (a full batch does not wait). */
  readonly lingerMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

export const defaultAccessLogOptions: AccessLogOptions = {
  maxBuffered: 10_000,
  batchSize: 500,
  lingerMs: 200,
  retryInitialMs: 250,
  retryMaxMs: 30_000,
};

export interface AccessLog {
  record(record: AccessRecord): void;
  /** Records waiting to be written. */
  readonly buffered: number;
  /** Writes what is buffered, waiting at most `timeoutMs`; what is left is counted as dropped. */
  close(timeoutMs: number): Promise<void>;
}

interface Pending {
  readonly id: string;
  readonly record: AccessRecord;
}

export const createAccessLog = (
  dependencies: { eventStore: EventStore; logger: FastifyBaseLogger; metrics: Metrics },
  options: AccessLogOptions = defaultAccessLogOptions,
): AccessLog => {
  const { eventStore, logger, metrics } = dependencies;
  const events = new Counter({
    name: 'calltrail_access_events_total',
    help: 'Access log events by outcome: recorded (written to the store), dropped (buffer full, or not written before shutdown)',
    labelNames: ['outcome'] as const,
    registers: [metrics.registry],
  });
  const failures = new Counter({
    name: 'calltrail_access_log_append_failures_total',
    help: 'Failed appends of access log events (they stay buffered and are retried)',
    registers: [metrics.registry],
  });
  let buffer: Pending[] = [];
  new Gauge({
    name: 'calltrail_access_log_buffered_events',
    help: 'Access log events waiting to be written',
    registers: [metrics.registry],
    collect() {
      this.set(buffer.length);
    },
  });

  let writing: Promise<void> | undefined;
  let closed = false;
  let retryMs = options.retryInitialMs;
  let retryTimer: NodeJS.Timeout | undefined;
  let lingerTimer: NodeJS.Timeout | undefined;
  let droppedSinceLog = 0;

  const dropped = (count: number, reason: string) => {
    events.inc({ outcome: 'dropped' }, count);
    // One line per burst, not per record.
    if (droppedSinceLog === 0 || reason !== 'buffer full') {
      logger.error({ dropped: count, reason }, 'access log events dropped');
    }
    droppedSinceLog += count;
  };

  const writeBatch = async (): Promise<void> => {
    const batch = buffer.slice(0, options.batchSize);
    const byStream = new Map<string, Pending[]>();
    for (const pending of batch) {
      const stream = accessStreamName(new Date(pending.record.at));
      const list = byStream.get(stream) ?? [];
      list.push(pending);
      byStream.set(stream, list);
    }
    for (const [stream, pendings] of byStream) {
      // `any`: several processes append to one day's stream. Ids are fixed when the record is made,
      // so a retry after an append that did land is recognized where the store can.
      const result = await eventStore.append(
        stream,
        pendings.map((pending) => ({
          id: pending.id,
          type: accessEventType,
          data: pending.record,
          metadata: {},
        })),
        'any',
      );
      if (result.outcome !== 'appended') throw new Error(`append to ${stream}: ${result.outcome}`);
      const written = new Set(pendings);
      buffer = buffer.filter((pending) => !written.has(pending));
      events.inc({ outcome: 'recorded' }, pendings.length);
    }
  };

  const write = (): void => {
    if (lingerTimer !== undefined) {
      clearTimeout(lingerTimer);
      lingerTimer = undefined;
    }
    if (writing !== undefined || retryTimer !== undefined || buffer.length === 0) return;
    writing = (async () => {
      try {
        while (buffer.length > 0) await writeBatch();
        retryMs = options.retryInitialMs;
        if (droppedSinceLog > 0) {
          logger.info({ dropped: droppedSinceLog }, 'access log writing again');
          droppedSinceLog = 0;
        }
      } catch (error) {
        failures.inc();
        logger.warn(
          { err: error, buffered: buffer.length, retryInMs: retryMs },
          'access log append failed; retrying',
        );
        if (!closed) {
          retryTimer = setTimeout(() => {
            retryTimer = undefined;
            write();
          }, retryMs);
          retryTimer.unref();
          retryMs = Math.min(retryMs * 2, options.retryMaxMs);
        }
      } finally {
        writing = undefined;
      }
      if (!closed && retryTimer === undefined && buffer.length > 0) write();
    })();
  };

  return {
    record: (record) => {
      if (closed) return dropped(1, 'closed');
      if (buffer.length >= options.maxBuffered) return dropped(1, 'buffer full');
      buffer.push({ id: randomUUID(), record });
      if (buffer.length >= options.batchSize) write();
      else if (buffer.length === 1 && writing === undefined && retryTimer === undefined) {
        lingerTimer ??= setTimeout(write, options.lingerMs);
      }
    },
    get buffered() {
      return buffer.length;
    },
    close: async (timeoutMs) => {
      closed = true;
      if (lingerTimer !== undefined) {
        clearTimeout(lingerTimer);
        lingerTimer = undefined;
      }
      if (retryTimer !== undefined) {
        clearTimeout(retryTimer);
        retryTimer = undefined;
      }
      const deadline = Date.now() + timeoutMs;
      while (buffer.length > 0 && Date.now() < deadline) {
        if (writing !== undefined) {
          await writing;
          continue;
        }
        try {
          await writeBatch();
        } catch (error) {
          failures.inc();
          logger.warn({ err: error, buffered: buffer.length }, 'access log append failed at shutdown');
          break;
        }
      }
      if (buffer.length > 0) dropped(buffer.length, 'not written before shutdown');
      buffer = [];
    },
  };
};
