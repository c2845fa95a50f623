/**
 * The console's HTTP rules, without a browser: sign-in and its cookie, what the cookie may and may
 * not do (reads only; forms only from this origin; sign-out needs the session's own token), the
 * Content-Security-Policy, and bad filters answered with a page naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csrfToken } from '../../src/console/session.ts';
import type { TestApp } from '../support/app.ts';
import { apiToken, openAuditStores, startAuditApp, type AuditStores } from '../audit/support.ts';

let stores: AuditStores;
let harness: TestApp;

const origin = 'http://calltrail.test';
const host = 'calltrail.test';
const cookie = `calltrail_session=${apiToken}`;

const signIn = (token: string, headers: Record<string, string> = { origin, host }) =>
  harness.app.inject({
    method: 'POST',
    url: '/console/sign-in',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    payload: new URLSearchParams({ token, next: '/console/calls?status=ended' }).toString(),
  });

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await startAuditApp(stores);
});

afterAll(async () => {
  await harness?.app.close();
  await stores?.close();
});

describe('console sign-in', () => {
  it('sets an HttpOnly, SameSite=Strict session cookie and goes where it was asked', async () => {
    const response = await signIn(apiToken);
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe('/console/calls?status=ended');
    const setCookie = String(response.headers['set-cookie']);
    expect(setCookie).toMatch(/^calltrail_session=/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).not.toMatch(/Max-Age|Expires/);
    expect(setCookie).not.toMatch(/Secure/);
  });

  it('marks the cookie Secure over https', async () => {
    const response = await signIn(apiToken, { origin, host, 'x-forwarded-proto': 'https' });
    expect(response.statusCode).toBe(303);
    const secure = await harness.app.inject({
      method: 'POST',
      url: '/console/sign-in',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'https://calltrail.test',
        host,
      },
      payload: `token=${apiToken}`,
      // inject has no TLS; a console behind https is told by CALLTRAIL_PUBLIC_URL (tested below).
    });
    expect(secure.statusCode).toBe(303);
  });

  it('refuses a token that is not configured, and sets no cookie', async () => {
    const response = await signIn('not-a-token-of-this-server');
    expect(response.statusCode).toBe(403);
    expect(response.headers['set-cookie']).toBeUndefined();
    expect(response.body).toContain('is not valid for this server');
  });

  it('refuses a sign-in form posted from another site', async () => {
    const foreign = await signIn(apiToken, { origin: 'https://evil.example', host });
    expect(foreign.statusCode).toBe(403);
    const crossSite = await signIn(apiToken, { origin, host, 'sec-fetch-site': 'cross-site' });
    expect(crossSite.statusCode).toBe(403);
    expect(foreign.headers['set-cookie']).toBeUndefined();
  });

  it('never sends the user to another site after sign-in', async () => {
    for (const next of ['https://evil.example/', '//evil.example/console/calls', '/webhooks/flireo']) {
      const response = await harness.app.inject({
        method: 'POST',
        url: '/console/sign-in',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin, host },
        payload: new URLSearchParams({ token: apiToken, next }).toString(),
      });
      expect(response.headers.location).toBe('/console/calls');
    }
  });
});

describe('console pages', () => {
  it('redirect to sign-in without a session', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/console/calls?status=ended' });
    expect(response.statusCode).toBe(303);
    expect(response.headers.location).toBe(
      `/console/sign-in?next=${encodeURIComponent('/console/calls?status=ended')}`,
    );
  });

  it('carry a Content-Security-Policy without inline script, and are not cached', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/console/calls', headers: { cookie } });
    expect(response.statusCode).toBe(200);
    const policy = String(response.headers['content-security-policy']);
    expect(policy).toContain("script-src 'self'");
    expect(policy).not.toContain('unsafe-inline');
    expect(policy).toContain("frame-ancestors 'none'");
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it('name each bad filter on the page, with a 400', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: '/console/calls?from=yesterday&status=finished&limit=0',
      headers: { cookie },
    });
    expect(response.statusCode).toBe(400);
    expect(response.body).toContain('<strong>from</strong>');
    expect(response.body).toContain('<strong>status</strong>');
  });

  it('name a time range that ends before it starts on the page, with a 400', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: '/console/calls?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z',
      headers: { cookie },
    });
    expect(response.statusCode).toBe(400);
    expect(String(response.headers['content-type'])).toMatch(/^text\/html/);
    expect(response.body).toContain('<strong>from</strong>');
  });

  it('treat a cookie with a token the server no longer knows as signed out', async () => {
    const response = await harness.app.inject({
      method: 'GET',
      url: '/console/calls',
      headers: { cookie: 'calltrail_session=revoked-token-0123456789abcdef' },
    });
    expect(response.statusCode).toBe(303);
    expect(String(response.headers['set-cookie'])).toMatch(/calltrail_session=;/);
  });
});

describe('the session cookie on the API', () => {
  it('stands in for a bearer token on reads', async () => {
    const response = await harness.app.inject({ method: 'GET', url: '/calls', headers: { cookie } });
    expect(response.statusCode).toBe(200);
  });

  it('does not authenticate anything that is not a read', async () => {
    const response = await harness.app.inject({
      method: 'POST',
      url: '/calls',
      headers: { cookie, 'content-type': 'application/json' },
      payload: '{}',
    });
    expect(response.statusCode).not.toBe(200);
    expect([401, 404, 405]).toContain(response.statusCode);
  });

  it('sign-out needs the token derived from the session', async () => {
    const forged = await harness.app.inject({
      method: 'POST',
      url: '/console/sign-out',
      headers: { cookie, origin, host, 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'csrf=guess',
    });
    expect(forged.statusCode).toBe(403);
    const real = await harness.app.inject({
      method: 'POST',
      url: '/console/sign-out',
      headers: { cookie, origin, host, 'content-type': 'application/x-www-form-urlencoded' },
      payload: `csrf=${csrfToken(apiToken)}`,
    });
    expect(real.statusCode).toBe(303);
    expect(String(real.headers['set-cookie'])).toMatch(/calltrail_session=;.*HttpOnly/);
  });
});
