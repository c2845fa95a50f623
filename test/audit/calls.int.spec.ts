/**
 * `GET /calls` and `GET /calls/:callId` over the read models: order, keyset paging, filters, and
 * every bad parameter answered with a 400 naming it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import {
  recordedCallEvent,
  statusUpdate,
  endOfCallReport,
  type CallEventSpec,
} from '../support/call-events.ts';
import type { TestApp } from '../support/app.ts';
import {
  bearer,
  openAuditStores,
  runTag,
  startAuditApp,
  writeReadModels,
  type AuditStores,
} from './support.ts';

interface CallsPageBody {
  calls: { callId: string; lastEventAt: string | null; status: string | null; outcome: string | null }[];
  nextCursor: string | null;
}

const tag = runTag();
const id = (name: string) => `${name}-${tag}`;

/** Events for one call, revisions in the order given. */
const callEvents = (specs: readonly CallEventSpec[]): RecordedEvent[] =>
  specs.map((spec, index) =>
    recordedCallEvent(spec, BigInt(index), { commit: BigInt(index + 1), prepare: BigInt(index + 1) }),
  );

let stores: AuditStores;
let harness: TestApp;

// Twelve calls: distinct and equal latest event times, ended and in progress, two callers, and
// two calls with no event time at all.
const fixtures: RecordedEvent[][] = [
  callEvents([statusUpdate(id('a'), 'in-progress', '2026-03-01T10:00:00.000Z', { caller: '+31611111111' })]),
  callEvents([
    statusUpdate(id('b'), 'in-progress', '2026-03-01T10:00:00.000Z'),
    statusUpdate(id('b'), 'ended', '2026-03-01T10:05:00.000Z'),
  ]),
  callEvents([
    statusUpdate(id('c'), 'in-progress', '2026-03-01T11:00:00.000Z', { caller: '+31611111111' }),
    statusUpdate(id('c'), 'ended-with-debugging', '2026-03-01T11:02:00.000Z', {
      caller: '+31611111111',
      debuggingArtifact: 'stack: boom',
    }),
  ]),
  callEvents([
    statusUpdate(id('d'), 'in-progress', '2026-03-01T11:02:00.000Z', { assistant: '+4930999999' }),
  ]),
  callEvents([statusUpdate(id('e'), 'in-progress', '2026-03-01T11:02:00.000Z')]),
  callEvents([statusUpdate(id('f'), 'in-progress', '2026-03-01T11:02:00.000Z')]),
  callEvents([
    statusUpdate(id('g'), 'in-progress', '2026-03-02T09:00:00.000Z'),
    endOfCallReport(id('g'), '2026-03-02T09:10:00.000Z'),
  ]),
  callEvents([statusUpdate(id('h'), 'in-progress', '2026-03-02T12:00:00.000Z')]),
  callEvents([statusUpdate(id('i'), 'in-progress', '2026-02-28T23:59:59.999Z')]),
  callEvents([statusUpdate(id('j'), 'ended', '2026-03-03T00:00:00.000Z')]),
  callEvents([{ callId: id('k'), eventType: 'tool-calls', at: null }]),
  callEvents([{ callId: id('l'), eventType: 'tool-calls', at: null }]),
  callEvents([
    statusUpdate(id('m'), 'ended-with-debugging', '2026-03-01T09:00:00.000Z', {
      debuggingArtifact: 'pipeline-error: 50%_of TIMEOUT\\x',
    }),
  ]),
];

/** The documented order: latest event time descending, then call id descending; undated last. */
const expectedOrder = (rows: { callId: string; lastEventAt: Date | null }[]) =>
  [...rows]
    .sort((a, b) => {
      const at = (a.lastEventAt?.getTime() ?? 0) - (b.lastEventAt?.getTime() ?? 0);
      return at !== 0 ? -at : a.callId < b.callId ? 1 : a.callId > b.callId ? -1 : 0;
    })
    .map((row) => row.callId);

let allRows: { callId: string; lastEventAt: Date | null }[];

const list = async (query: string, headers = bearer()) =>
  harness.app.inject({ method: 'GET', url: `/calls${query}`, headers });

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await startAuditApp(stores);
  allRows = await writeReadModels(stores.database, fixtures.flat());
});

afterAll(async () => {
  await harness?.app.close();
  await stores?.close();
});

