/**
 * The access log's writer on a real PostgreSQL event store: records are appended to their day's
 * stream; while the store fails they stay buffered and are retried; a full buffer drops new records,
 * and closing drops what could not be written, each time counted and logged, never silently.
 * Records made one after another share an append; a full batch is appended without waiting.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAccessLog, type AccessRecord } from '../../src/access/access-log.ts';
import type { EventStore, RecordedEvent } from '../../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const record = (at: string, path: string): AccessRecord => ({
  at,
  token: 'alice',
  role: 'auditor',
  method: 'GET',
  route: '/calls/:callId',
  path,
  query: {},
  status: 200,
  sourceAddress: '127.0.0.1',
  requestId: `request-${path}`,
});

const waitFor = async (condition: () => Promise<boolean>, what: string, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};

const metricValue = async (metrics: ReturnType<typeof createMetrics>, text: string): Promise<number> => {
  const line = (await metrics.registry.metrics()).split('\n').find((each) => each.startsWith(text));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
};

let testDatabase: TestDatabase;
let eventStore: EventStore;

beforeAll(async () => {
  testDatabase = await createTestDatabase('access_log_writer');
  eventStore = await openPostgresEventStore(testDatabase.url, { timeoutMs: 2_000 });
});

afterAll(async () => {
  await eventStore?.close();
  await testDatabase?.drop();
});

const read = async (stream: string): Promise<RecordedEvent[]> => {
  const events: RecordedEvent[] = [];
  for await (const event of eventStore.readStream(stream)) events.push(event);
  return events;
};

describe('the access log writer', () => {
  it('appends each record to the stream of its UTC day', async () => {
    const metrics = createMetrics();
    const log = createAccessLog(
      { eventStore, logger: createLogger({ level: 'silent' }), metrics },
      { maxBuffered: 100, batchSize: 2, lingerMs: 10, retryInitialMs: 10, retryMaxMs: 50 },
    );
    log.record(record('2026-11-26T23:59:59.999Z', '/a'));
    log.record(record('2026-11-27T00:00:00.000Z', '/b'));
    log.record(record('2026-11-27T10:00:00.000Z', '/c'));
    await waitFor(async () => (await read('access-2026-11-27')).length === 2, 'the second day');
    expect((await read('access-2026-11-26')).map((event) => (event.data as AccessRecord).path)).toEqual([
      '/a',
    ]);
    expect((await read('access-2026-11-27')).map((event) => event.type)).toEqual([
      'api-access',
      'api-access',
    ]);
    expect(await metricValue(metrics, 'calltrail_access_events_total{outcome="recorded"}')).toBe(3);
    await log.close(1_000);
  });

  it('lets records made one after another share an append, and appends a full batch at once', async () => {
    const appends: number[] = [];
    const counting: EventStore = {
      ...eventStore,
      append: (stream, events, expected) => {
        appends.push(events.length);
        return eventStore.append(stream, events, expected);
      },
    };
    const log = createAccessLog(
      { eventStore: counting, logger: createLogger({ level: 'silent' }), metrics: createMetrics() },
      { maxBuffered: 100, batchSize: 3, lingerMs: 60_000, retryInitialMs: 10, retryMaxMs: 50 },
    );
    // Three requests, each after the last one's turn has ended: the batch is full at the third.
    for (const path of ['/x', '/y', '/z']) {
      log.record(record('2026-11-29T08:00:00.000Z', path));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(async () => (await read('access-2026-11-29')).length === 3, 'the three records');
    expect(appends).toEqual([3]);
    // One record alone waits for company, and is written at close at the latest.
    log.record(record('2026-11-29T09:00:00.000Z', '/alone'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(appends).toEqual([3]);
    await log.close(5_000);
    expect(appends).toEqual([3, 1]);
    expect((await read('access-2026-11-29')).map((event) => (event.data as AccessRecord).path)).toEqual([
      '/x',
      '/y',
      '/z',
      '/alone',
    ]);
  });

  it('keeps records while the store fails, drops past the bound and at close, counted and logged', async () => {
    const failing = await openPostgresEventStore(testDatabase.url, { timeoutMs: 500 });
    await failing.close();
    const lines: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    });
    const metrics = createMetrics();
    const log = createAccessLog(
      { eventStore: failing, logger, metrics },
      { maxBuffered: 3, batchSize: 10, lingerMs: 10, retryInitialMs: 10, retryMaxMs: 20 },
    );
    for (const path of ['/1', '/2', '/3', '/4', '/5']) log.record(record('2026-11-28T08:00:00.000Z', path));
    expect(log.buffered).toBe(3);
    expect(await metricValue(metrics, 'calltrail_access_events_total{outcome="dropped"}')).toBe(2);
    await waitFor(
      async () => (await metricValue(metrics, 'calltrail_access_log_append_failures_total')) >= 2,
      'two failed appends (a retry)',
    );
    expect(log.buffered).toBe(3);
    await log.close(200);
    expect(await metricValue(metrics, 'calltrail_access_events_total{outcome="dropped"}')).toBe(5);
    const dropped = lines
      .map((line) => JSON.parse(line) as { msg: string; dropped?: number; reason?: string })
      .filter((line) => line.msg === 'access log events dropped');
    expect(dropped.map(({ dropped: count, reason }) => ({ count, reason }))).toEqual([
      { count: 1, reason: 'buffer full' },
      { count: 3, reason: 'not written before shutdown' },
    ]);
    expect(await read('access-2026-11-28')).toEqual([]);
  });
});
