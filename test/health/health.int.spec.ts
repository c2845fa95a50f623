/**
 * `GET /health` against figures computed here from the raw webhooks: a known set of calls enters
 * through the real signed webhook, the real projector projects it, and every figure the API gives
 * (volume per bucket, failures by artifact group and by ended reason with their trends, duration
 * percentiles per assistant, stale calls) is compared with the same figure computed from the events
 * as sent. Also the rule that groups artifacts, run by PostgreSQL, and the bad requests.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { startProjector, type RunningProjector } from '../../src/projector/projector.ts';
import { artifactGroupOf, artifactGroupSql } from '../../src/health/artifact-groups.ts';
import type { HealthReport } from '../../src/health/health-routes.ts';
import { buildTestApp, signatureHeaders, testConfig, type TestApp } from '../support/app.ts';
import { apiToken, bearer, openAuditStores, runTag, type AuditStores } from '../audit/support.ts';
import { escapeText } from '../../src/console/html.ts';
import { healthHourlyFromReadModelsSql } from '../../projections/health-hourly/read-model.ts';
import { projectionNamed } from '../../projections/registry.ts';
import { callStreamPrefix } from '../../src/archive/streams.ts';
import { defaultRebuildOptions, rebuildProjection } from '../../src/projector/rebuild.ts';

const tag = runTag();
const assistantA = '+31850000101';
const assistantB = '+31850000102';
const now = Date.parse('2025-08-28T08:02:00.000Z');
const from = '2025-08-28T02:00:00.000Z';
const to = '2025-08-28T08:00:00.000Z';
const staleSeconds = 3_600;

/** A small deterministic generator, so the data set is the same on every run. */
const random = (() => {
  let state = 20_250_828;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
})();
const below = (n: number) => Math.floor(random() * n);
const hex = (length: number) =>
  Array.from({ length }, (_, index) => '0123456789abcdef'[index === 0 ? 1 + below(9) : below(16)]).join('');

/** Failures as a failing integration reports them, with the group each must land in. */
const failureKinds: readonly { artifact: () => string | null; group: string | null; reason: string }[] = [
  {
    artifact: () => `Tool call ${randomUUID()} timed out after ${1000 + below(9000)} ms`,
    group: 'Tool call <uuid> timed out after <n> ms',
    reason: 'tool-timeout',
  },
  {
    artifact: () =>
      `upstream 50${below(4)} at 2025-08-28T0${below(8)}:1${below(9)}:0${below(9)}.${below(900) + 100}Z for request req_${hex(6)}Xy${below(90) + 10}Zq${hex(4)}`,
    group: 'upstream <n> at <time> for request <id>',
    reason: 'pipeline-error',
  },
  {
    artifact: () => `transcriber crashed:   segfault at 0x${hex(8)}`,
    group: 'transcriber crashed: segfault at <hex>',
    reason: 'pipeline-error',
  },
  {
    artifact: () => `<script>alert(${below(100)})</script> session ${hex(12)} closed`,
    group: '<script>alert(<n>)</script> session <hex> closed',
    reason: 'assistant-error',
  },
  { artifact: () => null, group: null, reason: 'unknown-error' },
];

interface SentEvent {
  readonly callId: string;
  readonly body: Record<string, unknown>;
}

interface PlannedCall {
  readonly callId: string;
  readonly assistant: string;
  readonly events: SentEvent[];
}

