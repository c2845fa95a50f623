/**
 * The composition root of the stores: the only module that names a concrete event-store adapter.
 * Everything else sees the `EventStore` port.
 */
import type { Config } from '../config.ts';
import { EventStoreCredentialsError, type EventStore } from '../event-store/event-store.ts';
import { migrateEventStore, openPostgresEventStore } from '../event-store/postgres/postgres-event-store.ts';
import type { Logger } from '../logger.ts';
import { describeUrl, type PostgresLocations } from './embedded.ts';
import type { StorePlan } from './plan.ts';

/** Where the planned event store is, for logs: no credentials. */
export const describeEventStore = (plan: StorePlan['eventStore'], locations: PostgresLocations): string =>
  plan.kind === 'eventstoredb'
    ? `EventStoreDB at ${describeUrl(plan.url)}`
    : `PostgreSQL (schema event_store) in ${locations.describe(plan.location)}`;

/** Connects the planned event store; on PostgreSQL this applies its pending migrations first. */
export const openEventStore = async (
  plan: StorePlan['eventStore'],
  locations: PostgresLocations,
  config: Config,
  logger: Logger,
): Promise<EventStore> => {
  if (plan.kind === 'eventstoredb') {
    // Loaded only when used: the gRPC client is heavy and Postgres deployments never need it.
    const { connectEventStoreDb } = await import('../event-store/eventstoredb.ts');
    const eventStore = connectEventStoreDb(plan.url, { timeoutMs: config.appendTimeoutMs });
    // Refused credentials stop start-up with one clear line; an outage does not (readiness says it).
    try {
      await eventStore.ping();
    } catch (error) {
      if (error instanceof EventStoreCredentialsError) {
        await eventStore.close().catch(() => {});
        throw error;
      }
    }
    return eventStore;
  }
  return openPostgresEventStore(locations.url(plan.location), {
    timeoutMs: config.appendTimeoutMs,
    logger: logger.child({ component: 'event-store' }),
  });
};

/** Applies the planned event store's migrations: the names applied, or undefined for EventStoreDB. */
export const migrateEventStoreOf = async (
  plan: StorePlan['eventStore'],
  locations: PostgresLocations,
  config: Config,
): Promise<string[] | undefined> =>
  plan.kind === 'eventstoredb'
    ? undefined
    : migrateEventStore(locations.url(plan.location), { timeoutMs: config.appendTimeoutMs });
