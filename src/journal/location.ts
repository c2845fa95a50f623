/**
 * Where journals live, and which process owns each. Under the journal root
 * (`CALLTRAIL_JOURNAL_DIR`, default `<CALLTRAIL_DATA_DIR>/journal`), every serve process keeps its own
 * journal in its own directory with an `owner.json` naming it (host, boot, pid). A journal whose owner
 * is gone (its pid is dead, or the machine rebooted since) is adopted by the next process to start:
 * it renames the directory to its own name first (a rename is atomic, so two starting processes never
 * both adopt one), then takes its records over.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Type from 'typebox';
import Value from 'typebox/value';
import { processIsRunning } from '../processes.ts';

const ownerFile = 'owner.json';

const Owner = Type.Object({
  host: Type.String(),
  bootId: Type.String(),
  pid: Type.Integer(),
  startedAt: Type.String(),
});
type Owner = Type.Static<typeof Owner>;

const readBootId = async (): Promise<string> =>
  (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();

const readOwner = async (directory: string): Promise<Owner | undefined> => {
  try {
    const parsed: unknown = JSON.parse(await readFile(path.join(directory, ownerFile), 'utf8'));
    return Value.Check(Owner, parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
};

const writeOwner = async (directory: string, owner: Owner): Promise<void> => {
  await writeFile(path.join(directory, ownerFile), `${JSON.stringify(owner)}\n`, { flush: true });
};

export interface JournalDirectories {
  /** This process's own journal directory (created, owned). */
  readonly own: string;
  /** Journals of processes that are gone, now renamed into this process's ownership. */
  readonly adopted: readonly string[];
}

/**
 * Creates this process's journal directory under `root` and adopts every journal whose owner is gone.
 * A directory without a readable owner is only adopted when it is not being created right now (its
 * name starts with a dot while it is).
 */
export const claimJournalDirectories = async (root: string): Promise<JournalDirectories> => {
  await mkdir(root, { recursive: true });
  const me: Owner = {
    host: os.hostname(),
    bootId: await readBootId(),
    pid: process.pid,
    startedAt: new Date().toISOString(),
  };
  const suffix = `${process.pid}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

  // Created under a dot name and renamed into place, so no one ever sees it without its owner.
  const creating = path.join(root, `.creating-${suffix}`);
  await mkdir(creating);
  await writeOwner(creating, me);
  const own = path.join(root, `journal-${suffix}`);
  await rename(creating, own);

  const adopted: string[] = [];
  let index = 0;
  for (const name of await readdir(root)) {
    const directory = path.join(root, name);
    if (directory === own || name.startsWith('.')) continue;
    const owner = await readOwner(directory);
    const gone =
      owner === undefined ||
      owner.host !== me.host ||
      owner.bootId !== me.bootId ||
      // Our own pid on another journal is an earlier process's (a container's pid 1, say).
      owner.pid === process.pid ||
      !(await processIsRunning(owner.pid));
    // Another host's journal on shared storage is not ours to judge; only a missing owner file is.
    if (owner !== undefined && owner.host !== me.host) continue;
    if (!gone) continue;
    index += 1;
    const target = path.join(root, `adopted-${suffix}-${index}`);
    try {
      await rename(directory, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue; // another process got it first
      throw error;
    }
    await writeOwner(target, me);
    adopted.push(target);
  }
  return { own, adopted };
};

/** Removes a journal directory that holds nothing any more. */
export const removeJournalDirectory = async (directory: string): Promise<void> => {
  await rm(directory, { recursive: true, force: true });
};
