/**
 * What the embedded server needs to know about other processes (Linux `/proc`): whether one is still
 * running, whether a pid still names the same process, and what a process runs.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export const processIsAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Linux only: the kernel's start time of a process, to tell a live owner from a reused pid. */
export const processStartTime = async (pid: number): Promise<string | undefined> => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
};

/** Linux only: a process's command line, to recognise a server running on our cluster. */
export const processCommandLine = async (pid: number): Promise<string | undefined> => {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\u0000').join(' ');
  } catch {
    return undefined;
  }
};

/** Polls `condition` every 100 ms; false once `timeoutMs` passed without it holding. */
export const waitUntil = async (condition: () => boolean, timeoutMs: number): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
};