const planCall = (index: number, startMs: number, inProgress = false): PlannedCall => {
  const callId = `health-${tag}-${index}`;
  const assistant = index % 3 === 0 ? assistantB : assistantA;
  const base = {
    callSession: callId,
    fromCaller: `+3161234${String(index).padStart(4, '0')}`,
    toAssistant: assistant,
  };
  const events: SentEvent[] = [
    { callId, body: { ...base, eventType: 'status-update', status: 'in-progress', eventTimestamp: startMs } },
  ];
  const kind = below(10);
  const lengthMs = (20 + below(600)) * 1000 + below(1000);
  if (inProgress || kind < 2) return { callId, assistant, events }; // still in progress (stale or not)
  const endMs = startMs + lengthMs;
  if (kind < 6) {
    events.push({
      callId,
      body: {
        ...base,
        eventType: 'status-update',
        status: 'ended',
        reason: 'customer-ended-call',
        eventTimestamp: endMs,
      },
    });
  } else {
    const failure = failureKinds[below(failureKinds.length)]!;
    const artifact = failure.artifact();
    events.push({
      callId,
      body: {
        ...base,
        eventType: 'status-update',
        status: 'ended-with-debugging',
        reason: failure.reason,
        ...(artifact === null ? {} : { 'debugging-artifact': artifact }),
        eventTimestamp: endMs,
      },
    });
  }
  // Most calls also get their report, whose stated length is the duration; the rest are timed by their events.
  if (below(4) > 0) {
    events.push({
      callId,
      body: {
        callId,
        fromCaller: base.fromCaller,
        toAssistant: assistant,
        eventType: 'end-of-call-report',
        transcriptText: 'Hello.',
        summaryText: 'A call.',
        callLengthSeconds: Math.round(lengthMs / 1000) + below(5),
        eventTimestamp: endMs + 2_000,
      },
    });
  }
  return { callId, assistant, events };
};

/** Calls from 01:00 (before the period) to 07:55 (inside it, still ending after it for some). */
const plannedCalls: PlannedCall[] = [
  ...Array.from({ length: 60 }, (_, index) =>
    planCall(index, Date.parse('2025-08-28T01:00:00.000Z') + index * 414_000 + below(60_000)),
  ),
  // Still in progress: before the period, stale in it, and too recent to be stale.
  planCall(60, Date.parse('2025-08-28T01:30:00.000Z'), true),
  planCall(61, Date.parse('2025-08-28T03:00:00.000Z'), true),
  planCall(62, Date.parse('2025-08-28T07:50:00.000Z'), true),
];
const sentEvents = plannedCalls.flatMap((call) => call.events);

// ---- the figures, computed from the events as sent ----

interface ExpectedCall {
  readonly callId: string;
  readonly assistant: string;
  readonly firstAt: number;
  readonly lastAt: number;
  readonly endedAt: number | undefined;
  readonly status: string;
  readonly reason: string | null;
  readonly artifact: string | null;
  readonly duration: number | undefined;
}

const expectedCalls = (): ExpectedCall[] =>
  plannedCalls.map((call) => {
    const times = call.events.map((event) => event.body['eventTimestamp'] as number);
    const ending = call.events.find(
      (event) => event.body['eventType'] === 'status-update' && event.body['status'] !== 'in-progress',
    );
    const report = call.events.find((event) => event.body['eventType'] === 'end-of-call-report');
    const endedAt = ending?.body['eventTimestamp'] as number | undefined;
    const startedAt = call.events[0]!.body['eventTimestamp'] as number;
    return {
      callId: call.callId,
      assistant: call.assistant,
      firstAt: Math.min(...times),
      lastAt: Math.max(...times),
      endedAt,
      status: (ending?.body['status'] as string | undefined) ?? 'in-progress',
      reason: (ending?.body['reason'] as string | undefined) ?? null,
      artifact: (ending?.body['debugging-artifact'] as string | undefined) ?? null,
      duration:
        endedAt === undefined
          ? undefined
          : ((report?.body['callLengthSeconds'] as number | undefined) ?? (endedAt - startedAt) / 1000),
    };
  });

/** PostgreSQL's `percentile_cont`: linear interpolation between the closest ranks. */
const percentile = (sorted: readonly number[], fraction: number): number => {
  const position = fraction * (sorted.length - 1);
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower);
};

interface Period {
  readonly from: string;
  readonly to: string;
  readonly bucketSeconds: number;
}

/** Six hours in at most 60 buckets: 15 minutes each, all from the raw rows. */
const sixHours: Period = { from, to, bucketSeconds: 900 };

