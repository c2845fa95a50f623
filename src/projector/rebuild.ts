/**
 * Rebuilding a projection from the event streams, while ingest and the live projector go on.
 *
 * The replay writes fresh shadow tables in a schema of their own; the projection code is the same,
 * pointed there by the transaction's `search_path` (shadow schema first; the live schema second,
 * so dead letters still land in the one live table). Queries keep reading the live tables the whole
 * time. Once the shadow has caught up, one transaction takes the projection's `write` lock (which
 * every live batch takes too), applies the last few events, drops the live tables, moves the shadow
 * tables into their place and sets the live checkpoint to the shadow's. Readers see the old tables
 * or the new ones, never an empty or half-built one; the live runner's next batch finds the
 * checkpoint moved, and resubscribes from there.
 *
 * Shadow tables get the live tables' columns, constraints, indexes and grants under the same
 * names, so after the swap they are indistinguishable from what the migrations created.
 *
 * Projections rebuilt together share the bulk replay, as the live runner shares its subscription:
 * the store is read once, and each batch goes to every shadow side by side, each projection on a
 * session of its own that holds its rebuild lock. Indexing, catching up and the swap then follow
 * one projection after another.
 */
import type pg from 'pg';
import {
  comparePositions,
  formatPosition,
  type GlobalPosition,
  type RecordedEvent,
} from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import { applyBatch, type BatchOutcome, type BatchScope } from './batch.ts';
import { laterPosition, loadCheckpoint, lockForTransaction, saveCheckpoint, tryLock } from './checkpoints.ts';
import { feedBatch, openFeed } from './feed.ts';
import { readHead } from './lag.ts';
import type { RunnerDependencies } from './runner.ts';
import type { Projection } from '../../projections/projection.ts';
import { quoteIdentifier } from '../database/sql.ts';
import {
  createShadowIndexes,
  createShadowTable,
  liveSchemaOf,
  qualified,
  RebuildError,
  shadowSchemaFor,
} from './shadow-tables.ts';

/** A rebuild needs what the live runner needs: the store, the database, logging, metrics, the clock. */
export type RebuildDependencies = RunnerDependencies;

export interface RebuildProgress {
  readonly projection: string;
  readonly phase: 'replaying' | 'indexing' | 'catching-up' | 'swapping' | 'done';
  /** Events replayed so far. */
  readonly events: number;
  /** The events the replay will have seen at the end, estimated from positions while replaying. */
  readonly estimatedTotal: number;
}

export interface RebuildOptions {
  readonly streamPrefixes: readonly string[];
  readonly maxBatchEvents: number;
  /** How long the swap may wait for readers of the live tables before it retries. */
  readonly swapLockTimeoutMs: number;
  readonly swapAttempts: number;
  readonly onProgress?: (progress: RebuildProgress) => void;
}

export interface RebuildResult {
  readonly projection: string;
  readonly events: number;
  readonly deadLettered: number;
  readonly checkpoint: GlobalPosition | undefined;
}

/** Unlocked catch-up passes before the locked one; each pass is bounded by the head at its start. */
const maxUnlockedPasses = 10;

export class RebuildInProgressError extends Error {
  override readonly name = 'RebuildInProgressError';
}

const lockNotAvailable = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && 'code' in error && error.code === '55P03';

/** A projection whose rebuild lock this call holds, with the session that holds it. */
interface ClaimedProjection {
  readonly projection: Projection;
  readonly client: pg.PoolClient;
  readonly logger: Logger;
  /** Ends the session, and with it the rebuild lock. */
  release(): void;
}

const claim = async (
  projection: Projection,
  dependencies: RebuildDependencies,
): Promise<ClaimedProjection> => {
  const logger = dependencies.logger.child({ projection: projection.name, task: 'rebuild' });
  const client = await dependencies.pool.connect();
  const onClientError = (error: Error) => logger.warn({ err: error }, 'rebuild database session lost');
  client.on('error', onClientError);
  const release = () => {
    client.removeListener('error', onClientError);
    // Destroyed rather than returned: ends the session, and with it the rebuild lock.
    client.release(true);
  };
  try {
    if (!(await tryLock(client, 'rebuild', projection.name))) {
      throw new RebuildInProgressError(`a rebuild of ${projection.name} is already running`);
    }
  } catch (error) {
    release();
    throw error;
  }
  return { projection, client, logger, release };
};

/** One projection's shadow tables: filled by the shared bulk replay, then caught up and swapped in. */
interface ShadowRebuild {
  /** Applies one batch of the bulk replay, in a transaction of its own, unless the shadow has it. */
  replay(
    events: readonly RecordedEvent[],
    through: GlobalPosition | undefined,
    head: RecordedEvent | undefined,
  ): Promise<void>;
  /** Builds the indexes, catches up with what arrived since the replay, and swaps the shadow in. */
  finish(): Promise<RebuildResult>;
}

