/**
 * The console's Quarantine pages over real stores: quarantined requests with their problems, newest
 * first, keyset-paged, filters in the URL (the same as `GET /quarantine` takes), and hostile raw
 * bodies shown as text: markup escaped, direction overrides shown as marks, long bodies cut in the
 * list with a link to the whole body.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarantineStreamName } from '../../src/archive/streams.ts';
import type { TestApp } from '../support/app.ts';
import { proposedQuarantined } from '../support/quarantine-records.ts';
import {
  apiToken,
  appendAll,
  bearer,
  openAuditStores,
  projectQuarantine,
  startAuditApp,
  type AuditStores,
} from '../audit/support.ts';

let stores: AuditStores;
let harness: TestApp;
const cookie = `calltrail_session=${apiToken}`;

const hostile = '<script>document.title="pwned"</script><img src=x onerror=alert(1)> \u202Eevil\u202C';
const longLine = `{"message":"${'A'.repeat(5_000)}END-OF-LONG-LINE"}`;

const get = (url: string, headers: Record<string, string> = { cookie }) =>
  harness.app.inject({ method: 'GET', url, headers });

/** The positions of the rows a list page shows, in order. */
const positionsOn = (body: string): string[] =>
  [...body.matchAll(/<tr data-position="([0-9]+\/[0-9]+)"/g)].map((match) => match[1]!);

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await startAuditApp(stores);
  const receivedAt = '2026-03-01T09:00:00.000Z';
  const stream = quarantineStreamName(new Date(receivedAt));
  await appendAll(stores.eventStore, stream, [
    proposedQuarantined({ raw: Buffer.from(hostile), receivedAt }),
    proposedQuarantined({ raw: Buffer.from(longLine), receivedAt, reason: 'invalid-event' }),
    proposedQuarantined({
      raw: Buffer.from('plain text body'),
      receivedAt,
      reason: 'unsupported-media-type',
      contentType: 'text/plain',
    }),
  ]);
  await projectQuarantine(stores);
});

afterAll(async () => {
  await harness?.app.close();
  await stores?.close();
});

describe('the Quarantine page', () => {
  it('needs a session', async () => {
    const response = await get('/console/quarantine', {});
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe(
      `/console/sign-in?next=${encodeURIComponent('/console/quarantine')}`,
    );
  });

  it('lists the requests newest first, with their reasons and problems, in the navigation', async () => {
    const response = await get('/console/quarantine');
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('href="/console/quarantine"\n');
    expect(response.body).toMatch(/href="\/console\/quarantine"\s+aria-current="page"/);
    expect(response.body).toContain('href="/console/projections"');
    const api = await get('/quarantine', bearer());
    const fromApi = api.json<{ requests: { position: string }[] }>().requests.map((r) => r.position);
    expect(fromApi).toHaveLength(3);
    expect(positionsOn(response.body)).toEqual(fromApi);
    expect(response.body).toContain('unsupported media type');
    expect(response.body).toContain('invalid event');
    expect(response.body).toContain('malformed JSON');
    expect(response.body).toContain('is not valid JSON');
  });

  it('shows hostile bodies as text: no markup, direction overrides as visible marks', async () => {
    const response = await get('/console/quarantine');
    expect(response.body).not.toContain('<script>document');
    expect(response.body).not.toContain('<img src=x');
    expect(response.body).toContain('&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;');
    expect(response.body).not.toContain('\u202E');
    expect(response.body).toContain('U+202E');
  });

  it('cuts a long body in the list, and shows all of it on the request page', async () => {
    const list = await get('/console/quarantine?reason=invalid-event');
    expect(list.body).not.toContain('END-OF-LONG-LINE');
    const link =
      /<a href="(\/console\/quarantine\/[0-9]+\/[0-9]+)"\s*>Show all \(([0-9,]+) more characters\)/.exec(
        list.body,
      );
    expect(link).not.toBeNull();
    expect(Number(link![2]!.replaceAll(',', ''))).toBe(longLine.length - 600);
    const whole = await get(link![1]!);
    expect(whole.statusCode).toBe(200);
    expect(whole.body).toContain(`${'A'.repeat(5_000)}END-OF-LONG-LINE`);
    expect(whole.body).toContain('203.0.113.9');
    expect(whole.headers['content-security-policy']).toContain("script-src 'self'");
  });

  it('pages with a cursor, as the API does', async () => {
    const all = positionsOn((await get('/console/quarantine')).body);
    const first = await get('/console/quarantine?limit=2');
    expect(positionsOn(first.body)).toEqual(all.slice(0, 2));
    const next = /<a\s+rel="next"\s+href="([^"]+)"/.exec(first.body)![1]!.replaceAll('&amp;', '&');
    expect(next).toContain('limit=2');
    const second = await get(next);
    expect(positionsOn(second.body)).toEqual(all.slice(2));
    expect(second.body).not.toMatch(/rel="next"/);
    expect(second.body).toContain('First page');
  });

  it('filters by reason and stored time, in the URL, like GET /quarantine', async () => {
    const page = await get('/console/quarantine?reason=unsupported-media-type');
    expect(positionsOn(page.body)).toHaveLength(1);
    expect(page.body).toContain('text/plain');
    expect(page.body).toMatch(/<option value="unsupported-media-type"\s+selected/);
    const api = await get('/quarantine?reason=unsupported-media-type', bearer());
    expect(api.json<{ requests: unknown[] }>().requests).toHaveLength(1);
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    expect(positionsOn((await get(`/console/quarantine?from=${hourAgo}`)).body)).toHaveLength(3);
    const before = await get(`/console/quarantine?to=${hourAgo}`);
    expect(positionsOn(before.body)).toHaveLength(0);
    expect(before.body).toContain('No quarantined request matches these filters.');
  });

  it('names each bad filter with a 400', async () => {
    const response = await get('/console/quarantine?reason=bogus&from=yesterday&cursor=12&extra=1');
    expect(response.statusCode).toBe(400);
    expect(response.body).toContain('<strong>extra</strong>');
    const fields = await get('/console/quarantine?reason=bogus&from=yesterday&cursor=12');
    expect(fields.statusCode).toBe(400);
    for (const name of ['reason', 'from', 'cursor'])
      expect(fields.body).toContain(`<strong>${name}</strong>`);
    const reversed = await get('/console/quarantine?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z');
    expect(reversed.statusCode).toBe(400);
    expect(reversed.body).toContain('<strong>from</strong>');
  });

  it('answers 404 for a position that holds no quarantined request', async () => {
    expect((await get('/console/quarantine/999999999/999999999')).statusCode).toBe(404);
    expect((await get('/console/quarantine/x/1')).statusCode).toBe(404);
    expect((await get('/console/quarantine/99999999999999999999999/1')).statusCode).toBe(404);
  });
});
