/**
 * The cluster's `postmaster.pid`, which the server writes while it runs: which process serves the
 * cluster, on which port, and whether it is ready. A server left running by a calltrail that was
 * killed is found here and shut down before a new one starts.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { EmbeddedPostgresError } from './errors.ts';
import { processCommandLine, processIsAlive, waitUntil } from './processes.ts';

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
 * A server still running on our cluster while nobody holds the lock was left behind by a calltrail
 * that was killed: shut it down cleanly (fast shutdown: no data loss) before starting our own.
 */
export const stopLeftoverServer = async (clusterDir: string, log: (line: string) => void): Promise<void> => {
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
