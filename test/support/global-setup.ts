/**
 * Starts the real services the tests need, once per test run: an embedded PostgreSQL server (or
 * uses `CALLTRAIL_TEST_DATABASE_URL`), whose URL each test file turns into its own database, and the
 * EventStoreDB test server (or uses a real one from `CALLTRAIL_TEST_ESDB_URL`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/database/embedded-postgres.ts';
import { startEventStoreDbTestServer } from '../eventstoredb-server/server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** An admin connection string; test files create their own databases through it. */
    postgresUrl: string;
    /** A connection string for an EventStoreDB shared by the run; tests use their own stream names. */
    eventStoreDbUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const teardowns: (() => Promise<void>)[] = [];

  const external = process.env['CALLTRAIL_TEST_DATABASE_URL'];
  if (external) {
    project.provide('postgresUrl', external);
  } else {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-test-pg-'));
    const postgres = await startEmbeddedPostgres({ dataDir });
    project.provide('postgresUrl', postgres.url);
    teardowns.push(async () => {
      await postgres.stop();
      await rm(dataDir, { recursive: true, force: true });
    });
  }

  const externalEventStoreDb = process.env['CALLTRAIL_TEST_ESDB_URL'];
  if (externalEventStoreDb) {
    project.provide('eventStoreDbUrl', externalEventStoreDb);
  } else {
    const eventStoreDb = await startEventStoreDbTestServer();
    project.provide('eventStoreDbUrl', eventStoreDb.url);
    teardowns.push(() => eventStoreDb.stop());
  }

  return async () => {
    for (const teardown of teardowns.reverse()) await teardown();
  };
}
