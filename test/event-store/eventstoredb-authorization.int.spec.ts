/**
 * calltrail against an EventStoreDB with authentication on (the test server, secure): started with
 * credentials the server refuses, `calltrail serve` stops with one clear line; an append the
 * stream's `$acl` refuses answers 503 (nothing stored) and the log names the stream and the right
 * calltrail's user lacks.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { EventStoreDBClient } from '@eventstore/db-client';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../../src/database/database.ts';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { startEventStoreDbTestServer, type EventStoreDbTestServer } from '../eventstoredb-server/server.ts';
import { buildTestApp, testWebhookToken, type TestApp } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';

const bin = fileURLToPath(new URL('../../bin/calltrail.js', import.meta.url));

describe('calltrail on an EventStoreDB with authentication on', () => {
  let server: EventStoreDbTestServer;
  const withUser = (credentials: string) => server.url.replace('esdb://', `esdb://${credentials}@`);

  beforeAll(async () => {
    server = await startEventStoreDbTestServer({ secure: true });
  });

  afterAll(async () => {
    await server.stop();
  });

  it('serve stops with one clear line when the server refuses its credentials', async () => {
    const child = spawn(process.execPath, [bin, 'serve'], {
      env: {
        ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CALLTRAIL_'))),
        CALLTRAIL_EVENTSTORE_URL: withUser('admin:wrong-password'),
        CALLTRAIL_DATABASE_URL: inject('postgresUrl'),
        CALLTRAIL_WEBHOOK_SECRET: 'a-webhook-secret-of-some-length',
        CALLTRAIL_PORT: '0',
        CALLTRAIL_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(1);
    expect(stdout).toBe('');
    // Node's own warning about the client's TLS server name for an IP address is not calltrail's.
    const calltrailLines = stderr
      .split('\n')
      .filter((line) => !/DeprecationWarning: Setting the TLS ServerName|--trace-deprecation/.test(line))
      .join('\n');
    expect(calltrailLines).toBe(
      'calltrail: could not start: EventStoreDB refused the credentials in CALLTRAIL_EVENTSTORE_URL ' +
        '(user "admin"): unknown user or wrong password\n',
    );
  }, 60_000);

  describe('an append its $acl refuses', () => {
    let database: TestDatabase;
    let readModels: Database;
    let eventStore: EventStore;
    let test: TestApp;
    const logLines: Record<string, unknown>[] = [];

    beforeAll(async () => {
      database = await createTestDatabase('esdb_acl');
      readModels = openDatabase(database.url);
      eventStore = connectEventStoreDb(withUser('ops:changeit'), { timeoutMs: 3_000 });
      const logger = pino(
        { level: 'info' },
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            for (const line of chunk.toString('utf8').split('\n')) {
              if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
            }
            callback();
          },
        }),
      );
      test = await buildTestApp({ eventStore, database: readModels, logger });
    });

    afterAll(async () => {
      await test.app.close();
      await eventStore.close();
      await readModels.close();
      await database.drop();
    });

    it('answers 503, stores nothing, and logs the stream and the missing right', async () => {
      const callSession = randomUUID();
      const stream = `call-${callSession}`;
      const admin = EventStoreDBClient.connectionString(withUser('admin:changeit'));
      try {
        await admin.setStreamMetadata(stream, { acl: { writeRoles: ['$admins'], readRoles: ['$all'] } });
      } finally {
        await admin.dispose();
      }
      const response = await test.app.inject({
        method: 'POST',
        url: `/webhooks/flireo/${testWebhookToken}`,
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify({
          eventTimestamp: 1756368117035,
          eventType: 'status-update',
          callSession,
          fromCaller: '+31612345678',
          toAssistant: '+31850123456',
          status: 'in-progress',
        }),
      });
      expect(response.statusCode).toBe(503);
      expect(response.headers['retry-after']).toBeDefined();
      expect(server.store.lastRevision(stream)).toBe(-1n);
      const refusal = logLines.find(
        (line) => (line['err'] as { stream?: string } | undefined)?.stream === stream,
      );
      expect(refusal?.['err']).toMatchObject({
        type: 'EventStoreAccessDeniedError',
        stream,
        missingRight: '$w',
      });
    });
  });
});
