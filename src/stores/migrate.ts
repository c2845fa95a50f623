/**
 * Migrating the planned stores without opening them for use: the standalone step of
 * `calltrail migrate`, reporting what it applied.
 */
import pg from 'pg';
import type { Config } from '../config.ts';
import { migrateReadModels, openDatabase } from '../database/database.ts';
import type { Logger } from '../logger.ts';
import { describeEventStore, migrateEventStoreOf } from './adapters.ts';
import { postgresLocations, startEmbeddedStores } from './embedded.ts';
import type { StoreLocations } from './open.ts';
import { planStores, usesEmbedded, type PostgresLocation } from './plan.ts';
import { grantRuntimeRole, RuntimeRoleError, validateRuntimeRoleName } from './runtime-role.ts';

export interface MigrationReport {
  /** Event-store migrations applied now; undefined when the event store is EventStoreDB. */
  readonly eventStore: readonly string[] | undefined;
  /** Read-model migrations applied now. */
  readonly readModels: readonly string[];
  readonly locations: StoreLocations;
  /** The runtime role set up, when one was asked for. */
  readonly runtimeRole?: { readonly name: string; readonly created: boolean };
}

export interface MigrateOptions {
  /** Create (when absent) and grant the role serve and project should run as. */
  readonly runtimeRole?: string | undefined;
}

/** Grants the runtime role in each database the stores use (one when they share it). */
const setUpRuntimeRole = async (
  name: string,
  databases: readonly { url: string; eventStore: boolean; readModels: boolean }[],
  connectTimeoutMs: number,
): Promise<{ name: string; created: boolean }> => {
  let created = false;
  for (const { url, ...parts } of databases) {
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: connectTimeoutMs,
      application_name: 'calltrail migrate runtime role',
    });
    client.on('error', () => {});
    await client.connect();
    try {
      created = (await grantRuntimeRole(client, name, parts)).created || created;
    } finally {
      await client.end().catch(() => {});
    }
  }
  return { name, created };
};

const externalUrl = (location: PostgresLocation): string | undefined =>
  location.kind === 'external' ? location.url : undefined;

/** Applies the event-store (when on Postgres) and read-model migrations, then closes everything. */
export const migrateStores = async (
  config: Config,
  logger: Logger,
  options: MigrateOptions = {},
): Promise<MigrationReport> => {
  const plan = planStores(config);
  if (options.runtimeRole !== undefined) {
    validateRuntimeRoleName(options.runtimeRole);
    // The embedded server is reached only as its own superuser, so a second role could not be used.
    if (usesEmbedded(plan)) {
      throw new RuntimeRoleError(
        '--runtime-role needs an external PostgreSQL (CALLTRAIL_DATABASE_URL, or a postgres:// ' +
          'CALLTRAIL_EVENTSTORE_URL for the event store and CALLTRAIL_DATABASE_URL for the read models)',
      );
    }
  }
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
    const eventStoreUrl =
      plan.eventStore.kind === 'postgres' ? externalUrl(plan.eventStore.location) : undefined;
    const readModelsUrl = externalUrl(plan.readModels);
    const runtimeRole =
      options.runtimeRole === undefined || readModelsUrl === undefined
        ? undefined
        : await setUpRuntimeRole(
            options.runtimeRole,
            eventStoreUrl === undefined || eventStoreUrl === readModelsUrl
              ? [{ url: readModelsUrl, eventStore: eventStoreUrl !== undefined, readModels: true }]
              : [
                  { url: eventStoreUrl, eventStore: true, readModels: false },
                  { url: readModelsUrl, eventStore: false, readModels: true },
                ],
            config.readModels.connectTimeoutMs,
          );
    return {
      eventStore,
      readModels,
      ...(runtimeRole === undefined ? {} : { runtimeRole }),
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
