/**
 * A real `calltrail serve` process for end-to-end tests: it gets the `CALLTRAIL_` variables the test
 * gives and none of the environment's own, is ready once `/healthz` answers on its port, and is
 * stopped (SIGTERM) or killed (SIGKILL) on demand. Every process started goes into `children`, so an
 * `afterAll` can kill whatever a failed test left running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.ts';

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
export const calltrailBin = path.join(projectRoot, 'bin', 'calltrail.js');

export interface ServeProcess {
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  /** SIGTERM, then waits for the exit; the exit code. */
  stop(): Promise<number | null>;
}

export const startServeProcess = async (options: {
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly port: number;
  readonly children: Set<ChildProcess>;
  readonly startTimeoutMs?: number;
}): Promise<ServeProcess> => {
  const child = spawn(process.execPath, [calltrailBin, 'serve', ...options.args], {
    cwd: projectRoot,
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_'))),
      CALLTRAIL_HOST: '127.0.0.1',
      CALLTRAIL_PORT: String(options.port),
      ...options.env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  options.children.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => options.children.delete(child));
  await waitFor(
    'serve to start',
    async () => {
      if (child.exitCode !== null) throw new Error(`serve exited: ${stderr}`);
      return fetch(`http://127.0.0.1:${options.port}/healthz`).then(
        (response) => response.ok,
        () => false,
      );
    },
    options.startTimeoutMs ?? 90_000,
  );
  return {
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      return child.exitCode;
    },
  };
};
