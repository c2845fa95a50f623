/**
 * `npm run bench`: calltrail's performance against this machine's ceilings, each ceiling measured
 * in the same run (absolute numbers drift between runs and machines; the ratios do not). Starts its
 * own embedded PostgreSQL in a temporary directory, runs the selected benchmarks, prints a table and
 * writes `bench/results/latest.json`. Progress goes to stderr.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { compileMeasuredCode } from './compiled.ts';
import { benchConsole } from './console.ts';
import type { BenchContext, BenchOptions, Dataset } from './context.ts';
import { catchUpProjections, seedDataset } from './dataset.ts';
import { benchExport } from './export.ts';
import { benchForwarding } from './forwarding.ts';
import { benchHealth } from './health.ts';
import { benchIngest } from './ingest.ts';
import { benchJournal } from './journal.ts';
import { describeMachine } from './measure.ts';
import { startBenchPostgres } from './postgres.ts';
import { benchProjection } from './projection.ts';
import { benchQueries } from './queries.ts';
import { benchRebuild } from './rebuild.ts';
import { benchRelay } from './relay.ts';
import { benchSealing } from './sealing.ts';
import { benchSoak } from './soak.ts';
import { renderTable, type BenchmarkResult } from './report.ts';

const benchmarks = {
  ingest: benchIngest,
  journal: benchJournal,
  projection: benchProjection,
  export: benchExport,
  queries: benchQueries,
  health: benchHealth,
  rebuild: benchRebuild,
  soak: benchSoak,
  console: benchConsole,
  forwarding: benchForwarding,
  relay: benchRelay,
  // Last: it appends the digest stream to the shared data set.
  sealing: benchSealing,
} satisfies Record<string, (context: BenchContext) => Promise<BenchmarkResult>>;
type BenchmarkName = keyof typeof benchmarks;
const benchmarkNames = Object.keys(benchmarks) as BenchmarkName[];

const positiveInteger = (text: string): number => {
  const value = Number(text.replace(/[_,]/g, ''));
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError('must be a positive integer');
  return value;
};

const benchmarkList = (text: string): BenchmarkName[] => {
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const unknown = names.filter((name) => !(benchmarkNames as string[]).includes(name));
  if (names.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(
      `unknown benchmark(s) ${unknown.join(', ')}; choose from ${benchmarkNames.join(', ')}`,
    );
  }
  return names as BenchmarkName[];
};

interface CommandLine {
  readonly events?: number;
  readonly quick?: boolean;
  readonly only?: BenchmarkName[];
  readonly logLevel: string;
  readonly loadSeconds?: number;
  readonly profile?: string;
  readonly nodeFlags?: string;
  readonly out?: string;
}

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));

const program = new Command()
  .name('npm run bench --')
  .description("calltrail's performance against this machine's ceilings, measured in the same run")
  .option(
    '--events <n>',
    'events in the archive data set (default 1,000,000; --quick: 20,000)',
    positiveInteger,
  )
  .option('--quick', 'a run in under a minute, for development')
  .option('--only <names>', `comma-separated benchmarks to run: ${benchmarkNames.join(', ')}`, benchmarkList)
  .addOption(
    new Option('--log-level <level>', "calltrail's log level in the measured processes")
      .choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
  )
  .option('--load-seconds <s>', 'seconds per load-test measurement (default 10; --quick: 3)', positiveInteger)
  .option('--profile <dir>', 'write a CPU profile (--cpu-prof) of every measured process into this directory')
  .option(
    '--node-flags <flags>',
    'space-separated Node/V8 options for the measured processes, e.g. "--max-semi-space-size=4"',
  )
  .option('--out <file>', 'where to write the JSON results (default: bench/results/latest.json)')
  .showHelpAfterError();

const main = async (): Promise<number> => {
  program.parse();
  const line = program.opts<CommandLine>();
  const out = line.out ?? path.join(resultsDir, 'latest.json');
  const quick = line.quick === true;
  const options: BenchOptions = {
    events: line.events ?? (quick ? 20_000 : 1_000_000),
    quick,
    loadSeconds: line.loadSeconds ?? (quick ? 3 : 10),
    warmupSeconds: quick ? 2 : 5,
    logLevel: line.logLevel,
  };
  const selected = line.only ?? benchmarkNames;
  const started = performance.now();
  const progress = (message: string) =>
    process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);

  const profileDir = line.profile === undefined ? undefined : path.resolve(line.profile);
  const nodeFlags = (line.nodeFlags ?? '').split(' ').filter((flag) => flag !== '');
  if (profileDir !== undefined) await mkdir(profileDir, { recursive: true });
  const machine = describeMachine();
  progress(
    `machine: ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB, node ${machine.node}`,
  );
  progress('compiling calltrail as its production build runs');
  await compileMeasuredCode();
  progress('starting the embedded PostgreSQL');
  const postgres = await startBenchPostgres();
  // Ctrl-C must not leave a server and its data directory behind.
  const interrupted = () => {
    progress('interrupted; stopping PostgreSQL');
    void postgres.stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  const results: BenchmarkResult[] = [];
  const failures: { benchmark: string; error: string }[] = [];
  let postgresSettings: Record<string, string> = {};
  try {
    postgresSettings = await postgres.settings();
    let dataset: Promise<Dataset> | undefined;
    const processes = { profileDir, nodeFlags };
    const context: BenchContext = {
      options,
      postgres,
      processes,
      progress,
      dataset: () => (dataset ??= seedDataset(postgres, options.events, progress)),
      projectedDataset: async () => {
        const seeded = await context.dataset();
        seeded.projection ??= await catchUpProjections(
          postgres,
          seeded,
          processes,
          options.logLevel,
          progress,
        );
        return seeded as Dataset & { projection: NonNullable<Dataset['projection']> };
      },
    };
    for (const name of benchmarkNames.filter((benchmark) => selected.includes(benchmark))) {
      progress(`--- ${name}`);
      try {
        results.push(await benchmarks[name](context));
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        progress(`${name} failed: ${message}`);
        failures.push({ benchmark: name, error: message });
      }
    }
    const seeded = dataset === undefined ? undefined : await dataset.catch(() => undefined);
    const report = {
      startedAt: new Date(Date.now() - (performance.now() - started)).toISOString(),
      seconds: Math.round((performance.now() - started) / 100) / 10,
      machine,
      loadAverageAtEnd: describeMachine().loadAverage,
      postgres: postgresSettings,
      options: { ...options, only: selected, nodeFlags },
      dataset: seeded?.summary,
      results,
      failures,
    };
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(
      `\ncalltrail benchmarks: ${options.events.toLocaleString('en-US')} events${quick ? ' (quick)' : ''}; ` +
        `${machine.cores} cores ${machine.cpuModel}, ${machine.memoryGiB} GiB, node ${machine.node}, ` +
        `PostgreSQL ${postgresSettings['server_version'] ?? '?'}` +
        (seeded === undefined
          ? ''
          : `; archive: ${seeded.summary.calls.toLocaleString('en-US')} calls, ` +
            `${seeded.summary.endedCalls.toLocaleString('en-US')} ended`) +
        `\n\n${renderTable(results)}\n\n` +
        failures.map((failure) => `FAILED: ${failure.benchmark} (see the JSON for the error)\n`).join('') +
        `results: ${path.relative(process.cwd(), out)}\n`,
    );
    return failures.length > 0 ? 1 : 0;
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    progress('stopping PostgreSQL');
    await postgres.stop();
  }
};

process.exitCode = await main();
