/**
 * Rebuild: the wall time of `calltrail rebuild` (every projection from one replay of the streams,
 * each into shadow tables swapped in at the end) over the archive data set, run as an operator runs it: the
 * command line, with the store URLs in its environment. Set beside the projector's catch-up over
 * the same events in the same run, which does the same folding into live tables.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { compiledCli } from './compiled.ts';
import type { BenchContext } from './context.ts';
import type { ProcessOptions } from './processes.ts';
import { cpuMicrosPer, startCpuMeter, type CpuUse } from './measure.ts';
import { formatMicros, formatRate, type BenchmarkResult } from './report.ts';

const tables = ['calls', 'terminations', 'call_timeline'] as const;

const countRows = async (url: string): Promise<Record<string, number>> => {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const counts: Record<string, number> = {};
    for (const table of tables) {
      const { rows } = await client.query<{ count: string }>(`SELECT count(*)::text AS count FROM ${table}`);
      counts[table] = Number(rows[0]?.count ?? 0);
    }
    return counts;
  } finally {
    await client.end();
  }
};

interface RebuildRun {
  readonly seconds: number;
  readonly exitCode: number | null;
  /** `<projection>: rebuilt from N events in S s`, as the command reports each one. */
  readonly projections: Record<string, { events: number; seconds: number }>;
  readonly cpu: CpuUse;
  readonly stderrTail: string;
}

const runRebuild = (
  url: string,
  logLevel: string,
  processes: ProcessOptions,
  postmasterPid: number | undefined,
): Promise<RebuildRun> =>
  new Promise((resolve, reject) => {
    // Only the variables this run means: calltrail refuses unknown CALLTRAIL_* names.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_')),
    );
    const started = performance.now();
    const child = spawn(
      process.execPath,
      [
        ...processes.nodeFlags,
        ...(processes.profileDir === undefined
          ? []
          : ['--cpu-prof', `--cpu-prof-dir=${path.join(processes.profileDir, 'rebuild')}`]),
        compiledCli,
        'rebuild',
      ],
      {
        env: {
          ...env,
          CALLTRAIL_EVENTSTORE_URL: url,
          CALLTRAIL_DATABASE_URL: url,
          CALLTRAIL_LOG_LEVEL: logLevel,
        },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const cpu = startCpuMeter(child.pid, postmasterPid);
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-20_000);
    });
    child.on('error', (error) => {
      cpu.stop();
      reject(error);
    });
    child.on('close', (exitCode) => {
      const cpuUse = cpu.stop();
      const projections: RebuildRun['projections'] = {};
      for (const match of stderr.matchAll(/^([\w-]+): rebuilt from (\d+) events[^\n]* in ([\d.]+) s$/gm)) {
        projections[match[1]!] = { events: Number(match[2]), seconds: Number(match[3]) };
      }
      resolve({
        seconds: (performance.now() - started) / 1000,
        exitCode,
        projections,
        cpu: cpuUse,
        stderrTail: stderr.slice(-2000),
      });
    });
  });

export const benchRebuild = async (context: BenchContext): Promise<BenchmarkResult> => {
  const dataset = await context.projectedDataset();
  const before = await countRows(dataset.url);
  context.progress(
    `rebuild: calltrail rebuild over ${dataset.summary.events.toLocaleString('en-US')} events`,
  );
  const run = await runRebuild(
    dataset.url,
    context.options.logLevel,
    context.processes,
    context.postgres.pid,
  );
  if (run.exitCode !== 0) {
    throw new Error(`calltrail rebuild exited with ${run.exitCode}: ${run.stderrTail}`);
  }
  const after = await countRows(dataset.url);
  const identical = tables.every((table) => before[table] === after[table]);
  const catchUp = dataset.projection.seconds;
  return {
    name: 'rebuild',
    rows: [
      {
        measure: 'calltrail rebuild (all projections)',
        value: `${run.seconds.toFixed(1)} s`,
        ceiling: `${catchUp.toFixed(1)} s catch-up`,
        ratio: catchUp / run.seconds,
      },
      {
        measure: '  rate',
        value: formatRate(dataset.summary.events / run.seconds, 'events'),
        ceiling: formatRate(dataset.summary.events / catchUp, 'events'),
      },
      {
        measure: '  CPU per event (Node + PostgreSQL)',
        value: `${formatMicros(cpuMicrosPer(run.cpu.processSeconds, dataset.summary.events))} + ${formatMicros(cpuMicrosPer(run.cpu.postgresSeconds, dataset.summary.events))}`,
        ceiling: `${formatMicros(cpuMicrosPer(dataset.projection.cpu.processSeconds, dataset.summary.events))} + ${formatMicros(cpuMicrosPer(dataset.projection.cpu.postgresSeconds, dataset.summary.events))}`,
      },
      ...Object.entries(run.projections).map(([name, projection]) => ({
        measure: `  ${name}`,
        value: `${projection.seconds.toFixed(1)} s`,
      })),
    ],
    details: { ...run, rowsBefore: before, rowsAfter: after, catchUpSeconds: catchUp },
    notes: [
      'wall time from spawning the command to its exit (start-up, migrations check, every projection replayed, indexed and swapped in); ceiling: the projector catching up the same events into live tables',
      ...(identical
        ? []
        : [`read-model row counts differ after the rebuild: ${JSON.stringify({ before, after })}`]),
    ],
  };
};
