/**
 * Migrating the planned stores without opening them for use: the standalone step of
 * `calltrail migrate`, reporting what it applied.
 */
import type { Config } from '../config.ts';
import { migrateReadModels, openDatabase } from '../database/database.ts';
import type { Logger } from '../logger.ts';
import { describeEventStore, migrateEventStoreOf } from './adapters.ts';
import { postgresLocations, startEmbeddedStores } from './embedded.ts';
import type { StoreLocations } from './open.ts';
import { planStores, usesEmbedded } from './plan.ts';

export interface MigrationReport {
  /** Event-store migrations applied now; undefined when the event store is EventStoreDB. */
  readonly eventStore: readonly string[] | undefined;
  /** Read-model migrations applied now. */
  readonly readModels: readonly string[];
  readonly locations: StoreLocations;
}

/** Applies the event-store (when on Postgres) and read-model migrations, then closes everything. */
export const migrateStores = async (config: Config, logger: Logger): Promise<MigrationReport> => {
  const plan = planStores(config);
  const embedded = usesEmbedded(plan) ? await startEmbeddedStores(config, logger, {}) : undefined;
  try {
    const locations = postgresLocations(embedded);
    const eventStore = await migrateEventStoreOf(plan.eventStore, locations, config);
    const database = openDatabase(locations.url(plan.readModels), { max: 1 });
    let readModels: string[];
    try {
      readModels = await migrateReadModels(database);
    } finally {
      await database.close();
    }
    return {
      eventStore,
      readModels,
      locations: {
        eventStore:
          describeEventStore(plan.eventStore, locations) +
          (eventStore === undefined ? ' (nothing to migrate)' : ''),
        readModels: `PostgreSQL in ${locations.describe(plan.readModels)}`,
      },
    };
  } finally {
    await embedded?.stop();
  }
};
