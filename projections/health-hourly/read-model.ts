/**
 * Read models `health_hourly_calls`, `health_hourly_failures` and `health_daily_durations`: the
 * integration-health figures per assistant and UTC hour (durations per UTC day), so the Health page
 * adds up a few rows per hour instead of visiting every call of a long period. They have no projection of their
 * own: the `calls` projection keeps them, in the same transaction as `calls` and `terminations`
 * (same checkpoint, rebuilt together), by adding what each changed call now contributes and taking
 * away what it contributed before, so they always agree with those tables:
 *
 * - calls: calls started (first event) in the hour, and calls that ended in it, by outcome;
 * - failures: ended-with-error calls by artifact group (computed by PostgreSQL with the same rule as
 *   `terminations.debugging_artifact_group`) and ended reason;
 * - durations: a histogram of the ended calls' durations per day, in buckets 2% wide, so percentiles
 *   over any set of days can be merged (see `durationBucketBounds`). Per day rather than per hour:
 *   an hour of one assistant holds too few calls for a histogram to be smaller than the calls.
 *
 * A row whose counts fall to zero is deleted, so the tables hold exactly what a rebuild would write.
 */
import { integer, pgTable, smallint, text, timestamp, unique } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import { arrayParameter, tableName } from '../../src/database/sql.ts';
import { artifactGroupSql } from '../../src/health/artifact-groups.ts';
import type { CallRow } from '../calls/read-model.ts';
import { terminationOfCall } from '../terminations/read-model.ts';

const hourColumn = () => timestamp('hour', { withTimezone: true, precision: 3 }).notNull();

export const healthHourlyCalls = pgTable(
  'health_hourly_calls',
  {
    hour: hourColumn(),
    assistant: text('assistant'),
    /** Calls whose first event falls in the hour. */
    started: integer('started').notNull(),
    /** Calls that ended in the hour with outcome `ended`. */
    ended: integer('ended').notNull(),
    /** Calls that ended in the hour with outcome `ended-with-debugging`. */
    failed: integer('failed').notNull(),
  },
  (table) => [unique('health_hourly_calls_key').on(table.hour, table.assistant).nullsNotDistinct()],
);

export const healthHourlyFailures = pgTable(
  'health_hourly_failures',
  {
    hour: hourColumn(),
    assistant: text('assistant'),
    artifactGroup: text('artifact_group'),
    endedReason: text('ended_reason'),
    failures: integer('failures').notNull(),
  },
  (table) => [
    unique('health_hourly_failures_key')
      .on(table.hour, table.assistant, table.artifactGroup, table.endedReason)
      .nullsNotDistinct(),
  ],
);

export const healthDailyDurations = pgTable(
  'health_daily_durations',
  {
    /** The UTC day. */
    day: timestamp('day', { withTimezone: true, precision: 3 }).notNull(),
    assistant: text('assistant'),
    /** See `durationBucketSql`. */
    bucket: smallint('bucket').notNull(),
    calls: integer('calls').notNull(),
  },
  (table) => [
    unique('health_daily_durations_key').on(table.day, table.assistant, table.bucket).nullsNotDistinct(),
  ],
);

/**
 * Duration buckets: 0 holds durations under 0.1 s (negative ones too); bucket b >= 1 holds
 * [0.1 × 1.02^(b-1), 0.1 × 1.02^b) seconds, up to the last, which holds everything from about
 * 60 years on. A value placed anywhere in its bucket is within 2% of every duration the bucket holds.
 */
export const durationBucketBase = 0.1;
export const durationBucketGrowth = 1.02;
export const lastDurationBucket = 1_200;

/** The bucket of a `double precision` duration, as SQL (PostgreSQL does the rounding, once). */
export const durationBucketSql = (column: string): string =>
  `CASE WHEN ${column} < ${durationBucketBase} THEN 0 ` +
  `ELSE least(${lastDurationBucket}, floor(ln(${column} / ${durationBucketBase}) / ln(${durationBucketGrowth}))::int + 1) END`;

/** The durations bucket `bucket` holds, in seconds: [low, high). */
export const durationBucketBounds = (bucket: number): readonly [low: number, high: number] =>
  bucket <= 0
    ? [0, durationBucketBase]
    : [
        durationBucketBase * durationBucketGrowth ** (bucket - 1),
        bucket >= lastDurationBucket ? Infinity : durationBucketBase * durationBucketGrowth ** bucket,
      ];

const hourMs = 3_600_000;
const dayMs = 86_400_000;
const hourOf = (time: Date): string => new Date(Math.floor(time.getTime() / hourMs) * hourMs).toISOString();
const dayOf = (time: Date): string => new Date(Math.floor(time.getTime() / dayMs) * dayMs).toISOString();

