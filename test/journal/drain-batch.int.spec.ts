/**
 * The drain's batched appends on each real event store: a stream's journaled events reach the store
 * in a few appends, in order; after a crash between an append and the journal's delete (the stream
 * already holds a prefix of the journaled events, or all of them), every event is stored exactly
 * once, in order, by a process that has not seen the stream before; and a store too slow to write a
 * large append within its timeout still takes the backlog, in smaller appends.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventStoreUnavailableError,
  type EventStore,
  type ProposedEvent,
} from '../../src/event-store/event-store.ts';
import { startDrainer } from '../../src/journal/drainer.ts';
import { openJournal, type Journal } from '../../src/journal/journal.ts';
import { createLogger } from '../../src/logger.ts';
import { createArchiveWriter } from '../../src/webhook/ingest.ts';
import { readStream, storeSubjects, type StoreUnderTest } from '../webhook/stores.ts';

const timeoutMs = 5_000;

const event = (step: number): ProposedEvent => ({
  id: randomUUID(),
  type: 'status-update',
  data: { step },
  metadata: { receivedAt: '2026-01-01T00:00:00.000Z' },
});

/** The store, counting the appends that reach it. */
const counting = (store: EventStore): { store: EventStore; appends: () => number } => {
  let appends = 0;
  return {
    store: new Proxy(store, {
      get(target, property, receiver) {
        if (property === 'append') {
          return (...args: Parameters<EventStore['append']>) => {
            appends += 1;
            return target.append(...args);
          };
        }
        return Reflect.get(target, property, receiver) as unknown;
      },
    }),
    appends: () => appends,
  };
};

/**
 * The store, too slow to commit an append of more than `maxEvents` events within its own write
 * timeout: such an append fails unwritten, as EventStoreDB's commit timeout does.
 */
const committingAtMost = (store: EventStore, maxEvents: number): EventStore =>
  new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'append') {
        return async (...args: Parameters<EventStore['append']>) => {
          if (args[1].length > maxEvents) {
            throw new EventStoreUnavailableError(`${args[0]}: commit timed out (${args[1].length} events)`);
          }
          return target.append(...args);
        };
      }
      return Reflect.get(target, property, receiver) as unknown;
    },
  });

const waitUntil = async (what: string, check: () => boolean, timeout = 30_000) => {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'calltrail-drain-batch-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const journalWith = async (events: readonly [string, ProposedEvent][]): Promise<Journal> => {
  const journal = openJournal({ path: path.join(root, randomUUID()), maxBytes: 64 * 1024 * 1024 });
  for (const [stream, proposed] of events) await journal.append(stream, proposed);
  return journal;
};

/** Drains the journal into the store with a fresh writer (a process that knows no stream yet). */
const drain = async (
  journal: Journal,
  eventStore: EventStore,
  maxAppendEvents: number,
  options: { readonly within?: number; readonly onUnavailable?: (error: unknown) => void } = {},
) => {
  const drainer = startDrainer({
    journal,
    writer: createArchiveWriter(eventStore, { timeoutMs }),
    logger: createLogger({ level: 'silent' }),
    maxAppendEvents,
    ...(options.onUnavailable ? { onUnavailable: options.onUnavailable } : {}),
  });
  try {
    await waitUntil('the journal drains', () => journal.depth() === 0, options.within);
  } finally {
    // Stopping waits for the round, so its removals are committed and counted.
    await drainer.stop();
  }
  return drainer.drained();
};

const idsIn = async (store: EventStore, stream: string) =>
  (await readStream(store, stream)).map((recorded) => recorded.id);

