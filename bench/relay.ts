/**
 * Relay mode: the latency calltrail adds when it stands in line between Flireo and the customer's
 * handler. Signed `tool-calls` webhooks are sent at a fixed arrival rate (open loop: each leaves on
 * its schedule whatever is still in flight, so queueing shows as latency) to calltrail in relay mode,
 * which archives each, forwards it to a local handler answering at once (`tool-handler.ts`, in a
 * process of its own), and answers with the handler's answer; then the same bodies, at the same
 * rate, straight to that handler. The difference is what calltrail adds. The same bodies also go
 * through bare relays (`relay-floor.ts`): what any in-line archive adds on this machine, so that what
 * is calltrail's own can be told from what the machine costs. Every answer is checked: 200 with
 * exactly the handler's body for that request.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Pool } from 'undici';
import { appSpec, webhookSecret, type BenchContext } from './context.ts';
import { assistantNumbers, seededRandom, signedHeaders } from './flireo-traffic.ts';
import {
  cpuMicrosPer,
  processCpuSeconds,
  startCpuMeter,
  summarizeLatencies,
  type LatencySummary,
} from './measure.ts';
import { startMeasuredProcess, type MeasuredProcess } from './processes.ts';
import type { RelayFloorKind } from './relay-floor.ts';
import { formatMicros, formatMs, type BenchmarkResult } from './report.ts';
import { toolCallAnswer } from './tool-handler.ts';

const rates = [200, 1000] as const;
const floorKinds: readonly RelayFloorKind[] = ['proxy', 'durable', 'journal', 'sync'];
/** The rate the target is stated at. */
const targetRate = 200;
const target = { addedP50Ms: 2, addedP99Ms: 5 };
/** Flireo waits 10 s for tool results; an answer later than this is a failure, not a latency. */
const requestTimeoutMs = 10_000;
/** Calls in flight at once: a call's next tool call comes this many requests later. */
const callsInFlight = 1000;
const exchangesTimeoutMs = 60_000;

/** Distinct `tool-calls` bodies of both generations, one to three tool calls each, several per call. */
class ToolCallTraffic {
  private readonly random: () => number;
  private sent = 0;

  constructor(
    private readonly runId: string,
    seed: number,
  ) {
    this.random = seededRandom(seed);
  }

  next(): string {
    const index = (this.sent += 1);
    const callId = `relay-${this.runId}-${index % callsInFlight}-${Math.floor(index / (callsInFlight * 3))}`;
    const assistant = assistantNumbers[index % assistantNumbers.length]!;
    const tools = Array.from({ length: 1 + Math.floor(this.random() * 3) }, (_, tool) => ({
      id: `call_${this.runId}_${index}_${tool}`,
      name: ['lookup_customer', 'book_appointment', 'check_availability'][tool]!,
      arguments: { date: '2026-11-28', customer: `crm-${Math.floor(this.random() * 1e6)}` },
    }));
    const now = Date.now();
    return this.random() < 0.7
      ? JSON.stringify({
          eventType: 'tool-calls',
          eventTime: now,
          callId,
          tasksInitiated: tools.map((tool) => ({
            taskId: tool.id,
            taskName: tool.name,
            taskPayload: tool.arguments,
          })),
          userMetadata: { crmId: `crm-${index}` },
          toAssistant: assistant,
        })
      : JSON.stringify({
          message: {
            type: 'tool-calls',
            timestamp: new Date(now).toISOString(),
            call: { id: callId },
            toolCallList: tools.map((tool) => ({
              id: tool.id,
              type: 'function',
              function: { name: tool.name, arguments: tool.arguments },
            })),
            phoneNumber: { number: assistant },
          },
        });
  }
}

