/**
 * The cluster's `postmaster.pid`, which the server writes while it runs: which process serves the
 * cluster, on which port, and whether it is ready. A server left running by a calltrail that was
 * killed is found here and shut down before a new one starts.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { EmbeddedPostgresError } from './errors.ts';
import { processCommandLine, processIsRunning, processesWorkingIn, waitUntil } from '../../processes.ts';

const stopTimeoutMs = 30_000;

export interface PostmasterStatus {
  readonly pid: number;
  readonly port: number;
  readonly status: string;
}

export const readPostmasterPid = async (clusterDir: string): Promise<PostmasterStatus | undefined> => {
  const text = await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const lines = text.split('\n');
  return { pid: Number(lines[0]), port: Number(lines[3]), status: (lines[7] ?? '').trim() };
};

/**
 * Before starting, makes sure nothing else serves the cluster. A server still running on it while
 * nobody holds the lock was left behind by a calltrail that was killed: shut it down cleanly (fast
 * shutdown: no data loss). A postmaster that is dead or a zombie (killed with its process group, and
 * never collected by its parent) serves nothing; PostgreSQL itself would still refuse to start while
 * its pid is taken, so its postmaster.pid is removed, unless some of its server processes survived.
 */
export const stopLeftoverServer = async (clusterDir: string, log: (line: string) => void): Promise<void> => {
  const postmaster = await readPostmasterPid(clusterDir);
  if (postmaster === undefined) return;
  if (!Number.isSafeInteger(postmaster.pid) || !(await processIsRunning(postmaster.pid))) {
    const survivors = await processesWorkingIn(clusterDir);
    if (survivors.length > 0) {
      throw new EmbeddedPostgresError(
        `processes ${survivors.join(', ')} of a PostgreSQL server that is gone still run on ${clusterDir}; stop them first`,
      );
    }
    log(`removing postmaster.pid of PostgreSQL server ${postmaster.pid}, which is no longer running`);
    await rm(path.join(clusterDir, 'postmaster.pid'), { force: true });
    return;
  }
  const commandLine = await processCommandLine(postmaster.pid);
  if (commandLine === undefined || !commandLine.includes(clusterDir)) {
    throw new EmbeddedPostgresError(
      `process ${postmaster.pid} holds the PostgreSQL cluster in ${clusterDir} (postmaster.pid); stop it first`,
    );
  }
  log(`stopping PostgreSQL server ${postmaster.pid} left running on ${clusterDir}`);
  process.kill(postmaster.pid, 'SIGINT');
  if (!(await waitUntil(async () => !(await processIsRunning(postmaster.pid)), stopTimeoutMs))) {
    throw new EmbeddedPostgresError(
      `the PostgreSQL server ${postmaster.pid} left running on ${clusterDir} did not stop; stop it first`,
    );
  }
};