const expectedReport = (assistant: string | undefined, period: Period = sixHours) => {
  const { bucketSeconds } = period;
  const fromMs = Date.parse(period.from);
  const toMs = Date.parse(period.to);
  const firstBucket = Math.floor(fromMs / 1000 / bucketSeconds);
  const bucketCount = Math.floor((toMs - 1) / 1000 / bucketSeconds) - firstBucket + 1;
  const bucketOf = (at: number) => Math.floor(at / 1000 / bucketSeconds) - firstBucket;
  const inPeriod = (at: number | undefined): at is number => at !== undefined && at >= fromMs && at < toMs;
  const callsSeen = expectedCalls().filter((call) => assistant === undefined || call.assistant === assistant);
  const trend = () => new Array<number>(bucketCount).fill(0);
  const started = trend();
  const ended = trend();
  const failed = trend();
  const byArtifact = new Map<string | null, { count: number; trend: number[]; examples: string[] }>();
  const byReason = new Map<string | null, { count: number; trend: number[] }>();
  const durations = new Map<string, number[]>();
  for (const call of callsSeen) {
    if (inPeriod(call.firstAt)) started[bucketOf(call.firstAt)]! += 1;
    if (!inPeriod(call.endedAt)) continue;
    const bucket = bucketOf(call.endedAt);
    ended[bucket]! += 1;
    if (call.duration !== undefined)
      durations.set(call.assistant, [...(durations.get(call.assistant) ?? []), call.duration]);
    if (call.status !== 'ended-with-debugging') continue;
    failed[bucket]! += 1;
    const kind = failureKinds.find(
      (candidate) =>
        candidate.reason === call.reason &&
        (call.artifact === null) === (candidate.group === null) &&
        (call.artifact === null || artifactGroupOf(call.artifact) === candidate.group),
    );
    const group = call.artifact === null ? null : (kind?.group ?? `unexpected group for ${call.artifact}`);
    const artifactEntry = byArtifact.get(group) ?? { count: 0, trend: trend(), examples: [] };
    artifactEntry.count += 1;
    artifactEntry.trend[bucket]! += 1;
    if (call.artifact !== null) artifactEntry.examples.push(call.artifact);
    byArtifact.set(group, artifactEntry);
    const reasonEntry = byReason.get(call.reason) ?? { count: 0, trend: trend() };
    reasonEntry.count += 1;
    reasonEntry.trend[bucket]! += 1;
    byReason.set(call.reason, reasonEntry);
  }
  const lastEventBefore = Math.min(toMs, now - staleSeconds * 1000);
  const stale = callsSeen
    .filter((call) => call.status === 'in-progress' && call.lastAt >= fromMs && call.lastAt < lastEventBefore)
    .sort((a, b) => a.lastAt - b.lastAt || (a.callId < b.callId ? -1 : 1));
  return {
    bucketCount,
    firstBucketStart: new Date(firstBucket * bucketSeconds * 1000).toISOString(),
    started,
    ended,
    failed,
    byArtifact: [...byArtifact.entries()]
      .map(([artifactGroup, entry]) => ({
        artifactGroup,
        count: entry.count,
        trend: entry.trend,
        examples: entry.examples,
      }))
      .sort((a, b) => b.count - a.count),
    byReason: [...byReason.entries()]
      .map(([endedReason, entry]) => ({ endedReason, count: entry.count, trend: entry.trend }))
      .sort((a, b) => b.count - a.count),
    durations: [...durations.entries()]
      .map(([name, values]) => {
        const sorted = [...values].sort((a, b) => a - b);
        return {
          assistant: name,
          calls: sorted.length,
          p50: percentile(sorted, 0.5),
          p95: percentile(sorted, 0.95),
          p99: percentile(sorted, 0.99),
        };
      })
      .sort((a, b) => b.calls - a.calls),
    stale,
    lastEventBefore,
  };
};

// ---- the real thing ----

let stores: AuditStores;
let harness: TestApp;
let projector: RunningProjector;

