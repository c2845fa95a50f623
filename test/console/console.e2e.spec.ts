/**
 * The web console in a real Chromium (the one shipped in the `@sparticuz/chromium` npm package,
 * driven by playwright-core) against calltrail's real app on a real port, with the real projector:
 * events enter through the signed webhook, as Flireo sends them. Sign in, filter, open a call, see a
 * new call appear and an active one end without a reload, export CSV from the current filters and
 * read it back, see a hostile artifact shown as text with no script run, see a quarantined request
 * and the projections' state, see the access log (an admin) and not see it (an auditor), sign out.
 * It also takes the README's screenshots (docs/).
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import chromium from '@sparticuz/chromium';
import { parse } from 'csv-parse/sync';
import { chromium as playwright, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tokenHash } from '../../src/access/api-tokens.ts';
import { createLogger } from '../../src/logger.ts';
import { startProjector, type RunningProjector } from '../../src/projector/projector.ts';
import { findCall } from '../../src/audit/call-queries.ts';
import { buildTestApp, signatureHeaders, testConfig, type TestApp } from '../support/app.ts';
import { apiToken, openAuditStores, runTag, type AuditStores } from '../audit/support.ts';

const screenshots = path.join(import.meta.dirname, '..', '..', 'docs');
const tag = runTag();
const auditorToken = 'auditor-token-0123456789abcdef';
const assistantA = '+31850000001';
const assistantB = '+31850000002';
/** Markup, a script, a right-to-left override and a very long line, as a failing integration might send. */
const hostileArtifact =
  `<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script> \u202Egnp.exe ` +
  `${'stack-frame-'.repeat(60)}end`;

let stores: AuditStores;
let harness: TestApp;
let projector: RunningProjector;
let base: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;

const callId = (name: string) => `${name}-${tag}`;

/** Waits for what the page shows to settle (bounded): projection and live updates take a moment. */
const poll = <T>(read: () => Promise<T> | T) => expect.poll(read, { timeout: 15_000, interval: 50 });

/** Posts a generation 1 status-update through the signed webhook, as Flireo does. */
const statusUpdate = async (
  id: string,
  status: string,
  atMs: number,
  more: Record<string, unknown> = {},
): Promise<void> => {
  const body = JSON.stringify({
    eventTimestamp: atMs,
    eventType: 'status-update',
    callSession: id,
    fromCaller: '+31612345678',
    toAssistant: assistantA,
    status,
    ...more,
  });
  const response = await fetch(`${base}/webhooks/flireo`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...signatureHeaders(body, { at: harness.clock.now() }),
    },
    body,
  });
  expect(response.status).toBe(202);
  // Each delivery a second later, so reception times (what as-of goes by) differ.
  harness.clock.advance(1_000);
};

/** Waits until the projector has the call in the state wanted (bounded). */
const projected = async (id: string, status: string) => {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const row = await findCall(stores.database.db, id);
    if (row?.status === status) return;
    if (Date.now() > deadline) throw new Error(`call ${id} never reached ${status}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};

const start = Date.parse('2025-08-28T07:30:00.000Z');
const minutes = (n: number) => start + n * 60_000;

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await buildTestApp({
    eventStore: stores.eventStore,
    database: stores.database,
    config: testConfig({
      apiTokens: [apiToken, { name: 'alice', role: 'auditor', sha256: tokenHash(auditorToken) }],
    }),
  });
  await harness.app.listen({ host: '127.0.0.1', port: 0 });
  const address = harness.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('not listening');
  base = `http://127.0.0.1:${address.port}`;
  projector = await startProjector(
    {
      eventStore: stores.eventStore,
      database: stores.database,
      logger: createLogger({ level: 'silent' }),
      metrics: harness.metrics,
      clock: () => new Date(),
    },
    { watchdogIntervalMs: 500 },
  );

  await statusUpdate(callId('active'), 'in-progress', minutes(1));
  await statusUpdate(callId('ok'), 'in-progress', minutes(2), { toAssistant: assistantB });
  await statusUpdate(callId('ok'), 'ended', minutes(6), {
    toAssistant: assistantB,
    reason: 'customer-ended-call',
  });
  await statusUpdate(callId('hostile'), 'in-progress', minutes(3));
  await statusUpdate(callId('hostile'), 'ended-with-debugging', minutes(4), {
    'debugging-artifact': hostileArtifact,
    reason: 'pipeline-error',
  });
  await statusUpdate(callId('failed'), 'ended-with-debugging', minutes(5), {
    'debugging-artifact': 'tool webhook timed out after 10000 ms',
  });
  await projected(callId('active'), 'in-progress');
  await projected(callId('ok'), 'ended');
  await projected(callId('hostile'), 'ended-with-debugging');
  await projected(callId('failed'), 'ended-with-debugging');

  browser = await playwright.launch({
    executablePath: await chromium.executablePath(),
    args: chromium.args,
    headless: true,
  });
  context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1366, height: 860 },
    timezoneId: 'Europe/Amsterdam',
    locale: 'en-GB',
  });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  // Any script the page did not ship would be a failure of escaping or of the policy.
  await page.addInitScript(() => {
    (globalThis as unknown as { __pwned?: number }).__pwned = undefined;
  });
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await projector?.stop();
  await harness?.app.close();
  await stores?.close();
});

