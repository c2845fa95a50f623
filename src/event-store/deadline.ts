/**
 * The time bound both event-store adapters put on a call whose client cannot be told to give up:
 * the call is raced against a timer that is cancelled as soon as the call settles.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Settles with `operation`, or rejects with `onTimeout()`'s error when it has not settled within
 * `timeoutMs`. A late rejection of the abandoned operation is ignored: it has been answered.
 */
export const withDeadline = async <T>(
  operation: Promise<T>,
  timeoutMs: number,
  onTimeout: () => Error,
): Promise<T> => {
  const settled = new AbortController();
  const deadline = sleep(timeoutMs, undefined, { signal: settled.signal }).then(() => {
    throw onTimeout();
  });
  try {
    return await Promise.race([operation, deadline]);
  } finally {
    settled.abort();
    operation.catch(() => {});
  }
};
