/**
 * No credential in any log line, whatever the route shape: the real pino output of the real app,
 * captured at the most verbose level, for every method, path shape, query string and header a
 * credential may arrive in.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/database/database.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { createLogger } from '../../src/logger.ts';
import {
  buildTestApp,
  signatureHeaders,
  testApiToken,
  testWebhookSecret,
  testWebhookToken,
  type TestApp,
} from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const wrongToken = 'wrong-token-but-maybe-a-rotated-one-0001';
const cookie = 'session-cookie-value-0123456789abcdef';

describe('request logs', () => {
  let testDatabase: TestDatabase;
  let eventStore: EventStore;
  let database: Database;
  let test: TestApp;
  const lines: string[] = [];

  beforeAll(async () => {
    testDatabase = await createTestDatabase('request_log');
    eventStore = await openPostgresEventStore(testDatabase.url, { timeoutMs: 2_000 });
    database = openDatabase(testDatabase.url, { max: 2 });
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    test = await buildTestApp({
      eventStore,
      database,
      logger: createLogger({ level: 'trace', destination }),
    });
  });

  afterAll(async () => {
    await test?.app.close();
    await eventStore?.close();
    await database?.close();
    await testDatabase?.drop();
  });

  const body = JSON.stringify({
    eventTimestamp: 1756368117035,
    eventType: 'status-update',
    callSession: 'log-test-call',
    status: 'in-progress',
  });

  const shapes = (token: string): string[] => [
    `/webhooks/flireo/${token}`,
    `/webhooks/flireo/${token}/`,
    `/webhooks/flireo/${token}?x=1`,
    `/webhooks/flireo/${token}?token=${token}`,
    `/webhooks/flireo/${encodeURIComponent(token).replace(/-/g, '%2D')}`,
    `/webhooks/flireo/%${token}`,
    `/webhooks//flireo/${token}`,
    `/WEBHOOKS/Flireo/${token}`,
    `/webhooks/flireo/${token}/extra`,
    `/webhook/flireo/${token}`,
    `/${token}`,
    `/calls/${token}/unknown`,
    `/webhooks/flireo?token=${token}`,
    `/calls?access_token=${token}&limit=5`,
    `/calls?${token}`,
    `/docs/${token}`,
  ];

  it('never logs a token, secret or cookie, whatever the method, path, query or header', async () => {
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'] as const;
    for (const token of [testWebhookToken, wrongToken, testApiToken, testWebhookSecret]) {
      for (const url of shapes(token)) {
        for (const method of methods) {
          await test.app.inject({
            method,
            url,
            ...(method === 'GET' || method === 'HEAD' ? {} : { payload: body }),
            headers: {
              'content-type': 'application/json',
              authorization: `Bearer ${token}`,
              'x-webhook-token': token,
              cookie: `session=${cookie}; token=${token}`,
            },
          });
        }
      }
    }
    await test.app.inject({
      method: 'POST',
      url: '/webhooks/flireo',
      payload: body,
      headers: { 'content-type': 'application/json', ...signatureHeaders(body, { at: test.clock.now() }) },
    });
    await test.app.inject({
      method: 'GET',
      url: '/calls',
      headers: { authorization: `Bearer ${testApiToken}` },
    });

    const log = lines.join('');
    // The lines are there: requests were logged, with the routes they came in on.
    expect(log).toContain('incoming request');
    expect(log).toContain('/webhooks/flireo/[redacted]');
    expect(log).toContain('"url":"/calls?access_token=[redacted]&limit=5"');
    for (const secret of [testWebhookToken, wrongToken, testApiToken, testWebhookSecret, cookie]) {
      expect(log).not.toContain(secret);
      expect(log).not.toContain(encodeURIComponent(secret));
      expect(log.toLowerCase()).not.toContain(secret.toLowerCase());
    }
  });

  it('still logs the path of an ordinary request', async () => {
    await test.app.inject({
      method: 'GET',
      url: '/calls/some-call/events',
      headers: { authorization: `Bearer ${testApiToken}` },
    });
    await test.app.inject({ method: 'GET', url: '/no/such/route' });
    const log = lines.join('');
    expect(log).toContain('"url":"/calls/some-call/events"');
    expect(log).toContain('"url":"/no/such/route"');
  });
});
