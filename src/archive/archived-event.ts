/**
 * What calltrail writes to the event store: the archived form of a Flireo server event, and of a
 * request that was authenticated but could not be accepted (quarantine). Declared once here; the
 * webhook writes these, and projections, the audit API and replay read them back.
 *
 * Every archived record keeps the exact raw body bytes as received, so the archive can always show
 * and re-send what Flireo sent, whatever our normalization made of it.
 */
import Type from 'typebox';

export const archivedEventSchemaVersion = 1;

/** Event types in the store: Flireo's own names, plus `unknown` for types Flireo may add later. */
export const CallEventType = Type.Union([
  Type.Literal('status-update'),
  Type.Literal('end-of-call-report'),
  Type.Literal('tool-calls'),
  Type.Literal('assistant-request'),
  Type.Literal('unknown'),
]);
export type CallEventType = Type.Static<typeof CallEventType>;

/** The one status vocabulary. Generation 2's `ended-with-error` is stored as `ended-with-debugging`. */
export const CallStatus = Type.Union([
  Type.Literal('in-progress'),
  Type.Literal('ended'),
  Type.Literal('ended-with-debugging'),
]);
export type CallStatus = Type.Static<typeof CallStatus>;

export const quarantinedRequestType = 'quarantined-request';

/**
 * The largest record one append may carry. EventStoreDB refuses an append over its maximum append
 * size (1 MiB by default), so every record stays under that, with room for the metadata, whichever
 * store runs, and any archive can be copied into any store. It also bounds the webhook body limit:
 * a larger body could never be archived.
 */
export const maxRecordBytes = 1_000_000;

const Nullable = <T extends Type.TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** The raw body: `utf8` when the bytes are valid UTF-8 (then the string is exact), else `base64`. */
export const RawBody = Type.Object({
  rawBody: Type.String(),
  rawBodyEncoding: Type.Union([Type.Literal('utf8'), Type.Literal('base64')]),
});

/** The data of an archived Flireo event (event types in `CallEventType`). */
export const ArchivedCallEvent = Type.Object({
  schemaVersion: Type.Literal(archivedEventSchemaVersion),
  eventType: CallEventType,
  /** The event type exactly as sent (for `unknown`, the only record of what it was). */
  rawEventType: Nullable(Type.String()),
  /** Which generation of Flireo's documentation the body follows: 1 flat, 2 envelope. */
  payloadGeneration: Type.Union([Type.Literal(1), Type.Literal(2)]),
  callId: Nullable(Type.String()),
  /** ISO 8601 UTC with milliseconds; null when the event carries no time (assistant-request). */
  eventTime: Nullable(Type.String()),
  status: Nullable(CallStatus),
  /** The status exactly as sent. */
  rawStatus: Nullable(Type.String()),
  fromCaller: Nullable(Type.String()),
  toAssistant: Nullable(Type.String()),
  debuggingArtifact: Nullable(Type.String()),
  /** Why the call ended, where Flireo says (`endedReason`, `end_reason`, ...). */
  endedReason: Nullable(Type.String()),
  durationSeconds: Nullable(Type.Number()),
  /** ISO 8601 UTC; from end-of-call reports that carry them. */
  startedAt: Nullable(Type.String()),
  endedAt: Nullable(Type.String()),
  ...RawBody.properties,
});
export type ArchivedCallEvent = Type.Static<typeof ArchivedCallEvent>;

export const Problem = Type.Object({
  /** A JSON pointer into the body (`/status`), a header name, or `body`. */
  field: Type.String(),
  message: Type.String(),
});
export type Problem = Type.Static<typeof Problem>;

/** Why an authenticated request was not accepted as an event. */
export const QuarantineReason = Type.Union([
  Type.Literal('malformed-json'),
  Type.Literal('invalid-event'),
  Type.Literal('unsupported-media-type'),
  Type.Literal('body-too-large'),
]);
export type QuarantineReason = Type.Static<typeof QuarantineReason>;

/** The data of a quarantined request: authenticated, but not accepted as an event. */
export const QuarantinedRequest = Type.Object({
  schemaVersion: Type.Literal(archivedEventSchemaVersion),
  reason: QuarantineReason,
  problems: Type.Array(Problem),
  contentType: Nullable(Type.String()),
  ...RawBody.properties,
  /**
   * `body-too-large` only: the raw body holds just the first bytes received. An oversized body is
   * never stored whole; its size and the digest of what was read stand in for it.
   */
  bodyTruncated: Type.Optional(Type.Boolean()),
  /** How many bytes were read before reading stopped (`body-too-large`). */
  receivedBytes: Type.Optional(Type.Integer({ minimum: 0 })),
  /** The Content-Length the sender declared, or null when it sent none (`body-too-large`). */
  declaredBytes: Type.Optional(Nullable(Type.Integer({ minimum: 0 }))),
  /** SHA-256, hex, of all the bytes read (`body-too-large`). */
  receivedSha256: Type.Optional(Type.String()),
});
export type QuarantinedRequest = Type.Static<typeof QuarantinedRequest>;

/** Reception metadata, stored as the event's metadata for both kinds of record. */
export const ReceptionMetadata = Type.Object({
  receivedAt: Type.String(),
  requestId: Type.String(),
  sourceAddress: Type.String(),
  signatureVerified: Type.Boolean(),
  authentication: Type.Union([Type.Literal('signature'), Type.Literal('token'), Type.Literal('none')]),
  userAgent: Nullable(Type.String()),
  /** The request's content type, so a replay re-posts the body exactly as it came. */
  contentType: Type.Optional(Nullable(Type.String())),
  /**
   * Flireo's signature material as received, so anyone holding the webhook secret can re-check,
   * years later, that the stored raw body is exactly what Flireo signed. Absent on older records.
   */
  provenance: Type.Optional(
    Type.Object({
      /** `X-Webhook-Signature`, `X-Webhook-Timestamp`, `X-Webhook-Event` exactly as sent, or null. */
      signature: Nullable(Type.String()),
      timestamp: Nullable(Type.String()),
      event: Nullable(Type.String()),
      /** For token deliveries, the name of the token that matched (never the token itself). */
      tokenName: Nullable(Type.String()),
    }),
  ),
});
export type ReceptionMetadata = Type.Static<typeof ReceptionMetadata>;

export const encodeRawBody = (body: Buffer): Type.Static<typeof RawBody> => {
  const text = body.toString('utf8');
  return Buffer.from(text, 'utf8').equals(body)
    ? { rawBody: text, rawBodyEncoding: 'utf8' }
    : { rawBody: body.toString('base64'), rawBodyEncoding: 'base64' };
};

export const decodeRawBody = ({ rawBody, rawBodyEncoding }: Type.Static<typeof RawBody>): Buffer =>
  Buffer.from(rawBody, rawBodyEncoding);
