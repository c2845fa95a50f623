/**
 * How the audit API, replay's NDJSON and the CLI's JSONL show one archived event: where it sits
 * (stream, revision, lossless global position), what it is, how it was received, the normalized
 * data, and the raw body exactly as received with its encoding. One shape for call events,
 * assistant requests and quarantined requests alike.
 *
 * Records that do not match the current schema (written by a later version, or damaged) are still
 * shown: what can be read is shown, nothing is dropped.
 */
import Type from 'typebox';
import Value from 'typebox/value';
import { RawBody, ReceptionMetadata } from '../archive/archived-event.ts';
import { formatPosition, type RecordedEvent } from '../event-store/event-store.ts';
import { nullable } from './parameters.ts';

export const ArchivedEventView = Type.Object({
  position: Type.String({ description: 'Global position "<commit>/<prepare>", lossless' }),
  stream: Type.String(),
  revision: Type.Integer({ description: 'Revision within the stream, from 0' }),
  eventId: Type.String(),
  eventType: Type.String(),
  receivedAt: nullable(Type.String({ description: 'When calltrail received the request (ISO 8601 UTC)' })),
  storedAt: Type.String({ description: 'When the event store wrote it (ISO 8601 UTC)' }),
  signatureVerified: nullable(Type.Boolean()),
  reception: Type.Record(Type.String(), Type.Unknown(), {
    description: 'Reception metadata as stored (request id, source address, authentication, ...)',
  }),
  data: Type.Record(Type.String(), Type.Unknown(), {
    description: 'The normalized data as stored, without the raw body',
  }),
  rawBody: nullable(Type.String({ description: 'The request body exactly as received' })),
  rawBodyEncoding: Type.Unsafe<'utf8' | 'base64' | null>({
    type: ['string', 'null'],
    enum: ['utf8', 'base64', null],
    description: '`utf8` when the bytes were valid UTF-8 (then rawBody is exact), else `base64`',
  }),
});
export type ArchivedEventView = Type.Static<typeof ArchivedEventView>;

const asRecord = (value: unknown): Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : { value };

/** The reception metadata, when it has the stored shape. */
export const receptionOf = (event: RecordedEvent): ReceptionMetadata | undefined =>
  Value.Check(ReceptionMetadata, event.metadata) ? event.metadata : undefined;

/**
 * When calltrail received the event. Falls back to the store's write time for a record without
 * reception metadata, which is the closest thing it has.
 */
export const receivedAtOf = (event: RecordedEvent): Date => {
  const metadata = asRecord(event.metadata);
  const receivedAt =
    typeof metadata['receivedAt'] === 'string' ? new Date(metadata['receivedAt']) : undefined;
  return receivedAt && !Number.isNaN(receivedAt.getTime()) ? receivedAt : event.created;
};

/** The raw body, when the record carries one. */
export const rawBodyOf = (event: RecordedEvent): Type.Static<typeof RawBody> | undefined => {
  const data = asRecord(event.data);
  const raw = { rawBody: data['rawBody'], rawBodyEncoding: data['rawBodyEncoding'] };
  return Value.Check(RawBody, raw) ? raw : undefined;
};

export const toArchivedEventView = (event: RecordedEvent): ArchivedEventView => {
  const { rawBody: _rawBody, rawBodyEncoding: _encoding, ...data } = asRecord(event.data);
  const reception = asRecord(event.metadata);
  const raw = rawBodyOf(event);
  return {
    position: formatPosition(event.position),
    stream: event.streamName,
    revision: Number(event.revision),
    eventId: event.id,
    eventType: event.type,
    receivedAt: typeof reception['receivedAt'] === 'string' ? reception['receivedAt'] : null,
    storedAt: event.created.toISOString(),
    signatureVerified:
      typeof reception['signatureVerified'] === 'boolean' ? reception['signatureVerified'] : null,
    reception,
    data,
    rawBody: raw?.rawBody ?? null,
    rawBodyEncoding: raw?.rawBodyEncoding ?? null,
  };
};

/**
 * An event as JSON lines carry it: the view, plus the data and metadata exactly as stored (JSON text),
 * which is what the archive's seals hash, so a replay file can be verified offline against digests.
 */
export const ArchivedEventLine = Type.Object({
  ...ArchivedEventView.properties,
  storedData: Type.String({ description: 'The data exactly as stored (JSON text), as sealed' }),
  storedMetadata: Type.String({ description: 'The metadata exactly as stored (JSON text), as sealed' }),
});
export type ArchivedEventLine = Type.Static<typeof ArchivedEventLine>;

export const toArchivedEventLine = (event: RecordedEvent): ArchivedEventLine => ({
  ...toArchivedEventView(event),
  storedData: event.storedData,
  storedMetadata: event.storedMetadata,
});

/** One JSON object per line (NDJSON / JSON Lines), the form replay streams and files use. */
export const toJsonLine = (event: RecordedEvent): string => `${JSON.stringify(toArchivedEventLine(event))}\n`;
