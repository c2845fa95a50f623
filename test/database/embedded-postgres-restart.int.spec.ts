/**
 * Restarting the embedded PostgreSQL after a crash: the cluster's `postmaster.pid` still names the
 * postmaster of the previous run. A dead or zombie postmaster (killed with its process group, never
 * collected by its parent) must not block the next start; a live process there still must.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../src/database/embedded-postgres.ts';
import { processState, startZombieParent } from '../support/zombie.ts';

const waitFor = async (condition: () => Promise<boolean>, what: string, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};

describe('restarting the embedded PostgreSQL after a crash', () => {
  let dataDir: string;
  let clusterDir: string;
  /** postmaster.pid as the server wrote it, with its pid on the first line. */
  let postmasterPidLines: string[];
  const started: ChildProcess[] = [];

  const recordPostmaster = (pid: number) =>
    writeFile(
      path.join(clusterDir, 'postmaster.pid'),
      [String(pid), ...postmasterPidLines.slice(1)].join('\n'),
    );

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-restart-'));
    clusterDir = path.join(dataDir, 'postgres');
    const server = await startEmbeddedPostgres({ dataDir });
    postmasterPidLines = (await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n');
    await server.stop();
  });

  afterAll(async () => {
    for (const child of started) child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts when postmaster.pid names a zombie', async () => {
    const { parent, zombie } = await startZombieParent();
    started.push(parent);
    await recordPostmaster(zombie);
    const server = await startEmbeddedPostgres({ dataDir });
    try {
      const recorded = (await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0];
      expect(Number(recorded)).not.toBe(zombie);
      expect(await processState(Number(recorded))).toMatch(/^[RSD]$/);
    } finally {
      await server.stop();
    }
  });

  it('starts when postmaster.pid names a process that is gone', async () => {
    const gone = spawn('/bin/true');
    const pid = gone.pid!;
    await new Promise((resolve) => gone.once('exit', resolve));
    await waitFor(async () => (await processState(pid)) === undefined, `process ${pid} to be collected`);
    await recordPostmaster(pid);
    const server = await startEmbeddedPostgres({ dataDir });
    await server.stop();
  });

  it('refuses to start while postmaster.pid names a live process that is not our server', async () => {
    const live = spawn('sleep', ['600'], { stdio: 'ignore' });
    started.push(live);
    await waitFor(async () => (await processState(live.pid!)) !== undefined, 'the live process');
    await recordPostmaster(live.pid!);
    await expect(startEmbeddedPostgres({ dataDir })).rejects.toThrow(
      `process ${live.pid} holds the PostgreSQL cluster in ${clusterDir} (postmaster.pid); stop it first`,
    );
    // Still refused while it runs: nothing was taken over.
    expect((await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0]).toBe(
      String(live.pid),
    );
  });
});