const createShadow = async (
  { projection, client, logger }: ClaimedProjection,
  dependencies: RebuildDependencies,
  options: RebuildOptions,
): Promise<ShadowRebuild> => {
  const { eventStore, clock, metrics } = dependencies;
  const labels = { projection: projection.name };

  let events = 0;
  let deadLettered = 0;
  let estimatedTotal = 0;
  const report = (phase: RebuildProgress['phase']) =>
    options.onProgress?.({
      projection: projection.name,
      phase,
      events,
      estimatedTotal: Math.max(estimatedTotal, events),
    });
  // Counted into the metrics once committed: the swap transaction may still roll back.
  let uncounted = { applied: 0, deadLettered: 0 };
  const count = (outcome: BatchOutcome, batchEvents: number) => {
    events += batchEvents;
    deadLettered += outcome.deadLettered;
    uncounted = {
      applied: uncounted.applied + outcome.applied,
      deadLettered: uncounted.deadLettered + outcome.deadLettered,
    };
  };
  const committed = () => {
    metrics.projectedEvents.inc(labels, uncounted.applied);
    if (uncounted.deadLettered > 0) metrics.deadLetters.inc(labels, uncounted.deadLettered);
    uncounted = { applied: 0, deadLettered: 0 };
  };

  const live = await liveSchemaOf(client, projection.tables[0]!);
  const shadow = shadowSchemaFor(projection.name);
  const searchPath = `${quoteIdentifier(shadow)}, ${quoteIdentifier(live)}`;
  const shadowScope: BatchScope = { mode: 'transaction', searchPath, writeLock: false };

  // A rebuild that died earlier may have left its shadow behind; it is never used by anyone else.
  await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(shadow)} CASCADE`);
  await client.query(`CREATE SCHEMA ${quoteIdentifier(shadow)}`);
  for (const table of [...projection.tables, 'projection_checkpoints']) {
    await createShadowTable(client, live, shadow, table);
  }
  logger.info({ shadow }, 'rebuild started');

  let applied: GlobalPosition | undefined;

  const replay: ShadowRebuild['replay'] = async (batchEvents, through, head) => {
    if (through !== undefined && (applied === undefined || comparePositions(through, applied) > 0)) {
      count(
        await applyBatch(
          client,
          projection,
          { events: batchEvents, after: applied, through },
          shadowScope,
          clock(),
        ),
        batchEvents.length,
      );
      applied = through;
      committed();
      if (head !== undefined && head.position.commit > 0n) {
        estimatedTotal = Math.round(
          (events * Number(head.position.commit)) / Math.max(1, Number(through.commit)),
        );
      }
    }
    report('replaying');
  };

  // What arrived since the bulk replay, still without holding anyone up. Each pass only goes as far
  // as the head when it began, so a busy ingest cannot keep the rebuild chasing it forever.
  const catchUpTo = async (bound: GlobalPosition, scope: BatchScope): Promise<number> => {
    let caughtUp = 0;
    for (;;) {
      const pending = [];
      let beyond = false;
      for await (const event of eventStore.readAll({
        streamPrefixes: options.streamPrefixes,
        from: applied,
        maxCount: options.maxBatchEvents + 1,
      })) {
        if (comparePositions(event.position, bound) > 0) {
          beyond = true;
          break;
        }
        if (applied === undefined || comparePositions(event.position, applied) > 0) pending.push(event);
      }
      const last = pending.at(-1);
      if (last === undefined) return caughtUp;
      count(
        await applyBatch(
          client,
          projection,
          { events: pending, after: applied, through: last.position },
          scope,
          clock(),
        ),
        pending.length,
      );
      caughtUp += pending.length;
      applied = last.position;
      if (scope.mode === 'transaction') committed();
      report('catching-up');
      if (beyond) return caughtUp;
    }
  };
  const catchUp = async (scope: BatchScope): Promise<void> => {
    for (let pass = 0; pass < maxUnlockedPasses; pass += 1) {
      const current = await readHead(eventStore, options.streamPrefixes);
      if (current === undefined) return;
      // Close enough: what is left is done under the lock, where the head stands still for us.
      if ((await catchUpTo(current.position, scope)) < options.maxBatchEvents) return;
    }
  };

  const finish = async (): Promise<RebuildResult> => {
    report('indexing');
    for (const table of projection.tables) await createShadowIndexes(client, live, shadow, table);
    await catchUp(shadowScope);

    // The last events and the swap, as one transaction holding the projection's write lock.
    for (let attempt = 1; ; attempt += 1) {
      const before = { events, deadLettered, applied, uncounted };
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(options.swapLockTimeoutMs))}`);
        await lockForTransaction(client, 'write', projection.name);
        await client.query(`SET LOCAL search_path TO ${searchPath}`);
        // Appends go on, but the live runner is held: the head read now bounds what it can
        // have applied, and everything after it is left to the live runner.
        const head = await readHead(eventStore, options.streamPrefixes);
        if (head !== undefined) await catchUpTo(head.position, { mode: 'savepoint' });
        report('swapping');
        await client.query(`SET LOCAL search_path TO ${quoteIdentifier(live)}`);
        const liveCheckpoint = await loadCheckpoint(client, projection.name);
        // The live runner never gets past what the store held when we took the lock, so the
        // shadow holds everything it had applied; the checkpoint never moves backwards.
        const checkpoint = laterPosition(applied, liveCheckpoint);
        for (const table of projection.tables) await client.query(`DROP TABLE ${qualified(live, table)}`);
        for (const table of projection.tables) {
          await client.query(`ALTER TABLE ${qualified(shadow, table)} SET SCHEMA ${quoteIdentifier(live)}`);
        }
        if (checkpoint !== undefined) await saveCheckpoint(client, projection.name, checkpoint, clock());
        await client.query(`DROP SCHEMA ${quoteIdentifier(shadow)} CASCADE`);
        await client.query('COMMIT');
        committed();
        logger.info(
          {
            events,
            deadLettered,
            checkpoint: checkpoint === undefined ? 'start' : formatPosition(checkpoint),
          },
          'rebuild swapped in',
        );
        report('done');
        return { projection: projection.name, events, deadLettered, checkpoint };
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        ({ events, deadLettered, applied, uncounted } = before);
        if (!lockNotAvailable(error) || attempt >= options.swapAttempts) throw error;
        logger.warn({ attempt }, 'readers held the live tables too long; retrying the swap');
        await catchUp(shadowScope);
      }
    }
  };

  return { replay, finish };
};

