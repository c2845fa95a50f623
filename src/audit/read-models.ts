/**
 * Reaching the read-model database from the audit API. A query that cannot reach PostgreSQL (down,
 * restarting, out of connections) answers 503 with `Retry-After`, as the event store does, rather
 * than a 500 that reads like a bug; any other failure stays a 500.
 */
import { isDatabaseUnavailable } from '../database/errors.ts';
import { serviceUnavailable } from '../http/problem.ts';

export const readModelsUnavailableRetrySeconds = 5;

/** Runs a read-model query, turning "cannot reach the database" into a 503. */
export const fromReadModels = async <T>(query: () => Promise<T>): Promise<T> => {
  try {
    return await query();
  } catch (error) {
    if (isDatabaseUnavailable(error)) {
      throw serviceUnavailable(
        'the read-model database is unavailable; retry later',
        readModelsUnavailableRetrySeconds,
      );
    }
    throw error;
  }
};
