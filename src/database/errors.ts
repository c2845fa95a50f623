/**
 * What a PostgreSQL (or network) failure means to calltrail: the database is out of reach and the
 * caller should answer "unavailable, retry later"; or the values a statement carried were refused,
 * so the same statement will fail again.
 */

/** SQLSTATEs that say the server cannot serve us now, as opposed to a bug in what we sent. */
const unavailableStates = new Set([
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
  '55P03', // lock_not_available: lock_timeout while another process holds a lock
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

/** The SQLSTATE or Node error code an error carries, if any. */
export const errorCode = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

const saysUnavailable = (error: unknown): boolean => {
  const code = errorCode(error);
  if (code !== undefined) {
    if (unavailableStates.has(code) || networkCodes.has(code)) return true;
    if (code.length === 5 && unavailableClasses.includes(code.slice(0, 2))) return true;
  }
  const message = error instanceof Error ? error.message : '';
  return lostConnectionMessages.some((text) => message.includes(text));
};

/**
 * Whether the error says the database is out of reach (down, restarting, out of connections, a
 * lock or statement timeout): worth answering "retry later" rather than reporting a bug. Looks
 * into the errors it wraps (`cause`, as the query builder does) and each of an `AggregateError`'s.
 */
export const isDatabaseUnavailable = (error: unknown, depth = 0): boolean => {
  if (depth > 5 || error === null || error === undefined) return false;
  if (error instanceof AggregateError && error.errors.some((each) => isDatabaseUnavailable(each, depth + 1)))
    return true;
  if (saysUnavailable(error)) return true;
  return error instanceof Error && isDatabaseUnavailable(error.cause, depth + 1);
};

/**
 * The statement failed because of the values it carried (data exceptions, constraint violations):
 * the same statement will fail again. Anything else (connection lost, server shutting down, lock
 * timeout) is worth retrying.
 */
export const isDataError = (error: unknown): boolean => {
  const code = errorCode(error);
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'));
};

/** One line for a log or a dead letter: the SQLSTATE, if any, and the message, bounded. */
export const describeError = (error: unknown): string => {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  return (code === undefined ? message : `${code}: ${message}`).slice(0, 2000);
};
