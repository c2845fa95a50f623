/**
 * One batch, exactly once: the read-model changes for a run of events, their dead letters and the
 * new checkpoint, in one transaction guarded by the old checkpoint. A poison event (one that does
 * not decode, that the fold rejects, or whose values Postgres refuses) is recorded in
 * `projection_dead_letters` and skipped; it never holds back the events after it.
 */
import type pg from 'pg';
import type { GlobalPosition, RecordedEvent } from '../event-store/event-store.ts';
import { projectionDeadLetters } from './schema.ts';
import { advanceCheckpoint, lockForTransactionStatement } from './checkpoints.ts';
import { foldsStream, type Projection, type RejectedEvent } from '../../projections/projection.ts';
import { describeError, isDataError } from '../database/errors.ts';
import { tableName, unnestColumnsOf, unnestInsert } from '../database/sql.ts';

export interface Batch {
  readonly events: readonly RecordedEvent[];
  /** The stored checkpoint this batch continues from (undefined: from the start). */
  readonly after: GlobalPosition | undefined;
  /** The checkpoint once applied: the last event's position, or a later subscription checkpoint. */
  readonly through: GlobalPosition;
}

export interface BatchOutcome {
  readonly applied: number;
  readonly deadLettered: number;
}

export interface BatchScope {
  /**
   * `transaction`: BEGIN ... COMMIT of its own. `savepoint`: inside a transaction the caller holds
   * (a rebuild's final catch-up), where the caller already has the write lock and search_path.
   */
  readonly mode: 'transaction' | 'savepoint';
  /** Schemas to resolve table names in (a rebuild's shadow schema first); default: unchanged. */
  readonly searchPath?: string;
  /**
   * Take the projection's `write` lock (default). A rebuild filling its shadow tables does not: no
   * one else writes them, and the live runner need not wait for it.
   */
  readonly writeLock?: boolean;
}

interface DeadLetter {
  readonly event: RecordedEvent;
  readonly error: string;
}

// Postgres text cannot hold NUL, and a dead letter must always be writable.
const storable = (text: string): string => text.replaceAll(String.fromCharCode(0), '\\u0000');

const deadLetterColumns = unnestColumnsOf(projectionDeadLetters, ['id']);

const recordDeadLetters = async (
  client: pg.ClientBase,
  projection: string,
  deadLetters: readonly DeadLetter[],
  now: Date,
): Promise<number> => {
  if (deadLetters.length === 0) return 0;
  const rows = deadLetters.map(({ event, error }) => ({
    projection,
    eventId: event.id,
    streamName: storable(event.streamName),
    streamRevision: event.revision,
    commitPosition: event.position.commit,
    preparePosition: event.position.prepare,
    eventType: storable(event.type),
    error: storable(error),
    recordedAt: now,
  }));
  // A replay (or a rebuild) meets the same poison again; it is recorded once.
  const result = await client.query(
    unnestInsert(
      tableName(projectionDeadLetters),
      deadLetterColumns,
      rows,
      'ON CONFLICT (projection, event_id) DO NOTHING',
    ),
  );
  return result.rowCount ?? 0;
};

const inScope = async <T>(
  client: pg.ClientBase,
  scope: BatchScope,
  projection: string,
  work: () => Promise<T>,
) => {
  const [begin, commit, rollback] =
    scope.mode === 'transaction'
      ? ['BEGIN', 'COMMIT', 'ROLLBACK']
      : [
          'SAVEPOINT projector_batch',
          'RELEASE SAVEPOINT projector_batch',
          'ROLLBACK TO SAVEPOINT projector_batch',
        ];
  // BEGIN, search_path and the write lock in one round trip: this runs once per batch.
  const opening = [begin];
  if (scope.mode === 'transaction') {
    // No waiting for the WAL flush at commit (the commit was most of a batch's cost): a crash of
    // the server may lose the last batches, but rows and checkpoint together, never one without
    // the other, so the projector just applies them again. The event store stays the durable truth.
    opening.push('SET LOCAL synchronous_commit TO off');
    if (scope.searchPath !== undefined) opening.push(`SET LOCAL search_path TO ${scope.searchPath}`);
    if (scope.writeLock ?? true) opening.push(lockForTransactionStatement(client, 'write', projection));
  }
  await client.query(opening.join('; '));
  try {
    const result = await work();
    await client.query(commit);
    return result;
  } catch (error) {
    // A failed rollback means the connection is gone; the original error says why.
    await client.query(rollback).catch(() => {});
    throw error;
  }
};

