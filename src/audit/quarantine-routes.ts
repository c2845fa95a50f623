/**
 * `GET /quarantine`: requests that were authenticated but not accepted as events (malformed JSON,
 * invalid events, unsupported media types, oversized bodies), newest first, straight from the
 * `quarantine-<day>` streams. Paged by global position: the cursor is the position of the last
 * request of the previous page.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { quarantineStreamPrefix } from '../archive/streams.ts';
import { comparePositions, formatPosition, type RecordedEvent } from '../event-store/event-store.ts';
import { auditSecurity, problemResponses } from './api-docs.ts';
import { ArchivedEventView, toArchivedEventView } from './archived-event-view.ts';
import { Limit, PositionText, parseLimit, parsePositionParameter } from './parameters.ts';

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
      const page: RecordedEvent[] = [];
      // Reading from a position includes it; one extra tells whether an older page exists.
      for await (const event of dependencies.eventStore.readAll({
        ...(before ? { from: before } : {}),
        streamPrefixes: [quarantineStreamPrefix],
        direction: 'backwards',
        maxCount: limit + 2,
      })) {
        if (!before || comparePositions(event.position, before) < 0) page.push(event);
      }
      const requests = page.slice(0, limit);
      const last = requests.at(-1);
      return {
        requests: requests.map(toArchivedEventView),
        nextCursor: page.length > limit && last ? formatPosition(last.position) : null,
      };
    },
  );
};