const getHealth = async (query: Record<string, string>) =>
  harness.app.inject({
    method: 'GET',
    url: `/health?${new URLSearchParams(query).toString()}`,
    headers: bearer(),
  });

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await buildTestApp({
    eventStore: stores.eventStore,
    database: stores.database,
    config: testConfig(),
  });
  harness.clock.set(new Date(now));
  projector = await startProjector(
    {
      eventStore: stores.eventStore,
      database: stores.database,
      logger: createLogger({ level: 'silent' }),
      metrics: harness.metrics,
      clock: () => new Date(),
    },
    { watchdogIntervalMs: 500 },
  );
  for (const event of sentEvents) {
    const body = JSON.stringify(event.body);
    const response = await harness.app.inject({
      method: 'POST',
      url: '/webhooks/flireo',
      headers: { 'content-type': 'application/json', ...signatureHeaders(body, { at: harness.clock.now() }) },
      payload: body,
    });
    expect(response.statusCode).toBe(202);
  }
  // The projector has caught up once every event sent is in the calls read model (bounded).
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { rows } = await stores.database.pool.query<{ events: string | null }>(
      'SELECT sum(event_count)::text AS events FROM calls WHERE call_id LIKE $1',
      [`health-${tag}-%`],
    );
    if (Number(rows[0]?.events ?? 0) === sentEvents.length) break;
    if (Date.now() > deadline) throw new Error('the projector did not catch up');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}, 120_000);

afterAll(async () => {
  await projector?.stop();
  await harness?.app.close();
  await stores?.close();
});

/**
 * Durations from the hourly summaries are within 2% (plus 0.1 s) of the exact percentile; those
 * of periods with buckets under an hour are exact.
 */
const closeToExact = (shown: number, exact: number, summarized: boolean) => {
  if (summarized) expect(Math.abs(shown - exact)).toBeLessThanOrEqual(0.02 * Math.abs(exact) + 0.1);
  else expect(shown).toBeCloseTo(exact, 6);
};

const checkAgainstEvents = (
  report: HealthReport,
  assistant: string | undefined,
  period: Period = sixHours,
) => {
  const expected = expectedReport(assistant, period);
  const summarized = period.bucketSeconds >= 3_600;
  expect(report.bucketSeconds).toBe(period.bucketSeconds);
  expect(report.buckets).toHaveLength(expected.bucketCount);
  expect(report.buckets[0]).toBe(expected.firstBucketStart);
  expect(report.volume).toEqual({
    started: expected.started,
    ended: expected.ended,
    failed: expected.failed,
  });
  expect(report.failures.total).toBe(expected.failed.reduce((sum, count) => sum + count, 0));
  expect(report.failures.artifactGroupCount).toBe(expected.byArtifact.length);
  expect(report.failures.endedReasonCount).toBe(expected.byReason.length);
  // Equal counts may come in either order; the order is by count.
  const byGroup = <T extends { artifactGroup: string | null }>(groups: readonly T[]): T[] =>
    [...groups].sort((a, b) => String(a.artifactGroup).localeCompare(String(b.artifactGroup)));
  expect(
    byGroup(report.failures.byArtifact).map(({ artifactGroup, count, trend }) => ({
      artifactGroup,
      count,
      trend,
    })),
  ).toEqual(
    byGroup(expected.byArtifact).map(({ artifactGroup, count, trend }) => ({ artifactGroup, count, trend })),
  );
  for (const group of report.failures.byArtifact) {
    const examples = expected.byArtifact.find(
      (entry) => entry.artifactGroup === group.artifactGroup,
    )!.examples;
    if (group.artifactGroup === null) expect(group.example).toBeNull();
    else expect(examples).toContain(group.example);
  }
  const counts = report.failures.byArtifact.map((group) => group.count);
  expect(counts).toEqual([...counts].sort((a, b) => b - a));
  const byReason = <T extends { endedReason: string | null }>(groups: readonly T[]): T[] =>
    [...groups].sort((a, b) => String(a.endedReason).localeCompare(String(b.endedReason)));
  expect(byReason(report.failures.byEndedReason)).toEqual(byReason(expected.byReason));
  expect(report.durations.map((entry) => entry.assistant).sort()).toEqual(
    expected.durations.map((entry) => entry.assistant).sort(),
  );
  for (const entry of expected.durations) {
    const shown = report.durations.find((candidate) => candidate.assistant === entry.assistant)!;
    expect(shown.calls).toBe(entry.calls);
    closeToExact(shown.p50, entry.p50, summarized);
    closeToExact(shown.p95, entry.p95, summarized);
    closeToExact(shown.p99, entry.p99, summarized);
  }
  expect(report.staleCalls.thresholdSeconds).toBe(staleSeconds);
  expect(report.staleCalls.lastEventBefore).toBe(new Date(expected.lastEventBefore).toISOString());
  expect(report.staleCalls.total).toBe(expected.stale.length);
  expect(report.staleCalls.oldest.map((call) => [call.callId, call.lastEventAt])).toEqual(
    expected.stale.map((call) => [call.callId, new Date(call.lastAt).toISOString()]),
  );
};

