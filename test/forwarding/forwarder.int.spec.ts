/**
 * The forwarder against real Postgres, both real event-store adapters and a real local HTTP
 * receiver: every event delivered with its exact bytes and headers, in order per call; retries on
 * 5xx, hangs and a receiver that is down; dead after the schedule, recovered by "retry failed
 * since"; a destination paused and probed; a forwarder stopped and restarted mid-backlog skips
 * nothing.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import {
  pauseDestination,
  resumeDestination,
  retryDelivery,
  retryFailedSince,
} from '../../src/forwarding/controls.ts';
import { listDestinations } from '../../src/forwarding/delivery-log.ts';
import type { Destination } from '../../src/forwarding/destinations.ts';
import {
  startForwarder,
  type ForwarderOptions,
  type RunningForwarder,
} from '../../src/forwarding/forwarder.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createLogger } from '../../src/logger.ts';
import { endOfCallReport, statusUpdate, type CallEventSpec } from '../support/call-events.ts';
import {
  adapterKinds,
  appendCallEvents,
  newScope,
  openEventStore,
  openReadModels,
  waitFor,
  type OpenedEventStore,
  type ReadModels,
} from '../support/projector-harness.ts';
import { startReceiver, type Receiver } from './receiver.ts';

const secret = 'forwarding-secret-0123456789';

const destination = (name: string, url: string, eventTypes?: Destination['eventTypes']): Destination => ({
  name,
  url: new URL(url),
  eventTypes,
});

const options = (
  streamPrefixes: readonly string[],
  destinations: readonly Destination[],
  overrides: Partial<ForwarderOptions> = {},
): ForwarderOptions => ({
  destinations,
  secret,
  retry: { maxAttempts: 4, initialDelayMs: 20, maxDelayMs: 100 },
  timeoutMs: 1_000,
  concurrency: 8,
  pauseAfterFailures: 1_000,
  probeIntervalMs: 100,
  excerptBytes: 64,
  streamPrefixes,
  maxBatchEvents: 100,
  pollIntervalMs: 50,
  standbyPollMs: 100,
  restartInitialMs: 50,
  restartMaxMs: 500,
  payloadCacheBytes: 1024 * 1024,
  ...overrides,
});

/** Each call: in-progress, ended, end-of-call report, stored in that order. */
const calls = (callIds: readonly string[]): CallEventSpec[] =>
  callIds.flatMap((callId, index) => {
    const at = (seconds: number) =>
      new Date(Date.parse('2026-03-01T10:00:00Z') + index * 1000 + seconds * 1000).toISOString();
    return [
      statusUpdate(callId, 'in-progress', at(0)),
      statusUpdate(callId, 'ended', at(60)),
      endOfCallReport(callId, at(61)),
    ];
  });

interface DeliveryRow {
  id: string;
  destination: string;
  event_id: string;
  stream_name: string;
  status: string;
  attempts: number;
  last_status: number | null;
}

