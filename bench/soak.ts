/**
 * Soak: does a long-running calltrail plateau? The real app (PostgreSQL event store, signatures on,
 * production log level) takes a stream of distinct webhooks, as `ingest` sends them, and its RSS is
 * read after the first 100,000, after 200,000 and after 1,000,000 (`--quick`: 5,000, 10,000 and
 * 25,000), then its live heap after a full collection. Every cache it keeps is bounded, so the last
 * RSS must match the first within 10%, below 250 MiB; the live heap must match within 10%.
 */
import autocannon from 'autocannon';
import { appSpec, type BenchContext } from './context.ts';
import { LiveTraffic } from './ingest.ts';
import {
  startMeasuredProcess,
  type LiveHeapReport,
  type MeasuredProcess,
  type MemoryReport,
} from './processes.ts';
import type { BenchmarkResult, ResultRow } from './report.ts';

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

/** RSS as the process runs, then what a full collection leaves: the live heap. */
interface Reading {
  readonly after: number;
  readonly memory: MemoryReport;
  readonly live: LiveHeapReport;
}

const plateau = (
  measure: string,
  from: Reading,
  to: Reading,
  value: (reading: Reading) => number,
  limit?: number,
): ResultRow => {
  const growth = value(to) / value(from);
  return {
    measure: `${measure} after ${to.after.toLocaleString('en-US')} webhooks`,
    value: formatMiB(value(to)),
    ceiling: `after ${from.after.toLocaleString('en-US')}: ${formatMiB(value(from))}`,
    ratio: growth,
    target: {
      description: `within 10%${limit === undefined ? '' : `, < ${formatMiB(limit)}`}`,
      pass: growth <= 1.1 && (limit === undefined || value(to) < limit),
    },
  };
};

export const benchSoak = async (context: BenchContext): Promise<BenchmarkResult> => {
  const { options } = context;
  // The second reading is after warm-up: V8 sizes its heap by the live data and keeps growing it
  // for a while after that data stops growing.
  const [early, warm, late] = options.quick ? [5_000, 10_000, 25_000] : [100_000, 200_000, 1_000_000];
  const url = await context.postgres.createDatabase('soak');
  const app = await startMeasuredProcess(appSpec(url, options), context.processes);
  try {
    const traffic = new LiveTraffic('soak', 3);
    const started = await app.request<MemoryReport>({ command: 'memory' });
    let sent = 0;
    let failed = 0;
    const sendUpTo = async (total: number): Promise<Reading> => {
      context.progress(
        `soak: ${(total - sent).toLocaleString('en-US')} webhooks, up to ${total.toLocaleString('en-US')}`,
      );
      failed += await send(app, traffic, total - sent);
      sent = total;
      // RSS first: the collection that measures the live heap would lower it.
      const memory = await app.request<MemoryReport>({ command: 'memory' });
      const live = await app.request<LiveHeapReport>({ command: 'live-heap' });
      // Each reading as it comes: the full soak runs for a long time.
      context.progress(
        `soak: after ${total.toLocaleString('en-US')} webhooks: RSS ${formatMiB(memory.rss)}, ` +
          `live heap ${formatMiB(live.heapUsed)} (RSS ${formatMiB(live.rss)} after a full collection), ${failed} failed`,
      );
      return { after: total, memory, live };
    };
    const afterEarly = await sendUpTo(early);
    const afterWarm = await sendUpTo(warm);
    const afterLate = await sendUpTo(late);
    const rss = (reading: Reading) => reading.memory.rss;
    const liveHeap = (reading: Reading) => reading.live.heapUsed;
    return {
      name: 'soak',
      rows: [
        plateau('RSS', afterEarly, afterLate, rss, 250 * mib),
        plateau('RSS', afterWarm, afterLate, rss, 250 * mib),
        plateau('live heap (after a full GC)', afterEarly, afterLate, liveHeap),
      ],
      details: { early, warm, late, connections, started, afterEarly, afterWarm, afterLate, failed },
      notes: [
        `c=${connections}, RSS at start ${formatMiB(started.rss)}; each ratio is the figure after ${late.toLocaleString('en-US')} over the one after fewer webhooks`,
        `RSS includes garbage V8 has not collected yet: its heap may grow to several times the live heap before a full collection; the live heap row shows what the process keeps`,
        ...(failed > 0 ? [`${failed} webhooks failed or were refused (see JSON)`] : []),
      ],
    };
  } finally {
    await app.stop();
  }
};
