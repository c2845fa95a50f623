/**
 * Roles on every route, on a real server: the table below says, for every route the app registers,
 * which roles may call it. The registered routes must be exactly the table's (so a new route fails
 * here until someone decides who may call it), and each route is called over HTTP with a token of
 * each role: allowed roles get past authorization, the others get a 403 naming the missing scope and
 * their role. Console pages are checked through the session cookie. Also: the token's name (never
 * the token) in the request log and in the metrics.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiToken, Role } from '../../src/access/api-tokens.ts';
import { tokenHash } from '../../src/access/api-tokens.ts';
import { createLogger } from '../../src/logger.ts';
import { buildTestApp, testConfig, type TestApp } from '../support/app.ts';
import { openAuditStores, type AuditStores } from '../audit/support.ts';

const tokens: Record<Role, string> = {
  auditor: 'auditor-token-0123456789abcdef',
  operator: 'operator-token-0123456789abcdef',
  admin: 'admin-token-0123456789abcdef',
};
const names: Record<Role, string> = { auditor: 'alice', operator: 'ops-bot', admin: 'root-admin' };
const configured: ApiToken[] = (Object.keys(tokens) as Role[]).map((role) => ({
  name: names[role],
  role,
  sha256: tokenHash(tokens[role]),
}));

type Who = 'public' | readonly Role[];
const everyone: Who = ['auditor', 'operator', 'admin'];
const operators: Who = ['operator', 'admin'];
const admins: Who = ['admin'];

/** Every route and who may call it. HEAD follows GET. */
const expected: Readonly<Record<string, Who>> = {
  'POST /webhooks/flireo': 'public',
  'POST /webhooks/flireo/:token': 'public',
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /metrics': operators,
  'GET /calls': everyone,
  'GET /calls/:callId': everyone,
  'GET /calls/:callId/events': everyone,
  'GET /calls/:callId/proof': everyone,
  'GET /quarantine': everyone,
  'GET /assistant-requests/relay-exchanges': everyone,
  'GET /health': everyone,
  'GET /live': everyone,
  'GET /exports/terminations.csv': everyone,
  'GET /replay': operators,
  'GET /access-log': admins,
  'GET /deliveries': everyone,
  'GET /deliveries/:id': everyone,
  'GET /destinations': everyone,
  'POST /deliveries/:id/retry': operators,
  'POST /destinations/:name/retry-failed': operators,
  'POST /destinations/:name/pause': operators,
  'POST /destinations/:name/resume': operators,
  'GET /console': 'public',
  'GET /console/assets/:name': 'public',
  'GET /console/sign-in': 'public',
  'POST /console/sign-in': 'public',
  'POST /console/sign-out': 'public',
  'GET /console/calls': everyone,
  'GET /console/calls/:callId': everyone,
  'GET /console/calls/:callId/events.jsonl': everyone,
  'GET /console/calls/:callId/row': everyone,
  'GET /console/quarantine': everyone,
  'GET /console/quarantine/:commit/:prepare': everyone,
  'GET /console/projections': everyone,
  'GET /console/health': everyone,
  'GET /console/live': everyone,
  'GET /console/access-log': admins,
};

/** A concrete path for a route pattern. */
const pathOf = (pattern: string): string =>
  pattern
    .replace(':callId', 'role-test-call')
    .replace(':id', '1')
    .replace(':name', 'nowhere')
    .replace(':token', 'not-the-webhook-token-0123456789')
    .replace(':commit', '0')
    .replace(':prepare', '0')
    .replace(':name', 'console.css')
    .replace('*', 'index.html');

const queryOf: Record<string, string> = {
  'GET /console/calls/:callId/row': '?position=0/0',
};

let stores: AuditStores;
let harness: TestApp;
let baseUrl: string;
const logLines: string[] = [];

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  harness = await buildTestApp({
    eventStore: stores.eventStore,
    database: stores.database,
    config: testConfig({ apiTokens: configured }),
    logger: createLogger({ level: 'info', destination }),
  });
  baseUrl = await harness.app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await harness?.app.close();
  await stores?.close();
});

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly location: string | null;
  readonly body: string;
}

/** One request over HTTP; a streamed answer (`/live`) is cut once its head has arrived. */
const call = async (method: string, path: string, headers: Record<string, string>): Promise<Answer> => {
  const abort = new AbortController();
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { ...headers, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
    ...(method === 'POST' ? { body: '{}' } : {}),
    redirect: 'manual',
    signal: abort.signal,
  });
  const contentType = response.headers.get('content-type') ?? '';
  let body = '';
  if (contentType.startsWith('text/event-stream')) abort.abort();
  else body = await response.text();
  return { status: response.status, contentType, location: response.headers.get('location'), body };
};

const credentialsFor = (key: string, role: Role): Record<string, string> =>
  key.includes(' /console')
    ? { cookie: `calltrail_session=${tokens[role]}` }
    : { authorization: `Bearer ${tokens[role]}` };

