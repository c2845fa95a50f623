/**
 * What calltrail needs to know about other processes (Linux `/proc`), for the embedded server's lock
 * and the outage journal's owner: whether one is still
 * running (a zombie is not: it has exited and only waits for its parent to collect it), whether a pid
 * still names the same process, and what a process runs.
 */
import { readFile, readdir, readlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** Linux only: the fields of `/proc/<pid>/stat` after the command name, or undefined. */
const statFields = async (pid: number): Promise<string[] | undefined> => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
};

/** Whether the pid is taken: by a running process, or by a zombie that still holds it. */
const pidExists = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Whether the pid names a process that is still running. A zombie (state Z) or dead one (X) has
 * exited and holds nothing, though its pid stays taken until its parent collects it, which a
 * container's init may never do.
 */
export const processIsRunning = async (pid: number): Promise<boolean> => {
  if (!pidExists(pid)) return false;
  const state = (await statFields(pid))?.[0];
  return state !== 'Z' && state !== 'X';
};

/** Linux only: the kernel's start time of a process, to tell a live owner from a reused pid. */
export const processStartTime = async (pid: number): Promise<string | undefined> =>
  (await statFields(pid))?.[19];

/** Linux only: a process's command line, to recognise a server running on our cluster. */
export const processCommandLine = async (pid: number): Promise<string | undefined> => {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\u0000').join(' ');
  } catch {
    return undefined;
  }
};

/**
 * Linux only: running processes whose working directory is `directory`. Every PostgreSQL server
 * process works in its cluster directory, so this finds the surviving backends of a dead postmaster.
 */
export const processesWorkingIn = async (directory: string): Promise<number[]> => {
  const found: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => undefined);
    if (cwd === directory && (await processIsRunning(Number(entry)))) found.push(Number(entry));
  }
  return found;
};

/** Polls `condition` every 100 ms; false once `timeoutMs` passed without it holding. */
export const waitUntil = async (condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
};
