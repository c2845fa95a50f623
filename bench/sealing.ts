/**
 * Sealing and verification over the archive data set, beside the ceiling of merely reading the same
 * events back in global order (what both must do at the least), in the same run: the sealer from an
 * empty digest stream until the last digest covers the archive's newest event (events/s), then
 * `verify` of everything against those digests (events/s); then ingest through the real app with
 * and without the sealer running beside it (the throughput it costs). Targets: sealing >= 50,000
 * events/s, verify >= 100,000 events/s, ingest cost <= 5%.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import pg from 'pg';
import { archiveStreamPrefixes } from '../src/archive/streams.ts';
import { formatPosition, type GlobalPosition } from '../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../src/event-store/postgres/postgres-event-store.ts';
import { createLogger } from '../src/logger.ts';
import { readDigestEvents } from '../src/sealing/digest-stream.ts';
import { startSealer } from '../src/sealing/sealer.ts';
import { generateSigningKey } from '../src/sealing/signing-key.ts';
import { verifyArchive } from '../src/sealing/verify.ts';
import { appSpec, type BenchContext } from './context.ts';
import { LiveTraffic, load, type LoadResult } from './ingest.ts';
import { cpuMicrosPer, startCpuMeter, type CpuUse } from './measure.ts';
import { startMeasuredProcess, type MeasuredProcess } from './processes.ts';
import { formatMicros, formatRate, type BenchmarkResult } from './report.ts';

const sealingTarget = 50_000;
const verifyTarget = 100_000;
/**
 * A full garbage collection, to see what a verification holds rather than what it has let go of
 * (this process runs without `--expose-gc`; the flag can still be set, and `gc` taken, at run time).
 */
const collectGarbage = (): (() => void) => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
};

/** Progress reports between two looks at the heap: a look (a full collection) costs tens of ms. */
const progressPerHeapLook = 10;

/** Most ingest throughput the sealer may cost, running beside it. */
const ingestCostTarget = 0.05;

/**
 * The ingest comparison runs in blocks of four short loads, without, with, with and without the
 * sealer (an ABBA order), so that a rate drifting while the archive grows or the machine's speed
 * changes weighs on both sides alike; short loads and many blocks cancel even drifts of seconds.
 * Each block gives an estimate of its own, and their spread shows how far the figure can be trusted.
 */
const longestBlockLoadSeconds = 2;
const blockLoadSeconds = (loadSeconds: number) => Math.min(longestBlockLoadSeconds, loadSeconds);
const blockOrder = ['without', 'with', 'with', 'without'] as const;
/** As long in all as three blocks of `--load-seconds` loads, in loads of `blockLoadSeconds`. */
const ingestBlocks = (loadSeconds: number) =>
  Math.max(3, Math.round((3 * loadSeconds) / blockLoadSeconds(loadSeconds)));

interface IngestBesideSealer {
  readonly without: LoadResult[];
  readonly with: LoadResult[];
  /** The cost over all blocks: 1 - (mean rate with) / (mean rate without). */
  readonly cost: number;
  /** Each block's own estimate of the cost, in the order measured. */
  readonly blockCosts: number[];
  /** How long each load of a block ran. */
  readonly blockSeconds: number;
  /**
   * The sealer process's CPU microseconds per request ingested while it ran beside; undefined when
   * it ran in the app's process (its CPU is then part of the server's).
   */
  readonly sealerCpuPerRequest: number | undefined;
}

const meanRate = (runs: readonly LoadResult[]) =>
  runs.reduce((sum, run) => sum + run.requestsPerSecond, 0) / runs.length;

/** The mean of what the runs measured; undefined when none could measure it. */
const meanMeasured = (runs: readonly LoadResult[], measured: (run: LoadResult) => number | undefined) => {
  const values = runs.flatMap((run) => measured(run) ?? []);
  return values.length === 0 ? undefined : values.reduce((sum, value) => sum + value, 0) / values.length;
};

const meanCpu = (runs: readonly LoadResult[], part: 'server' | 'postgres') =>
  meanMeasured(runs, (run) => run.cpuPerRequest[part]);

