/**
 * `calltrail forward` killed with SIGKILL again and again while it delivers a backlog of thousands
 * of events to a real local receiver: every event arrives, a call's events arrive in archive order
 * (an event is never sent again once the next one of its call went out), and the only duplicates are
 * the deliveries attempted but not yet recorded when the process died (at most
 * `unrecordedPerAttempt` times the concurrency, per kill).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore, ProposedEvent } from '../../src/event-store/event-store.ts';
import { unrecordedPerAttempt } from '../../src/forwarding/forwarder.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { endOfCallReport, statusUpdate, type CallEventSpec } from '../support/call-events.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { appendCallEvents } from '../support/projector-harness.ts';
import { waitFor } from '../support/wait.ts';
import { startReceiver, type Receiver } from './receiver.ts';

const binary = fileURLToPath(new URL('../../bin/calltrail.js', import.meta.url));
const concurrency = 8;
const calls = 1_000;
const kills = 4;

let database: TestDatabase;
let eventStore: EventStore;
let receiver: Receiver;
let pool: pg.Pool;
const children = new Set<ChildProcess>();

const startForwarder = (): ChildProcess => {
  const child = spawn(process.execPath, [binary, 'forward'], {
    env: {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      CALLTRAIL_EVENTSTORE_URL: database.url,
      CALLTRAIL_DATABASE_URL: database.url,
      CALLTRAIL_LOG_LEVEL: 'warn',
      CALLTRAIL_FORWARD_SECRET: 'forwarding-secret-0123456789',
      CALLTRAIL_FORWARD_DESTINATIONS: JSON.stringify([{ name: 'customer', url: receiver.url }]),
      CALLTRAIL_FORWARD_CONCURRENCY: String(concurrency),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4_000)));
  child.on('exit', (code, signal) => {
    if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && code !== 0) {
      process.stderr.write(`calltrail forward exited with ${code}: ${stderr}\n`);
    }
  });
  return child;
};

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));

const kill = async (child: ChildProcess): Promise<void> => {
  child.kill('SIGKILL');
  await exited(child);
};

const received = () => new Set(receiver.requests.map((request) => request.eventId)).size;

/** Each call's events appended in order; calls side by side, so thousands take seconds. */
const appendCalls = async (specs: readonly CallEventSpec[]): Promise<ProposedEvent[]> => {
  const byCall = new Map<string, CallEventSpec[]>();
  for (const spec of specs) byCall.set(spec.callId, [...(byCall.get(spec.callId) ?? []), spec]);
  const queue = [...byCall.values()];
  const proposed: ProposedEvent[] = [];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        proposed.push(...(await appendCallEvents(eventStore, next)));
      }
    }),
  );
  return proposed;
};

beforeAll(async () => {
  database = await createTestDatabase('forwarding_kill');
  eventStore = await openPostgresEventStore(database.url, { timeoutMs: 10_000 });
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  receiver = await startReceiver();
  // Forwarding starts after what is archived when it first runs: one event before it.
  await appendCallEvents(eventStore, [
    statusUpdate('kill-before', 'in-progress', '2026-03-01T09:59:00.000Z'),
  ]);
});

afterAll(async () => {
  await Promise.all([...children].map((child) => kill(child)));
  await receiver?.close();
  await pool?.end();
  await eventStore?.close();
  await database?.drop();
});

describe('calltrail forward killed mid-backlog', { timeout: 600_000 }, () => {
  it('delivers every event, in order per call, duplicating only attempts in flight', async () => {
    // The first start takes its starting point (the archive's head); the backlog is archived after.
    let forwarder = startForwarder();
    await waitFor(
      'the forwarder to take its starting point',
      async () => {
        const found = await pool.query('SELECT 1 FROM forwarding_checkpoints').catch(() => ({ rowCount: 0 }));
        return (found.rowCount ?? 0) > 0;
      },
      120_000,
    );
    await kill(forwarder);
    const specs = Array.from({ length: calls }, (_, index) => {
      const callId = `kill-${index}`;
      const at = (seconds: number) =>
        new Date(Date.parse('2026-03-01T10:00:00Z') + index * 1000 + seconds * 1000).toISOString();
      return [
        statusUpdate(callId, 'in-progress', at(0)),
        statusUpdate(callId, 'ended', at(60)),
        endOfCallReport(callId, at(61)),
      ];
    }).flat();
    const proposed = await appendCalls(specs);
    expect(proposed).toHaveLength(calls * 3);

    for (let round = 0; round < kills; round += 1) {
      const before = received();
      forwarder = startForwarder();
      await waitFor('deliveries to progress', async () => received() >= before + 250, 120_000);
      await kill(forwarder);
      expect(received(), `kill ${round + 1} came after the backlog was delivered`).toBeLessThan(
        proposed.length,
      );
    }

    forwarder = startForwarder();
    try {
      await waitFor('every event delivered', async () => received() === proposed.length, 240_000);
      await waitFor(
        'every delivery recorded as delivered',
        async () => {
          const { rows } = await pool.query<{ delivered: number; other: number }>(
            `SELECT count(*) FILTER (WHERE status = 'delivered')::int AS delivered,
                    count(*) FILTER (WHERE status <> 'delivered')::int AS other FROM forwarding_deliveries`,
          );
          return rows[0]!.delivered === proposed.length && rows[0]!.other === 0;
        },
        60_000,
      );
    } finally {
      forwarder.kill('SIGTERM');
      await exited(forwarder);
    }

    // Nothing skipped.
    const arrived = new Set(receiver.requests.map((request) => request.eventId));
    expect(proposed.filter((event) => !arrived.has(event.id))).toEqual([]);
    // Duplicates only where an attempt was in flight, or its outcome not yet recorded, at a kill.
    const duplicates = receiver.requests.length - arrived.size;
    expect(duplicates).toBeLessThanOrEqual(kills * concurrency * unrecordedPerAttempt);
    // In order per call: every arrival of an event comes before the first of the next in its call.
    const arrivals = new Map<string, { first: number; last: number }>();
    receiver.requests.forEach((request, index) => {
      const seen = arrivals.get(request.eventId);
      arrivals.set(request.eventId, { first: seen?.first ?? index, last: index });
    });
    const outOfOrder: string[] = [];
    for (let index = 0; index < proposed.length; index += 1) {
      const event = proposed[index]!;
      const next = proposed[index + 1];
      const sameCall =
        next !== undefined &&
        (next.data as { callId: string }).callId === (event.data as { callId: string }).callId;
      if (sameCall && arrivals.get(event.id)!.last > arrivals.get(next.id)!.first) outOfOrder.push(event.id);
    }
    expect(outOfOrder).toEqual([]);
  });
});
