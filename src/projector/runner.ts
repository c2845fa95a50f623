/**
 * Runs the projections of one projector process. Per projection it wins (or waits for) the
 * projection's leader lock, on a database session of the projection's own that also does all its
 * writes (so nothing is written without the lock). The projections it leads share one subscription,
 * from the earliest of their checkpoints, so the store is read once for all of them; each batch goes
 * to every projection at once, each in a transaction of its own with its checkpoint, skipping what
 * that projection already has.
 *
 * Everything that can go wrong ends in "resubscribe from the stored checkpoints": a dropped
 * subscription (with backoff), a silent one (the watchdog sees the store's head move while the
 * subscription does not), another writer moving a checkpoint (a rebuild swap), a lost database
 * session (which also gives up the leadership, so a standby may take over).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import {
  comparePositions,
  formatPosition,
  type EventStore,
  type GlobalPosition,
  type RecordedEvent,
} from '../event-store/event-store.ts';
import type { ProjectionStatus } from './status.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { applyBatch } from './batch.ts';
import { CheckpointMovedError, laterPosition, loadCheckpoint, samePosition } from './checkpoints.ts';
import { createElection, type RunnerRole } from './election.ts';
import { feedBatch, openFeed, type Feed } from './feed.ts';
import { startLagWatchdog } from './watchdog.ts';
import type { Projection } from '../../projections/projection.ts';

export interface RunnerDependencies {
  readonly eventStore: EventStore;
  readonly pool: pg.Pool;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: () => Date;
}

export interface RunnerOptions {
  /** Which streams to subscribe to; in production, those the projections fold. */
  readonly streamPrefixes: readonly string[];
  readonly maxBatchEvents: number;
  readonly watchdogIntervalMs: number;
  /** How long the subscription may stay silent while the store's head is ahead before a restart. */
  readonly stallTimeoutMs: number;
  /** How often a projection led elsewhere is tried again. */
  readonly standbyPollMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  readonly lagCountLimit: number;
  readonly lagLogIntervalMs: number;
  /** A catch-up that applied at least this many events refreshes the read models' statistics. */
  readonly analyzeAfterEvents: number;
}

export type { RunnerRole } from './election.ts';

/** One projection as this process runs it. */
export interface ProjectionRunner {
  readonly projection: string;
  readonly role: RunnerRole;
  status(): ProjectionStatus;
  /** Measures lag now (the watchdog does it periodically). */
  refreshLag(): Promise<void>;
}

export interface Runner {
  readonly runners: readonly ProjectionRunner[];
  /** Stops the subscription after the batch in flight commits. */
  stop(): Promise<void>;
}

const formatCheckpoint = (position: GlobalPosition | undefined) =>
  position === undefined ? 'start' : formatPosition(position);

/** The earliest checkpoint: undefined (the start of $all) if any projection has none yet. */
const earliest = (positions: Iterable<GlobalPosition | undefined>): GlobalPosition | undefined => {
  let result: GlobalPosition | undefined;
  for (const position of positions) {
    if (position === undefined) return undefined;
    if (result === undefined || comparePositions(position, result) < 0) result = position;
  }
  return result;
};

