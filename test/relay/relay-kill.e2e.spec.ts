/**
 * `calltrail serve` in relay mode killed with SIGKILL the moment Flireo has its answer, with the
 * store slow (each write takes 150 ms, within the archive budget), so the exchange record is still
 * being written when the answer could go out. With `CALLTRAIL_RELAY_RECORD_BEFORE_ANSWER`, the answer
 * waited for the record, so after a restart the stream holds the request and then its exchange, once
 * each. Without it (the default), the request is still kept (it is durable before anything is
 * answered); its exchange record may be lost, which is what the README says.
 */
import type { ChildProcess } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/database/embedded-postgres.ts';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import type { RelayExchange } from '../../src/relay/exchange.ts';
import { startEventStoreDbTestServer, type EventStoreDbTestServer } from '../eventstoredb-server/server.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import { startServeProcess } from '../support/serve-process.ts';
import { waitFor } from '../support/wait.ts';
import { readStream } from '../webhook/stores.ts';
import { startCustomerHandler, type CustomerHandler } from './customer-handler.ts';

const secret = 'relay-kill-test-secret-0123456789';

describe('serve in relay mode killed right after answering', () => {
  let server: EventStoreDbTestServer;
  let readModels: TestDatabase;
  let handler: CustomerHandler;
  let dataDir: string;
  let port: number;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    server = await startEventStoreDbTestServer();
    readModels = await createTestDatabase('relay_kill');
    handler = await startCustomerHandler({ slowMs: 2_000 });
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'calltrail-relay-kill-'));
    port = await freePort();
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await handler?.close();
    await server?.stop();
    await readModels?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const start = (recordBeforeAnswer: boolean) =>
    startServeProcess({
      args: ['--no-projector'],
      env: {
        CALLTRAIL_EVENTSTORE_URL: server.url,
        CALLTRAIL_DATABASE_URL: readModels.url,
        CALLTRAIL_DATA_DIR: dataDir,
        CALLTRAIL_WEBHOOK_SECRET: secret,
        CALLTRAIL_API_TOKENS: 'relay-kill-test-api-token-0123456789',
        CALLTRAIL_RELAY_URL: handler.url('/fast'),
        CALLTRAIL_RELAY_ARCHIVE_BUDGET_MS: '200',
        CALLTRAIL_RELAY_RECORD_BEFORE_ANSWER: String(recordBeforeAnswer),
        CALLTRAIL_FORWARD_SECRET: 'relay-kill-test-forward-secret-0123456789',
        CALLTRAIL_APPEND_TIMEOUT_MS: '2000',
        CALLTRAIL_LOG_LEVEL: 'warn',
      },
      port,
      children,
    });

  const relayToolCall = async (callId: string, taskId: string) => {
    const body = JSON.stringify({
      eventTime: 1756368190007,
      eventType: 'tool-calls',
      callId,
      toAssistant: '+31850123456',
      tasksInitiated: [{ taskId, taskName: 'check_availability', taskPayload: {} }],
      userMetadata: {},
    });
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
    return fetch(`http://127.0.0.1:${port}/webhooks/flireo`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'x-webhook-timestamp': timestamp,
        'x-webhook-signature': signature,
      },
    });
  };

  const drained = async () => {
    const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as {
      journal?: { depth: number; journaling: boolean };
    };
    return ready.journal !== undefined && ready.journal.depth === 0 && !ready.journal.journaling;
  };

  const streamOf = async (callId: string) => {
    const store = connectEventStoreDb(server.url, { timeoutMs: 5_000 });
    try {
      return await readStream(store, `call-${callId}`);
    } finally {
      await store.close();
    }
  };

  it(
    'keeps the request and, recording before the answer, its exchange too',
    { timeout: 300_000 },
    async () => {
      // Slow, but within the archive budget: the records go to the store (or, when a first append
      // reads the stream too and runs past the budget, to the journal), each taking 150 ms or more.
      server.setWriteDelay(150);
      const durable = randomUUID();
      const first = await start(true);
      const answer = await relayToolCall(durable, 'task-durable');
      expect(answer.status).toBe(200);
      const requestEventId = answer.headers.get('x-calltrail-event-id');
      expect(await answer.json()).toEqual({
        results: [{ toolCallId: 'task-durable', result: 'done task-durable' }],
      });
      await first.kill();

      // The default: answered as the exchange is written; killed at once, only the request is sure.
      const lossy = randomUUID();
      const second = await start(false);
      const lossyAnswer = await relayToolCall(lossy, 'task-lossy');
      expect(lossyAnswer.status).toBe(200);
      await second.kill();

      server.setWriteDelay(0);
      const last = await start(false);
      await waitFor('the journal drains', drained, 120_000);
      await last.stop();

      const events = await streamOf(durable);
      expect(events.map((event) => event.type)).toEqual(['tool-calls', 'relay-exchange']);
      expect(events[0]!.id).toBe(requestEventId);
      expect(events[1]!.data as RelayExchange).toMatchObject({
        requestEventId,
        outcome: 'answered',
        answeredWith: 'destination',
        answerStatus: 200,
      });

      const lossyEvents = await streamOf(lossy);
      expect(lossyEvents[0]).toMatchObject({
        type: 'tool-calls',
        id: lossyAnswer.headers.get('x-calltrail-event-id'),
      });
      expect(lossyEvents.length).toBeLessThanOrEqual(2);
    },
  );
});