describe.each(adapterKinds)('forwarder on the %s event store', (kind) => {
  let store: OpenedEventStore;
  let readModels: ReadModels;
  let receiver: Receiver;

  beforeAll(async () => {
    store = await openEventStore(kind);
    readModels = await openReadModels('forwarding');
  });
  afterAll(async () => {
    await readModels?.dispose();
    await store?.dispose();
  });

  const deliveries = async (): Promise<DeliveryRow[]> =>
    (
      await readModels.database.pool.query<DeliveryRow>(
        `SELECT id::text, destination, event_id::text, stream_name, status, attempts, last_status
           FROM forwarding_deliveries ORDER BY id`,
      )
    ).rows;

  /** A fresh receiver, and a forwarder leading from the store's head, delivering to it. */
  const begin = async (
    scope: ReturnType<typeof newScope>,
    destinations: (url: string) => readonly Destination[],
    overrides: Partial<ForwarderOptions> = {},
  ): Promise<RunningForwarder> => {
    await readModels.database.pool.query(
      'TRUNCATE forwarding_deliveries, forwarding_attempts, forwarding_destinations, forwarding_checkpoints',
    );
    receiver = await startReceiver();
    onTestFinished(() => receiver.close());
    const forwarder = start(scope, destinations(receiver.url), overrides);
    await waitFor(
      'the forwarder to lead',
      async () =>
        forwarder.role === 'active' &&
        (await readModels.database.pool.query('SELECT 1 FROM forwarding_destinations')).rowCount! > 0,
    );
    return forwarder;
  };

  const start = (
    scope: ReturnType<typeof newScope>,
    destinations: readonly Destination[],
    overrides: Partial<ForwarderOptions> = {},
    metrics = createMetrics(),
  ): RunningForwarder => {
    const forwarder = startForwarder(
      {
        eventStore: store.eventStore,
        pool: readModels.database.pool,
        logger: createLogger({ level: 'silent' }),
        metrics,
        clock: () => new Date(),
      },
      options(scope.streamPrefixes, destinations, overrides),
    );
    onTestFinished(() => forwarder.stop());
    return forwarder;
  };

  const settled = (expected: number) =>
    waitFor(
      `${expected} deliveries settled`,
      async () => {
        const rows = await deliveries();
        return rows.length === expected && rows.every((row) => row.status !== 'pending') ? rows : undefined;
      },
      // Generous: the schedule takes well under a second, but a loaded machine may stall for long.
      45_000,
    );

  it('delivers every event once, exact bytes and headers, in order per call, only the types wanted', async () => {
    const scope = newScope();
    await begin(scope, (url) => [
      destination('customer', url),
      destination('warehouse', `${url}?warehouse`, ['end-of-call-report']),
    ]);
    const callIds = ['a', 'b', 'c', 'd'].map(scope.callId);
    const proposed = await appendCallEvents(store.eventStore, calls(callIds));

    const rows = await settled(proposed.length + callIds.length);
    expect(rows.every((row) => row.status === 'delivered' && row.attempts === 1)).toBe(true);
    expect(rows.filter((row) => row.destination === 'warehouse')).toHaveLength(callIds.length);

    const toCustomer = receiver.requests.filter((request) => !request.url.endsWith('?warehouse'));
    const toWarehouse = receiver.requests.filter((request) => request.url.endsWith('?warehouse'));
    expect(toWarehouse.map((request) => request.eventId).sort()).toEqual(
      proposed
        .filter((event) => event.type === 'end-of-call-report')
        .map((event) => event.id)
        .sort(),
    );
    const byEvent = new Map(proposed.map((event) => [event.id, event]));
    for (const request of receiver.requests) {
      const event = byEvent.get(request.eventId);
      expect(event).toBeDefined();
      const data = event!.data as { rawBody: string };
      expect(request.body.toString('utf8')).toBe(data.rawBody);
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.attempt).toBe(1);
      const timestamp = String(request.headers['x-calltrail-timestamp']);
      const expected = createHmac('sha256', secret)
        .update(`${timestamp}.`)
        .update(request.body)
        .digest('hex');
      expect(request.headers['x-calltrail-signature']).toBe(`sha256=${expected}`);
    }
    expect(toCustomer.length).toBe(proposed.length);
    // Per call, in the order archived.
    for (const callId of callIds) {
      const archived = proposed.filter((event) => (event.data as { callId: string }).callId === callId);
      const received = rows
        .filter((row) => row.destination === 'customer' && row.stream_name === callStreamName(callId))
        .map((row) => row.event_id);
      const order = toCustomer
        .map((request) => request.eventId)
        .filter((id) => received.includes(id))
        .filter((id, index, all) => all.indexOf(id) === index);
      expect(order).toEqual(archived.map((event) => event.id).filter((id) => order.includes(id)));
      expect(order).toHaveLength(archived.length);
    }
  });

  it('retries 5xx and hangs with the attempt number, keeps a call in order, and records every attempt', async () => {
    const scope = newScope();
    await begin(scope, (url) => [destination('customer', url)], { timeoutMs: 300 });
    const failures = new Map<string, number>();
    receiver.answer = (request) => {
      const seen = failures.get(request.eventId) ?? 0;
      failures.set(request.eventId, seen + 1);
      if (seen === 0) return { status: 503, body: 'x'.repeat(10_000) };
      if (seen === 1) return { hang: true };
      return { status: 204 };
    };
    const callIds = ['a', 'b'].map(scope.callId);
    const proposed = await appendCallEvents(store.eventStore, calls(callIds));
    const rows = await settled(proposed.length);
    expect(rows.every((row) => row.status === 'delivered' && row.attempts === 3)).toBe(true);

    const attempts = await readModels.database.pool.query<{
      attempt: number;
      status: number | null;
      error: string | null;
      response: string | null;
    }>(`SELECT attempt, status, error, response FROM forwarding_attempts ORDER BY delivery_id, attempt`);
    expect(attempts.rows).toHaveLength(proposed.length * 3);
    for (let index = 0; index < attempts.rows.length; index += 3) {
      const [first, second, third] = attempts.rows.slice(index, index + 3);
      expect(first).toMatchObject({ attempt: 1, status: 503, error: 'HTTP 503' });
      expect(first!.response).toHaveLength(64);
      expect(second).toMatchObject({ attempt: 2, status: null, error: 'timed out' });
      expect(third).toMatchObject({ attempt: 3, status: 204, error: null });
    }
    // A call's next event is first sent only once the one before it was delivered.
    for (const callId of callIds) {
      const ids = proposed
        .filter((event) => (event.data as { callId: string }).callId === callId)
        .map((event) => event.id);
      const firstSent = ids.map((id) => receiver.requests.findIndex((request) => request.eventId === id));
      const lastSent = ids.map((id) => receiver.requests.findLastIndex((request) => request.eventId === id));
      for (let index = 1; index < ids.length; index += 1) {
        expect(firstSent[index]!).toBeGreaterThan(lastSent[index - 1]!);
      }
    }
  });

  it('fails a delivery at once on 4xx, dead after the schedule otherwise, and recovers with "retry failed since"', async () => {
    const scope = newScope();
    const running = await begin(scope, (url) => [destination('customer', url)]);
    let healthy = false;
    const reports = new Set<string>();
    receiver.answer = (request) =>
      healthy
        ? { status: 200 }
        : request.body.toString('utf8').includes('end-of-call-report')
          ? { status: 422 }
          : { status: 500 };
    const before = new Date();
    const callIds = ['a', 'b', 'c'].map(scope.callId);
    const proposed = await appendCallEvents(store.eventStore, calls(callIds));
    for (const event of proposed) if (event.type === 'end-of-call-report') reports.add(event.id);
    const rows = await settled(proposed.length);
    expect(rows.every((row) => row.status === 'failed')).toBe(true);
    for (const row of rows) {
      const rejected = reports.has(row.event_id);
      expect(row.attempts).toBe(rejected ? 1 : 4);
      expect(row.last_status).toBe(rejected ? 422 : 500);
    }

    healthy = true;
    const retried = await retryFailedSince(readModels.database.pool, 'customer', before, new Date());
    expect(retried).toBe(proposed.length);
    running.wake();
    const recovered = await settled(proposed.length);
    expect(recovered.every((row) => row.status === 'delivered')).toBe(true);
    // The attempt numbers go on from the first round.
    const lastAttempts = new Map(receiver.requests.map((request) => [request.eventId, request.attempt]));
    for (const event of proposed) {
      expect(lastAttempts.get(event.id)).toBe(reports.has(event.id) ? 2 : 5);
    }
  });

  it('pauses a destination that is down, probes it, and delivers everything once it is back', async () => {
    const scope = newScope();
    await begin(scope, (url) => [destination('customer', url)], {
      pauseAfterFailures: 3,
      probeIntervalMs: 200,
      retry: { maxAttempts: 100, initialDelayMs: 20, maxDelayMs: 50 },
    });
    await receiver.down();
    const callIds = ['a', 'b', 'c', 'd', 'e'].map(scope.callId);
    const proposed = await appendCallEvents(store.eventStore, calls(callIds));
    await waitFor('the destination to be paused', async () => {
      const { rows } = await readModels.database.pool.query<{ paused_reason: string | null }>(
        `SELECT paused_reason FROM forwarding_destinations WHERE name = 'customer'`,
      );
      return rows[0]?.paused_reason === 'failing';
    });
    const { rows: paused } = await readModels.database.pool.query<{ paused_at: Date }>(
      `SELECT paused_at FROM forwarding_destinations WHERE name = 'customer'`,
    );
    const pausedAt = paused[0]!.paused_at;
    const attemptsStartedSince = async (since: Date): Promise<number> => {
      const { rows } = await readModels.database.pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM forwarding_attempts WHERE attempted_at > $1',
        [since],
      );
      return rows[0]!.n;
    };
    await waitFor(
      'a probe',
      async () => (await attemptsStartedSince(new Date(pausedAt.getTime() + 200))) > 0,
    );
    // While paused, one probe per interval, not an attempt per delivery (with retries 20-50 ms
    // apart, five failing calls would make about 25 in that time). Besides the probe, only the
    // attempts the calls had begun when the pause was decided may start after it.
    expect(await attemptsStartedSince(pausedAt)).toBeLessThanOrEqual(callIds.length + 1);

    await receiver.up();
    const rows = await settled(proposed.length);
    expect(rows.every((row) => row.status === 'delivered')).toBe(true);
    const { rows: state } = await readModels.database.pool.query<{ paused_reason: string | null }>(
      `SELECT paused_reason FROM forwarding_destinations WHERE name = 'customer'`,
    );
    expect(state[0]?.paused_reason).toBeNull();
  });

  it('stopped and restarted again and again during a backlog, skips nothing', async () => {
    const scope = newScope();
    let forwarder = await begin(scope, (url) => [destination('customer', url)], { concurrency: 4 });
    const callIds = Array.from({ length: 60 }, (_, index) => scope.callId(`c${index}`));
    const appending = appendCallEvents(store.eventStore, calls(callIds));
    for (let round = 0; round < 4; round += 1) {
      await waitFor('some progress', async () => receiver.requests.length > round * 20);
      await forwarder.stop();
      forwarder = start(scope, [destination('customer', receiver.url)], { concurrency: 4 });
    }
    const proposed = await appending;
    const rows = await settled(proposed.length);
    expect(rows.every((row) => row.status === 'delivered')).toBe(true);
    const received = new Set(receiver.requests.map((request) => request.eventId));
    for (const event of proposed) expect(received.has(event.id)).toBe(true);
  });

  it('cancels the pending deliveries of a destination removed from the configuration, and recovers them once it is back', async () => {
    const scope = newScope();
    const both = (url: string) => [
      destination('customer', url),
      destination('warehouse', `${url}?warehouse`),
    ];
    const pool = readModels.database.pool;
    let forwarder = await begin(scope, both);
    // The warehouse is paused, so its deliveries are still pending when it is removed.
    await pauseDestination(pool, 'warehouse', new Date());
    forwarder.wake();
    const callIds = ['a', 'b'].map(scope.callId);
    const proposed = await appendCallEvents(store.eventStore, calls(callIds));
    const byStatus = async () =>
      (
        await pool.query<{ destination: string; status: string; n: number; errors: string[] }>(
          `SELECT destination, status, count(*)::int AS n, array_agg(DISTINCT coalesce(last_error, '')) AS errors
             FROM forwarding_deliveries GROUP BY destination, status ORDER BY destination, status`,
        )
      ).rows.map((row) => `${row.destination} ${row.status} ${row.n} ${row.errors.join('|')}`);
    await waitFor('the customer served, the warehouse waiting', async () => {
      const rows = await byStatus();
      return (
        rows.join(';') === `customer delivered ${proposed.length} ;warehouse pending ${proposed.length} `
      );
    });
    await forwarder.stop();

    // Started again without the warehouse: its deliveries are cancelled, kept, and counted.
    const metrics = createMetrics();
    forwarder = start(scope, [destination('customer', receiver.url)], {}, metrics);
    await waitFor('the warehouse deliveries cancelled', async () => {
      const rows = await byStatus();
      return (
        rows.join(';') ===
        `customer delivered ${proposed.length} ;warehouse cancelled ${proposed.length} destination no longer configured`
      );
    });
    expect(receiver.requests.filter((request) => request.url.endsWith('?warehouse'))).toHaveLength(0);
    const exposition = await metrics.registry.metrics();
    expect(exposition).toContain(
      `calltrail_forwarding_deliveries_total{destination="warehouse",outcome="cancelled"} ${proposed.length}`,
    );
    const views = await listDestinations(pool, ['customer']);
    expect(views.find((view) => view.name === 'warehouse')).toMatchObject({
      configured: false,
      pending: 0,
      cancelled: proposed.length,
    });
    expect(views.find((view) => view.name === 'customer')).toMatchObject({ configured: true, cancelled: 0 });

    // Retried while the destination is still gone, it is cancelled again rather than left pending.
    const { rows: one } = await pool.query<{ id: string }>(
      `SELECT id::text FROM forwarding_deliveries WHERE destination = 'warehouse' ORDER BY id LIMIT 1`,
    );
    expect(await retryDelivery(pool, one[0]!.id, new Date())).toBe('retrying');
    forwarder.wake();
    await waitFor('the retried delivery cancelled again', async () => {
      const { rows } = await pool.query<{ status: string }>(
        'SELECT status FROM forwarding_deliveries WHERE id = $1::bigint',
        [one[0]!.id],
      );
      return rows[0]?.status === 'cancelled';
    });
    await forwarder.stop();

    // The warehouse back in the configuration: "recover" sends what was cancelled, in order per call.
    forwarder = start(scope, both(receiver.url));
    await resumeDestination(pool, 'warehouse');
    expect(await retryFailedSince(pool, 'warehouse', new Date(0), new Date())).toBe(proposed.length);
    forwarder.wake();
    const rows = await settled(proposed.length * 2);
    expect(rows.every((row) => row.status === 'delivered')).toBe(true);
    const toWarehouse = receiver.requests
      .filter((request) => request.url.endsWith('?warehouse'))
      .map((request) => request.eventId);
    for (const callId of callIds) {
      const archived = proposed
        .filter((event) => (event.data as { callId: string }).callId === callId)
        .map((event) => event.id);
      expect(toWarehouse.filter((id) => archived.includes(id))).toEqual(archived);
    }
  });

  it('sends a newly archived event straight from the recorder, with no look for due deliveries in between', async () => {
    const scope = newScope();
    const pool = readModels.database.pool;
    await pool.query(
      'TRUNCATE forwarding_deliveries, forwarding_attempts, forwarding_destinations, forwarding_checkpoints',
    );
    receiver = await startReceiver();
    onTestFinished(() => receiver.close());
    await appendCallEvents(store.eventStore, [
      statusUpdate(scope.callId('before'), 'in-progress', '2026-03-01T09:59:00.000Z'),
    ]);
    let looks = 0;
    const watched = new Proxy(pool, {
      get: (target, property) => {
        if (property === 'query') {
          return (text: string, values?: unknown[]) => {
            if (text.includes('WITH heads AS')) looks += 1;
            return target.query(text, values);
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const forwarder = startForwarder(
      {
        eventStore: store.eventStore,
        pool: watched,
        logger: createLogger({ level: 'silent' }),
        metrics: createMetrics(),
        clock: () => new Date(),
      },
      // No poll within the test: a look would have to be woken.
      options(scope.streamPrefixes, [destination('customer', receiver.url)], { pollIntervalMs: 600_000 }),
    );
    onTestFinished(() => forwarder.stop());
    await waitFor(
      'the forwarder to lead from its starting point',
      async () =>
        forwarder.role === 'active' &&
        looks > 0 &&
        (await pool.query('SELECT 1 FROM forwarding_checkpoints')).rowCount === 1,
    );
    const looksAtStart = looks;
    // One call's events, each archived once the one before it was delivered, and two calls at once.
    const callId = scope.callId('chain');
    const proposed = [];
    const revisions = new Map<string, bigint>();
    for (const [index, spec] of calls([callId]).entries()) {
      proposed.push(...(await appendCallEvents(store.eventStore, [spec], revisions)));
      await settled(index + 1);
    }
    proposed.push(
      ...(await appendCallEvents(store.eventStore, calls([scope.callId('x'), scope.callId('y')]))),
    );
    const rows = await settled(proposed.length);
    expect(rows.every((row) => row.status === 'delivered' && row.attempts === 1)).toBe(true);
    expect(receiver.requests.map((request) => request.eventId).slice(0, 3)).toEqual(
      proposed.slice(0, 3).map((event) => event.id),
    );
    // Before, every recorded batch woke a look (a query of the pending deliveries) before it was sent.
    expect(looks).toBe(looksAtStart);
  });

  it('keeps a wake-up that comes while it looks for due deliveries, instead of sleeping through it', async () => {
    const scope = newScope();
    const pool = readModels.database.pool;
    await pool.query(
      'TRUNCATE forwarding_deliveries, forwarding_attempts, forwarding_destinations, forwarding_checkpoints',
    );
    receiver = await startReceiver();
    onTestFinished(() => receiver.close());
    // The archive is not empty, so the forwarder's first start writes its starting point at once.
    await appendCallEvents(store.eventStore, [
      statusUpdate(scope.callId('before'), 'in-progress', '2026-03-01T09:59:00.000Z'),
    ]);
    // The first look for the next due time answers "nothing pending"; by the time it returns, an
    // event was archived and recorded, and its wake-up came while the dispatcher was busy.
    let proposed: Awaited<ReturnType<typeof appendCallEvents>> = [];
    let hooked = false;
    const watched = new Proxy(pool, {
      get: (target, property) => {
        if (property === 'query') {
          return async (text: string, values?: unknown[]) => {
            const result = await target.query(text, values);
            if (!hooked && text.includes('min(next_attempt_at)')) {
              hooked = true;
              await waitFor('the starting point', async () => (await deliveryCheckpoint()) !== undefined);
              proposed = await appendCallEvents(store.eventStore, [
                statusUpdate(scope.callId('woken'), 'in-progress', '2026-03-01T10:00:00.000Z'),
              ]);
              await waitFor('the delivery recorded', async () => (await deliveries()).length === 1);
            }
            return result;
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const deliveryCheckpoint = async () =>
      (await pool.query('SELECT 1 FROM forwarding_checkpoints')).rows[0] as unknown;
    const forwarder = startForwarder(
      {
        eventStore: store.eventStore,
        pool: watched,
        logger: createLogger({ level: 'silent' }),
        metrics: createMetrics(),
        clock: () => new Date(),
      },
      // A poll interval far beyond the wait below: only the kept wake-up can deliver in time.
      options(scope.streamPrefixes, [destination('customer', receiver.url)], { pollIntervalMs: 600_000 }),
    );
    onTestFinished(() => forwarder.stop());
    await waitFor('the look to be hooked', async () => hooked && proposed.length === 1, 45_000);
    const rows = await settled(1);
    expect(rows[0]).toMatchObject({ status: 'delivered', event_id: proposed[0]!.id });
  });
});