const meanCores = (runs: readonly LoadResult[]) =>
  meanMeasured(runs, (run) => run.cpu.machineCores)?.toFixed(2) ?? '?';

/** Twice the standard error of the mean of `values`: about a 95% interval's half-width. */
const twoStandardErrors = (values: readonly number[]) => {
  const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1);
  return 2 * Math.sqrt(variance / values.length);
};

const percent = (fraction: number) => `${(fraction * 100).toFixed(1)}%`;

/** Where the sealer runs beside ingest: in the app's process, as `calltrail serve` runs it, or alone. */
type SealerPlacement = 'in-process' | 'own-process';

/**
 * Ingest into a fresh archive through the real app, without and with the sealer running beside it
 * (caught up before each load, sealing at least every second, so it works all through the load;
 * paused, not stopped, in between), in ABBA blocks.
 */
const measureIngestBesideSealer = async (
  context: BenchContext,
  placement: SealerPlacement,
): Promise<IngestBesideSealer> => {
  const { options } = context;
  const url = await context.postgres.createDatabase(`sealing-ingest-${placement}`);
  const inProcess = placement === 'in-process';
  const app = await startMeasuredProcess(
    { ...appSpec(url, options), ...(inProcess ? { sealer: { maxSeconds: 1 } } : {}) },
    context.processes,
  );
  const traffic = new LiveTraffic(`sealing-ingest-${placement}`, 3);
  const runs = { without: [] as LoadResult[], with: [] as LoadResult[] };
  const blockCosts: number[] = [];
  const blocks = ingestBlocks(options.loadSeconds);
  const seconds = blockLoadSeconds(options.loadSeconds);
  let sealerSeconds = 0;
  let requestsBesideSealer = 0;
  let ownProcess: MeasuredProcess | undefined;
  try {
    if (!inProcess) {
      ownProcess = await startMeasuredProcess(
        { role: 'sealer', eventStoreUrl: url, logLevel: options.logLevel, maxSeconds: 1 },
        context.processes,
      );
      await ownProcess.request({ command: 'pause' });
    }
    const sealer = ownProcess ?? app;
    context.progress(`sealing: warming up ingest (${options.warmupSeconds} s)`);
    await load(app, traffic, 50, options.warmupSeconds, context.postgres.pid, undefined);
    context.progress(
      `sealing: ingest without and with the sealer (${placement}), ${blocks} blocks of 4 loads of ${seconds} s`,
    );
    for (let block = 1; block <= blocks; block += 1) {
      const blockRuns = { without: [] as LoadResult[], with: [] as LoadResult[] };
      for (const [index, side] of blockOrder.entries()) {
        if (side !== blockOrder[index - 1])
          await sealer.request({ command: side === 'with' ? 'resume' : 'pause' });
        // Caught up before the load, so it measures the sealer keeping pace, not catching up.
        if (side === 'with') await sealer.request({ command: 'catch-up' });
        const sealerCpu =
          side === 'with' && ownProcess !== undefined ? startCpuMeter(ownProcess.pid, undefined) : undefined;
        const run = await load(app, traffic, 50, seconds, context.postgres.pid, undefined);
        const sealerUse = sealerCpu?.stop();
        if (sealerUse !== undefined) {
          sealerSeconds += sealerUse.processSeconds ?? 0;
          requestsBesideSealer += run.ok + run.non2xx;
        }
        blockRuns[side].push(run);
        runs[side].push(run);
      }
      blockCosts.push(1 - meanRate(blockRuns.with) / meanRate(blockRuns.without));
    }
  } finally {
    await ownProcess?.stop();
    await app.stop();
  }
  return {
    ...runs,
    cost: 1 - meanRate(runs.with) / meanRate(runs.without),
    blockCosts,
    blockSeconds: seconds,
    sealerCpuPerRequest: inProcess ? undefined : cpuMicrosPer(sealerSeconds, requestsBesideSealer),
  };
};

