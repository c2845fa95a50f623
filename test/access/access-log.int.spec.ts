/**
 * The access log on both event stores: reads, exports and replays (and a refusal for a missing
 * scope) become access events in the day's access stream with the right fields; `GET /access-log`
 * reads them back for an admin, filtered and keyset-paged, and refuses an auditor; the sealer seals
 * the access stream and `verify` covers it (on PostgreSQL, a changed access event is found); the
 * projector's prefixes leave it alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiToken, Role } from '../../src/access/api-tokens.ts';
import { tokenHash } from '../../src/access/api-tokens.ts';
import { accessStreamPrefix } from '../../src/archive/streams.ts';
import { migrateReadModels, openDatabase, type Database } from '../../src/database/database.ts';
import type { RecordedEvent } from '../../src/event-store/event-store.ts';
import { projectedStreamPrefixes } from '../../projections/registry.ts';
import { buildTestApp, testConfig, type TestApp } from '../support/app.ts';
import { openArchive, type ArchiveUnderTest } from '../sealing/archive-sealing.ts';

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
const as = (role: Role) => ({ authorization: `Bearer ${tokens[role]}` });

const waitFor = async <T>(read: () => Promise<T | undefined>, what: string, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};

describe.each(['postgres', 'eventstoredb'] as const)('the access log on %s', (kind) => {
  let archive: ArchiveUnderTest;
  let database: Database;
  let harness: TestApp;
  let callStream: string;

  const accessEvents = async (): Promise<RecordedEvent[]> => {
    const events: RecordedEvent[] = [];
    for await (const event of archive.eventStore.readAll({ streamPrefixes: [accessStreamPrefix] }))
      events.push(event);
    return events;
  };

  beforeAll(async () => {
    archive = await openArchive(kind);
    database = openDatabase(archive.database.url, { max: 2 });
    await migrateReadModels(database);
    harness = await buildTestApp({
      eventStore: archive.eventStore,
      database,
      config: testConfig({ apiTokens: configured }),
    });
    callStream = await archive.writeCall(3);
  });

  afterAll(async () => {
    await harness?.app.close();
    await database?.close();
    await archive?.close();
  });

  it('records reads, exports, replays and refusals with who, what, how much and from where', async () => {
    const callId = callStream.slice('call-'.length);
    const inject = (url: string, role: Role) =>
      harness.app.inject({ method: 'GET', url, headers: as(role), remoteAddress: '203.0.113.7' });
    const events = await inject(`/calls/${callId}/events`, 'auditor');
    expect(events.statusCode).toBe(200);
    expect((await inject('/calls?limit=5&status=ended', 'auditor')).statusCode).toBe(200);
    const csv = await inject('/exports/terminations.csv', 'auditor');
    expect(csv.statusCode).toBe(200);
    const replay = await inject(`/replay?prefix=${callStream}`, 'operator');
    expect(replay.statusCode).toBe(200);
    expect((await inject('/replay', 'auditor')).statusCode).toBe(403);
    // Not recorded: an open route, and a request without a known token.
    await harness.app.inject({ method: 'GET', url: '/healthz' });
    await harness.app.inject({
      method: 'GET',
      url: '/calls',
      headers: { authorization: 'Bearer x-0123456789abcdef' },
    });

    const recorded = await waitFor(async () => {
      const found = await accessEvents();
      return found.length >= 5 ? found : undefined;
    }, 'five access events');
    expect(recorded).toHaveLength(5);
    const day = harness.clock.now().toISOString().slice(0, 10);
    for (const event of recorded) {
      expect(event.streamName).toBe(`access-${day}`);
      expect(event.type).toBe('api-access');
    }
    const byRoute = (route: string, token: string) =>
      recorded
        .map((event) => event.data as Record<string, unknown>)
        .find((data) => data['route'] === route && data['token'] === token);
    expect(byRoute('/calls/:callId/events', 'alice')).toEqual({
      at: harness.clock.now().toISOString(),
      token: 'alice',
      role: 'auditor',
      method: 'GET',
      route: '/calls/:callId/events',
      path: `/calls/${callId}/events`,
      query: {},
      status: 200,
      resultCount: 3,
      bytes: Buffer.byteLength(events.body),
      sourceAddress: '203.0.113.7',
      requestId: events.headers['x-request-id'],
    });
    expect(byRoute('/calls', 'alice')).toMatchObject({
      query: { limit: '5', status: 'ended' },
      resultCount: 0,
    });
    expect(byRoute('/exports/terminations.csv', 'alice')).toMatchObject({
      status: 200,
      resultCount: 0,
      bytes: Buffer.byteLength(csv.body),
    });
    expect(byRoute('/replay', 'ops-bot')).toMatchObject({
      role: 'operator',
      query: { prefix: callStream },
      status: 200,
      resultCount: 3,
      bytes: Buffer.byteLength(replay.body),
    });
    expect(byRoute('/replay', 'alice')).toMatchObject({ role: 'auditor', status: 403 });
    for (const event of recorded) expect(JSON.stringify(event.data)).not.toMatch(/token-0123456789/);
  });

  it('reads the access log back for an admin only, filtered and keyset-paged', async () => {
    const refused = await harness.app.inject({ method: 'GET', url: '/access-log', headers: as('auditor') });
    expect(refused.statusCode).toBe(403);
    expect(refused.json<{ detail: string }>().detail).toContain('access-log:read');
    // The refusal is recorded too, once the writer has appended it.
    await waitFor(async () => ((await accessEvents()).length >= 6 ? true : undefined), 'the refusal');

    const all = await harness.app.inject({
      method: 'GET',
      url: '/access-log?token=alice',
      headers: as('admin'),
    });
    expect(all.statusCode).toBe(200);
    const entries = all.json<{ entries: { token: string; route: string; position: string }[] }>().entries;
    expect(entries.map((entry) => entry.route)).toEqual([
      '/calls/:callId/events',
      '/calls',
      '/exports/terminations.csv',
      '/replay',
      '/access-log',
    ]);
    expect(new Set(entries.map((entry) => entry.token))).toEqual(new Set(['alice']));

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { statusCode: number; json<T>(): T } = await harness.app.inject({
        method: 'GET',
        url: `/access-log?route=/replay&limit=1${cursor === null ? '' : `&cursor=${cursor}`}`,
        headers: as('admin'),
      });
      expect(page.statusCode).toBe(200);
      const body: { entries: { token: string }[]; nextCursor: string | null } = page.json<{
        entries: { token: string }[];
        nextCursor: string | null;
      }>();
      seen.push(...body.entries.map((entry) => entry.token));
      cursor = body.nextCursor;
    } while (cursor !== null);
    expect(seen).toEqual(['ops-bot', 'alice']);

    const bad = await harness.app.inject({
      method: 'GET',
      url: '/access-log?cursor=not-a-cursor-at-all&from=yesterday',
      headers: as('admin'),
    });
    expect(bad.statusCode).toBe(400);
  });

  it('records how many exchanges a listing of relay exchanges held', async () => {
    const listed = await harness.app.inject({
      method: 'GET',
      url: '/assistant-requests/relay-exchanges',
      headers: as('auditor'),
    });
    expect(listed.statusCode).toBe(200);
    const recorded = await waitFor(async () => {
      const found = (await accessEvents())
        .map((event) => event.data as Record<string, unknown>)
        .find((data) => data['route'] === '/assistant-requests/relay-exchanges');
      return found;
    }, "the listing's access event");
    expect(recorded).toMatchObject({ token: 'alice', status: 200, resultCount: 0 });
  });

  it('is sealed and verified with the archive, and left alone by the projections', async () => {
    expect(projectedStreamPrefixes.some((prefix) => prefix.startsWith(accessStreamPrefix))).toBe(false);
    // Closing writes whatever is still buffered.
    await harness.app.close();
    const recorded = await accessEvents();
    expect(recorded.length).toBeGreaterThanOrEqual(9);
    await archive.sealEverything();
    const report = await archive.verify();
    expect(report).toMatchObject({ ok: true, findings: [], unsealedEvents: 0 });
    expect(report.eventsChecked).toBe(3 + recorded.length);
    if (kind !== 'postgres') return;
    const target = recorded[1]!;
    await archive.sql('ALTER TABLE event_store.events DISABLE TRIGGER USER');
    try {
      await archive.sql(
        `UPDATE event_store.events SET data = json_build_object('token', 'someone-else') WHERE stream_name = $1 AND revision = $2`,
        [target.streamName, target.revision.toString()],
      );
    } finally {
      await archive.sql('ALTER TABLE event_store.events ENABLE TRIGGER USER');
    }
    const tampered = await archive.verify();
    expect(tampered.ok).toBe(false);
    expect(tampered.findings).toEqual([
      expect.objectContaining({
        kind: 'modified',
        stream: target.streamName,
        revision: target.revision.toString(),
      }),
    ]);
  });
});
