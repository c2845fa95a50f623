/**
 * The outage journal: ingest while the event store is away (every event journaled), beside ingest
 * into the healthy store, by the same app process in the same run (loaded by autocannon from this
 * process as the ingest benchmark does); then the drain: how fast the journaled events reach the
 * store once it is back. The app reaches PostgreSQL through a TCP proxy this process cuts, as a
 * PostgreSQL restart or a network partition would.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTcpProxy } from '../test/support/tcp-proxy.ts';
import { appSpec, type BenchContext } from './context.ts';
import { LiveTraffic, load } from './ingest.ts';
import { cpuMicrosPer, startCpuMeter } from './measure.ts';
import { startMeasuredProcess } from './processes.ts';
import { formatMicros, formatMs, formatRate, type BenchmarkResult } from './report.ts';

interface ReadyJournal {
  readonly journal?: { readonly depth: number; readonly journaling: boolean };
}

const drainTimeoutMs = 600_000;

export const benchJournal = async (context: BenchContext): Promise<BenchmarkResult> => {
  const { options } = context;
  const url = await context.postgres.createDatabase('journal');
  const direct = new URL(url);
  const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port) });
  const viaProxy = new URL(url);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const journalDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-bench-journal-'));
  const app = await startMeasuredProcess(
    { ...appSpec(viaProxy.toString(), options), journalDir },
    context.processes,
  );
  const readyJournal = async () =>
    ((await (await fetch(`http://127.0.0.1:${app.port}/readyz`)).json()) as ReadyJournal).journal;
  try {
    const traffic = new LiveTraffic('journal', 3);
    context.progress(`journal: warming up (${options.warmupSeconds} s)`);
    await load(app, traffic, 50, options.warmupSeconds, context.postgres.pid, undefined);
    context.progress(`journal: healthy store, 50 connections, ${options.loadSeconds} s`);
    const healthy = await load(app, traffic, 50, options.loadSeconds, context.postgres.pid, undefined);

    await proxy.goDown();
    context.progress(`journal: store away (journaling), 50 connections, ${options.loadSeconds} s`);
    const journaling = await load(app, traffic, 50, options.loadSeconds, context.postgres.pid, undefined);
    const journaled = (await readyJournal())?.depth ?? 0;

    context.progress(`journal: store back, draining ${journaled.toLocaleString('en-US')} events`);
    // The app's CPU and PostgreSQL's while draining: a rate moves with whatever else the machine
    // runs, the CPU an event costs hardly does. Counted from the store's return, so it includes the
    // looks below during the drainer's back-off: a drain can be quicker than one look, so no later
    // start is sure to come before it.
    const cpu = startCpuMeter(app.pid, context.postgres.pid);
    await proxy.comeBack();
    // Timed from the last look that found nothing drained yet (the drainer first waits out its
    // back-off, at most 5 s), so a drain quicker than one look is still timed, never as instant.
    const deadline = Date.now() + drainTimeoutMs;
    let firstProgressAt: number | undefined;
    let lastUndrainedAt = performance.now();
    const depthAtFirstProgress = journaled;
    let drainedAt: number | undefined;
    while (Date.now() < deadline) {
      const lookedAt = performance.now();
      const journal = await readyJournal();
      const depth = journal?.depth ?? 0;
      const now = performance.now();
      if (firstProgressAt === undefined) {
        if (depth < journaled) firstProgressAt = lastUndrainedAt;
        else lastUndrainedAt = lookedAt;
      }
      if (depth === 0) {
        drainedAt = now;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const drainCpu = cpu.stop();
    if (drainedAt === undefined || firstProgressAt === undefined) {
      throw new Error(`the journal did not drain within ${drainTimeoutMs} ms`);
    }
    const drainSeconds = (drainedAt - firstProgressAt) / 1000;
    const drainRate = drainSeconds > 0 ? depthAtFirstProgress / drainSeconds : Number.POSITIVE_INFINITY;
    const ratio = journaling.requestsPerSecond / healthy.requestsPerSecond;
    return {
      name: 'journal',
      rows: [
        {
          measure: 'ingest c=50 while journaling',
          value: formatRate(journaling.requestsPerSecond, 'req'),
          ceiling: `healthy store: ${formatRate(healthy.requestsPerSecond, 'req')}`,
          ratio,
          target: { description: '>= 100% of healthy', pass: ratio >= 1 },
        },
        {
          measure: 'latency p50 / p99 while journaling',
          value: `${formatMs(journaling.latency.p50Ms)} / ${formatMs(journaling.latency.p99Ms)}`,
          ceiling: `healthy: ${formatMs(healthy.latency.p50Ms)} / ${formatMs(healthy.latency.p99Ms)}`,
        },
        {
          measure: `drain of ${journaled.toLocaleString('en-US')} journaled events`,
          value: formatRate(drainRate, 'event'),
          target: { description: '>= 5,000 events/s', pass: drainRate >= 5000 },
        },
        {
          measure: 'drain CPU per event (server + PostgreSQL)',
          value: `${formatMicros(cpuMicrosPer(drainCpu.processSeconds, journaled))} + ${formatMicros(cpuMicrosPer(drainCpu.postgresSeconds, journaled))}`,
          ceiling: '/readyz looks every 20 ms included',
        },
      ],
      details: {
        healthy,
        journaling,
        journaled,
        drain: {
          events: depthAtFirstProgress,
          seconds: drainSeconds,
          eventsPerSecond: drainRate,
          cpu: drainCpu,
        },
      },
      notes: [
        'one app process with its outage journal (LMDB, synced commits) in a temporary directory; the store is taken away by cutting the TCP proxy between the app and PostgreSQL',
        `non-2xx answers: healthy ${healthy.non2xx}, journaling ${journaling.non2xx} (must be 0)`,
      ],
    };
  } finally {
    await app.stop();
    await proxy.close();
    await rm(journalDir, { recursive: true, force: true });
  }
};
