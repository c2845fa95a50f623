/**
 * The read-model database: a pg pool and the drizzle client over it, opened once and passed down.
 */
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { migrationsFolder } from '../migrations/folder.ts';
import * as schema from './schema.ts';

export type ReadModelDb = NodePgDatabase<typeof schema>;

export interface Database {
  readonly pool: pg.Pool;
  readonly db: ReadModelDb;
  close(): Promise<void>;
}

export const openDatabase = (connectionString: string, options: { max?: number } = {}): Database => {
  const pool = new pg.Pool({ connectionString, max: options.max ?? 10 });
  // An idle client that loses its server must not crash the process; the next query reports it.
  pool.on('error', () => {});
  return { pool, db: drizzle(pool, { schema }), close: () => pool.end() };
};

const readModelMigrations = migrationsFolder('read-models');

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/** Applies the committed read-model migrations; throws `MigrationError` saying which step failed. */
export const migrateReadModels = async (
  database: Database,
  options: { folder?: string } = {},
): Promise<void> => {
  try {
    await migrate(database.db, {
      migrationsFolder: options.folder ?? readModelMigrations,
      migrationsSchema: 'public',
    });
  } catch (error) {
    throw new MigrationError(
      `read-model migration failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
};
