/**
 * Reaching the read-model database from the audit API. A query that cannot reach PostgreSQL (down,
 * restarting, out of connections) fails with `UnavailableError` (a 503 with `Retry-After` over
 * HTTP, as the event store does) rather than an error that reads like a bug; any other failure
 * passes through.
 */
import { isDatabaseUnavailable } from '../database/errors.ts';
import { UnavailableError } from '../errors.ts';

export const readModelsUnavailableRetrySeconds = 5;

/** Runs a read-model query, turning "cannot reach the database" into an `UnavailableError`. */
export const fromReadModels = async <T>(query: () => Promise<T>): Promise<T> => {
  try {
    return await query();
  } catch (error) {
    if (isDatabaseUnavailable(error)) {
      throw new UnavailableError(
        'the read-model database is unavailable; retry later',
        readModelsUnavailableRetrySeconds,
        { cause: error },
      );
    }
    throw error;
  }
};
