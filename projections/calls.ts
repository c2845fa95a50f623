/**
 * Read model `calls`: one row per call session, its current state decided by event time.
 */
import { bigint, doublePrecision, index, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { positionColumn } from '../src/database/columns.ts';

export const calls = pgTable(
  'calls',
  {
    callId: text('call_id').primaryKey(),
    caller: text('caller'),
    assistant: text('assistant'),
    firstEventAt: timestamp('first_event_at', { withTimezone: true, precision: 3 }),
    lastEventAt: timestamp('last_event_at', { withTimezone: true, precision: 3 }),
    /** `in-progress`, `ended` or `ended-with-debugging`, as of the latest event time; null before any status. */
    status: text('status'),
    /** Set once the call has ended: `ended` or `ended-with-debugging`. An ended call stays ended. */
    outcome: text('outcome'),
    endedReason: text('ended_reason'),
    debuggingArtifact: text('debugging_artifact'),
    startedAt: timestamp('started_at', { withTimezone: true, precision: 3 }),
    endedAt: timestamp('ended_at', { withTimezone: true, precision: 3 }),
    durationSeconds: doublePrecision('duration_seconds'),
    eventCount: integer('event_count').notNull(),
    /** The stream revision of the last event applied: the guard that makes applying twice harmless. */
    lastRevision: bigint('last_revision', { mode: 'bigint' }).notNull(),
    lastCommitPosition: positionColumn('last_commit_position').notNull(),
    lastPreparePosition: positionColumn('last_prepare_position').notNull(),
  },
  (table) => [
    index('calls_last_event_at_idx').on(table.lastEventAt, table.callId),
    index('calls_first_event_at_idx').on(table.firstEventAt, table.callId),
    index('calls_status_idx').on(table.status, table.lastEventAt),
    index('calls_caller_idx').on(table.caller, table.lastEventAt),
    index('calls_assistant_idx').on(table.assistant, table.lastEventAt),
  ],
);
export type CallRow = typeof calls.$inferSelect;
