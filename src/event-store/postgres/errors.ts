/**
 * Which PostgreSQL and network failures mean "the event store is unavailable", and the time bound
 * every database operation of the adapter runs under.
 */
import type pg from 'pg';
import { isDatabaseUnavailable } from '../../database/errors.ts';
import { withDeadline } from '../deadline.ts';
import { EventStoreUnavailableError } from '../event-store.ts';

/** Whether the failure means the event store cannot serve us now (see `database/errors.ts`). */
export const isUnavailable = (error: unknown): boolean =>
  error instanceof EventStoreUnavailableError ||
  (error instanceof AggregateError && error.errors.some(isUnavailable)) ||
  isDatabaseUnavailable(error);

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