describe('the route table', () => {
  it('covers exactly the routes the app registers, HEAD following GET', () => {
    const registered = harness.app.accessControl.routes;
    const keys = new Set(
      registered
        .filter((route) => route.method !== 'HEAD' && !route.url.startsWith('/docs'))
        .map((route) => `${route.method} ${route.url}`),
    );
    expect([...keys].sort()).toEqual(Object.keys(expected).sort());
    for (const route of registered.filter((r) => r.method === 'HEAD')) {
      const get = registered.find((r) => r.method === 'GET' && r.url === route.url);
      if (get === undefined) expect(route.url).toMatch(/^\/docs/);
      else expect(route.access, route.url).toBe(get.access);
    }
    // The documentation is public, whatever its plugin registers.
    const docs = registered.filter((route) => route.url.startsWith('/docs'));
    expect(docs.length).toBeGreaterThan(0);
    for (const route of docs) expect(route.access.scope, route.url).toBe('public');
  });
});

describe.each(Object.entries(expected))('%s', (key, who) => {
  const [method = '', pattern = ''] = key.split(' ');
  const path = `${pathOf(pattern)}${queryOf[key] ?? ''}`;
  const isConsole = pattern.startsWith('/console');

  it.each(['auditor', 'operator', 'admin'] as const)('as %s', async (role) => {
    const answer = await call(method, path, credentialsFor(key, role));
    const allowed = who === 'public' || who.includes(role);
    if (allowed) {
      // Past authorization: whatever the route makes of the request, not a refusal of the token.
      expect(answer.status === 403 && answer.body.includes('scope'), answer.body).toBe(false);
      // A public route may refuse by its own rules (the webhook checks its own secret).
      if (who !== 'public') expect(answer.status, answer.body).not.toBe(401);
      if (isConsole && who !== 'public') expect(answer.location ?? '').not.toContain('/console/sign-in');
    } else {
      expect(answer.status, answer.body).toBe(403);
      // A console page answers with the console's own page, saying the same.
      expect(answer.contentType).toMatch(isConsole ? /^text\/html/ : /^application\/problem\+json/);
      const detail = isConsole ? answer.body : (JSON.parse(answer.body) as { detail: string }).detail;
      expect(detail).toContain(`the role ${role} of the token ${names[role]}`);
      expect(detail).toMatch(/needs the scope [a-z-]+:[a-z]+/);
      expect(answer.body).not.toContain(tokens[role]);
    }
  });

  if (who !== 'public') {
    it('without a token: refused (a console page sends to sign-in)', async () => {
      const answer = await call(method, path, {});
      if (isConsole) {
        expect(answer.status).toBe(303);
        expect(answer.location).toContain('/console/sign-in');
      } else {
        expect(answer.status).toBe(401);
      }
    });
  }
});

describe('the console', () => {
  it('offers Export CSV only to a role that may export', async () => {
    const page = await call('GET', '/console/calls', credentialsFor(' /console', 'auditor'));
    expect(page.status).toBe(200);
    expect(page.body).toContain('Export CSV');
  });

  it('refuses a sign-in with an unknown token and accepts each role', async () => {
    for (const role of ['auditor', 'operator', 'admin'] as const) {
      const answer = await call('GET', '/console/calls', credentialsFor(' /console', role));
      expect(answer.status, role).toBe(200);
    }
    const unknown = await call('GET', '/console/calls', {
      cookie: 'calltrail_session=unknown-0123456789abcdef',
    });
    expect(unknown.status).toBe(303);
  });
});

describe('who called', () => {
  it('records a /live stream in the access log once its client goes away', async () => {
    await call('GET', '/live', credentialsFor('GET /live', 'auditor'));
    const deadline = Date.now() + 15_000;
    for (;;) {
      const routes: string[] = [];
      for await (const event of stores.eventStore.readAll({ streamPrefixes: ['access-'] })) {
        const data = event.data as { route: string; token: string };
        if (data.token === 'alice') routes.push(data.route);
      }
      if (routes.includes('/live')) break;
      if (Date.now() > deadline) throw new Error('no access event for /live');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  });

  it('names the token in the request log and the metrics, never the token', async () => {
    await call('GET', '/replay', credentialsFor('GET /replay', 'auditor'));
    await call('GET', '/calls', credentialsFor('GET /calls', 'auditor'));
    await call('GET', '/calls', { authorization: 'Bearer unknown-token-0123456789abcdef' });
    const metrics = await call('GET', '/metrics', credentialsFor('GET /metrics', 'operator'));
    expect(metrics.body).toMatch(/calltrail_api_requests_total\{token="alice",outcome="forbidden"\} [1-9]/);
    expect(metrics.body).toMatch(/calltrail_api_requests_total\{token="alice",outcome="allowed"\} [1-9]/);
    expect(metrics.body).toMatch(
      /calltrail_api_requests_total\{token="unknown",outcome="unknown-token"\} [1-9]/,
    );
    const completed = logLines
      .map((line) => JSON.parse(line) as { msg?: string; token?: string; res?: { statusCode: number } })
      .filter((line) => line.msg === 'request completed' && line.token === 'alice');
    expect(completed.map((line) => line.res?.statusCode)).toEqual(expect.arrayContaining([200, 403]));
    const all = logLines.join('');
    for (const token of Object.values(tokens)) expect(all).not.toContain(token);
  });
});
