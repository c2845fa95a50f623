/**
 * The console: (a) the Calls page's first useful render, server time and bytes, over a `calls` read
 * model as large as the archive data set's (1M events: about 228k calls), seeded in bulk SQL rather
 * than by ingesting and projecting a million webhooks; the ceiling is the same page's query as bare
 * SQL. (b) `GET /live` fan-out: 100 clients connected while webhooks arrive at a steady rate, the
 * delivery latency from each webhook's 202 to its arrival at each client; the ceiling is the same
 * run with one client.
 */
import http from 'node:http';
import pg from 'pg';
import { debugInfoIndexedMatches } from '../src/audit/call-queries.ts';
import { migrateReadModels, openDatabase } from '../src/database/database.ts';
import { apiToken, appSpec, webhookSecret, type BenchContext } from './context.ts';
import { assistantNumbers, seededRandom, signedHeaders } from './flireo-traffic.ts';
import {
  cpuMicrosPer,
  processCpuSeconds,
  startCpuMeter,
  summarizeLatencies,
  type LatencySummary,
} from './measure.ts';
import { startMeasuredProcess } from './processes.ts';
import { formatMs, type BenchmarkResult, type ResultRow } from './report.ts';
import { datasetSpanMs, datasetStart } from './seed.ts';

/** Events per call in the archive data set (1,000,000 events: 227,761 calls). */
const eventsPerCall = 4.39;
const pagesDeep = 5;
const sessionCookie = `calltrail_session=${apiToken}`;

/** A `calls` table shaped like the projected data set's: statuses, assistants, callers, artifacts. */
const seedCalls = async (url: string, calls: number): Promise<void> => {
  const database = openDatabase(url, { max: 1 });
  try {
    await migrateReadModels(database);
  } finally {
    await database.close();
  }
  const client = new pg.Client(url);
  await client.connect();
  try {
    const assistants = `ARRAY[${assistantNumbers.map((number) => `'${number}'`).join(',')}]`;
    await client.query(
      `INSERT INTO calls (call_id, caller, assistant, first_event_at, last_event_at, status, outcome,
                          ended_reason, debugging_artifact, started_at, ended_at, duration_seconds,
                          event_count, last_revision, last_commit_position, last_prepare_position, fold_state)
       SELECT 'bench-' || n,
              '+49151' || lpad((hashint4(n) & 65535)::text, 7, '0'),
              (${assistants})[1 + (n % ${assistantNumbers.length})],
              at - make_interval(secs => duration),
              at,
              status,
              CASE WHEN status = 'in-progress' THEN NULL ELSE status END,
              CASE WHEN status = 'in-progress' THEN NULL WHEN status = 'ended' THEN 'customer-ended-call'
                   ELSE 'pipeline-error-openai-llm-failed' END,
              CASE WHEN status = 'ended-with-debugging'
                   THEN 'tool webhook https://api.example.com/orders/' || n || ' timed out after 10000 ms' END,
              at - make_interval(secs => duration),
              CASE WHEN status = 'in-progress' THEN NULL ELSE at END,
              CASE WHEN status = 'in-progress' THEN NULL ELSE duration END,
              4, 3, n * 5, n * 5, '{}'::json
         FROM (SELECT n,
                      timestamptz '${new Date(datasetStart).toISOString()}'
                        + make_interval(secs => (n::double precision / ${calls}) * ${datasetSpanMs / 1000}) AS at,
                      30 + (hashint4(n + 1) & 511) AS duration,
                      CASE WHEN n > ${calls} - ${Math.round(calls * 0.02)} THEN 'in-progress'
                           WHEN (hashint4(n + 2) & 15) < 2 THEN 'ended-with-debugging'
                           ELSE 'ended' END AS status
                 FROM generate_series(1, ${calls}) AS n) AS seeded`,
    );
    await client.query('VACUUM ANALYZE calls');
  } finally {
    await client.end();
  }
};

interface PageAnswer {
  readonly ms: number;
  readonly status: number;
  readonly bytes: number;
  readonly next: string | undefined;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

const getPage = (port: number, pathAndQuery: string): Promise<PageAnswer> =>
  new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.get(
      { host: '127.0.0.1', port, path: pathAndQuery, headers: { cookie: sessionCookie }, agent },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const ms = performance.now() - started;
          const body = Buffer.concat(chunks);
          const next = /<a\s+rel="next"\s+href="([^"]+)"/.exec(body.toString('utf8'))?.[1];
          resolve({
            ms,
            status: response.statusCode ?? 0,
            bytes: body.length,
            next: next?.replaceAll('&amp;', '&'),
          });
        });
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });

