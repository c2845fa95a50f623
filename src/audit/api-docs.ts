/**
 * The OpenAPI document and its UI at `/docs` (public: it describes the API, it gives no access),
 * generated from the route schemas. Registered on the root instance before any route, so it sees
 * every route; a route leaves the document only with `hide: true`.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import fp from 'fastify-plugin';
import { ProblemDetails } from '../http/problem.ts';
import { bearerSecurityScheme } from './authentication.ts';

export const apiDocs = fp(
  async (app: FastifyInstance) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'calltrail',
          description:
            'Audit and compliance archive for Flireo AI voice-call server events: the webhook that ' +
            'archives them, and the audit API that reads them back (call history, archived events, ' +
            'quarantine, CSV export, replay). The audit API requires `Authorization: Bearer <token>`.',
          version: '0.1.0',
        },
        components: {
          securitySchemes: {
            [bearerSecurityScheme]: {
              type: 'http',
              scheme: 'bearer',
              description: 'One of the API tokens configured in CALLTRAIL_API_TOKENS',
            },
          },
        },
        tags: [
          { name: 'calls', description: 'Call history from the read models, and as of any time' },
          { name: 'archive', description: 'Archived events and quarantined requests, as stored' },
          { name: 'exports', description: 'CSV exports' },
          { name: 'replay', description: 'The archive as a resumable event stream' },
          { name: 'forwarding', description: 'Deliveries of archived events to forwarding destinations' },
          { name: 'health', description: 'Integration health: failures, durations, volume, missed webhooks' },
          { name: 'access', description: 'Who read what: the access log (admin)' },
        ],
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  },
  { name: 'api-docs' },
);

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: ProblemDetails } },
});

/** The error responses every audit route can give, as OpenAPI (and serializer) entries. */
export const problemResponses = {
  400: problem('A parameter is invalid; `errors` names each one and why'),
  401: problem('No API token, or not a bearer token'),
  403: problem("The API token is not valid, or its role lacks the route's scope (named)"),
  503: problem('A store is unavailable; retry after `Retry-After` seconds'),
  500: problem('Unexpected error; the details are in the server log'),
} as const;

export const notFoundResponse = { 404: problem('No such call') } as const;

export const auditSecurity = [{ [bearerSecurityScheme]: [] }];

/** A streamed body: a string in the document, a stream to the handler's type checks. */
export const StreamedBody = Type.Unsafe<Readable>({ type: 'string' });
