/**
 * Forwarding: throughput over a backlog (the forwarder, in a process of its own, delivering every
 * archived event to a local receiver that answers at once) beside the projector's catch-up over
 * the same events in the same run; then the latency from the webhook's 202 to the receiver at a
 * steady 200 events/s, with the app and the forwarder each in a process of its own.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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

/** A receiver answering 200 at once, noting when each event id first arrived. */
const startReceiver = async () => {
  const arrivals = new Map<string, number>();
  let requests = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      requests += 1;
      const id = String(request.headers['x-calltrail-event-id']);
      if (!arrivals.has(id)) arrivals.set(id, performance.now());
      response.writeHead(200).end();
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
    arrivals,
    requests: () => requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
};

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
  const receiver = await startReceiver();
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
        destinationUrl: receiver.url,
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
        destinationUrl: receiver.url,
        fromStart: false,
      },
      processes,
    );
    const accepted = new Map<string, number>();
    let refused = 0;
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
              const at = performance.now();
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
      while (performance.now() < deadline && [...accepted.keys()].some((id) => !receiver.arrivals.has(id))) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await forwarder.stop();
      await app.stop();
    }
    const latencies = [...accepted]
      .flatMap(([id, at]) => {
        const arrived = receiver.arrivals.get(id);
        return arrived === undefined ? [] : [Math.max(0, arrived - at)];
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
        receiverRequests: receiver.requests(),
      },
      notes: [
        'the forwarder, the projector and the app each run in a process of their own; the receiver and the load in this process',
        `events accepted but not delivered within 60 s: ${missing} (must be 0); refused: ${refused}`,
      ],
    };
  } finally {
    await receiver.close();
  }
};
