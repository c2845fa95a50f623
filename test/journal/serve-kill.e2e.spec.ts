/**
 * `calltrail serve` killed with SIGKILL, again and again, while it journals (the event store is away)
 * and while it drains (the store is back but slow): after the last restart has drained, every event
 * it ever answered 2xx for is in the store exactly once, each call's in the order it was answered.
 */
import type { ChildProcess } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/database/embedded-postgres.ts';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import { startEventStoreDbTestServer, type EventStoreDbTestServer } from '../eventstoredb-server/server.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startServeProcess } from '../support/serve-process.ts';
import { waitFor } from '../support/wait.ts';
import { readStream } from '../webhook/stores.ts';

const secret = 'journal-kill-test-secret-0123456789';
const apiToken = 'journal-kill-test-api-token-0123456789';

interface Accepted {
  readonly eventId: string;
  readonly stream: string;
  readonly duplicate: boolean;
  readonly journaled?: true;
}

interface ReadyJournal {
  readonly journal?: { depth: number; journaling: boolean };
}

describe('serve killed while journaling and while draining', () => {
  let server: EventStoreDbTestServer;
  let readModels: TestDatabase;
  let dataDir: string;
  let port: number;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    server = await startEventStoreDbTestServer();
    readModels = await createTestDatabase('journal_kill');
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-journal-kill-'));
    port = await freePort();
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await server?.stop();
    await readModels?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const start = () =>
    startServeProcess({
      args: ['--no-projector'],
      env: {
        CALLTRAIL_EVENTSTORE_URL: server.url,
        CALLTRAIL_DATABASE_URL: readModels.url,
        CALLTRAIL_DATA_DIR: dataDir,
        CALLTRAIL_WEBHOOK_SECRET: secret,
        CALLTRAIL_API_TOKENS: apiToken,
        CALLTRAIL_APPEND_TIMEOUT_MS: '500',
        CALLTRAIL_LOG_LEVEL: 'warn',
      },
      port,
      children,
    });

  const readyJournal = async () =>
    (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as ReadyJournal;

  const calls = Array.from({ length: 5 }, () => randomUUID());
  let step = 0;
  /** Acknowledged event ids per stream, in the order they were answered. */
  const acknowledged = new Map<string, string[]>();

  const deliver = async (call: string, at: number): Promise<Accepted | undefined> => {
    const body = JSON.stringify({
      eventTimestamp: 1756368117035 + at * 1000,
      eventType: 'status-update',
      callSession: call,
      fromCaller: '+31612345678',
      toAssistant: '+31850123456',
      status: 'in-progress',
    });
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
    try {
      const response = await fetch(`http://127.0.0.1:${port}/webhooks/flireo`, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/json',
          'x-webhook-timestamp': timestamp,
          'x-webhook-signature': signature,
        },
      });
      if (response.status !== 202) return undefined;
      return (await response.json()) as Accepted;
    } catch {
      return undefined; // the process was killed under the request: not acknowledged
    }
  };

  /**
   * Each call sends its events one after the other (as Flireo does for one call) until `until`
   * resolves; a request cut by a kill is simply not acknowledged.
   */
  const traffic = async (until: Promise<unknown>) => {
    let done = false;
    void until.then(() => (done = true));
    await Promise.all(
      calls.map(async (call) => {
        while (!done) {
          step += 1;
          const accepted = await deliver(call, step);
          if (accepted === undefined) return;
          if (!accepted.duplicate) {
            const ids = acknowledged.get(accepted.stream) ?? [];
            ids.push(accepted.eventId);
            acknowledged.set(accepted.stream, ids);
          }
        }
      }),
    );
  };

  const total = () => [...acknowledged.values()].reduce((sum, ids) => sum + ids.length, 0);

  it('loses nothing it answered 2xx for, and stores nothing twice', { timeout: 300_000 }, async () => {
    await server.goDown();
    for (let kill = 0; kill < 2; kill += 1) {
      const process = await start();
      const before = total();
      // Killed while journaling, with requests in flight.
      const enough = waitFor('events are journaled', async () => total() >= before + 40, 60_000);
      const sending = traffic(enough);
      await enough;
      await process.kill();
      await sending;
    }
    expect(total()).toBeGreaterThanOrEqual(80);

    // The store is back but slow: the next process is killed while its drain's appends are in flight.
    // The store writes them after the process is gone, so they stay journaled too: the next process
    // must not store them twice.
    await server.comeBack();
    server.setWriteDelay(300);
    const draining = await start();
    await waitFor(
      'the drain is under way',
      async () => {
        const depth = (await readyJournal()).journal?.depth ?? 0;
        return depth > 0 && server.delayedWritesInFlight > 0;
      },
      60_000,
    );
    await draining.kill();
    await waitFor(
      'the appends in flight are written',
      async () => server.delayedWritesInFlight === 0,
      60_000,
    );

    server.setWriteDelay(0);
    const last = await start();
    // Live traffic again while the rest drains.
    const drained = waitFor(
      'the journal drains',
      async () => {
        const journal = (await readyJournal()).journal;
        return journal !== undefined && journal.depth === 0 && !journal.journaling;
      },
      120_000,
    );
    await traffic(drained);
    await drained;

    const store = connectEventStoreDb(server.url, { timeoutMs: 5_000 });
    try {
      for (const [stream, ids] of acknowledged) {
        const stored = (await readStream(store, stream)).map((event) => event.id);
        expect(new Set(stored).size).toBe(stored.length);
        // Every acknowledged event, in the order answered; an unanswered one may be there too.
        const acked = new Set(ids);
        expect(stored.filter((id) => acked.has(id))).toEqual(ids);
      }
    } finally {
      await store.close();
    }

    expect(await last.stop()).toBe(0);
    // Nothing left to drain: no journal directory is kept.
    const journals = await readdir(path.join(dataDir, 'journal'));
    expect(journals.filter((name) => !name.startsWith('.'))).toEqual([]);
  });
});
