/**
 * Read model `terminations`: one row per ended call, the source of the CSV export.
 */
import { doublePrecision, index, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { positionColumn } from '../src/database/columns.ts';

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
  },
  (table) => [
    index('terminations_ended_at_idx').on(table.endedAt, table.callId),
    index('terminations_assistant_idx').on(table.assistant, table.endedAt),
  ],
);
export type TerminationRow = typeof terminations.$inferSelect;
