/**
 * The webhook under abuse, over the real HTTP stack and real sockets: slow and stalled clients are
 * closed within their bounds, too many bodies at once are refused rather than queued, an overloaded
 * server answers 503, every authenticated refusal leaves its record, and the sender's address comes
 * through trusted proxies only.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import type { QuarantinedRequest, ReceptionMetadata } from '../../src/archive/archived-event.ts';
import { openDatabase, type Database } from '../../src/database/database.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import {
  buildTestApp,
  createTestClock,
  signatureHeaders,
  testConfig,
  testWebhookToken,
  type TestApp,
  type TestConfigOverrides,
} from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { readStream } from './stores.ts';

const statusUpdate = (callId: string): string =>
  JSON.stringify({
    eventTimestamp: 1756368117035,
    eventType: 'status-update',
    callSession: callId,
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
    status: 'in-progress',
  });

/** Bounded wait for a condition; no fixed sleeps. */
const eventually = async (check: () => Promise<boolean> | boolean, boundMs = 10_000): Promise<void> => {
  const deadline = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

interface Stalled {
  readonly socket: net.Socket;
  /** Everything the server sent, once it closed the connection. */
  readonly closed: Promise<string>;
}

/** A raw connection that sends `head` and then whatever `trickle` sends, and reports the close. */
const connect = (port: number, head: string): Promise<Stalled> =>
  new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const closed = new Promise<string>((resolveClosed) => {
      socket.on('close', () => resolveClosed(Buffer.concat(received).toString()));
    });
    socket.on('error', () => {});
    socket.once('connect', () => {
      if (head !== '') socket.write(head);
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });

describe('the webhook under abuse', () => {
  let testDatabase: TestDatabase;
  let eventStore: EventStore;
  let database: Database;
  const apps: App[] = [];
  let days = 0;

  beforeAll(async () => {
    testDatabase = await createTestDatabase('abuse');
    eventStore = await openPostgresEventStore(testDatabase.url, { timeoutMs: 2_000 });
    database = openDatabase(testDatabase.url, { max: 2 });
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    await eventStore?.close();
    await database?.close();
    await testDatabase?.drop();
  });

  const start = async (overrides: TestConfigOverrides = {}): Promise<TestApp> => {
    days += 1;
    const built = await buildTestApp({
      eventStore,
      database,
      config: testConfig(overrides),
      clock: createTestClock(new Date(Date.UTC(2025, 1, days, 8, 2, 0))),
    });
    apps.push(built.app);
    return built;
  };

  const listening = async (test: TestApp): Promise<number> => {
    await test.app.listen({ host: '127.0.0.1', port: 0 });
    return (test.app.server.address() as net.AddressInfo).port;
  };

  const quarantined = (test: TestApp) =>
    readStream(eventStore, `quarantine-${test.clock.now().toISOString().slice(0, 10)}`);

  describe('slow clients', () => {
    const bounds = {
      http: { headersTimeoutMs: 300, requestTimeoutMs: 600, idleTimeoutMs: 300 },
      webhook: { bodyTimeoutMs: 300 },
    };

    it('closes a connection whose headers never end', async () => {
      const port = await listening(await start(bounds));
      const client = await connect(port, 'POST /webhooks/flireo HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      // One byte at a time, never finishing the headers: the headers timeout still ends it.
      const drip = setInterval(() => client.socket.write('a'), 50);
      try {
        const answer = await client.closed;
        expect(answer === '' || answer.startsWith('HTTP/1.1 408')).toBe(true);
      } finally {
        clearInterval(drip);
      }
    });

    it('answers 408 and closes when a declared body never comes, before any credential is checked', async () => {
      const port = await listening(await start(bounds));
      const client = await connect(
        port,
        'POST /webhooks/flireo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
          'Content-Length: 1000\r\n\r\n{"eventType":',
      );
      const answer = await client.closed;
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      expect(answer).toMatch(/the body did not arrive within 300 ms/);
    });

    it('answers 408 and closes when the body trickles in a byte at a time', async () => {
      const port = await listening(await start(bounds));
      const client = await connect(
        port,
        `POST /webhooks/flireo/${testWebhookToken} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
          'Content-Length: 100000\r\n\r\n',
      );
      const drip = setInterval(() => client.socket.write(' '), 20);
      try {
        expect(await client.closed).toMatch(/^HTTP\/1\.1 408/);
      } finally {
        clearInterval(drip);
      }
    });

    it('closes a kept-alive connection left idle after its request', async () => {
      const test = await start(bounds);
      const port = await listening(test);
      const client = await connect(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await client.closed).toMatch(/^HTTP\/1\.1 200/);
    });

    it('closes a connection that never sends anything', async () => {
      const port = await listening(await start(bounds));
      const client = await connect(port, '');
      expect(await client.closed).toMatch(/^$|^HTTP\/1\.1 408/);
    });

    it('refuses a body beyond the concurrent-read bound at once with 503, and serves again after', async () => {
      const test = await start({ ...bounds, webhook: { bodyTimeoutMs: 2_000, maxConcurrentBodies: 2 } });
      const port = await listening(test);
      const head =
        'POST /webhooks/flireo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Content-Length: 100\r\n\r\n{';
      const holding = [await connect(port, head), await connect(port, head)];
      await eventually(async () => {
        const refused = await connect(port, head);
        const answer = await refused.closed;
        return /^HTTP\/1\.1 503/.test(answer) && /retry-after: 5/i.test(answer);
      });
      for (const client of holding) client.socket.destroy();
      const body = statusUpdate(randomUUID());
      await eventually(async () => {
        const response = await test.app.inject({
          method: 'POST',
          url: '/webhooks/flireo',
          payload: body,
          headers: {
            'content-type': 'application/json',
            ...signatureHeaders(body, { at: test.clock.now() }),
          },
        });
        return response.statusCode === 202;
      });
    });

    it('answers 503 with Retry-After while the event loop is overloaded, and recovers', async () => {
      const test = await start({ http: { maxEventLoopDelayMs: 20 } });
      const healthz = () => test.app.inject({ method: 'GET', url: '/healthz' });
      await eventually(async () => {
        // Hold the event loop, as a flood of work would; the next sample sees the delay.
        const until = Date.now() + 300;
        while (Date.now() < until) {
          // busy
        }
        await new Promise((resolve) => setTimeout(resolve, 1));
        const response = await healthz();
        return response.statusCode === 503 && response.headers['retry-after'] === '5';
      });
      const refused = await healthz();
      if (refused.statusCode === 503) {
        expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      }
      await eventually(async () => (await healthz()).statusCode === 200);
    });
  });

  describe('authenticated refusals', () => {
    it('quarantines a signed request with an empty Content-Type header, like a missing one', async () => {
      const test = await start();
      const port = await listening(test);
      const body = statusUpdate(randomUUID());
      const headers = signatureHeaders(body, { at: test.clock.now() });
      const request = [
        'POST /webhooks/flireo HTTP/1.1',
        'Host: x',
        'Content-Type: ',
        `X-Webhook-Timestamp: ${headers['x-webhook-timestamp']}`,
        `X-Webhook-Signature: ${headers['x-webhook-signature']}`,
        `Content-Length: ${Buffer.byteLength(body)}`,
        'Connection: close',
        '',
        body,
      ].join('\r\n');
      const client = await connect(port, request);
      const answer = await client.closed;
      expect(answer).toMatch(/^HTTP\/1\.1 415/);
      expect(answer).toMatch(/application\/problem\+json/);
      const [record] = await quarantined(test);
      expect(record?.data as QuarantinedRequest).toMatchObject({
        reason: 'unsupported-media-type',
        contentType: '',
        problems: [{ field: 'content-type', message: 'must be application/json' }],
      });
      expect(record?.metadata).toMatchObject({ signatureVerified: true });
    });

    it('quarantines a token-authenticated request whose Content-Type the framework cannot parse', async () => {
      const test = await start();
      const body = statusUpdate(randomUUID());
      for (const contentType of ['json', '/', 'application/json; charset']) {
        const response = await test.app.inject({
          method: 'POST',
          url: `/webhooks/flireo/${testWebhookToken}`,
          payload: body,
          headers: { 'content-type': contentType },
        });
        expect(response.statusCode).toBe(415);
      }
      const records = await quarantined(test);
      expect(records.map((r) => (r.data as QuarantinedRequest).contentType)).toEqual([
        'json',
        '/',
        'application/json; charset',
      ]);
    });

    it('still refuses an unauthenticated request with an empty Content-Type without storing anything', async () => {
      const test = await start();
      const response = await test.app.inject({
        method: 'POST',
        url: '/webhooks/flireo',
        payload: statusUpdate(randomUUID()),
        headers: { 'content-type': '' },
      });
      expect(response.statusCode).toBe(401);
      expect(await quarantined(test)).toEqual([]);
    });
  });

  describe('behind a proxy', () => {
    const deliverFrom = (test: TestApp, remoteAddress: string, forwardedFor: string | undefined) => {
      const callId = randomUUID();
      const body = statusUpdate(callId);
      return test.app
        .inject({
          method: 'POST',
          url: '/webhooks/flireo',
          payload: body,
          remoteAddress,
          headers: {
            'content-type': 'application/json',
            ...signatureHeaders(body, { at: test.clock.now() }),
            ...(forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor }),
          },
        })
        .then(async (response) => {
          expect(response.statusCode).toBe(202);
          const [event] = await readStream(eventStore, `call-${callId}`);
          return (event?.metadata as ReceptionMetadata).sourceAddress;
        });
    };

    it('archives the connecting address when no proxy is trusted, whatever X-Forwarded-For says', async () => {
      const test = await start();
      expect(await deliverFrom(test, '192.0.2.10', '203.0.113.7')).toBe('192.0.2.10');
    });

    it('archives the forwarded sender only through trusted hops', async () => {
      const test = await start({ http: { trustProxy: ['192.0.2.0/24', '10.1.1.1'] } });
      // Through the trusted proxy: the sender it names.
      expect(await deliverFrom(test, '192.0.2.10', '203.0.113.7')).toBe('203.0.113.7');
      // Through two trusted hops: the first untrusted address from the right.
      expect(await deliverFrom(test, '192.0.2.10', '198.51.100.1, 203.0.113.7, 10.1.1.1')).toBe(
        '203.0.113.7',
      );
      // A client naming itself someone else, straight or through the proxy: not believed.
      expect(await deliverFrom(test, '198.51.100.99', '203.0.113.7')).toBe('198.51.100.99');
      // Without the header, the proxy is the sender.
      expect(await deliverFrom(test, '192.0.2.10', undefined)).toBe('192.0.2.10');
    });
  });
});
