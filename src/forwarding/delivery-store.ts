/**
 * Forwarding's SQL: recording deliveries with the checkpoint, finding the deliveries due (the head
 * of each call's queue per destination), recording attempts, and each destination's state. The
 * forwarder runs these on the session holding its leader lock; the audit API's controls run theirs
 * on the pool.
 */
import type pg from 'pg';
import type { GlobalPosition, RecordedEvent } from '../event-store/event-store.ts';
import { bigintText } from '../database/sql.ts';

/** A pool, a client, or a session shared in turn (see `serialized`). */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/**
 * One session used by several loops at once, its queries one after another: a pg client must not
 * be given a query while another runs.
 */
export const serialized = (client: pg.ClientBase): Queryable => {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    query: <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => {
      const result = tail.then(() => client.query<R>(text, values));
      tail = result.catch(() => {});
      return result;
    },
  };
};

/**
 * A pool used by one component with at most `max` of its connections at once, so the component
 * leaves the rest to others (the audit API shares it) and never waits out the pool's connect bound.
 */
export const limited = (pool: Queryable, max: number): Queryable => {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => {
      if (running >= max) await new Promise<void>((resolve) => waiting.push(resolve));
      running += 1;
      try {
        return await pool.query<R>(text, values);
      } finally {
        running -= 1;
        waiting.shift()?.();
      }
    },
  };
};

export const forwarderName = 'forwarder';

export const loadForwardingCheckpoint = async (client: Queryable): Promise<GlobalPosition | undefined> => {
  const { rows } = await client.query<{ commit: string; prepare: string }>(
    `SELECT commit_position::text AS commit, prepare_position::text AS prepare
       FROM forwarding_checkpoints WHERE forwarder = $1`,
    [forwarderName],
  );
  const row = rows[0];
  return row === undefined ? undefined : { commit: BigInt(row.commit), prepare: BigInt(row.prepare) };
};

export interface DeliveryToRecord {
  readonly destination: string;
  readonly event: RecordedEvent;
  readonly callId: string | null;
}

export interface DueDelivery {
  readonly id: string;
  readonly destination: string;
  readonly eventId: string;
  readonly streamName: string;
  readonly streamRevision: bigint;
  readonly attempts: number;
  readonly roundStart: number;
  readonly nextAttemptAt: Date;
  /**
   * The next pending deliveries of the same call to the same destination, in order (at most
   * `followingLimit`): sent one after the other as each is delivered, without another look.
   */
  readonly following: readonly DueDelivery[];
}

interface DueRow {
  id: string;
  destination: string;
  event_id: string;
  stream_name: string;
  stream_revision: string;
  attempts: number;
  round_start: number;
  next_attempt_at: string;
}

const dueDeliveryOf = (row: DueRow, following: readonly DueDelivery[]): DueDelivery => ({
  id: row.id,
  destination: row.destination,
  eventId: row.event_id,
  streamName: row.stream_name,
  streamRevision: BigInt(row.stream_revision),
  attempts: row.attempts,
  roundStart: row.round_start,
  nextAttemptAt: new Date(row.next_attempt_at),
  following,
});

/** A delivery just recorded, as the dispatcher may take it up without looking it up again. */
export interface RecordedDelivery extends DueDelivery {
  /**
   * Another delivery of its call to its destination was pending when it was recorded (one recorded
   * earlier, or earlier in the same statement), so it must wait for that one.
   */
  readonly behind: boolean;
}

export interface RecordedDeliveries {
  /** How many were new, per destination. */
  readonly counts: Map<string, number>;
  /** The new ones, in archive order (what was recorded before is not repeated). */
  readonly deliveries: RecordedDelivery[];
}

/**
 * In one statement (so atomically): the deliveries (each event once per destination, whatever is
 * recorded twice) and the checkpoint `through`. Returns the new ones, each saying whether an
 * earlier delivery of its call was still pending (the statement's snapshot predates its own rows).
 */
