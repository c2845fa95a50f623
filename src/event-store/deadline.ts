/**
 * The time bound both event-store adapters put on a call whose client cannot be told to give up:
 * the call is raced against a timer that is cancelled as soon as the call settles.
 */
/**
 * Settles with `operation`, or rejects with `onTimeout()`'s error when it has not settled within
 * `timeoutMs`. A late rejection of the abandoned operation is ignored: it has been answered.
 */
export const withDeadline = async <T>(
  operation: Promise<T>,
  timeoutMs: number,
  onTimeout: () => Error,
): Promise<T> => {
  // A plain timer, cleared on the way out: an aborted `timers/promises` sleep would build an
  // AbortError (with its stack) for every operation that finished in time.
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), timeoutMs);
  });
  try {
    return await Promise.race([operation, deadline]);
  } finally {
    clearTimeout(timer);
    operation.catch(() => {});
  }
};
