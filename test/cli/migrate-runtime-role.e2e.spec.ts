/**
 * `calltrail migrate --runtime-role NAME` from the command line: it creates the role once, says that
 * giving it a login is the operator's step, and grants it again on later runs; a name it cannot use
 * stops it with one clear line.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

const migrate = (databaseUrl: string, role: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      [path.join(projectRoot, 'bin', 'calltrail.js'), 'migrate', '--runtime-role', role],
      {
        cwd: projectRoot,
        env: {
          ...Object.fromEntries(
            Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_')),
          ),
          CALLTRAIL_DATABASE_URL: databaseUrl,
          CALLTRAIL_LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });

describe('calltrail migrate --runtime-role', () => {
  let database: TestDatabase;
  const role = `calltrail_cli_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    database = await createTestDatabase('cli_runtime_role');
  });

  afterAll(async () => {
    await database?.drop();
    const admin = new pg.Client(inject('postgresUrl'));
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  it('creates the role without a login once, then grants it again', async () => {
    const first = await migrate(database.url, role);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`runtime role: created ${role} without LOGIN`);
    expect(first.stdout).toContain(`ALTER ROLE ${role} LOGIN PASSWORD`);

    const again = await migrate(database.url, role);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`runtime role: granted ${role} what serve and project need`);
  }, 90_000);

  it('stops with one clear line for a name it cannot use', async () => {
    const failed = await migrate(database.url, 'Not-A-Role');
    expect(failed.code).toBe(1);
    expect(failed.stderr.trim()).toBe(
      'calltrail: migration failed: --runtime-role must be a lower-case PostgreSQL role name (letters, digits, _; at most 63): "Not-A-Role"',
    );
  }, 60_000);
});