/** What a scenario's terms are drawn from: the seeded calls' own artifacts. */
interface SeededArtifacts {
  /** The number in `.../orders/<n> timed out ...` of every seeded call with an artifact. */
  readonly orderNumbers: readonly number[];
}

interface Scenario {
  readonly name: string;
  query(random: () => number, seeded: SeededArtifacts): Record<string, string>;
  /**
   * The first page's SQL, for the ceiling. For a Debug Info search, `sortedMatches` is the choice
   * the page makes from PostgreSQL's estimate (taken before the clock starts, as the page keeps it).
   */
  sql(query: Record<string, string>, sortedMatches: boolean): { text: string; values: string[] };
}

const columns =
  'call_id, caller, assistant, status, outcome, ended_reason, debugging_artifact, first_event_at, ' +
  'last_event_at, started_at, ended_at, duration_seconds, event_count, last_revision, ' +
  'last_commit_position, last_prepare_position';

const firstPageSql = (conditions: string[], values: string[], sortedMatches = false) => ({
  text: `SELECT ${columns} FROM calls WHERE ${['last_event_at IS NOT NULL', ...conditions].join(' AND ')} ORDER BY ${sortedMatches ? "last_event_at + interval '0 s'" : 'last_event_at'} DESC, call_id DESC LIMIT 51`,
  values,
});

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const debugInfoScenario = (
  name: string,
  term: (random: () => number, seeded: SeededArtifacts) => string,
): Scenario => ({
  name,
  query: (random, seeded) => ({ debugInfo: term(random, seeded) }),
  sql: (query, sortedMatches) =>
    firstPageSql(
      ['debugging_artifact ILIKE $1'],
      [`%${query['debugInfo']!.replace(/[%_\\]/g, '\\$&')}%`],
      sortedMatches,
    ),
});

const scenarios: readonly Scenario[] = [
  { name: 'no filter', query: () => ({}), sql: () => firstPageSql([], []) },
  {
    name: 'status',
    query: (random) => ({ status: pick(random, ['in-progress', 'ended', 'ended-with-debugging']) }),
    sql: (query) => firstPageSql(['status = $1'], [query['status']!]),
  },
  {
    name: 'assistant',
    query: (random) => ({ assistant: pick(random, assistantNumbers) }),
    sql: (query) => firstPageSql(['assistant = $1'], [query['assistant']!]),
  },
  {
    name: 'one-day window',
    query: (random) => {
      const day = datasetStart + Math.floor(random() * 30) * 86_400_000;
      return { from: new Date(day).toISOString(), to: new Date(day + 86_400_000).toISOString() };
    },
    sql: (query) =>
      firstPageSql(
        ['last_event_at >= $1::timestamptz', 'last_event_at < $2::timestamptz'],
        [query['from']!, query['to']!],
      ),
  },
  // Order numbers grow with time: `orders/1` and `orders/2` are in recent artifacts, `orders/3` to
  // `orders/9` (about 1,400 artifacts each) only in calls older than the newest 100,000.
  debugInfoScenario('Debug Info text', (random) => `orders/${Math.floor(random() * 9) + 1}`),
  debugInfoScenario('Debug Info, common', (random) =>
    pick(random, ['timed out', 'api.example.com', 'orders/1', 'orders/2']),
  ),
  // A four-digit prefix: n, 10n..10n+9 and 100n..100n+99, about 14 artifacts spread over the archive.
  debugInfoScenario('Debug Info, rare', (random) => `orders/${1_000 + Math.floor(random() * 9_000)}`),
  debugInfoScenario(
    'Debug Info, one match',
    (random, seeded) => `orders/${pick(random, seeded.orderNumbers)} `,
  ),
  debugInfoScenario('Debug Info, no match', (random) => `orders/${300_000 + Math.floor(random() * 700_000)}`),
];

/** PostgreSQL's estimate of the calls whose artifact contains `text`, as the page asks for it. */
const estimatedMatches = async (sql: pg.Client, text: string): Promise<number> => {
  const { rows } = await sql.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(
    'EXPLAIN (FORMAT JSON) SELECT 1 FROM calls WHERE debugging_artifact ILIKE $1',
    [`%${text.replace(/[%_\\]/g, '\\$&')}%`],
  );
  return rows[0]!['QUERY PLAN'][0].Plan['Plan Rows'];
};