export const recordDeliveries = async (
  client: Queryable,
  deliveries: readonly DeliveryToRecord[],
  through: GlobalPosition,
  now: Date,
): Promise<RecordedDeliveries> => {
  const column = <T>(pick: (delivery: DeliveryToRecord) => T) => deliveries.map(pick);
  const { rows } = await client.query<DueRow & { earlier_pending: boolean }>(
    `WITH checkpoint AS (
       INSERT INTO forwarding_checkpoints (forwarder, commit_position, prepare_position, updated_at)
       VALUES ($1, $2::numeric, $3::numeric, $4)
       ON CONFLICT (forwarder) DO UPDATE SET commit_position = excluded.commit_position,
         prepare_position = excluded.prepare_position, updated_at = excluded.updated_at
     ), inserted AS (
       INSERT INTO forwarding_deliveries (destination, event_id, stream_name, stream_revision,
         commit_position, prepare_position, event_type, call_id, status, next_attempt_at, recorded_at)
       SELECT d.destination, d.event_id::uuid, d.stream_name, d.revision::bigint, d.commit::numeric,
              d.prepare::numeric, d.event_type, d.call_id, 'pending', $4, $4
         FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
           WITH ORDINALITY AS d(destination, event_id, stream_name, revision, commit, prepare, event_type, call_id, n)
        ORDER BY d.n
       ON CONFLICT (destination, event_id) DO NOTHING
       RETURNING id, destination, event_id, stream_name, stream_revision, attempts, round_start,
                 next_attempt_at, commit_position, prepare_position
     )
     SELECT i.id::text, i.destination, i.event_id::text, i.stream_name, i.stream_revision::text,
            i.attempts, i.round_start, i.next_attempt_at,
            EXISTS (SELECT 1 FROM forwarding_deliveries e
                     WHERE e.status = 'pending' AND e.destination = i.destination
                       AND e.stream_name = i.stream_name) AS earlier_pending
       FROM inserted i
      ORDER BY i.commit_position, i.prepare_position, i.id`,
    [
      forwarderName,
      bigintText(through.commit),
      bigintText(through.prepare),
      now.toISOString(),
      column((d) => d.destination),
      column((d) => d.event.id),
      column((d) => d.event.streamName),
      column((d) => d.event.revision.toString()),
      column((d) => d.event.position.commit.toString()),
      column((d) => d.event.position.prepare.toString()),
      column((d) => d.event.type),
      column((d) => d.callId),
    ],
  );
  const counts = new Map<string, number>();
  const seen = new Set<string>();
  const recorded = rows.map((row): RecordedDelivery => {
    counts.set(row.destination, (counts.get(row.destination) ?? 0) + 1);
    const key = `${row.destination}\u0000${row.stream_name}`;
    const behind = row.earlier_pending || seen.has(key);
    seen.add(key);
    return { ...dueDeliveryOf(row, []), behind };
  });
  return { counts, deliveries: recorded };
};

/**
 * The deliveries that may be attempted now: per destination and stream, the earliest pending one
 * (so a call's events go in archive order), when it is due; oldest first. Each comes with the
 * pending deliveries that follow it in its call, up to `followingLimit`.
 */
