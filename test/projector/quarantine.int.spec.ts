/**
 * The quarantine projection run by the real projector and rebuild, on both real event-store
 * adapters: quarantine streams reach it beside the call streams without disturbing the call
 * projections, `GET /quarantine` answers from its table exactly what the streams hold, and a
 * rebuild reproduces it.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type pg from 'pg';
import { toArchivedEventView, type ArchivedEventView } from '../../src/audit/archived-event-view.ts';
import type { EventStore, ProposedEvent, RecordedEvent } from '../../src/event-store/event-store.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startProjector } from '../../src/projector/projector.ts';
import { defaultRebuildOptions, rebuildProjections } from '../../src/projector/rebuild.ts';
import { projectionNamed, projections } from '../../projections/registry.ts';
import { buildTestApp, testApiToken } from '../support/app.ts';
import { endOfCallReport, statusUpdate } from '../support/call-events.ts';
import {
  adapterKinds,
  appendCallEvents,
  capturingLogger,
  deadLetters,
  newScope,
  openEventStore,
  openReadModels,
  snapshotReadModels,
  testProjectorOptions,
  waitUntilCaughtUp,
  type OpenedEventStore,
  type ReadModels,
} from '../support/projector-harness.ts';
import { proposedQuarantined } from '../support/quarantine-records.ts';

const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
};

/** The rows as the route would show them, newest first, to compare whole. */
const quarantineSnapshot = async (pool: pg.Pool) =>
  (
    await pool.query<Record<string, unknown>>(
      'SELECT * FROM quarantined_requests ORDER BY commit_position DESC, prepare_position DESC',
    )
  ).rows;

const tableIdentity = async (pool: pg.Pool) =>
  (
    await pool.query<{ oid: string }>(
      `SELECT 'public.quarantined_requests'::regclass::oid::int8::text AS oid`,
    )
  ).rows[0]!.oid;

