/**
 * `GET /calls` (the call history, filtered and paged) and `GET /calls/:callId` (one call and its
 * timeline, from the read models, or as of a past time from its stream).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { DeliveryView, deliveriesOfCall } from '../forwarding/delivery-log.ts';
import { NotFoundError } from '../errors.ts';
import { auditSecurity, notFoundResponse, problemResponses } from './api-docs.ts';
import { callAsOf } from './call-as-of.ts';
import { RelayExchangeView, findRelayExchanges, toRelayExchangeView } from '../relay/exchange-queries.ts';
import { fromReadModels } from './read-models.ts';
import {
  CallOutcome,
  CallStatusFilter,
  CallsPageKey,
  CallView,
  TimelineEntryView,
  findCall,
  findCallTimeline,
  listCalls,
  toCallView,
  toTimelineEntryView,
} from './call-queries.ts';
import {
  CallId,
  IsoDateTime,
  Limit,
  TextFilter,
  decodeCursor,
  encodeCursor,
  parseCursorTime,
  parseLimit,
  parseDateTime,
  parseTimeRange,
} from './parameters.ts';

const ListCallsQuery = Type.Object(
  {
    from: Type.Optional(IsoDateTime('Only calls whose latest event time is at or after this')),
    to: Type.Optional(IsoDateTime('Only calls whose latest event time is before this (exclusive)')),
    status: Type.Optional(CallStatusFilter),
    outcome: Type.Optional(CallOutcome),
    caller: Type.Optional(TextFilter('The calling number, exactly (E.164, e.g. +31612345678)')),
    assistant: Type.Optional(TextFilter("The assistant's number, exactly")),
    debugInfo: Type.Optional(
      TextFilter('Text anywhere within the debugging artifact (Debug Info), case-insensitive'),
    ),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(
      Type.String({ description: 'Opaque: `nextCursor` of the previous page, with the same filters' }),
    ),
  },
  { additionalProperties: false },
);

const CallsPage = Type.Object({
  calls: Type.Array(CallView),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: 'Pass as `cursor` for the next page; null on the last page',
  }),
});

const CallParams = Type.Object({ callId: CallId });

const CallQuery = Type.Object(
  {
    asOf: Type.Optional(
      IsoDateTime(
        'Show the call as calltrail knew it at this time: only events received at or before it count',
      ),
    ),
  },
  { additionalProperties: false },
);

const CallDetail = Type.Object({
  call: CallView,
  timeline: Type.Array(TimelineEntryView),
  relayExchanges: Type.Array(RelayExchangeView, {
    description: "Relay mode: what the call's relayed requests got from the customer's handler, in order",
  }),
  asOf: Type.Union([Type.String(), Type.Null()], {
    description: 'The time the call is shown as of; null for the current read model',
  }),
  deliveries: Type.Array(DeliveryView, {
    description: "The call's events' deliveries to forwarding destinations, as they stand now",
  }),
});

const unknownCall = (callId: string, detail?: string): NotFoundError =>
  new NotFoundError(detail ?? `no call with id ${JSON.stringify(callId)}`);

export const callsRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  const { db } = dependencies.database;

  app.get(
    '/calls',
    {
      schema: {
        summary: 'List calls, most recent first',
        description:
          'Ordered by latest event time (descending), then call id. `from`/`to` select by latest event ' +
          'time, `from` inclusive, `to` exclusive. Calls without any event time come last and are ' +
          'excluded by a time filter. Paged with an opaque cursor.',
        tags: ['calls'],
        security: auditSecurity,
        querystring: ListCallsQuery,
        response: { 200: CallsPage, ...problemResponses },
      },
    },
    async (request) => {
      const query = request.query;
      const range = parseTimeRange(query);
      const key = decodeCursor(query.cursor, CallsPageKey);
      const after = key && { at: key[0] === null ? null : parseCursorTime(key[0]), callId: key[1] };
      const page = await fromReadModels(() =>
        listCalls(
          db,
          {
            ...range,
            status: query.status,
            outcome: query.outcome,
            caller: query.caller,
            assistant: query.assistant,
            debugInfo: query.debugInfo,
          },
          { limit: parseLimit(query.limit), after },
        ),
      );
      request.accessCount = page.calls.length;
      return {
        calls: page.calls.map(toCallView),
        nextCursor: page.next === undefined ? null : encodeCursor(page.next),
      };
    },
  );

  app.get(
    '/calls/:callId',
    {
      schema: {
        summary: 'One call and its timeline',
        description:
          "From the read models; with `asOf`, computed from the call's archived events received at " +
          'or before that time, through the same fold as the read model.',
        tags: ['calls'],
        security: auditSecurity,
        params: CallParams,
        querystring: CallQuery,
        response: { 200: CallDetail, ...notFoundResponse, ...problemResponses },
      },
    },
    async (request) => {
      const { callId } = request.params;
      const { asOf } = request.query;
      if (asOf !== undefined) {
        const at = parseDateTime(asOf, 'querystring/asOf')!;
        const known = await callAsOf(dependencies.eventStore, callId, at);
        if (!known) {
          throw unknownCall(
            callId,
            `no event of call ${JSON.stringify(callId)} had been received by ${at.toISOString()}`,
          );
        }
        const exchanges = await fromReadModels(() => findRelayExchanges(db, callId, at));
        return {
          call: toCallView(known.call),
          timeline: known.timeline.map(toTimelineEntryView),
          relayExchanges: exchanges.map(toRelayExchangeView),
          asOf: at.toISOString(),
          deliveries: await fromReadModels(() => deliveriesOfCall(dependencies.database.pool, callId)),
        };
      }
      const [call, timeline, exchanges, deliveries] = await fromReadModels(() =>
        Promise.all([
          findCall(db, callId),
          findCallTimeline(db, callId),
          findRelayExchanges(db, callId),
          deliveriesOfCall(dependencies.database.pool, callId),
        ]),
      );
      if (!call) throw unknownCall(callId);
      return {
        call: toCallView(call),
        timeline: timeline.map(toTimelineEntryView),
        relayExchanges: exchanges.map(toRelayExchangeView),
        asOf: null,
        deliveries,
      };
    },
  );
};