interface PathRun {
  readonly rate: number;
  readonly sent: number;
  readonly answered: number;
  /** Answers that were not 200 with the handler's body, and requests that got no answer, by kind. */
  readonly failures: Record<string, number>;
  readonly failed: number;
  /** Of the checked answers, from the moment each request was sent. */
  readonly latency: LatencySummary;
  /** How late the load generator sent requests against their schedule (its own lag, not the server's). */
  readonly sendLateness: LatencySummary;
  readonly seconds: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Sends `bodies` at `rate` per second to `target`, each on its schedule, and checks every answer. */
const sendAtRate = async (target: Pool, bodies: readonly string[], rate: number): Promise<PathRun> => {
  const latencies: number[] = [];
  const lateness: number[] = [];
  const failures: Record<string, number> = {};
  const fail = (kind: string) => {
    failures[kind] = (failures[kind] ?? 0) + 1;
  };
  const send = async (body: string, due: number): Promise<void> => {
    const sentAt = performance.now();
    lateness.push(sentAt - due);
    try {
      const response = await target.request({
        path: '/webhooks/flireo',
        method: 'POST',
        headers: signedHeaders(webhookSecret, body, Date.now()),
        body,
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      const answer = await response.body.text();
      const answeredAt = performance.now();
      if (response.statusCode !== 200) fail(`status ${response.statusCode}`);
      else if (answer !== toolCallAnswer(body)) fail('body is not the handler answer');
      else latencies.push(answeredAt - sentAt);
    } catch (error) {
      fail(error instanceof Error ? error.name : 'error');
    }
  };
  const pending: Promise<void>[] = [];
  const startedAt = performance.now() + 5;
  const dueAt = (index: number) => startedAt + (index * 1000) / rate;
  let index = 0;
  while (index < bodies.length) {
    const now = performance.now();
    // Everything due by now leaves now: a late timer sends the backlog at once, keeping the rate.
    for (; index < bodies.length && dueAt(index) <= now; index += 1)
      pending.push(send(bodies[index]!, dueAt(index)));
    if (index < bodies.length) await sleep(dueAt(index) - performance.now());
  }
  await Promise.all(pending);
  const failed = Object.values(failures).reduce((sum, count) => sum + count, 0);
  return {
    rate,
    sent: bodies.length,
    answered: latencies.length,
    failures,
    failed,
    latency: summarizeLatencies(latencies),
    sendLateness: summarizeLatencies(lateness),
    seconds: (performance.now() - startedAt) / 1000,
  };
};

interface Stored {
  readonly requests: number;
  readonly exchanges: number;
  /** Relayed requests journaled (their store append missed the archive budget), per run. */
  readonly journaledByRun: Record<string, number>;
  /** Per run, as each exchange recorded them: the request's archiving and the handler's answer, p50/p99 ms. */
  readonly partsByRun: Record<string, { archiveMs: [number, number]; forwardMs: [number, number] }>;
}

const storedCounts = async (url: string): Promise<Stored> => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const { rows } = await client.query<{ requests: number; exchanges: number }>(
      `SELECT count(*) FILTER (WHERE event_type = 'tool-calls')::int AS requests,
              count(*) FILTER (WHERE event_type = 'relay-exchange')::int AS exchanges
         FROM event_store.events`,
    );
    // The run is the call id's second part (relay-<run>-...).
    const journaled = await client.query<{
      run: string;
      journaled: number;
      archive: number[];
      forward: number[];
    }>(
      `SELECT split_part(data->>'callId', '-', 2) AS run,
              count(*) FILTER (WHERE (data->>'requestJournaled')::boolean)::int AS journaled,
              percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY (data->>'archiveMs')::float8) AS archive,
              percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY (data->>'latencyMs')::float8) AS forward
         FROM event_store.events WHERE event_type = 'relay-exchange' GROUP BY 1`,
    );
    const pair = (values: number[]): [number, number] => [values[0] ?? NaN, values[1] ?? NaN];
    return {
      requests: rows[0]?.requests ?? 0,
      exchanges: rows[0]?.exchanges ?? 0,
      journaledByRun: Object.fromEntries(journaled.rows.map((row) => [row.run, row.journaled])),
      partsByRun: Object.fromEntries(
        journaled.rows.map((row) => [
          row.run,
          { archiveMs: pair(row.archive), forwardMs: pair(row.forward) },
        ]),
      ),
    };
  } finally {
    await client.end();
  }
};

/**
 * The floor under any relayed answer: nothing is answered before the request is durable, and one
 * durable commit (a one-row INSERT, waiting for the WAL flush) takes this long here, one at a time.
 */
const durableCommitLatency = async (url: string, commits: number): Promise<LatencySummary> => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    await client.query('CREATE TABLE relay_bench_commit_floor (id serial PRIMARY KEY, at timestamptz)');
    const latencies: number[] = [];
    for (let commit = 0; commit < commits; commit += 1) {
      const startedAt = performance.now();
      await client.query('INSERT INTO relay_bench_commit_floor (at) VALUES (now())');
      latencies.push(performance.now() - startedAt);
    }
    await client.query('DROP TABLE relay_bench_commit_floor');
    return summarizeLatencies(latencies);
  } finally {
    await client.end();
  }
};

