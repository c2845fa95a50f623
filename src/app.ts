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
import underPressure from '@fastify/under-pressure';
import type { Config } from './config.ts';
import type { Database } from './database/database.ts';
import type { EventStore } from './event-store/event-store.ts';
import { healthRoutes } from './http/health.ts';
import type { ProjectionStatusSource } from './projector/status.ts';
import { HttpProblem, registerProblemHandlers } from './http/problem.ts';
import { connectionLimits } from './http/connection-limits.ts';
import { requestLogSerializers } from './http/request-log.ts';
import type { DurableArchive } from './journal/durable-archive.ts';
import type { Metrics } from './metrics.ts';
import type { SigningKey } from './sealing/signing-key.ts';
import { webhookRoutes } from './webhook/routes.ts';
import { auditRoutes } from './audit/routes.ts';
import { apiDocs } from './audit/api-docs.ts';
import { consoleRoutes } from './console/routes.ts';
import { sessionAuthentication } from './console/session.ts';
import { liveRoutes } from './live/live-routes.ts';
import { authorization } from './access/authorization.ts';

export interface AppDependencies {
  readonly config: Config;
  readonly eventStore: EventStore;
  readonly database: Database;
  readonly metrics: Metrics;
  readonly clock: () => Date;
  /** Present when this process runs the projector; `/readyz` reports its lag. */
  readonly projections?: ProjectionStatusSource;
  /** The store with the outage journal behind it (serve); without it, webhooks go to the store alone. */
  readonly archive?: DurableArchive;
  /** The sealing key, when this process has it: exports and replays then carry signed manifests. */
  readonly sealingKey?: SigningKey;
  /** Present when this process runs the forwarder: woken by the delivery controls. */
  readonly forwarder?: { wake(): void };
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

const requestIdPattern = /^[A-Za-z0-9._-]{1,64}$/;

const overloadRetryAfterSeconds = 5;

class Overloaded extends HttpProblem {
  constructor() {
    super(503, 'Service Unavailable', 'the server is overloaded; retry later', undefined, {
      'retry-after': String(overloadRetryAfterSeconds),
    });
  }
}

registerAjvFormats();

export const buildApp = async (
  dependencies: AppDependencies,
  options: { logger: FastifyBaseLogger | false },
): Promise<App> => {
  const { config } = dependencies;
  const app = Fastify({
    // Every request line goes through serializers that never write a credential, whatever the path.
    loggerInstance:
      options.logger === false
        ? undefined
        : options.logger.child({}, { serializers: requestLogSerializers(config) }),
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
    // The sender's address (archived as `sourceAddress`) comes from X-Forwarded-For only through
    // the configured proxies.
    trustProxy: config.http.trustProxy,
    ...connectionLimits(config.http),
    return503OnClosing: true,
  } as FastifyServerOptions).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  registerProblemHandlers(app);
  if (config.http.maxEventLoopDelayMs > 0) {
    // Overloaded, every request is refused at once rather than every client served slowly.
    await app.register(underPressure, {
      maxEventLoopDelay: config.http.maxEventLoopDelayMs,
      retryAfter: overloadRetryAfterSeconds,
      customError: Overloaded,
    });
  }

  // Before any authenticated route: the console's session cookie stands in for a bearer token on reads.
  await app.register(sessionAuthentication, dependencies);
  // Before every route: each route's scope comes from one table, and a route without one is refused.
  await app.register(authorization, {
    apiTokens: config.apiTokens,
    metrics: dependencies.metrics,
    eventStore: dependencies.eventStore,
    clock: dependencies.clock,
    closeTimeoutMs: config.appendTimeoutMs * 2,
  });
  // Before every other route, so the OpenAPI document sees them all.
  await app.register(apiDocs);
  await app.register(healthRoutes, dependencies);
  await app.register(webhookRoutes, dependencies);
  await app.register(auditRoutes, dependencies);
  await app.register(liveRoutes, dependencies);
  await app.register(consoleRoutes, dependencies);
  return app;
};
