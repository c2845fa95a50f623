/**
 * `GET /live` on a real port over real stores, on each kind of event store: events as they are
 * stored, filters, resuming with `Last-Event-ID` without gaps or duplicates, authentication, a
 * client that stops reading being dropped with a message instead of growing the server's memory,
 * and no stream promised while the store cannot say where it starts.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import { parsePosition, type ProposedEvent } from '../../src/event-store/event-store.ts';
import { buildTestApp, testConfig, type TestApp } from '../support/app.ts';
import { newCallId, proposedCallEvent, statusUpdate, toolCalls } from '../support/call-events.ts';
import { apiToken, appendAll, eventStoreKinds, openAuditStores, type AuditStores } from '../audit/support.ts';
import { connectSse, type SseConnection, type SseMessage } from './sse-client.ts';

const bearer = { authorization: `Bearer ${apiToken}` };

const events = (messages: readonly SseMessage[]): ({ id: string | undefined } & Record<string, unknown>)[] =>
  messages
    .filter((message) => message.event === 'message')
    .map((message) => ({ id: message.id, ...(JSON.parse(message.data) as Record<string, unknown>) }));

describe.each(eventStoreKinds)('on the %s event store', (kind) => {
  let stores: AuditStores;
  let harness: TestApp;
  let base: string;
  const open: SseConnection[] = [];

  const clientBufferBytes = 16_384;

  const connect = async (query = '', headers: Record<string, string> = bearer) => {
    const connection = await connectSse(`${base}/live${query}`, headers);
    open.push(connection);
    return connection;
  };

  const append = async (spec: Parameters<typeof proposedCallEvent>[0]) =>
    appendAll(stores.eventStore, callStreamName(spec.callId), [proposedCallEvent(spec)]);

  const connectedClients = async () => {
    const text = await harness.metrics.registry.getSingleMetricAsString('calltrail_live_clients');
    return Number(/calltrail_live_clients (\d+)/.exec(text)?.[1]);
  };

  /** Polls a condition with a bound, for server-side state no message announces. */
  const eventually = async (condition: () => Promise<boolean>, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  beforeAll(async () => {
    stores = await openAuditStores(kind);
    harness = await buildTestApp({
      eventStore: stores.eventStore,
      database: stores.database,
      config: { ...testConfig(), live: { maxClients: 4, clientBufferBytes } },
    });
    await harness.app.listen({ host: '127.0.0.1', port: 0 });
    const address = harness.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening');
    base = `http://127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    for (const connection of open) connection.close();
    await harness?.app.close();
    await stores?.close();
  });

  describe('GET /live', () => {
    it('needs an API token', async () => {
      const missing = await connect('', {});
      expect(missing.status).toBe(401);
      const wrong = await connect('', { authorization: 'Bearer not-a-token-of-this-server' });
      expect(wrong.status).toBe(403);
    });

    it.each([
      ['?type=status-update,bogus', {}, 'querystring/type'],
      ['?assistant=', {}, 'querystring/assistant'],
      ['?since=1', {}, 'querystring/since'],
      ['', { 'last-event-id': '12' }, 'headers/last-event-id'],
    ])('%s %o is a 400 naming %s', async (query, headers, field) => {
      const connection = await connect(query, { ...bearer, ...headers });
      expect(connection.status).toBe(400);
      await connection.until((_messages) => connection.ended);
      const problem = JSON.parse(connection.body()) as { errors: { field: string }[] };
      expect(problem.errors.map((error) => error.field)).toContain(field);
    });

    it('streams events as they are stored, with their position as id, filtered by type and assistant', async () => {
      const all = await connect();
      const filtered = await connect('?type=status-update&assistant=%2B4930111111');
      expect(all.status).toBe(200);
      expect(all.headers['content-type']).toMatch(/^text\/event-stream/);
      expect(all.headers['transfer-encoding']).toBe('chunked');
      await eventually(async () => (await connectedClients()) === 2);
      const callId = newCallId('live');
      await append(
        statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z', { assistant: '+4930111111' }),
      );
      await append(toolCalls(callId, '2026-03-01T10:00:01.000Z', { assistant: '+4930111111' }));
      await append(statusUpdate(callId, 'ended', '2026-03-01T10:00:02.000Z', { assistant: '+4930999999' }));
      await append(statusUpdate(callId, 'ended', '2026-03-01T10:00:03.000Z', { assistant: '+4930111111' }));
      await all.until((messages) => events(messages).length >= 4);
      const received = events(all.messages);
      expect(received.map((event) => [event['callId'], event['eventType']])).toEqual([
        [callId, 'status-update'],
        [callId, 'tool-calls'],
        [callId, 'status-update'],
        [callId, 'status-update'],
      ]);
      for (const event of received) {
        expect(event.id).toBe(event['position']);
        expect(parsePosition(event.id!)).toBeDefined();
        expect(event['stream']).toBe(callStreamName(callId));
        expect(typeof event['rawBody']).toBe('string');
      }
      await filtered.until((messages) => events(messages).length >= 2);
      expect(events(filtered.messages).map((event) => event.id)).toEqual([received[0]!.id, received[3]!.id]);
      all.close();
      filtered.close();
    });

    it('streams to an HTTP/1.0 client too: the same messages, without chunk framing', async () => {
      const { port } = new URL(base);
      const socket = net.connect(Number(port), '127.0.0.1');
      let received = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (received += chunk));
      socket.write(`GET /live HTTP/1.0\r\nAuthorization: Bearer ${apiToken}\r\n\r\n`);
      try {
        await eventually(async () => received.includes(': connected'));
        const callId = newCallId('http10');
        await append(statusUpdate(callId, 'in-progress', '2026-03-01T11:00:00.000Z'));
        await eventually(async () => received.includes(callId));
        const [head = '', body = ''] = received.split('\r\n\r\n');
        expect(head).toMatch(/^HTTP\/1\.[01] 200/);
        expect(head.toLowerCase()).not.toContain('transfer-encoding');
        expect(body).toMatch(/^retry: 2000\n: connected\n\nid: \d+\/\d+\ndata: \{/);
        expect(JSON.parse(/\ndata: (.+)\n\n/.exec(body)![1]!)).toMatchObject({ callId });
      } finally {
        socket.destroy();
      }
    });

    it('resumes after Last-Event-ID: missed events first, then live ones, none twice', async () => {
      const first = await connect();
      await eventually(async () => (await connectedClients()) >= 1);
      const callId = newCallId('resume');
      for (let second = 0; second < 3; second += 1) {
        await append(statusUpdate(callId, 'in-progress', `2026-03-01T11:00:0${second}.000Z`));
      }
      await first.until(
        (messages) => events(messages).filter((event) => event['callId'] === callId).length === 3,
      );
      const seen = events(first.messages).filter((event) => event['callId'] === callId);
      first.close();
      // Missed while disconnected: several pages' worth would be the same path; a few suffice here.
      for (let second = 3; second < 7; second += 1) {
        await append(statusUpdate(callId, 'in-progress', `2026-03-01T11:00:0${second}.000Z`));
      }
      const resumed = await connect('', { ...bearer, 'last-event-id': seen[0]!.id! });
      await resumed.until(
        (messages) => events(messages).filter((event) => event['callId'] === callId).length >= 6,
      );
      await append(statusUpdate(callId, 'ended', '2026-03-01T11:00:09.000Z'));
      await resumed.until(
        (messages) => events(messages).filter((event) => event['callId'] === callId).length >= 7,
      );
      const after = events(resumed.messages).filter((event) => event['callId'] === callId);
      const ids = after.map((event) => event.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.slice(0, 2)).toEqual([seen[1]!.id, seen[2]!.id]);
      expect(after.at(-1)!['eventType']).toBe('status-update');
      expect((after.at(-1)!['data'] as { status: string }).status).toBe('ended');
      resumed.close();
    });

    it('drops a client that stops reading, with a message, and keeps serving the others', async () => {
      await eventually(async () => (await connectedClients()) === 0);
      const slow = await connect();
      const steady = await connect();
      await eventually(async () => (await connectedClients()) === 2);
      slow.pause();
      const callId = newCallId('slow');
      const large = (revision: number): ProposedEvent => {
        const event = proposedCallEvent(
          statusUpdate(callId, 'in-progress', `2026-03-01T12:00:00.${String(revision).padStart(3, '0')}Z`),
        );
        return { ...event, data: { ...(event.data as object), rawBody: 'x'.repeat(32 * 1024) } };
      };
      let appended = 0;
      // Appends until the server gives up on the slow client; the kernel's socket buffers take some
      // megabytes first. Bounded: far more than any socket buffer holds.
      while ((await connectedClients()) === 2) {
        if (appended >= 2_000) throw new Error('the slow client was never dropped');
        await appendAll(stores.eventStore, callStreamName(callId), [large(appended)]);
        appended += 1;
        await steady.until(
          (messages) => events(messages).filter((e) => e['callId'] === callId).length >= appended,
        );
      }
      slow.resume();
      await slow.until(() => slow.ended, 20_000);
      const last = slow.messages.at(-1)!;
      expect(last.event).toBe('dropped');
      expect(JSON.parse(last.data)).toMatchObject({ reason: 'slow' });
      expect(events(slow.messages).length).toBeLessThan(appended);
      const dropped = await harness.metrics.registry.getSingleMetricAsString(
        'calltrail_live_clients_dropped_total',
      );
      expect(dropped).toMatch(/calltrail_live_clients_dropped_total 1$/m);
      // The steady client still receives everything.
      await append(statusUpdate(callId, 'ended', '2026-03-01T12:00:01.000Z'));
      await steady.until(
        (messages) => events(messages).filter((e) => e['callId'] === callId).length === appended + 1,
      );
      expect(steady.ended).toBe(false);
      steady.close();
    });

    it('sends a client every event stored after its answer began, also when it is the first to connect', async () => {
      // The first client starts the feed's subscription; an event stored the moment the client has
      // its answer must reach it, however long the subscription takes to start.
      for (let round = 0; round < 5; round += 1) {
        await eventually(async () => (await connectedClients()) === 0);
        const client = await connect();
        expect(client.status).toBe(200);
        const callId = newCallId('first');
        await append(statusUpdate(callId, 'in-progress', '2026-03-01T13:00:00.000Z'));
        await client.until(
          (messages) => events(messages).some((event) => event['callId'] === callId),
          10_000,
        );
        client.close();
      }
    });

    it('refuses clients beyond the limit with a 503', async () => {
      await eventually(async () => (await connectedClients()) === 0);
      const connections = await Promise.all([connect(), connect(), connect(), connect()]);
      expect(connections.map((connection) => connection.status)).toEqual([200, 200, 200, 200]);
      const refused = await connect();
      expect(refused.status).toBe(503);
      for (const connection of connections) connection.close();
    });
  });
});

describe('GET /live while EventStoreDB is away', () => {
  let stores: AuditStores;
  let harness: TestApp;
  let base: string;

  beforeAll(async () => {
    stores = await openAuditStores('eventstoredb');
    harness = await buildTestApp({ eventStore: stores.eventStore, database: stores.database });
    await harness.app.listen({ host: '127.0.0.1', port: 0 });
    const address = harness.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening');
    base = `http://127.0.0.1:${address.port}`;
  });

  afterAll(async () => {
    await stores?.eventStoreServer?.comeBack().catch(() => {});
    await harness?.app.close();
    await stores?.close();
  });

  it('answers 503 rather than a stream that would miss what is stored once the store is back', async () => {
    const server = stores.eventStoreServer!;
    const callId = newCallId('away');
    await appendAll(stores.eventStore, callStreamName(callId), [
      proposedCallEvent(statusUpdate(callId, 'in-progress', '2026-03-01T14:00:00.000Z')),
    ]);
    await server.goDown();
    const refused = await connectSse(`${base}/live`, bearer);
    refused.close();
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBeDefined();
    await server.comeBack();
    // Back: a new client gets everything stored after its answer began.
    let client: SseConnection | undefined;
    const deadline = Date.now() + 15_000;
    while (client?.status !== 200) {
      client?.close();
      if (Date.now() > deadline) throw new Error('GET /live never answered 200 again');
      client = await connectSse(`${base}/live`, bearer);
    }
    try {
      await appendAll(stores.eventStore, callStreamName(callId), [
        proposedCallEvent(statusUpdate(callId, 'ended', '2026-03-01T14:00:01.000Z')),
      ]);
      await client.until((messages) => events(messages).some((event) => event['callId'] === callId), 10_000);
      expect(events(client.messages).map((event) => (event['data'] as { status: string }).status)).toEqual([
        'ended',
      ]);
    } finally {
      client.close();
    }
  });
});
