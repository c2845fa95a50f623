/**
 * Rebuilds against real Postgres read models and both real event-store adapters, while ingest and
 * the live projector keep going.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type pg from 'pg';
import type { EventStore } from '../../src/event-store/event-store.ts';
import type { TimelineInput } from '../../projections/call-timeline/projection.ts';
import { createMetrics } from '../../src/metrics.ts';
import { callTimelineProjection } from '../../projections/call-timeline/projection.ts';
import { lockArguments } from '../../src/projector/checkpoints.ts';
import type { Projection } from '../../projections/projection.ts';
import { startProjector } from '../../src/projector/projector.ts';
import { projectionNamed, projections } from '../../projections/registry.ts';
import {
  defaultRebuildOptions,
  rebuildProjection,
  rebuildProjections,
  RebuildInProgressError,
  type RebuildProgress,
} from '../../src/projector/rebuild.ts';
import { shadowSchemaFor } from '../../src/projector/shadow-tables.ts';
import { endOfCallReport, proposedCallEvent, statusUpdate, toolCalls } from '../support/call-events.ts';
import {
  adapterKinds,
  appendCallEvents,
  appendRaw,
  capturingLogger,
  deadLetters,
  newScope,
  openEventStore,
  openReadModels,
  sleep,
  snapshotReadModels,
  type ReadModelSnapshot,
  testProjectorOptions,
  waitFor,
  waitUntilCaughtUp,
  type OpenedEventStore,
  type ReadModels,
} from '../support/projector-harness.ts';
import { withSubscriptionFaults } from '../support/subscription-faults.ts';

const callEvents = (callId: string, index: number) => {
  const start = Date.parse('2026-03-02T08:00:00.000Z') + index * 1_000;
  const at = (seconds: number) => new Date(start + seconds * 1000).toISOString();
  const events = [
    statusUpdate(callId, 'in-progress', at(0)),
    toolCalls(callId, at(5)),
    statusUpdate(callId, index % 4 === 0 ? 'ended-with-debugging' : 'ended', at(40), {
      debuggingArtifact: index % 4 === 0 ? `trace-${index}` : null,
    }),
    endOfCallReport(callId, at(41), { durationSeconds: 40 }),
  ];
  return index % 2 === 0 ? events : events.reverse();
};

const freshReadModels = async (): Promise<ReadModels> => {
  const readModels = await openReadModels();
  onTestFinished(() => readModels.dispose());
  return readModels;
};

/** Every projection in one call, as `calltrail rebuild` does it. */
const rebuildAll = (
  eventStore: EventStore,
  pool: pg.Pool,
  streamPrefixes: readonly string[],
  onProgress?: (progress: RebuildProgress) => void,
  rebuilt: readonly Projection[] = projections,
) =>
  rebuildProjections(
    rebuilt,
    {
      eventStore,
      pool,
      logger: capturingLogger().logger,
      metrics: createMetrics(),
      clock: () => new Date(),
    },
    {
      ...defaultRebuildOptions,
      maxBatchEvents: 20,
      streamPrefixes,
      ...(onProgress ? { onProgress } : {}),
    },
  );

