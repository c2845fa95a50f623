/**
 * Checkpoints and the per-projection locks.
 *
 * A checkpoint is the position after which a projection's subscription resumes: every matching
 * event at or before it is reflected in the read model. It is written in the transaction that
 * changes the read model, and that transaction first checks it still holds the value the runner
 * started from, so a second writer (another process, or a rebuild that swapped the tables in) makes
 * the batch roll back instead of applying twice.
 *
 * Two advisory locks per projection, keyed by (class, hashtext(name)):
 * - `leader`, a session lock: only its holder runs the projection; other processes stand by and
 *   take over when its session ends (the process died, or its connection was lost);
 * - `write`, taken by every read-model transaction: a rebuild holds it while it catches up its
 *   shadow tables for the last time and swaps them in, so no batch interleaves with the swap.
 */
import type pg from 'pg';
import { comparePositions, formatPosition, type GlobalPosition } from '../event-store/event-store.ts';
import { bigintText } from '../database/sql.ts';

const lockClasses = { leader: 0x43_54_01, write: 0x43_54_02, rebuild: 0x43_54_03 } as const;
export type LockKind = keyof typeof lockClasses;

/** The SQL arguments of `pg_*advisory*lock(int, int)` for this projection's lock of that kind. */
export const lockArguments = (kind: LockKind, projection: string): [number, string] => [
  lockClasses[kind],
  projection,
];
const lockCall = (fn: string) => `SELECT ${fn}($1::int, hashtext($2)) AS locked`;

export const tryLock = async (
  client: pg.ClientBase,
  kind: LockKind,
  projection: string,
): Promise<boolean> => {
  const { rows } = await client.query<{ locked: boolean }>(
    lockCall('pg_try_advisory_lock'),
    lockArguments(kind, projection),
  );
  return rows[0]?.locked === true;
};

/** Within a transaction: waits for the lock, released at commit or rollback. */
export const lockForTransaction = async (
  client: pg.ClientBase,
  kind: LockKind,
  projection: string,
): Promise<void> => {
  await client.query(lockCall('pg_advisory_xact_lock'), lockArguments(kind, projection));
};

/**
 * The same as SQL text without parameters, so it can share a round trip with `BEGIN` (a simple
 * query may hold several statements; a parameterized one may not).
 */
export const lockForTransactionStatement = (
  client: pg.ClientBase,
  kind: LockKind,
  projection: string,
): string =>
  `SELECT pg_advisory_xact_lock(${lockClasses[kind]}, hashtext(${client.escapeLiteral(projection)}))`;

interface StoredCheckpoint {
  commit_position: string;
  prepare_position: string;
}

const toPosition = (row: StoredCheckpoint | undefined): GlobalPosition | undefined =>
  row === undefined
    ? undefined
    : { commit: BigInt(row.commit_position), prepare: BigInt(row.prepare_position) };

export const loadCheckpoint = async (
  client: pg.ClientBase | pg.Pool,
  projection: string,
): Promise<GlobalPosition | undefined> => {
  const { rows } = await client.query<StoredCheckpoint>(
    'SELECT commit_position::text, prepare_position::text FROM projection_checkpoints WHERE projection = $1',
    [projection],
  );
  return toPosition(rows[0]);
};

/** The checkpoint moved under us: another writer applied (or a rebuild swapped in) what we were about to. */
export class CheckpointMovedError extends Error {
  override readonly name = 'CheckpointMovedError';
}

export const samePosition = (a: GlobalPosition | undefined, b: GlobalPosition | undefined): boolean =>
  a === undefined || b === undefined ? a === b : comparePositions(a, b) === 0;

export const laterPosition = (a: GlobalPosition | undefined, b: GlobalPosition | undefined) =>
  a === undefined ? b : b === undefined ? a : comparePositions(a, b) >= 0 ? a : b;

/**
 * Within a transaction holding the `write` lock: moves the checkpoint from `expected` to `next`,
 * or throws `CheckpointMovedError` (and the caller rolls back) when it no longer is `expected`.
 * Checked at the end rather than the start: it saves a round trip per batch, and under the lock
 * nothing can change in between.
 */
export const advanceCheckpoint = async (
  client: pg.ClientBase,
  projection: string,
  expected: GlobalPosition | undefined,
  next: GlobalPosition,
  now: Date,
): Promise<void> => {
  const values = [projection, bigintText(next.commit), bigintText(next.prepare), now.toISOString()];
  const result =
    expected === undefined
      ? await client.query(
          `INSERT INTO projection_checkpoints (projection, commit_position, prepare_position, updated_at)
           VALUES ($1, $2::numeric, $3::numeric, $4) ON CONFLICT (projection) DO NOTHING`,
          values,
        )
      : await client.query(
          `UPDATE projection_checkpoints SET commit_position = $2::numeric, prepare_position = $3::numeric, updated_at = $4
           WHERE projection = $1 AND commit_position = $5::numeric AND prepare_position = $6::numeric`,
          [...values, bigintText(expected.commit), bigintText(expected.prepare)],
        );
  if (result.rowCount !== 1) {
    const stored = await loadCheckpoint(client, projection);
    throw new CheckpointMovedError(
      `checkpoint of ${projection} is ${stored === undefined ? 'unset' : formatPosition(stored)}, ` +
        `expected ${expected === undefined ? 'unset' : formatPosition(expected)}`,
    );
  }
};

export const saveCheckpoint = async (
  client: pg.ClientBase,
  projection: string,
  position: GlobalPosition,
  now: Date,
): Promise<void> => {
  await client.query(
    `INSERT INTO projection_checkpoints (projection, commit_position, prepare_position, updated_at)
     VALUES ($1, $2::numeric, $3::numeric, $4)
     ON CONFLICT (projection) DO UPDATE SET
       commit_position = excluded.commit_position,
       prepare_position = excluded.prepare_position,
       updated_at = excluded.updated_at`,
    [projection, bigintText(position.commit), bigintText(position.prepare), now.toISOString()],
  );
};