interface ScenarioResult {
  readonly name: string;
  readonly firstPage: LatencySummary;
  readonly deeperPages: LatencySummary;
  readonly rawSql: LatencySummary;
  readonly meanBytes: number;
  readonly failures: number;
  /** CPU per page requested (first and deeper, warm-up included): the server's and PostgreSQL's. */
  readonly appCpuMicrosPerPage: number | undefined;
  readonly postgresCpuMicrosPerPage: number | undefined;
}

const benchCallsPage = async (context: BenchContext, calls: number): Promise<ScenarioResult[]> => {
  const url = await context.postgres.createDatabase('console_calls');
  context.progress(`console: seeding ${calls.toLocaleString('en-US')} calls in bulk SQL`);
  await seedCalls(url, calls);
  const samples = context.options.quick ? 40 : 200;
  const app = await startMeasuredProcess(appSpec(url, context.options), context.processes);
  const sql = new pg.Client(url);
  await sql.connect();
  const results: ScenarioResult[] = [];
  try {
    const seeded: SeededArtifacts = {
      orderNumbers: (
        await sql.query<{ n: string }>(
          `SELECT substring(debugging_artifact from 'orders/([0-9]+)') AS n FROM calls
            WHERE debugging_artifact IS NOT NULL ORDER BY call_id`,
        )
      ).rows.map((row) => Number(row.n)),
    };
    for (const [index, scenario] of scenarios.entries()) {
      context.progress(
        `console: Calls page, ${scenario.name}, ${samples} first pages, ${pagesDeep - 1} deeper`,
      );
      const random = seededRandom(11 + index);
      const first: number[] = [];
      const deeper: number[] = [];
      let bytes = 0;
      let failures = 0;
      let requested = 0;
      const cpu = startCpuMeter(app.pid, context.postgres.pid);
      for (let sample = -10; sample < samples; sample += 1) {
        let target: string | undefined =
          `/console/calls?${new URLSearchParams(scenario.query(random, seeded)).toString()}`;
        for (let page = 1; page <= pagesDeep && target !== undefined; page += 1) {
          const answer = await getPage(app.port, target);
          requested += 1;
          if (answer.status !== 200) {
            failures += 1;
            break;
          }
          if (sample >= 0) {
            (page === 1 ? first : deeper).push(answer.ms);
            if (page === 1) bytes += answer.bytes;
          }
          target = answer.next;
        }
      }
      const used = cpu.stop();
      const rawRandom = seededRandom(11 + index);
      const raw: number[] = [];
      for (let sample = -10; sample < samples; sample += 1) {
        const query = scenario.query(rawRandom, seeded);
        const term = query['debugInfo'];
        const statement = scenario.sql(
          query,
          term !== undefined && (await estimatedMatches(sql, term)) <= debugInfoIndexedMatches,
        );
        const started = performance.now();
        await sql.query(statement);
        if (sample >= 0) raw.push(performance.now() - started);
      }
      results.push({
        name: scenario.name,
        firstPage: summarizeLatencies(first),
        deeperPages: summarizeLatencies(deeper),
        rawSql: summarizeLatencies(raw),
        meanBytes: first.length === 0 ? 0 : bytes / first.length,
        failures,
        appCpuMicrosPerPage: cpuMicrosPer(used.processSeconds, requested),
        postgresCpuMicrosPerPage: cpuMicrosPer(used.postgresSeconds, requested),
      });
    }
  } finally {
    await sql.end();
    await app.stop();
  }
  return results;
};

interface FanOutResult {
  readonly clients: number;
  readonly events: number;
  readonly ratePerSecond: number;
  readonly latency: LatencySummary;
  readonly missing: number;
  readonly acceptMs: LatencySummary;
  /** The server's CPU (user + system) per webhook sent, from the first send until every client had all. */
  readonly appCpuMicrosPerEvent: number | undefined;
  /** The benchmark process's own (sender and clients). */
  readonly benchCpuMicrosPerEvent: number;
}

/**
 * One SSE client: records when each event id arrives. Like a browser's EventSource, it connects
 * again after a 503 once the `Retry-After` has passed (a few times, then it gives up).
 */
const sseClient = async (port: number, arrivals: Map<string, number[]>): Promise<{ close: () => void }> => {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await sseConnect(port, arrivals);
    } catch (error) {
      const retryAfter = (error as { retryAfterSeconds?: number }).retryAfterSeconds;
      if (retryAfter === undefined || attempt >= 3) throw error;
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
    }
  }
};

