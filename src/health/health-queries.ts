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
 */
import type pg from 'pg';

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
  /** One artifact of the group as received (the smallest). */
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

// $1 from, $2 to, $3 bucket seconds, $4 assistant (null: all), $5 groups listed.
const failuresSql = `
WITH failures AS MATERIALIZED (
  SELECT debugging_artifact_group AS artifact_group, debugging_artifact, ended_reason, ${bucketExpression('ended_at')} AS bucket
  FROM terminations
  WHERE ended_at >= $1 AND ended_at < $2 AND outcome = 'ended-with-debugging'
    AND ($4::text IS NULL OR assistant = $4)
),
artifact_groups AS (
  SELECT artifact_group, count(*) AS total, min(debugging_artifact) AS example,
         row_number() OVER (ORDER BY count(*) DESC, artifact_group ASC NULLS LAST) AS rank
  FROM failures GROUP BY artifact_group
),
reason_groups AS (
  SELECT ended_reason, count(*) AS total,
         row_number() OVER (ORDER BY count(*) DESC, ended_reason ASC NULLS LAST) AS rank
  FROM failures GROUP BY ended_reason
)
SELECT 'artifact' AS kind, g.rank, g.artifact_group AS key, g.example, g.total::int AS total,
       (SELECT count(*) FROM artifact_groups)::int AS groups, f.bucket::text AS bucket, count(*)::int AS count
FROM failures f JOIN artifact_groups g ON f.artifact_group IS NOT DISTINCT FROM g.artifact_group
WHERE g.rank <= $5
GROUP BY g.rank, g.artifact_group, g.example, g.total, f.bucket
UNION ALL
SELECT 'reason', g.rank, g.ended_reason, NULL, g.total::int,
       (SELECT count(*) FROM reason_groups)::int, f.bucket::text, count(*)::int
FROM failures f JOIN reason_groups g ON f.ended_reason IS NOT DISTINCT FROM g.ended_reason
WHERE g.rank <= $5
GROUP BY g.rank, g.ended_reason, g.total, f.bucket`;

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
  example: string | null;
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
    const failureRows = (
      await client.query<FailureRow>(failuresSql, [
        from,
        to,
        bucketSeconds,
        assistant,
        query.groups ?? maxGroups,
      ])
    ).rows;
    const volumeRows = (
      await client.query<{ kind: string; bucket: string; count: number }>(volumeSql, [
        from,
        to,
        bucketSeconds,
        assistant,
      ])
    ).rows;
    const durationRows = (
      await client.query<{ assistant: string | null; calls: number; percentiles: number[] }>(durationsSql, [
        from,
        to,
        assistant,
        maxAssistants,
      ])
    ).rows;
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
          group = { artifactGroup: row.key, example: row.example, count: row.total, trend: emptyTrend() };
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
      durations: durationRows.map((row) => ({
        assistant: row.assistant,
        calls: row.calls,
        p50: row.percentiles[0]!,
        p95: row.percentiles[1]!,
        p99: row.percentiles[2]!,
      })),
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
