/**
 * The data directory's lock file: one calltrail process at a time owns a data directory. The file
 * names its owner (pid, the kernel's start time of that pid, the command), so a lock left by a
 * process that is gone, or whose pid now belongs to another process, is recognised and taken over.
 */
import { open, readFile, unlink } from 'node:fs/promises';
import { EmbeddedPostgresError } from './errors.ts';
import { processIsRunning, processStartTime } from '../../processes.ts';

export interface LockHolder {
  readonly pid: number;
  readonly startTime?: string;
  readonly command?: string;
}

export type LockAttempt =
  | { readonly taken: true; readonly release: () => Promise<void> }
  | { readonly taken: false; readonly holder: LockHolder };

/** Takes the lock file, or reports the live process holding it. */
export const takeLock = async (lockPath: string): Promise<LockAttempt> => {
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
      (await processIsRunning(holder.pid)) &&
      (holder.startTime === undefined || holder.startTime === (await processStartTime(holder.pid)));
    if (alive && holder) return { taken: false, holder };
    // Stale: its owner is gone. Remove it only if nobody replaced it meanwhile.
    if ((await readFile(lockPath, 'utf8').catch(() => '')) === content)
      await unlink(lockPath).catch(() => {});
  }
  throw new EmbeddedPostgresError(`could not take the lock ${lockPath}; another process keeps replacing it`);
};
