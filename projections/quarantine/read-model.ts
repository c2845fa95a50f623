/**
 * Read model `quarantined_requests`: every record of the `quarantine-<day>` streams, one row each,
 * keyed by its global position, so `GET /quarantine` pages newest first on an index instead of
 * reading the streams. A row holds everything the archived-event view shows (see
 * `src/audit/archived-event-view.ts`), so the listing answers from this table alone and shows
 * exactly what reading the stream would.
 *
 * Like that view, the fold shows records that do not match the current schema as far as they can be
 * read: evidence is never dropped for its shape. The raw body is kept as bytes, so a body holding NUL
 * (which Postgres text cannot) is kept too.
 */
import { bigint, boolean, customType, json, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';
import { decodeRawBody } from '../../src/archive/archived-event.ts';
import { positionColumn } from '../../src/database/columns.ts';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { toArchivedEventView, type ArchivedEventView } from '../../src/audit/archived-event-view.ts';
import { formatPosition } from '../../src/event-store/event-store.ts';

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

export const quarantinedRequests = pgTable(
  'quarantined_requests',
  {
    commitPosition: positionColumn('commit_position').notNull(),
    preparePosition: positionColumn('prepare_position').notNull(),
    eventId: text('event_id').notNull(),
    streamName: text('stream_name').notNull(),
    streamRevision: bigint('stream_revision', { mode: 'bigint' }).notNull(),
    eventType: text('event_type').notNull(),
    /** As the reception metadata says, exactly; null when the record has none. */
    receivedAt: text('received_at'),
    /** When the event store wrote the record. */
    storedAt: timestamp('stored_at', { withTimezone: true, precision: 3 }).notNull(),
    signatureVerified: boolean('signature_verified'),
    /** The reception metadata as stored. */
    reception: json('reception').$type<Record<string, unknown>>().notNull(),
    /** The data as stored, without the raw body. */
    data: json('data').$type<Record<string, unknown>>().notNull(),
    rawBody: bytea('raw_body'),
    /** How the view spells `raw_body`: `utf8` (the bytes were valid UTF-8) or `base64`. */
    rawBodyEncoding: text('raw_body_encoding').$type<'utf8' | 'base64'>(),
  },
  (table) => [primaryKey({ columns: [table.commitPosition, table.preparePosition] })],
);
export type QuarantinedRequestRow = typeof quarantinedRequests.$inferSelect;

/** The row a quarantine record becomes. Pure. */
export const quarantinedRequestRow = (recorded: RecordedEvent): QuarantinedRequestRow => {
  const view = toArchivedEventView(recorded);
  return {
    commitPosition: recorded.position.commit,
    preparePosition: recorded.position.prepare,
    eventId: view.eventId,
    streamName: view.stream,
    streamRevision: recorded.revision,
    eventType: view.eventType,
    receivedAt: view.receivedAt,
    storedAt: recorded.created,
    signatureVerified: view.signatureVerified,
    reception: view.reception,
    data: view.data,
    rawBody:
      view.rawBody === null || view.rawBodyEncoding === null
        ? null
        : decodeRawBody({ rawBody: view.rawBody, rawBodyEncoding: view.rawBodyEncoding }),
    rawBodyEncoding: view.rawBodyEncoding,
  };
};

/** What `GET /quarantine` shows of a row: the archived-event view of the record it came from. */
export const quarantinedRequestView = (row: QuarantinedRequestRow): ArchivedEventView => ({
  position: formatPosition({ commit: row.commitPosition, prepare: row.preparePosition }),
  stream: row.streamName,
  revision: Number(row.streamRevision),
  eventId: row.eventId,
  eventType: row.eventType,
  receivedAt: row.receivedAt,
  storedAt: row.storedAt.toISOString(),
  signatureVerified: row.signatureVerified,
  reception: row.reception,
  data: row.data,
  rawBody:
    row.rawBody === null || row.rawBodyEncoding === null ? null : row.rawBody.toString(row.rawBodyEncoding),
  rawBodyEncoding: row.rawBody === null ? null : row.rawBodyEncoding,
});
