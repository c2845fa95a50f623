/**
 * Audit queries: latency of `GET /calls` over HTTP on the projected archive data set, one request at
 * a time (an auditor's click), with the filters an auditor uses, and following `nextCursor` a few
 * pages deep. Parameters vary from request to request (days, assistants, callers), so no answer is
 * served from a cache the real workload would not have. The ceiling is the same first page as one
 * bare SQL statement.
 *
 * The target is stated at 1M calls; when the data set has fewer, the same queries also run on a
 * copy of its `calls` table scaled up to 1M calls (the projected rows repeated under new ids, each
 * repetition shifted by the data set's time span, so density and distributions stay the same).
 */
import http from 'node:http';
import pg from 'pg';
import { apiToken, appSpec, type BenchContext } from './context.ts';
import { assistantNumbers, seededRandom } from './flireo-traffic.ts';
import { summarizeLatencies, type LatencySummary } from './measure.ts';
import { startMeasuredProcess } from './processes.ts';
import { formatMs, type BenchmarkResult } from './report.ts';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { migrateReadModels, openDatabase } from '../src/database/database.ts';
import { datasetSpanMs, datasetStart } from './seed.ts';

const pagesDeep = 5;
const targetCalls = 1_000_000;

interface Scenario {
  readonly name: string;
  /** The query string of the first page. */
  query(random: () => number): Record<string, string>;
}

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const scenariosFor = (callers: readonly string[], spanMs: number): Scenario[] => [
  { name: 'no filter', query: () => ({}) },
  {
    name: 'status',
    query: (random) => ({ status: pick(random, ['in-progress', 'ended', 'ended-with-debugging']) }),
  },
  { name: 'outcome', query: (random) => ({ outcome: pick(random, ['ended', 'ended-with-debugging']) }) },
  { name: 'assistant', query: (random) => ({ assistant: pick(random, assistantNumbers) }) },
  { name: 'caller', query: (random) => ({ caller: pick(random, callers) }) },
  {
    name: 'one-day window',
    query: (random) => {
      const day = datasetStart + Math.floor(random() * (spanMs / 86_400_000)) * 86_400_000;
      return { from: new Date(day).toISOString(), to: new Date(day + 86_400_000).toISOString() };
    },
  },
  {
    name: 'window + assistant',
    query: (random) => {
      const from = datasetStart + Math.floor(random() * (spanMs - 7 * 86_400_000));
      return {
        from: new Date(from).toISOString(),
        to: new Date(from + 7 * 86_400_000).toISOString(),
        assistant: pick(random, assistantNumbers),
      };
    },
  },
];

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

const getCalls = (
  port: number,
  query: Record<string, string>,
): Promise<{ ms: number; status: number; calls: number; nextCursor: string | null }> =>
  new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.get(
      {
        host: '127.0.0.1',
        port,
        path: `/calls?${new URLSearchParams(query).toString()}`,
        headers: { authorization: `Bearer ${apiToken}` },
        agent,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const ms = performance.now() - started;
          const status = response.statusCode ?? 0;
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            calls?: unknown[];
            nextCursor?: string | null;
          };
          resolve({ ms, status, calls: body.calls?.length ?? 0, nextCursor: body.nextCursor ?? null });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });

interface ScenarioResult {
  readonly name: string;
  readonly firstPage: LatencySummary;
  readonly deeperPages: LatencySummary;
  /** The first pages' SQL alone, straight through pg: the ceiling. */
  readonly rawSql: LatencySummary;
  readonly meanCallsPerPage: number;
  readonly failures: number;
}

/** The columns a call view shows; the ceiling reads nothing else. */
const viewColumns =
  'call_id, caller, assistant, status, outcome, ended_reason, debugging_artifact, first_event_at, ' +
  'last_event_at, started_at, ended_at, duration_seconds, event_count, last_revision, ' +
  'last_commit_position, last_prepare_position';

/** The first page of `GET /calls` as one SQL statement (dated calls, newest first). */
const firstPageSql = (query: Record<string, string>): { text: string; values: string[] } => {
  const conditions = ['last_event_at IS NOT NULL'];
  const values: string[] = [];
  const condition = (sql: string, value: string) => {
    values.push(value);
    conditions.push(sql.replace('?', `$${values.length}`));
  };
  if (query['from'] !== undefined) condition('last_event_at >= ?::timestamptz', query['from']);
  if (query['to'] !== undefined) condition('last_event_at < ?::timestamptz', query['to']);
  for (const column of ['status', 'outcome', 'caller', 'assistant']) {
    const value = query[column];
    if (value !== undefined) condition(`${column} = ?`, value);
  }
  return {
    text: `SELECT ${viewColumns} FROM calls WHERE ${conditions.join(' AND ')} ORDER BY last_event_at DESC, call_id DESC LIMIT 101`,
    values,
  };
};