export const selectDue = async (
  client: Queryable,
  destinations: readonly string[],
  now: Date,
  limit: number,
  followingLimit = 0,
): Promise<DueDelivery[]> => {
  if (destinations.length === 0 || limit <= 0) return [];
  // Oldest pending first, each only when no earlier delivery of its call to that destination is
  // pending: a walk of the pending index that stops after `limit` heads, whatever the backlog.
  const { rows } = await client.query<DueRow & { following: DueRow[] }>(
    `WITH heads AS (
       SELECT id, destination, event_id, stream_name, stream_revision, attempts, round_start,
              next_attempt_at, commit_position, prepare_position
         FROM forwarding_deliveries d
        WHERE status = 'pending' AND destination = ANY($1::text[]) AND next_attempt_at <= $2
          AND NOT EXISTS (
                SELECT 1 FROM forwarding_deliveries e
                 WHERE e.status = 'pending' AND e.destination = d.destination AND e.stream_name = d.stream_name
                   AND (e.commit_position, e.prepare_position) < (d.commit_position, d.prepare_position))
        ORDER BY commit_position, prepare_position
        LIMIT $3
     )
     SELECT h.id::text, h.destination, h.event_id, h.stream_name, h.stream_revision::text, h.attempts,
            h.round_start, h.next_attempt_at,
            (SELECT coalesce(json_agg(f ORDER BY f.commit_position, f.prepare_position), '[]'::json)
               FROM (SELECT e.id::text AS id, e.destination, e.event_id, e.stream_name,
                            e.stream_revision::text AS stream_revision, e.attempts, e.round_start,
                            e.next_attempt_at, e.commit_position, e.prepare_position
                       FROM forwarding_deliveries e
                      WHERE e.status = 'pending' AND e.destination = h.destination
                        AND e.stream_name = h.stream_name
                        AND (e.commit_position, e.prepare_position) > (h.commit_position, h.prepare_position)
                      ORDER BY e.commit_position, e.prepare_position
                      LIMIT $4) f) AS following
       FROM heads h
      ORDER BY h.commit_position, h.prepare_position`,
    [destinations, now.toISOString(), limit, followingLimit],
  );
  return rows.map((row) =>
    dueDeliveryOf(
      row,
      row.following.map((next) => dueDeliveryOf(next, [])),
    ),
  );
};

/** When the earliest pending delivery of these destinations is due; undefined when none is pending. */
export const nextDueAt = async (
  client: Queryable,
  destinations: readonly string[],
): Promise<Date | undefined> => {
  if (destinations.length === 0) return undefined;
  const { rows } = await client.query<{ at: Date | null }>(
    `SELECT min(next_attempt_at) AS at FROM forwarding_deliveries
      WHERE status = 'pending' AND destination = ANY($1::text[])`,
    [destinations],
  );
  return rows[0]?.at ?? undefined;
};

export interface AttemptRecord {
  readonly deliveryId: string;
  readonly attempt: number;
  readonly destination: string;
  readonly attemptedAt: Date;
  readonly status: number | undefined;
  readonly latencyMs: number;
  readonly error: string | undefined;
  readonly response: string | undefined;
}

export interface AttemptOutcome {
  readonly attempt: AttemptRecord;
  readonly next: {
    readonly status: 'pending' | 'delivered' | 'failed';
    readonly nextAttemptAt: Date;
    readonly finishedAt: Date | undefined;
  };
}

/**
 * Attempts, and what each makes of its delivery, in one statement however many (the ids listed
 * once more as an array, so the planner reaches them through the primary key rather than scanning
 * every pending delivery, which it otherwise does once the backlog's statistics are stale); a delivery no
 * longer at that attempt (an operator's retry got there first) keeps its state, its attempt is
 * still recorded.
 */
export const recordAttempts = async (
  client: Queryable,
  outcomes: readonly AttemptOutcome[],
): Promise<void> => {
  if (outcomes.length === 0) return;
  const column = <T>(pick: (outcome: AttemptOutcome) => T) => outcomes.map(pick);
  await client.query(
    `WITH outcome AS (
       SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::timestamptz[], $5::int[], $6::int[],
                            $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[])
         AS o(delivery_id, attempt, destination, attempted_at, status, latency_ms, error, response,
              next_status, next_attempt_at, finished_at)
     ), attempt AS (
       INSERT INTO forwarding_attempts (delivery_id, attempt, destination, attempted_at, status, latency_ms, error, response)
       SELECT delivery_id, attempt, destination, attempted_at, status, latency_ms, error, response FROM outcome
     )
     UPDATE forwarding_deliveries d SET attempts = o.attempt, status = o.next_status,
            next_attempt_at = o.next_attempt_at, finished_at = o.finished_at,
            last_status = o.status, last_error = o.error
       FROM outcome o
      WHERE d.id = ANY($1::bigint[]) AND d.id = o.delivery_id AND d.status = 'pending'
        AND d.attempts = o.attempt - 1`,
    [
      column((o) => o.attempt.deliveryId),
      column((o) => o.attempt.attempt),
      column((o) => o.attempt.destination),
      column((o) => o.attempt.attemptedAt.toISOString()),
      column((o) => o.attempt.status ?? null),
      column((o) => o.attempt.latencyMs),
      column((o) => o.attempt.error ?? null),
      column((o) => o.attempt.response ?? null),
      column((o) => o.next.status),
      column((o) => o.next.nextAttemptAt.toISOString()),
      column((o) => o.next.finishedAt?.toISOString() ?? null),
    ],
  );
};

