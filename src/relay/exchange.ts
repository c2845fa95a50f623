/**
 * The `relay-exchange` record: what calltrail's relay asked the customer's handler and what came
 * back, archived in the relayed request's own stream right after it and linked to it by the
 * request's event id. Integration failures are evidence too, so a failure is recorded with its kind
 * as carefully as an answer.
 */
import Type from 'typebox';
import { RawBody } from '../archive/archived-event.ts';

export const relayExchangeType = 'relay-exchange';
export const relayExchangeSchemaVersion = 1;

/** Every way a relayed request can fail; a bounded set, so it is also a metric label. */
export const relayFailureKinds = [
  'timeout',
  'refused',
  'connection-closed',
  'tls',
  'dns',
  'non-2xx',
  'invalid-body',
  'too-large',
  'error',
] as const;
export type RelayFailureKind = (typeof relayFailureKinds)[number];

const Nullable = <T extends Type.TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** The destination's answer as far as it was read. */
export const RelayResponse = Type.Object({
  status: Type.Integer(),
  contentType: Nullable(Type.String()),
  /** The body's length in bytes (as far as it was read, when it was cut off). */
  bytes: Type.Integer(),
  /** SHA-256 (hex) of the body bytes read. */
  sha256: Type.String(),
  /** True when the body is not kept whole here (over the archived bound, or cut off reading it). */
  bodyOmitted: Type.Boolean(),
  /** The body, when kept whole. */
  body: Type.Optional(RawBody),
});
export type RelayResponse = Type.Static<typeof RelayResponse>;

export const RelayExchange = Type.Object({
  schemaVersion: Type.Literal(relayExchangeSchemaVersion),
  /** The relayed request's event id, in the same stream. */
  requestEventId: Type.String(),
  requestType: Type.Union([Type.Literal('assistant-request'), Type.Literal('tool-calls')]),
  callId: Nullable(Type.String()),
  /** Where it was sent: scheme, host, port and path; never credentials or the query. */
  destination: Type.String(),
  /** ISO 8601 UTC: when forwarding started. */
  startedAt: Type.String(),
  /** From forwarding to the destination's last byte (or the failure). */
  latencyMs: Type.Number(),
  /** How long archiving the request took before forwarding started. */
  archiveMs: Type.Number(),
  /** Whether the request was journaled rather than stored (the store was slow or away). */
  requestJournaled: Type.Boolean(),
  outcome: Type.Union([Type.Literal('answered'), Type.Literal('failed')]),
  failure: Nullable(Type.Enum([...relayFailureKinds])),
  /** What went wrong, in words; never a body. */
  failureDetail: Nullable(Type.String()),
  response: Nullable(RelayResponse),
  /** What Flireo got: the destination's answer, the configured fallback, or a problem (502/504). */
  answeredWith: Type.Union([Type.Literal('destination'), Type.Literal('fallback'), Type.Literal('problem')]),
  answerStatus: Type.Integer(),
});
export type RelayExchange = Type.Static<typeof RelayExchange>;

export const RelayExchangeMetadata = Type.Object({
  /** ISO 8601 UTC: when the exchange ended. */
  recordedAt: Type.String(),
  /** The relayed request's request id (as in the request's reception metadata). */
  requestId: Type.String(),
});
export type RelayExchangeMetadata = Type.Static<typeof RelayExchangeMetadata>;

/** The destination as archived and shown: no user, password, query or fragment. */
export const destinationWithoutCredentials = (url: URL): string =>
  `${url.protocol}//${url.host}${url.pathname}`;