describe.each(adapterKinds)('the quarantine projection on the %s event store', (kind) => {
  let store: OpenedEventStore;
  beforeAll(async () => {
    store = await openEventStore(kind);
  });
  afterAll(async () => {
    await store.dispose();
  });

  const freshReadModels = async (): Promise<ReadModels> => {
    const readModels = await openReadModels();
    onTestFinished(() => readModels.dispose());
    return readModels;
  };

  /** Quarantine records in two day streams of the scope, interleaved with call events in $all. */
  const appendMixed = async (eventStore: EventStore, scope: ReturnType<typeof newScope>) => {
    const quarantined: ProposedEvent[] = [];
    const revisions = new Map<string, bigint>();
    const bodies = [
      Buffer.from('{"broken": '),
      Buffer.from([0xc3, 0x28, 0x00, 0xff]),
      Buffer.from('{"a":"\u0000"'),
      Buffer.from('<xml/>'),
      Buffer.from('not json'),
      Buffer.from('{"x":1'),
    ];
    for (let index = 0; index < bodies.length; index += 1) {
      const day = index < 3 ? '2026-03-01' : '2026-03-02';
      const event = proposedQuarantined({
        raw: bodies[index]!,
        receivedAt: `${day}T0${index}:00:00.000Z`,
        contentType: index === 3 ? 'application/xml' : 'application/json',
      });
      const result = await eventStore.append(`quarantine-${scope.tag}-${day}`, [event], 'any');
      expect(result.outcome).toBe('appended');
      quarantined.push(event);
      const callId = scope.callId(`call-${index}`);
      await appendCallEvents(
        eventStore,
        [
          statusUpdate(callId, 'in-progress', `${day}T0${index}:00:00.000Z`),
          endOfCallReport(callId, `${day}T0${index}:01:00.000Z`, { durationSeconds: 60 }),
        ],
        revisions,
      );
    }
    // A record of another shape in a quarantine stream: shown as far as it can be read.
    const odd = { id: crypto.randomUUID(), type: 'something-else', data: 'just text', metadata: {} };
    expect((await eventStore.append(`quarantine-${scope.tag}-2026-03-02`, [odd], 'any')).outcome).toBe(
      'appended',
    );
    return { quarantined: [...quarantined, odd], calls: bodies.length };
  };

  const prefixesOf = (scope: ReturnType<typeof newScope>) => [
    ...scope.streamPrefixes,
    `quarantine-${scope.tag}-`,
  ];

  const runProjector = async (readModels: ReadModels, streamPrefixes: readonly string[]) => {
    const projector = await startProjector(
      {
        eventStore: store.eventStore,
        database: readModels.database,
        logger: capturingLogger().logger,
        metrics: createMetrics(),
        clock: () => new Date(),
      },
      testProjectorOptions(streamPrefixes),
    );
    onTestFinished(() => projector.stop());
    await waitUntilCaughtUp(projector);
    await projector.stop();
  };

  /** What the streams hold, as the stream-reading listing showed it: newest first. */
  const streamViews = async (scope: ReturnType<typeof newScope>): Promise<ArchivedEventView[]> =>
    (
      await collect<RecordedEvent>(
        store.eventStore.readAll({ streamPrefixes: [`quarantine-${scope.tag}-`], direction: 'backwards' }),
      )
    ).map(toArchivedEventView);

  it('projects quarantine streams beside the call streams, and GET /quarantine pages it newest first', async () => {
    const scope = newScope();
    const { quarantined, calls } = await appendMixed(store.eventStore, scope);
    const readModels = await freshReadModels();
    const { pool } = readModels.database;
    await runProjector(readModels, prefixesOf(scope));

    // The call projections see only their streams: every call, and no quarantine record as poison.
    expect(await deadLetters(pool)).toEqual([]);
    const snapshot = await snapshotReadModels(pool);
    expect(snapshot.calls).toHaveLength(calls);
    expect(snapshot.terminations).toHaveLength(calls);
    expect(snapshot.timeline).toHaveLength(calls * 2);

    const expected = await streamViews(scope);
    expect(expected.map((view) => view.eventId)).toEqual(quarantined.map((event) => event.id).reverse());

    const harness = await buildTestApp({ eventStore: store.eventStore, database: readModels.database });
    onTestFinished(() => harness.app.close());
    const get = (url: string) =>
      harness.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${testApiToken}` } });

    const whole = await get('/quarantine');
    expect(whole.statusCode).toBe(200);
    expect(whole.json()).toEqual({ requests: expected, nextCursor: null });

    for (const limit of [1, 2, 3]) {
      const seen: ArchivedEventView[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const response = await get(`/quarantine?limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`);
        expect(response.statusCode).toBe(200);
        const page = response.json<{ requests: ArchivedEventView[]; nextCursor: string | null }>();
        expect(page.requests.length).toBeLessThanOrEqual(limit);
        seen.push(...page.requests);
        cursor = page.nextCursor;
        pages += 1;
      } while (cursor !== null && pages < 20);
      expect(seen).toEqual(expected);
    }
  });

  it('applies each record once across projector restarts, and a rebuild reproduces the table', async () => {
    const scope = newScope();
    await appendMixed(store.eventStore, scope);
    const readModels = await freshReadModels();
    const { pool } = readModels.database;
    await runProjector(readModels, prefixesOf(scope));
    const first = await quarantineSnapshot(pool);
    expect(first).toHaveLength(7);

    // More records after a restart: added once, the earlier rows untouched.
    const later = proposedQuarantined({ raw: Buffer.from('late'), receivedAt: '2026-03-03T00:00:00.000Z' });
    expect(
      (await store.eventStore.append(`quarantine-${scope.tag}-2026-03-03`, [later], 'any')).outcome,
    ).toBe('appended');
    await runProjector(readModels, prefixesOf(scope));
    const live = await quarantineSnapshot(pool);
    expect(live).toHaveLength(8);
    expect(live.slice(1)).toEqual(first);
    expect(live[0]!['event_id']).toBe(later.id);

    const before = await tableIdentity(pool);
    const rebuild = (rebuilt: typeof projections) =>
      rebuildProjections(
        rebuilt,
        {
          eventStore: store.eventStore,
          pool,
          logger: capturingLogger().logger,
          metrics: createMetrics(),
          clock: () => new Date(),
        },
        { ...defaultRebuildOptions, maxBatchEvents: 3, streamPrefixes: prefixesOf(scope) },
      );
    const callsBefore = await snapshotReadModels(pool);
    await rebuild(projections);
    expect(await tableIdentity(pool)).not.toBe(before);
    expect(await quarantineSnapshot(pool)).toEqual(live);
    expect(await snapshotReadModels(pool)).toEqual(callsBefore);

    // Rebuilt alone, too.
    await rebuild([projectionNamed('quarantine')]);
    expect(await quarantineSnapshot(pool)).toEqual(live);
    expect(await deadLetters(pool)).toEqual([]);
  });
});
