/**
 * Ingest: `POST /webhooks/flireo` of the real app (PostgreSQL event store, signature checking on),
 * against a no-op Fastify route with the same body schema, both loaded the same way by autocannon
 * from this process while the server runs in its own. Every request is a distinct Flireo
 * status-update (either documentation generation), correctly signed at the moment it is sent; a
 * call's start and end arrive a thousand requests apart, as a live deployment sees them, so streams
 * are both created and extended.
 */
import autocannon from 'autocannon';
import pg from 'pg';
import { appSpec, webhookSecret, type BenchContext } from './context.ts';
import { seededRandom, signedHeaders, simulateCall, statusUpdatesOf } from './flireo-traffic.ts';
import {
  cpuMicrosPer,
  startCpuMeter,
  summarizeLatencies,
  type CpuUse,
  type LatencySummary,
} from './measure.ts';
import { startMeasuredProcess, type MeasuredProcess } from './processes.ts';
import { formatMicros, formatMs, formatRate, type BenchmarkResult } from './report.ts';

/** Calls in flight at once; each request takes the next event of one of them. */
const callsInFlight = 1000;

export class LiveTraffic {
  private readonly random: () => number;
  private readonly slots: string[][] = Array.from({ length: callsInFlight }, () => []);
  private sent = 0;
  private calls = 0;

  constructor(
    private readonly runId: string,
    seed: number,
  ) {
    this.random = seededRandom(seed);
  }

  next(): { body: string; headers: Record<string, string> } {
    const slot = this.slots[this.sent % callsInFlight]!;
    this.sent += 1;
    if (slot.length === 0) {
      // Started long enough ago that both its events lie in the past.
      const call = simulateCall(this.random, `${this.runId}-${(this.calls += 1)}`, Date.now() - 700_000);
      slot.push(...statusUpdatesOf(call));
    }
    const body = slot.shift()!;
    return { body, headers: signedHeaders(webhookSecret, body, Date.now()) };
  }
}

export interface LoadResult {
  readonly connections: number;
  readonly seconds: number;
  readonly requestsPerSecond: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly statusCodes: Record<string, number>;
  readonly latency: LatencySummary;
  readonly cpu: CpuUse;
  /** The load generator's (this process's) CPU use, in cores: near 1.0, it is what limits the rate. */
  readonly generatorCores: number;
  /** CPU microseconds per answered request: the server process, and PostgreSQL. */
  readonly cpuPerRequest: { readonly server: number | undefined; readonly postgres: number | undefined };
  /**
   * PostgreSQL transactions per answered request: the appends' shared commits plus the stream reads
   * (each a transaction of its own), as the statistics count them.
   */
  readonly commitsPerRequest: number | undefined;
}

const load = async (
  server: MeasuredProcess,
  traffic: LiveTraffic,
  connections: number,
  seconds: number,
  postmasterPid: number | undefined,
  commits: (() => Promise<number | undefined>) | undefined,
): Promise<LoadResult> => {
  const commitsBefore = await commits?.();
  const latencies: number[] = [];
  const instance = autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections,
    duration: seconds,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: '/webhooks/flireo',
        setupRequest: (request) => ({ ...request, ...traffic.next() }),
      },
    ],
  });
  // autocannon's own histogram rounds to whole milliseconds; the p99 target needs finer.
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, ms: number) => {
    if (statusCode >= 200 && statusCode < 300) latencies.push(ms);
  });
  const cpu = startCpuMeter(server.pid, postmasterPid);
  const generatorStart = process.cpuUsage();
  const result = await instance;
  const cpuUse = cpu.stop();
  const generator = process.cpuUsage(generatorStart);
  let commitsAfter: number | undefined;
  if (commits !== undefined) {
    // Backends publish their statistics a moment after going idle.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    commitsAfter = await commits();
  }
  const answered = result['2xx'] + result.non2xx;
  return {
    connections,
    seconds: result.duration,
    requestsPerSecond: result['2xx'] / result.duration,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(
      Object.entries(result.statusCodeStats).map(([code, stats]) => [code, stats.count]),
    ),
    latency: summarizeLatencies(latencies),
    cpu: cpuUse,
    generatorCores: Math.round(((generator.user + generator.system) / 1e6 / cpuUse.wallSeconds) * 100) / 100,
    cpuPerRequest: {
      server: cpuMicrosPer(cpuUse.processSeconds, answered),
      postgres: cpuMicrosPer(cpuUse.postgresSeconds, answered),
    },
    commitsPerRequest:
      commitsBefore === undefined || commitsAfter === undefined || answered === 0
        ? undefined
        : Math.round(((commitsAfter - commitsBefore) / answered) * 1000) / 1000,
  };
};

/** Cores busy with work that is not this benchmark's (other users of a shared machine). */
const otherLoad = (runs: readonly { app: LoadResult; noop: LoadResult }[]): string => {
  const others = runs.flatMap(({ app, noop }) =>
    [app, noop].flatMap((run) =>
      run.cpu.machineCores === undefined
        ? []
        : [
            run.cpu.machineCores -
              (run.cpu.processCores ?? 0) -
              (run.cpu.postgresCores ?? 0) -
              run.generatorCores,
          ],
    ),
  );
  return others.length === 0
    ? '?'
    : Math.max(0, others.reduce((sum, value) => sum + value, 0) / others.length).toFixed(2);
};

