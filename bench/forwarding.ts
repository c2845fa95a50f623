/**
 * Forwarding: throughput over a backlog (the forwarder, in a process of its own, delivering every
 * archived event to a local receiver that answers at once) beside the projector's catch-up over
 * the same events in the same run; then the latency from the webhook's 202 to the receiver at a
 * steady 200 events/s, with the app and the forwarder each in a process of its own.
 */
import { migrateReadModels, openDatabase } from '../src/database/database.ts';
import type { BenchContext } from './context.ts';
import { appSpec } from './context.ts';
import { LiveTraffic } from './ingest.ts';
import { startCpuMeter } from './measure.ts';
import { startMeasuredProcess } from './processes.ts';
import { formatMs, formatRate, type BenchmarkResult } from './report.ts';
import { seedArchive } from './seed.ts';

const steadyRate = 200;

const percentile = (sorted: readonly number[], p: number): number =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

export const benchForwarding = async (context: BenchContext): Promise<BenchmarkResult> => {
  const { options, processes } = context;
  const progress = (message: string) => context.progress(message);
  const events = Math.min(options.events, options.quick ? 2_000 : 50_000);
  const url = await context.postgres.createDatabase('forwarding');
  const database = openDatabase(url, { max: 1 });
  try {
    await migrateReadModels(database);
  } finally {
    await database.close();
  }
  progress(`forwarding: seeding ${events.toLocaleString('en-US')} events`);
  const seeded = await seedArchive(url, events, () => {});
  const receiver = await startMeasuredProcess({ role: 'event-receiver' }, processes);
  const receiverUrl = `http://127.0.0.1:${receiver.port}/events`;
  const arrivals = async () => new Map(await receiver.request<[string, number][]>({ command: 'arrivals' }));
  try {
    progress('forwarding: the projector catching up on the same events');
    const projector = await startMeasuredProcess(
      { role: 'projector', eventStoreUrl: url, databaseUrl: url, logLevel: options.logLevel },
      processes,
    );
    let projection: { seconds: number };
    try {
      projection = await projector.request<{ seconds: number }>({ command: 'catch-up' });
    } finally {
      await projector.stop();
    }
    const projectionRate = seeded.events / projection.seconds;

    progress(`forwarding: delivering the backlog of ${seeded.events.toLocaleString('en-US')} events`);
    const backlogForwarder = await startMeasuredProcess(
      {
        role: 'forwarder',
        eventStoreUrl: url,
        databaseUrl: url,
        logLevel: options.logLevel,
        destinationUrl: receiverUrl,
        fromStart: true,
      },
      processes,
    );
    const cpu = startCpuMeter(backlogForwarder.pid, context.postgres.pid);
    let backlog: { seconds: number; delivered: number };
    try {
      backlog = await backlogForwarder.request<{ seconds: number; delivered: number }>({
        command: 'catch-up',
      });
    } finally {
      await backlogForwarder.stop();
    }
    const cpuUse = cpu.stop();
    const forwardingRate = backlog.delivered / backlog.seconds;

    progress(`forwarding: 202 to receiver at ${steadyRate} events/s for ${options.loadSeconds} s`);
    const app = await startMeasuredProcess(appSpec(url, options), processes);
    const forwarder = await startMeasuredProcess(
      {
        role: 'forwarder',
        eventStoreUrl: url,
        databaseUrl: url,
        logLevel: options.logLevel,
        destinationUrl: receiverUrl,
        fromStart: false,
      },
      processes,
    );
    /** When each accepted event's 202 came back, in milliseconds since the epoch. */
    const accepted = new Map<string, number>();
    const epochNow = () => performance.timeOrigin + performance.now();
    let refused = 0;
    let arrived = new Map<string, number>();
    try {
      const traffic = new LiveTraffic('forwarding', 7);
      const total = steadyRate * options.loadSeconds;
      const startedAt = performance.now();
      const sends: Promise<void>[] = [];
      for (let sent = 0; sent < total; sent += 1) {
        const due = startedAt + (sent * 1000) / steadyRate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const { body, headers } = traffic.next();
        sends.push(
          fetch(`http://127.0.0.1:${app.port}/webhooks/flireo`, { method: 'POST', body, headers }).then(
            async (response) => {
              const at = epochNow();
              const answer = (await response.json()) as { eventId?: string; duplicate?: boolean };
              if (response.status === 202 && answer.eventId !== undefined && answer.duplicate !== true) {
                accepted.set(answer.eventId, at);
              } else {
                refused += 1;
              }
            },
          ),
        );
      }
      await Promise.all(sends);
      const deadline = performance.now() + 60_000;
      arrived = await arrivals();
      while (performance.now() < deadline && [...accepted.keys()].some((id) => !arrived.has(id))) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        arrived = await arrivals();
      }
    } finally {
      await forwarder.stop();
      await app.stop();
    }
    const latencies = [...accepted]
      .flatMap(([id, at]) => {
        const arrivedAt = arrived.get(id);
        return arrivedAt === undefined ? [] : [Math.max(0, arrivedAt - at)];
      })
      .sort((a, b) => a - b);
    const missing = accepted.size - latencies.length;
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    const ratio = forwardingRate / projectionRate;
    return {
      name: 'forwarding',
      rows: [
        {
          measure: `backlog of ${seeded.events.toLocaleString('en-US')} events to a local receiver`,
          value: formatRate(forwardingRate, 'event'),
          ceiling: `projector catch-up: ${formatRate(projectionRate, 'event')}`,
          ratio,
        },
        {
          measure: `202 to receiver at ${steadyRate} events/s, p50 / p99`,
          value: `${formatMs(p50)} / ${formatMs(p99)}`,
          target: {
            description: 'p50 <= 50 ms, p99 <= 200 ms',
            pass: p50 <= 50 && p99 <= 200 && missing === 0,
          },
        },
      ],
      details: {
        events: seeded.events,
        projection,
        backlog,
        backlogCpu: cpuUse,
        steady: { rate: steadyRate, accepted: accepted.size, refused, missing, p50, p99 },
        receiverRequests: await receiver.request<number>({ command: 'requests' }),
      },
      notes: [
        'the forwarder, the projector, the app and the receiver each run in a process of their own, the load in this process; latency from the 202 arriving here to the event arriving at the receiver, both on the wall clock',
        `events accepted but not delivered within 60 s: ${missing} (must be 0); refused: ${refused}`,
      ],
    };
  } finally {
    await receiver.stop();
  }
};
