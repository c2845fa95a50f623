/**
 * `calltrail forward` and `calltrail deliveries` as a user runs them: the real binary in a child
 * process, on a PostgreSQL event store given by URL, delivering to a real local receiver.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventStore } from '../../src/event-store/event-store.ts';
import { openPostgresEventStore } from '../../src/event-store/postgres/postgres-event-store.ts';
import { statusUpdate } from '../support/call-events.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { appendCallEvents } from '../support/projector-harness.ts';
import { startReceiver, type Receiver } from './receiver.ts';
import { waitFor } from '../support/wait.ts';

const binary = fileURLToPath(new URL('../../bin/calltrail.js', import.meta.url));
const secret = 'forwarding-secret-0123456789';

let database: TestDatabase;
let eventStore: EventStore;
let receiver: Receiver;
let pool: pg.Pool;

const environment = (more: Record<string, string> = {}) => ({
  PATH: process.env['PATH'],
  HOME: process.env['HOME'],
  CALLTRAIL_EVENTSTORE_URL: database.url,
  CALLTRAIL_DATABASE_URL: database.url,
  CALLTRAIL_LOG_LEVEL: 'warn',
  CALLTRAIL_FORWARD_RETRY_INITIAL_MS: '20',
  CALLTRAIL_FORWARD_RETRY_MAX_MS: '100',
  ...more,
});

const start = (args: readonly string[], more: Record<string, string> = {}) =>
  spawn(process.execPath, [binary, ...args], { env: environment(more), stdio: ['ignore', 'pipe', 'pipe'] });

const finish = (child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });

const run = (args: readonly string[], more: Record<string, string> = {}) => finish(start(args, more));

beforeAll(async () => {
  database = await createTestDatabase('forwarding_cli');
  eventStore = await openPostgresEventStore(database.url, { timeoutMs: 5_000 });
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  receiver = await startReceiver();
  // Forwarding starts after what is archived when it first runs: one event before it.
  await appendCallEvents(eventStore, [statusUpdate('cli-before', 'in-progress', '2026-03-01T09:59:00.000Z')]);
});

afterAll(async () => {
  await receiver?.close();
  await pool?.end();
  await eventStore?.close();
  await database?.drop();
});

describe('calltrail forward and deliveries', { timeout: 180_000 }, () => {
  it('refuses to run with nowhere to forward to, or in relay mode without a forwarding secret', async () => {
    const nowhere = await run(['forward']);
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toContain('nowhere to forward to');
    const relay = await run(['forward'], { CALLTRAIL_RELAY_URL: 'http://127.0.0.1:9/hook' });
    expect(relay.code).toBe(1);
    expect(relay.stderr).toMatch(/^calltrail: CALLTRAIL_FORWARD_SECRET: /m);
    expect(relay.stderr).not.toMatch(/\n\s+at /);
  });

  it('delivers what is archived while it runs, lists it, and stops cleanly on SIGTERM', async () => {
    const destinations = JSON.stringify([{ name: 'customer', url: `${receiver.url}/flireo` }]);
    const forwarder = start(['forward'], {
      CALLTRAIL_FORWARD_DESTINATIONS: destinations,
      CALLTRAIL_FORWARD_SECRET: secret,
    });
    const done = finish(forwarder);
    await waitFor(
      'the forwarder to take its starting point',
      async () => {
        const found = await pool.query('SELECT 1 FROM forwarding_checkpoints').catch(() => ({ rowCount: 0 }));
        return (found.rowCount ?? 0) > 0;
      },
      60_000,
    );
    const proposed = await appendCallEvents(eventStore, [
      statusUpdate('cli-1', 'in-progress', '2026-03-01T10:00:00.000Z'),
      statusUpdate('cli-1', 'ended', '2026-03-01T10:01:00.000Z'),
    ]);
    await waitFor('both deliveries', async () => receiver.requests.length >= 2, 60_000);
    forwarder.kill('SIGTERM');
    const { code, stderr } = await done;
    expect(code, stderr).toBe(0);
    expect(receiver.requests.map((request) => request.eventId)).toEqual(proposed.map((event) => event.id));

    const env = { CALLTRAIL_FORWARD_DESTINATIONS: destinations, CALLTRAIL_FORWARD_SECRET: secret };
    const listed = await run(['deliveries', 'list', '--call', 'cli-1'], env);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = listed.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { status: string; destination: string });
    expect(rows).toHaveLength(2);
    expect(rows.every((row) => row.status === 'delivered' && row.destination === 'customer')).toBe(true);

    const bad = await run(['deliveries', 'list', '--status', 'lost'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--status');
  });
});
