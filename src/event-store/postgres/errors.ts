/**
 * Which PostgreSQL and network failures mean "the event store is unavailable", and the time bound
 * every database operation of the adapter runs under.
 */
import type pg from 'pg';
import { withDeadline } from '../deadline.ts';
import { EventStoreUnavailableError } from '../event-store.ts';

/** SQLSTATEs that say the server cannot serve us now, as opposed to a bug in what we sent. */
const unavailableStates = new Set([
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
  '55P03', // lock_not_available: lock_timeout while another process holds the append lock
  '57014', // query_canceled: statement_timeout
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: starting up or in recovery
  '57P05', // idle_session_timeout
  '25P03', // idle_in_transaction_session_timeout
  '3D000', // invalid_catalog_name: the configured database does not exist
]);

const unavailableClasses = ['08', '28']; // connection exception, invalid authorization

const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
]);

// node-postgres reports a lost or unusable connection with plain Errors carrying only a message.
const lostConnectionMessages = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'Cannot use a pool after calling end on the pool',
  'Query read timeout',
];

const errorCode = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

export const isUnavailable = (error: unknown): boolean => {
  if (error instanceof EventStoreUnavailableError) return true;
  if (error instanceof AggregateError) return error.errors.some(isUnavailable);
  const code = errorCode(error);
  if (code !== undefined) {
    if (unavailableStates.has(code) || networkCodes.has(code)) return true;
    if (code.length === 5 && unavailableClasses.includes(code.slice(0, 2))) return true;
  }
  const message = error instanceof Error ? error.message : '';
  return lostConnectionMessages.some((text) => message.includes(text));
};

const describe = (error: unknown): string =>
  error instanceof AggregateError
    ? error.errors.map(describe).join('; ')
    : error instanceof Error
      ? error.message || error.name
      : String(error);

export const asError = (value: unknown): Error => (value instanceof Error ? value : new Error(String(value)));

/** The adapter's own failures pass through; transport failures become `EventStoreUnavailableError`. */
export const translateError = (error: unknown, doing: string): unknown =>
  error instanceof EventStoreUnavailableError
    ? error
    : isUnavailable(error)
      ? new EventStoreUnavailableError(
          `the event store database is unavailable (${doing}): ${describe(error)}`,
          {
            cause: error,
          },
        )
      : error;

export const timedOut = (doing: string, timeoutMs: number): EventStoreUnavailableError =>
  new EventStoreUnavailableError(`the event store database did not answer within ${timeoutMs} ms (${doing})`);

/**
 * Runs `operation` and rejects with `EventStoreUnavailableError` when it has not settled within
 * `timeoutMs`; `onTimeout` lets the caller abandon what is still running (e.g. drop a connection).
 */
export const withTimeout = async <T>(
  operation: Promise<T>,
  timeoutMs: number,
  doing: string,
  onTimeout?: () => void,
): Promise<T> => {
  try {
    return await withDeadline(operation, timeoutMs, () => {
      onTimeout?.();
      return timedOut(doing, timeoutMs);
    });
  } catch (error) {
    throw translateError(error, doing);
  }
};

/**
 * A pooled connection within `timeoutMs`. The pool's own `connectionTimeoutMillis` normally fires
 * first; this is the backstop, and a connection that arrives after we gave up goes straight back.
 */
export const connectWithin = (pool: pg.Pool, timeoutMs: number, doing: string): Promise<pg.PoolClient> => {
  let abandoned = false;
  const connecting = pool.connect();
  void connecting.then(
    (client) => {
      if (abandoned) client.release();
    },
    () => {},
  );
  return withTimeout(connecting, timeoutMs + 250, doing, () => {
    abandoned = true;
  });
};