/** The batch's events of the projection's streams, decoded; the ones that do not decode, apart. */
const decodeAll = (projection: Projection, events: readonly RecordedEvent[]) => {
  const decoded: unknown[] = [];
  const rejected: DeadLetter[] = [];
  let relevant = 0;
  for (const event of events) {
    if (!foldsStream(projection, event.streamName)) continue;
    if (projection.folds !== undefined && !projection.folds(event)) continue;
    relevant += 1;
    try {
      decoded.push(projection.decode(event));
    } catch (error) {
      rejected.push({ event, error: describeError(error) });
    }
  }
  return { decoded, rejected, relevant };
};

const applyOnce = (
  client: pg.ClientBase,
  projection: Projection,
  batch: Batch,
  scope: BatchScope,
  now: Date,
  poison: readonly DeadLetter[] = [],
): Promise<BatchOutcome> =>
  inScope(client, scope, projection.name, async () => {
    const poisonIds = new Set(poison.map((deadLetter) => deadLetter.event.id));
    const { decoded, rejected, relevant } = decodeAll(
      projection,
      batch.events.filter((event) => !poisonIds.has(event.id)),
    );
    const refused: readonly RejectedEvent[] =
      decoded.length > 0 ? await projection.apply(client, decoded) : [];
    const byId = new Map(batch.events.map((event) => [event.id, event]));
    const deadLetters = [
      ...poison,
      ...rejected,
      ...refused.flatMap(({ eventId, error }) => {
        const event = byId.get(eventId);
        return event === undefined ? [] : [{ event, error }];
      }),
    ];
    const deadLettered = await recordDeadLetters(client, projection.name, deadLetters, now);
    await advanceCheckpoint(client, projection.name, batch.after, batch.through, now);
    return { applied: relevant + poison.length - deadLetters.length, deadLettered };
  });

/**
 * Applies the batch; when Postgres refuses its values, splits it in halves (and those again) to
 * find the poison, so only that event becomes a dead letter and the rest still goes in big
 * transactions. Throws `CheckpointMovedError` when another writer got there first, and any error
 * worth retrying (connection, locks) as is.
 */
export const applyBatch = async (
  client: pg.ClientBase,
  projection: Projection,
  batch: Batch,
  scope: BatchScope,
  now: Date,
): Promise<BatchOutcome> => {
  try {
    return await applyOnce(client, projection, batch, scope, now);
  } catch (error) {
    if (!isDataError(error) || batch.events.length === 0) throw error;
    if (batch.events.length === 1) {
      const [event] = batch.events as [RecordedEvent];
      return applyOnce(client, projection, batch, scope, now, [{ event, error: describeError(error) }]);
    }
  }
  const middle = Math.ceil(batch.events.length / 2);
  const firstHalf = batch.events.slice(0, middle);
  const halfway = firstHalf.at(-1)!.position;
  const first = await applyBatch(
    client,
    projection,
    { events: firstHalf, after: batch.after, through: halfway },
    scope,
    now,
  );
  const second = await applyBatch(
    client,
    projection,
    { events: batch.events.slice(middle), after: halfway, through: batch.through },
    scope,
    now,
  );
  return { applied: first.applied + second.applied, deadLettered: first.deadLettered + second.deadLettered };
};