/** One attempt and what it makes of its delivery (see `recordAttempts`). */
export const recordAttempt = (
  client: Queryable,
  attempt: AttemptRecord,
  next: AttemptOutcome['next'],
): Promise<void> => recordAttempts(client, [{ attempt, next }]);

/**
 * Outcomes written together: while `maxStatements` statements run, the outcomes that arrive wait
 * and go in the next one (at most `maxBatch` each), so the statements per second stay few however
 * many attempts end. Each `write` resolves once its outcome is committed, or rejects with the statement's error.
 */
export const createOutcomeWriter = (client: Queryable, maxBatch: number, maxStatements = 2) => {
  let queue: { outcome: AttemptOutcome; settle: (error?: Error) => void }[] = [];
  // Counted up and down in the same turn as the queue is looked at, so no outcome is left waiting.
  let flushing = 0;
  const flush = async (): Promise<void> => {
    flushing += 1;
    try {
      while (queue.length > 0) {
        const batch = queue.slice(0, maxBatch);
        queue = queue.slice(batch.length);
        try {
          await recordAttempts(
            client,
            batch.map((entry) => entry.outcome),
          );
          for (const entry of batch) entry.settle();
        } catch (error) {
          const failure =
            error instanceof Error ? error : new Error('recording attempt outcomes failed', { cause: error });
          for (const entry of batch) entry.settle(failure);
        }
      }
    } finally {
      flushing -= 1;
    }
  };
  return {
    write: (outcome: AttemptOutcome): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        queue.push({
          outcome,
          settle: (error) => (error === undefined ? resolve() : reject(error)),
        });
        // A second statement starts beside a running one (they touch different deliveries), so an
        // outcome waits for at most one statement before its own.
        if (flushing < maxStatements) void flush();
      }),
  };
};

/** A delivery that cannot be attempted at all (its event is gone from the archive): dead. */
export const failUnattemptable = async (
  client: Queryable,
  deliveryId: string,
  error: string,
  now: Date,
): Promise<void> => {
  await client.query(
    `UPDATE forwarding_deliveries SET status = 'failed', finished_at = $2, last_error = $3
      WHERE id = $1::bigint AND status = 'pending'`,
    [deliveryId, now.toISOString(), error],
  );
};

/** Why a delivery was cancelled: its destination is no longer configured. */
export const removedDestinationReason = 'destination no longer configured';

/**
 * Cancels the pending deliveries of every destination this forwarder has on record but is no
 * longer configured with (they would wait forever otherwise); returns how many, per destination.
 * They stay in the log, and "recover" puts them back to pending once the destination is back.
 * Every delivery's destination is on record (`ensureDestinations` runs before any is recorded), so
 * this looks only at the few removed names, through the destination index.
 */
export const cancelRemovedDestinations = async (
  client: Queryable,
  configured: readonly string[],
  now: Date,
): Promise<Map<string, number>> => {
  const { rows } = await client.query<{ destination: string; cancelled: number }>(
    `WITH cancelled AS (
       UPDATE forwarding_deliveries d SET status = 'cancelled', finished_at = $2, last_error = $3
        WHERE d.status = 'pending'
          AND d.destination IN (SELECT name FROM forwarding_destinations WHERE NOT (name = ANY($1::text[])))
       RETURNING d.destination
     )
     SELECT destination, count(*)::int AS cancelled FROM cancelled GROUP BY destination`,
    [configured, now.toISOString(), removedDestinationReason],
  );
  return new Map(rows.map((row) => [row.destination, row.cancelled]));
};

