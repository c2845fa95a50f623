/**
 * The outage journal through the real HTTP stack on each real event store: the store taken away
 * during a stream of signed webhooks (every answer 202, journaled ones say so), redeliveries of
 * journaled events recognised as duplicates, live traffic while the journal drains, and afterwards
 * every event in its stream exactly once and in the order it was received. A full journal answers
 * 503 and loses nothing it acknowledged; so does a full disk under the journal, and the process goes on
 * serving and journals again once there is room. The read models projected afterwards equal those projected
 * from the same webhooks sent to a second store that never went away.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/database/database.ts';
import { openOutageJournal, type OutageJournal } from '../../src/journal/outage-journal.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startProjector } from '../../src/projector/projector.ts';
import { createArchiveWriter } from '../../src/webhook/ingest.ts';
import { buildTestApp, signatureHeaders, testApiToken, testConfig, type TestApp } from '../support/app.ts';
import { createTestDatabase, type TestDatabase } from '../support/database.ts';
import {
  openReadModels,
  snapshotReadModels,
  testProjectorOptions,
  waitUntilCaughtUp,
  type ReadModelSnapshot,
} from '../support/projector-harness.ts';
import { readStream, storeSubjects, type StoreUnderTest } from '../webhook/stores.ts';

const appendTimeoutMs = 700;

interface Accepted {
  readonly eventId: string;
  readonly stream: string;
  readonly duplicate: boolean;
  readonly journaled?: true;
}

const statusUpdate = (callId: string, step: number, status = 'in-progress'): string =>
  JSON.stringify({
    eventTimestamp: 1756368117035 + step * 1000,
    eventType: 'status-update',
    callSession: callId,
    fromCaller: '+31612345678',
    toAssistant: '+31850123456',
    status,
  });

const waitUntil = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

interface Harness {
  readonly store: StoreUnderTest;
  readonly test: TestApp;
  readonly outage: OutageJournal;
  readonly root: string;
  close(): Promise<void>;
}

const startHarness = async (
  store: StoreUnderTest,
  database: Database,
  maxBytes = 64 * 1024 * 1024,
  journalDir?: string,
): Promise<Harness> => {
  const root = journalDir ?? (await mkdtemp(path.join(os.tmpdir(), 'calltrail-journal-')));
  const metrics = createMetrics();
  const config = { ...testConfig({ appendTimeoutMs }), journal: { dir: root, maxBytes } };
  const outage = await openOutageJournal({
    config,
    writer: createArchiveWriter(store.eventStore, { timeoutMs: appendTimeoutMs }),
    logger: createLogger({ level: 'silent' }),
    metrics,
  });
  const test = await buildTestApp({
    eventStore: store.eventStore,
    database,
    config,
    metrics,
    archive: outage.archive,
  });
  return {
    store,
    test,
    outage,
    root,
    close: async () => {
      await test.app.close();
      await outage.close();
      await rm(root, { recursive: true, force: true });
    },
  };
};

/**
 * A snapshot without the rows' positions in the store's global log: those depend on everything else
 * the store holds and on how calls interleave, so they differ between any two stores.
 */
const withoutGlobalPositions = (snapshot: ReadModelSnapshot) => {
  const strip = (rows: readonly Record<string, unknown>[]) =>
    rows.map((row) =>
      Object.fromEntries(Object.entries(row).filter(([column]) => !column.endsWith('_position'))),
    );
  return {
    calls: strip(snapshot.calls),
    timeline: strip(snapshot.timeline),
    terminations: strip(snapshot.terminations),
  };
};

/** Projects a store's calls under `streamPrefix` into a fresh read-model database, and snapshots it. */
const projectReadModels = async (
  eventStore: StoreUnderTest['eventStore'],
  streamPrefix: string,
): Promise<ReadModelSnapshot> => {
  const readModels = await openReadModels('journal_reads');
  try {
    const projector = await startProjector(
      {
        eventStore,
        database: readModels.database,
        logger: createLogger({ level: 'silent' }),
        metrics: createMetrics(),
        clock: () => new Date('2025-08-28T09:00:00.000Z'),
      },
      testProjectorOptions([streamPrefix]),
    );
    try {
      await waitUntilCaughtUp(projector, 60_000);
      return await snapshotReadModels(readModels.database.pool);
    } finally {
      await projector.stop();
    }
  } finally {
    await readModels.dispose();
  }
};

const deliver = async (test: TestApp, body: string) => {
  const response = await test.app.inject({
    method: 'POST',
    url: '/webhooks/flireo',
    payload: body,
    headers: { 'content-type': 'application/json', ...signatureHeaders(body, { at: test.clock.now() }) },
  });
  return response;
};

