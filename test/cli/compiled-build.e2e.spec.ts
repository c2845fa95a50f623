/**
 * The production build as `npm ci` makes it: compiled with `tsconfig.build.json` and run by plain
 * Node, without anything that compiles TypeScript at run time. It finds its migrations, takes a
 * webhook, projects it and stops cleanly. Compiled into a folder of its own inside the package, so
 * the test never rewrites `dist/` under other tests' feet.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/database/embedded-postgres.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));
const outDir = path.join(
  projectRoot,
  'node_modules',
  '.cache',
  `calltrail-build-${randomBytes(4).toString('hex')}`,
);
const entry = path.join(outDir, 'src', 'cli', 'main.js');

const environment = (variables: Record<string, string>): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_'))),
  ...variables,
});

describe('the compiled build', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('compiled_build');
    await promisify(execFile)(
      process.execPath,
      [
        path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'),
        '-p',
        'tsconfig.build.json',
        '--outDir',
        outDir,
      ],
      { cwd: projectRoot },
    );
  }, 120_000);

  afterAll(async () => {
    await database?.drop();
    await rm(outDir, { recursive: true, force: true });
  });

  it('migrates, ingests, projects and stops, run by plain node', async () => {
    const migrated = await promisify(execFile)(process.execPath, [entry, 'migrate'], {
      cwd: projectRoot,
      env: environment({ CALLTRAIL_DATABASE_URL: database.url, CALLTRAIL_LOG_LEVEL: 'warn' }),
    });
    expect(migrated.stdout).toContain('event store: applied 0000_init.sql');

    const port = await freePort();
    const webhookToken = randomBytes(24).toString('base64url');
    const apiToken = randomBytes(24).toString('base64url');
    const child = spawn(process.execPath, [entry, 'serve'], {
      cwd: projectRoot,
      env: environment({
        CALLTRAIL_DATABASE_URL: database.url,
        CALLTRAIL_HOST: '127.0.0.1',
        CALLTRAIL_PORT: String(port),
        CALLTRAIL_WEBHOOK_TOKEN: webhookToken,
        CALLTRAIL_API_TOKENS: apiToken,
        CALLTRAIL_LOG_LEVEL: 'warn',
      }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const base = `http://127.0.0.1:${port}`;
      for (
        let waited = 0;
        !(await fetch(`${base}/healthz`)
          .then((r) => r.ok)
          .catch(() => false));
        waited += 100
      ) {
        if (child.exitCode !== null || waited > 60_000) throw new Error(`serve did not start: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }

      const callSession = randomUUID();
      const accepted = await fetch(`${base}/webhooks/flireo/${webhookToken}`, {
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
      expect(accepted.status).toBe(202);

      let call: Response | undefined;
      for (let tries = 0; tries < 100; tries += 1) {
        call = await fetch(`${base}/calls/${callSession}`, {
          headers: { authorization: `Bearer ${apiToken}` },
        });
        if (call.status !== 404) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(call?.status).toBe(200);
      expect(await call?.json()).toMatchObject({ call: { callId: callSession, status: 'in-progress' } });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('is skipped, without failing the install, where TypeScript is not installed (npm ci --omit=dev)', async () => {
    const bare = await mkdtemp(path.join(os.tmpdir(), 'calltrail-prepare-'));
    try {
      await mkdir(path.join(bare, 'scripts'));
      await copyFile(
        path.join(projectRoot, 'scripts', 'prepare.js'),
        path.join(bare, 'scripts', 'prepare.js'),
      );
      await writeFile(path.join(bare, 'package.json'), '{"type": "module"}');
      const prepared = await promisify(execFile)(process.execPath, [
        path.join(bare, 'scripts', 'prepare.js'),
      ]);
      expect(prepared.stderr).toContain('TypeScript is not installed');
    } finally {
      await rm(bare, { recursive: true, force: true });
    }
  });
});