/** The rows of one placement's comparison. */
const ingestCostRows = (ingest: IngestBesideSealer, where: string) => [
  {
    measure: `ingest cost of the sealer ${where} (c=50)`,
    value: `${percent(ingest.cost)} ± ${percent(twoStandardErrors(ingest.blockCosts))}`,
    ceiling: `${formatRate(meanRate(ingest.without), 'req')} without, ${formatRate(meanRate(ingest.with), 'req')} with`,
    target: {
      description: `<= ${ingestCostTarget * 100}%`,
      pass: ingest.cost <= ingestCostTarget,
    },
  },
  {
    measure: `  CPU per request with / without it (server + PostgreSQL)`,
    value: `${formatMicros(meanCpu(ingest.with, 'server'))} + ${formatMicros(meanCpu(ingest.with, 'postgres'))}`,
    ceiling: `${formatMicros(meanCpu(ingest.without, 'server'))} + ${formatMicros(meanCpu(ingest.without, 'postgres'))}`,
  },
  ...(ingest.sealerCpuPerRequest === undefined
    ? []
    : [
        {
          measure: "  the sealer process's own CPU per request",
          value: formatMicros(ingest.sealerCpuPerRequest),
        },
      ]),
  {
    measure: '  machine cores busy with / without it',
    value: meanCores(ingest.with),
    ceiling: meanCores(ingest.without),
  },
];

const cpuPerEvent = (cpu: CpuUse, events: number): string =>
  `${formatMicros(cpuMicrosPer(cpu.processSeconds, events))} + ${formatMicros(cpuMicrosPer(cpu.postgresSeconds, events))}`;

/** Bound on waiting for the sealer: far beyond what the target rate needs. */
const sealBoundMs = (events: number) => Math.max(120_000, (events / 1_000) * 1_000);

