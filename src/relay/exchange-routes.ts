/**
 * `GET /assistant-requests/relay-exchanges`: the relay exchanges of requests that name no call (an
 * `assistant-request` is sent before the call has an id, so it is in no call's timeline), newest
 * first, from the `assistant_request_exchanges` read model, paged by global position.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { and, gte, lt, sql } from 'drizzle-orm';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { auditSecurity, problemResponses } from '../audit/api-docs.ts';
import {
  IsoDateTime,
  Limit,
  PositionText,
  parseLimit,
  parsePositionParameter,
  parseTimeRange,
} from '../audit/parameters.ts';
import { fromReadModels } from '../audit/read-models.ts';
import type { ReadModelDb } from '../database/database.ts';
import type { GlobalPosition } from '../event-store/event-store.ts';
import { newestFirst, positionPage, storedBefore } from '../audit/position-pages.ts';
import {
  assistantRequestExchanges,
  type AssistantRequestExchangeRow,
} from '../../projections/call-timeline/assistant-request-exchanges.ts';
import { RelayExchangeView, toRelayExchangeView } from './exchange-queries.ts';

const ExchangesQuery = Type.Object(
  {
    outcome: Type.Optional(
      Type.Union([Type.Literal('answered'), Type.Literal('failed')], {
        description: 'Only answered exchanges, or only failed ones',
      }),
    ),
    from: Type.Optional(IsoDateTime('Forwarded at or after (ISO 8601 with zone)')),
    to: Type.Optional(IsoDateTime('Forwarded before (exclusive)')),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(
      PositionText('`nextCursor` of the previous page: exchanges stored before this position follow'),
    ),
  },
  { additionalProperties: false },
);

const AssistantRequestExchangeView = Type.Object({
  ...RelayExchangeView.properties,
  stream: Type.String({ description: 'The per-day stream holding the request and its exchange' }),
});

const ExchangesPage = Type.Object({
  exchanges: Type.Array(AssistantRequestExchangeView),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: 'Pass as `cursor` for the next (older) page; null on the last page',
  }),
});

export interface AssistantRequestExchangeFilter {
  readonly outcome?: 'answered' | 'failed' | undefined;
  readonly from?: Date | undefined;
  readonly to?: Date | undefined;
}

/** Up to `count` exchanges matching the filter, stored before `before` (all, without it), newest first. */
export const listAssistantRequestExchanges = (
  db: ReadModelDb,
  filter: AssistantRequestExchangeFilter,
  before: GlobalPosition | undefined,
  count: number,
): Promise<AssistantRequestExchangeRow[]> =>
  db
    .select()
    .from(assistantRequestExchanges)
    .where(
      and(
        before && storedBefore(assistantRequestExchanges, before),
        filter.outcome && sql`${assistantRequestExchanges.outcome} = ${filter.outcome}`,
        filter.from && gte(assistantRequestExchanges.startedAt, filter.from),
        filter.to && lt(assistantRequestExchanges.startedAt, filter.to),
      ),
    )
    .orderBy(...newestFirst(assistantRequestExchanges))
    .limit(count);

export const relayExchangeRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  app.get(
    '/assistant-requests/relay-exchanges',
    {
      schema: {
        summary: 'Relay exchanges of requests without a call, newest first',
        description:
          "Relay mode: what the customer's handler answered (or how it failed) for relayed requests " +
          'that name no call, such as `assistant-request`. Exchanges of a call are in `GET /calls/{callId}`.',
        tags: ['calls'],
        security: auditSecurity,
        querystring: ExchangesQuery,
        response: { 200: ExchangesPage, ...problemResponses },
      },
    },
    async (request) => {
      const limit = parseLimit(request.query.limit);
      const before = parsePositionParameter(request.query.cursor, 'querystring/cursor');
      const filter = { outcome: request.query.outcome, ...parseTimeRange(request.query) };
      // One extra row tells whether an older page exists.
      const rows = await fromReadModels(() =>
        listAssistantRequestExchanges(dependencies.database.db, filter, before, limit + 1),
      );
      const { page, nextCursor } = positionPage(rows, limit);
      request.accessCount = page.length;
      return {
        exchanges: page.map((row) => ({ ...toRelayExchangeView(row), stream: row.streamName })),
        nextCursor,
      };
    },
  );
};
