/**
 * Rebuilds against real Postgres read models and both real event-store adapters, while ingest and
 * the live projector keep going.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type pg from 'pg';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startProjector } from '../../src/projector/projector.ts';
import { projectionNamed, projections } from '../../src/projector/projections.ts';
import {
  defaultRebuildOptions,
  rebuildProjection,
  RebuildInProgressError,
  shadowSchemaFor,
  type RebuildProgress,
} from '../../src/projector/rebuild.ts';
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
  testProjectorOptions,
  waitUntilCaughtUp,
  type OpenedEventStore,
  type ReadModels,
} from '../support/projector-harness.ts';

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

const rebuildAll = async (
  eventStore: EventStore,
  pool: pg.Pool,
  streamPrefixes: readonly string[],
  onProgress?: (progress: RebuildProgress) => void,
) => {
  const results = [];
  for (const projection of projections) {
    results.push(
      await rebuildProjection(
        projection,
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
      ),
    );
  }
  return results;
};

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
    await sleep(300);
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
    expect(results.map((result) => result.events)).toEqual([expect.any(Number), expect.any(Number)]);
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
});