/** What a clean projector run makes of the streams: run until caught up, then stopped. */
const projectorRun = async (
  eventStore: EventStore,
  readModels: ReadModels,
  streamPrefixes: readonly string[],
) => {
  const projector = await startProjector(
    {
      eventStore,
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

/**
 * Everything a swap would change: the read models, the checkpoints, and the live tables' identity
 * (a swap puts other tables in their place, even with the same rows).
 */
const liveState = async (
  pool: pg.Pool,
): Promise<{ readModels: ReadModelSnapshot; checkpoints: unknown[]; tables: unknown[] }> => ({
  readModels: await snapshotReadModels(pool),
  checkpoints: (
    await pool.query(
      'SELECT projection, commit_position, prepare_position FROM projection_checkpoints ORDER BY projection',
    )
  ).rows,
  tables: (
    await pool.query(
      `SELECT relname, oid::int8::text AS oid FROM pg_class
       WHERE oid IN ('public.calls'::regclass, 'public.call_timeline'::regclass, 'public.terminations'::regclass)
       ORDER BY relname`,
    )
  ).rows,
});

const indexNames = async (pool: pg.Pool) =>
  (
    await pool.query<{ indexname: string; tablename: string }>(
      `SELECT tablename, indexname FROM pg_indexes
       WHERE schemaname = 'public' AND tablename IN ('calls', 'call_timeline', 'terminations')
       ORDER BY tablename, indexname`,
    )
  ).rows;

const constraintNames = async (pool: pg.Pool) =>
  (
    await pool.query<{ conname: string }>(
      `SELECT conname FROM pg_constraint
       WHERE conrelid IN ('public.calls'::regclass, 'public.call_timeline'::regclass, 'public.terminations'::regclass)
         AND contype <> 'n'
       ORDER BY conname`,
    )
  ).rows;

describe.each(adapterKinds)('rebuild on the %s event store', (kind) => {
  let store: OpenedEventStore;
  beforeAll(async () => {
    store = await openEventStore(kind);
  });
  afterAll(async () => {
    await store.dispose();
  });

  it('swaps in a complete rebuild while appends and the live projector go on', async () => {
    const scope = newScope();
    const readModels = await freshReadModels();
    const { pool } = readModels.database;
    const revisions = new Map<string, bigint>();
    let next = 0;
    const appendCalls = async (count: number) => {
      for (let i = 0; i < count; i += 1, next += 1) {
        await appendCallEvents(store.eventStore, callEvents(scope.callId(`call-${next}`), next), revisions);
      }
    };
    await appendCalls(15);
    const { logger, lines } = capturingLogger();
    const projector = await startProjector(
      {
        eventStore: store.eventStore,
        database: readModels.database,
        logger,
        metrics: createMetrics(),
        clock: () => new Date(),
      },
      testProjectorOptions(scope.streamPrefixes),
    );
    onTestFinished(() => projector.stop());
    await waitUntilCaughtUp(projector);
    const indexesBefore = await indexNames(pool);
    const constraintsBefore = await constraintNames(pool);

    // A reader that must never see a table shrink (empty or half-built) nor fail.
    const seen: { calls: number; timeline: number; terminations: number }[] = [];
    const readErrors: unknown[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        try {
          const { rows } = await pool.query<{ calls: string; timeline: string; terminations: string }>(
            `SELECT (SELECT count(*) FROM calls) AS calls, (SELECT count(*) FROM call_timeline) AS timeline,
                    (SELECT count(*) FROM terminations) AS terminations`,
          );
          seen.push({
            calls: Number(rows[0]!.calls),
            timeline: Number(rows[0]!.timeline),
            terminations: Number(rows[0]!.terminations),
          });
        } catch (error) {
          readErrors.push(error);
        }
        await sleep(5);
      }
    })();
    let appending = true;
    const appender = (async () => {
      while (appending) await appendCalls(1);
    })();

    const phases = new Set<string>();
    const callsBefore = next;
    const results = await rebuildAll(store.eventStore, pool, scope.streamPrefixes, (progress) =>
      phases.add(progress.phase),
    );
    // Ingest really went on during the rebuild.
    expect(next).toBeGreaterThan(callsBefore);
    // Ingest goes on past the swap too, so the live runner has to resume from the moved checkpoint.
    const callsAtSwap = next;
    await waitFor('more calls appended after the swap', async () => next >= callsAtSwap + 5);
    appending = false;
    await appender;
    await waitUntilCaughtUp(projector);
    reading = false;
    await reader;

    expect(readErrors).toEqual([]);
    expect(seen.length).toBeGreaterThan(10);
    for (let i = 1; i < seen.length; i += 1) {
      expect(seen[i]!.calls).toBeGreaterThanOrEqual(seen[i - 1]!.calls);
      expect(seen[i]!.timeline).toBeGreaterThanOrEqual(seen[i - 1]!.timeline);
      expect(seen[i]!.terminations).toBeGreaterThanOrEqual(seen[i - 1]!.terminations);
    }
    expect(results.map((result) => result.events)).toEqual([
      expect.any(Number),
      expect.any(Number),
      expect.any(Number),
    ]);
    expect(results[0]!.events).toBeGreaterThanOrEqual(60);
    expect([...phases]).toEqual(expect.arrayContaining(['replaying', 'indexing', 'swapping', 'done']));

    const live = await snapshotReadModels(pool);
    expect(live.calls).toHaveLength(next);
    expect(live.timeline).toHaveLength(next * 4);
    const clean = await freshReadModels();
    await rebuildAll(store.eventStore, clean.database.pool, scope.streamPrefixes);
    expect(live).toEqual(await snapshotReadModels(clean.database.pool));

    // The swapped-in tables are what the migrations made: same index and constraint names.
    expect(await indexNames(pool)).toEqual(indexesBefore);
    expect(await constraintNames(pool)).toEqual(constraintsBefore);
    const schemas = await pool.query(
      `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'calltrail_rebuild_%'`,
    );
    expect(schemas.rows).toEqual([]);
    expect(lines().some((line) => line['msg'] === 'caught up')).toBe(true);
  });

  it('keeps dead letters once, and refuses a second rebuild of the same projection at once', async () => {
    const scope = newScope();
    const readModels = await freshReadModels();
    const { pool } = readModels.database;
    const revisions = new Map<string, bigint>();
    const callId = scope.callId('poisoned');
    await appendRaw(
      store.eventStore,
      callId,
      [
        proposedCallEvent(statusUpdate(callId, 'in-progress', '2026-03-02T08:00:00.000Z')),
        { id: '0b5e55ed-0000-4000-8000-000000000001', type: 'status-update', data: [], metadata: null },
      ],
      revisions,
    );
    await rebuildAll(store.eventStore, pool, scope.streamPrefixes);
    await rebuildAll(store.eventStore, pool, scope.streamPrefixes);
    expect((await deadLetters(pool)).map((letter) => letter.projection)).toEqual(['call-timeline', 'calls']);
    expect((await snapshotReadModels(pool)).calls).toMatchObject([{ call_id: callId, event_count: 1 }]);

    const holder = await pool.connect();
    onTestFinished(() => holder.release(true));
    await holder.query('SELECT pg_advisory_lock($1::int, hashtext($2))', [0x43_54_03, 'calls']);
    await expect(
      rebuildProjection(
        projectionNamed('calls'),
        {
          eventStore: store.eventStore,
          pool,
          logger: capturingLogger().logger,
          metrics: createMetrics(),
          clock: () => new Date(),
        },
        { ...defaultRebuildOptions, streamPrefixes: scope.streamPrefixes },
      ),
    ).rejects.toBeInstanceOf(RebuildInProgressError);
    // The refused rebuild touched nothing, not even a shadow schema.
    const shadow = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [
      shadowSchemaFor('calls'),
    ]);
    expect(shadow.rows).toEqual([]);
  });
  it('rebuilds both projections from one replay into what a clean projector run makes', async () => {
    const scope = newScope();
    const revisions = new Map<string, bigint>();
    for (let i = 0; i < 30; i += 1) {
      await appendCallEvents(store.eventStore, callEvents(scope.callId(`call-${i}`), i), revisions);
    }
    const projected = await freshReadModels();
    await projectorRun(store.eventStore, projected, scope.streamPrefixes);
    const expected = await snapshotReadModels(projected.database.pool);
    expect(expected.timeline).toHaveLength(120);

    const counted = withSubscriptionFaults(store.eventStore);
    const rebuilt = await freshReadModels();
    const progress: RebuildProgress[] = [];
    const results = await rebuildAll(
      counted.eventStore,
      rebuilt.database.pool,
      scope.streamPrefixes,
      (report) => progress.push(report),
    );

    expect(counted.subscriptionsOpened).toBe(1);
    expect(results.map(({ projection, events }) => ({ projection, events }))).toEqual([
      { projection: 'calls', events: 120 },
      { projection: 'call-timeline', events: 120 },
      { projection: 'quarantine', events: 120 },
    ]);
    expect(await snapshotReadModels(rebuilt.database.pool)).toEqual(expected);
    // Each projection reports its own progress, through every phase.
    for (const name of ['calls', 'call-timeline']) {
      const phases = progress.filter((report) => report.projection === name).map((report) => report.phase);
      expect(phases).toEqual(expect.arrayContaining(['replaying', 'indexing', 'swapping', 'done']));
      expect(phases.at(-1)).toBe('done');
    }
  });

  it('refuses the whole rebuild, touching nothing, while one of the projections is being rebuilt', async () => {
    const scope = newScope();
    const revisions = new Map<string, bigint>();
    for (let i = 0; i < 5; i += 1) {
      await appendCallEvents(store.eventStore, callEvents(scope.callId(`call-${i}`), i), revisions);
    }
    const readModels = await freshReadModels();
    const { pool } = readModels.database;
    await projectorRun(store.eventStore, readModels, scope.streamPrefixes);
    const before = await liveState(pool);

    // The second projection's lock: the first one's is already taken when the call finds out.
    const holder = await pool.connect();
    onTestFinished(() => holder.release(true));
    await holder.query(
      'SELECT pg_advisory_lock($1::int, hashtext($2))',
      lockArguments('rebuild', 'call-timeline'),
    );
    const counted = withSubscriptionFaults(store.eventStore);
    const refused = rebuildAll(counted.eventStore, pool, scope.streamPrefixes);
    await expect(refused).rejects.toBeInstanceOf(RebuildInProgressError);
    await expect(refused).rejects.toThrow(/call-timeline/);

    expect(counted.subscriptionsOpened).toBe(0);
    expect(await liveState(pool)).toEqual(before);
    const shadows = await pool.query(
      `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'calltrail_rebuild_%'`,
    );
    expect(shadows.rows).toEqual([]);
    // The lock it had taken for calls went with its session.
    await expect(
      rebuildAll(store.eventStore, pool, scope.streamPrefixes, undefined, [projectionNamed('calls')]),
    ).resolves.toMatchObject([{ projection: 'calls', events: 20 }]);
  });

  it('leaves every live table untouched when one projection fails during the shared replay', async () => {
    const scope = newScope();
    const revisions = new Map<string, bigint>();
    for (let i = 0; i < 30; i += 1) {
      await appendCallEvents(store.eventStore, callEvents(scope.callId(`call-${i}`), i), revisions);
    }
    const readModels = await freshReadModels();
    const { pool } = readModels.database;
    await projectorRun(store.eventStore, readModels, scope.streamPrefixes);
    const before = await liveState(pool);

    let timelineBatches = 0;
    const failingTimeline: Projection<TimelineInput> = {
      ...callTimelineProjection,
      apply: async (client, events) => {
        timelineBatches += 1;
        if (timelineBatches === 3) throw new Error('the timeline write failed');
        return callTimelineProjection.apply(client, events);
      },
    };
    const progress: RebuildProgress[] = [];
    await expect(
      rebuildAll(store.eventStore, pool, scope.streamPrefixes, (report) => progress.push(report), [
        projectionNamed('calls'),
        failingTimeline,
      ]),
    ).rejects.toThrow('the timeline write failed');

    expect(timelineBatches).toBe(3);
    // The failure came while the other projection was replaying too, not before it started.
    expect(
      progress.some(
        (report) => report.projection === 'calls' && report.phase === 'replaying' && report.events > 0,
      ),
    ).toBe(true);
    expect(progress.some((report) => report.phase === 'done')).toBe(false);
    expect(await liveState(pool)).toEqual(before);
    // Both sessions ended, and their rebuild locks with them.
    await expect(rebuildAll(store.eventStore, pool, scope.streamPrefixes)).resolves.toHaveLength(3);
    expect((await liveState(pool)).readModels).toEqual(before.readModels);
  });
});
