/**
 * Opening and closing calltrail's stores from its configuration: which event store (EventStoreDB,
 * an external Postgres, or the embedded default) and which read-model database. Every command that
 * needs stores goes through here, so they all agree on what the configuration means.
 */
import type { Config } from './config.ts';
import type { Database } from './database/database.ts';
import type { EventStore } from './event-store/event-store.ts';
import type { Logger } from './logger.ts';

export interface Stores {
  readonly eventStore: EventStore;
  readonly database: Database;
  /** The configuration with any secrets the embedded default generated filled in. */
  readonly config: Config;
  close(): Promise<void>;
}

export const openStores = async (_config: Config, _logger: Logger): Promise<Stores> => {
  throw new Error('not yet implemented');
};
