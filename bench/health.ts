/**
 * Health: server time of `GET /health` (the figures the Health page and its metrics are made of)
 * at 1M events, one request at a time, for a day, a week, the whole month, and a week of one
 * assistant. The read models are seeded directly in bulk SQL (250,000 calls, about 4 events each:
 * 3% still in progress, 12% ended with an error from a handful of artifact templates carrying fresh
 * ids, numbers and times, the rest ended), because the Health queries read only `calls` and
 * `terminations` (and the hourly summaries kept beside them). The ceiling is one bare pass over the same terminations (count and mean duration).
 */
import http from 'node:http';
import pg from 'pg';
import { healthHourlyFromReadModelsSql } from '../projections/health-hourly/read-model.ts';
import { migrateReadModels, openDatabase } from '../src/database/database.ts';
import { apiToken, appSpec, type BenchContext } from './context.ts';
import { assistantNumbers, seededRandom } from './flireo-traffic.ts';
import { summarizeLatencies, type LatencySummary } from './measure.ts';
import { startMeasuredProcess } from './processes.ts';
import { formatMs, type BenchmarkResult } from './report.ts';
import { datasetSpanMs, datasetStart } from './seed.ts';

const eventsPerCall = 4;
const targetMs = 500;

const seedSql = (calls: number) => `
INSERT INTO calls (call_id, caller, assistant, first_event_at, last_event_at, status, outcome, ended_reason,
                   debugging_artifact, started_at, ended_at, duration_seconds, event_count, last_revision,
                   last_commit_position, last_prepare_position, fold_state)
SELECT 'bench-' || i, '+49151' || lpad((i % 200000)::text, 7, '0'), assistants[1 + i % cardinality(assistants)],
       started, CASE WHEN r < 0.03 THEN started ELSE started + duration + interval '2 seconds' END,
       CASE WHEN r < 0.03 THEN 'in-progress' WHEN r < 0.15 THEN 'ended-with-debugging' ELSE 'ended' END,
       CASE WHEN r < 0.03 THEN NULL WHEN r < 0.15 THEN 'ended-with-debugging' ELSE 'ended' END,
       CASE WHEN r < 0.03 THEN NULL WHEN r < 0.15 THEN (ARRAY['pipeline-error', 'tool-timeout', 'assistant-error'])[1 + floor(r2 * 3)::int]
            ELSE (ARRAY['customer-ended-call', 'assistant-ended-call', 'silence-timed-out'])[1 + floor(r2 * 3)::int] END,
       CASE WHEN r >= 0.03 AND r < 0.15 THEN
         CASE floor(r2 * 6)::int
           WHEN 0 THEN 'Tool call ' || gen_random_uuid() || ' timed out after ' || (1000 + floor(random() * 9000)) || ' ms'
           WHEN 1 THEN 'upstream 50' || floor(random() * 4) || ' at ' || to_char(started, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || ' for request req_' || substr(md5(random()::text), 1, 14)
           WHEN 2 THEN 'transcriber crashed: segfault at 0x' || substr(md5(random()::text), 1, 8)
           WHEN 3 THEN 'session ' || substr(md5(random()::text), 1, 12) || ' closed by peer after ' || floor(random() * 300) || ' s'
           WHEN 4 THEN 'LLM provider returned 429: rate limit for org org-' || substr(md5(random()::text), 1, 20)
           ELSE NULL END
       END,
       started, CASE WHEN r < 0.03 THEN NULL ELSE started + duration END,
       CASE WHEN r < 0.03 THEN NULL ELSE extract(epoch FROM duration) END,
       ${eventsPerCall}, ${eventsPerCall - 1}, i * ${eventsPerCall}, i * ${eventsPerCall}, '{}'::json
FROM (
  SELECT i, random() AS r, random() AS r2,
         timestamptz '${new Date(datasetStart).toISOString()}' + make_interval(secs => (i::float8 / ${calls}) * ${datasetSpanMs / 1000}) AS started,
         make_interval(secs => 20 + floor(random() * 580) + random()) AS duration,
         $1::text[] AS assistants
  FROM generate_series(1, ${calls}) AS i
) AS seed`;

export const seedHealthDatabase = async (context: BenchContext, calls: number): Promise<string> => {
  const url = await context.postgres.createDatabase('health');
  const database = openDatabase(url, { max: 1 });
  try {
    await migrateReadModels(database);
  } finally {
    await database.close();
  }
  context.progress(
    `health: seeding ${calls.toLocaleString('en-US')} calls (${(calls * eventsPerCall).toLocaleString('en-US')} events) in SQL`,
  );
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query('SELECT setseed(0.42)');
    await client.query(seedSql(calls), [assistantNumbers]);
    await client.query(
      `INSERT INTO terminations (call_id, outcome, ended_reason, debugging_artifact, started_at, ended_at,
                                 duration_seconds, caller, assistant, last_commit_position, last_prepare_position)
       SELECT call_id, outcome, ended_reason, debugging_artifact, started_at, ended_at, duration_seconds, caller,
              assistant, last_commit_position, last_prepare_position
         FROM calls WHERE outcome IS NOT NULL`,
    );
    // The hourly summaries the calls projection would have kept beside them.
    for (const statement of healthHourlyFromReadModelsSql) await client.query(statement);
    await client.query(
      'VACUUM ANALYZE calls, terminations, health_hourly_calls, health_hourly_failures, health_daily_durations',
    );
  } finally {
    await client.end();
  }
  return url;
};

