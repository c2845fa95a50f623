/**
 * When a store cannot be reached, the audit API says so with a 503 and `Retry-After` (never a 500
 * or an empty answer), and answers again once the store is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/database/database.ts';
import { freePort } from '../../src/database/embedded-postgres.ts';
import { buildTestApp, testConfig, type TestApp } from '../support/app.ts';
import { apiToken, bearer, openAuditStores, startAuditApp, type AuditStores } from './support.ts';

const expectUnavailable = (response: {
  statusCode: number;
  headers: Record<string, unknown>;
  body: string;
}) => {
  expect(response.statusCode).toBe(503);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(Number(response.headers['retry-after'])).toBeGreaterThan(0);
  expect(response.body).not.toMatch(/ECONNREFUSED|stack|at /);
};

describe('read-model database out of reach', () => {
  let stores: AuditStores;
  let harness: TestApp;
  let unreachable: ReturnType<typeof openDatabase>;

  beforeAll(async () => {
    stores = await openAuditStores('postgres');
    unreachable = openDatabase(`postgres://postgres:none@127.0.0.1:${await freePort()}/nothing`);
    harness = await buildTestApp({
      eventStore: stores.eventStore,
      database: unreachable,
      config: testConfig({ apiTokens: [apiToken] }),
    });
  });

  afterAll(async () => {
    await harness?.app.close();
    await unreachable?.close();
    await stores?.close();
  });

  it.each(['/calls', '/calls/some-call', '/exports/terminations.csv', '/quarantine'])(
    'GET %s: 503',
    async (url) => {
      expectUnavailable(await harness.app.inject({ method: 'GET', url, headers: bearer() }));
    },
  );
});

describe('event store out of reach', () => {
  let stores: AuditStores;
  let harness: TestApp;

  beforeAll(async () => {
    stores = await openAuditStores('eventstoredb');
    harness = await startAuditApp(stores);
    await stores.eventStoreServer!.goDown();
  });

  afterAll(async () => {
    await harness?.app.close();
    await stores?.close();
  });

  it.each(['/calls/some-call/events', '/calls/some-call?asOf=2026-03-01T00:00:00Z', '/replay'])(
    'GET %s: 503 within the bound',
    async (url) => {
      const started = performance.now();
      expectUnavailable(await harness.app.inject({ method: 'GET', url, headers: bearer() }));
      expect(performance.now() - started).toBeLessThan(10_000);
    },
  );

  it('answers again once the store is back', async () => {
    await stores.eventStoreServer!.comeBack();
    await expect
      .poll(
        async () =>
          (await harness.app.inject({ method: 'GET', url: '/replay', headers: bearer() })).statusCode,
        {
          timeout: 15_000,
          interval: 250,
        },
      )
      .toBe(200);
  });
});
