/**
 * The console's Projections page against a real projector over real stores: each projection running
 * and caught up with its checkpoint, dead letters from a poison event listed and filtered, and,
 * once the projector is stopped and events keep coming, no projector and the lag shown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callStreamName } from '../../src/archive/streams.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startProjector, type RunningProjector } from '../../src/projector/projector.ts';
import { projectionNames } from '../../projections/registry.ts';
import type { TestApp } from '../support/app.ts';
import { newCallId, proposedCallEvent, statusUpdate } from '../support/call-events.ts';
import { capturingLogger, testProjectorOptions, waitUntilCaughtUp } from '../support/projector-harness.ts';
import { apiToken, appendAll, openAuditStores, startAuditApp, type AuditStores } from '../audit/support.ts';
import { projectedStreamPrefixes } from '../../projections/registry.ts';

let stores: AuditStores;
let harness: TestApp;
let projector: RunningProjector | undefined;
const cookie = `calltrail_session=${apiToken}`;
const poisonCall = newCallId('poison');

const get = (url: string) => harness.app.inject({ method: 'GET', url, headers: { cookie } });

const append = (spec: Parameters<typeof proposedCallEvent>[0]) =>
  appendAll(stores.eventStore, callStreamName(spec.callId), [proposedCallEvent(spec)]);

/** The cells of a projection's row on the page, as text. */
const rowOf = (body: string, projection: string): string => {
  const match = new RegExp(`<tr data-projection="${projection}">([\\s\\S]*?)</tr>`).exec(body);
  if (match === null) throw new Error(`no row for ${projection}`);
  return match[1]!.replace(/\s+/g, ' ');
};

const deadLetterIds = (body: string): string[] =>
  [...body.matchAll(/<tr data-dead-letter="([0-9]+)"/g)].map((match) => match[1]!);

beforeAll(async () => {
  stores = await openAuditStores('postgres');
  harness = await startAuditApp(stores);
  const callId = newCallId('fine');
  await append(statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z'));
  // PostgreSQL text cannot hold NUL: the row is refused, so the event is a dead letter.
  await append(
    statusUpdate(poisonCall, 'ended-with-debugging', '2026-03-01T10:00:01.000Z', {
      debuggingArtifact: 'nul\u0000byte',
    }),
  );
  await append(statusUpdate(callId, 'ended', '2026-03-01T10:00:02.000Z'));
  projector = await startProjector(
    {
      eventStore: stores.eventStore,
      database: stores.database,
      logger: capturingLogger().logger,
      metrics: createMetrics(),
      clock: () => new Date(),
    },
    testProjectorOptions(projectedStreamPrefixes),
  );
  await waitUntilCaughtUp(projector);
});

afterAll(async () => {
  await projector?.stop();
  await harness?.app.close();
  await stores?.close();
});

describe('the Projections page', () => {
  it('shows each projection running, caught up, with its checkpoint', async () => {
    const response = await get('/console/projections');
    expect(response.statusCode).toBe(200);
    expect(response.body).toMatch(/href="\/console\/projections"\s+aria-current="page"/);
    for (const name of projectionNames) {
      const row = rowOf(response.body, name);
      expect(row).toContain('running');
      expect(row).toContain('caught up');
      expect(row).toMatch(/[0-9]+\/[0-9]+/);
    }
  });

  it('lists the dead letters with their error, linked to their call, filterable and paged', async () => {
    const response = await get('/console/projections');
    const calls = rowOf(response.body, 'calls');
    expect(calls).toMatch(/>1<\/a ?>/);
    const all = deadLetterIds(response.body);
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(response.body).toContain(`href="/console/calls/${poisonCall}"`);
    expect(response.body).toMatch(/<td class="debug">[^<]*\S/);
    const onlyCalls = await get('/console/projections?projection=calls');
    expect(deadLetterIds(onlyCalls.body)).toHaveLength(1);
    const first = await get('/console/projections?limit=1');
    expect(deadLetterIds(first.body)).toEqual(all.slice(0, 1));
    const next = /<a\s+rel="next"\s+href="([^"#]+)/.exec(first.body)![1]!.replaceAll('&amp;', '&');
    const second = await get(next);
    expect(deadLetterIds(second.body)).toEqual(all.slice(1, 2));
  });

  it('names bad parameters with a 400', async () => {
    const response = await get('/console/projections?projection=bogus&cursor=abc&limit=0&extra=1');
    expect(response.statusCode).toBe(400);
    for (const name of ['projection', 'cursor', 'limit', 'extra'])
      expect(response.body).toContain(`<strong>${name}</strong>`);
  });

  it('shows no projector and the lag once the projector stops and events keep coming', async () => {
    await projector!.stop();
    projector = undefined;
    const callId = newCallId('later');
    for (let second = 0; second < 3; second += 1)
      await append(statusUpdate(callId, 'in-progress', `2026-03-01T11:00:0${second}.000Z`));
    const response = await get('/console/projections');
    const calls = rowOf(response.body, 'calls');
    expect(calls).toContain('no projector running');
    expect(calls).toContain('behind');
    expect(calls).toContain('3 events');
  });
});
