/**
 * The projector against real Postgres read models and both real event-store adapters: catch-up and
 * live, out-of-order events, poison events, dropped and silent subscriptions, two projectors at
 * once, and the checkpoint guard.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { openDatabase } from '../../src/database/database.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { applyBatch } from '../../src/projector/batch.ts';
import { CheckpointMovedError, loadCheckpoint } from '../../src/projector/checkpoints.ts';
import { callsProjection } from '../../projections/calls/projection.ts';
import { startProjector, type RunningProjector } from '../../src/projector/projector.ts';
import { projections } from '../../projections/registry.ts';
import { defaultRebuildOptions, rebuildProjection } from '../../src/projector/rebuild.ts';
import { startEventStoreDbTestServer } from '../eventstoredb-server/server.ts';
import {
  endOfCallReport,
  proposedCallEvent,
  statusUpdate,
  toolCalls,
  type CallEventSpec,
} from '../support/call-events.ts';
import {
  adapterKinds,
  appendCallEvents,
  appendRaw,
  capturingLogger,
  deadLetters,
  newScope,
  openEventStore,
  openReadModels,
  snapshotReadModels,
  testProjectorOptions,
  waitFor,
  waitUntilCaughtUp,
  type OpenedEventStore,
  type ReadModels,
} from '../support/projector-harness.ts';
import { withSubscriptionFaults } from '../support/subscription-faults.ts';

const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
};

/** A call's four events; odd calls are stored out of event-time order. */
const callScript = (callId: string, index: number): CallEventSpec[] => {
  const start = Date.parse('2026-03-01T10:00:00.000Z') + index * 60_000;
  const at = (seconds: number) => new Date(start + seconds * 1000).toISOString();
  const ending =
    index % 3 === 0
      ? statusUpdate(callId, 'ended-with-debugging', at(90), { debuggingArtifact: `trace-${index}` })
      : statusUpdate(callId, 'ended', at(90));
  const events = [
    statusUpdate(callId, 'in-progress', at(0)),
    toolCalls(callId, at(30)),
    ending,
    endOfCallReport(callId, at(95), { durationSeconds: 90, endedReason: 'customer-ended-call' }),
  ];
  return index % 2 === 0 ? events : [events[2]!, events[0]!, events[3]!, events[1]!];
};

/** Round-robin over the calls, so their events interleave in the global order. */
const interleave = (scripts: readonly CallEventSpec[][]): CallEventSpec[] => {
  const out: CallEventSpec[] = [];
  for (let step = 0; scripts.some((script) => step < script.length); step += 1) {
    for (const script of scripts) if (step < script.length) out.push(script[step]!);
  }
  return out;
};

const scriptedCalls = (scope: ReturnType<typeof newScope>, from: number, count: number) =>
  interleave(Array.from({ length: count }, (_, i) => callScript(scope.callId(`call-${from + i}`), from + i)));

const projected = async (metrics: Metrics, projection: string): Promise<number> =>
  (await metrics.projectedEvents.get()).values.find((value) => value.labels.projection === projection)
    ?.value ?? 0;

const deadLettered = async (metrics: Metrics, projection: string): Promise<number> =>
  (await metrics.deadLetters.get()).values.find((value) => value.labels.projection === projection)?.value ??
  0;

const start = async (
  eventStore: EventStore,
  readModels: ReadModels,
  streamPrefixes: readonly string[],
  overrides: { metrics?: Metrics; logger?: ReturnType<typeof capturingLogger>['logger'] } = {},
): Promise<RunningProjector> => {
  const projector = await startProjector(
    {
      eventStore,
      database: readModels.database,
      logger: overrides.logger ?? capturingLogger().logger,
      metrics: overrides.metrics ?? createMetrics(),
      clock: () => new Date(),
    },
    testProjectorOptions(streamPrefixes),
  );
  onTestFinished(() => projector.stop());
  return projector;
};

const freshReadModels = async (): Promise<ReadModels> => {
  const readModels = await openReadModels();
  onTestFinished(() => readModels.dispose());
  return readModels;
};

/** The read models a clean rebuild makes from the same streams, in a database of their own. */
const cleanRebuild = async (eventStore: EventStore, streamPrefixes: readonly string[]) => {
  const readModels = await freshReadModels();
  for (const projection of projections) {
    await rebuildProjection(
      projection,
      {
        eventStore,
        pool: readModels.database.pool,
        logger: capturingLogger().logger,
        metrics: createMetrics(),
        clock: () => new Date(),
      },
      { ...defaultRebuildOptions, maxBatchEvents: 50, streamPrefixes },
    );
  }
  return snapshotReadModels(readModels.database.pool);
};

