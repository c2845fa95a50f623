/**
 * The console's Access log page over real stores: what `GET /access-log` reads, for an admin, with
 * its filters in the URL and keyset paging; a query that carried markup shown as text; a bad filter
 * named on the page; other roles refused and not shown the link.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiToken, Role } from '../../src/access/api-tokens.ts';
import { tokenHash } from '../../src/access/api-tokens.ts';
import { accessStreamPrefix } from '../../src/archive/streams.ts';
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
const hostile = '<img src=x onerror="alert(1)"><script>alert(2)</script>';

let stores: AuditStores;
let harness: TestApp;
/** Request ids of alice's two requests, in the order she made them. */
let aliceRequests: string[];

const page = (url: string, role: Role = 'admin') =>
  harness.app.inject({ method: 'GET', url, headers: { cookie: `calltrail_session=${tokens[role]}` } });

const requestIdsOn = (body: string): string[] =>
  [...body.matchAll(/<tr data-request-id="([^"]+)"/g)].map((match) => match[1]!);

const nextHref = (body: string): string | undefined =>
  /<a\s+rel="next"\s+href="([^"]+)"/.exec(body)?.[1]?.replaceAll('&amp;', '&');

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await buildTestApp({
    eventStore: stores.eventStore,
    database: stores.database,
    config: testConfig({ apiTokens: configured }),
  });
  const auditor = { authorization: `Bearer ${tokens.auditor}` };
  const first = await harness.app.inject({
    method: 'GET',
    url: `/calls?caller=${encodeURIComponent(hostile)}`,
    headers: auditor,
  });
  const second = await harness.app.inject({
    method: 'GET',
    url: '/calls/no-such-call/events',
    headers: auditor,
  });
  aliceRequests = [first.headers['x-request-id'] as string, second.headers['x-request-id'] as string];
  // The access log is written off the request path: wait until both entries are stored (bounded).
  const deadline = Date.now() + 15_000;
  for (;;) {
    let stored = 0;
    for await (const event of stores.eventStore.readAll({ streamPrefixes: [accessStreamPrefix] }))
      if ((event.data as { token?: string }).token === 'alice') stored += 1;
    if (stored >= 2) break;
    if (Date.now() > deadline) throw new Error('alice’s requests never reached the access log');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
});

afterAll(async () => {
  await harness?.app.close();
  await stores?.close();
});

describe('the Access log page', () => {
  it('lists what the API lists, oldest first, with the filters in the URL', async () => {
    const response = await page('/console/access-log?token=alice');
    expect(response.statusCode).toBe(200);
    expect(response.body).toMatch(/href="\/console\/access-log"\s+aria-current="page"/);
    expect(requestIdsOn(response.body)).toEqual(aliceRequests);
    const api = await harness.app.inject({
      method: 'GET',
      url: '/access-log?token=alice',
      headers: { authorization: `Bearer ${tokens.admin}` },
    });
    expect(api.json<{ entries: { requestId: string }[] }>().entries.map((entry) => entry.requestId)).toEqual(
      aliceRequests,
    );
    expect(response.body).toContain('/calls/no-such-call/events');
    expect(response.body).toContain('/calls/:callId/events');
    expect(response.body).toContain('value="alice"');

    const byRoute = await page(`/console/access-log?token=alice&route=${encodeURIComponent('/calls')}`);
    expect(requestIdsOn(byRoute.body)).toEqual([aliceRequests[0]]);
  });

  it('shows a query that carried markup as text', async () => {
    const response = await page('/console/access-log?token=alice&route=%2Fcalls');
    expect(response.body).toContain(
      '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;',
    );
    expect(response.body).not.toContain('<img src=x');
    expect(response.body).not.toContain('<script>alert');
  });

  it('pages by keyset: each entry once, in order', async () => {
    const first = await page('/console/access-log?token=alice&limit=1');
    expect(requestIdsOn(first.body)).toEqual([aliceRequests[0]]);
    const next = nextHref(first.body);
    expect(next).toMatch(/^\/console\/access-log\?token=alice&limit=1&cursor=/);
    const second = await page(next!);
    expect(requestIdsOn(second.body)).toEqual([aliceRequests[1]]);
    expect(second.body).toContain('First page');
  });

  it('names a bad filter on the page', async () => {
    const badTime = await page('/console/access-log?from=yesterday');
    expect(badTime.statusCode).toBe(400);
    expect(badTime.body).toMatch(/<strong>from<\/strong>/);
    const reversed = await page('/console/access-log?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z');
    expect(reversed.statusCode).toBe(400);
    expect(reversed.body).toContain('must be before to');
    const unknown = await page('/console/access-log?who=alice');
    expect(unknown.statusCode).toBe(400);
    expect(unknown.body).toContain('is not a filter of this page');
  });

  it('is refused to roles without the access-log scope, whose navigation does not show it', async () => {
    for (const role of ['auditor', 'operator'] as const) {
      const refused = await page('/console/access-log', role);
      expect(refused.statusCode, role).toBe(403);
      expect(refused.headers['content-type']).toMatch(/^text\/html/);
      expect(refused.body).toContain('Not allowed');
      expect(refused.body).toContain('access-log:read');
      expect(refused.body).not.toContain('href="/console/access-log"');
      const calls = await page('/console/calls', role);
      expect(calls.statusCode).toBe(200);
      expect(calls.body).not.toContain('href="/console/access-log"');
    }
    const admin = await page('/console/calls');
    expect(admin.body).toContain('href="/console/access-log"');
  });
});