/** What one call adds to the summaries (or, with `sign` -1, takes away). */
interface Contributions {
  readonly calls: Map<string, { hour: string; assistant: string | null; counts: [number, number, number] }>;
  readonly failures: Map<
    string,
    { hour: string; assistant: string | null; artifact: string | null; endedReason: string | null; n: number }
  >;
  readonly durations: Map<string, { day: string; assistant: string | null; duration: number; n: number }>;
}

const emptyContributions = (): Contributions => ({
  calls: new Map(),
  failures: new Map(),
  durations: new Map(),
});

const addCall = (into: Contributions, call: CallRow, sign: 1 | -1): void => {
  const countsAt = (hour: string) => {
    const key = JSON.stringify([hour, call.assistant]);
    let entry = into.calls.get(key);
    if (entry === undefined) {
      entry = { hour, assistant: call.assistant, counts: [0, 0, 0] };
      into.calls.set(key, entry);
    }
    return entry.counts;
  };
  if (call.firstEventAt !== null) countsAt(hourOf(call.firstEventAt))[0] += sign;
  const termination = terminationOfCall(call);
  if (termination === undefined) return;
  const hour = hourOf(termination.endedAt);
  const failed = termination.outcome === 'ended-with-debugging';
  countsAt(hour)[failed ? 2 : 1] += sign;
  if (failed) {
    const key = JSON.stringify([
      hour,
      call.assistant,
      termination.debuggingArtifact,
      termination.endedReason,
    ]);
    const entry = into.failures.get(key);
    if (entry === undefined) {
      into.failures.set(key, {
        hour,
        assistant: call.assistant,
        artifact: termination.debuggingArtifact,
        endedReason: termination.endedReason,
        n: sign,
      });
    } else entry.n += sign;
  }
  if (termination.durationSeconds !== null && Number.isFinite(termination.durationSeconds)) {
    const day = dayOf(termination.endedAt);
    const key = JSON.stringify([day, call.assistant, termination.durationSeconds]);
    const entry = into.durations.get(key);
    if (entry === undefined) {
      into.durations.set(key, {
        day,
        assistant: call.assistant,
        duration: termination.durationSeconds,
        n: sign,
      });
    } else entry.n += sign;
  }
};

/**
 * Brings the summaries from what the calls were (`before`, undefined for a new call) to what they
 * are (`after`), in the caller's transaction. Changes that cancel out write nothing.
 */