describe('GET /health', () => {
  it('gives the figures computed from the raw events', async () => {
    const expected = expectedReport(undefined);
    // The data set exercises every figure.
    expect(expected.byArtifact.length).toBeGreaterThanOrEqual(4);
    expect(expected.stale.length).toBeGreaterThan(0);
    expect(
      expectedCalls().some(
        (call) => call.status === 'in-progress' && call.lastAt >= expected.lastEventBefore,
      ),
    ).toBe(true);
    const response = await getHealth({ from, to });
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    checkAgainstEvents(response.json<HealthReport>(), undefined);
  });

  it('gives one assistant’s figures', async () => {
    const response = await getHealth({ from, to, assistant: assistantB });
    expect(response.statusCode).toBe(200);
    const report = response.json<HealthReport>();
    expect(report.assistant).toBe(assistantB);
    checkAgainstEvents(report, assistantB);
  });

  // Periods whose buckets are whole hours: their whole hours come from the hourly summaries, the
  // ragged ends (with calls in them) from the raw rows.
  const summarizedPeriods: readonly Period[] = [
    { from: '2025-08-28T01:40:00.000Z', to: '2025-08-28T17:50:00.000Z', bucketSeconds: 3_600 },
    { from: '2025-08-27T15:10:00.000Z', to: '2025-08-28T06:25:00.000Z', bucketSeconds: 3_600 },
    { from: '2025-08-26T02:00:00.000Z', to: '2025-08-29T02:00:00.000Z', bucketSeconds: 3 * 3_600 },
  ];
  for (const period of summarizedPeriods) {
    it(`gives the figures of ${period.from} to ${period.to} from the hourly summaries and the raw rows`, async () => {
      for (const assistant of [undefined, assistantB]) {
        const response = await getHealth({
          from: period.from,
          to: period.to,
          ...(assistant === undefined ? {} : { assistant }),
        });
        expect(response.statusCode).toBe(200);
        checkAgainstEvents(response.json<HealthReport>(), assistant, period);
      }
    });
  }

  it('keeps hourly summaries equal to those computed from calls and terminations, and a rebuild writes the same', async () => {
    const summaryTables = ['health_hourly_calls', 'health_hourly_failures', 'health_daily_durations'];
    const contents = async (schema: string) =>
      Promise.all(
        summaryTables.map(async (table) =>
          (
            await stores.database.pool.query<{ row: string }>(
              `SELECT row_to_json(t)::text AS row FROM "${schema}".${table} AS t ORDER BY 1`,
            )
          ).rows.map(({ row }) => row),
        ),
      );
    const projected = await contents('public');
    expect(projected.every((rows) => rows.length > 0)).toBe(true);
    // The projector folded the events as they came, batch by batch, taking back what a call had
    // contributed before each change; the same figures computed in one pass must be equal.
    const client = await stores.database.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('CREATE SCHEMA health_check');
      for (const table of summaryTables) {
        await client.query(`CREATE TABLE health_check.${table} (LIKE public.${table} INCLUDING ALL)`);
      }
      await client.query('SET LOCAL search_path = health_check, public');
      for (const statement of healthHourlyFromReadModelsSql) await client.query(statement);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect(await contents('health_check')).toEqual(projected);
    await stores.database.pool.query('DROP SCHEMA health_check CASCADE');

    await rebuildProjection(
      projectionNamed('calls'),
      {
        eventStore: stores.eventStore,
        pool: stores.database.pool,
        logger: createLogger({ level: 'silent' }),
        metrics: harness.metrics,
        clock: () => new Date(),
      },
      { ...defaultRebuildOptions, streamPrefixes: [callStreamPrefix] },
    );
    expect(await contents('public')).toEqual(projected);
  });

  it('defaults to the last day before now', async () => {
    const response = await getHealth({});
    expect(response.statusCode).toBe(200);
    const report = response.json<HealthReport>();
    expect(report.to).toBe(new Date(now).toISOString());
    expect(report.from).toBe(new Date(now - 86_400_000).toISOString());
    expect(report.bucketSeconds).toBe(3_600);
    expect(report.volume.started.reduce((sum, count) => sum + count, 0)).toBe(plannedCalls.length);
  });

  it('refuses bad periods and parameters, naming the field', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ from: 'yesterday' }, 'querystring/from'],
      [{ from: to, to: from }, 'querystring/from'],
      [{ from: '2024-01-01T00:00:00Z', to: '2025-08-28T00:00:00Z' }, 'querystring/from'],
      [{ from: '2030-01-01T00:00:00Z' }, 'querystring/from'],
      [{ assistant: '' }, 'querystring/assistant'],
      [{ bucket: '5m' }, 'querystring'],
    ];
    for (const [query, field] of cases) {
      const response = await getHealth(query);
      expect(response.statusCode, JSON.stringify(query)).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(JSON.stringify(response.json()), JSON.stringify(query)).toContain(field);
    }
  });

  it('needs an API token', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(401);
  });
});