describe.each(storeSubjects)('batched drain on $name', (subject) => {
  let store: StoreUnderTest;

  beforeAll(async () => {
    store = await subject.open({ timeoutMs });
  });
  afterAll(async () => {
    await store?.close();
  });

  it("stores each stream's journaled events in a few appends, in order", async () => {
    const first = `call-drain-${randomUUID()}`;
    const second = `call-drain-${randomUUID()}`;
    const firstEvents = Array.from({ length: 20 }, (_, step) => event(step));
    const secondEvents = Array.from({ length: 10 }, (_, step) => event(step));
    // Interleaved as received: the two streams' events alternate in the journal.
    const received: [string, ProposedEvent][] = [];
    for (let step = 0; step < 20; step += 1) {
      received.push([first, firstEvents[step]!]);
      if (step < 10) received.push([second, secondEvents[step]!]);
    }
    const journal = await journalWith(received);
    try {
      const counted = counting(store.eventStore);
      expect(await drain(journal, counted.store, 8)).toBe(30);
      // 20 events in appends of at most 8, and 10 in appends of at most 8: five appends, not thirty.
      expect(counted.appends()).toBe(5);
      expect(await idsIn(store.eventStore, first)).toEqual(firstEvents.map(({ id }) => id));
      expect(await idsIn(store.eventStore, second)).toEqual(secondEvents.map(({ id }) => id));
    } finally {
      await journal.close();
    }
  });

  it('stores each event once when the store already holds a prefix of the journaled ones', async () => {
    const stream = `call-drain-${randomUUID()}`;
    const before = [event(0), event(1)];
    const journaled = Array.from({ length: 12 }, (_, step) => event(step + 2));
    // Stored before the outage, then a batch appended whose removal from the journal never happened.
    const storedBatch = journaled.slice(0, 5);
    expect((await store.eventStore.append(stream, before, 'no-stream')).outcome).toBe('appended');
    expect((await store.eventStore.append(stream, storedBatch, 1n)).outcome).toBe('appended');
    const journal = await journalWith(journaled.map((proposed) => [stream, proposed]));
    try {
      await drain(journal, store.eventStore, 8);
      expect(await idsIn(store.eventStore, stream)).toEqual([...before, ...journaled].map(({ id }) => id));
    } finally {
      await journal.close();
    }
  });

  it('stores nothing again when the store already holds every journaled event', async () => {
    const stream = `call-drain-${randomUUID()}`;
    const journaled = Array.from({ length: 6 }, (_, step) => event(step));
    // A whole stream appended as one batch, then the process died before the journal's delete.
    expect((await store.eventStore.append(stream, journaled, 'no-stream')).outcome).toBe('appended');
    const journal = await journalWith(journaled.map((proposed) => [stream, proposed]));
    try {
      await drain(journal, store.eventStore, 4);
      expect(await idsIn(store.eventStore, stream)).toEqual(journaled.map(({ id }) => id));
    } finally {
      await journal.close();
    }
  });

  it('takes a backlog too large for one append within the store timeout, in smaller appends', async () => {
    const slow = `call-drain-${randomUUID()}`;
    const quick = `call-drain-${randomUUID()}`;
    const slowEvents = Array.from({ length: 40 }, (_, step) => event(step));
    const quickEvents = [event(0), event(1)];
    const journal = await journalWith([
      ...slowEvents.map((proposed): [string, ProposedEvent] => [slow, proposed]),
      ...quickEvents.map((proposed): [string, ProposedEvent] => [quick, proposed]),
    ]);
    const unavailable: unknown[] = [];
    try {
      // 40 events in one append never commit; the drain must not retry that append for ever.
      await drain(journal, committingAtMost(store.eventStore, 8), 64, {
        within: 10_000,
        onUnavailable: (error) => unavailable.push(error),
      });
      expect(await idsIn(store.eventStore, slow)).toEqual(slowEvents.map(({ id }) => id));
      expect(await idsIn(store.eventStore, quick)).toEqual(quickEvents.map(({ id }) => id));
      // Appends of 40, 20, 10 failed, then 5 went. The first round also stored the quick call: the
      // store answered, so only the two rounds that stored nothing reported it unavailable.
      expect(unavailable).toHaveLength(2);
    } finally {
      await journal.close();
    }
  });
});
