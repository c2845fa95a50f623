/**
 * Reaching the read-model database from the audit API. A query that cannot reach PostgreSQL (down,
 * restarting, out of connections) answers 503 with `Retry-After`, as the event store does, rather
 * than a 500 that reads like a bug; any other failure stays a 500.
 */
import { serviceUnavailable } from '../http/problem.ts';

// Node's socket errors, and PostgreSQL's connection-exception and operator-intervention classes.
const unreachableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);

const unreachableMessages =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/;

/** Whether the error (or one it wraps, as the query builder does) says the database is out of reach. */
export const isDatabaseUnreachable = (error: unknown): boolean => {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (unreachableCodes.has(code) || code.startsWith('08'))) return true;
    if (unreachableMessages.test(current.message)) return true;
    current = current.cause;
  }
  return false;
};

export const readModelsUnavailableRetrySeconds = 5;

/** Runs a read-model query, turning "cannot reach the database" into a 503. */
export const fromReadModels = async <T>(query: () => Promise<T>): Promise<T> => {
  try {
    return await query();
  } catch (error) {
    if (isDatabaseUnreachable(error)) {
      throw serviceUnavailable(
        'the read-model database is unavailable; retry later',
        readModelsUnavailableRetrySeconds,
      );
    }
    throw error;
  }
};
