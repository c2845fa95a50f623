/**
 * The integration-health figures, computed in SQL over the read models (`calls`, `terminations`)
 * for a period `[from, to)`, optionally for one assistant:
 *
 * - failures (ended calls whose outcome is `ended-with-debugging`, by `ended_at`), grouped by
 *   debugging artifact (normalised, see `artifact-groups.ts`) and by ended reason, each group with
 *   its count per bucket (the trend); the largest groups only, plus how many groups there are;
 * - call volume per bucket: calls started (first event), ended and failed (end time);
 * - duration percentiles (p50/p95/p99, interpolated) per assistant, over the ended calls with a duration;
 * - stale calls: still `in-progress`, their last event in the period and older than the threshold
 *   (no terminal event arrived: a missed webhook).
 *
 * All statements run in one read-only, repeatable-read transaction (one snapshot, so the figures
 * agree with each other), under their own statement timeout.
 *
 * When the buckets are whole hours (periods over 15 hours), the period's whole hours are read from
 * the hourly summaries the `calls` projection keeps (`projections/health-hourly/`) and only its
 * ragged ends from `calls` and `terminations`, so a month costs about as much as a day. The counts
 * are the same either way; the duration percentiles then come from daily histograms (and the raw
 * rows of the ragged days put in the same buckets), within 2% (plus 0.1 s) of the exact figure.
 */
import type pg from 'pg';
import { durationBucketBounds, durationBucketSql } from '../../projections/health-hourly/read-model.ts';

/** The widths a bucket may have, smallest first; the smallest giving at most `maxBuckets` wins. */
export const bucketWidthsSeconds = [
  60,
  300,
  900,
  3_600,
  3 * 3_600,
  6 * 3_600,
  12 * 3_600,
  86_400,
  7 * 86_400,
] as const;
export const maxBuckets = 60;
/** The longest period one request may cover. */
export const maxPeriodDays = 366;
/** Groups, assistants and stale calls listed at most. */
export const maxGroups = 20;
export const maxAssistants = 50;
export const maxStaleCallsListed = 50;

export interface HealthQuery {
  readonly from: Date;
  readonly to: Date;
  readonly assistant: string | undefined;
  /** The time stale calls are measured against. */
  readonly now: Date;
  readonly staleAfterSeconds: number;
  /** Stale calls are those whose last event is at or after this (default `from`). */
  readonly staleSince?: Date;
  readonly statementTimeoutMs: number;
  /** Defaults to `maxGroups`. */
  readonly groups?: number;
}

export interface ArtifactGroup {
  /** The normalised artifact; null for failures without one. */
  readonly artifactGroup: string | null;
  /** One artifact of the group as received: the latest in the period. */
  readonly example: string | null;
  readonly count: number;
  readonly trend: number[];
}

export interface EndedReasonGroup {
  readonly endedReason: string | null;
  readonly count: number;
  readonly trend: number[];
}

