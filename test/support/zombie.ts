/**
 * A real zombie process for tests of "is the process that holds this still running?": a long-running
 * parent that never collects its exited child, so the child's pid stays taken in state Z.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { expect, vi } from 'vitest';

/** The state letter of `/proc/<pid>/stat` (R, S, Z, ...), or undefined when there is no such process. */
export const processState = async (pid: number): Promise<string | undefined> => {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
};

const commandOf = async (pid: number): Promise<string | undefined> => {
  try {
    return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
  } catch {
    return undefined;
  }
};

const waitOptions = { timeout: 10_000, interval: 20 };

/**
 * Starts the parent and waits until its child is a zombie; kill `parent` to clean up.
 *
 * The shell collects a child that has already exited when it reaches `exec`, so the child must not
 * exit before the shell has become `sleep`: it waits for a line on the shell's saved stdin, which is
 * written only once the parent runs `sleep`.
 */
export const startZombieParent = async (): Promise<{ parent: ChildProcess; zombie: number }> => {
  const parent = spawn('sh', ['-c', 'exec 3<&0; read _ <&3 & echo $!; exec sleep 600 3<&-'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  let output = '';
  parent.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  await vi.waitFor(() => expect(output).toContain('\n'), waitOptions);
  const zombie = Number(output.trim());
  await vi.waitFor(async () => expect(await commandOf(parent.pid!)).toBe('sleep'), waitOptions);
  parent.stdin?.end('go\n');
  await vi.waitFor(async () => expect(await processState(zombie)).toBe('Z'), waitOptions);
  return { parent, zombie };
};