describe('artifact groups', () => {
  it('are the same in PostgreSQL as the documented rule says', async () => {
    const samples = [
      'Tool call 0B7C5E1A-9D4f-4a3b-8c2d-1e2f3a4b5c6d timed out after 10000 ms',
      'deadline 2025-08-28 07:30:12+02:00 passed, retry 3 of 5 (v2.1)',
      'bad frame 0xDEADBEEF from ab12cd34ef',
      'call call_8Fh2kLq9XzPw31 dropped; trace 4bf92f3577b34da6a3ce929d0e0e4736',
      'word deadbeef stays, cafe12 goes',
      '  spaces\t\tand\nnewlines  ',
      "it's a 'quoted' failure",
    ];
    const { rows } = await stores.database.pool.query<{ artifact: string; group: string }>(
      `SELECT artifact, ${artifactGroupSql('artifact')} AS group FROM unnest($1::text[]) AS artifact`,
      [samples],
    );
    expect(rows.map((row) => row.group)).toEqual(samples.map(artifactGroupOf));
    expect(samples.map(artifactGroupOf)).toEqual([
      'Tool call <uuid> timed out after <n> ms',
      'deadline <time> passed, retry <n> of <n> (v<n>)',
      'bad frame <hex> from <hex>',
      'call <id> dropped; trace <hex>',
      'word deadbeef stays, <hex> goes',
      'spaces and newlines',
      "it's a 'quoted' failure",
    ]);
  });
});

