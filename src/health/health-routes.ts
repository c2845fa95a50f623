/**
 * `GET /health`: the integration-health figures (see `health-queries.ts`) for a period, as JSON.
 * Registered inside the audit API, so it needs an API token like the rest of it.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { AppDependencies } from '../app.ts';
import type { Config } from '../config.ts';
import type { Database } from '../database/database.ts';
import { InvalidArgumentError } from '../errors.ts';
import { auditSecurity, problemResponses } from '../audit/api-docs.ts';
import { IsoDateTime, TextFilter, nullable, parseTimeRange } from '../audit/parameters.ts';
import { fromReadModels } from '../audit/read-models.ts';
import { registerHealthMetrics } from './health-metrics.ts';
import { computeHealth, maxPeriodDays, type HealthFigures } from './health-queries.ts';

/** The period shown when none is asked for: the last day. */
export const defaultPeriodSeconds = 86_400;

export const HealthQuery = Type.Object(
  {
    from: Type.Optional(IsoDateTime('Start of the period, inclusive (default: a day before `to`)')),
    to: Type.Optional(IsoDateTime('End of the period, exclusive (default: now)')),
    assistant: Type.Optional(TextFilter("Only calls to this assistant's number, exactly")),
  },
  { additionalProperties: false },
);
export type HealthQuery = Type.Static<typeof HealthQuery>;

const Trend = Type.Array(Type.Integer(), { description: 'The count in each bucket, in `buckets` order' });
const nullableText = (description: string) => nullable(Type.String({ description }));

export const HealthReport = Type.Object({
  from: Type.String(),
  to: Type.String(),
  assistant: nullableText('The assistant asked for; null for all'),
  bucketSeconds: Type.Integer({ description: 'Width of each bucket, chosen from the period' }),
  buckets: Type.Array(Type.String(), { description: 'Start of each bucket (ISO 8601 UTC)' }),
  volume: Type.Object({
    started: Type.Array(Type.Integer(), { description: 'Calls whose first event falls in each bucket' }),
    ended: Type.Array(Type.Integer(), { description: 'Calls that ended in each bucket' }),
    failed: Type.Array(Type.Integer(), { description: 'Calls that ended with an error in each bucket' }),
  }),
  failures: Type.Object({
    total: Type.Integer({ description: 'Calls that ended with an error in the period' }),
    artifactGroupCount: Type.Integer({
      description: 'Distinct artifact groups (only the largest are listed)',
    }),
    endedReasonCount: Type.Integer({
      description: 'Distinct ended reasons (only the most frequent are listed)',
    }),
    byArtifact: Type.Array(
      Type.Object({
        artifactGroup: nullableText(
          'The debugging artifact with ids, numbers and times replaced by placeholders',
        ),
        example: nullableText('One artifact of the group, as received: the latest in the period'),
        count: Type.Integer(),
        trend: Trend,
      }),
    ),
    byEndedReason: Type.Array(
      Type.Object({ endedReason: nullableText('Why the call ended'), count: Type.Integer(), trend: Trend }),
    ),
  }),
  durations: Type.Array(
    Type.Object({
      assistant: nullableText("The assistant's number"),
      calls: Type.Integer({ description: 'Ended calls with a duration' }),
      p50: Type.Number({
        description:
          'Median duration, seconds (interpolated; for periods over 15 hours from hourly histograms, within 2% plus 0.1 s)',
      }),
      p95: Type.Number(),
      p99: Type.Number(),
    }),
  ),
  staleCalls: Type.Object({
    thresholdSeconds: Type.Integer(),
    lastEventBefore: Type.String({ description: 'Calls whose last event is older than this are stale' }),
    total: Type.Integer(),
    oldest: Type.Array(
      Type.Object({
        callId: Type.String(),
        caller: nullableText('The calling number'),
        assistant: nullableText("The assistant's number"),
        firstEventAt: nullableText('Event time of the earliest event'),
        lastEventAt: Type.String(),
      }),
    ),
  }),
});
export type HealthReport = Type.Static<typeof HealthReport>;