export interface AssistantDurations {
  readonly assistant: string | null;
  readonly calls: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

export interface StaleCall {
  readonly callId: string;
  readonly caller: string | null;
  readonly assistant: string | null;
  readonly firstEventAt: Date | null;
  readonly lastEventAt: Date;
}

export interface HealthFigures {
  readonly from: Date;
  readonly to: Date;
  readonly assistant: string | undefined;
  readonly bucketSeconds: number;
  /** Start of each bucket; the first may start before `from`, the last ends at or after `to`. */
  readonly buckets: Date[];
  readonly volume: { readonly started: number[]; readonly ended: number[]; readonly failed: number[] };
  readonly failures: {
    readonly total: number;
    readonly artifactGroupCount: number;
    readonly endedReasonCount: number;
    readonly byArtifact: ArtifactGroup[];
    readonly byEndedReason: EndedReasonGroup[];
  };
  readonly durations: AssistantDurations[];
  readonly staleCalls: {
    readonly thresholdSeconds: number;
    /** Last events before this are stale. */
    readonly lastEventBefore: Date;
    readonly total: number;
    readonly oldest: StaleCall[];
  };
}

/** The bucket width for a period: the smallest that keeps the count at `maxBuckets` or fewer. */
export const bucketSecondsFor = (from: Date, to: Date): number => {
  for (const width of bucketWidthsSeconds) {
    const first = Math.floor(from.getTime() / 1000 / width);
    const last = Math.floor((to.getTime() - 1) / 1000 / width);
    if (last - first + 1 <= maxBuckets) return width;
  }
  // Only past `maxPeriodDays`, which requests cannot reach.
  return bucketWidthsSeconds.at(-1)!;
};

// date_part (double precision), not extract (numeric): several times faster over many rows.
const bucketExpression = (column: string) => `floor(date_part('epoch', ${column}) / $3)::bigint`;

// The failures of the period, per artifact group, ended reason and bucket (`n` of them), as the
// rows of `failures`; then the largest groups each way with their trends, and how many groups.
// $1 from, $2 to, $3 bucket seconds, $4 assistant (null: all), $5 groups listed.
const rankedFailuresSql = (failures: string) => `
WITH failures AS MATERIALIZED (${failures}),
artifact_groups AS (
  SELECT artifact_group, sum(n) AS total,
         row_number() OVER (ORDER BY sum(n) DESC, artifact_group ASC NULLS LAST) AS rank
  FROM failures GROUP BY artifact_group
),
reason_groups AS (
  SELECT ended_reason, sum(n) AS total,
         row_number() OVER (ORDER BY sum(n) DESC, ended_reason ASC NULLS LAST) AS rank
  FROM failures GROUP BY ended_reason
)
SELECT 'artifact' AS kind, g.rank, g.artifact_group AS key, g.total::int AS total,
       (SELECT count(*) FROM artifact_groups)::int AS groups, f.bucket::text AS bucket, sum(f.n)::int AS count
FROM failures f JOIN artifact_groups g ON f.artifact_group IS NOT DISTINCT FROM g.artifact_group
WHERE g.rank <= $5
GROUP BY g.rank, g.artifact_group, g.total, f.bucket
UNION ALL
SELECT 'reason', g.rank, g.ended_reason, g.total::int,
       (SELECT count(*) FROM reason_groups)::int, f.bucket::text, sum(f.n)::int
FROM failures f JOIN reason_groups g ON f.ended_reason IS NOT DISTINCT FROM g.ended_reason
WHERE g.rank <= $5
GROUP BY g.rank, g.ended_reason, g.total, f.bucket`;

const failuresSql = rankedFailuresSql(`
  SELECT debugging_artifact_group AS artifact_group, ended_reason, ${bucketExpression('ended_at')} AS bucket, 1 AS n
  FROM terminations
  WHERE ended_at >= $1 AND ended_at < $2 AND outcome = 'ended-with-debugging'
    AND ($4::text IS NULL OR assistant = $4)`);

// The same over the hourly summary for [$6, $7), and the raw rows of [$1, $6) and [$7, $2).
const summarizedFailuresSql = rankedFailuresSql(`
  SELECT artifact_group, ended_reason, bucket, sum(n) AS n FROM (
    SELECT debugging_artifact_group AS artifact_group, ended_reason, ${bucketExpression('ended_at')} AS bucket, 1 AS n
    FROM terminations
    WHERE ((ended_at >= $1 AND ended_at < $6) OR (ended_at >= $7 AND ended_at < $2))
      AND outcome = 'ended-with-debugging' AND ($4::text IS NULL OR assistant = $4)
    UNION ALL
    SELECT artifact_group, ended_reason, ${bucketExpression('hour')}, failures
    FROM health_hourly_failures
    WHERE hour >= $6 AND hour < $7 AND ($4::text IS NULL OR assistant = $4)
  ) AS contributions
  GROUP BY 1, 2, 3`);

// The latest artifact of each listed group in the period: its example.
// $1 from, $2 to, $3 assistant, $4 groups.
const examplesSql = `
SELECT g.artifact_group, (
  SELECT debugging_artifact FROM terminations
  WHERE outcome = 'ended-with-debugging' AND debugging_artifact_group = g.artifact_group
    AND ended_at >= $1 AND ended_at < $2 AND ($3::text IS NULL OR assistant = $3)
  ORDER BY ended_at DESC LIMIT 1
) AS example
FROM unnest($4::text[]) AS g(artifact_group)`;

// $1 from, $2 to, $3 bucket seconds, $4 assistant.
const volumeSql = `
SELECT 'started' AS kind, ${bucketExpression('first_event_at')}::text AS bucket, count(*)::int AS count
FROM calls
WHERE first_event_at >= $1 AND first_event_at < $2 AND ($4::text IS NULL OR assistant = $4)
GROUP BY 2
UNION ALL
SELECT outcome, ${bucketExpression('ended_at')}::text, count(*)::int
FROM terminations
WHERE ended_at >= $1 AND ended_at < $2 AND ($4::text IS NULL OR assistant = $4)
GROUP BY 1, 2`;

// $1 from, $2 to, $3 assistant, $4 assistants listed.
const durationsSql = `
SELECT assistant, count(*)::int AS calls,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_seconds) AS percentiles
FROM terminations
WHERE ended_at >= $1 AND ended_at < $2 AND duration_seconds IS NOT NULL
  AND ($3::text IS NULL OR assistant = $3)
GROUP BY assistant
ORDER BY count(*) DESC, assistant ASC NULLS LAST
LIMIT $4`;

// Volume over the hourly summary for [$5, $6), and the raw rows of [$1, $5) and [$6, $2).
// $1 from, $2 to, $3 bucket seconds, $4 assistant.
const summarizedVolumeSql = `
SELECT kind, bucket::text, sum(n)::int AS count FROM (
  SELECT 'started' AS kind, ${bucketExpression('first_event_at')} AS bucket, count(*) AS n
  FROM calls
  WHERE ((first_event_at >= $1 AND first_event_at < $5) OR (first_event_at >= $6 AND first_event_at < $2))
    AND ($4::text IS NULL OR assistant = $4)
  GROUP BY 2
  UNION ALL
  SELECT outcome, ${bucketExpression('ended_at')}, count(*)
  FROM terminations
  WHERE ((ended_at >= $1 AND ended_at < $5) OR (ended_at >= $6 AND ended_at < $2))
    AND ($4::text IS NULL OR assistant = $4)
  GROUP BY 1, 2
  UNION ALL
  -- Added up per bucket first, then one row per kind.
  SELECT counted.kind, per_bucket.bucket, counted.n
  FROM (
    SELECT ${bucketExpression('hour')} AS bucket, sum(started) AS started, sum(ended) AS ended, sum(failed) AS failed
    FROM health_hourly_calls
    WHERE hour >= $5 AND hour < $6 AND ($4::text IS NULL OR assistant = $4)
    GROUP BY 1
  ) AS per_bucket
  CROSS JOIN LATERAL (VALUES ('started', per_bucket.started), ('ended', per_bucket.ended),
                             ('ended-with-debugging', per_bucket.failed)) AS counted(kind, n)
) AS contributions
GROUP BY 1, 2
HAVING sum(n) <> 0`;

// The durations histogram of the busiest assistants: the daily summary for the whole days [$5, $6),
// the raw rows of [$1, $5) and [$6, $2) put in the same buckets. $3 assistant, $4 assistants listed.
const summarizedDurationsSql = `
WITH histogram AS (
  SELECT assistant, bucket, sum(n) AS n FROM (
    SELECT assistant, ${durationBucketSql('duration_seconds')} AS bucket, count(*) AS n
    FROM terminations
    WHERE ((ended_at >= $1 AND ended_at < $5) OR (ended_at >= $6 AND ended_at < $2))
      AND duration_seconds IS NOT NULL AND ($3::text IS NULL OR assistant = $3)
    GROUP BY 1, 2
    UNION ALL
    SELECT assistant, bucket, sum(calls)
    FROM health_daily_durations
    WHERE day >= $5 AND day < $6 AND ($3::text IS NULL OR assistant = $3)
    GROUP BY 1, 2
  ) AS contributions
  GROUP BY 1, 2
  HAVING sum(n) <> 0
),
assistants AS (
  SELECT assistant, sum(n) AS calls,
         row_number() OVER (ORDER BY sum(n) DESC, assistant ASC NULLS LAST) AS rank
  FROM histogram GROUP BY assistant
)
SELECT a.rank::int AS rank, a.assistant, a.calls::int AS calls, h.bucket::int AS bucket, h.n::int AS n
FROM histogram h JOIN assistants a ON h.assistant IS NOT DISTINCT FROM a.assistant
WHERE a.rank <= $4
ORDER BY a.rank, h.bucket`;

/**
 * PostgreSQL's `percentile_cont` (linear interpolation between the closest ranks) over a durations
 * histogram (`[bucket, calls]` in bucket order): each rank's value is placed within its bucket by its
 * position among the bucket's calls. The true value of a rank lies in the same bucket, so the result
 * is within 2% (plus 0.1 s, the width of the first bucket) of the exact figure.
 */
export const percentileOfHistogram = (
  histogram: readonly (readonly [bucket: number, calls: number])[],
  fraction: number,
): number => {
  const total = histogram.reduce((sum, [, calls]) => sum + calls, 0);
  const valueAtRank = (rank: number): number => {
    let before = 0;
    for (const [bucket, calls] of histogram) {
      if (rank < before + calls) {
        const [low, high] = durationBucketBounds(bucket);
        return high === Infinity ? low : low + ((high - low) * (rank - before + 0.5)) / calls;
      }
      before += calls;
    }
    return Number.NaN;
  };
  const position = fraction * (total - 1);
  const lower = Math.floor(position);
  const lowerValue = valueAtRank(lower);
  return position === lower
    ? lowerValue
    : lowerValue + (position - lower) * (valueAtRank(lower + 1) - lowerValue);
};

/**
 * The whole hours of the period the hourly summaries answer for, as `[start, end)`; the raw rows
 * answer for the rest. None (an empty range at `to`) when the buckets are narrower than an hour:
 * an hour's summary cannot be split between buckets.
 */
export const summarizedHoursOf = (from: Date, to: Date, bucketSeconds: number): readonly [Date, Date] =>
  wholeUnitsOf(from, to, bucketSeconds % 3_600 === 0 ? 3_600_000 : undefined);

/** The whole UTC days of the period the daily durations answer for, likewise. */
export const summarizedDaysOf = (from: Date, to: Date, bucketSeconds: number): readonly [Date, Date] =>
  wholeUnitsOf(from, to, bucketSeconds % 3_600 === 0 ? 86_400_000 : undefined);

const wholeUnitsOf = (from: Date, to: Date, unitMs: number | undefined): readonly [Date, Date] => {
  if (unitMs === undefined) return [to, to];
  const start = Math.ceil(from.getTime() / unitMs) * unitMs;
  const end = Math.floor(to.getTime() / unitMs) * unitMs;
  return start < end ? [new Date(start), new Date(end)] : [to, to];
};

// $1 from, $2 lastEventBefore (exclusive), $3 assistant, $4 listed.
const staleSql = `
SELECT call_id, caller, assistant, first_event_at, last_event_at, count(*) OVER ()::int AS total
FROM calls
WHERE status = 'in-progress' AND last_event_at >= $1 AND last_event_at < $2
  AND ($3::text IS NULL OR assistant = $3)
ORDER BY last_event_at ASC, call_id ASC
LIMIT $4`;

interface FailureRow {
  kind: 'artifact' | 'reason';
  rank: string;
  key: string | null;
  total: number;
  groups: number;
  bucket: string;
  count: number;
}

interface StaleRow {
  call_id: string;
  caller: string | null;
  assistant: string | null;
  first_event_at: Date | null;
  last_event_at: Date;
  total: number;
}

/** Computes every figure in one snapshot. `client` must not be in a transaction. */
export const computeHealth = async (client: pg.ClientBase, query: HealthQuery): Promise<HealthFigures> => {
  const { from, to } = query;
  const bucketSeconds = bucketSecondsFor(from, to);
  const firstBucket = Math.floor(from.getTime() / 1000 / bucketSeconds);
  const lastBucket = Math.floor((to.getTime() - 1) / 1000 / bucketSeconds);
  const bucketCount = lastBucket - firstBucket + 1;
  const buckets = Array.from(
    { length: bucketCount },
    (_, index) => new Date((firstBucket + index) * bucketSeconds * 1000),
  );
  const emptyTrend = () => new Array<number>(bucketCount).fill(0);
  const bucketIndex = (bucket: string) => Number(bucket) - firstBucket;
  const assistant = query.assistant ?? null;
  const lastEventBefore = new Date(
    Math.min(to.getTime(), query.now.getTime() - query.staleAfterSeconds * 1000),
  );

  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await client.query(`SET LOCAL statement_timeout = ${Math.floor(query.statementTimeoutMs)}`);
    // Whole hours come from the hourly summaries, the rest of the period from the raw rows.
    const [hoursFrom, hoursTo] = summarizedHoursOf(from, to, bucketSeconds);
    const summarized = hoursFrom.getTime() < hoursTo.getTime();
    const groups = query.groups ?? maxGroups;
    const failureRows = (
      await client.query<FailureRow>(
        summarized ? summarizedFailuresSql : failuresSql,
        summarized
          ? [from, to, bucketSeconds, assistant, groups, hoursFrom, hoursTo]
          : [from, to, bucketSeconds, assistant, groups],
      )
    ).rows;
    const listedGroups = [
      ...new Set(
        failureRows.flatMap((row) => (row.kind === 'artifact' && row.key !== null ? [row.key] : [])),
      ),
    ];
    const examples = new Map(
      listedGroups.length === 0
        ? []
        : (
            await client.query<{ artifact_group: string; example: string | null }>(examplesSql, [
              from,
              to,
              assistant,
              listedGroups,
            ])
          ).rows.map((row) => [row.artifact_group, row.example]),
    );
    const volumeRows = (
      await client.query<{ kind: string; bucket: string; count: number }>(
        summarized ? summarizedVolumeSql : volumeSql,
        summarized
          ? [from, to, bucketSeconds, assistant, hoursFrom, hoursTo]
          : [from, to, bucketSeconds, assistant],
      )
    ).rows;
    const durations: AssistantDurations[] = [];
    if (summarized) {
      const histogramRows = (
        await client.query<{
          rank: number;
          assistant: string | null;
          calls: number;
          bucket: number;
          n: number;
        }>(summarizedDurationsSql, [
          from,
          to,
          assistant,
          maxAssistants,
          ...summarizedDaysOf(from, to, bucketSeconds),
        ])
      ).rows;
      for (let index = 0; index < histogramRows.length;) {
        const first = histogramRows[index]!;
        const histogram: [number, number][] = [];
        for (; index < histogramRows.length && histogramRows[index]!.rank === first.rank; index += 1) {
          histogram.push([histogramRows[index]!.bucket, histogramRows[index]!.n]);
        }
        durations.push({
          assistant: first.assistant,
          calls: first.calls,
          p50: percentileOfHistogram(histogram, 0.5),
          p95: percentileOfHistogram(histogram, 0.95),
          p99: percentileOfHistogram(histogram, 0.99),
        });
      }
    } else {
      const durationRows = (
        await client.query<{ assistant: string | null; calls: number; percentiles: number[] }>(durationsSql, [
          from,
          to,
          assistant,
          maxAssistants,
        ])
      ).rows;
      for (const row of durationRows) {
        durations.push({
          assistant: row.assistant,
          calls: row.calls,
          p50: row.percentiles[0]!,
          p95: row.percentiles[1]!,
          p99: row.percentiles[2]!,
        });
      }
    }
    const staleSince = query.staleSince ?? from;
    const staleRows =
      lastEventBefore.getTime() > staleSince.getTime()
        ? (
            await client.query<StaleRow>(staleSql, [
              staleSince,
              lastEventBefore,
              assistant,
              maxStaleCallsListed,
            ])
          ).rows
        : [];
    await client.query('COMMIT');

    const artifactGroups = new Map<number, ArtifactGroup>();
    const reasonGroups = new Map<number, EndedReasonGroup>();
    let artifactGroupCount = 0;
    let endedReasonCount = 0;
    for (const row of failureRows) {
      const rank = Number(row.rank);
      if (row.kind === 'artifact') {
        artifactGroupCount = row.groups;
        let group = artifactGroups.get(rank);
        if (!group) {
          group = {
            artifactGroup: row.key,
            example: row.key === null ? null : (examples.get(row.key) ?? null),
            count: row.total,
            trend: emptyTrend(),
          };
          artifactGroups.set(rank, group);
        }
        group.trend[bucketIndex(row.bucket)] = row.count;
      } else {
        endedReasonCount = row.groups;
        let group = reasonGroups.get(rank);
        if (!group) {
          group = { endedReason: row.key, count: row.total, trend: emptyTrend() };
          reasonGroups.set(rank, group);
        }
        group.trend[bucketIndex(row.bucket)] = row.count;
      }
    }
    const byRank = <T>(groups: Map<number, T>): T[] =>
      [...groups.entries()].sort(([a], [b]) => a - b).map(([, group]) => group);

    const volume = { started: emptyTrend(), ended: emptyTrend(), failed: emptyTrend() };
    for (const row of volumeRows) {
      const index = bucketIndex(row.bucket);
      if (row.kind === 'started') volume.started[index] = row.count;
      else {
        volume.ended[index] = (volume.ended[index] ?? 0) + row.count;
        if (row.kind === 'ended-with-debugging') volume.failed[index] = row.count;
      }
    }
    const byArtifact = byRank(artifactGroups);
    return {
      from,
      to,
      assistant: query.assistant,
      bucketSeconds,
      buckets,
      volume,
      failures: {
        total: volume.failed.reduce((sum, count) => sum + count, 0),
        artifactGroupCount,
        endedReasonCount,
        byArtifact,
        byEndedReason: byRank(reasonGroups),
      },
      durations,
      staleCalls: {
        thresholdSeconds: query.staleAfterSeconds,
        lastEventBefore,
        total: staleRows[0]?.total ?? 0,
        oldest: staleRows.map((row) => ({
          callId: row.call_id,
          caller: row.caller,
          assistant: row.assistant,
          firstEventAt: row.first_event_at,
          lastEventAt: row.last_event_at,
        })),
      },
    };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
};
