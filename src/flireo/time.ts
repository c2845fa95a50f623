/**
 * Event times as calltrail stores them: ISO 8601 UTC with milliseconds, whatever form Flireo sent
 * (date-time text is read by `parseIsoDateTime` in `../iso-date-time.ts`).
 */

/** Epoch milliseconds (already range-checked by the schema) as ISO 8601 UTC. */
export const isoFromEpochMilliseconds = (milliseconds: number): string =>
  new Date(milliseconds).toISOString();