describe.each(adapterKinds)('projector on the %s event store', (kind) => {
  let store: OpenedEventStore;
  beforeAll(async () => {
    store = await openEventStore(kind);
  });
  afterAll(async () => {
    await store.dispose();
  });

  it('catches up with stored events, then follows live ones', async () => {
    const scope = newScope();
    const revisions = new Map<string, bigint>();
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 0, 10), revisions);
    const readModels = await freshReadModels();
    const metrics = createMetrics();
    const projector = await start(store.eventStore, readModels, scope.streamPrefixes, { metrics });

    await waitUntilCaughtUp(projector);
    // A catch-up (here: of any size) refreshes the statistics the query planner uses.
    await expect
      .poll(
        async () =>
          (
            await readModels.database.pool.query<{ analyzed: number }>(
              `SELECT count(*)::int AS analyzed FROM pg_stat_user_tables
                WHERE relname IN ('calls', 'call_timeline', 'terminations') AND last_analyze IS NOT NULL`,
            )
          ).rows[0]?.analyzed,
        { timeout: 10_000 },
      )
      .toBe(3);
    let snapshot = await snapshotReadModels(readModels.database.pool);
    expect(snapshot.calls).toHaveLength(10);
    expect(snapshot.timeline).toHaveLength(40);
    expect(snapshot.terminations).toHaveLength(10);
    expect(await projected(metrics, 'calls')).toBe(40);
    expect(await projected(metrics, 'call-timeline')).toBe(40);

    const first = snapshot.calls.find((row) => row['call_id'] === scope.callId('call-0'));
    expect(first).toMatchObject({
      status: 'ended-with-debugging',
      outcome: 'ended-with-debugging',
      debugging_artifact: 'trace-0',
      ended_reason: 'customer-ended-call',
      started_at: new Date('2026-03-01T10:00:00.000Z'),
      ended_at: new Date('2026-03-01T10:01:30.000Z'),
      duration_seconds: 90,
      event_count: 4,
      last_revision: '3',
    });

    await appendCallEvents(store.eventStore, scriptedCalls(scope, 10, 5), revisions);
    await waitUntilCaughtUp(projector);
    snapshot = await snapshotReadModels(readModels.database.pool);
    expect(snapshot.calls).toHaveLength(15);
    expect(snapshot.timeline).toHaveLength(60);
    expect(projector.status()).toEqual([
      { projection: 'calls', caughtUp: true, lagEvents: 0, lagSeconds: 0 },
      { projection: 'call-timeline', caughtUp: true, lagEvents: 0, lagSeconds: 0 },
      { projection: 'quarantine', caughtUp: true, lagEvents: 0, lagSeconds: 0 },
    ]);
    expect((await metrics.projectionLagEvents.get()).values).toContainEqual(
      expect.objectContaining({ value: 0, labels: { projection: 'calls' } }),
    );
    const head = snapshot.timeline.reduce((max, row) => {
      const commit = BigInt(row['commit_position'] as string);
      return commit > max ? commit : max;
    }, 0n);
    const checkpoint = await loadCheckpoint(readModels.database.pool, 'calls');
    expect(checkpoint?.commit).toBeGreaterThanOrEqual(head);
  });

  it('reports lag while behind', async () => {
    const scope = newScope();
    const readModels = await freshReadModels();
    const metrics = createMetrics();
    // A projector that is standing by (another one holds the leadership) applies nothing.
    const blocker = await readModels.database.pool.connect();
    let released = false;
    const release = () => {
      if (!released) blocker.release(true);
      released = true;
    };
    onTestFinished(release);
    for (const projection of projections) {
      await blocker.query('SELECT pg_advisory_lock($1::int, hashtext($2))', [0x43_54_01, projection.name]);
    }
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 0, 3));
    const projector = await start(store.eventStore, readModels, scope.streamPrefixes, { metrics });
    await waitFor('both runners to stand by and measure their lag', async () => {
      await projector.runners[0]!.refreshLag();
      return (
        projector.status()[0]!.lagEvents > 0 && projector.runners.every((runner) => runner.role === 'standby')
      );
    });
    expect(projector.status()[0]).toMatchObject({ projection: 'calls', caughtUp: false, lagEvents: 12 });
    expect(projector.status()[0]!.lagSeconds).toBeGreaterThanOrEqual(0);
    expect((await metrics.projectionLagEvents.get()).values).toContainEqual(
      expect.objectContaining({ value: 12, labels: { projection: 'calls' } }),
    );

    // The active one goes away: the standby takes over and catches up.
    release();
    await waitUntilCaughtUp(projector);
    expect(projector.runners.map((runner) => runner.role)).toEqual(['active', 'active', 'active']);
    expect((await snapshotReadModels(readModels.database.pool)).calls).toHaveLength(3);
  });

  it('shares one subscription between projections at different checkpoints, applying each event once', async () => {
    const scope = newScope();
    const revisions = new Map<string, bigint>();
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 0, 4), revisions);
    const readModels = await freshReadModels();
    const callsOnly = await startProjector(
      {
        eventStore: store.eventStore,
        database: readModels.database,
        logger: capturingLogger().logger,
        metrics: createMetrics(),
        clock: () => new Date(),
      },
      { ...testProjectorOptions(scope.streamPrefixes), projections: ['calls'] },
    );
    await waitUntilCaughtUp(callsOnly);
    await callsOnly.stop();

    // The timeline starts from nothing, calls from 16 events in: one subscription serves both.
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 4, 2), revisions);
    const metrics = createMetrics();
    const both = await start(store.eventStore, readModels, scope.streamPrefixes, { metrics });
    await waitUntilCaughtUp(both);
    expect(await projected(metrics, 'calls')).toBe(8);
    expect(await projected(metrics, 'call-timeline')).toBe(24);
    expect(await snapshotReadModels(readModels.database.pool)).toEqual(
      await cleanRebuild(store.eventStore, scope.streamPrefixes),
    );
  });

  it('projects a call the same whether ended arrived before in-progress or after', async () => {
    const scope = newScope();
    const inOrder = scope.callId('in-order');
    const reversed = scope.callId('reversed');
    const lateInProgress = scope.callId('late-in-progress');
    const at = (time: string) => `2026-03-01T${time}.000Z`;
    await appendCallEvents(store.eventStore, [
      statusUpdate(inOrder, 'in-progress', at('10:00:00')),
      statusUpdate(inOrder, 'ended', at('10:05:00'), { endedReason: 'assistant-hangup' }),
      statusUpdate(reversed, 'ended', at('10:05:00'), { endedReason: 'assistant-hangup' }),
      statusUpdate(reversed, 'in-progress', at('10:00:00')),
      statusUpdate(lateInProgress, 'in-progress', at('10:00:00')),
      statusUpdate(lateInProgress, 'ended', at('10:05:00'), { endedReason: 'assistant-hangup' }),
      statusUpdate(lateInProgress, 'in-progress', at('10:07:00')),
    ]);
    const readModels = await freshReadModels();
    const projector = await start(store.eventStore, readModels, scope.streamPrefixes);
    await waitUntilCaughtUp(projector);

    const { rows } = await readModels.database.pool.query<Record<string, unknown>>(
      `SELECT call_id, status, outcome, ended_reason, started_at, ended_at, duration_seconds,
              first_event_at, last_event_at, event_count, caller, assistant
       FROM calls ORDER BY call_id`,
    );
    const byId = new Map(rows.map(({ call_id, ...rest }) => [call_id, rest]));
    expect(byId.get(reversed)).toEqual(byId.get(inOrder));
    expect(byId.get(inOrder)).toMatchObject({
      status: 'ended',
      outcome: 'ended',
      started_at: new Date(at('10:00:00')),
      ended_at: new Date(at('10:05:00')),
      duration_seconds: 300,
    });
    expect(byId.get(lateInProgress)).toMatchObject({
      status: 'ended',
      last_event_at: new Date(at('10:07:00')),
    });
    const terminations = await readModels.database.pool.query(
      'SELECT call_id FROM terminations ORDER BY call_id',
    );
    expect(terminations.rows.map((row: { call_id: string }) => row.call_id)).toEqual(
      [inOrder, lateInProgress, reversed].sort(),
    );
  });

  it('records poison events as dead letters and goes on', async () => {
    const scope = newScope();
    const poisoned = scope.callId('poisoned');
    const healthy = scope.callId('healthy');
    const revisions = new Map<string, bigint>();
    const readModels = await freshReadModels();
    const metrics = createMetrics();
    const projector = await start(store.eventStore, readModels, scope.streamPrefixes, { metrics });

    const badShapeId = randomUUID();
    const nulByteId = randomUUID();
    await appendRaw(
      store.eventStore,
      poisoned,
      [
        proposedCallEvent(statusUpdate(poisoned, 'in-progress', '2026-03-01T10:00:00.000Z')),
        // Not an archived call event at all.
        { id: badShapeId, type: 'status-update', data: { status: 'ringing' }, metadata: {} },
        // Well-formed, but Postgres text cannot hold a NUL character.
        proposedCallEvent(
          statusUpdate(poisoned, 'ended-with-debugging', '2026-03-01T10:01:00.000Z', {
            id: nulByteId,
            debuggingArtifact: 'trace\u0000nul',
          }),
        ),
        proposedCallEvent(statusUpdate(poisoned, 'ended', '2026-03-01T10:02:00.000Z')),
      ],
      revisions,
    );
    await appendCallEvents(store.eventStore, callScript(healthy, 0), revisions);
    await waitUntilCaughtUp(projector);

    const letters = await deadLetters(readModels.database.pool);
    expect(letters.map(({ projection, event_id }) => [projection, event_id])).toEqual([
      ['call-timeline', badShapeId],
      ['call-timeline', nulByteId],
      ['calls', badShapeId],
      ['calls', nulByteId],
    ]);
    expect(letters[0]!.error).toMatch(/^data: must have required properties schemaVersion/);
    expect(letters[1]!.error).toMatch(/^22/);
    expect(await deadLettered(metrics, 'calls')).toBe(2);
    expect(await deadLettered(metrics, 'call-timeline')).toBe(2);

    const snapshot = await snapshotReadModels(readModels.database.pool);
    expect(snapshot.calls.find((row) => row['call_id'] === poisoned)).toMatchObject({
      status: 'ended',
      event_count: 2,
      last_revision: '3',
    });
    expect(snapshot.calls.find((row) => row['call_id'] === healthy)).toMatchObject({ event_count: 4 });
    expect(snapshot.timeline).toHaveLength(6);
  });

  it('resumes a dropped subscription without losing or repeating events', async () => {
    const scope = newScope();
    const faulty = withSubscriptionFaults(store.eventStore);
    const readModels = await freshReadModels();
    const metrics = createMetrics();
    const { logger, lines } = capturingLogger();
    const projector = await start(faulty.eventStore, readModels, scope.streamPrefixes, { metrics, logger });
    const revisions = new Map<string, bigint>();
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 0, 5), revisions);
    await waitUntilCaughtUp(projector);

    const opened = faulty.subscriptionsOpened;
    expect(faulty.dropSubscriptions()).toBe(1);
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 5, 5), revisions);
    await waitUntilCaughtUp(projector);
    expect(faulty.subscriptionsOpened).toBeGreaterThan(opened);
    expect(lines().some((line) => line['msg'] === 'projector failed; resubscribing')).toBe(true);

    expect(await projected(metrics, 'calls')).toBe(40);
    expect(await projected(metrics, 'call-timeline')).toBe(40);
    expect(await snapshotReadModels(readModels.database.pool)).toEqual(
      await cleanRebuild(store.eventStore, scope.streamPrefixes),
    );
  });

  it('restarts a subscription that went silent while the store moved on', async () => {
    const scope = newScope();
    const faulty = withSubscriptionFaults(store.eventStore);
    const readModels = await freshReadModels();
    const { logger, lines } = capturingLogger();
    const projector = await start(faulty.eventStore, readModels, scope.streamPrefixes, { logger });
    const revisions = new Map<string, bigint>();
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 0, 2), revisions);
    await waitUntilCaughtUp(projector);

    expect(faulty.silenceSubscriptions()).toBe(1);
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 2, 3), revisions);
    await waitUntilCaughtUp(projector);
    expect(
      lines().filter((line) => line['msg'] === 'subscription silent while the store moved on; restarting it'),
    ).not.toHaveLength(0);
    const snapshot = await snapshotReadModels(readModels.database.pool);
    expect(snapshot.calls).toHaveLength(5);
    expect(snapshot.timeline).toHaveLength(20);
  });

  it('never applies twice with two projectors on one database, and the standby takes over', async () => {
    const scope = newScope();
    const revisions = new Map<string, bigint>();
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 0, 8), revisions);
    const readModels = await freshReadModels();
    // Same database, separate pools: as two processes would be.
    const otherPool = openDatabase(readModels.testDatabase.url, { max: 4 });
    onTestFinished(() => otherPool.close());
    const metricsA = createMetrics();
    const metricsB = createMetrics();
    const [a, b] = await Promise.all([
      start(store.eventStore, readModels, scope.streamPrefixes, { metrics: metricsA }),
      start(store.eventStore, { ...readModels, database: otherPool }, scope.streamPrefixes, {
        metrics: metricsB,
      }),
    ]);
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 8, 4), revisions);
    await waitUntilCaughtUp(a);
    await waitUntilCaughtUp(b);
    for (const projection of ['calls', 'call-timeline']) {
      expect((await projected(metricsA, projection)) + (await projected(metricsB, projection))).toBe(48);
    }
    const roles = [...a.runners, ...b.runners].map((runner) => `${runner.projection}:${runner.role}`).sort();
    expect(roles).toEqual([
      'call-timeline:active',
      'call-timeline:standby',
      'calls:active',
      'calls:standby',
      'quarantine:active',
      'quarantine:standby',
    ]);

    // Whoever was active goes away; the other takes over from the checkpoint.
    await a.stop();
    await appendCallEvents(store.eventStore, scriptedCalls(scope, 12, 3), revisions);
    await waitUntilCaughtUp(b);
    expect(b.runners.map((runner) => runner.role)).toEqual(['active', 'active', 'active']);
    for (const projection of ['calls', 'call-timeline']) {
      expect((await projected(metricsA, projection)) + (await projected(metricsB, projection))).toBe(60);
    }
    expect(await snapshotReadModels(readModels.database.pool)).toEqual(
      await cleanRebuild(store.eventStore, scope.streamPrefixes),
    );
  });

  it('rolls a batch back when the checkpoint moved under it', async () => {
    const scope = newScope();
    const callId = scope.callId('guarded');
    await appendCallEvents(store.eventStore, [
      statusUpdate(callId, 'in-progress', '2026-03-01T10:00:00.000Z'),
    ]);
    const [event] = await collect(store.eventStore.readAll({ streamPrefixes: scope.streamPrefixes }));
    const readModels = await freshReadModels();
    const client = await readModels.database.pool.connect();
    onTestFinished(() => client.release());
    const now = new Date();
    await applyBatch(
      client,
      callsProjection,
      { events: [event!], after: undefined, through: event!.position },
      { mode: 'transaction' },
      now,
    );
    // A second writer still believing the projection is at the start.
    await expect(
      applyBatch(
        client,
        callsProjection,
        { events: [event!], after: undefined, through: event!.position },
        { mode: 'transaction' },
        now,
      ),
    ).rejects.toBeInstanceOf(CheckpointMovedError);
    const { rows } = await client.query<{ event_count: number }>('SELECT event_count FROM calls');
    expect(rows).toEqual([{ event_count: 1 }]);
  });
});

describe('projector on an EventStoreDB whose node drops its subscriptions', () => {
  it('resubscribes from its checkpoint and applies everything once', async () => {
    const server = await startEventStoreDbTestServer();
    onTestFinished(() => server.stop());
    const eventStore = connectEventStoreDb(server.url, { timeoutMs: 5_000 });
    onTestFinished(() => eventStore.close());
    const scope = newScope();
    const readModels = await freshReadModels();
    const metrics = createMetrics();
    const projector = await start(eventStore, readModels, scope.streamPrefixes, { metrics });
    const revisions = new Map<string, bigint>();
    await appendCallEvents(eventStore, scriptedCalls(scope, 0, 5), revisions);
    await waitUntilCaughtUp(projector);

    expect(server.dropSubscriptions()).toBeGreaterThanOrEqual(1);
    await appendCallEvents(eventStore, scriptedCalls(scope, 5, 5), revisions);
    await waitUntilCaughtUp(projector);
    expect(await projected(metrics, 'calls')).toBe(40);
    expect(await projected(metrics, 'call-timeline')).toBe(40);
    expect(await snapshotReadModels(readModels.database.pool)).toEqual(
      await cleanRebuild(eventStore, scope.streamPrefixes),
    );
  });
});