const sseConnect = (port: number, arrivals: Map<string, number[]>): Promise<{ close: () => void }> =>
  new Promise((resolve, reject) => {
    const request = http.get(
      {
        host: '127.0.0.1',
        port,
        path: '/live',
        headers: { authorization: `Bearer ${apiToken}`, accept: 'text/event-stream' },
      },
      (response) => {
        if (response.statusCode !== 200) {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => {
            const error = new Error(`GET /live answered ${response.statusCode}: ${text.slice(0, 500)}`);
            const retryAfter = Number(response.headers['retry-after']);
            if (response.statusCode === 503 && Number.isFinite(retryAfter))
              Object.assign(error, { retryAfterSeconds: Math.min(retryAfter, 10) });
            reject(error);
          });
          return;
        }
        let buffer = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          const now = performance.now();
          buffer += chunk;
          let end = buffer.indexOf('\n\n');
          while (end !== -1) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = message.split('\n').find((line) => line.startsWith('data: '));
            if (data !== undefined) {
              const eventId = /"eventId":"([^"]+)"/.exec(data)?.[1];
              if (eventId !== undefined) {
                const list = arrivals.get(eventId);
                if (list) list.push(now);
                else arrivals.set(eventId, [now]);
              }
            }
            end = buffer.indexOf('\n\n');
          }
        });
        resolve({ close: () => request.destroy() });
      },
    );
    request.on('error', reject);
  });

const postWebhook = (port: number, body: string): Promise<{ status: number; eventId: string | undefined }> =>
  new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/webhooks/flireo',
        method: 'POST',
        headers: signedHeaders(webhookSecret, body, Date.now()),
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          let eventId: string | undefined;
          try {
            eventId = (JSON.parse(text) as { eventId?: string }).eventId;
          } catch {
            eventId = undefined;
          }
          resolve({ status: response.statusCode ?? 0, eventId });
        });
      },
    );
    request.on('error', reject);
    request.end(body);
  });

const benchFanOut = async (
  context: BenchContext,
  clients: number,
  ratePerSecond: number,
  seconds: number,
): Promise<FanOutResult> => {
  const url = await context.postgres.createDatabase(`console_live_${clients}`);
  const app = await startMeasuredProcess(appSpec(url, context.options), context.processes);
  const arrivals = new Map<string, number[]>();
  const connections: { close: () => void }[] = [];
  try {
    for (let index = 0; index < clients; index += 1) connections.push(await sseClient(app.port, arrivals));
    // Warm-up: a few events, and wait until every client has them (bounded).
    const accepted = new Map<string, number>();
    const acceptMs: number[] = [];
    let failures = 0;
    const send = async (sequence: number, record: boolean) => {
      const callId = `live-bench-${clients}-${sequence}`;
      const body = JSON.stringify({
        eventTimestamp: Date.now(),
        eventType: 'status-update',
        callSession: callId,
        fromCaller: '+4915112345678',
        toAssistant: assistantNumbers[sequence % assistantNumbers.length],
        status: 'in-progress',
      });
      const started = performance.now();
      const answer = await postWebhook(app.port, body);
      const done = performance.now();
      if (answer.status !== 202 || answer.eventId === undefined) {
        failures += 1;
        return;
      }
      if (record) {
        accepted.set(answer.eventId, done);
        acceptMs.push(done - started);
      }
    };
    for (let sequence = 0; sequence < 20; sequence += 1) await send(-1 - sequence, false);
    const total = ratePerSecond * seconds;
    context.progress(`console: /live fan-out, ${clients} clients, ${total} webhooks at ${ratePerSecond}/s`);
    const appCpuBefore = processCpuSeconds(app.pid);
    const benchCpuBefore = process.cpuUsage();
    const started = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let sequence = 0; sequence < total; sequence += 1) {
      const due = started + (sequence * 1000) / ratePerSecond;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      inFlight.push(send(sequence, true));
    }
    await Promise.all(inFlight);
    // Every client should have every event: wait for that, bounded.
    const deadline = performance.now() + 30_000;
    const complete = () =>
      [...accepted.keys()].every((eventId) => (arrivals.get(eventId)?.length ?? 0) >= clients);
    while (!complete() && performance.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    const appCpuAfter = processCpuSeconds(app.pid);
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const latencies: number[] = [];
    let missing = failures * clients;
    for (const [eventId, at] of accepted) {
      const times = arrivals.get(eventId) ?? [];
      missing += clients - times.length;
      // An event can reach a client before its 202 reaches the sender: that is no delay at all.
      for (const time of times) latencies.push(Math.max(0, time - at));
    }
    return {
      clients,
      events: accepted.size,
      ratePerSecond,
      latency: summarizeLatencies(latencies),
      missing,
      acceptMs: summarizeLatencies(acceptMs),
      appCpuMicrosPerEvent:
        appCpuBefore === undefined || appCpuAfter === undefined
          ? undefined
          : ((appCpuAfter - appCpuBefore) * 1e6) / total,
      benchCpuMicrosPerEvent: (benchCpu.user + benchCpu.system) / total,
    };
  } finally {
    for (const connection of connections) connection.close();
    await app.stop();
  }
};