describe('GET /calls', () => {
  it('lists every call, most recent first, ties by call id, undated last', async () => {
    const response = await list('?limit=1000');
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const body = response.json<CallsPageBody>();
    expect(body.calls.map((call) => call.callId)).toEqual(expectedOrder(allRows));
    expect(body.nextCursor).toBeNull();
    const c = body.calls.find((call) => call.callId === id('c'));
    expect(c).toMatchObject({
      status: 'ended-with-debugging',
      outcome: 'ended-with-debugging',
      lastEventAt: '2026-03-01T11:02:00.000Z',
    });
  });

  it.each([1, 2, 3, 5, 11])(
    'pages with limit %i through every call exactly once, in order',
    async (limit) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const response = await list(`?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
        expect(response.statusCode).toBe(200);
        const body = response.json<CallsPageBody>();
        expect(body.calls.length).toBeLessThanOrEqual(limit);
        seen.push(...body.calls.map((call) => call.callId));
        cursor = body.nextCursor;
        pages += 1;
      } while (cursor !== null && pages < 50);
      expect(seen).toEqual(expectedOrder(allRows));
      expect(pages).toBe(Math.ceil(allRows.length / limit));
    },
  );

  it('filters by latest event time, half-open, excluding undated calls', async () => {
    const body = (await list('?from=2026-03-01T11:02:00.000Z&to=2026-03-02T12:00:00Z')).json<CallsPageBody>();
    expect(body.calls.map((call) => call.callId)).toEqual([id('g'), id('f'), id('e'), id('d'), id('c')]);
    const offset = (
      await list('?from=2026-03-01T12:02:00%2B01:00&to=2026-03-01T12:02:00.001%2B01:00')
    ).json<CallsPageBody>();
    expect(offset.calls.map((call) => call.callId).sort()).toEqual([id('c'), id('d'), id('e'), id('f')]);
  });

  it('pages within a filter', async () => {
    const first = (await list('?from=2026-03-01T00:00:00Z&limit=4')).json<CallsPageBody>();
    expect(first.nextCursor).not.toBeNull();
    const second = (
      await list(`?from=2026-03-01T00:00:00Z&limit=4&cursor=${first.nextCursor}`)
    ).json<CallsPageBody>();
    const both = [...first.calls, ...second.calls].map((call) => call.callId);
    const inRange = allRows.filter(
      (row) => row.lastEventAt && row.lastEventAt >= new Date('2026-03-01T00:00:00Z'),
    );
    expect(inRange.length).toBeGreaterThan(8);
    expect(both).toEqual(expectedOrder(inRange).slice(0, 8));
  });

  it('filters by status, outcome, caller and assistant', async () => {
    const ids = async (query: string) =>
      (await list(query))
        .json<CallsPageBody>()
        .calls.map((call) => call.callId)
        .sort();
    expect(await ids('?status=ended')).toEqual([id('b'), id('g'), id('j')].sort());
    expect(await ids('?outcome=ended-with-debugging')).toEqual([id('c'), id('m')].sort());
    expect(await ids('?outcome=ended')).toEqual([id('b'), id('g'), id('j')].sort());
    expect(await ids('?caller=%2B31611111111')).toEqual([id('a'), id('c')].sort());
    expect(await ids('?caller=%2B31611111111&status=in-progress')).toEqual([id('a')]);
    expect(await ids('?assistant=%2B4930999999')).toEqual([id('d')]);
    expect(await ids('?caller=%2B10000000000')).toEqual([]);
  });

  it('filters by text within Debug Info, case-insensitive, wildcards taken literally', async () => {
    const ids = async (query: string) =>
      (await list(query))
        .json<CallsPageBody>()
        .calls.map((call) => call.callId)
        .sort();
    expect(await ids('?debugInfo=BOOM')).toEqual([id('c')]);
    expect(await ids('?debugInfo=timeout')).toEqual([id('m')]);
    expect(await ids(`?debugInfo=${encodeURIComponent('50%_of')}`)).toEqual([id('m')]);
    expect(await ids(`?debugInfo=${encodeURIComponent('%')}`)).toEqual([id('m')]);
    expect(await ids(`?debugInfo=${encodeURIComponent('_')}`)).toEqual([id('m')]);
    expect(await ids(`?debugInfo=${encodeURIComponent('\\x')}`)).toEqual([id('m')]);
    expect(await ids('?debugInfo=5_')).toEqual([]);
    expect(await ids('?debugInfo=boom&caller=%2B10000000000')).toEqual([]);
  });

  it.each([
    ['?from=yesterday', 'querystring/from'],
    ['?to=2026-13-01T00:00:00Z', 'querystring/to'],
    ['?from=2026-03-01T00:00:00', 'querystring/from'],
    ['?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z', 'querystring/from'],
    ['?status=finished', 'querystring/status'],
    ['?outcome=in-progress', 'querystring/outcome'],
    ['?limit=0', 'querystring/limit'],
    ['?limit=1001', 'querystring/limit'],
    ['?limit=ten', 'querystring/limit'],
    ['?limit=1.5', 'querystring/limit'],
    ['?cursor=not-a-cursor', 'querystring/cursor'],
    ['?caller=', 'querystring/caller'],
    ['?caller=%00', 'querystring/caller'],
    ['?debugInfo=', 'querystring/debugInfo'],
    ['?form=2026-03-01T00:00:00Z', 'querystring/form'],
    ['?status=ended&status=in-progress', 'querystring/status'],
  ])('%s is a 400 naming %s', async (query, field) => {
    const response = await list(query);
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    const problem = response.json<{ status: number; errors: { field: string; message: string }[] }>();
    expect(problem.status).toBe(400);
    expect(problem.errors.map((error) => error.field)).toContain(field);
  });

  it('refuses a cursor that was edited', async () => {
    const { nextCursor } = (await list('?limit=2')).json<CallsPageBody>();
    const edited = `${nextCursor!.slice(0, 10)}${nextCursor![10] === 'A' ? 'B' : 'A'}${nextCursor!.slice(11)}`;
    const response = await list(`?limit=2&cursor=${edited}`);
    expect(response.statusCode).toBe(400);
    expect(response.json<{ errors: { field: string }[] }>().errors[0]?.field).toBe('querystring/cursor');
  });
});

describe('GET /calls/:callId', () => {
  it('returns the call row and its timeline in event-time order', async () => {
    const response = await harness.app.inject({ method: 'GET', url: `/calls/${id('c')}`, headers: bearer() });
    expect(response.statusCode).toBe(200);
    const body = response.json<{
      call: Record<string, unknown>;
      timeline: { status: string; eventTime: string; revision: number; position: string }[];
      asOf: string | null;
    }>();
    expect(body.asOf).toBeNull();
    expect(body.call).toEqual({
      callId: id('c'),
      caller: '+31611111111',
      assistant: '+4930123456',
      status: 'ended-with-debugging',
      outcome: 'ended-with-debugging',
      endedReason: null,
      debuggingArtifact: 'stack: boom',
      firstEventAt: '2026-03-01T11:00:00.000Z',
      lastEventAt: '2026-03-01T11:02:00.000Z',
      startedAt: '2026-03-01T11:00:00.000Z',
      endedAt: '2026-03-01T11:02:00.000Z',
      durationSeconds: 120,
      eventCount: 2,
      lastRevision: 1,
      lastPosition: '2/2',
    });
    expect(
      body.timeline.map((entry) => [entry.status, entry.eventTime, entry.revision, entry.position]),
    ).toEqual([
      ['in-progress', '2026-03-01T11:00:00.000Z', 0, '1/1'],
      ['ended-with-debugging', '2026-03-01T11:02:00.000Z', 1, '2/2'],
    ]);
  });

  it('answers 404 problem+json for an unknown call', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: `/calls/${id('nobody')}`,
      headers: bearer(),
    });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json<{ detail: string }>().detail).toContain(id('nobody'));
  });

  it('accepts the longest call id the webhook accepts (128 characters)', async () => {
    const longest = 'c'.repeat(128);
    const response = await harness.app.inject({ method: 'GET', url: `/calls/${longest}`, headers: bearer() });
    expect(response.statusCode).toBe(404);
    expect(response.json<{ detail: string }>().detail).toContain(longest);
  });

  it.each([
    ['/calls/has%20space', 'params/callId'],
    ['/calls/a+b', 'params/callId'],
    ['/calls/abc?asOf=later', 'querystring/asOf'],
    ['/calls/abc?since=2026-03-01T00:00:00Z', 'querystring/since'],
  ])('%s is a 400 naming %s', async (url, field) => {
    const response = await harness.app.inject({ method: 'GET', url, headers: bearer() });
    expect(response.statusCode).toBe(400);
    expect(response.json<{ errors: { field: string }[] }>().errors.map((error) => error.field)).toContain(
      field,
    );
  });
});
