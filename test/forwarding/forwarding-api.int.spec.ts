/**
 * The delivery log and its controls on the audit API, over the real HTTP stack and a real
 * PostgreSQL: listing with filters and keyset paging, one delivery with its attempts, retrying one,
 * recovering a destination's failed deliveries, pausing and resuming, the backlog metrics, bad input
 * named, the OpenAPI document.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { recordAttempt, recordDeliveries } from '../../src/forwarding/delivery-store.ts';
import { buildTestApp, testApiToken, testConfig, type TestApp } from '../support/app.ts';
import { endOfCallReport, statusUpdate } from '../support/call-events.ts';
import {
  appendCallEvents,
  newScope,
  openEventStore,
  openReadModels,
  type OpenedEventStore,
  type ReadModels,
} from '../support/projector-harness.ts';

const auth = { authorization: `Bearer ${testApiToken}` };

describe('forwarding on the audit API', () => {
  let store: OpenedEventStore;
  let readModels: ReadModels;
  let test: TestApp;
  let events: RecordedEvent[];
  const scope = newScope();
  const callA = scope.callId('a');
  const callB = scope.callId('b');
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    store = await openEventStore('postgres');
    readModels = await openReadModels('forwarding_api');
    const base = testConfig();
    const config = {
      ...base,
      forwarding: {
        ...base.forwarding,
        destinations: [
          { name: 'customer', url: new URL('http://127.0.0.1:9/'), eventTypes: undefined },
          {
            name: 'warehouse',
            url: new URL('http://127.0.0.1:9/w'),
            eventTypes: ['end-of-call-report' as const],
          },
        ],
      },
    };
    test = await buildTestApp({ eventStore: store.eventStore, database: readModels.database, config });
    await appendCallEvents(store.eventStore, [
      statusUpdate(callA, 'in-progress', '2026-03-01T10:00:00.000Z'),
      statusUpdate(callB, 'in-progress', '2026-03-01T10:00:01.000Z'),
      statusUpdate(callA, 'ended', '2026-03-01T10:01:00.000Z'),
      endOfCallReport(callA, '2026-03-01T10:01:01.000Z'),
    ]);
    events = [];
    for await (const event of store.eventStore.readAll({ streamPrefixes: scope.streamPrefixes }))
      events.push(event);
    const pool = readModels.database.pool;
    const recordedAt = new Date('2026-03-01T10:02:00.000Z');
    await recordDeliveries(
      pool,
      [
        ...events.map((event) => ({
          destination: 'customer',
          event,
          callId: event.streamName === callStreamName(callA) ? callA : callB,
        })),
        { destination: 'warehouse', event: events[3]!, callId: callA },
      ],
      events[3]!.position,
      recordedAt,
    );
    const { rows } = await pool.query<{ id: string; destination: string; event_id: string }>(
      'SELECT id::text, destination, event_id::text FROM forwarding_deliveries ORDER BY id',
    );
    for (const row of rows)
      ids[`${row.destination}:${events.findIndex((e) => e.id === row.event_id)}`] = row.id;
    // customer:0 delivered, customer:1 failed after a 500, customer:2 failed after a 422.
    const attempt = async (key: string, status: number, outcome: 'delivered' | 'failed') =>
      recordAttempt(
        pool,
        {
          deliveryId: ids[key]!,
          attempt: 1,
          destination: key.split(':')[0]!,
          attemptedAt: recordedAt,
          status,
          latencyMs: 12,
          error: outcome === 'failed' ? `HTTP ${status}` : undefined,
          response: outcome === 'failed' ? 'nope' : 'ok',
        },
        { status: outcome, nextAttemptAt: recordedAt, finishedAt: recordedAt },
      );
    await attempt('customer:0', 200, 'delivered');
    await attempt('customer:1', 500, 'failed');
    await attempt('customer:2', 422, 'failed');
  });

  afterAll(async () => {
    await test?.app.close();
    await readModels?.dispose();
    await store?.dispose();
  });

  const get = (url: string) => test.app.inject({ method: 'GET', url, headers: auth });
  const post = (url: string, payload?: Record<string, string>) =>
    test.app.inject({ method: 'POST', url, headers: auth, ...(payload === undefined ? {} : { payload }) });

  it('lists deliveries newest first, filtered, keyset-paged', async () => {
    const all = (await get('/deliveries')).json<{
      deliveries: { id: string }[];
      nextCursor: string | null;
    }>();
    expect(all.deliveries.map((d) => d.id)).toEqual(Object.values(ids).sort((a, b) => Number(b) - Number(a)));
    expect(all.nextCursor).toBeNull();

    const first = (await get('/deliveries?limit=2')).json<{
      deliveries: { id: string }[];
      nextCursor: string;
    }>();
    expect(first.deliveries).toHaveLength(2);
    const second = (await get(`/deliveries?limit=2&cursor=${first.nextCursor}`)).json<{
      deliveries: { id: string }[];
    }>();
    expect(second.deliveries.map((d) => d.id)).toEqual(all.deliveries.slice(2, 4).map((d) => d.id));

    const failed = (await get('/deliveries?status=failed&destination=customer')).json<{
      deliveries: { id: string; lastStatus: number; lastError: string }[];
    }>();
    expect(failed.deliveries.map((d) => d.id).sort()).toEqual([ids['customer:1'], ids['customer:2']].sort());

    const ofCall = (await get(`/deliveries?call=${callB}`)).json<{ deliveries: { id: string }[] }>();
    expect(ofCall.deliveries.map((d) => d.id)).toEqual([ids['customer:1']]);
    const before = (await get('/deliveries?to=2026-03-01T10:00:00Z')).json<{ deliveries: unknown[] }>();
    expect(before.deliveries).toEqual([]);
  });

  it('names a bad parameter', async () => {
    for (const [url, field] of [
      ['/deliveries?status=lost', 'status'],
      ['/deliveries?from=yesterday', 'from'],
      ['/deliveries?limit=0', 'limit'],
      ['/deliveries?cursor=abc', 'cursor'],
    ] as const) {
      const response = await get(url);
      expect(response.statusCode).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.body).toContain(field);
    }
    const missing = await post('/destinations/customer/retry-failed', {});
    expect(missing.statusCode).toBe(400);
    expect(missing.body).toContain('since');
    expect((await get('/deliveries')).statusCode).toBe(200);
    expect((await test.app.inject({ method: 'GET', url: '/deliveries' })).statusCode).toBe(401);
  });

  it('shows one delivery with its attempts', async () => {
    const response = await get(`/deliveries/${ids['customer:1']}`);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      delivery: { status: 'failed', attempts: 1, lastStatus: 500, destination: 'customer', callId: callB },
      attempts: [{ attempt: 1, status: 500, latencyMs: 12, error: 'HTTP 500', response: 'nope' }],
    });
    expect((await get('/deliveries/999999')).statusCode).toBe(404);
  });

  it('retries one delivery, not a delivered one', async () => {
    const response = await post(`/deliveries/${ids['customer:2']}/retry`);
    expect(response.statusCode).toBe(202);
    expect(response.json()).toMatchObject({ status: 'pending', attempts: 1 });
    expect((await post(`/deliveries/${ids['customer:0']}/retry`)).statusCode).toBe(409);
    expect((await post('/deliveries/999999/retry')).statusCode).toBe(404);
  });

  it("recovers a destination's failed deliveries since a time", async () => {
    const later = await post('/destinations/customer/retry-failed', { since: '2026-03-02T00:00:00Z' });
    expect(later.json()).toEqual({ retried: 0 });
    const response = await post('/destinations/customer/retry-failed', { since: '2026-03-01T00:00:00Z' });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ retried: 1 });
    const pending = (await get('/deliveries?status=failed')).json<{ deliveries: unknown[] }>();
    expect(pending.deliveries).toEqual([]);
    expect(
      (await post('/destinations/nowhere/retry-failed', { since: '2026-03-01T00:00:00Z' })).statusCode,
    ).toBe(404);
  });

  it('pauses and resumes a destination, and reports backlogs', async () => {
    const paused = await post('/destinations/warehouse/pause');
    expect(paused.statusCode).toBe(200);
    expect(paused.json()).toMatchObject({ name: 'warehouse', paused: 'manual', pending: 1 });
    const listed = (await get('/destinations')).json<{
      destinations: { name: string; paused: string | null }[];
    }>();
    expect(listed.destinations.map((d) => [d.name, d.paused])).toEqual([
      ['customer', null],
      ['warehouse', 'manual'],
    ]);
    expect((await post('/destinations/warehouse/resume')).json()).toMatchObject({ paused: null });
    expect((await post('/destinations/nowhere/pause')).statusCode).toBe(404);

    const metrics = (await get('/metrics')).body;
    expect(metrics).toMatch(/calltrail_forwarding_backlog_deliveries\{destination="warehouse"\} 1/);
    expect(metrics).toMatch(
      /calltrail_forwarding_oldest_undelivered_age_seconds\{destination="customer"\} \d/,
    );
  });

  it('documents the routes in the OpenAPI document', async () => {
    const document = (await test.app.inject({ method: 'GET', url: '/docs/json' })).json<{
      paths: Record<string, unknown>;
    }>();
    for (const path of [
      '/deliveries',
      '/deliveries/{id}',
      '/deliveries/{id}/retry',
      '/destinations',
      '/destinations/{name}/retry-failed',
      '/destinations/{name}/pause',
      '/destinations/{name}/resume',
    ]) {
      expect(document.paths[path]).toBeDefined();
    }
  });
});
