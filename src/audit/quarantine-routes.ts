/**
 * `GET /quarantine`: requests that were authenticated but not accepted as events (malformed JSON,
 * invalid events, unsupported media types, oversized bodies), newest first, from the `quarantine`
 * read model (so its cost does not grow with the archive). Keyset-paged by global position: the
 * cursor is the position of the last request of the previous page.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { and, gte, lt, sql } from 'drizzle-orm';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import type { ReadModelDb } from '../database/database.ts';
import type { GlobalPosition } from '../event-store/event-store.ts';
import { newestFirst, positionPage, storedAt, storedBefore } from './position-pages.ts';
import {
  quarantinedRequests,
  quarantinedRequestView,
  type QuarantinedRequestRow,
} from '../../projections/quarantine/read-model.ts';
import { auditSecurity, problemResponses } from './api-docs.ts';
import { ArchivedEventView } from './archived-event-view.ts';
import { QuarantineReason } from '../archive/archived-event.ts';
import {
  IsoDateTime,
  Limit,
  PositionText,
  parseLimit,
  parsePositionParameter,
  parseTimeRange,
} from './parameters.ts';
import { fromReadModels } from './read-models.ts';

const QuarantineQuery = Type.Object(
  {
    reason: Type.Optional(QuarantineReason),
    from: Type.Optional(IsoDateTime('Stored at or after (ISO 8601 with zone)')),
    to: Type.Optional(IsoDateTime('Stored before (exclusive)')),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(
      PositionText('`nextCursor` of the previous page: requests stored before this position follow'),
    ),
  },
  { additionalProperties: false },
);

const QuarantinePage = Type.Object({
  requests: Type.Array(ArchivedEventView),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: 'Pass as `cursor` for the next (older) page; null on the last page',
  }),
});

export const quarantineRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  app.get(
    '/quarantine',
    {
      schema: {
        summary: 'Quarantined requests, newest first',
        description:
          'Each with the reason, the problems found, the content type and the raw body exactly as ' +
          'received (for an oversized body, only its first bytes, its size and digest).',
        tags: ['archive'],
        security: auditSecurity,
        querystring: QuarantineQuery,
        response: { 200: QuarantinePage, ...problemResponses },
      },
    },
    async (request) => {
      const limit = parseLimit(request.query.limit);
      const before = parsePositionParameter(request.query.cursor, 'querystring/cursor');
      const filter = { reason: request.query.reason, ...parseTimeRange(request.query) };
      // One extra row tells whether an older page exists.
      const rows = await fromReadModels(() =>
        listQuarantinedRequests(dependencies.database.db, filter, before, limit + 1),
      );
      const { page, nextCursor } = positionPage(rows, limit);
      request.accessCount = page.length;
      return { requests: page.map(quarantinedRequestView), nextCursor };
    },
  );
};

export interface QuarantineFilter {
  readonly reason?: QuarantineReason | undefined;
  /** Stored at or after. */
  readonly from?: Date | undefined;
  /** Stored before. */
  readonly to?: Date | undefined;
}

/**
 * Up to `count` quarantined requests matching the filter, stored before `before` (all, without it),
 * newest first. Walks the primary key newest first; the filters are checked on the way, which is
 * cheap while quarantined requests are rare next to calls.
 */
export const listQuarantinedRequests = (
  db: ReadModelDb,
  filter: QuarantineFilter,
  before: GlobalPosition | undefined,
  count: number,
): Promise<QuarantinedRequestRow[]> =>
  db
    .select()
    .from(quarantinedRequests)
    .where(
      and(
        before && storedBefore(quarantinedRequests, before),
        filter.reason && sql`${quarantinedRequests.data}->>'reason' = ${filter.reason}`,
        filter.from && gte(quarantinedRequests.storedAt, filter.from),
        filter.to && lt(quarantinedRequests.storedAt, filter.to),
      ),
    )
    .orderBy(...newestFirst(quarantinedRequests))
    .limit(count);

/** One quarantined request by its global position. */
export const findQuarantinedRequest = async (
  db: ReadModelDb,
  position: GlobalPosition,
): Promise<QuarantinedRequestRow | undefined> =>
  (await db.select().from(quarantinedRequests).where(storedAt(quarantinedRequests, position)).limit(1))[0];
