/**
 * Stopping calltrail the way the README and the systemd unit run it: SIGTERM or SIGINT sent to
 * exactly that process (not to a process group) stops calltrail with exit code 0 and its embedded
 * PostgreSQL with it, leaving no orphaned postmaster and no lock behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/database/embedded-postgres.ts';
import { waitFor as waitUntil } from '../support/wait.ts';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
const startTimeoutMs = 60_000;

const environment = (variables: Record<string, string>): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_'))),
  ...variables,
});

const waitFor = (condition: () => boolean | Promise<boolean>, what: string, timeoutMs: number) =>
  waitUntil(what, async () => await condition(), timeoutMs);

const processExists = (pid: number) =>
  access(`/proc/${pid}`).then(
    () => true,
    () => false,
  );

describe('signals to calltrail as the README runs it', () => {
  let dataDir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-signals-'));
  });

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('the README and the systemd unit name the command these tests run', async () => {
    const readme = await readFile(path.join(projectRoot, 'README.md'), 'utf8');
    expect(readme).toContain('node bin/calltrail.js serve');
    expect(readme).toContain('deploy/calltrail.service');
    const unit = await readFile(path.join(projectRoot, 'deploy', 'calltrail.service'), 'utf8');
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1];
    expect(execStart).toMatch(/^\/\S*\/node \/\S+\/bin\/calltrail\.js serve$/);
    expect(unit).toMatch(/^KillMode=mixed$/m);
  });

  it.each([
    ['node bin/calltrail.js serve', 'SIGTERM'],
    ['node bin/calltrail.js serve', 'SIGINT'],
    ['bin/calltrail.js serve (the installed bin)', 'SIGTERM'],
  ] as const)('%s stops cleanly on %s, its PostgreSQL with it', async (command, signal) => {
    const port = await freePort();
    const script = path.join(projectRoot, 'bin', 'calltrail.js');
    const [file, args] = command.startsWith('node')
      ? [process.execPath, [script, 'serve']]
      : [script, ['serve']];
    const child = spawn(file, args, {
      cwd: projectRoot,
      env: environment({
        CALLTRAIL_DATA_DIR: dataDir,
        CALLTRAIL_HOST: '127.0.0.1',
        CALLTRAIL_PORT: String(port),
        // The directly executed script finds node through PATH, as an installed bin does.
        PATH: `${path.dirname(process.execPath)}:${process.env['PATH'] ?? ''}`,
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`calltrail exited early: ${stderr}`);
        return stderr.includes('Server URL to give Flireo');
      },
      'calltrail to serve',
      startTimeoutMs,
    );
    const postmaster = Number(
      (await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0],
    );
    expect(await processExists(postmaster)).toBe(true);

    // To this process only, as a process manager does (KillMode=mixed).
    child.kill(signal);
    let code: number | null | undefined;
    void exited.then((value) => (code = value));
    await waitFor(() => code !== undefined, `calltrail to stop on ${signal}`, 45_000);
    expect(code).toBe(0);
    expect(await processExists(postmaster)).toBe(false);
    expect(await readdir(dataDir)).not.toContain('calltrail.lock');
    expect(await readdir(path.join(dataDir, 'postgres'))).not.toContain('postmaster.pid');
  });
});
