/**
 * The relay exchanges of one call, from the `relay_exchanges` read model, as `GET /calls/:callId`
 * shows them beside the call's timeline.
 */
import { and, asc, eq, lte } from 'drizzle-orm';
import Type from 'typebox';
import type { ReadModelDb } from '../database/database.ts';
import { relayExchanges, type RelayExchangeRow } from '../../projections/call-timeline/relay-exchanges.ts';

const nullable = <T extends Type.TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const RelayExchangeView = Type.Object({
  eventId: Type.String(),
  requestEventId: Type.String({ description: 'The relayed request, in the timeline' }),
  requestType: Type.String({ description: 'assistant-request or tool-calls' }),
  destination: Type.String({ description: "The customer's handler (no credentials, no query)" }),
  outcome: Type.String({ description: 'answered, or failed' }),
  failure: nullable(
    Type.String({
      description: 'timeout, refused, connection-closed, tls, dns, non-2xx, invalid-body, too-large or error',
    }),
  ),
  failureDetail: nullable(Type.String()),
  answeredWith: Type.String({
    description: "What Flireo got: the destination's answer, the fallback, or a problem",
  }),
  answerStatus: Type.Integer({ description: 'The status Flireo got' }),
  responseStatus: nullable(Type.Integer({ description: "The destination's status" })),
  responseContentType: nullable(Type.String()),
  responseBytes: nullable(Type.Integer()),
  latencyMs: Type.Number({ description: "From forwarding to the destination's last byte, or the failure" }),
  requestJournaled: Type.Boolean({ description: 'The request went to the outage journal first' }),
  startedAt: Type.String({ description: 'When forwarding started (ISO 8601 UTC)' }),
  revision: Type.Integer(),
});
export type RelayExchangeView = Type.Static<typeof RelayExchangeView>;

export const toRelayExchangeView = (row: Omit<RelayExchangeRow, 'callId'>): RelayExchangeView => ({
  eventId: row.eventId,
  requestEventId: row.requestEventId,
  requestType: row.requestType,
  destination: row.destination,
  outcome: row.outcome,
  failure: row.failure,
  failureDetail: row.failureDetail,
  answeredWith: row.answeredWith,
  answerStatus: row.answerStatus,
  responseStatus: row.responseStatus,
  responseContentType: row.responseContentType,
  responseBytes: row.responseBytes,
  latencyMs: row.latencyMs,
  requestJournaled: row.requestJournaled,
  startedAt: row.startedAt.toISOString(),
  revision: Number(row.streamRevision),
});

/** A call's exchanges in stream order; with `startedBy`, only those started by then. */
export const findRelayExchanges = async (
  db: ReadModelDb,
  callId: string,
  startedBy?: Date,
): Promise<RelayExchangeRow[]> =>
  db
    .select()
    .from(relayExchanges)
    .where(
      and(
        eq(relayExchanges.callId, callId),
        startedBy === undefined ? undefined : lte(relayExchanges.startedAt, startedBy),
      ),
    )
    .orderBy(asc(relayExchanges.streamRevision));
