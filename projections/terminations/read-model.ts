/**
 * Read model `terminations`: one row per ended call, the source of the CSV export. It has no
 * projection of its own: the `calls` projection renders each ended call into it (same transaction,
 * same checkpoint), so it always agrees with the `calls` table.
 */
import { getTableColumns, sql } from 'drizzle-orm';
import { doublePrecision, index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import { positionColumn } from '../../src/database/columns.ts';
import { tableName, unnestColumnsOf, unnestInsert, updateAllOnConflict } from '../../src/database/sql.ts';
import { artifactGroupSql } from '../../src/health/artifact-groups.ts';
import type { CallRow } from '../calls/read-model.ts';

export const terminations = pgTable(
  'terminations',
  {
    callId: text('call_id').primaryKey(),
    /** `ended` or `ended-with-debugging`. */
    outcome: text('outcome').notNull(),
    endedReason: text('ended_reason'),
    debuggingArtifact: text('debugging_artifact'),
    startedAt: timestamp('started_at', { withTimezone: true, precision: 3 }),
    /** The event time of the ending status (or the report's end time when that is all there is). */
    endedAt: timestamp('ended_at', { withTimezone: true, precision: 3 }).notNull(),
    durationSeconds: doublePrecision('duration_seconds'),
    caller: text('caller'),
    assistant: text('assistant'),
    lastCommitPosition: positionColumn('last_commit_position').notNull(),
    lastPreparePosition: positionColumn('last_prepare_position').notNull(),
    /**
     * The debugging artifact with its ids, numbers and times replaced by placeholders, so the same
     * failure groups together (the rule is in `src/health/artifact-groups.ts`). Computed by
     * PostgreSQL when the row is written, so health queries group without running the rule.
     */
    debuggingArtifactGroup: text('debugging_artifact_group').generatedAlwaysAs(
      sql.raw(artifactGroupSql('debugging_artifact')),
    ),
  },
  (table) => [
    index('terminations_ended_at_idx').on(table.endedAt, table.callId),
    index('terminations_assistant_idx').on(table.assistant, table.endedAt),
    // Health: failures of a period, and the figures of a period without visiting the table.
    index('terminations_failures_idx')
      .on(table.endedAt, table.debuggingArtifactGroup, table.endedReason, table.assistant)
      .where(sql`outcome = 'ended-with-debugging'`),
    // Health: the latest artifact of a failure group, as its example.
    index('terminations_failure_examples_idx')
      .on(table.debuggingArtifactGroup, table.endedAt)
      .where(sql`outcome = 'ended-with-debugging'`),
  ],
);
/** A termination as the projection writes it; the artifact group is PostgreSQL's to compute. */
export type TerminationRow = Omit<typeof terminations.$inferSelect, 'debuggingArtifactGroup'>;

/** The call's termination, or undefined while it has not ended. An ended call never un-ends. */
export const terminationOfCall = (call: CallRow): TerminationRow | undefined =>
  call.outcome === null || call.endedAt === null
    ? undefined
    : {
        callId: call.callId,
        outcome: call.outcome,
        endedReason: call.endedReason,
        debuggingArtifact: call.debuggingArtifact,
        startedAt: call.startedAt,
        endedAt: call.endedAt,
        durationSeconds: call.durationSeconds,
        caller: call.caller,
        assistant: call.assistant,
        lastCommitPosition: call.lastCommitPosition,
        lastPreparePosition: call.lastPreparePosition,
      };

const terminationColumns = unnestColumnsOf(terminations, ['debuggingArtifactGroup']);
const upsertTerminations = updateAllOnConflict(terminations.callId.name, terminationColumns);

/**
 * Writes the terminations of calls that changed, in the caller's transaction (the `calls`
 * projection's: same checkpoint). A call's termination is replaced by its latest rendering.
 */
export const writeTerminations = async (
  client: pg.ClientBase,
  rows: readonly TerminationRow[],
): Promise<void> => {
  if (rows.length === 0) return;
  await client.query(unnestInsert(tableName(terminations), terminationColumns, rows, upsertTerminations));
};

/**
 * The columns the terminations export shows, in table order: all but the projector's bookkeeping.
 */
export const terminationsExportColumns = Object.values(getTableColumns(terminations)).filter(
  (column) =>
    column !== terminations.lastCommitPosition &&
    column !== terminations.lastPreparePosition &&
    column !== terminations.debuggingArtifactGroup,
);