/** The period asked for, defaulted and bounded; a bad one is a 400 naming the field. */
export const parseHealthPeriod = (
  query: HealthQuery,
  now: Date,
  fieldPrefix = 'querystring/',
): { from: Date; to: Date } => {
  const range = parseTimeRange(query, fieldPrefix);
  const to = range.to ?? (range.from && range.from.getTime() >= now.getTime() ? undefined : now);
  if (to === undefined) {
    throw new InvalidArgumentError([
      { field: `${fieldPrefix}from`, message: 'must be in the past when `to` is not given' },
    ]);
  }
  const from = range.from ?? new Date(to.getTime() - defaultPeriodSeconds * 1000);
  if (to.getTime() - from.getTime() > maxPeriodDays * 86_400_000) {
    throw new InvalidArgumentError([
      { field: `${fieldPrefix}from`, message: `the period may cover at most ${maxPeriodDays} days` },
    ]);
  }
  return { from, to };
};

/** Computes the figures on a connection of its own (one snapshot, one statement timeout). */
export const readHealth = (
  database: Database,
  config: Pick<Config, 'health'>,
  options: {
    from: Date;
    to: Date;
    assistant: string | undefined;
    now: Date;
    groups?: number;
    staleSince?: Date;
  },
): Promise<HealthFigures> =>
  fromReadModels(async () => {
    const client = await database.pool.connect();
    let broken: Error | undefined;
    try {
      return await computeHealth(client, {
        ...options,
        staleAfterSeconds: config.health.staleCallSeconds,
        statementTimeoutMs: config.health.statementTimeoutMs,
      });
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.release(broken);
    }
  });

const iso = (at: Date | null): string | null => (at === null ? null : at.toISOString());

export const toHealthReport = (figures: HealthFigures): HealthReport => ({
  from: figures.from.toISOString(),
  to: figures.to.toISOString(),
  assistant: figures.assistant ?? null,
  bucketSeconds: figures.bucketSeconds,
  buckets: figures.buckets.map((bucket) => bucket.toISOString()),
  volume: figures.volume,
  failures: figures.failures,
  durations: figures.durations,
  staleCalls: {
    thresholdSeconds: figures.staleCalls.thresholdSeconds,
    lastEventBefore: figures.staleCalls.lastEventBefore.toISOString(),
    total: figures.staleCalls.total,
    oldest: figures.staleCalls.oldest.map((call) => ({
      callId: call.callId,
      caller: call.caller,
      assistant: call.assistant,
      firstEventAt: iso(call.firstEventAt),
      lastEventAt: call.lastEventAt.toISOString(),
    })),
  },
});

export const integrationHealthRoutes: FastifyPluginAsyncTypebox<AppDependencies> = async (
  app,
  dependencies,
) => {
  const { health } = dependencies.config;
  registerHealthMetrics(dependencies.metrics.registry, {
    now: dependencies.clock,
    read: () => {
      const now = dependencies.clock();
      const from = new Date(now.getTime() - health.metricsWindowSeconds * 1000);
      return readHealth(dependencies.database, dependencies.config, {
        from,
        to: now,
        now,
        assistant: undefined,
        staleSince: new Date(from.getTime() - health.staleCallSeconds * 1000),
      });
    },
  });
  app.get(
    '/health',
    {
      schema: {
        summary: 'Integration health for a period',
        description:
          'Failures (calls that ended with an error) grouped by debugging artifact, normalised so the ' +
          'same failure with different ids groups together (UUIDs, ISO times, hex ids, other ids mixing ' +
          'letters and digits, and numbers become `<uuid>`, `<time>`, `<hex>`, `<id>`, `<n>`), and by ' +
          'ended reason, each with its count per bucket; call volume per bucket; duration percentiles ' +
          'per assistant; and calls still in progress long after their last event (a missed webhook). ' +
          `Period \`[from, to)\`, at most ${maxPeriodDays} days, by default the last day; buckets are ` +
          'chosen from its length (at most 60).',
        tags: ['health'],
        security: auditSecurity,
        querystring: HealthQuery,
        response: { 200: HealthReport, ...problemResponses },
      },
    },
    async (request) => {
      const now = dependencies.clock();
      const period = parseHealthPeriod(request.query, now);
      const figures = await readHealth(dependencies.database, dependencies.config, {
        ...period,
        assistant: request.query.assistant,
        now,
      });
      return toHealthReport(figures);
    },
  );
};
