/**
 * API authentication on every audit route (no token, a malformed header, an unknown token, each
 * valid token), the public routes that stay open, and the OpenAPI document at `/docs`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, testConfig, type TestApp } from '../support/app.ts';
import { apiToken, openAuditStores, secondApiToken, startAuditApp, type AuditStores } from './support.ts';

const protectedRoutes = [
  '/calls',
  '/calls/some-call',
  '/calls/some-call?asOf=2026-03-01T00:00:00Z',
  '/calls/some-call/events',
  '/calls/some-call/proof',
  '/quarantine',
  '/exports/terminations.csv',
  '/replay',
  '/health',
  '/deliveries',
  '/deliveries/1',
  '/destinations',
  '/assistant-requests/relay-exchanges',
  '/metrics',
];

let stores: AuditStores;
let harness: TestApp;

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await startAuditApp(stores);
});

afterAll(async () => {
  await harness?.app.close();
  await stores?.close();
});

const get = (url: string, headers: Record<string, string> = {}) =>
  harness.app.inject({ method: 'GET', url, headers });

describe.each(protectedRoutes)('GET %s', (url) => {
  it('without a token: 401 problem+json with a Bearer challenge', async () => {
    const response = await get(url);
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.headers['www-authenticate']).toBe('Bearer realm="calltrail"');
    expect(response.json<{ errors: { field: string }[] }>().errors[0]?.field).toBe('authorization');
  });

  it.each(['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer two words', `Token ${apiToken}`, 'Bearer ä'])(
    'with a malformed header (%s): 401 invalid_request',
    async (authorization) => {
      const response = await get(url, { authorization });
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toBe('Bearer realm="calltrail", error="invalid_request"');
    },
  );

  it.each(['wrong-token-0123456789abcdef', `${apiToken}x`, apiToken.slice(0, -1)])(
    'with an unknown token: 403',
    async (token) => {
      const response = await get(url, { authorization: `Bearer ${token}` });
      expect(response.statusCode).toBe(403);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json<{ detail: string }>().detail).not.toContain(apiToken);
    },
  );

  it.each([apiToken, secondApiToken])('with a configured token: past authentication', async (token) => {
    const response = await get(url, { authorization: `bearer  ${token}` });
    expect([200, 404]).toContain(response.statusCode);
  });
});

describe('authentication order', () => {
  it('checks the token before the parameters, so bad parameters tell nothing to strangers', async () => {
    expect((await get('/calls?limit=0')).statusCode).toBe(401);
    expect((await get('/calls?limit=0', { authorization: `Bearer ${apiToken}` })).statusCode).toBe(400);
  });

  it('refuses every token when none is configured', async () => {
    const closed = await buildTestApp({
      eventStore: stores.eventStore,
      database: stores.database,
      config: testConfig({ apiTokens: [] }),
    });
    try {
      const response = await closed.app.inject({
        method: 'GET',
        url: '/calls',
        headers: { authorization: `Bearer ${apiToken}` },
      });
      expect(response.statusCode).toBe(403);
    } finally {
      await closed.app.close();
    }
  });
});

describe('public routes', () => {
  it('serve /healthz, /readyz and the documentation without a token', async () => {
    expect((await get('/healthz')).statusCode).toBe(200);
    expect((await get('/readyz')).statusCode).toBe(200);
    const ui = await get('/docs/');
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
    expect((await get('/docs/json')).statusCode).toBe(200);
  });
});

describe('the OpenAPI document', () => {
  interface Operation {
    security?: Record<string, string[]>[];
    parameters?: { name: string; in: string }[];
    responses: Record<string, { content?: Record<string, unknown> }>;
  }
  let document: {
    openapi: string;
    paths: Record<string, Record<string, Operation>>;
    components: { securitySchemes: Record<string, { type: string; scheme: string }> };
  };

  beforeAll(async () => {
    document = (await get('/docs/json')).json();
  });

  it('declares the bearer scheme and every audit route with it', () => {
    expect(document.openapi).toBe('3.1.0');
    expect(document.components.securitySchemes['bearerAuth']).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
    for (const path of [
      '/calls',
      '/calls/{callId}',
      '/calls/{callId}/events',
      '/calls/{callId}/proof',
      '/quarantine',
      '/exports/terminations.csv',
      '/replay',
      '/health',
      '/deliveries',
      '/destinations',
    ]) {
      const operation = document.paths[path]?.['get'];
      expect(operation, path).toBeDefined();
      expect(operation!.security).toEqual([{ bearerAuth: [] }]);
      for (const status of ['200', '400', '401', '403', '500', '503']) {
        expect(operation!.responses[status], `${path} ${status}`).toBeDefined();
      }
      expect(Object.keys(operation!.responses['401']!.content ?? {})).toEqual(['application/problem+json']);
    }
    expect(document.paths['/calls/{callId}']!['get']!.responses['404']).toBeDefined();
    expect(
      Object.keys(document.paths['/exports/terminations.csv']!['get']!.responses['200']!.content!),
    ).toEqual(['text/csv']);
    expect(Object.keys(document.paths['/replay']!['get']!.responses['200']!.content!)).toEqual([
      'application/x-ndjson',
    ]);
  });

  it('documents the query parameters from the route schemas', () => {
    const names = (path: string) =>
      (document.paths[path]!['get']!.parameters ?? [])
        .filter((p) => p.in === 'query')
        .map((p) => p.name)
        .sort();
    expect(names('/calls')).toEqual([
      'assistant',
      'caller',
      'cursor',
      'debugInfo',
      'from',
      'limit',
      'outcome',
      'status',
      'to',
    ]);
    expect(names('/calls/{callId}')).toEqual(['asOf']);
    expect(names('/exports/terminations.csv')).toEqual(['assistant', 'from', 'outcome', 'to']);
    expect(names('/replay')).toEqual(['after', 'from', 'prefix', 'to']);
    expect(names('/quarantine')).toEqual(['cursor', 'from', 'limit', 'reason', 'to']);
    expect(names('/live')).toEqual(['assistant', 'type']);
    expect(document.paths['/live']!['get']!.security).toEqual([{ bearerAuth: [] }]);
  });
});
