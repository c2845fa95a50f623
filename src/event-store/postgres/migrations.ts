/**
 * The event store's schema migrations: the committed SQL files in `migrations/event-store/`, applied
 * in name order, each in its own transaction, under a session advisory lock so that several
 * processes starting at once apply each migration exactly once. Every applied file is recorded with
 * its checksum; an edited or unknown migration stops the adapter rather than guessing.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { migrationsFolder } from '../../migrations/folder.ts';
import { isUnavailable, translateError, withTimeout } from './errors.ts';

export const eventStoreMigrationsFolder = migrationsFolder('event-store');

/** Lock key 0x63616c6c74726c02 ("calltrl" + 2): one migrator per database at a time. */
const migrationLockKey = '7161124095561722882';

const migrationFilePattern = /^\d{4}_[a-z0-9_]+\.sql$/;

export class EventStoreMigrationError extends Error {
  override readonly name = 'EventStoreMigrationError';
}

interface MigrationFile {
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

const readMigrations = async (folder: string): Promise<MigrationFile[]> => {
  const names = (await readdir(folder)).filter((name) => name.endsWith('.sql')).sort();
  const malformed = names.filter((name) => !migrationFilePattern.test(name));
  if (malformed.length > 0) {
    throw new EventStoreMigrationError(
      `event-store migration file names must look like 0001_name.sql: ${malformed.join(', ')}`,
    );
  }
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(folder, name), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
};

/**
 * Applies pending event-store migrations to the database at `url` and returns the names applied.
 * Throws `EventStoreUnavailableError` when the database cannot be reached within `timeoutMs`, and
 * `EventStoreMigrationError` naming the migration when one fails or the history does not match.
 */
export const migrateEventStore = async (
  url: string,
  options: { timeoutMs: number; folder?: string },
): Promise<string[]> => {
  const migrations = await readMigrations(options.folder ?? eventStoreMigrationsFolder);
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
    // Waiting for another process's migration is expected and unbounded; it holds the lock only
    // while it migrates.
    await client.query('SELECT pg_advisory_lock($1::bigint)', [migrationLockKey]);
    try {
      await client.query(`
        CREATE SCHEMA IF NOT EXISTS event_store;
        CREATE TABLE IF NOT EXISTS event_store.schema_migrations (
          name text PRIMARY KEY,
          checksum text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        );`);
      const { rows } = await client.query<{ name: string; checksum: string }>(
        'SELECT name, checksum FROM event_store.schema_migrations ORDER BY name',
      );
      const known = new Map(migrations.map((migration) => [migration.name, migration]));
      for (const applied of rows) {
        const migration = known.get(applied.name);
        if (migration === undefined) {
          throw new EventStoreMigrationError(
            `the event store was migrated by a newer calltrail (unknown migration ${applied.name}); upgrade calltrail`,
          );
        }
        if (migration.checksum !== applied.checksum) {
          throw new EventStoreMigrationError(
            `event-store migration ${applied.name} was changed after it was applied; restore the original file`,
          );
        }
      }
      const appliedNames = new Set(rows.map((row) => row.name));
      const applying: string[] = [];
      for (const migration of migrations) {
        if (appliedNames.has(migration.name)) continue;
        try {
          await client.query('BEGIN');
          await client.query(migration.sql);
          await client.query('INSERT INTO event_store.schema_migrations (name, checksum) VALUES ($1, $2)', [
            migration.name,
            migration.checksum,
          ]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          if (isUnavailable(error)) throw error;
          throw new EventStoreMigrationError(
            `event-store migration ${migration.name} failed: ${error instanceof Error ? error.message : String(error)}`,
            { cause: error },
          );
        }
        applying.push(migration.name);
      }
      return applying;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1::bigint)', [migrationLockKey]).catch(() => {});
    }
  } catch (error) {
    throw translateError(error, 'migrating');
  } finally {
    await client.end().catch(() => {});
  }
};
