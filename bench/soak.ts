/**
 * Soak: does a long-running calltrail plateau? The real app (PostgreSQL event store, signatures on,
 * production log level) takes a stream of distinct webhooks, as `ingest` sends them, and its RSS is
 * read after the first 100,000 and again after 1,000,000 (`--quick`: 5,000 and 25,000). Every cache
 * it keeps is bounded, so the second figure must match the first within 10%, below 250 MiB.
 */
import autocannon from 'autocannon';
import { appSpec, type BenchContext } from './context.ts';
import { LiveTraffic } from './ingest.ts';
import { startMeasuredProcess, type MeasuredProcess, type MemoryReport } from './processes.ts';
import type { BenchmarkResult } from './report.ts';

const connections = 50;
const mib = 1024 * 1024;
const formatMiB = (bytes: number): string => `${(bytes / mib).toFixed(0)} MiB`;

/** Sends exactly `amount` webhooks; returns how many were not answered 2xx. */
const send = async (server: MeasuredProcess, traffic: LiveTraffic, amount: number): Promise<number> => {
  const result = await autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections,
    amount,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: '/webhooks/flireo',
        setupRequest: (request) => ({ ...request, ...traffic.next() }),
      },
    ],
  });
  return result.non2xx + result.errors + result.timeouts;
};

export const benchSoak = async (context: BenchContext): Promise<BenchmarkResult> => {
  const { options } = context;
  const [early, late] = options.quick ? [5_000, 25_000] : [100_000, 1_000_000];
  const url = await context.postgres.createDatabase('soak');
  const app = await startMeasuredProcess(appSpec(url, options), context.processes);
  try {
    const traffic = new LiveTraffic('soak', 3);
    const started = await app.request<MemoryReport>({ command: 'memory' });
    context.progress(`soak: ${early.toLocaleString('en-US')} webhooks`);
    let failed = await send(app, traffic, early);
    const afterEarly = await app.request<MemoryReport>({ command: 'memory' });
    context.progress(`soak: ${(late - early).toLocaleString('en-US')} more webhooks`);
    failed += await send(app, traffic, late - early);
    const afterLate = await app.request<MemoryReport>({ command: 'memory' });
    const growth = afterLate.rss / afterEarly.rss;
    return {
      name: 'soak',
      rows: [
        {
          measure: `RSS after ${late.toLocaleString('en-US')} webhooks`,
          value: formatMiB(afterLate.rss),
          ceiling: `after ${early.toLocaleString('en-US')}: ${formatMiB(afterEarly.rss)}`,
          ratio: growth,
          target: {
            description: 'within 10%, < 250 MiB',
            pass: growth <= 1.1 && afterLate.rss < 250 * mib,
          },
        },
      ],
      details: { early, late, connections, started, afterEarly, afterLate, failed },
      notes: [
        `c=${connections}, RSS at start ${formatMiB(started.rss)}; the ratio is RSS after ${late.toLocaleString('en-US')} over RSS after ${early.toLocaleString('en-US')}`,
        ...(failed > 0 ? [`${failed} webhooks failed or were refused (see JSON)`] : []),
      ],
    };
  } finally {
    await app.stop();
  }
};
