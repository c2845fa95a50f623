/**
 * Where each store lives, decided from the configuration alone:
 *
 * | CALLTRAIL_EVENTSTORE_URL | CALLTRAIL_DATABASE_URL | event store                    | read models        |
 * |--------------------------|------------------------|--------------------------------|--------------------|
 * | esdb/kurrentdb           | set                    | EventStoreDB                   | DATABASE_URL       |
 * | esdb/kurrentdb           | unset                  | EventStoreDB                   | embedded Postgres  |
 * | postgres                 | set                    | that Postgres                  | DATABASE_URL       |
 * | postgres                 | unset                  | that Postgres                  | the same database  |
 * | unset                    | set                    | DATABASE_URL (schema event_store) | DATABASE_URL    |
 * | unset                    | unset                  | embedded Postgres              | embedded Postgres  |
 * The last row is the zero-configuration default: everything lives under CALLTRAIL_DATA_DIR, and
 * webhook and API credentials that are not configured are generated there once and kept.
 */
import type { Config } from '../config.ts';

export type PostgresLocation =
  { readonly kind: 'external'; readonly url: string } | { readonly kind: 'embedded' };

export interface StorePlan {
  readonly eventStore:
    | { readonly kind: 'eventstoredb'; readonly url: string }
    | { readonly kind: 'postgres'; readonly location: PostgresLocation };
  readonly readModels: PostgresLocation;
  /** Everything in the embedded Postgres, nothing configured: the zero-configuration default. */
  readonly embeddedDefault: boolean;
}

const eventStoreDbScheme = /^(esdb|kurrentdb)(\+discover)?:\/\//i;

/** Decides where each store lives; see the table at the top of this file. */
export const planStores = (config: Pick<Config, 'eventStoreUrl' | 'databaseUrl'>): StorePlan => {
  const { eventStoreUrl, databaseUrl } = config;
  const external = (url: string): PostgresLocation => ({ kind: 'external', url });
  const embedded: PostgresLocation = { kind: 'embedded' };
  if (eventStoreUrl !== undefined && eventStoreDbScheme.test(eventStoreUrl)) {
    return {
      eventStore: { kind: 'eventstoredb', url: eventStoreUrl },
      readModels: databaseUrl === undefined ? embedded : external(databaseUrl),
      embeddedDefault: false,
    };
  }
  if (eventStoreUrl !== undefined) {
    return {
      eventStore: { kind: 'postgres', location: external(eventStoreUrl) },
      readModels: external(databaseUrl ?? eventStoreUrl),
      embeddedDefault: false,
    };
  }
  if (databaseUrl !== undefined) {
    return {
      eventStore: { kind: 'postgres', location: external(databaseUrl) },
      readModels: external(databaseUrl),
      embeddedDefault: false,
    };
  }
  return {
    eventStore: { kind: 'postgres', location: embedded },
    readModels: embedded,
    embeddedDefault: true,
  };
};

export const usesEmbedded = (plan: StorePlan): boolean =>
  plan.readModels.kind === 'embedded' ||
  (plan.eventStore.kind === 'postgres' && plan.eventStore.location.kind === 'embedded');