const cpuMicros = (micros: number | undefined): string =>
  micros === undefined ? 'n/a' : `${Math.round(micros).toLocaleString('en-US')} µs`;

export const benchConsole = async (context: BenchContext): Promise<BenchmarkResult> => {
  const calls = Math.round(context.options.events / eventsPerCall);
  const pages = await benchCallsPage(context, calls);
  agent.destroy();
  const seconds = context.options.quick ? 5 : 20;
  const rate = 100;
  const baseline = await benchFanOut(context, 1, rate, seconds);
  const fanOut = await benchFanOut(context, 100, rate, seconds);
  const rows: ResultRow[] = [
    ...pages.flatMap((result) => [
      {
        measure: `Calls page ${result.name}: p50 / p99, bytes`,
        value: `${formatMs(result.firstPage.p50Ms)} / ${formatMs(result.firstPage.p99Ms)}, ${Math.round(result.meanBytes / 1024)} KiB`,
        ceiling: `SQL ${formatMs(result.rawSql.p50Ms)} / ${formatMs(result.rawSql.p99Ms)}`,
        ratio: result.rawSql.p50Ms / result.firstPage.p50Ms,
        target: {
          description: 'p99 <= 50 ms (at 1M events)',
          pass: result.firstPage.p99Ms <= 50 && result.failures === 0,
        },
      },
      {
        measure: '  CPU per page: server; PostgreSQL',
        value: `${cpuMicros(result.appCpuMicrosPerPage)}; ${cpuMicros(result.postgresCpuMicrosPerPage)}`,
      },
      // A filter whose results fit on one page (a small data set) has no deeper pages to time.
      ...(result.deeperPages.count === 0
        ? []
        : [
            {
              measure: `  pages 2-${pagesDeep}: p50 / p99`,
              value: `${formatMs(result.deeperPages.p50Ms)} / ${formatMs(result.deeperPages.p99Ms)}`,
            },
          ]),
    ]),
    {
      measure: `/live 202 -> client, ${fanOut.clients} clients at ${rate}/s: p50 / p99`,
      value: `${formatMs(fanOut.latency.p50Ms)} / ${formatMs(fanOut.latency.p99Ms)}`,
      ceiling: `1 client: ${formatMs(baseline.latency.p50Ms)} / ${formatMs(baseline.latency.p99Ms)}`,
      ratio: baseline.latency.p99Ms / fanOut.latency.p99Ms,
      target: { description: 'p99 <= 250 ms', pass: fanOut.latency.p99Ms <= 250 && fanOut.missing === 0 },
    },
    {
      measure: '  server CPU per webhook; benchmark process (clients)',
      value: `${cpuMicros(fanOut.appCpuMicrosPerEvent)}; ${cpuMicros(fanOut.benchCpuMicrosPerEvent)}`,
      ceiling: `1 client: ${cpuMicros(baseline.appCpuMicrosPerEvent)}; ${cpuMicros(baseline.benchCpuMicrosPerEvent)}`,
    },
  ];
  return {
    name: 'console',
    rows,
    details: { calls, pagesDeep, callsPage: pages, liveBaseline: baseline, liveFanOut: fanOut },
    notes: [
      `Calls page over ${calls.toLocaleString('en-US')} calls (the calls of ${context.options.events.toLocaleString('en-US')} events) seeded in bulk SQL; ` +
        'one request at a time with a session cookie, 50 rows a page, time to the whole page; ceiling: the same first page as bare SQL (for Debug Info, the statement the page chooses from the estimate); ratio of the p50s',
      `/live: ${fanOut.events} webhooks at ${rate}/s, each timed from its 202 to its arrival at each client ` +
        `(${fanOut.missing} deliveries missing); the clients run in the benchmark process on the same cores; ` +
        `webhook 202 p99 ${formatMs(fanOut.acceptMs.p99Ms)}; ratio: 1-client p99 / 100-client p99`,
    ],
  };
};