export const benchSealing = async (context: BenchContext): Promise<BenchmarkResult> => {
  const { url, summary } = await context.dataset();
  const eventStore = await openPostgresEventStore(url, { timeoutMs: 60_000 });
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  try {
    context.progress('sealing: reading the archive back (the ceiling)');
    let readStarted = performance.now();
    let events = 0;
    let head: GlobalPosition | undefined;
    for await (const event of eventStore.readAll({ streamPrefixes: archiveStreamPrefixes })) {
      events += 1;
      head = event.position;
    }
    const readSeconds = (performance.now() - readStarted) / 1000;
    if (head === undefined) throw new Error('the data set is empty');
    const headText = formatPosition(head);

    context.progress(`sealing: sealing ${events.toLocaleString('en-US')} events`);
    const key = generateSigningKey();
    const sealStarted = performance.now();
    const sealCpuMeter = startCpuMeter(process.pid, context.postgres.pid);
    const sealer = startSealer(
      { eventStore, pool, key, logger: createLogger({ level: 'silent' }), clock: () => new Date() },
      {
        streamPrefixes: archiveStreamPrefixes,
        maxEvents: 1_000,
        maxSeconds: 1,
        digestDirectory: undefined,
        standbyPollMs: 100,
        retryInitialMs: 50,
        retryMaxMs: 1_000,
      },
    );
    let sealSeconds: number;
    let sealCpu: CpuUse;
    try {
      const deadline = Date.now() + sealBoundMs(events);
      while (sealer.lastDigest?.lastPosition !== headText) {
        if (Date.now() > deadline) throw new Error('the sealer did not seal the data set in time');
        // A look at a property of the sealer in this process: cheap, so often, to end the clock
        // close to the moment the last digest lands.
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      sealSeconds = (performance.now() - sealStarted) / 1000;
      sealCpu = sealCpuMeter.stop();
    } finally {
      await sealer.stop();
    }

    const verify = (onProgress?: () => void) =>
      verifyArchive(eventStore, {
        digests: (async function* () {
          for await (const entry of readDigestEvents(eventStore))
            yield { where: `revision ${entry.revision}`, type: entry.type, data: entry.data };
        })(),
        keys: new Map([[key.keyId, key]]),
        scope: { kind: 'all' },
        streamPrefixes: archiveStreamPrefixes,
        unsealedGraceMs: Number.MAX_SAFE_INTEGER,
        now: new Date(),
        checkStreams: false,
        ...(onProgress === undefined ? {} : { onProgress }),
      });
    const passed = (report: Awaited<ReturnType<typeof verify>>) => {
      if (!report.ok || report.eventsChecked !== events) {
        throw new Error(
          `verify did not pass over the sealed data set: ${JSON.stringify(report).slice(0, 500)}`,
        );
      }
      return report;
    };
    context.progress('sealing: verifying everything');
    readStarted = performance.now();
    const verifyCpuMeter = startCpuMeter(process.pid, context.postgres.pid);
    const report = passed(await verify());
    const verifySeconds = (performance.now() - readStarted) / 1000;
    const verifyCpu = verifyCpuMeter.stop();
    // Again, untimed, looking at what the heap holds after a full collection as it goes.
    context.progress('sealing: verifying everything again, looking at its heap');
    const gc = collectGarbage();
    gc();
    const heapAtStart = process.memoryUsage().heapUsed;
    let heapHeld = 0;
    let progressReports = 0;
    passed(
      await verify(() => {
        progressReports += 1;
        if (progressReports % progressPerHeapLook !== 0) return;
        gc();
        heapHeld = Math.max(heapHeld, process.memoryUsage().heapUsed - heapAtStart);
      }),
    );
    const inProcess = await measureIngestBesideSealer(context, 'in-process');
    const ownProcess = await measureIngestBesideSealer(context, 'own-process');
    const readRate = events / readSeconds;
    const sealRate = events / sealSeconds;
    const verifyRate = events / verifySeconds;
    return {
      name: 'sealing',
      rows: [
        {
          measure: 'sealing rate (sealer from scratch)',
          value: formatRate(sealRate, 'events'),
          ceiling: formatRate(readRate, 'events read'),
          ratio: sealRate / readRate,
          target: {
            description: `>= ${sealingTarget.toLocaleString('en-US')} events/s`,
            pass: sealRate >= sealingTarget,
          },
        },
        {
          measure: 'verify rate (everything)',
          value: formatRate(verifyRate, 'events'),
          ceiling: formatRate(readRate, 'events read'),
          ratio: verifyRate / readRate,
          target: {
            description: `>= ${verifyTarget.toLocaleString('en-US')} events/s`,
            pass: verifyRate >= verifyTarget,
          },
        },
        ...ingestCostRows(inProcess, "in the app's process, as serve runs it"),
        ...ingestCostRows(ownProcess, 'in a process of its own'),
      ],
      details: {
        events,
        calls: summary.calls,
        digests: report.digests,
        readSeconds,
        sealSeconds,
        verifySeconds,
        sealCpu,
        verifyCpu,
        verifyHeapHeldBytes: heapHeld,
        ingestBesideSealer: { inProcess, ownProcess },
      },
      notes: [
        `CPU per event (this process + PostgreSQL, whose other clients count too): sealing ${cpuPerEvent(sealCpu, events)}, verify ${cpuPerEvent(verifyCpu, events)}`,
        `verify's heap after a full collection held at most ${(heapHeld / 2 ** 20).toFixed(1)} MiB more than before it (a look every ${progressPerHeapLook} digests, in a second, untimed run); it reads the digest stream 32 digests at a time, at most 200,000 events ahead of its comparison, so this does not grow with the archive`,
        `ingest cost: the real app at c=50, without and with the sealer (1,000 events or 1 s per digest) in its process or in one of its own, each in ${inProcess.blockCosts.length} blocks of four ${inProcess.blockSeconds}-second loads ordered without, with, with, without (so a drift weighs on both sides alike), the sealer paused in between; the figure is over all loads, ± twice the standard error of the blocks' own estimates (about a 95% interval); the PostgreSQL CPU per request includes the sealer's reads and digests`,
        ...(events < 1_000_000
          ? [`measured over ${events.toLocaleString('en-US')} events, not the 1,000,000 of the targets`]
          : []),
      ],
    };
  } finally {
    await eventStore.close();
    await pool.end();
  }
};