export const postpone = async (client: Queryable, deliveryId: string, until: Date): Promise<void> => {
  await client.query(
    `UPDATE forwarding_deliveries SET next_attempt_at = $2 WHERE id = $1::bigint AND status = 'pending'`,
    [deliveryId, until.toISOString()],
  );
};

export interface DestinationState {
  readonly name: string;
  readonly pausedReason: 'manual' | 'failing' | null;
  readonly pausedAt: Date | null;
  readonly consecutiveFailures: number;
  readonly probeAt: Date | null;
}

export const ensureDestinations = async (client: Queryable, names: readonly string[]): Promise<void> => {
  await client.query(
    `INSERT INTO forwarding_destinations (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING`,
    [names],
  );
};

export const loadDestinationStates = async (
  client: Queryable,
  names: readonly string[],
): Promise<Map<string, DestinationState>> => {
  const { rows } = await client.query<{
    name: string;
    paused_reason: 'manual' | 'failing' | null;
    paused_at: Date | null;
    consecutive_failures: number;
    probe_at: Date | null;
  }>(
    `SELECT name, paused_reason, paused_at, consecutive_failures, probe_at
       FROM forwarding_destinations WHERE name = ANY($1::text[])`,
    [names],
  );
  return new Map(
    rows.map((row) => [
      row.name,
      {
        name: row.name,
        pausedReason: row.paused_reason,
        pausedAt: row.paused_at,
        consecutiveFailures: row.consecutive_failures,
        probeAt: row.probe_at,
      },
    ]),
  );
};

/** A probe of a destination paused as failing is about to go out: the next one waits its interval. */
export const scheduleNextProbe = async (client: Queryable, name: string, at: Date): Promise<void> => {
  await client.query(`UPDATE forwarding_destinations SET probe_at = $2 WHERE name = $1`, [
    name,
    at.toISOString(),
  ]);
};

/** The destination answered: its failures end, and a pause for failing with them. */
export const destinationAnswered = async (client: Queryable, name: string): Promise<boolean> => {
  const { rows } = await client.query<{ resumed: boolean }>(
    `UPDATE forwarding_destinations d SET consecutive_failures = 0,
            paused_reason = CASE WHEN d.paused_reason = 'failing' THEN NULL ELSE d.paused_reason END,
            paused_at = CASE WHEN d.paused_reason = 'failing' THEN NULL ELSE d.paused_at END,
            probe_at = NULL
       FROM forwarding_destinations old
      WHERE d.name = $1 AND old.name = d.name
        AND (d.consecutive_failures > 0 OR d.paused_reason = 'failing')
      RETURNING old.paused_reason = 'failing' AS resumed`,
    [name],
  );
  return rows[0]?.resumed === true;
};

/** The destination failed once more; paused as failing once `pauseAfter` failures in a row. */
export const destinationFailed = async (
  client: Queryable,
  name: string,
  pauseAfter: number,
  probeAt: Date,
  now: Date,
): Promise<boolean> => {
  const { rows } = await client.query<{ paused: boolean }>(
    `UPDATE forwarding_destinations d SET consecutive_failures = d.consecutive_failures + 1,
            paused_reason = CASE WHEN d.paused_reason IS NULL AND d.consecutive_failures + 1 >= $2
                                 THEN 'failing' ELSE d.paused_reason END,
            paused_at = CASE WHEN d.paused_reason IS NULL AND d.consecutive_failures + 1 >= $2
                             THEN $4::timestamptz ELSE d.paused_at END,
            probe_at = CASE WHEN d.paused_reason IS NULL AND d.consecutive_failures + 1 >= $2
                            THEN $3::timestamptz ELSE d.probe_at END
       FROM forwarding_destinations old
      WHERE d.name = $1 AND old.name = d.name
      RETURNING old.paused_reason IS NULL AND d.paused_reason = 'failing' AS paused`,
    [name, pauseAfter, probeAt.toISOString(), now.toISOString()],
  );
  return rows[0]?.paused === true;
};