describe('health metrics', () => {
  it('give the same figures over their window, with bounded labels', async () => {
    const windowSeconds = 3 * 3_600;
    const base = testConfig();
    const metricsApp = await buildTestApp({
      eventStore: stores.eventStore,
      database: stores.database,
      config: { ...base, health: { ...base.health, metricsWindowSeconds: windowSeconds } },
    });
    try {
      metricsApp.clock.set(new Date(now));
      const response = await metricsApp.app.inject({ method: 'GET', url: '/metrics', headers: bearer() });
      expect(response.statusCode).toBe(200);
      const samples = new Map<string, number>();
      for (const line of response.body.split('\n')) {
        const match = /^(calltrail_health_\w+(?:\{.*\})?) (\S+)$/.exec(line);
        if (match) samples.set(match[1]!, Number(match[2]));
      }
      const windowFrom = new Date(now - windowSeconds * 1000).toISOString();
      const report = (
        await getHealth({ from: windowFrom, to: new Date(now).toISOString() })
      ).json<HealthReport>();
      const total = (values: number[]) => values.reduce((sum, count) => sum + count, 0);
      expect(samples.get('calltrail_health_calls{state="started"}')).toBe(total(report.volume.started));
      expect(samples.get('calltrail_health_calls{state="ended"}')).toBe(total(report.volume.ended));
      expect(samples.get('calltrail_health_calls{state="failed"}')).toBe(report.failures.total);
      expect(report.failures.total).toBeGreaterThan(0);
      expect(samples.get('calltrail_health_window_seconds')).toBe(windowSeconds);
      const byArtifact = [...samples].filter(([name]) =>
        name.startsWith('calltrail_health_failures_by_artifact{'),
      );
      expect(byArtifact.length).toBeLessThanOrEqual(11);
      expect(total(byArtifact.map(([, value]) => value))).toBe(report.failures.total);
      for (const group of report.failures.byArtifact) {
        const label =
          group.artifactGroup === null
            ? 'none'
            : group.artifactGroup.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
        expect(samples.get(`calltrail_health_failures_by_artifact{artifact_group="${label}"}`)).toBe(
          group.count,
        );
      }
      const byReason = [...samples].filter(([name]) =>
        name.startsWith('calltrail_health_failures_by_ended_reason{'),
      );
      expect(total(byReason.map(([, value]) => value))).toBe(report.failures.total);
      for (const group of report.failures.byEndedReason) {
        expect(
          samples.get(`calltrail_health_failures_by_ended_reason{ended_reason="${group.endedReason}"}`),
        ).toBe(group.count);
      }
      for (const entry of report.durations) {
        expect(
          samples.get(
            `calltrail_health_call_duration_seconds{assistant="${entry.assistant}",quantile="0.5"}`,
          ),
        ).toBeCloseTo(entry.p50, 6);
        expect(
          samples.get(
            `calltrail_health_call_duration_seconds{assistant="${entry.assistant}",quantile="0.99"}`,
          ),
        ).toBeCloseTo(entry.p99, 6);
      }
      // Stale: in progress, the last event within the window before the threshold.
      const staleFrom = now - windowSeconds * 1000 - staleSeconds * 1000;
      const staleTo = now - staleSeconds * 1000;
      const stale = expectedCalls().filter(
        (call) => call.status === 'in-progress' && call.lastAt >= staleFrom && call.lastAt < staleTo,
      );
      expect(stale.length).toBeGreaterThan(0);
      expect(samples.get('calltrail_health_stale_calls')).toBe(stale.length);
      expect(samples.get('calltrail_health_refresh_failures_total')).toBe(0);
    } finally {
      await metricsApp.app.close();
    }
  });
});

describe('the Health page', () => {
  const cookie = { cookie: `calltrail_session=${apiToken}` };

  it('shows the figures as charts with their numbers, artifacts as text', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: `/console/health?${new URLSearchParams({ from, to }).toString()}`,
      headers: cookie,
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-security-policy']).toContain("script-src 'self'");
    const page = response.body;
    const expected = expectedReport(undefined);
    expect(page).toMatch(/<a\s+href="\/console\/health"\s+aria-current="page"/);
    expect(page).toContain('role="img"');
    expect(page).toContain(
      `<strong>${expected.failed.reduce((sum, count) => sum + count, 0)}</strong> with an error`,
    );
    expect(page).toContain(`<strong>${expected.stale.length}</strong> stale`);
    for (const group of expected.byArtifact) {
      if (group.artifactGroup !== null) expect(page).toContain(escapeText(group.artifactGroup));
    }
    // The hostile group is shown as text: no script element of the archive reaches the page.
    expect(page).toContain('&lt;script&gt;alert(&lt;n&gt;)&lt;/script&gt;');
    expect(page).not.toMatch(/<script>alert/);
    expect(page).not.toMatch(/style="/);
    for (const call of expected.stale) expect(page).toContain(`/console/calls/${call.callId}`);
  });

  it('names a bad field, and asks for sign-in without a session', async () => {
    const bad = await harness.app.inject({
      method: 'GET',
      url: '/console/health?from=soon',
      headers: cookie,
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('<strong>from</strong>');
    const backwards = await harness.app.inject({
      method: 'GET',
      url: '/console/health?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z',
      headers: cookie,
    });
    expect(backwards.statusCode).toBe(400);
    expect(String(backwards.headers['content-type'])).toMatch(/^text\/html/);
    expect(backwards.body).toContain('<strong>from</strong>');
    const anonymous = await harness.app.inject({ method: 'GET', url: '/console/health' });
    expect(anonymous.statusCode).toBe(303);
    expect(anonymous.headers.location).toContain('/console/sign-in');
  });
});
