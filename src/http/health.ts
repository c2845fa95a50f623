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

  app.get(
    '/metrics',
    { schema: { hide: true }, onRequest: requireApiToken(dependencies.config.apiTokens) },
    async (_request, reply) =>
      reply
        .type(dependencies.metrics.registry.contentType)
        .send(await dependencies.metrics.registry.metrics()),
  );
};
