/**
 * `GET /calls/:callId/events`: a call's archived events straight from the event store, in stream
 * order, each with its raw body exactly as received. This is the evidence; the read models are
 * derived from it.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { callStreamName } from '../archive/streams.ts';
import { NotFoundError } from '../errors.ts';
import { auditSecurity, notFoundResponse, problemResponses } from './api-docs.ts';
import { readCall } from './archive-reader.ts';
import { ArchivedEventView, toArchivedEventView } from './archived-event-view.ts';
import { CallId } from './parameters.ts';

const CallEvents = Type.Object({
  callId: Type.String(),
  stream: Type.String(),
  events: Type.Array(ArchivedEventView),
});

export const callEventsRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  app.get(
    '/calls/:callId/events',
    {
      schema: {
        summary: "A call's archived events, as stored",
        description:
          'Every event of the call stream in revision order: revision, global position ' +
          '("<commit>/<prepare>", lossless), type, reception metadata, the normalized data and the ' +
          'raw body exactly as received (`utf8`, or `base64` when it was not valid UTF-8).',
        tags: ['archive'],
        security: auditSecurity,
        params: Type.Object({ callId: CallId }),
        querystring: Type.Object({}, { additionalProperties: false }),
        response: { 200: CallEvents, ...notFoundResponse, ...problemResponses },
      },
    },
    async (request) => {
      const { callId } = request.params;
      const events: ArchivedEventView[] = [];
      for await (const event of readCall(dependencies.eventStore, callId))
        events.push(toArchivedEventView(event));
      request.accessCount = events.length;
      if (events.length === 0) {
        throw new NotFoundError(`no archived events for call ${JSON.stringify(callId)}`);
      }
      return { callId, stream: callStreamName(callId), events };
    },
  );
};
