/**
 * Where the server's binaries and cluster live when calltrail runs as root. PostgreSQL refuses to run
 * as root, so the server runs as the `postgres` system user, which must be able to reach both. A
 * clone in root's home or another private (0700) folder is out of its reach, and opening that folder
 * to other users is not ours to do. Instead:
 * - the binaries, when that user cannot run them where npm installed them, are copied once (per
 *   build of them) to a root-owned, world-readable place;
 * - the cluster, when that user cannot reach the data directory, is created under the same place,
 *   and the data directory records where (`postgres-location`), so it is found again on every start.
 * Everything else (the password, generated credentials, the lock) stays in the data directory.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Binaries, ServerUser } from './cluster.ts';
import { EmbeddedPostgresError } from './errors.ts';

/** Root-owned, readable and searchable by everyone: where the server user can reach what it needs. */
export const sharedBase = '/var/lib/calltrail/embedded-postgres';

/** In the data directory: the cluster's path when it is not `<dataDir>/postgres`. */
const locationFile = 'postgres-location';

export interface Placement {
  readonly binaries: Binaries;
  readonly clusterDir: string;
}

/** Whether `user` passes `test <flag> <target>`, i.e. can reach it through every parent folder. */
const userCan = (user: ServerUser, flag: '-x', target: string): Promise<boolean> =>
  new Promise((resolve) => {
    execFile('test', [flag, target], { uid: user.uid, gid: user.gid }, (error) => resolve(error === null));
  });

const shortHash = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 16);

const cannotWork = (what: string, error: unknown) =>
  new EmbeddedPostgresError(
    `as root, the embedded PostgreSQL runs as the "postgres" user, which cannot reach ${what}, and ` +
      `${sharedBase} could not be prepared for it (${error instanceof Error ? error.message : String(error)}); ` +
      'run calltrail as an ordinary user, or set CALLTRAIL_DATA_DIR to a folder other users can enter',
    { cause: error },
  );

/** The binaries' installation (bin, lib, share), copied whole: the server finds lib and share beside bin. */
const reachableBinaries = async (binaries: Binaries, user: ServerUser, log: (line: string) => void) => {
  if ((await userCan(user, '-x', binaries.postgres)) && (await userCan(user, '-x', binaries.initdb)))
    return binaries;
  const installation = path.dirname(path.dirname(binaries.postgres));
  const built = await stat(binaries.postgres);
  const target = path.join(
    sharedBase,
    `postgresql-${shortHash(`${await realpath(installation)}:${built.size}:${built.mtimeMs}`)}`,
  );
  const relocated = {
    postgres: path.join(target, path.relative(installation, binaries.postgres)),
    initdb: path.join(target, path.relative(installation, binaries.initdb)),
  };
  if (existsSync(path.join(target, '.complete'))) return relocated;
  try {
    log(`copying the PostgreSQL binaries to ${target}, where the postgres user can run them`);
    await mkdir(sharedBase, { recursive: true, mode: 0o755 });
    const staging = `${target}.${process.pid}.copying`;
    await rm(staging, { recursive: true, force: true });
    await cp(installation, staging, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    await writeFile(path.join(staging, '.complete'), '');
    await rename(staging, target).catch(async (error: unknown) => {
      // Another process copied them meanwhile: theirs are as good.
      await rm(staging, { recursive: true, force: true });
      if (!existsSync(path.join(target, '.complete'))) throw error;
    });
  } catch (error) {
    throw cannotWork(`the PostgreSQL binaries in ${installation}`, error);
  }
  if (!(await userCan(user, '-x', relocated.postgres))) {
    throw cannotWork(`the PostgreSQL binaries copied to ${target}`, new Error('still not executable'));
  }
  return relocated;
};

const reachableClusterDir = async (dataDir: string, user: ServerUser, log: (line: string) => void) => {
  const recorded = (await readFile(path.join(dataDir, locationFile), 'utf8').catch(() => '')).trim();
  if (recorded) return recorded;
  const inDataDir = path.join(dataDir, 'postgres');
  if (existsSync(path.join(inDataDir, 'PG_VERSION')) || (await userCan(user, '-x', dataDir)))
    return inDataDir;
  const parent = path.join(sharedBase, 'clusters', shortHash(await realpath(dataDir)));
  try {
    await mkdir(parent, { recursive: true, mode: 0o755 });
    const clusterDir = path.join(parent, 'postgres');
    await writeFile(path.join(dataDir, `${locationFile}.new`), `${clusterDir}\n`, { mode: 0o600 });
    await rename(path.join(dataDir, `${locationFile}.new`), path.join(dataDir, locationFile));
    log(`the postgres user cannot reach ${dataDir}: its PostgreSQL cluster is kept in ${clusterDir}`);
    return clusterDir;
  } catch (error) {
    throw cannotWork(dataDir, error);
  }
};

/** Without a server user (not root), everything stays where it is. */
export const placeForServerUser = async (
  dataDir: string,
  binaries: Binaries,
  user: ServerUser | undefined,
  log: (line: string) => void,
): Promise<Placement> => {
  if (user === undefined) return { binaries, clusterDir: path.join(dataDir, 'postgres') };
  return {
    binaries: await reachableBinaries(binaries, user, log),
    clusterDir: await reachableClusterDir(dataDir, user, log),
  };
};

/** The cluster of a data directory, as placed by an earlier start (for attaching to it). */
export const recordedClusterDir = async (dataDir: string): Promise<string> =>
  (await readFile(path.join(dataDir, locationFile), 'utf8').catch(() => '')).trim() ||
  path.join(dataDir, 'postgres');
