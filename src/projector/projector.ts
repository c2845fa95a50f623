/**
 * The projector: runs every projection in `projections/` against the event store, keeping the
 * read models in Postgres caught up. `calltrail serve` starts it in-process unless
 * `--no-projector`; `calltrail project` runs it alone.
 *
 * Any number of projector processes may run against one database: per projection one is active and
 * the others stand by (see `checkpoints.ts`), so a second process is a hot spare, never a second writer.
 * The projections one process runs share a single subscription (see `runner.ts`).
 */
import type { Database } from '../database/database.ts';
import type { EventStore } from '../event-store/event-store.ts';
import type { ProjectionStatusSource } from './status.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { projectedStreamPrefixes, projectionNamed, projections } from '../../projections/registry.ts';
import { startRunner, type ProjectionRunner, type RunnerOptions } from './runner.ts';

export interface ProjectorDependencies {
  readonly eventStore: EventStore;
  readonly database: Database;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: () => Date;
}

export interface ProjectorOptions extends RunnerOptions {
  /** Which projections to run, by name; default: all. */
  readonly projections: readonly string[] | undefined;
}

export const defaultProjectorOptions: ProjectorOptions = {
  projections: undefined,
  streamPrefixes: projectedStreamPrefixes,
  // A call's events spread over fewer batches, so its row (and every index entry of it) is rewritten
  // fewer times: 2,000 to 3,000 cost PostgreSQL ~6 µs less per event than 1,000; 5,000 made more
  // garbage than it saved. Live, a batch is whatever has arrived, so this adds no latency.
  maxBatchEvents: 2000,
  watchdogIntervalMs: 5_000,
  stallTimeoutMs: 30_000,
  standbyPollMs: 2_000,
  retryInitialMs: 250,
  retryMaxMs: 30_000,
  lagCountLimit: 1000,
  lagLogIntervalMs: 30_000,
  analyzeAfterEvents: 10_000,
};

export interface RunningProjector extends ProjectionStatusSource {
  readonly runners: readonly ProjectionRunner[];
  /** Stops subscriptions after the batch in flight commits. */
  stop(): Promise<void>;
}

export const startProjector = async (
  dependencies: ProjectorDependencies,
  overrides: Partial<ProjectorOptions> = {},
): Promise<RunningProjector> => {
  const options: ProjectorOptions = { ...defaultProjectorOptions, ...overrides };
  const selected = options.projections?.map(projectionNamed) ?? projections;
  const runner = startRunner(
    selected,
    {
      eventStore: dependencies.eventStore,
      pool: dependencies.database.pool,
      logger: dependencies.logger,
      metrics: dependencies.metrics,
      clock: dependencies.clock,
    },
    options,
  );
  const { runners } = runner;
  dependencies.logger.info(
    { projections: runners.map((each) => each.projection), eventStore: dependencies.eventStore.kind },
    'projector started',
  );
  return {
    runners,
    status: () => runners.map((each) => each.status()),
    stop: () => runner.stop(),
  };
};
