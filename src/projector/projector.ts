/**
 * The projector: runs every projection in `projections/` against the event store, keeping the
 * read models in Postgres caught up. `calltrail serve` starts it in-process unless
 * `--no-projector`; `calltrail project` runs it alone.
 */
import type { Database } from '../database/database.ts';
import type { EventStore } from '../event-store/event-store.ts';
import type { ProjectionStatusSource } from '../http/health.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';

export interface ProjectorDependencies {
  readonly eventStore: EventStore;
  readonly database: Database;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly clock: () => Date;
}

export interface RunningProjector extends ProjectionStatusSource {
  /** Stops subscriptions after the batch in flight commits. */
  stop(): Promise<void>;
}

export const startProjector = async (_dependencies: ProjectorDependencies): Promise<RunningProjector> => {
  throw new Error('not yet implemented');
};