const rowOf = (id: string) => page.locator(`tr[data-call-id="${id}"]`);

describe('the console in a browser', () => {
  it('asks for sign-in, and refuses a wrong token', async () => {
    await page.goto(`${base}/console/calls`);
    await poll(() => page.url()).toContain('/console/sign-in');
    await page.screenshot({ path: path.join(screenshots, 'console-sign-in.png') });
    await page.getByLabel('API token').fill('not-the-token-of-this-server');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('is not valid for this server').waitFor();
    expect((await context.cookies()).length).toBe(0);
  });

  it('signs in with an API token kept in an HttpOnly, SameSite=Strict cookie', async () => {
    await page.getByLabel('API token').fill(apiToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Calls' }).waitFor();
    expect(page.url()).toBe(`${base}/console/calls`);
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'calltrail_session', httpOnly: true, sameSite: 'Strict' });
    expect(page.url()).not.toContain(apiToken);
    await poll(() => rowOf(callId('ok')).count()).toBe(1);
  });

  it('shows a hostile artifact as text: no markup, no script, controls made visible', async () => {
    const cell = rowOf(callId('hostile')).locator('td.debug');
    await poll(() => cell.textContent()).toContain('<script>window.__pwned=1</script>');
    expect(await cell.textContent()).toContain('U+202E');
    expect(await cell.locator('img, script').count()).toBe(0);
    expect(
      await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned),
    ).toBeUndefined();
    // The long line wraps inside its cell instead of widening the page past the viewport.
    const width = await page.evaluate<number>('document.documentElement.scrollWidth');
    expect(width).toBeLessThanOrEqual(1366);
  });

  it('shows times in the viewer’s zone with UTC on hover', async () => {
    const shown = rowOf(callId('ok')).locator('time');
    await poll(() => shown.getAttribute('title')).toBe('2025-08-28 07:36:00Z UTC');
    // Amsterdam is UTC+2 in August.
    expect(await shown.textContent()).toContain('09:36:00');
  });

  it('filters by the form; the filters live in the URL', async () => {
    await page.getByLabel('Status').selectOption('ended-with-debugging');
    await page.getByLabel('Debug Info contains').fill('TIMED OUT');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await poll(() => page.url()).toContain('debugInfo=TIMED+OUT');
    expect(page.url()).toContain('status=ended-with-debugging');
    await poll(() => page.locator('tbody tr').count()).toBe(1);
    expect(await rowOf(callId('failed')).count()).toBe(1);
    // The URL alone reproduces the view.
    const shared = await context.newPage();
    await shared.goto(page.url());
    expect(await shared.locator('tbody tr').count()).toBe(1);
    await shared.close();
  });

  it('exports the terminations of the current filters as CSV, and it reads back', async () => {
    await page.goto(
      `${base}/console/calls?assistant=${encodeURIComponent(assistantA)}&status=ended-with-debugging`,
    );
    const downloading = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Export CSV' }).click();
    const download = await downloading;
    const csv = await readFile(await download.path(), 'utf8');
    const rows = parse<Record<string, string>>(csv, { columns: true });
    expect(rows.map((row) => row['call_id']).sort()).toEqual([callId('failed'), callId('hostile')].sort());
    for (const row of rows) expect(row['assistant']).toBe(assistantA);
  });

  it('opens a call: timeline, raw bodies, reception metadata, as-of, JSON lines', async () => {
    await page.goto(`${base}/console/calls`);
    await rowOf(callId('hostile')).getByRole('link').click();
    await page.getByRole('heading', { name: /^Call / }).waitFor();
    const timeline = page.locator('table.timeline tbody tr');
    await poll(() => timeline.count()).toBe(2);
    expect(await timeline.nth(0).textContent()).toContain('active');
    expect(await timeline.nth(1).textContent()).toContain('ended with an error');
    await page.locator('details summary').first().click();
    const raw = page.locator('pre.raw-body').first();
    expect(JSON.parse((await raw.textContent())!)).toMatchObject({ callSession: callId('hostile') });
    const reception = (await page.locator('.event .facts').first().textContent())!;
    expect(reception).toContain('Signature verified');
    expect(reception).toMatch(/Signature verified\s*yes/);
    expect(reception).toContain('Source address');
    expect(
      await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned),
    ).toBeUndefined();
    await page.screenshot({ path: path.join(screenshots, 'console-call.png'), fullPage: true });

    const downloading = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Download events (JSON lines)' }).click();
    const lines = (await readFile(await (await downloading).path(), 'utf8')).trim().split('\n');
    expect(lines.map((line) => (JSON.parse(line) as { eventType: string }).eventType)).toEqual([
      'status-update',
      'status-update',
    ]);

    // Before the second event was received, the call was still in progress.
    const firstReceived = (JSON.parse(lines[0]!) as { receivedAt: string }).receivedAt;
    await page.getByLabel('Show as of (ISO 8601)').fill(firstReceived);
    await page.getByRole('button', { name: 'Show' }).click();
    await page.getByText('Shown as calltrail knew it at').waitFor();
    expect(await page.locator('.call-summary .status').textContent()).toBe('active');
  });

  it('shows a new call live and an active call turning ended, without reloading', async () => {
    await page.goto(`${base}/console/calls`);
    await page.getByText('Live: receiving new events').waitFor();
    await page.evaluate(() => {
      (globalThis as unknown as { __sameDocument?: boolean }).__sameDocument = true;
    });
    const fresh = callId('fresh');
    await statusUpdate(fresh, 'in-progress', minutes(20));
    await rowOf(fresh).waitFor();
    expect(await rowOf(fresh).locator('.status').textContent()).toBe('active');
    // The newest call goes on top.
    expect(await page.locator('tbody tr').first().getAttribute('data-call-id')).toBe(fresh);
    await statusUpdate(callId('active'), 'ended', minutes(21), { reason: 'assistant-ended-call' });
    await poll(() => rowOf(callId('active')).locator('.status').textContent()).toBe('ended');
    expect(await rowOf(callId('active')).textContent()).toContain('assistant-ended-call');
    expect(
      await page.evaluate(() => (globalThis as unknown as { __sameDocument?: boolean }).__sameDocument),
    ).toBe(true);
    await page.screenshot({ path: path.join(screenshots, 'console-calls.png') });
  });

  it('shows calls in progress on the Live page and counts events as they come', async () => {
    await page.getByRole('link', { name: 'Live' }).click();
    await page.getByRole('heading', { name: 'Live', exact: true }).waitFor();
    await page.getByText('Live: receiving new events').waitFor();
    const active = page.locator('table[data-live-calls="active"]');
    expect(await active.locator(`tr[data-call-id="${callId('fresh')}"]`).count()).toBe(1);
    const next = callId('next');
    await statusUpdate(next, 'in-progress', minutes(22));
    await active.locator(`tr[data-call-id="${next}"]`).waitFor();
    await poll(() => page.locator('[data-events-per-minute]').textContent()).toBe('1');
    await statusUpdate(next, 'ended-with-debugging', minutes(23), { 'debugging-artifact': 'no answer' });
    await page.locator(`table[data-live-calls="failed"] tr[data-call-id="${next}"]`).waitFor();
    await poll(() => active.locator(`tr[data-call-id="${next}"]`).count()).toBe(0);
    await page.screenshot({ path: path.join(screenshots, 'console-live.png') });
  });

  it('shows quarantined requests with their problems, hostile bodies as text, long ones in full on their page', async () => {
    const body = `{"callSession":"${callId('broken')}","note":"<script>window.__pwned=1</script>","pad":"${'x'.repeat(2_000)}"`;
    const response = await fetch(`${base}/webhooks/flireo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...signatureHeaders(body, { at: harness.clock.now() }) },
      body,
    });
    expect(response.status).toBe(400);
    await page.getByRole('link', { name: 'Quarantine' }).click();
    await page.getByRole('heading', { name: 'Quarantine', exact: true }).waitFor();
    const rows = page.locator('table.quarantine tbody tr');
    // The quarantine projection follows the store: reload until it has the request (bounded).
    await poll(async () => {
      if ((await rows.count()) === 0) await page.reload();
      return rows.count();
    }).toBe(1);
    expect(await rows.first().textContent()).toContain('malformed JSON');
    const preview = rows.first().locator('pre.body');
    expect(await preview.textContent()).toContain('<script>window.__pwned=1</script>');
    expect(await preview.locator('script').count()).toBe(0);
    await page.getByLabel('Reason').selectOption('malformed-json');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await poll(() => page.url()).toContain('reason=malformed-json');
    await page.screenshot({ path: path.join(screenshots, 'console-quarantine.png') });
    await page.getByRole('link', { name: /^Show all/ }).click();
    await page.getByRole('heading', { name: /^Quarantined request/ }).waitFor();
    expect(await page.locator('pre.body').textContent()).toBe(body);
    expect(
      await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned),
    ).toBeUndefined();
  });

  it('shows each projection running and caught up on the Projections page', async () => {
    await page.getByRole('link', { name: 'Projections' }).click();
    await page.getByRole('heading', { name: 'Projections', exact: true }).waitFor();
    const rows = page.locator('table.projections tbody tr');
    expect(await rows.count()).toBe(3);
    for (const name of ['calls', 'call-timeline', 'quarantine']) {
      const row = page.locator(`tr[data-projection="${name}"]`);
      await poll(async () => {
        const text = (await row.textContent()) ?? '';
        if (!text.includes('caught up')) await page.reload();
        return text;
      }).toContain('caught up');
      expect(await row.textContent()).toContain('running');
    }
    await page.getByText('No dead letters.').waitFor();
    await page.screenshot({ path: path.join(screenshots, 'console-projections.png') });
  });

  it('shows integration health: failures grouped by artifact, volume, durations, stale calls', async () => {
    // The same failure three times with different ids and numbers, and a call whose end never came.
    for (const [index, id] of ['timeout-1', 'timeout-2', 'timeout-3'].entries()) {
      await statusUpdate(callId(id), 'in-progress', minutes(7 + index));
      await statusUpdate(callId(id), 'ended-with-debugging', minutes(9 + index), {
        'debugging-artifact': `Tool call ${randomUUID()} timed out after ${3000 + index * 750} ms`,
        reason: 'tool-timeout',
      });
    }
    await statusUpdate(callId('lost'), 'in-progress', minutes(-100));
    await projected(callId('timeout-3'), 'ended-with-debugging');
    await projected(callId('lost'), 'in-progress');
    await page.getByRole('link', { name: 'Health' }).click();
    await page.getByRole('heading', { name: 'Health', exact: true }).waitFor();
    const groups = page.locator('table.health-groups').first();
    const timeouts = groups.locator('tr', { hasText: 'Tool call <uuid> timed out after <n> ms' });
    await timeouts.waitFor();
    expect(await timeouts.locator('td.number').textContent()).toBe('3');
    // The hostile artifact is a group of its own, shown as text; no script of it ran.
    expect(await groups.textContent()).toContain('<script>window.__pwned=<n></script>');
    expect(await groups.locator('img, script').count()).toBe(0);
    expect(
      await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned),
    ).toBeUndefined();
    expect(await page.getByRole('img', { name: /Call volume per/ }).isVisible()).toBe(true);
    await page.locator(`a[href="/console/calls/${callId('lost')}"]`).waitFor();
    await page.screenshot({ path: path.join(screenshots, 'console-health.png'), fullPage: true });
  });

  it('lists who read what on the Access log page, a query with markup shown as text', async () => {
    const markup = '<img src=x onerror="window.__pwned=1">';
    await page.goto(`${base}/console/calls?debugInfo=${encodeURIComponent(markup)}`);
    await page.getByRole('heading', { name: 'Calls' }).waitFor();
    await page.getByRole('link', { name: 'Access log' }).click();
    await page.getByRole('heading', { name: 'Access log', exact: true }).waitFor();
    await page.getByLabel('Route').fill('/console/calls');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await poll(() => page.url()).toContain('route=%2Fconsole%2Fcalls');
    const table = page.locator('table.access-log');
    // The access log is written off the request path: reload until the visit is there (bounded).
    await poll(async () => {
      const shown = (await table.locator('tbody').textContent()) ?? '';
      if (!shown.includes(markup)) await page.reload();
      return shown;
    }).toContain(`debugInfo=${markup}`);
    expect(await table.locator('img, script').count()).toBe(0);
    expect(
      await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned),
    ).toBeUndefined();
    await page.screenshot({ path: path.join(screenshots, 'console-access-log.png') });
  });

  it('signs out: the cookie is gone and pages ask for sign-in again', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await poll(() => page.url()).toContain('/console/sign-in');
    expect(await context.cookies()).toEqual([]);
    await page.goto(`${base}/console/calls`);
    await poll(() => page.url()).toContain('/console/sign-in');
    const api = await page.request.get(`${base}/calls`);
    expect(api.status()).toBe(401);
  });

  it('neither shows nor opens the Access log for a role without its scope', async () => {
    await page.goto(`${base}/console/sign-in`);
    await page.getByLabel('API token').fill(auditorToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Calls' }).waitFor();
    expect(await page.getByRole('link', { name: 'Quarantine' }).count()).toBe(1);
    expect(await page.getByRole('link', { name: 'Access log' }).count()).toBe(0);
    const refused = await page.goto(`${base}/console/access-log`);
    expect(refused?.status()).toBe(403);
    await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    expect(await page.locator('main').textContent()).toContain('access-log:read');
  });
});
