/**
 * Operators' controls over forwarding, shared by the audit API and `calltrail deliveries`: retry one
 * delivery, retry every failed delivery of a destination since a time ("recover"), pause and resume
 * a destination. A retry starts a new round of the retry schedule; the attempt numbers go on.
 */
import type { Queryable } from './delivery-store.ts';

export type RetryOutcome = 'retrying' | 'not-found' | 'already-delivered';

export const retryDelivery = async (client: Queryable, id: string, now: Date): Promise<RetryOutcome> => {
  const { rows } = await client.query<{ status: string; retried: boolean }>(
    `WITH target AS (SELECT id, status FROM forwarding_deliveries WHERE id = $1::bigint),
          retried AS (
            UPDATE forwarding_deliveries d SET status = 'pending', round_start = d.attempts,
                   next_attempt_at = $2, finished_at = NULL
              FROM target WHERE d.id = target.id AND target.status <> 'delivered'
            RETURNING d.id)
     SELECT target.status, EXISTS (SELECT 1 FROM retried) AS retried FROM target`,
    [id, now.toISOString()],
  );
  const row = rows[0];
  if (row === undefined) return 'not-found';
  return row.retried ? 'retrying' : 'already-delivered';
};

/**
 * Puts the failed (or cancelled: see `cancelRemovedDestinations`) deliveries of `destination`
 * recorded at or after `since` back to pending, in
 * batches (so a large recovery holds no long lock), oldest first; returns how many.
 */
export const retryFailedSince = async (
  client: Queryable,
  destination: string,
  since: Date,
  now: Date,
  options: { batchSize?: number; onProgress?: (retried: number, total: number) => void } = {},
): Promise<number> => {
  const batchSize = options.batchSize ?? 1_000;
  const { rows: counted } = await client.query<{ total: number }>(
    `SELECT count(*)::int AS total FROM forwarding_deliveries
      WHERE destination = $1 AND status IN ('failed', 'cancelled') AND recorded_at >= $2`,
    [destination, since.toISOString()],
  );
  const total = counted[0]?.total ?? 0;
  let retried = 0;
  options.onProgress?.(retried, total);
  for (;;) {
    const { rowCount } = await client.query(
      `UPDATE forwarding_deliveries d SET status = 'pending', round_start = d.attempts,
              next_attempt_at = $3, finished_at = NULL
        WHERE d.id IN (SELECT id FROM forwarding_deliveries
                        WHERE destination = $1 AND status IN ('failed', 'cancelled') AND recorded_at >= $2
                        ORDER BY id LIMIT $4)`,
      [destination, since.toISOString(), now.toISOString(), batchSize],
    );
    const count = rowCount ?? 0;
    retried += count;
    options.onProgress?.(retried, Math.max(total, retried));
    if (count < batchSize) return retried;
  }
};

export const pauseDestination = async (client: Queryable, name: string, now: Date): Promise<void> => {
  await client.query(
    `INSERT INTO forwarding_destinations (name, paused_reason, paused_at) VALUES ($1, 'manual', $2)
     ON CONFLICT (name) DO UPDATE SET paused_reason = 'manual', paused_at = $2, probe_at = NULL`,
    [name, now.toISOString()],
  );
};

/** Ends a pause, manual or for failing; the failure count starts again. */
export const resumeDestination = async (client: Queryable, name: string): Promise<void> => {
  await client.query(
    `INSERT INTO forwarding_destinations (name) VALUES ($1)
     ON CONFLICT (name) DO UPDATE SET paused_reason = NULL, paused_at = NULL, probe_at = NULL,
       consecutive_failures = 0`,
    [name],
  );
};
