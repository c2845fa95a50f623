/**
 * Read model `relay_exchanges` (written by the call-timeline projection, beside `call_timeline`):
 * every `relay-exchange` record of the call streams, one row each (those of requests without a call
 * are in `assistant_request_exchanges`),
 * keyed by its event id (applying it twice changes nothing): which destination a call's relayed
 * requests went to, what came back or how it failed, and what Flireo got. The call's timeline in
 * `GET /calls/:callId` shows them beside its events; integration health is a query over it.
 */
import Compile from 'typebox/compile';
import {
  bigint,
  boolean,
  doublePrecision,
  index,
  integer,
  pgTable,
  text,
  timestamp,
  uuid,
} from 'drizzle-orm/pg-core';
import { PoisonEventError } from '../../src/archive/call-event.ts';
import { callStreamPrefix } from '../../src/archive/streams.ts';
import { positionColumn } from '../../src/database/columns.ts';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { normalizeIsoDateTime } from '../../src/iso-date-time.ts';
import { RelayExchange, relayExchangeType } from '../../src/relay/exchange.ts';

/**
 * The columns of an exchange, after its key and what it belongs to: the same in `relay_exchanges` and
 * `assistant_request_exchanges` (fresh builders for each table).
 */
export const exchangeColumns = () => ({
  requestEventId: text('request_event_id').notNull(),
  requestType: text('request_type').notNull(),
  destination: text('destination').notNull(),
  /** `answered`, or `failed` with `failure` saying how. */
  outcome: text('outcome').notNull(),
  failure: text('failure'),
  failureDetail: text('failure_detail'),
  /** `destination`, `fallback` or `problem`: what Flireo got, with `answer_status`. */
  answeredWith: text('answered_with').notNull(),
  answerStatus: integer('answer_status').notNull(),
  responseStatus: integer('response_status'),
  responseContentType: text('response_content_type'),
  responseBytes: integer('response_bytes'),
  latencyMs: doublePrecision('latency_ms').notNull(),
  requestJournaled: boolean('request_journaled').notNull(),
  startedAt: timestamp('started_at', { withTimezone: true, precision: 3 }).notNull(),
  streamRevision: bigint('stream_revision', { mode: 'bigint' }).notNull(),
  commitPosition: positionColumn('commit_position').notNull(),
  preparePosition: positionColumn('prepare_position').notNull(),
});

export const relayExchanges = pgTable(
  'relay_exchanges',
  {
    eventId: uuid('event_id').primaryKey(),
    callId: text('call_id').notNull(),
    ...exchangeColumns(),
  },
  (table) => [index('relay_exchanges_call_idx').on(table.callId, table.streamRevision)],
);
export type RelayExchangeRow = typeof relayExchanges.$inferSelect;

/** The row as the projector sends it: the start time as the normalized text the record carries. */
export type RelayExchangeRecord = Omit<RelayExchangeRow, 'startedAt'> & { readonly startedAt: string };

const relayExchange = Compile(RelayExchange);

/** Whether a record of a call stream is a relay exchange (the calls projection passes these by). */
export const isRelayExchange = (recorded: RecordedEvent): boolean => recorded.type === relayExchangeType;

/** The fields every relay exchange row has, wherever its stream: all but the stream's own key. */
export type RelayExchangeFields = Omit<RelayExchangeRecord, 'callId'>;

/** Throws `PoisonEventError` for a record that is not a well-formed relay exchange. */
export const relayExchangeFields = (recorded: RecordedEvent): RelayExchangeFields => {
  const data = recorded.data;
  if (!relayExchange.Check(data)) {
    const [error] = relayExchange.Errors(data);
    throw new PoisonEventError(
      `data${error?.instancePath ?? ''}: ${error?.message ?? 'not a relay exchange'}`,
    );
  }
  const startedAt = normalizeIsoDateTime(data.startedAt);
  if (startedAt === undefined || startedAt.length !== 24) {
    throw new PoisonEventError(
      `data/startedAt: not an ISO 8601 timestamp: ${JSON.stringify(data.startedAt)}`,
    );
  }
  if (!Number.isFinite(data.latencyMs)) throw new PoisonEventError('data/latencyMs: not a finite number');
  return {
    eventId: recorded.id,
    requestEventId: data.requestEventId,
    requestType: data.requestType,
    destination: data.destination,
    outcome: data.outcome,
    failure: data.failure,
    failureDetail: data.failureDetail,
    answeredWith: data.answeredWith,
    answerStatus: data.answerStatus,
    responseStatus: data.response?.status ?? null,
    responseContentType: data.response?.contentType ?? null,
    responseBytes: data.response?.bytes ?? null,
    latencyMs: data.latencyMs,
    requestJournaled: data.requestJournaled,
    startedAt,
    streamRevision: recorded.revision,
    commitPosition: recorded.position.commit,
    preparePosition: recorded.position.prepare,
  };
};

/** Throws `PoisonEventError` for a record that is not a relay exchange of its call stream. */
export const relayExchangeRecord = (recorded: RecordedEvent): RelayExchangeRecord => {
  const callId = recorded.streamName.slice(callStreamPrefix.length);
  if (!recorded.streamName.startsWith(callStreamPrefix) || callId === '') {
    throw new PoisonEventError(`streamName: not a call stream: ${JSON.stringify(recorded.streamName)}`);
  }
  return { ...relayExchangeFields(recorded), callId };
};