export const startRunner = (
  projections: readonly Projection[],
  dependencies: RunnerDependencies,
  options: RunnerOptions,
): Runner => {
  const { eventStore, pool, metrics, clock } = dependencies;
  const logger = dependencies.logger;
  const loggers = new Map(
    projections.map((projection) => [projection, logger.child({ projection: projection.name })]),
  );
  const log = (projection: Projection) => loggers.get(projection) ?? logger;
  let stopping = false;
  let feed: Feed | undefined;
  /** Aborted on stop: wakes whatever sleeps. */
  const stopped = new AbortController();

  const sleep = (ms: number): Promise<void> =>
    delay(ms, undefined, { signal: stopped.signal }).catch(() => {});

  const election = createElection(projections, { pool, logger, clock, log, stopping: () => stopping });
  const { sessions, elect, resign, standingBy } = election;

  let progressed = false;

  /**
   * One subscription for the projections led, from the earliest of their checkpoints, until it is
   * closed or another projection is won (returns) or it fails (throws).
   */
  const follow = async (): Promise<void> => {
    const running = projections.flatMap((projection) => {
      const client = sessions.get(projection);
      return client === undefined ? [] : [{ projection, client }];
    });
    const applied = new Map<Projection, GlobalPosition | undefined>();
    for (const { projection, client } of running) {
      applied.set(projection, await loadCheckpoint(client, projection.name));
    }
    const start = earliest(applied.values());
    const current = openFeed(
      eventStore.subscribeToAll({ after: start, streamPrefixes: options.streamPrefixes }),
      {
        highWater: options.maxBatchEvents * 2,
        start,
        now: () => clock().getTime(),
      },
    );
    feed = current;
    logger.debug(
      { after: formatCheckpoint(start), projections: running.map(({ projection }) => projection.name) },
      'subscribed',
    );

    const apply = async (
      projection: Projection,
      client: pg.ClientBase,
      events: readonly RecordedEvent[],
      through: GlobalPosition | undefined,
    ): Promise<void> => {
      const after = applied.get(projection);
      const next = laterPosition(after, through);
      if (next === undefined || samePosition(next, after)) return;
      const unseen =
        after === undefined ? events : events.filter((event) => comparePositions(event.position, after) > 0);
      const outcome = await applyBatch(
        client,
        projection,
        { events: unseen, after, through: next },
        { mode: 'transaction' },
        clock(),
      );
      applied.set(projection, next);
      progressed = true;
      const labels = { projection: projection.name };
      metrics.projectedEvents.inc(labels, outcome.applied);
      if (outcome.deadLettered > 0) {
        metrics.deadLetters.inc(labels, outcome.deadLettered);
        log(projection).warn(
          { deadLettered: outcome.deadLettered },
          'skipped poison events; see projection_dead_letters',
        );
      }
    };

    // Queries plan with the tables' statistics; after a large catch-up they are stale until
    // autovacuum gets round to them, and a filtered listing can pick a plan a hundred times slower.
    let appliedSinceSubscribed = 0;
    try {
      while (!stopping) {
        const messages = standingBy()
          ? await current.takeWithin(options.maxBatchEvents, options.standbyPollMs)
          : await current.take(options.maxBatchEvents);
        if (messages === 'idle') {
          // Nothing to apply: a good moment to try the projections another process runs.
          if (await elect()) return;
          continue;
        }
        if (messages.length === 0) return;
        const { events, through, caughtUp } = feedBatch(messages);
        // Side by side, each on its own session; all settle before anything else uses a session.
        const outcomes = await Promise.allSettled(
          running.map(({ projection, client }) => apply(projection, client, events, through)),
        );
        const failure = outcomes.find((outcome) => outcome.status === 'rejected');
        if (failure !== undefined) throw failure.reason;
        appliedSinceSubscribed += events.length;
        if (caughtUp) {
          if (appliedSinceSubscribed >= options.analyzeAfterEvents)
            void analyze(running.map(({ projection }) => projection));
          logger.info(
            {
              checkpoints: Object.fromEntries(
                running.map(({ projection }) => [projection.name, formatCheckpoint(applied.get(projection))]),
              ),
            },
            'caught up',
          );
          void refreshLag();
        }
        if (
          standingBy() &&
          clock().getTime() - election.lastElection >= options.standbyPollMs &&
          (await elect())
        )
          return;
      }
    } finally {
      feed = undefined;
      await current.close();
    }
  };

  const analyze = async (projections: readonly Projection[]): Promise<void> => {
    const tables = projections.flatMap((projection) => projection.tables);
    try {
      await pool.query(`ANALYZE ${tables.map((table) => `"${table}"`).join(', ')}`);
    } catch (error) {
      logger.warn({ err: error, tables }, 'could not refresh read-model statistics after catching up');
    }
  };

  const run = async (): Promise<void> => {
    let backoff = options.retryInitialMs;
    while (!stopping) {
      try {
        await elect();
        if (sessions.size === 0) {
          await sleep(options.standbyPollMs);
          continue;
        }
        progressed = false;
        await follow();
        backoff = options.retryInitialMs;
      } catch (error) {
        if (stopping) break;
        if (error instanceof CheckpointMovedError) {
          logger.info({ reason: error.message }, 'checkpoint moved by another writer; resubscribing');
          continue;
        }
        if (progressed) backoff = options.retryInitialMs;
        logger.warn({ err: error, retryInMs: backoff }, 'projector failed; resubscribing');
        // A session that no longer answers has lost its leader lock with it: back to the election.
        await election.dropLostSessions();
        await sleep(backoff);
        backoff = Math.min(backoff * 2, options.retryMaxMs);
      }
    }
    for (const projection of projections) resign(projection, 'stopped');
  };

  const watchdog = startLagWatchdog(
    projections,
    { eventStore, pool, logger, metrics, clock, feed: () => feed, stopping: () => stopping },
    options,
  );
  const { refreshLag } = watchdog;
  const running = run().finally(() => {
    for (const projection of projections) resign(projection, 'stopped');
  });
  void refreshLag();

  return {
    runners: projections.map((projection) => ({
      projection: projection.name,
      get role() {
        return election.role(projection);
      },
      status: () => {
        const lag = watchdog.lag(projection);
        return {
          projection: projection.name,
          caughtUp: lag.caughtUp,
          lagEvents: lag.lagEvents,
          lagSeconds: lag.lagSeconds,
        };
      },
      refreshLag,
    })),
    stop: async () => {
      if (!stopping) {
        stopping = true;
        const watchdogStopped = watchdog.stop();
        stopped.abort();
        await feed?.close();
        await running;
        await watchdogStopped;
      }
      await running;
    },
  };
};
