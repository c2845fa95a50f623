/**
 * Opening and closing calltrail's stores from its configuration: the plan (`plan.ts`), the embedded
 * server when the plan needs it (`embedded.ts`), generated credentials for the zero-configuration
 * default (`credentials.ts`), the event store (`adapters.ts`) and the migrated read-model database.
 * Every command that needs stores goes through here, so they all agree on what the configuration
 * means.
 */
import type { Config } from '../config.ts';
import { migrateReadModels, openDatabase, type Database } from '../database/database.ts';
import type { EmbeddedPostgresServer } from '../database/embedded-postgres.ts';
import type { EventStore } from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import { describeEventStore, openEventStore } from './adapters.ts';
import { applyGeneratedSecrets, type GeneratedSecrets } from './credentials.ts';
import { postgresLocations, startEmbeddedStores, type OpenStoresOptions } from './embedded.ts';
import { planStores, usesEmbedded } from './plan.ts';
import { inspectConnectedRole, type ConnectedRole } from './runtime-role.ts';

export interface Stores {
  readonly eventStore: EventStore;
  readonly database: Database;
  /** The configuration with any secrets the embedded default generated filled in. */
  readonly config: Config;
  /** Where each store is, for logs: no credentials. */
  readonly locations: StoreLocations;
  /** Credentials taken from the data directory's secrets file rather than the environment. */
  readonly generatedSecrets: GeneratedSecrets | undefined;
  /** Who the PostgreSQL event store is connected as (see `runtime-role.ts`); undefined otherwise. */
  readonly connectedRole: ConnectedRole | undefined;
  close(): Promise<void>;
}

export interface StoreLocations {
  readonly eventStore: string;
  readonly readModels: string;
}

/** Runs every step even when one fails; reports the first failure afterwards. */
const closeInOrder = async (steps: readonly (() => Promise<void>)[], logger: Logger): Promise<void> => {
  let failure: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      logger.error({ err: error }, 'error while closing the stores');
      failure ??= error;
    }
  }
  if (failure !== undefined) {
    throw failure instanceof Error ? failure : new Error('closing the stores failed', { cause: failure });
  }
};

/**
 * Opens (and migrates) the stores the configuration names. On failure, whatever was already opened
 * is closed again before the error is rethrown.
 */
export const openStores = async (
  config: Config,
  logger: Logger,
  options: OpenStoresOptions = {},
): Promise<Stores> => {
  const plan = planStores(config);
  let embedded: EmbeddedPostgresServer | undefined;
  let eventStore: EventStore | undefined;
  let database: Database | undefined;
  const close = () =>
    closeInOrder(
      [async () => eventStore?.close(), async () => database?.close(), async () => embedded?.stop()],
      logger,
    );
  try {
    if (usesEmbedded(plan)) embedded = await startEmbeddedStores(config, logger, options);
    const locations = postgresLocations(embedded);

    const { config: effective, generated } = plan.embeddedDefault
      ? await applyGeneratedSecrets(config, logger)
      : { config, generated: undefined };

    eventStore = await openEventStore(plan.eventStore, locations, config, logger);
    database = openDatabase(locations.url(plan.readModels), {
      connectTimeoutMs: config.readModels.connectTimeoutMs,
      statementTimeoutMs: config.readModels.statementTimeoutMs,
    });
    await migrateReadModels(database);
    const connectedRole =
      plan.eventStore.kind === 'postgres'
        ? await inspectConnectedRole(locations.url(plan.eventStore.location), {
            timeoutMs: config.readModels.connectTimeoutMs,
            embedded: plan.eventStore.location.kind === 'embedded',
            logger,
          })
        : undefined;

    return {
      eventStore,
      database,
      config: effective,
      locations: {
        eventStore: describeEventStore(plan.eventStore, locations),
        readModels: `PostgreSQL in ${locations.describe(plan.readModels)}`,
      },
      generatedSecrets: generated,
      connectedRole,
      close,
    };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
};
