/**
 * The embedded PostgreSQL server of the data directory, when the plan puts a store there, and the
 * one way a planned PostgreSQL location becomes a connection string and a description for logs.
 */
import pg from 'pg';
import type { Config } from '../config.ts';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '../database/embedded-postgres.ts';
import type { Logger } from '../logger.ts';
import type { PostgresLocation } from './plan.ts';

export interface OpenStoresOptions {
  /**
   * The embedded server of the data directory: `exclusive` (serve) starts it and fails when another
   * calltrail already runs one there; `shared` (the default, for the other commands) uses that one.
   */
  readonly embedded?: 'exclusive' | 'shared';
  /** The embedded server stopped by itself while open. */
  readonly onEmbeddedExit?: (reason: string) => void;
}

/** The database both stores use inside the embedded server. */
export const embeddedDatabaseName = 'calltrail';

/** A connection string without its password, for logs. */
export const describeUrl = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');

const describeEmbedded = (server: EmbeddedPostgresServer): string =>
  `embedded PostgreSQL in ${server.clusterDir} (127.0.0.1:${server.port}, database ${embeddedDatabaseName})`;

const ensureDatabase = async (server: EmbeddedPostgresServer, name: string): Promise<void> => {
  const client = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`).catch((error: unknown) => {
        // Another calltrail sharing the server may have created it a moment ago.
        if ((error as { code?: string }).code !== '42P04') throw error;
      });
    }
  } finally {
    await client.end();
  }
};

const startEmbeddedFor = (config: Config, logger: Logger, options: OpenStoresOptions) =>
  startEmbeddedPostgres({
    dataDir: config.dataDir,
    whenInUse: options.embedded === 'exclusive' ? 'fail' : 'attach',
    onLog: (line) => logger.debug({ component: 'embedded-postgres' }, line),
    ...(options.onEmbeddedExit ? { onUnexpectedExit: options.onEmbeddedExit } : {}),
  });

/** Connection strings and log descriptions of planned PostgreSQL locations. */
export interface PostgresLocations {
  url(location: PostgresLocation): string;
  /** Where it is, without credentials. */
  describe(location: PostgresLocation): string;
}

/** Resolves locations against `server`, the embedded server when the plan started one. */
export const postgresLocations = (server: EmbeddedPostgresServer | undefined): PostgresLocations => {
  const url = (location: PostgresLocation): string => {
    if (location.kind === 'external') return location.url;
    if (server === undefined) throw new Error('the embedded PostgreSQL is not running');
    return server.urlFor(embeddedDatabaseName);
  };
  return {
    url,
    describe: (location) =>
      location.kind === 'external' || server === undefined
        ? describeUrl(url(location))
        : describeEmbedded(server),
  };
};

/** Starts (or attaches to) the embedded server with calltrail's database in it. */
export const startEmbeddedStores = async (
  config: Config,
  logger: Logger,
  options: OpenStoresOptions,
): Promise<EmbeddedPostgresServer> => {
  const server = await startEmbeddedFor(config, logger, options);
  try {
    await ensureDatabase(server, embeddedDatabaseName);
  } catch (error) {
    await server.stop().catch(() => {});
    throw error;
  }
  return server;
};
