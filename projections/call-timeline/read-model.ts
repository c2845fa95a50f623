/**
 * Read model `call_timeline`: every archived event of every call, in event-time order. One row per
 * event, keyed by the event id, so applying an event twice changes nothing.
 */
import { bigint, boolean, index, pgTable, smallint, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { positionColumn } from '../../src/database/columns.ts';
import type { CallEvent } from '../../src/archive/call-event.ts';

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

/**
 * The row an event becomes, with its times as the normalized ISO 8601 text the event carries: what
 * the projector sends to Postgres (making Dates only to format them again costs more than the rest
 * of the row).
 */
export type TimelineRecord = Omit<CallTimelineRow, 'eventTime' | 'receivedAt'> & {
  readonly eventTime: string | null;
  readonly receivedAt: string;
};

export const timelineRecord = (event: CallEvent): TimelineRecord => ({
  eventId: event.eventId,
  callId: event.callId,
  eventType: event.eventType,
  status: event.status,
  rawStatus: event.rawStatus,
  debuggingArtifact: event.debuggingArtifact,
  endedReason: event.endedReason,
  eventTime: event.eventTime,
  receivedAt: event.receivedAt,
  signatureVerified: event.signatureVerified,
  payloadGeneration: event.payloadGeneration,
  streamRevision: event.revision,
  commitPosition: event.position.commit,
  preparePosition: event.position.prepare,
});

/** The row an event becomes, as read back from `call_timeline`. */
export const timelineEntry = (event: CallEvent): CallTimelineRow => {
  const record = timelineRecord(event);
  return {
    ...record,
    eventTime: record.eventTime === null ? null : new Date(record.eventTime),
    receivedAt: new Date(record.receivedAt),
  };
};

const distinctEvents = (events: Iterable<CallEvent>): CallEvent[] => {
  const byId = new Map<string, CallEvent>();
  for (const event of events) if (!byId.has(event.eventId)) byId.set(event.eventId, event);
  return [...byId.values()];
};

/**
 * The rows a batch adds, one per distinct event id (a redelivery inside one batch collapses). Rows
 * already stored are left alone by the writer, which is what makes a replay harmless.
 */
export const timelineEntries = (events: Iterable<CallEvent>): CallTimelineRow[] =>
  distinctEvents(events).map(timelineEntry);

/** `timelineEntries` as the projector writes them. */
export const timelineRecords = (events: Iterable<CallEvent>): TimelineRecord[] =>
  distinctEvents(events).map(timelineRecord);
