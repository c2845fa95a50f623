/**
 * `/healthz` (the process is up and serving), `/readyz` (its stores answer; projection lag) and
 * `/metrics` (Prometheus). The first two are for load balancers and need no authentication;
 * metrics reveal traffic, so they need an API token like the audit API.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { requireApiToken } from '../audit/authentication.ts';

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
        summary: 'Readiness: event store and Postgres reachability, projection lag',
        response: {
          '2xx': Type.Object({
            ready: Type.Boolean(),
            eventStore: Type.Intersect([Check, Type.Object({ kind: Type.String() })]),
            database: Check,
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
    async (_request, reply) => {
      const probe = async (check: () => Promise<unknown>) => {
        try {
          await check();
          return { ok: true };
        } catch (error) {
          return { ok: false, detail: error instanceof Error ? error.message : 'unreachable' };
        }
      };
      const [eventStore, database] = await Promise.all([
        probe(() => dependencies.eventStore.ping()),
        probe(() => dependencies.database.pool.query('select 1')),
      ]);
      const ready = eventStore.ok && database.ok;
      return reply.code(ready ? 200 : 503).send({
        ready,
        eventStore: { ...eventStore, kind: dependencies.eventStore.kind },
        database,
        projections: [...(dependencies.projections?.status() ?? [])],
      });
    },
  );

  app.get(
    '/metrics',
    { schema: { hide: true }, onRequest: requireApiToken(dependencies.config.apiTokens) },
    async (_request, reply) =>
      reply
        .type(dependencies.metrics.registry.contentType)
        .send(await dependencies.metrics.registry.metrics()),
  );
};