/** Transactions committed in the database so far, as PostgreSQL's statistics count them. */
const committedTransactions = (client: pg.Client) => async (): Promise<number | undefined> => {
  const { rows } = await client.query<{ commits: string }>(
    'SELECT xact_commit::text AS commits FROM pg_stat_database WHERE datname = current_database()',
  );
  return rows[0] === undefined ? undefined : Number(rows[0].commits);
};

const countStoredEvents = async (url: string): Promise<number> => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const { rows } = await client.query<{ count: string }>(
      'SELECT count(*)::text AS count FROM event_store.events',
    );
    return Number(rows[0]?.count ?? 0);
  } finally {
    await client.end();
  }
};

export const benchIngest = async (context: BenchContext): Promise<BenchmarkResult> => {
  const { options } = context;
  const url = await context.postgres.createDatabase('ingest');
  const app = await startMeasuredProcess(appSpec(url, options), context.processes);
  let noop: MeasuredProcess | undefined;
  const statistics = new pg.Client(url);
  try {
    await statistics.connect();
    noop = await startMeasuredProcess({ role: 'noop', logLevel: options.logLevel }, context.processes);
    const traffic = { app: new LiveTraffic('ingest-app', 1), noop: new LiveTraffic('ingest-noop', 2) };
    const warmups: Record<string, LoadResult> = {};
    for (const [name, server] of [
      ['no-op route', noop],
      ['calltrail', app],
    ] as const) {
      context.progress(`ingest: warming up ${name} (${options.warmupSeconds} s)`);
      warmups[name] = await load(
        server,
        name === 'calltrail' ? traffic.app : traffic.noop,
        50,
        options.warmupSeconds,
        context.postgres.pid,
        undefined,
      );
    }
    const runs: { connections: number; app: LoadResult; noop: LoadResult }[] = [];
    for (const connections of [50, 200]) {
      context.progress(`ingest: no-op route, ${connections} connections, ${options.loadSeconds} s`);
      const noopRun = await load(
        noop,
        traffic.noop,
        connections,
        options.loadSeconds,
        context.postgres.pid,
        undefined,
      );
      context.progress(`ingest: calltrail, ${connections} connections, ${options.loadSeconds} s`);
      const appRun = await load(
        app,
        traffic.app,
        connections,
        options.loadSeconds,
        context.postgres.pid,
        committedTransactions(statistics),
      );
      runs.push({ connections, app: appRun, noop: noopRun });
    }
    const accepted = await countStoredEvents(url);
    const rows = runs.flatMap(({ connections, app: appRun, noop: noopRun }) => {
      const ratio = appRun.requestsPerSecond / noopRun.requestsPerSecond;
      const atTarget = connections === 50;
      return [
        {
          measure: `c=${connections} throughput`,
          value: formatRate(appRun.requestsPerSecond, 'req'),
          ceiling: formatRate(noopRun.requestsPerSecond, 'req'),
          ratio,
          ...(atTarget ? { target: { description: '>= 60% of no-op', pass: ratio >= 0.6 } } : {}),
        },
        {
          measure: `c=${connections} latency p50 / p99`,
          value: `${formatMs(appRun.latency.p50Ms)} / ${formatMs(appRun.latency.p99Ms)}`,
          ceiling: `${formatMs(noopRun.latency.p50Ms)} / ${formatMs(noopRun.latency.p99Ms)}`,
          ...(atTarget ? { target: { description: 'p99 <= 10 ms', pass: appRun.latency.p99Ms <= 10 } } : {}),
        },
        {
          measure: `c=${connections} CPU per request (server + PostgreSQL)`,
          value: `${formatMicros(appRun.cpuPerRequest.server)} + ${formatMicros(appRun.cpuPerRequest.postgres)}`,
          ceiling: formatMicros(noopRun.cpuPerRequest.server),
          ...(appRun.cpuPerRequest.server !== undefined && noopRun.cpuPerRequest.server !== undefined
            ? { ratio: noopRun.cpuPerRequest.server / appRun.cpuPerRequest.server }
            : {}),
        },
      ];
    });
    const failures = runs.reduce((sum, run) => sum + run.app.non2xx + run.app.errors + run.app.timeouts, 0);
    return {
      name: 'ingest',
      rows,
      details: { runs, warmups, storedEvents: accepted, logLevel: options.logLevel },
      notes: [
        `server in its own process, autocannon in the benchmark process (2 cores: the load generator must not share the server's event loop); log level ${options.logLevel}; no projector in the server process`,
        `PostgreSQL transactions per calltrail request (shared append commits plus stream reads): ${runs
          .map((run) => `c=${run.connections} ${run.app.commitsPerRequest ?? '?'}`)
          .join(', ')}`,
        `other processes on the machine used ${otherLoad(runs)} cores on average during the measurements (2 cores in all); the CPU ratio (server CPU per request, no-op / calltrail) does not depend on them`,
        ...(failures > 0 ? [`${failures} calltrail requests failed or were refused (see JSON)`] : []),
      ],
    };
  } finally {
    await statistics.end().catch(() => {});
    await noop?.stop();
    await app.stop();
  }
};
