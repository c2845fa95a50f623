/**
 * `calltrail project` as a process: killed with SIGKILL in the middle of a batch, twice, then
 * restarted; the read models must end up exactly as a clean rebuild makes them. On both event-store
 * adapters.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, inject, onTestFinished } from 'vitest';
import type pg from 'pg';
import { migrateReadModels, openDatabase } from '../../src/database/database.ts';
import { createMetrics } from '../../src/metrics.ts';
import { projections } from '../../projections/registry.ts';
import { defaultRebuildOptions, rebuildProjection } from '../../src/projector/rebuild.ts';
import { callStreamName } from '../../src/archive/streams.ts';
import { comparePositions, type RecordedEvent } from '../../src/event-store/event-store.ts';
import { endOfCallReport, proposedCallEvent, statusUpdate, toolCalls } from '../support/call-events.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import {
  adapterKinds,
  capturingLogger,
  newScope,
  openEventStore,
  openReadModels,
  waitFor,
  type OpenedEventStore,
} from '../support/projector-harness.ts';

const repositoryRoot = fileURLToPath(new URL('../..', import.meta.url));
const calls = 600;

const scriptFor = (callId: string, index: number) => {
  const start = Date.parse('2026-03-03T09:00:00.000Z') + index * 500;
  const at = (seconds: number) => new Date(start + seconds * 1000).toISOString();
  const events = [
    statusUpdate(callId, 'in-progress', at(0)),
    toolCalls(callId, at(3)),
    statusUpdate(callId, index % 5 === 0 ? 'ended-with-debugging' : 'ended', at(20), {
      debuggingArtifact: index % 5 === 0 ? `trace-${index}` : null,
    }),
    endOfCallReport(callId, at(21), { durationSeconds: 20 }),
  ];
  return index % 2 === 0 ? events : [events[2]!, events[3]!, events[0]!, events[1]!];
};

interface ProjectorProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const spawnProjector = (environment: Record<string, string>): ProjectorProcess => {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_')),
  );
  const child = spawn(process.execPath, ['bin/calltrail.js', 'project'], {
    cwd: repositoryRoot,
    env: { ...inherited, CALLTRAIL_LOG_LEVEL: 'warn', ...environment },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => output, exited };
};

/**
 * Starts a projector and kills it inside a read-model transaction writing a batch. The catch-up takes
 * well under a second, too short to catch a batch in flight by looking, so the test holds `blocked`
 * tables in SHARE mode: the other projection commits batches until the blocked one has rows to write,
 * and the runner, which applies each batch to every projection before taking the next, then waits
 * inside that INSERT until the kill.
 */
const killMidBatch = async (
  environment: Record<string, string>,
  pool: pg.Pool,
  database: string,
  blocked: readonly string[],
): Promise<void> => {
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN');
    await holder.query(`LOCK TABLE ${blocked.join(', ')} IN SHARE MODE`);
    const projector = spawnProjector(environment);
    await waitFor(
      'the projector to be writing a batch',
      async () => {
        if (projector.child.exitCode !== null)
          throw new Error(`projector exited early:\n${projector.output()}`);
        const { rows } = await pool.query(
          `SELECT 1 FROM pg_stat_activity
           WHERE datname = $1 AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
             AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO % SELECT * FROM unnest(%'`,
          [database],
        );
        return rows.length > 0;
      },
      60_000,
    );
    projector.child.kill('SIGKILL');
    expect(await projector.exited).toEqual({ code: null, signal: 'SIGKILL' });
  } finally {
    await holder.query('COMMIT').catch(() => {});
    holder.release();
  }
};

/** The read models restricted to this test's calls, in a comparable order. */
const snapshotOf = async (pool: pg.Pool, tag: string) => {
  const like = `${tag}-%`;
  return {
    calls: (await pool.query('SELECT * FROM calls WHERE call_id LIKE $1 ORDER BY call_id', [like])).rows,
    timeline: (
      await pool.query('SELECT * FROM call_timeline WHERE call_id LIKE $1 ORDER BY event_id', [like])
    ).rows,
    terminations: (
      await pool.query('SELECT * FROM terminations WHERE call_id LIKE $1 ORDER BY call_id', [like])
    ).rows,
    deadLetters: (
      await pool.query('SELECT event_id FROM projection_dead_letters WHERE stream_name LIKE $1', [
        `call-${like}`,
      ])
    ).rows,
  };
};

