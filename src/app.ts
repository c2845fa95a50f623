/**
 * The calltrail HTTP application: a Fastify instance with every route registered, built from its
 * dependencies. It never listens; `src/server.ts` does.
 */
import { randomUUID } from 'node:crypto';
import {
  TypeBoxValidatorCompiler,
  registerAjvFormats,
  type TypeBoxTypeProvider,
} from '@fastify/type-provider-typebox';
import type {} from '@fastify/swagger';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import type { Config } from './config.ts';
import type { Database } from './database/database.ts';
import type { EventStore } from './event-store/event-store.ts';
import { healthRoutes, type ProjectionStatusSource } from './http/health.ts';
import { registerProblemHandlers } from './http/problem.ts';
import type { Metrics } from './metrics.ts';
import { webhookRoutes } from './webhook/routes.ts';
import { auditRoutes } from './audit/routes.ts';
import { apiDocs } from './audit/api-docs.ts';
import { consoleRoutes } from './console/routes.ts';
import { sessionAuthentication } from './console/session.ts';
import { liveRoutes } from './live/live-routes.ts';

export interface AppDependencies {
  readonly config: Config;
  readonly eventStore: EventStore;
  readonly database: Database;
  readonly metrics: Metrics;
  readonly clock: () => Date;
  /** Present when this process runs the projector; `/readyz` reports its lag. */
  readonly projections?: ProjectionStatusSource;
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

const requestIdPattern = /^[A-Za-z0-9._-]{1,64}$/;

registerAjvFormats();

export const buildApp = async (
  dependencies: AppDependencies,
  options: { logger: FastifyBaseLogger | false },
): Promise<App> => {
  const app = Fastify({
    loggerInstance: options.logger === false ? undefined : options.logger,
    logger: options.logger === false ? false : undefined,
    bodyLimit: dependencies.config.webhook.bodyLimitBytes,
    // A caller's request id is kept when it is safe to log; otherwise we make one.
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && requestIdPattern.test(given) ? given : randomUUID();
    },
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    // Call ids may be up to 128 characters (src/flireo/schemas.ts); Fastify's default is 100.
    routerOptions: { maxParamLength: 256 },
    trustProxy: false,
    return503OnClosing: true,
  } as FastifyServerOptions).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  registerProblemHandlers(app);

  // Before every route, so the OpenAPI document sees them all.
  await app.register(apiDocs);
  // Before any authenticated route: the console's session cookie stands in for a bearer token on reads.
  await app.register(sessionAuthentication, dependencies);
  await app.register(healthRoutes, dependencies);
  await app.register(webhookRoutes, dependencies);
  await app.register(auditRoutes, dependencies);
  await app.register(liveRoutes, dependencies);
  await app.register(consoleRoutes, dependencies);
  return app;
};