export const writeHealthHourly = async (
  client: pg.ClientBase,
  changes: readonly { readonly before: CallRow | undefined; readonly after: CallRow }[],
): Promise<void> => {
  const contributions = emptyContributions();
  for (const { before, after } of changes) {
    if (before !== undefined) addCall(contributions, before, -1);
    addCall(contributions, after, 1);
  }
  const calls = [...contributions.calls.values()].filter(({ counts }) => counts.some((n) => n !== 0));
  const failures = [...contributions.failures.values()].filter(({ n }) => n !== 0);
  const durations = [...contributions.durations.values()].filter(({ n }) => n !== 0);
  const touchedHours = new Set<string>();
  const touchedDays = new Set<string>();
  let removed = false;

  if (calls.length > 0) {
    const table = tableName(healthHourlyCalls);
    await client.query(
      `INSERT INTO ${table} AS t (hour, assistant, started, ended, failed)
       SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::int[], $4::int[], $5::int[])
       ON CONFLICT (hour, assistant) DO UPDATE SET started = t.started + excluded.started,
         ended = t.ended + excluded.ended, failed = t.failed + excluded.failed`,
      [
        arrayParameter(
          'timestamptz',
          calls.map((entry) => entry.hour),
        ),
        arrayParameter(
          'text',
          calls.map((entry) => entry.assistant),
        ),
        arrayParameter(
          'int4',
          calls.map((entry) => entry.counts[0]),
        ),
        arrayParameter(
          'int4',
          calls.map((entry) => entry.counts[1]),
        ),
        arrayParameter(
          'int4',
          calls.map((entry) => entry.counts[2]),
        ),
      ],
    );
    for (const entry of calls) {
      touchedHours.add(entry.hour);
      if (entry.counts.some((n) => n < 0)) removed = true;
    }
  }
  if (failures.length > 0) {
    // Several artifacts fall into one group: summed per group before the upsert, which may
    // meet each key only once.
    await client.query(
      `INSERT INTO ${tableName(healthHourlyFailures)} AS t (hour, assistant, artifact_group, ended_reason, failures)
       SELECT hour, assistant, ${artifactGroupSql('artifact')}, ended_reason, sum(n)::int
       FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::int[])
         AS change(hour, assistant, artifact, ended_reason, n)
       GROUP BY 1, 2, 3, 4
       ON CONFLICT (hour, assistant, artifact_group, ended_reason)
         DO UPDATE SET failures = t.failures + excluded.failures`,
      [
        arrayParameter(
          'timestamptz',
          failures.map((entry) => entry.hour),
        ),
        arrayParameter(
          'text',
          failures.map((entry) => entry.assistant),
        ),
        arrayParameter(
          'text',
          failures.map((entry) => entry.artifact),
        ),
        arrayParameter(
          'text',
          failures.map((entry) => entry.endedReason),
        ),
        arrayParameter(
          'int4',
          failures.map((entry) => entry.n),
        ),
      ],
    );
    for (const entry of failures) {
      touchedHours.add(entry.hour);
      if (entry.n < 0) removed = true;
    }
  }
  if (durations.length > 0) {
    await client.query(
      `INSERT INTO ${tableName(healthDailyDurations)} AS t (day, assistant, bucket, calls)
       SELECT day, assistant, ${durationBucketSql('duration')}, sum(n)::int
       FROM unnest($1::timestamptz[], $2::text[], $3::float8[], $4::int[]) AS change(day, assistant, duration, n)
       GROUP BY 1, 2, 3
       ON CONFLICT (day, assistant, bucket) DO UPDATE SET calls = t.calls + excluded.calls`,
      [
        arrayParameter(
          'timestamptz',
          durations.map((entry) => entry.day),
        ),
        arrayParameter(
          'text',
          durations.map((entry) => entry.assistant),
        ),
        arrayParameter(
          'float8',
          durations.map((entry) => entry.duration),
        ),
        arrayParameter(
          'int4',
          durations.map((entry) => entry.n),
        ),
      ],
    );
    for (const entry of durations) {
      touchedDays.add(entry.day);
      if (entry.n < 0) removed = true;
    }
  }
  if (removed) {
    const hours = [...touchedHours];
    const days = [...touchedDays];
    await client.query(
      `DELETE FROM ${tableName(healthHourlyCalls)} WHERE hour = ANY($1::timestamptz[]) AND started = 0 AND ended = 0 AND failed = 0`,
      [arrayParameter('timestamptz', hours)],
    );
    await client.query(
      `DELETE FROM ${tableName(healthHourlyFailures)} WHERE hour = ANY($1::timestamptz[]) AND failures = 0`,
      [arrayParameter('timestamptz', hours)],
    );
    await client.query(
      `DELETE FROM ${tableName(healthDailyDurations)} WHERE day = ANY($1::timestamptz[]) AND calls = 0`,
      [arrayParameter('timestamptz', days)],
    );
  }
};

/**
 * The summaries computed in one pass from `calls` and `terminations` (in the current schema), as the
 * projection would have written them: for checking the two agree, and for filling the summaries of
 * read models loaded in bulk without the projector.
 */
export const healthHourlyFromReadModelsSql = [
  `INSERT INTO ${tableName(healthHourlyCalls)} (hour, assistant, started, ended, failed)
   SELECT hour, assistant, sum(started)::int, sum(ended)::int, sum(failed)::int FROM (
     SELECT date_trunc('hour', first_event_at, 'UTC') AS hour, assistant, 1 AS started, 0 AS ended, 0 AS failed
       FROM calls WHERE first_event_at IS NOT NULL
     UNION ALL
     SELECT date_trunc('hour', ended_at, 'UTC'), assistant, 0,
            (outcome <> 'ended-with-debugging')::int, (outcome = 'ended-with-debugging')::int
       FROM terminations
   ) AS contributions GROUP BY 1, 2`,
  `INSERT INTO ${tableName(healthHourlyFailures)} (hour, assistant, artifact_group, ended_reason, failures)
   SELECT date_trunc('hour', ended_at, 'UTC'), assistant, debugging_artifact_group, ended_reason, count(*)::int
     FROM terminations WHERE outcome = 'ended-with-debugging' GROUP BY 1, 2, 3, 4`,
  `INSERT INTO ${tableName(healthDailyDurations)} (day, assistant, bucket, calls)
   SELECT date_trunc('day', ended_at, 'UTC'), assistant, ${durationBucketSql('duration_seconds')}, count(*)::int
     FROM terminations WHERE duration_seconds IS NOT NULL AND duration_seconds <> 'NaN'::float8
       AND duration_seconds NOT IN ('Infinity'::float8, '-Infinity'::float8)
     GROUP BY 1, 2, 3`,
] as const;