/**
 * Samples callers to filter by, after refreshing the planner's statistics: a catch-up writes the read
 * models faster than autovacuum analyzes them, and a live system would have fresh statistics by the
 * time auditors query it (without them, keyset pages with an `outcome` filter plan a full sort).
 */
const prepareQueries = async (url: string): Promise<string[]> => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query('ANALYZE calls, call_timeline');
    const { rows } = await client.query<{ caller: string }>(
      'SELECT caller FROM calls TABLESAMPLE SYSTEM (5) WHERE caller IS NOT NULL LIMIT 500',
    );
    return rows.map((row) => row.caller);
  } finally {
    await client.end();
  }
};

/** Runs every scenario against an app serving the read models at `url`. */
const measureScenarios = async (
  context: BenchContext,
  url: string,
  spanMs: number,
  label: string,
): Promise<ScenarioResult[]> => {
  const callers = await prepareQueries(url);
  const scenarios = scenariosFor(callers.length > 0 ? callers : ['+4915100000000'], spanMs);
  const samples = context.options.quick ? 40 : 200;
  const app = await startMeasuredProcess(appSpec(url, context.options), context.processes);
  const results: ScenarioResult[] = [];
  const sql = new pg.Client(url);
  await sql.connect();
  try {
    for (const [index, scenario] of scenarios.entries()) {
      context.progress(
        `queries (${label}): ${scenario.name}, ${samples} first pages, each followed ${pagesDeep - 1} pages deep`,
      );
      const random = seededRandom(7 + index);
      const first: number[] = [];
      const deeper: number[] = [];
      let calls = 0;
      let pages = 0;
      let failures = 0;
      // The first few are warm-up: connections, JIT, the server's caches of plans.
      for (let sample = -10; sample < samples; sample += 1) {
        let query = scenario.query(random);
        for (let page = 1; page <= pagesDeep; page += 1) {
          const answer = await getCalls(app.port, query);
          if (answer.status !== 200) {
            failures += 1;
            break;
          }
          if (sample >= 0) {
            (page === 1 ? first : deeper).push(answer.ms);
            calls += answer.calls;
            pages += 1;
          }
          if (answer.nextCursor === null) break;
          query = { ...query, cursor: answer.nextCursor };
        }
      }
      // The same first pages (same parameters, in the same order), as bare SQL.
      const rawRandom = seededRandom(7 + index);
      const raw: number[] = [];
      for (let sample = -10; sample < samples; sample += 1) {
        const statement = firstPageSql(scenario.query(rawRandom));
        const started = performance.now();
        // Unnamed, as drizzle sends it: a named statement may switch to a generic plan, which for
        // some filter combinations is far slower than the plan chosen for the actual values.
        await sql.query(statement);
        if (sample >= 0) raw.push(performance.now() - started);
      }
      results.push({
        name: scenario.name,
        firstPage: summarizeLatencies(first),
        deeperPages: summarizeLatencies(deeper),
        rawSql: summarizeLatencies(raw),
        meanCallsPerPage: pages === 0 ? 0 : calls / pages,
        failures,
      });
    }
  } finally {
    await sql.end();
    await app.stop();
  }
  return results;
};

/**
 * A database whose `calls` table holds the data set's calls repeated to `calls` rows; returns its
 * URL and the time span the copies cover.
 */