/**
 * The bulk replay: one subscription from the start until it has caught up, each batch applied to
 * every shadow side by side, each on its own session.
 */
const replayInto = async (
  shadows: readonly ShadowRebuild[],
  { eventStore, clock }: RebuildDependencies,
  options: RebuildOptions,
): Promise<void> => {
  const head = await readHead(eventStore, options.streamPrefixes);
  const feed = openFeed(eventStore.subscribeToAll({ streamPrefixes: options.streamPrefixes }), {
    highWater: options.maxBatchEvents * 2,
    start: undefined,
    now: () => clock().getTime(),
  });
  try {
    for (let caughtUp = false; !caughtUp;) {
      const messages = await feed.take(options.maxBatchEvents);
      if (messages.length === 0) throw new RebuildError('the replay subscription closed early');
      const batch = feedBatch(messages);
      caughtUp = batch.caughtUp;
      // All settle before anything else uses a session (or the caller ends them).
      const outcomes = await Promise.allSettled(
        shadows.map((shadow) => shadow.replay(batch.events, batch.through, head)),
      );
      const failure = outcomes.find((outcome) => outcome.status === 'rejected');
      if (failure !== undefined) throw failure.reason;
    }
  } finally {
    await feed.close();
  }
};

/**
 * Rebuilds the projections, reading the event store once for their bulk replay; then builds the
 * indexes, catches up and swaps in one projection after another. Throws `RebuildInProgressError`,
 * before any work, when another rebuild of one of them runs. Each projection's live tables stay
 * untouched unless its own swap committed: when a later projection fails, those swapped in before
 * it stay swapped, each complete and correct on its own.
 */
export const rebuildProjections = async (
  projections: readonly Projection[],
  dependencies: RebuildDependencies,
  options: RebuildOptions,
): Promise<RebuildResult[]> => {
  const names = projections.map((projection) => projection.name);
  const repeated = names.find((name, index) => names.indexOf(name) !== index);
  if (repeated !== undefined) throw new RebuildError(`projection ${repeated} is given twice`);
  const claimed: ClaimedProjection[] = [];
  try {
    // Every lock first, so a rebuild already running stops this one before it does any work.
    for (const projection of projections) claimed.push(await claim(projection, dependencies));
    const shadows: ShadowRebuild[] = [];
    for (const projection of claimed) shadows.push(await createShadow(projection, dependencies, options));
    if (shadows.length > 0) await replayInto(shadows, dependencies, options);
    const results: RebuildResult[] = [];
    for (const shadow of shadows) results.push(await shadow.finish());
    return results;
  } finally {
    for (const projection of claimed) projection.release();
  }
};

/** Rebuilds one projection; see `rebuildProjections`. */
export const rebuildProjection = async (
  projection: Projection,
  dependencies: RebuildDependencies,
  options: RebuildOptions,
): Promise<RebuildResult> => {
  const [result] = await rebuildProjections([projection], dependencies, options);
  return result!;
};

export const defaultRebuildOptions = {
  maxBatchEvents: 2000,
  swapLockTimeoutMs: 10_000,
  swapAttempts: 5,
} as const;
