/**
 * `GET /quarantine`: requests that were authenticated but not accepted as events (malformed JSON,
 * invalid events, unsupported media types, oversized bodies), newest first, from the `quarantine`
 * read model (so its cost does not grow with the archive). Keyset-paged by global position: the
 * cursor is the position of the last request of the previous page.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { desc, sql } from 'drizzle-orm';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import type { ReadModelDb } from '../database/database.ts';
import { formatPosition, type GlobalPosition } from '../event-store/event-store.ts';
import {
  quarantinedRequests,
  quarantinedRequestView,
  type QuarantinedRequestRow,
} from '../../projections/quarantine/read-model.ts';
import { auditSecurity, problemResponses } from './api-docs.ts';
import { ArchivedEventView } from './archived-event-view.ts';
import { Limit, PositionText, parseLimit, parsePositionParameter } from './parameters.ts';
import { fromReadModels } from './read-models.ts';

const QuarantineQuery = Type.Object(
  {
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
      // One extra row tells whether an older page exists.
      const rows = await fromReadModels(() =>
        listQuarantinedRequests(dependencies.database.db, before, limit + 1),
      );
      const requests = rows.slice(0, limit);
      const last = requests.at(-1);
      return {
        requests: requests.map(quarantinedRequestView),
        nextCursor:
          rows.length > limit && last
            ? formatPosition({ commit: last.commitPosition, prepare: last.preparePosition })
            : null,
      };
    },
  );
};

/** Up to `count` quarantined requests stored before `before` (all, without it), newest first. */
const listQuarantinedRequests = (
  db: ReadModelDb,
  before: GlobalPosition | undefined,
  count: number,
): Promise<QuarantinedRequestRow[]> =>
  db
    .select()
    .from(quarantinedRequests)
    .where(
      before &&
        sql`(${quarantinedRequests.commitPosition}, ${quarantinedRequests.preparePosition}) < (${before.commit.toString()}::numeric, ${before.prepare.toString()}::numeric)`,
    )
    .orderBy(desc(quarantinedRequests.commitPosition), desc(quarantinedRequests.preparePosition))
    .limit(count);
