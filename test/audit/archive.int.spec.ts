/**
 * The routes that read the event store, on both adapters: a call's archived events (raw bytes
 * exact), a call as of a past reception time (through the projection's fold), quarantined requests
 * newest first, and the NDJSON replay with its resume position.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archivedEventSchemaVersion,
  decodeRawBody,
  encodeRawBody,
  quarantinedRequestType,
  type QuarantinedRequest,
  type ReceptionMetadata,
} from '../../src/archive/archived-event.ts';
import { callStreamName, quarantineStreamName } from '../../src/archive/streams.ts';
import { readArchive } from '../../src/audit/archive-reader.ts';
import { comparePositions, parsePosition, type ProposedEvent } from '../../src/event-store/event-store.ts';
import { archivedCallEvent, statusUpdate, toolCalls, type CallEventSpec } from '../support/call-events.ts';
import type { TestApp } from '../support/app.ts';
import {
  appendAll,
  bearer,
  collect,
  eventStoreKinds,
  openAuditStores,
  projectCall,
  projectQuarantine,
  runTag,
  startAuditApp,
  type AuditStores,
} from './support.ts';

interface EventView {
  position: string;
  stream: string;
  revision: number;
  eventId: string;
  eventType: string;
  receivedAt: string | null;
  signatureVerified: boolean | null;
  reception: Record<string, unknown>;
  data: Record<string, unknown>;
  rawBody: string | null;
  rawBodyEncoding: 'utf8' | 'base64' | null;
}

/** An event as ingest stores it, with a raw body of our choosing. */
const callEvent = (spec: CallEventSpec, raw: Buffer, id = crypto.randomUUID()): ProposedEvent => {
  const { data, metadata } = archivedCallEvent(spec);
  return { id, type: data.eventType, data: { ...data, ...encodeRawBody(raw) }, metadata };
};

const quarantined = (raw: Buffer, receivedAt: string, contentType = 'application/json'): ProposedEvent => {
  const data: QuarantinedRequest = {
    schemaVersion: archivedEventSchemaVersion,
    reason: 'malformed-json',
    problems: [{ field: 'body', message: 'is not valid JSON' }],
    contentType,
    ...encodeRawBody(raw),
  };
  const metadata: ReceptionMetadata = {
    receivedAt,
    requestId: crypto.randomUUID(),
    sourceAddress: '203.0.113.9',
    signatureVerified: false,
    authentication: 'token',
    userAgent: null,
  };
  return { id: crypto.randomUUID(), type: quarantinedRequestType, data, metadata };
};

const ndjson = (body: string): EventView[] => {
  expect(body === '' || body.endsWith('\n')).toBe(true);
  return body
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as EventView);
};

const inGlobalOrder = (views: readonly EventView[]) =>
  views.every(
    (view, index) =>
      index === 0 ||
      comparePositions(parsePosition(views[index - 1]!.position)!, parsePosition(view.position)!) < 0,
  );