interface Scenario {
  readonly name: string;
  readonly days: number;
  readonly assistant: boolean;
}

const scenarios: readonly Scenario[] = [
  { name: 'one day', days: 1, assistant: false },
  { name: 'seven days', days: 7, assistant: false },
  { name: 'thirty days (everything)', days: 30, assistant: false },
  { name: 'seven days, one assistant', days: 7, assistant: true },
];

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

const getHealth = (
  port: number,
  query: Record<string, string>,
): Promise<{ ms: number; status: number; bytes: number }> =>
  new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.get(
      {
        host: '127.0.0.1',
        port,
        path: `/health?${new URLSearchParams(query).toString()}`,
        headers: { authorization: `Bearer ${apiToken}` },
        agent,
      },
      (response) => {
        let bytes = 0;
        response.on('data', (chunk: Buffer) => (bytes += chunk.length));
        response.on('end', () =>
          resolve({ ms: performance.now() - started, status: response.statusCode ?? 0, bytes }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });

const queryFor = (scenario: Scenario, random: () => number): Record<string, string> => {
  const spanDays = datasetSpanMs / 86_400_000;
  const startDay = Math.floor(random() * (spanDays - scenario.days + 1));
  const from = datasetStart + startDay * 86_400_000;
  return {
    from: new Date(from).toISOString(),
    to: new Date(from + scenario.days * 86_400_000).toISOString(),
    ...(scenario.assistant
      ? { assistant: assistantNumbers[Math.floor(random() * assistantNumbers.length)]! }
      : {}),
  };
};

interface ScenarioResult {
  readonly name: string;
  readonly server: LatencySummary;
  readonly ceiling: LatencySummary;
  readonly meanBytes: number;
  readonly failures: number;
}

export const benchHealth = async (context: BenchContext): Promise<BenchmarkResult> => {
  const calls = Math.round(context.options.events / eventsPerCall);
  const url = await seedHealthDatabase(context, calls);
  const samples = context.options.quick ? 10 : 40;
  const app = await startMeasuredProcess(appSpec(url, context.options), context.processes);
  const sql = new pg.Client(url);
  await sql.connect();
  const results: ScenarioResult[] = [];
  try {
    for (const [index, scenario] of scenarios.entries()) {
      context.progress(`health: ${scenario.name}, ${samples} requests`);
      const random = seededRandom(31 + index);
      const server: number[] = [];
      let bytes = 0;
      let failures = 0;
      for (let sample = -3; sample < samples; sample += 1) {
        const answer = await getHealth(app.port, queryFor(scenario, random));
        if (answer.status !== 200) failures += 1;
        if (sample >= 0) {
          server.push(answer.ms);
          bytes += answer.bytes;
        }
      }
      const ceilingRandom = seededRandom(31 + index);
      const ceiling: number[] = [];
      for (let sample = -3; sample < samples; sample += 1) {
        const query = queryFor(scenario, ceilingRandom);
        const started = performance.now();
        await sql.query(
          `SELECT count(*), avg(duration_seconds) FROM terminations
            WHERE ended_at >= $1 AND ended_at < $2 AND ($3::text IS NULL OR assistant = $3)`,
          [query['from'], query['to'], query['assistant'] ?? null],
        );
        if (sample >= 0) ceiling.push(performance.now() - started);
      }
      results.push({
        name: scenario.name,
        server: summarizeLatencies(server),
        ceiling: summarizeLatencies(ceiling),
        meanBytes: bytes / samples,
        failures,
      });
    }
  } finally {
    await sql.end();
    await app.stop();
    agent.destroy();
  }
  const events = calls * eventsPerCall;
  return {
    name: 'health',
    rows: results.map((result) => ({
      measure: `GET /health ${result.name}: p50 / p99 (${Math.round(result.meanBytes / 1024)} KiB)`,
      value: `${formatMs(result.server.p50Ms)} / ${formatMs(result.server.p99Ms)}`,
      ceiling: `${formatMs(result.ceiling.p50Ms)} / ${formatMs(result.ceiling.p99Ms)}`,
      ratio: result.ceiling.p50Ms / result.server.p50Ms,
      target: {
        description: `p99 <= ${targetMs} ms (at 1M events)`,
        pass: result.server.p99Ms <= targetMs && result.failures === 0,
      },
    })),
    details: { calls, events, samples, scenarios: results },
    notes: [
      `${calls.toLocaleString('en-US')} calls (${events.toLocaleString('en-US')} events) over ${datasetSpanMs / 86_400_000} days, read models seeded in SQL; ` +
        'one request at a time, keep-alive; ceiling: one bare pass over the same terminations (count, mean duration); ratio of the p50s',
      ...results
        .filter((result) => result.failures > 0)
        .map((result) => `${result.name}: ${result.failures} requests failed`),
    ],
  };
};
