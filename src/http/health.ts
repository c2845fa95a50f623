/**
 * `/healthz` (the process is up and serving), `/readyz` (its stores answer; projection lag) and
 * `/metrics` (Prometheus). The first two are for load balancers and need no authentication;
 * metrics reveal traffic, so they need an API token with the `metrics:read` scope.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';

const Check = Type.Object({ ok: Type.Boolean(), detail: Type.Optional(Type.String()) });

export const healthRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  app.get(
    '/healthz',
    { schema: { hide: true, response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: event store and Postgres reachability, outage journal, projection lag',
        response: {
          '2xx': Type.Object({
            ready: Type.Boolean(),
            eventStore: Type.Intersect([Check, Type.Object({ kind: Type.String() })]),
            database: Check,
            journal: Type.Optional(
              Type.Object({
                journaling: Type.Boolean(),
                accepting: Type.Boolean(),
                depth: Type.Integer(),
                bytes: Type.Integer(),
                maxBytes: Type.Integer(),
                oldestAgeSeconds: Type.Number(),
                drainRatePerSecond: Type.Number(),
                setAside: Type.Integer(),
              }),
            ),
            projections: Type.Array(
              Type.Object({
                projection: Type.String(),
                caughtUp: Type.Boolean(),
                lagEvents: Type.Number(),
                lagSeconds: Type.Number(),
              }),
            ),
          }),
        },
      },
    },
    async (request, reply) => {
      // Unauthenticated, so it answers only the state: why a store failed (which may name internal
      // hosts) goes to the log. Each probe is bounded, also when a store does not answer at all.
      const boundMs = dependencies.config.readModels.connectTimeoutMs;
      const probe = async (store: string, check: () => Promise<unknown>) => {
        let timer: NodeJS.Timeout | undefined;
        const bound = new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${boundMs} ms`)), boundMs);
        });
        try {
          await Promise.race([check(), bound]);
          return { ok: true };
        } catch (error) {
          request.log.warn({ err: error, store }, 'readiness check failed');
          return { ok: false };
        } finally {
          clearTimeout(timer);
        }
      };
      const [eventStore, database] = await Promise.all([
        probe('event store', () => dependencies.eventStore.ping()),
        probe('read-model database', () => dependencies.database.pool.query('select 1')),
      ]);
      const journal = dependencies.archive?.status();
      // With room in the outage journal, webhooks are still kept while the event store is away.
      const ready = (eventStore.ok || journal?.accepting === true) && database.ok;
      return reply.code(ready ? 200 : 503).send({
        ready,
        eventStore: { ...eventStore, kind: dependencies.eventStore.kind },
        database,
        ...(journal === undefined
          ? {}
          : {
              journal: {
                journaling: journal.journaling,
                accepting: journal.accepting,
                depth: journal.depth,
                bytes: journal.bytes,
                maxBytes: journal.maxBytes,
                oldestAgeSeconds: journal.oldestAgeSeconds,
                drainRatePerSecond: journal.drainRatePerSecond,
                setAside: journal.setAsideTotal,
              },
            }),
        projections: [...(dependencies.projections?.status() ?? [])],
      });
    },
  );

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type(dependencies.metrics.registry.contentType).send(await dependencies.metrics.registry.metrics()),
  );
};