describe.each(eventStoreKinds)('on the %s event store', (kind) => {
  let stores: AuditStores;
  let harness: TestApp;
  const tag = runTag();
  const callId = `call-${tag}`;
  const otherCallId = `other-${tag}`;
  // Not valid UTF-8: stored as base64 and must come back byte for byte.
  const binaryBody = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0xff, 0xfe, 0x7d]);
  const bodies = [
    Buffer.from('{"eventType":"status-update","status":"in-progress"}'),
    Buffer.from('{ "eventType": "status-update",\r\n  "status": "ended", "note": "ünïcødé 📞" }\n'),
    binaryBody,
  ];
  const events = [
    callEvent(
      statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z', {
        receivedAt: '2026-03-01T10:00:01.000Z',
      }),
      bodies[0]!,
    ),
    callEvent(
      statusUpdate(callId, 'ended', '2026-03-01T10:05:00.000Z', {
        receivedAt: '2026-03-01T10:06:00.000Z',
        endedReason: 'customer-ended-call',
      }),
      bodies[1]!,
    ),
    // Stamped before the others by Flireo, but received last.
    callEvent(
      toolCalls(callId, '2026-03-01T09:59:00.000Z', {
        receivedAt: '2026-03-01T10:10:00.000Z',
        caller: '+31699999999',
      }),
      bodies[2]!,
    ),
  ];
  // Received (10:00:05) between the first two events of the call, appended after all of them.
  const otherEvent = callEvent(
    statusUpdate(otherCallId, 'in-progress', '2026-03-01T12:00:00.000Z', {
      receivedAt: '2026-03-01T10:00:05.000Z',
    }),
    Buffer.from('{"other":true}'),
  );
  const quarantineRaw = [
    Buffer.from('{"broken": '),
    Buffer.from('not json at all'),
    Buffer.from([0xc3, 0x28]),
    Buffer.from('{"x":1'),
    Buffer.from('<xml/>'),
  ];
  const quarantineTimes = [
    '2026-03-01T08:00:00.000Z',
    '2026-03-01T23:59:59.999Z',
    '2026-03-02T00:00:00.000Z',
    '2026-03-02T07:30:00.000Z',
    '2026-03-02T09:00:00.000Z',
  ];

  beforeAll(async () => {
    stores = await openAuditStores(kind);
    harness = await startAuditApp(stores);
    // Interleave quarantine and call appends so global order mixes the streams.
    for (let index = 0; index < quarantineRaw.length; index += 1) {
      await appendAll(stores.eventStore, quarantineStreamName(new Date(quarantineTimes[index]!)), [
        quarantined(
          quarantineRaw[index]!,
          quarantineTimes[index]!,
          index === 4 ? 'application/xml' : 'application/json',
        ),
      ]);
      const event = events[index];
      if (event) await appendAll(stores.eventStore, callStreamName(callId), [event]);
    }
    await appendAll(stores.eventStore, callStreamName(otherCallId), [otherEvent]);
    await projectCall(stores, callId);
    await projectQuarantine(stores);
  });

  afterAll(async () => {
    await harness?.app.close();
    await stores?.close();
  });

  const get = (url: string) => harness.app.inject({ method: 'GET', url, headers: bearer() });

  describe('GET /calls/:callId/events', () => {
    it('returns every archived event in revision order with its raw body exactly as received', async () => {
      const response = await get(`/calls/${callId}/events`);
      expect(response.statusCode).toBe(200);
      const body = response.json<{ callId: string; stream: string; events: EventView[] }>();
      expect(body.stream).toBe(callStreamName(callId));
      expect(body.events.map((event) => event.revision)).toEqual([0, 1, 2]);
      expect(body.events.map((event) => event.eventId)).toEqual(events.map((event) => event.id));
      expect(inGlobalOrder(body.events)).toBe(true);
      expect(body.events.map((event) => event.eventType)).toEqual([
        'status-update',
        'status-update',
        'tool-calls',
      ]);
      expect(body.events.map((event) => event.receivedAt)).toEqual([
        '2026-03-01T10:00:01.000Z',
        '2026-03-01T10:06:00.000Z',
        '2026-03-01T10:10:00.000Z',
      ]);
      expect(body.events.map((event) => event.signatureVerified)).toEqual([true, true, true]);
      expect(body.events.map((event) => event.rawBodyEncoding)).toEqual(['utf8', 'utf8', 'base64']);
      body.events.forEach((event, index) => {
        expect(
          decodeRawBody({ rawBody: event.rawBody!, rawBodyEncoding: event.rawBodyEncoding! }).equals(
            bodies[index]!,
          ),
        ).toBe(true);
        expect(event.data).not.toHaveProperty('rawBody');
        expect(event.data).toMatchObject({ callId, schemaVersion: 1 });
        expect(event.reception).toMatchObject({ authentication: 'signature', sourceAddress: '203.0.113.7' });
      });
      expect(body.events[1]!.data).toMatchObject({ status: 'ended', endedReason: 'customer-ended-call' });
    });

    it('answers 404 for a call with no events, 400 for an impossible id', async () => {
      expect((await get(`/calls/nobody-${tag}/events`)).statusCode).toBe(404);
      const bad = await get('/calls/bad%2Fid/events');
      expect(bad.statusCode).toBe(400);
      expect(bad.json<{ errors: { field: string }[] }>().errors[0]?.field).toBe('params/callId');
    });
  });

  describe('GET /calls/:callId?asOf', () => {
    interface Detail {
      call: {
        status: string | null;
        outcome: string | null;
        eventCount: number;
        caller: string | null;
        firstEventAt: string | null;
      };
      timeline: { eventId: string; eventTime: string | null }[];
      asOf: string | null;
    }
    const asOf = async (at: string) => get(`/calls/${callId}?asOf=${encodeURIComponent(at)}`);

    it('before the first event was received: 404', async () => {
      const response = await asOf('2026-03-01T10:00:00.999Z');
      expect(response.statusCode).toBe(404);
      expect(response.json<{ detail: string }>().detail).toContain('2026-03-01T10:00:00.999Z');
    });

    it('between events: only what had been received, whatever the event times', async () => {
      const first = (await asOf('2026-03-01T10:00:01.000Z')).json<Detail>();
      expect(first.asOf).toBe('2026-03-01T10:00:01.000Z');
      expect(first.call).toMatchObject({ status: 'in-progress', outcome: null, eventCount: 1 });
      expect(first.timeline.map((entry) => entry.eventId)).toEqual([events[0]!.id]);

      // An offset is the same instant: 11:05+01:00 is 10:05Z, before the ending event arrived.
      const stillRunning = (await asOf('2026-03-01T11:05:59.999+01:00')).json<Detail>();
      expect(stillRunning.call).toMatchObject({ status: 'in-progress', eventCount: 1 });

      const ended = (await asOf('2026-03-01T10:06:00.000Z')).json<Detail>();
      expect(ended.call).toMatchObject({
        status: 'ended',
        outcome: 'ended',
        eventCount: 2,
        firstEventAt: '2026-03-01T10:00:00.000Z',
      });
      expect(ended.timeline.map((entry) => entry.eventId)).toEqual([events[0]!.id, events[1]!.id]);
    });

    it('after every event: exactly the read model', async () => {
      const late = (await asOf('2026-03-01T10:10:00.000Z')).json<Detail>();
      expect(late.call).toMatchObject({
        eventCount: 3,
        // Registers follow event time: the late-received but earlier-stamped event does not win.
        caller: '+4915112345678',
        firstEventAt: '2026-03-01T09:59:00.000Z',
      });
      // The late tool-calls event sorts first by event time.
      expect(late.timeline.map((entry) => entry.eventId)).toEqual([
        events[2]!.id,
        events[0]!.id,
        events[1]!.id,
      ]);
      const current = (await get(`/calls/${callId}`)).json<Detail>();
      expect(current.asOf).toBeNull();
      const later = (await asOf('2030-01-01T00:00:00Z')).json<Detail>();
      expect({ ...later, asOf: null }).toEqual(current);
    });

    it('refuses an unparseable asOf', async () => {
      const response = await asOf('2026-02-30T00:00:00Z');
      expect(response.statusCode).toBe(400);
      expect(response.json<{ errors: { field: string }[] }>().errors[0]?.field).toBe('querystring/asOf');
    });
  });

  describe('GET /quarantine', () => {
    interface Page {
      requests: EventView[];
      nextCursor: string | null;
    }

    it('lists quarantined requests newest first, raw bytes exact', async () => {
      const body = (await get('/quarantine')).json<Page>();
      expect(body.nextCursor).toBeNull();
      expect(body.requests.map((request) => request.receivedAt)).toEqual([...quarantineTimes].reverse());
      expect(body.requests.map((request) => request.stream)).toEqual([
        'quarantine-2026-03-02',
        'quarantine-2026-03-02',
        'quarantine-2026-03-02',
        'quarantine-2026-03-01',
        'quarantine-2026-03-01',
      ]);
      body.requests.forEach((request, index) => {
        const raw = quarantineRaw[quarantineRaw.length - 1 - index]!;
        expect(
          decodeRawBody({ rawBody: request.rawBody!, rawBodyEncoding: request.rawBodyEncoding! }).equals(raw),
        ).toBe(true);
        expect(request.data).toMatchObject({ reason: 'malformed-json' });
      });
      expect(body.requests[0]!.data['contentType']).toBe('application/xml');
    });

    it.each([1, 2, 4])('pages by position with limit %i, each request once', async (limit) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const response = await get(`/quarantine?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
        expect(response.statusCode).toBe(200);
        const body = response.json<Page>();
        expect(body.requests.length).toBeLessThanOrEqual(limit);
        seen.push(...body.requests.map((request) => request.receivedAt!));
        cursor = body.nextCursor;
        pages += 1;
      } while (cursor !== null && pages < 20);
      expect(seen).toEqual([...quarantineTimes].reverse());
    });

    it.each([
      ['?cursor=abc', 'querystring/cursor'],
      ['?cursor=18446744073709551616/0', 'querystring/cursor'],
      ['?limit=0', 'querystring/limit'],
      ['?since=yesterday', 'querystring/since'],
    ])('%s is a 400 naming %s', async (query, field) => {
      const response = await get(`/quarantine${query}`);
      expect(response.statusCode).toBe(400);
      expect(response.json<{ errors: { field: string }[] }>().errors.map((error) => error.field)).toContain(
        field,
      );
    });
  });

  describe('GET /replay', () => {
    it('streams every archived event once, in global order, as NDJSON', async () => {
      const response = await get('/replay');
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
      const lines = ndjson(response.body);
      expect(lines).toHaveLength(events.length + 1 + quarantineRaw.length);
      expect(inGlobalOrder(lines)).toBe(true);
      expect(new Set(lines.map((line) => line.eventId)).size).toBe(lines.length);
      const archived = await collect(
        readArchive(stores.eventStore, { streamPrefixes: ['call-', 'quarantine-', 'assistant-requests-'] }),
      );
      expect(lines.map((line) => line.eventId)).toEqual(archived.map((event) => event.id));
    });

    it('selects by stream prefix, resumes after a position, and bounds by reception time', async () => {
      const calls = ndjson((await get(`/replay?prefix=${callStreamName(callId)}`)).body);
      expect(calls.map((line) => line.eventId)).toEqual(events.map((event) => event.id));
      const resumed = ndjson(
        (await get(`/replay?prefix=${callStreamName(callId)}&after=${calls[0]!.position}`)).body,
      );
      expect(resumed.map((line) => line.eventId)).toEqual(events.slice(1).map((event) => event.id));
      const none = ndjson(
        (await get(`/replay?prefix=${callStreamName(callId)}&after=${calls[2]!.position}`)).body,
      );
      expect(none).toEqual([]);
      const quarantine = ndjson((await get('/replay?prefix=quarantine-2026-03-02')).body);
      expect(quarantine.map((line) => line.receivedAt)).toEqual(quarantineTimes.slice(2));
      const window = ndjson(
        (await get('/replay?from=2026-03-01T10:00:01.000Z&to=2026-03-01T10:10:00.000Z')).body,
      );
      // Reception time selects; the store's order is kept.
      expect(window.map((line) => line.eventId)).toEqual([events[0]!.id, events[1]!.id, otherEvent.id]);
    });

    it('pages through the store without losing or repeating an event', async () => {
      const small = await collect(
        readArchive(stores.eventStore, { streamPrefixes: ['call-', 'quarantine-'] }, { pageSize: 2 }),
      );
      const large = await collect(
        readArchive(stores.eventStore, { streamPrefixes: ['call-', 'quarantine-'] }, { pageSize: 1000 }),
      );
      expect(small.map((event) => event.id)).toEqual(large.map((event) => event.id));
      expect(small).toHaveLength(events.length + 1 + quarantineRaw.length);
    });

    it.each([
      ['?prefix=other-', 'querystring/prefix'],
      ['?prefix=call', 'querystring/prefix'],
      ['?prefix=%24all', 'querystring/prefix'],
      ['?prefix=call-%2F..', 'querystring/prefix'],
      ['?after=12', 'querystring/after'],
      ['?after=1/2/3', 'querystring/after'],
      ['?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z', 'querystring/from'],
      ['?to=noon', 'querystring/to'],
    ])('%s is a 400 naming %s', async (query, field) => {
      const response = await get(`/replay${query}`);
      expect(response.statusCode).toBe(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json<{ errors: { field: string }[] }>().errors.map((error) => error.field)).toContain(
        field,
      );
    });
  });
});
