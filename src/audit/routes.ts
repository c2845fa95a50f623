/**
 * The audit API: call history, archived events, quarantine, CSV export and replay. Every route here
 * requires an API token whose role grants the route's scope (see `src/access/`); one module per resource.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppDependencies } from '../app.ts';
import { callEventsRoutes } from './call-events-routes.ts';
import { callsRoutes } from './calls-routes.ts';
import { exportRoutes } from './export-routes.ts';
import { proofRoutes } from './proof-routes.ts';
import { quarantineRoutes } from './quarantine-routes.ts';
import { replayRoutes } from './replay-routes.ts';
import { forwardingRoutes } from '../forwarding/forwarding-routes.ts';
import { integrationHealthRoutes } from '../health/health-routes.ts';
import { relayExchangeRoutes } from '../relay/exchange-routes.ts';
import { accessLogRoutes } from '../access/access-log-routes.ts';

export const auditRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  // Audit answers hold personal data (numbers, call details): no shared or browser cache keeps them.
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
  });
  await app.register(callsRoutes, dependencies);
  await app.register(callEventsRoutes, dependencies);
  await app.register(proofRoutes, dependencies);
  await app.register(quarantineRoutes, dependencies);
  await app.register(exportRoutes, dependencies);
  await app.register(replayRoutes, dependencies);
  await app.register(forwardingRoutes, dependencies);
  await app.register(integrationHealthRoutes, dependencies);
  await app.register(relayExchangeRoutes, dependencies);
  await app.register(accessLogRoutes, dependencies);
};
