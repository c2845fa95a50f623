/**
 * Read model `call_timeline`: every archived event of every call, in event-time order.
 */
import { bigint, boolean, index, pgTable, smallint, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { positionColumn } from '../src/database/columns.ts';

export const callTimeline = pgTable(
  'call_timeline',
  {
    eventId: uuid('event_id').primaryKey(),
    callId: text('call_id').notNull(),
    eventType: text('event_type').notNull(),
    status: text('status'),
    rawStatus: text('raw_status'),
    debuggingArtifact: text('debugging_artifact'),
    endedReason: text('ended_reason'),
    eventTime: timestamp('event_time', { withTimezone: true, precision: 3 }),
    receivedAt: timestamp('received_at', { withTimezone: true, precision: 3 }).notNull(),
    signatureVerified: boolean('signature_verified').notNull(),
    payloadGeneration: smallint('payload_generation').notNull(),
    streamRevision: bigint('stream_revision', { mode: 'bigint' }).notNull(),
    commitPosition: positionColumn('commit_position').notNull(),
    preparePosition: positionColumn('prepare_position').notNull(),
  },
  (table) => [index('call_timeline_call_idx').on(table.callId, table.eventTime, table.streamRevision)],
);
export type CallTimelineRow = typeof callTimeline.$inferSelect;
