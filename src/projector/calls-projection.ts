/**
 * The `calls` projection: the `calls` rows (see `projections/calls.ts`) and the `terminations` they
 * feed, written in the same transaction so the export always agrees with the call history.
 */
import type pg from 'pg';
import {
  applyCallEvent,
  renderCall,
  type CallFold,
  type CallFoldState,
  type CallRow,
} from '../../projections/calls.ts';
import { terminationOfCall, type TerminationRow } from '../../projections/terminations.ts';
import type { Projection, RejectedEvent } from './projection.ts';
import {
  bigintText,
  describeError,
  isoOrNull,
  unnestInsert,
  updateAllOnConflict,
  type UnnestColumn,
} from './sql.ts';

const callColumns: readonly UnnestColumn<CallRow>[] = [
  { name: 'call_id', type: 'text', value: (row) => row.callId },
  { name: 'caller', type: 'text', value: (row) => row.caller },
  { name: 'assistant', type: 'text', value: (row) => row.assistant },
  { name: 'first_event_at', type: 'timestamptz', value: (row) => isoOrNull(row.firstEventAt) },
  { name: 'last_event_at', type: 'timestamptz', value: (row) => isoOrNull(row.lastEventAt) },
  { name: 'status', type: 'text', value: (row) => row.status },
  { name: 'outcome', type: 'text', value: (row) => row.outcome },
  { name: 'ended_reason', type: 'text', value: (row) => row.endedReason },
  { name: 'debugging_artifact', type: 'text', value: (row) => row.debuggingArtifact },
  { name: 'started_at', type: 'timestamptz', value: (row) => isoOrNull(row.startedAt) },
  { name: 'ended_at', type: 'timestamptz', value: (row) => isoOrNull(row.endedAt) },
  { name: 'duration_seconds', type: 'float8', value: (row) => row.durationSeconds },
  { name: 'event_count', type: 'int4', value: (row) => row.eventCount },
  { name: 'last_revision', type: 'int8', value: (row) => bigintText(row.lastRevision) },
  { name: 'last_commit_position', type: 'numeric', value: (row) => bigintText(row.lastCommitPosition) },
  { name: 'last_prepare_position', type: 'numeric', value: (row) => bigintText(row.lastPreparePosition) },
  { name: 'fold_state', type: 'json', value: (row) => JSON.stringify(row.foldState) },
];

const terminationColumns: readonly UnnestColumn<TerminationRow>[] = [
  { name: 'call_id', type: 'text', value: (row) => row.callId },
  { name: 'outcome', type: 'text', value: (row) => row.outcome },
  { name: 'ended_reason', type: 'text', value: (row) => row.endedReason },
  { name: 'debugging_artifact', type: 'text', value: (row) => row.debuggingArtifact },
  { name: 'started_at', type: 'timestamptz', value: (row) => isoOrNull(row.startedAt) },
  { name: 'ended_at', type: 'timestamptz', value: (row) => row.endedAt.toISOString() },
  { name: 'duration_seconds', type: 'float8', value: (row) => row.durationSeconds },
  { name: 'caller', type: 'text', value: (row) => row.caller },
  { name: 'assistant', type: 'text', value: (row) => row.assistant },
  { name: 'last_commit_position', type: 'numeric', value: (row) => bigintText(row.lastCommitPosition) },
  { name: 'last_prepare_position', type: 'numeric', value: (row) => bigintText(row.lastPreparePosition) },
];

// The stored revision is the guard of last resort: a row never moves back to an older state.
const upsertCalls = updateAllOnConflict(
  'call_id',
  callColumns,
  'calls.last_revision < excluded.last_revision',
);
const upsertTerminations = updateAllOnConflict('call_id', terminationColumns);

interface StoredCallRow {
  call_id: string;
  event_count: number;
  last_revision: string;
  last_commit_position: string;
  last_prepare_position: string;
  fold_state: CallFoldState;
}

// Every other column is a rendering of `fold_state`, so only it and the bookkeeping are read back.
const fromStored = (row: StoredCallRow): CallFold => ({
  callId: row.call_id,
  foldState: row.fold_state,
  eventCount: row.event_count,
  lastRevision: BigInt(row.last_revision),
  lastCommitPosition: BigInt(row.last_commit_position),
  lastPreparePosition: BigInt(row.last_prepare_position),
});

const loadCalls = async (
  client: pg.ClientBase,
  callIds: readonly string[],
): Promise<Map<string, CallFold>> => {
  const { rows } = await client.query<StoredCallRow>(
    `SELECT call_id, event_count, last_revision::text, last_commit_position::text, last_prepare_position::text, fold_state
     FROM calls WHERE call_id = ANY($1::text[])`,
    [callIds],
  );
  return new Map(rows.map((row) => [row.call_id, fromStored(row)]));
};

export const callsProjection: Projection = {
  name: 'calls',
  tables: ['calls', 'terminations'],
  apply: async (client, events) => {
    const stored = await loadCalls(client, [...new Set(events.map((event) => event.callId))]);
    // Folded event by event, rendered once per call at the end.
    const folds = new Map<string, CallFold>(stored);
    const rejected: RejectedEvent[] = [];
    for (const event of events) {
      try {
        folds.set(event.callId, applyCallEvent(folds.get(event.callId), event));
      } catch (error) {
        rejected.push({ eventId: event.eventId, error: describeError(error) });
      }
    }
    const changed = [...folds.values()].flatMap((fold) =>
      stored.get(fold.callId) === fold ? [] : [renderCall(fold)],
    );
    // Under the write lock nobody else adds calls rows, so the ones not loaded are plain inserts;
    // only the rest pay for conflict handling.
    const added = changed.filter((row) => !stored.has(row.callId));
    const updated = changed.filter((row) => stored.has(row.callId));
    if (added.length > 0) await client.query(unnestInsert('calls', callColumns, added, ''));
    if (updated.length > 0) await client.query(unnestInsert('calls', callColumns, updated, upsertCalls));
    const ended = changed.flatMap((row) => terminationOfCall(row) ?? []);
    if (ended.length > 0) {
      await client.query(unnestInsert('terminations', terminationColumns, ended, upsertTerminations));
    }
    return rejected;
  },
};
