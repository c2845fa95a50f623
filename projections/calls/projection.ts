/**
 * How the `calls` projection writes: the `calls` rows (see `read-model.ts`), the `terminations` and
 * the hourly health summaries they feed, in the same transaction, so the export and the Health page
 * always agree with the call history.
 */
import type pg from 'pg';
import { describeError } from '../../src/database/errors.ts';
import { tableName, unnestColumnsOf, unnestInsert, updateAllOnConflict } from '../../src/database/sql.ts';
import { decodeCallEvent, type CallEvent } from '../../src/archive/call-event.ts';
import { callStreamPrefix } from '../../src/archive/streams.ts';
import type { Projection, RejectedEvent } from '../projection.ts';
import { isRelayExchange } from '../call-timeline/relay-exchanges.ts';
import { terminationOfCall, terminations, writeTerminations } from '../terminations/read-model.ts';
import {
  healthHourlyCalls,
  healthDailyDurations,
  healthHourlyFailures,
  writeHealthHourly,
} from '../health-hourly/read-model.ts';
import { applyCallEvent, calls, renderCall, type CallFold, type CallFoldState } from './read-model.ts';

const callsTable = tableName(calls);
const callColumns = unnestColumnsOf(calls);

// The stored revision is the guard of last resort: a row never moves back to an older state.
const upsertCalls = updateAllOnConflict(
  calls.callId.name,
  callColumns,
  `${callsTable}.${calls.lastRevision.name} < excluded.${calls.lastRevision.name}`,
);

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
     FROM ${callsTable} WHERE call_id = ANY($1::text[])`,
    [callIds],
  );
  return new Map(rows.map((row) => [row.call_id, fromStored(row)]));
};

export const callsProjection: Projection<CallEvent> = {
  name: 'calls',
  streamPrefix: callStreamPrefix,
  // Relay exchanges sit in the call streams too; the call-timeline projection folds them.
  folds: (recorded) => !isRelayExchange(recorded),
  decode: decodeCallEvent,
  tables: [
    callsTable,
    tableName(terminations),
    tableName(healthHourlyCalls),
    tableName(healthHourlyFailures),
    tableName(healthDailyDurations),
  ],
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
    if (added.length > 0) await client.query(unnestInsert(callsTable, callColumns, added, ''));
    if (updated.length > 0) await client.query(unnestInsert(callsTable, callColumns, updated, upsertCalls));
    await writeTerminations(
      client,
      changed.flatMap((row) => terminationOfCall(row) ?? []),
    );
    await writeHealthHourly(
      client,
      changed.map((row) => {
        const before = stored.get(row.callId);
        return { before: before === undefined ? undefined : renderCall(before), after: row };
      }),
    );
    return rejected;
  },
};
