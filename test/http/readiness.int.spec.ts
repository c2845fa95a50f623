/**
 * While the read-model PostgreSQL is frozen (every one of its processes stopped, as a hung host is),
 * `/readyz` and the audit API still answer, 503, within the configured bounds; `/readyz` says which
 * store is not ready but never why (the reason, which may name internal hosts, goes to the log).
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateReadModels, openDatabase, type Database } from '../../src/database/database.ts';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '../../src/database/embedded-postgres.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { createLogger } from '../../src/logger.ts';
import { buildTestApp, testApiToken, testConfig, type TestApp } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const boundMs = 700;

/** The postmaster and every process it started. */
const serverProcesses = async (server: EmbeddedPostgresServer): Promise<number[]> => {
  const postmaster = Number(
    (await readFile(path.join(server.dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0],
  );
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === postmaster) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return [postmaster, ...children];
};

describe('readiness and the audit API while PostgreSQL is frozen', () => {
  let dataDir: string;
  let server: EmbeddedPostgresServer;
  let eventStoreDatabase: TestDatabase;
  let eventStore: EventStore;
  let database: Database;
  let test: TestApp;
  let frozen: number[] = [];
  const lines: string[] = [];

  const thaw = () => {
    for (const pid of frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    }
    frozen = [];
  };

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-frozen-pg-'));
    server = await startEmbeddedPostgres({ dataDir });
    eventStoreDatabase = await createTestDatabase('readiness');
    eventStore = await openPostgresEventStore(eventStoreDatabase.url, { timeoutMs: 2_000 });
    database = openDatabase(server.url, { max: 2, connectTimeoutMs: boundMs, statementTimeoutMs: boundMs });
    await migrateReadModels(database);
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    test = await buildTestApp({
      eventStore,
      database,
      config: testConfig({ readModels: { connectTimeoutMs: boundMs, statementTimeoutMs: boundMs } }),
      logger: createLogger({ level: 'warn', destination }),
    });
  });

  afterAll(async () => {
    thaw();
    await test?.app.close();
    await eventStore?.close();
    await eventStoreDatabase?.drop();
    await database?.close().catch(() => {});
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const readyz = () => test.app.inject({ method: 'GET', url: '/readyz' });
  const calls = () =>
    test.app.inject({ method: 'GET', url: '/calls', headers: { authorization: `Bearer ${testApiToken}` } });

  it('is ready, and serves calls, while PostgreSQL answers', async () => {
    expect((await readyz()).statusCode).toBe(200);
    expect((await calls()).statusCode).toBe(200);
  });

  it('answers 503 from /readyz and the audit API within the bounds, with no internal detail', async () => {
    frozen = await serverProcesses(server);
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    try {
      const ready = await readyz();
      expect(ready.statusCode).toBe(503);
      const body = ready.json<Record<string, unknown>>();
      expect(body).toMatchObject({ ready: false, database: { ok: false }, eventStore: { ok: true } });
      expect(JSON.stringify(body)).not.toMatch(/detail|127\.0\.0\.1|timeout|ms/);
      const audit = await calls();
      expect(audit.statusCode).toBe(503);
      expect(audit.headers['retry-after']).toBe('5');
      // A new connection is bounded as well as a query on a pooled one.
      const both = await Promise.all([calls(), calls(), readyz()]);
      expect(both.map((r) => r.statusCode)).toEqual([503, 503, 503]);
    } finally {
      thaw();
    }
    expect(lines.join('')).toContain('readiness check failed');
  });

  it('is ready again once PostgreSQL answers', async () => {
    const deadline = Date.now() + 15_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) {
      status = (await readyz()).statusCode;
    }
    expect(status).toBe(200);
    expect((await calls()).statusCode).toBe(200);
  });
});
