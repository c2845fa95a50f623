/**
 * The read-model database: a pg pool and the drizzle client over it, opened once and passed down.
 */
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { migrationsFolder } from '../migrations/folder.ts';
import {
  applyMigrations,
  drizzleHistory,
  MigrationError,
  readDrizzleMigrations,
} from '../migrations/runner.ts';
import * as schema from './schema.ts';

export type ReadModelDb = NodePgDatabase<typeof schema>;

export interface Database {
  readonly pool: pg.Pool;
  readonly db: ReadModelDb;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  readonly max?: number;
  /** Bound on getting a connection, a new one included. */
  readonly connectTimeoutMs?: number;
  /**
   * Bound on one statement: the server cancels it past this, and the client gives up a little later
   * still when the server itself does not answer (frozen, or the network gone).
   */
  readonly statementTimeoutMs?: number;
}

/** Past the statement timeout, how long the client waits for the server's own cancellation. */
const clientGraceMs = 1_000;

export const openDatabase = (connectionString: string, options: DatabaseOptions = {}): Database => {
  const connectTimeoutMs = options.connectTimeoutMs ?? 3_000;
  const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + clientGraceMs,
  });
  // An idle client that loses its server must not crash the process; the next query reports it.
  pool.on('error', () => {});
  return { pool, db: drizzle(pool, { schema }), close: () => pool.end() };
};

const readModelMigrations = migrationsFolder('read-models');

export class ReadModelMigrationError extends MigrationError {
  override readonly name = 'ReadModelMigrationError';
}

/**
 * Applies the committed read-model migrations (drizzle-kit's, recorded in drizzle's history table)
 * and returns the names applied; throws `MigrationError` saying which step failed.
 */
export const migrateReadModels = async (
  database: Database,
  options: { folder?: string } = {},
): Promise<string[]> => {
  try {
    const migrations = await readDrizzleMigrations(
      options.folder ?? readModelMigrations,
      'read-model',
      ReadModelMigrationError,
    );
    const client = await database.pool.connect();
    let broken: Error | undefined;
    try {
      return await applyMigrations(client, {
        label: 'read-model',
        subject: 'the read models were',
        migrations,
        history: drizzleHistory('public', migrations),
        error: ReadModelMigrationError,
      });
    } catch (error) {
      // Whatever state the session is in (a lock still held), it is not handed out again.
      broken = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.release(broken);
    }
  } catch (error) {
    if (error instanceof MigrationError) throw error;
    throw new ReadModelMigrationError(
      `read-model migration failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
};
