/**
 * The event store's schema migrations: the committed SQL files in `migrations/event-store/`, applied
 * by the migration runner (one lock, checksums) and recorded in `event_store.schema_migrations`.
 */
import pg from 'pg';
import { migrationsFolder } from '../../migrations/folder.ts';
import {
  applyMigrations,
  MigrationError,
  namedHistory,
  readNumberedMigrations,
} from '../../migrations/runner.ts';
import { isUnavailable, translateError, withTimeout } from './errors.ts';

export const eventStoreMigrationsFolder = migrationsFolder('event-store');

export class EventStoreMigrationError extends MigrationError {
  override readonly name = 'EventStoreMigrationError';
}

/**
 * Applies pending event-store migrations to the database at `url` and returns the names applied.
 * Throws `EventStoreUnavailableError` when the database cannot be reached within `timeoutMs`, and
 * `EventStoreMigrationError` naming the migration when one fails or the history does not match.
 */
export const migrateEventStore = async (
  url: string,
  options: { timeoutMs: number; folder?: string },
): Promise<string[]> => {
  const migrations = await readNumberedMigrations(
    options.folder ?? eventStoreMigrationsFolder,
    'event-store',
    EventStoreMigrationError,
  );
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: options.timeoutMs,
    keepAlive: true,
    application_name: 'calltrail migrate event store',
  });
  // A connection lost mid-migration surfaces through the failing query; this keeps it from crashing
  // the process as an unhandled 'error' event.
  client.on('error', () => {});
  await withTimeout(client.connect(), options.timeoutMs, 'connecting to migrate', () => {
    void client.end().catch(() => {});
  });
  try {
    return await applyMigrations(client, {
      label: 'event-store',
      subject: 'the event store was',
      migrations,
      history: namedHistory('event_store', 'schema_migrations'),
      error: EventStoreMigrationError,
      isUnavailable,
    });
  } catch (error) {
    throw translateError(error, 'migrating');
  } finally {
    await client.end().catch(() => {});
  }
};
