/**
 * The delivery log and its controls on the audit API: `GET /deliveries` (keyset-paged, newest
 * first), one delivery with its attempts, retrying one, `GET /destinations` with their backlog,
 * retrying a destination's failed deliveries since a time, pausing and resuming a destination.
 * Registered inside the audit routes, so the same API token is required.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Gauge } from 'prom-client';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import { auditSecurity, problemResponses } from '../audit/api-docs.ts';
import {
  CallId,
  IsoDateTime,
  Limit,
  parseDateTime,
  parseLimit,
  parseTimeRange,
} from '../audit/parameters.ts';
import { fromReadModels } from '../audit/read-models.ts';
import { invalidArgument, NotFoundError } from '../errors.ts';
import { HttpProblem, ProblemDetails } from '../http/problem.ts';
import { pauseDestination, resumeDestination, retryDelivery, retryFailedSince } from './controls.ts';
import { configuredDestinationNames } from './destinations.ts';
import {
  AttemptView,
  DeliveryStatus,
  DeliveryView,
  DestinationView,
  findDelivery,
  listDeliveries,
  listDestinations,
} from './delivery-log.ts';

const DeliveryId = Type.String({ pattern: '^[0-9]{1,18}$', description: 'A delivery id' });
const DestinationName = Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: 'A destination' });

const DeliveriesQuery = Type.Object(
  {
    status: Type.Optional(DeliveryStatus),
    destination: Type.Optional(DestinationName),
    call: Type.Optional(CallId),
    from: Type.Optional(IsoDateTime('Recorded at or after this time')),
    to: Type.Optional(IsoDateTime('Recorded before this time')),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,18}$', description: '`nextCursor` of the previous page' }),
    ),
  },
  { additionalProperties: false },
);

const DeliveriesPage = Type.Object({
  deliveries: Type.Array(DeliveryView),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: 'Pass as `cursor` for the next (older) page; null on the last page',
  }),
});

const DeliveryDetail = Type.Object({ delivery: DeliveryView, attempts: Type.Array(AttemptView) });

const RetryFailedBody = Type.Object(
  { since: IsoDateTime('Retry the failed deliveries recorded at or after this time') },
  { additionalProperties: false },
);

const notFound = (description: string) => ({
  404: { description, content: { 'application/problem+json': { schema: ProblemDetails } } },
});
const conflict = {
  409: {
    description: 'The delivery was delivered already',
    content: { 'application/problem+json': { schema: ProblemDetails } },
  },
};

export const forwardingRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (app, dependencies) => {
  const { pool } = dependencies.database;
  const { clock } = dependencies;
  const configured = configuredDestinationNames(
    dependencies.config.forwarding.destinations,
    dependencies.config.relay !== undefined,
  );
  const wake = () => dependencies.forwarder?.wake();
  registerBacklogMetrics(dependencies);

  /** A destination the configuration or the forwarder's record knows; otherwise a 404. */
  const knownDestination = async (name: string): Promise<void> => {
    if (configured.includes(name)) return;
    const { rowCount } = await fromReadModels(() =>
      pool.query('SELECT 1 FROM forwarding_destinations WHERE name = $1', [name]),
    );
    if (rowCount === 0) throw new NotFoundError(`no destination named ${JSON.stringify(name)}`);
  };

  const destinationState = async (name: string) => {
    const all = await fromReadModels(() => listDestinations(pool, configured, name));
    return all.find((destination) => destination.name === name)!;
  };

  app.get(
    '/deliveries',
    {
      schema: {
        summary: 'The delivery log, newest first',
        description:
          'Every delivery of an archived event to a forwarding destination, with its status and last ' +
          'attempt. `from`/`to` select by the time the delivery was recorded (`to` exclusive).',
        tags: ['forwarding'],
        security: auditSecurity,
        querystring: DeliveriesQuery,
        response: { 200: DeliveriesPage, ...problemResponses },
      },
    },
    async (request) => {
      const query = request.query;
      const limit = parseLimit(query.limit);
      const range = parseTimeRange(query);
      const rows = await fromReadModels(() =>
        listDeliveries(
          pool,
          { status: query.status, destination: query.destination, callId: query.call, ...range },
          { limit: limit + 1, before: query.cursor },
        ),
      );
      const deliveries = rows.slice(0, limit);
      return {
        deliveries,
        nextCursor: rows.length > limit ? (deliveries.at(-1)?.id ?? null) : null,
      };
    },
  );

  app.get(
    '/deliveries/:id',
    {
      schema: {
        summary: 'One delivery and every attempt made',
        tags: ['forwarding'],
        security: auditSecurity,
        params: Type.Object({ id: DeliveryId }),
        response: { 200: DeliveryDetail, ...notFound('No such delivery'), ...problemResponses },
      },
    },
    async (request) => {
      const found = await fromReadModels(() => findDelivery(pool, request.params.id));
      if (found === undefined) throw new NotFoundError(`no delivery ${request.params.id}`);
      return found;
    },
  );

  app.post(
    '/deliveries/:id/retry',
    {
      schema: {
        summary: 'Retry one delivery now',
        description:
          'A failed (or pending) delivery goes back to pending with a fresh retry schedule; attempt ' +
          'numbers go on.',
        tags: ['forwarding'],
        security: auditSecurity,
        params: Type.Object({ id: DeliveryId }),
        response: {
          202: DeliveryView,
          ...notFound('No such delivery'),
          ...conflict,
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const outcome = await fromReadModels(() => retryDelivery(pool, request.params.id, clock()));
      if (outcome === 'not-found') throw new NotFoundError(`no delivery ${request.params.id}`);
      if (outcome === 'already-delivered') {
        throw new HttpProblem(409, 'Conflict', `delivery ${request.params.id} was delivered already`);
      }
      wake();
      const found = await fromReadModels(() => findDelivery(pool, request.params.id));
      return reply.code(202).send(found!.delivery);
    },
  );

  app.get(
    '/destinations',
    {
      schema: {
        summary: 'Forwarding destinations, their state and backlog',
        tags: ['forwarding'],
        security: auditSecurity,
        response: { 200: Type.Object({ destinations: Type.Array(DestinationView) }), ...problemResponses },
      },
    },
    async () => ({ destinations: await fromReadModels(() => listDestinations(pool, configured)) }),
  );

  app.post(
    '/destinations/:name/retry-failed',
    {
      schema: {
        summary: "Retry a destination's failed deliveries since a time (recover)",
        tags: ['forwarding'],
        security: auditSecurity,
        params: Type.Object({ name: DestinationName }),
        body: RetryFailedBody,
        response: {
          202: Type.Object({ retried: Type.Integer() }),
          ...notFound('No such destination'),
          ...problemResponses,
        },
      },
    },
    async (request, reply) => {
      const since = parseDateTime(request.body.since, 'body/since');
      if (since === undefined) throw invalidArgument('body/since', 'is required');
      await knownDestination(request.params.name);
      const retried = await fromReadModels(() => retryFailedSince(pool, request.params.name, since, clock()));
      wake();
      return reply.code(202).send({ retried });
    },
  );

  for (const action of ['pause', 'resume'] as const) {
    app.post(
      `/destinations/:name/${action}`,
      {
        schema: {
          summary:
            action === 'pause'
              ? 'Pause a destination: nothing is sent to it until it is resumed'
              : 'Resume a destination (paused by an operator, or for failing)',
          tags: ['forwarding'],
          security: auditSecurity,
          params: Type.Object({ name: DestinationName }),
          response: { 200: DestinationView, ...notFound('No such destination'), ...problemResponses },
        },
      },
      async (request) => {
        const { name } = request.params;
        await knownDestination(name);
        await fromReadModels(() =>
          action === 'pause' ? pauseDestination(pool, name, clock()) : resumeDestination(pool, name),
        );
        wake();
        return destinationState(name);
      },
    );
  }
};

/**
 * Backlog per destination and the age of its oldest undelivered event, read from the delivery log
 * when `/metrics` is scraped (so any process serving the API reports them, forwarder or not).
 */
const registerBacklogMetrics = (dependencies: AppDependencies): void => {
  const { registry } = dependencies.metrics;
  const backlogName = 'calltrail_forwarding_backlog_deliveries';
  if (registry.getSingleMetric(backlogName) !== undefined) return;
  const { pool } = dependencies.database;
  // Both gauges are collected side by side: one query per scrape fills both.
  let refreshing: Promise<void> | undefined;
  const refresh = async (): Promise<void> => {
    backlog.reset();
    oldestAge.reset();
    try {
      const { rows } = await pool.query<{ destination: string; pending: number; oldest: Date }>(
        `SELECT destination, count(*)::int AS pending, min(recorded_at) AS oldest
           FROM forwarding_deliveries WHERE status = 'pending' GROUP BY destination`,
      );
      const now = dependencies.clock().getTime();
      for (const row of rows) {
        backlog.set({ destination: row.destination }, row.pending);
        oldestAge.set({ destination: row.destination }, Math.max(0, (now - row.oldest.getTime()) / 1000));
      }
    } catch {
      // A scrape while the database is away shows no backlog rather than failing /metrics.
    }
  };
  const collect = async () => {
    refreshing ??= refresh().finally(() => {
      refreshing = undefined;
    });
    await refreshing;
  };
  const backlog = new Gauge({
    name: backlogName,
    help: 'Deliveries not yet delivered nor failed, per destination',
    labelNames: ['destination'] as const,
    registers: [registry],
    collect,
  });
  const oldestAge = new Gauge({
    name: 'calltrail_forwarding_oldest_undelivered_age_seconds',
    help: 'Age of the oldest pending delivery, per destination (absent when none)',
    labelNames: ['destination'] as const,
    registers: [registry],
    collect,
  });
};