describe.each(adapterKinds)('calltrail project on the %s event store, killed mid-batch', (kind) => {
  let store: OpenedEventStore;
  let dataDir: string;
  beforeAll(async () => {
    store = await openEventStore(kind);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-project-'));
  });
  afterAll(async () => {
    await store.dispose();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('ends with the read models a clean rebuild makes', { timeout: 180_000 }, async () => {
    const scope = newScope();
    // Events first, so the projector has a long catch-up to be killed in.
    const pending = Array.from({ length: calls }, (_, index) => index);
    const appendNext = async () => {
      for (let index = pending.shift(); index !== undefined; index = pending.shift()) {
        const callId = scope.callId(`call-${index}`);
        const events = scriptFor(callId, index).map(proposedCallEvent);
        const result = await store.eventStore.append(callStreamName(callId), events, 'no-stream');
        expect(result.outcome).toBe('appended');
      }
    };
    await Promise.all(Array.from({ length: 8 }, appendNext));
    const stored: RecordedEvent[] = [];
    for await (const event of store.eventStore.readAll({ streamPrefixes: scope.streamPrefixes }))
      stored.push(event);
    expect(stored).toHaveLength(calls * 4);

    const readDatabase: TestDatabase = await createTestDatabase('projector_process');
    const reads = openDatabase(readDatabase.url, { max: 2 });
    // The tables must exist before the test can hold them (the projector would create them too).
    await migrateReadModels(reads);
    onTestFinished(async () => {
      await reads.close();
      await readDatabase.drop();
    });
    const eventStoreUrl = kind === 'postgres' ? store.database!.url : inject('eventStoreDbUrl');
    const environment = {
      CALLTRAIL_EVENTSTORE_URL: eventStoreUrl,
      CALLTRAIL_DATABASE_URL: readDatabase.url,
      CALLTRAIL_DATA_DIR: dataDir,
    };

    for (let round = 0; round < 2; round += 1) {
      // First the timeline waits while the calls projection commits, then the other way round.
      const blocked = round === 0 ? ['call_timeline'] : ['calls', 'terminations'];
      await killMidBatch(environment, reads.pool, readDatabase.name, blocked);
      // A killed batch left nothing behind: the rows are exactly the events up to each checkpoint.
      const checkpoints = new Map(
        (
          await reads.pool.query<{ projection: string; commit: string; prepare: string }>(
            'SELECT projection, commit_position::text AS commit, prepare_position::text AS prepare FROM projection_checkpoints',
          )
        ).rows.map((row) => [row.projection, { commit: BigInt(row.commit), prepare: BigInt(row.prepare) }]),
      );
      const upTo = (projection: string) =>
        stored.filter((event) => {
          const checkpoint = checkpoints.get(projection);
          return checkpoint !== undefined && comparePositions(event.position, checkpoint) <= 0;
        }).length;
      const { rows } = await reads.pool.query<{ events: string; timeline: string }>(
        `SELECT (SELECT coalesce(sum(event_count), 0) FROM calls WHERE call_id LIKE $1) AS events,
                (SELECT count(*) FROM call_timeline WHERE call_id LIKE $1) AS timeline`,
        [`${scope.tag}-%`],
      );
      expect(Number(rows[0]!.events)).toBe(upTo('calls'));
      expect(Number(rows[0]!.timeline)).toBe(upTo('call-timeline'));
    }

    const survivor = spawnProjector(environment);
    await waitFor(
      'the restarted projector to catch up',
      async () => {
        if (survivor.child.exitCode !== null) throw new Error(`projector exited:\n${survivor.output()}`);
        const { rows } = await reads.pool.query<{ events: string; timeline: string }>(
          `SELECT (SELECT coalesce(sum(event_count), 0) FROM calls WHERE call_id LIKE $1) AS events,
                  (SELECT count(*) FROM call_timeline WHERE call_id LIKE $1) AS timeline`,
          [`${scope.tag}-%`],
        );
        return Number(rows[0]!.events) === calls * 4 && Number(rows[0]!.timeline) === calls * 4;
      },
      90_000,
    );
    // Caught up (the wait above) is the state to stop from: no fixed pause before the signal.
    survivor.child.kill('SIGTERM');
    expect(await survivor.exited, survivor.output()).toEqual({ code: 0, signal: null });

    const clean = await openReadModels('projector_process_clean');
    onTestFinished(() => clean.dispose());
    for (const projection of projections) {
      await rebuildProjection(
        projection,
        {
          eventStore: store.eventStore,
          pool: clean.database.pool,
          logger: capturingLogger().logger,
          metrics: createMetrics(),
          clock: () => new Date(),
        },
        { ...defaultRebuildOptions, streamPrefixes: scope.streamPrefixes },
      );
    }
    const projected = await snapshotOf(reads.pool, scope.tag);
    expect(projected.calls).toHaveLength(calls);
    expect(projected.deadLetters).toEqual([]);
    expect(projected).toEqual(await snapshotOf(clean.database.pool, scope.tag));
  });
});