const cores = (seconds: number | undefined, wallSeconds: number) =>
  seconds === undefined ? undefined : Math.round((seconds / wallSeconds) * 100) / 100;

export const benchRelay = async (context: BenchContext): Promise<BenchmarkResult> => {
  const { options } = context;
  const loadAverageAtStart = os.loadavg().map((load) => Math.round(load * 100) / 100);
  const url = await context.postgres.createDatabase('relay');
  const journalDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-bench-relay-'));
  let handler: MeasuredProcess | undefined;
  let app: MeasuredProcess | undefined;
  const floorProcesses: MeasuredProcess[] = [];
  const pools: Pool[] = [];
  try {
    handler = await startMeasuredProcess({ role: 'tool-handler' }, context.processes);
    // As `calltrail serve` runs relay mode: with its outage journal.
    app = await startMeasuredProcess(
      { ...appSpec(url, options), journalDir, relayUrl: `http://127.0.0.1:${handler.port}/flireo` },
      context.processes,
    );
    const poolFor = (port: number) => {
      // Enough connections that the client never queues at these rates, unless the server does.
      const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 512, keepAliveTimeout: 60_000 });
      pools.push(pool);
      return pool;
    };
    const direct = poolFor(handler.port);
    const viaCalltrail = poolFor(app.port);
    const floors = new Map<RelayFloorKind, Pool>();
    for (const kind of floorKinds) {
      const floor = await startMeasuredProcess(
        {
          role: 'relay-floor',
          kind,
          handlerUrl: `http://127.0.0.1:${handler.port}/flireo`,
          databaseUrl: url,
        },
        context.processes,
      );
      floorProcesses.push(floor);
      floors.set(kind, poolFor(floor.port));
    }

    const warmup = new ToolCallTraffic('warmup', 11);
    const warmupBodies = Array.from({ length: targetRate * options.warmupSeconds }, () => warmup.next());
    context.progress(`relay: warming up (${options.warmupSeconds} s at ${targetRate}/s, each path)`);
    const warmups = {
      direct: await sendAtRate(direct, warmupBodies, targetRate),
      calltrail: await sendAtRate(viaCalltrail, warmupBodies, targetRate),
    };
    for (const pool of floors.values()) await sendAtRate(pool, warmupBodies, targetRate);

    context.progress('relay: timing durable commits, one at a time');
    const commitFloor = await durableCommitLatency(url, targetRate * 2);

    const runs: {
      rate: number;
      direct: PathRun;
      floors: Record<RelayFloorKind, PathRun>;
      calltrail: PathRun;
      cpu: Record<string, number | undefined>;
    }[] = [];
    for (const [at, rate] of rates.entries()) {
      const traffic = new ToolCallTraffic(`r${rate}`, 100 + at);
      const bodies = Array.from({ length: rate * options.loadSeconds }, () => traffic.next());
      context.progress(`relay: ${bodies.length} tool-calls at ${rate}/s straight to the handler`);
      const directRun = await sendAtRate(direct, bodies, rate);
      const floorRuns: Partial<Record<RelayFloorKind, PathRun>> = {};
      for (const [kind, pool] of floors) {
        context.progress(`relay: the same ${bodies.length} at ${rate}/s through the bare ${kind} relay`);
        floorRuns[kind] = await sendAtRate(pool, bodies, rate);
      }
      context.progress(`relay: the same ${bodies.length} at ${rate}/s through calltrail`);
      const meter = startCpuMeter(app.pid, context.postgres.pid);
      const handlerCpuBefore = processCpuSeconds(handler.pid);
      const generatorBefore = process.cpuUsage();
      const calltrailRun = await sendAtRate(viaCalltrail, bodies, rate);
      const generator = process.cpuUsage(generatorBefore);
      const cpu = meter.stop();
      const handlerCpuAfter = processCpuSeconds(handler.pid);
      const handlerSeconds =
        handlerCpuBefore === undefined || handlerCpuAfter === undefined
          ? undefined
          : handlerCpuAfter - handlerCpuBefore;
      const generatorCores = cores((generator.user + generator.system) / 1e6, cpu.wallSeconds);
      runs.push({
        rate,
        direct: directRun,
        floors: {
          proxy: floorRuns.proxy!,
          durable: floorRuns.durable!,
          journal: floorRuns.journal!,
          sync: floorRuns.sync!,
        },
        calltrail: calltrailRun,
        cpu: {
          calltrailMicrosPerRequest: cpuMicrosPer(cpu.processSeconds, calltrailRun.sent),
          postgresMicrosPerRequest: cpuMicrosPer(cpu.postgresSeconds, calltrailRun.sent),
          calltrailCores: cpu.processCores,
          postgresCores: cpu.postgresCores,
          handlerCores: cores(handlerSeconds, cpu.wallSeconds),
          generatorCores,
          machineCores: cpu.machineCores,
          // Cores busy with work that is not this benchmark's (other users of a shared machine).
          otherCores:
            cpu.machineCores === undefined
              ? undefined
              : Math.max(
                  0,
                  Math.round(
                    (cpu.machineCores -
                      (cpu.processCores ?? 0) -
                      (cpu.postgresCores ?? 0) -
                      (cores(handlerSeconds, cpu.wallSeconds) ?? 0) -
                      (generatorCores ?? 0)) *
                      100,
                  ) / 100,
                ),
        },
      });
    }

    // Every relayed request is archived, then its exchange, as the answer goes out: wait for the last.
    const relayed = warmups.calltrail.sent + runs.reduce((sum, run) => sum + run.calltrail.sent, 0);
    const deadline = performance.now() + exchangesTimeoutMs;
    let stored = await storedCounts(url);
    while (stored.exchanges < relayed && performance.now() < deadline) {
      await sleep(50);
      stored = await storedCounts(url);
    }
    const handlerRequests = await handler.request<number>({ command: 'requests' });

    /** What a path adds to the handler's own latency, p50 and p99. */
    const added = (path: PathRun, directRun: PathRun) => ({
      p50: path.latency.p50Ms - directRun.latency.p50Ms,
      p99: path.latency.p99Ms - directRun.latency.p99Ms,
    });
    const rows = runs.flatMap(({ rate, direct: directRun, floors, calltrail }) => {
      const { p50: addedP50, p99: addedP99 } = added(calltrail, directRun);
      const proxy = added(floors.proxy, directRun);
      const durable = added(floors.durable, directRun);
      const journal = added(floors.journal, directRun);
      const sync = added(floors.sync, directRun);
      const failed = calltrail.failed + directRun.failed;
      return [
        {
          measure: `${rate} req/s tool-calls, p50 / p99`,
          value: `${formatMs(calltrail.latency.p50Ms)} / ${formatMs(calltrail.latency.p99Ms)}`,
          ceiling: `handler directly: ${formatMs(directRun.latency.p50Ms)} / ${formatMs(directRun.latency.p99Ms)}`,
        },
        {
          measure: `${rate} req/s added by calltrail, p50 / p99`,
          value: `${formatMs(addedP50)} / ${formatMs(addedP99)}; failed ${failed}, journaled ${stored.journaledByRun[`r${rate}`] ?? 0}`,
          ceiling: `bare relays add: durable ${formatMs(durable.p50)} / ${formatMs(durable.p99)}, journal ${formatMs(journal.p50)} / ${formatMs(journal.p99)}, sync ${formatMs(sync.p50)} / ${formatMs(sync.p99)}, proxy ${formatMs(proxy.p50)} / ${formatMs(proxy.p99)}`,
          ...(rate === targetRate
            ? {
                target: {
                  description: `added p50 <= ${target.addedP50Ms} ms, p99 <= ${target.addedP99Ms} ms, none failed`,
                  pass: addedP50 <= target.addedP50Ms && addedP99 <= target.addedP99Ms && failed === 0,
                },
              }
            : {}),
        },
        {
          measure: `${rate} req/s calltrail over the bare durable relay, p50 / p99`,
          value: `${formatMs(addedP50 - durable.p50)} / ${formatMs(addedP99 - durable.p99)}`,
        },
      ];
    });
    const failures = runs.reduce(
      (sum, run) =>
        sum +
        run.calltrail.failed +
        run.direct.failed +
        floorKinds.reduce((floorSum, kind) => floorSum + run.floors[kind].failed, 0),
      0,
    );
    return {
      name: 'relay',
      rows,
      details: {
        runs,
        commitFloor,
        warmups,
        relayed,
        stored,
        handlerRequests,
        loadAverageAtStart,
        loadAverageAtEnd: os.loadavg().map((load) => Math.round(load * 100) / 100),
      },
      notes: [
        `open loop at a fixed arrival rate, ${options.loadSeconds} s per rate and path, distinct signed tool-calls (both generations, 1-3 tool calls each); latency from each request's send to its checked answer; calltrail in relay mode with its outage journal, the handler and calltrail each in a process of their own, the load in this process`,
        `failed (not 200 with the handler's answer, or no answer in ${requestTimeoutMs / 1000} s), on every path: ${failures} (must be 0)${failures > 0 ? ', see JSON' : ''}`,
        `bare relays, the floor under any in-line archive on this machine (relay-floor.ts, each a node:http server in its own process using relay mode's HTTP client): proxy forwards and answers; durable also inserts the body into PostgreSQL (one row, one durable commit) while forwarding, and answers once both are done; journal writes it to a local LMDB file synced as the outage journal's is instead; sync writes it to a preallocated local file and fdatasyncs it (the least any durable record costs here)`,
        `journaled: a relayed request whose store append misses CALLTRAIL_RELAY_ARCHIVE_BUDGET_MS (200 ms) goes to the outage journal, and the events after it too until the drainer stores one (warm-up ${stored.journaledByRun['warmup'] ?? 0})`,
        `inside calltrail, as each exchange recorded them (p50 / p99): ${runs
          .map(({ rate }) => {
            const parts = stored.partsByRun[`r${rate}`];
            return parts === undefined
              ? `${rate}/s none`
              : `${rate}/s archiving the request ${formatMs(parts.archiveMs[0])} / ${formatMs(parts.archiveMs[1])}, the handler's answer ${formatMs(parts.forwardMs[0])} / ${formatMs(parts.forwardMs[1])}`;
          })
          .join('; ')} (both run at once; the answer waits for both)`,
        `floor: nothing is answered before the request is durable; one durable PostgreSQL commit on its own took ${formatMs(commitFloor.p50Ms)} / ${formatMs(commitFloor.p99Ms)} (p50 / p99) in this run`,
        `calltrail CPU per relayed request: ${runs.map((run) => `${run.rate}/s ${formatMicros(run.cpu['calltrailMicrosPerRequest'])}`).join(', ')} (PostgreSQL: ${runs.map((run) => formatMicros(run.cpu['postgresMicrosPerRequest'])).join(', ')})`,
        `archived: ${stored.requests} tool-calls requests and ${stored.exchanges} relay exchanges of ${relayed} relayed (must be equal); the handler answered ${handlerRequests}`,
        `other processes on the machine used ${runs.map((run) => `${run.cpu['otherCores'] ?? '?'}`).join(' / ')} cores during the calltrail runs (2 cores in all); load average ${loadAverageAtStart.join(', ')} at the start`,
      ],
    };
  } finally {
    await Promise.all(pools.map((pool) => pool.close()));
    await app?.stop();
    for (const floor of floorProcesses) await floor.stop();
    await handler?.stop();
    await rm(journalDir, { recursive: true, force: true });
  }
};
