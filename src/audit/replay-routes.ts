/**
 * `GET /replay`: the archive as NDJSON, one archived event per line in global order, streamed with
 * backpressure (the store is read a page at a time, only as fast as the client takes lines).
 * Resumable: a client that lost the connection passes the `position` of the last line it got as
 * `after` and continues with the next event, nothing missed and nothing repeated. A stream that
 * breaks mid-way (store failure) ends the connection without the closing chunk, so a client can
 * tell an interrupted replay from a complete one.
 */
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { archiveStreamPrefixes } from '../archive/streams.ts';
import { StreamedBody, auditSecurity, problemResponses } from './api-docs.ts';
import { parseStreamPrefix, readArchive, type ArchiveSelection } from './archive-reader.ts';
import { formatPosition, type GlobalPosition, type RecordedEvent } from '../event-store/event-store.ts';
import { toJsonLine } from './archived-event-view.ts';
import { manifestTrailer, withManifestTrailer } from './manifest-trailer.ts';
import { IsoDateTime, PositionText, parsePositionParameter, parseTimeRange } from './parameters.ts';

const ReplayQuery = Type.Object(
  {
    from: Type.Optional(IsoDateTime('Only events received at or after this')),
    to: Type.Optional(IsoDateTime('Only events received before this (exclusive)')),
    prefix: Type.Optional(
      Type.String({
        maxLength: 160,
        description: `A stream-name prefix: ${archiveStreamPrefixes.map((p) => `"${p}"`).join(', ')}, or a longer prefix within one (e.g. "call-abc"). Default: all of them`,
      }),
    ),
    after: Type.Optional(PositionText('Resume after this global position (exclusive)')),
  },
  { additionalProperties: false },
);

export const replayRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  app.get(
    '/replay',
    {
      schema: {
        summary: 'Archived events as NDJSON, in global order, resumable',
        description:
          'One JSON object per line (the same shape as `GET /calls/{callId}/events` items, plus ' +
          '`storedData` and `storedMetadata`: the stored JSON text the seals cover). ' +
          '`from`/`to` select by reception time (`to` exclusive); reception time is not the store ' +
          'order, so a time-bounded replay reads from `after` (or the start) to the end of the archive.',
        tags: ['replay'],
        security: auditSecurity,
        querystring: ReplayQuery,
        response: {
          200: {
            description: `NDJSON, streamed; with a signed manifest in the \`${manifestTrailer}\` trailer when the server holds the sealing key`,
            content: { 'application/x-ndjson': { schema: StreamedBody } },
          },
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const { from, to } = parseTimeRange(request.query);
      const prefix = request.query.prefix;
      const selection: ArchiveSelection = {
        streamPrefixes:
          prefix === undefined ? archiveStreamPrefixes : [parseStreamPrefix(prefix, 'querystring/prefix')],
        after: parsePositionParameter(request.query.after, 'querystring/after'),
        receivedFrom: from,
        receivedTo: to,
      };
      let count = 0;
      request.accessCount = () => count;
      let last: GlobalPosition | undefined;
      const lines = async function* (events: AsyncIterable<RecordedEvent>) {
        for await (const event of events) {
          count += 1;
          last = event.position;
          yield toJsonLine(event);
        }
      };
      const body = withManifestTrailer(
        reply,
        Readable.from(lines(readArchive(dependencies.eventStore, selection)), { objectMode: false }),
        {
          kind: 'replay',
          query: {
            from: request.query.from ?? null,
            to: request.query.to ?? null,
            prefix: prefix ?? null,
            after: selection.after === undefined ? null : formatPosition(selection.after),
          },
          key: dependencies.sealingKey,
          eventStore: dependencies.eventStore,
          clock: dependencies.clock,
          count: () => count,
          lastPosition: () => last,
        },
      );
      return reply.type('application/x-ndjson; charset=utf-8').send(body);
    },
  );
};