const scaledCallsDatabase = async (
  context: BenchContext,
  sourceUrl: string,
  sourceCalls: number,
  calls: number,
): Promise<{ url: string; spanMs: number }> => {
  const copies = Math.ceil(calls / sourceCalls);
  const url = await context.postgres.createDatabase('calls_scaled');
  const database = openDatabase(url, { max: 1 });
  try {
    await migrateReadModels(database);
  } finally {
    await database.close();
  }
  context.progress(`queries: scaling calls to ${calls.toLocaleString('en-US')} rows (${copies} copies)`);
  const source = new pg.Client(sourceUrl);
  const target = new pg.Client(url);
  await source.connect();
  await target.connect();
  try {
    await target.query('CREATE UNLOGGED TABLE calls_source (LIKE calls)');
    await pipeline(
      source.query(copyTo('COPY calls TO STDOUT')),
      target.query(copyFrom('COPY calls_source FROM STDIN')),
    );
    const columns = (
      await target.query<{ name: string }>(
        `SELECT attname AS name FROM pg_attribute
          WHERE attrelid = 'calls'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      )
    ).rows.map((row) => row.name);
    const shifted = (column: string) =>
      ['first_event_at', 'last_event_at', 'started_at', 'ended_at'].includes(column)
        ? `${column} + make_interval(secs => copy * ${datasetSpanMs / 1000})`
        : column === 'call_id'
          ? `call_id || CASE WHEN copy = 0 THEN '' ELSE '~' || copy END`
          : column;
    await target.query(
      `INSERT INTO calls (${columns.join(', ')})
       SELECT ${columns.map(shifted).join(', ')}
         FROM generate_series(0, ${copies - 1}) AS copy, calls_source
        ORDER BY copy
        LIMIT ${calls}`,
    );
    await target.query('DROP TABLE calls_source');
    await target.query('VACUUM ANALYZE calls');
  } finally {
    await source.end();
    await target.end();
  }
  return { url, spanMs: copies * datasetSpanMs };
};

const target = (summary: LatencySummary, failures: number) => ({
  description: 'p99 <= 20 ms (at 1M calls)',
  pass: summary.p99Ms <= 20 && failures === 0,
});

const rowsOf = (results: readonly ScenarioResult[], label: string) =>
  results.flatMap((result) => [
    {
      measure: `${label} ${result.name}: p50 / p99`,
      value: `${formatMs(result.firstPage.p50Ms)} / ${formatMs(result.firstPage.p99Ms)}`,
      ceiling: `${formatMs(result.rawSql.p50Ms)} / ${formatMs(result.rawSql.p99Ms)}`,
      ratio: result.rawSql.p50Ms / result.firstPage.p50Ms,
      target: target(result.firstPage, result.failures),
    },
    ...(result.deeperPages.count > 0
      ? [
          {
            measure: `  pages 2-${pagesDeep}: p50 / p99`,
            value: `${formatMs(result.deeperPages.p50Ms)} / ${formatMs(result.deeperPages.p99Ms)}`,
            target: target(result.deeperPages, result.failures),
          },
        ]
      : []),
  ]);

const thousands = (count: number): string =>
  count >= 1_000_000
    ? `${(count / 1_000_000).toFixed(count % 1_000_000 === 0 ? 0 : 2)}M`
    : count >= 10_000
      ? `${Math.round(count / 1000)}k`
      : count.toLocaleString('en-US');

export const benchQueries = async (context: BenchContext): Promise<BenchmarkResult> => {
  const dataset = await context.projectedDataset();
  const callCount = dataset.summary.calls;
  const label = `${thousands(callCount)} calls`;
  const results = await measureScenarios(context, dataset.url, datasetSpanMs, label);
  const scale = !context.options.quick && callCount < targetCalls;
  let scaled: ScenarioResult[] | undefined;
  if (scale) {
    const copy = await scaledCallsDatabase(context, dataset.url, callCount, targetCalls);
    scaled = await measureScenarios(context, copy.url, copy.spanMs, `${thousands(targetCalls)} calls`);
  }
  agent.destroy();
  const failed = [...results, ...(scaled ?? [])].filter((result) => result.failures > 0);
  return {
    name: 'queries',
    rows: [
      ...rowsOf(results, `[${label}]`),
      ...(scaled === undefined ? [] : rowsOf(scaled, `[${thousands(targetCalls)} calls]`)),
    ],
    details: {
      calls: callCount,
      events: dataset.summary.events,
      pagesDeep,
      scenarios: results,
      ...(scaled === undefined ? {} : { scaledCalls: targetCalls, scaledScenarios: scaled }),
    },
    notes: [
      `on the data set's ${callCount.toLocaleString('en-US')} calls (${dataset.summary.events.toLocaleString('en-US')} events)` +
        (scaled === undefined
          ? ''
          : ` and on a copy of them scaled to ${targetCalls.toLocaleString('en-US')} calls`) +
        "; one request at a time, keep-alive, limit 100; ceiling: the same first pages as bare SQL through pg (the view's columns only); ratio of the p50s",
      ...failed.map((result) => `${result.name}: ${result.failures} requests failed`),
    ],
  };
};
