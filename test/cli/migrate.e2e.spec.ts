/**
 * `calltrail migrate` as a deployment step: applies both sets of migrations to the configured
 * database and exits 0; a migration history it cannot trust stops it with one clear line and exit 1.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

const migrate = (databaseUrl: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'calltrail.js'), 'migrate'], {
      cwd: projectRoot,
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_'))),
        CALLTRAIL_DATABASE_URL: databaseUrl,
        CALLTRAIL_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });

describe('calltrail migrate', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase('cli_migrate');
  });

  afterAll(async () => {
    await database?.drop();
  });

  it('applies the event-store and read-model migrations, then reports them up to date', async () => {
    const first = await migrate(database.url);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('event store: applied 0000_init.sql');
    expect(first.stdout).toContain('read models: applied 0000_init.sql');
    expect(first.stdout).not.toContain(new URL(database.url).password || '\u0000');

    const client = new pg.Client(database.url);
    await client.connect();
    try {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'event_store' AND table_name = 'events'`,
      );
      expect(rows).toEqual([{ n: '1' }]);
    } finally {
      await client.end();
    }

    const again = await migrate(database.url);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('event store: up to date');
    expect(again.stdout).toContain('read models: up to date');
  });

  it('fails with one clear line when an applied migration was changed', async () => {
    const client = new pg.Client(database.url);
    await client.connect();
    try {
      await client.query(
        `UPDATE event_store.schema_migrations SET checksum = 'edited' WHERE name = '0000_init.sql'`,
      );
      const failed = await migrate(database.url);
      expect(failed.code).toBe(1);
      expect(failed.stderr.trim()).toBe(
        'calltrail: migration failed: event-store migration 0000_init.sql was changed after it was applied; restore the original file',
      );
    } finally {
      await client.end();
    }
  });
});