describe.each(storeSubjects)('outage journal on $name', (subject) => {
  let store: StoreUnderTest;
  let testDatabase: TestDatabase;
  let database: Database;

  beforeAll(async () => {
    store = await subject.open({ timeoutMs: appendTimeoutMs });
    testDatabase = await createTestDatabase('journal');
    database = openDatabase(testDatabase.url, { max: 2 });
  });

  afterAll(async () => {
    await store?.bringBack();
    await store?.close();
    await database?.close();
    await testDatabase?.drop();
  });

  it('answers 202 through an outage and stores every event exactly once, in order, afterwards', async () => {
    const harness = await startHarness(store, database);
    try {
      const { test, outage } = harness;
      const tag = `journal-${randomUUID()}`;
      const calls = Array.from({ length: 6 }, (_, index) => `${tag}-${index}`);
      // Every webhook as sent, in order, to send the same to a store that never goes away.
      const sent: string[] = [];
      // What each call's stream must hold afterwards, in order: event ids as answered.
      const expected = new Map<string, string[]>(calls.map((call) => [`call-${call}`, []]));
      let step = 0;
      const journaledAnswers: { body: string; eventId: string }[] = [];
      const storedBefore: string[] = [];

      /** One event for each call, calls side by side, each call's events one after the other. */
      const round = async (status?: string) => {
        step += 1;
        const at = step;
        await Promise.all(
          calls.map(async (call) => {
            const body = statusUpdate(call, at, status);
            sent.push(body);
            const response = await deliver(test, body);
            expect(response.statusCode).toBe(202);
            const accepted = response.json<Accepted>();
            expect(accepted.duplicate).toBe(false);
            expected.get(accepted.stream)!.push(accepted.eventId);
            if (accepted.journaled === true) journaledAnswers.push({ body, eventId: accepted.eventId });
            else if (call === calls[0]) storedBefore.push(body);
          }),
        );
      };

      for (let i = 0; i < 3; i += 1) await round();
      expect(journaledAnswers).toEqual([]);
      expect(outage.journal.depth()).toBe(0);

      await store.takeDown();
      for (let i = 0; i < 6; i += 1) await round();
      expect(journaledAnswers.length).toBeGreaterThanOrEqual(calls.length * 5);
      expect(outage.journal.depth()).toBe(journaledAnswers.length);

      // A journaled event redelivered is a duplicate; one stored before the outage is kept once too.
      sent.push(journaledAnswers[0]!.body, storedBefore[0]!);
      const again = await deliver(test, journaledAnswers[0]!.body);
      expect(again.statusCode).toBe(202);
      expect(again.json<Accepted>()).toMatchObject({ duplicate: true, journaled: true });
      expect((await deliver(test, storedBefore[0]!)).statusCode).toBe(202);

      const ready = await test.app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      expect(ready.json<{ journal: { depth: number; journaling: boolean } }>().journal).toMatchObject({
        journaling: true,
      });
      expect(ready.json<{ journal: { depth: number } }>().journal.depth).toBeGreaterThan(0);

      await store.bringBack();
      // Live traffic while the journal drains: it must never overtake a call's journaled events.
      for (let i = 0; i < 3; i += 1) await round();
      await round('ended');
      await waitUntil('the journal drains', async () => outage.journal.depth() === 0);

      for (const [stream, ids] of expected) {
        const stored = (await readStream(store.eventStore, stream)).map((event) => event.id);
        expect(stored).toEqual(ids);
      }
      // After the drain, the store itself recognises the redelivery.
      const afterDrain = await deliver(test, journaledAnswers[1]!.body);
      expect(afterDrain.json<Accepted>()).toEqual({
        eventId: journaledAnswers[1]!.eventId,
        stream: expect.any(String) as string,
        duplicate: true,
      });

      const metrics = await test.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${testApiToken}` },
      });
      expect(metrics.body).toMatch(/^calltrail_journal_depth_events 0$/m);
      expect(metrics.body).toMatch(/^calltrail_journal_drained_events \d+$/m);
      expect(metrics.body).toMatch(/^calltrail_journal_drain_rate_events_per_second /m);
      expect(metrics.body).toMatch(/^calltrail_journal_oldest_age_seconds 0$/m);

      // The same webhooks, in the same order, sent to a second store of the same kind with no outage.
      const reference = await subject.open({ timeoutMs: appendTimeoutMs });
      try {
        const referenceApp = await buildTestApp({
          eventStore: reference.eventStore,
          database,
          config: testConfig({ appendTimeoutMs }),
        });
        try {
          for (const body of sent) expect((await deliver(referenceApp, body)).statusCode).toBe(202);
        } finally {
          await referenceApp.app.close();
        }
        const streamPrefix = `call-${tag}-`;
        const afterOutage = await projectReadModels(store.eventStore, streamPrefix);
        const withoutOutage = await projectReadModels(reference.eventStore, streamPrefix);
        const eventCount = [...expected.values()].reduce((sum, ids) => sum + ids.length, 0);
        expect(afterOutage.calls).toHaveLength(calls.length);
        expect(afterOutage.timeline).toHaveLength(eventCount);
        expect(afterOutage.terminations).toHaveLength(calls.length);
        expect(withoutGlobalPositions(afterOutage)).toEqual(withoutGlobalPositions(withoutOutage));
      } finally {
        await reference.close();
      }
    } finally {
      await store.bringBack();
      await harness.close();
    }
  });

  it('answers 503 once the journal is full, and keeps everything it acknowledged', async () => {
    const harness = await startHarness(store, database, 12_000);
    try {
      const { test, outage } = harness;
      const call = `journal-full-${randomUUID()}`;
      await store.takeDown();
      const acknowledged: string[] = [];
      let refused = 0;
      for (let step = 0; step < 40 && refused < 3; step += 1) {
        const response = await deliver(test, statusUpdate(call, step));
        if (response.statusCode === 202) {
          acknowledged.push(response.json<Accepted>().eventId);
          continue;
        }
        expect(response.statusCode).toBe(503);
        expect(response.headers['retry-after']).toBeDefined();
        expect(response.json<{ detail: string }>().detail).toMatch(/journal is full/);
        refused += 1;
      }
      expect(refused).toBe(3);
      expect(acknowledged.length).toBeGreaterThan(1);
      const ready = await test.app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(503);

      await store.bringBack();
      await waitUntil('the journal drains', async () => outage.journal.depth() === 0);
      const stored = (await readStream(store.eventStore, `call-${call}`)).map((event) => event.id);
      expect(stored).toEqual(acknowledged);
    } finally {
      await store.bringBack();
      await harness.close();
    }
  });

  it('answers 503 when the disk under the journal is full, stays up, and journals again once there is room', async () => {
    // The journal on a 1 MiB memory file system: the disk fills long before the journal's own limit.
    const run = promisify(execFile);
    const mountPoint = await mkdtemp(path.join(os.tmpdir(), 'calltrail-journal-disk-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    // A rejection nobody handles ends a serve process: none may happen here.
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const harness = await startHarness(store, database, 64 * 1024 * 1024, path.join(mountPoint, 'journal'));
      try {
        const { test, outage } = harness;
        const call = `journal-disk-${randomUUID()}`;
        const padding = 'x'.repeat(16 * 1024);
        const padded = (step: number) =>
          JSON.stringify({ ...(JSON.parse(statusUpdate(call, step)) as object), padding });
        await store.takeDown();
        const acknowledged: string[] = [];
        let refused = 0;
        let step = 0;
        for (; step < 200 && refused < 3; step += 1) {
          const response = await deliver(test, padded(step));
          if (response.statusCode === 202) {
            expect(response.json<Accepted>().journaled).toBe(true);
            acknowledged.push(response.json<Accepted>().eventId);
            continue;
          }
          expect(response.statusCode).toBe(503);
          expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
          expect(response.headers['retry-after']).toBeDefined();
          expect(response.json<{ detail: string }>().detail).toMatch(/journal/);
          refused += 1;
        }
        expect(refused).toBe(3);
        expect(acknowledged.length).toBeGreaterThan(1);
        const depthWhenFull = outage.journal.depth();
        expect(depthWhenFull).toBe(acknowledged.length);

        // Still serving: it answers the next requests.
        const ready = await test.app.inject({ method: 'GET', url: '/readyz' });
        expect(ready.statusCode).toBe(503);
        expect((await deliver(test, padded(step))).statusCode).toBe(503);
        step += 1;

        // Room again: the journal takes the next event.
        await run('mount', ['-o', 'remount,size=64m', mountPoint]);
        const afterRoom = await deliver(test, padded(step));
        expect(afterRoom.statusCode).toBe(202);
        expect(afterRoom.json<Accepted>().journaled).toBe(true);
        acknowledged.push(afterRoom.json<Accepted>().eventId);
        expect(outage.journal.depth()).toBe(depthWhenFull + 1);

        await store.bringBack();
        await waitUntil('the journal drains', async () => outage.journal.depth() === 0);
        const stored = (await readStream(store.eventStore, `call-${call}`)).map((event) => event.id);
        expect(stored).toEqual(acknowledged);
        expect(unhandled).toEqual([]);
      } finally {
        await store.bringBack();
        await harness.close();
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await run('umount', [mountPoint]);
      await rm(mountPoint, { recursive: true, force: true });
    }
  });
});
