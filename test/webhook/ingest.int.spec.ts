/**
 * The idempotent append on its own, on each real event store: what it remembers between appends may
 * be evicted or stale and the outcome must not change; a racer between its read and its append is
 * survived; time and store failures surface as retryable failures, with nothing written.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { EventStore, ProposedEvent } from '../../src/event-store/event-store.ts';
import {
  AppendContentionError,
  AppendTimeoutError,
  createArchiveWriter,
  isRetryableAppendFailure,
} from '../../src/webhook/ingest.ts';
import {
  openEventStoreDb,
  readStream,
  storeSubjects,
  type EventStoreDbUnderTest,
  type StoreUnderTest,
} from './stores.ts';

const event = (label: string): ProposedEvent => ({
  id: randomUUID(),
  type: 'status-update',
  data: { label },
  metadata: { receivedAt: '2025-08-28T08:00:00.000Z' },
});

const labels = async (store: EventStore, stream: string) =>
  (await readStream(store, stream)).map((e) => (e.data as { label: string }).label);

/**
 * The real store, with another process's append slipped in just before this writer's appends (the
 * first `times` of them): the race a read-then-append must survive, made deterministic.
 */
const racedBy = (
  store: EventStore,
  other: EventStore,
  racer: () => ProposedEvent,
  times: number,
): EventStore => {
  let raced = 0;
  return {
    kind: store.kind,
    reportsWrites: store.reportsWrites,
    readStream: (name, options) => store.readStream(name, options),
    readAll: (options) => store.readAll(options),
    subscribeToAll: (options) => store.subscribeToAll(options),
    ping: () => store.ping(),
    close: () => store.close(),
    append: async (name, events, expected) => {
      if (raced < times) {
        raced += 1;
        await other.append(name, [racer()], expected);
      }
      return store.append(name, events, expected);
    },
  };
};

describe.each(storeSubjects)('archive writer on $name', (subject) => {
  let store: StoreUnderTest;

  beforeAll(async () => {
    store = await subject.open({ timeoutMs: 1_000 });
  });
  afterAll(async () => {
    await store?.close();
  });

  it('gives the same outcomes when what it remembers is evicted between appends', async () => {
    const writer = createArchiveWriter(store.eventStore, { timeoutMs: 2_000, rememberedIds: 3 });
    const streams = [`call-${randomUUID()}`, `call-${randomUUID()}`];
    const events = Array.from({ length: 6 }, (_, i) => ({ stream: streams[i % 2]!, event: event(`e${i}`) }));
    for (const { stream, event: e } of events)
      expect(await writer.append(stream, e)).toEqual({ duplicate: false });
    for (const { stream, event: e } of [...events].reverse()) {
      expect(await writer.append(stream, e)).toEqual({ duplicate: true });
    }
    expect(await labels(store.eventStore, streams[0]!)).toEqual(['e0', 'e2', 'e4']);
    expect(await labels(store.eventStore, streams[1]!)).toEqual(['e1', 'e3', 'e5']);
  });

  it('catches up on events another process appended since its last read', async () => {
    const writer = createArchiveWriter(store.eventStore, { timeoutMs: 2_000 });
    const other = await store.connectAnother();
    const stream = `call-${randomUUID()}`;
    const [first, second, third] = [event('first'), event('second'), event('third')];
    await writer.append(stream, first);
    expect(await other.append(stream, [second], 0n)).toMatchObject({ outcome: 'appended', nextRevision: 1n });
    expect(await writer.append(stream, third)).toEqual({ duplicate: false });
    expect(await writer.append(stream, second)).toEqual({ duplicate: true });
    expect(await labels(store.eventStore, stream)).toEqual(['first', 'second', 'third']);
  });

  it('re-reads and retries when another writer appends between its read and its append', async () => {
    const other = await store.connectAnother();
    const stream = `call-${randomUUID()}`;
    const racer = event('racer');
    const racing = racedBy(store.eventStore, other, () => racer, 1);
    const writer = createArchiveWriter(racing, { timeoutMs: 2_000 });
    expect(await writer.append(stream, event('mine'))).toEqual({ duplicate: false });
    expect(await labels(store.eventStore, stream)).toEqual(['racer', 'mine']);
  });

  it('stores the event once when the racer wrote this very event', async () => {
    const other = await store.connectAnother();
    const stream = `call-${randomUUID()}`;
    const mine = event('mine');
    const racing = racedBy(store.eventStore, other, () => mine, 1);
    const writer = createArchiveWriter(racing, { timeoutMs: 2_000 });
    await writer.append(stream, mine);
    expect(await writer.append(stream, mine)).toEqual({ duplicate: true });
    expect(await labels(store.eventStore, stream)).toEqual(['mine']);
  });

  it('gives up after its attempts when other writers always win', async () => {
    const other = await store.connectAnother();
    const stream = `call-${randomUUID()}`;
    const racing = racedBy(store.eventStore, other, () => event('racer'), Infinity);
    const writer = createArchiveWriter(racing, { timeoutMs: 5_000, maxAttempts: 3 });
    const failure = await writer.append(stream, event('mine')).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(AppendContentionError);
    expect(isRetryableAppendFailure(failure)).toBe(true);
    expect(await labels(store.eventStore, stream)).toEqual(['racer', 'racer', 'racer']);
  });

  it('after an append times out, reads only what it does not know of the stream, not all of it', async () => {
    // A day's stream holds thousands of events: reading it whole after every timeout could itself
    // outlast the bound, and then no append to it would ever succeed again.
    const readsFrom: bigint[] = [];
    let held: Promise<void> | undefined;
    const watched: EventStore = {
      kind: store.eventStore.kind,
      reportsWrites: store.eventStore.reportsWrites,
      readStream: (name, options) => {
        readsFrom.push(options?.fromRevision ?? 0n);
        return store.eventStore.readStream(name, options);
      },
      readAll: (options) => store.eventStore.readAll(options),
      subscribeToAll: (options) => store.eventStore.subscribeToAll(options),
      ping: () => store.eventStore.ping(),
      close: () => store.eventStore.close(),
      append: async (name, events, expected) => {
        if (held !== undefined) await held;
        return store.eventStore.append(name, events, expected);
      },
    };
    const writer = createArchiveWriter(watched, { timeoutMs: 1_000 });
    const stream = `call-${randomUUID()}`;
    const earlier = Array.from({ length: 20 }, (_, i) => event(`e${i}`));
    for (const e of earlier) expect(await writer.append(stream, e)).toEqual({ duplicate: false });

    let release = () => {};
    held = new Promise((resolve) => {
      release = resolve;
    });
    const late = event('late');
    expect(await writer.append(stream, late).catch((error: unknown) => error)).toBeInstanceOf(
      AppendTimeoutError,
    );
    // The abandoned append goes through after all, as a slow store's may.
    held = undefined;
    release();
    await vi.waitFor(async () => expect(await labels(store.eventStore, stream)).toContain('late'), {
      timeout: 10_000,
      interval: 50,
    });

    readsFrom.length = 0;
    expect(await writer.append(stream, event('next'))).toEqual({ duplicate: false });
    expect(await writer.append(stream, late)).toEqual({ duplicate: true });
    expect(readsFrom).toEqual([20n]);
    expect(await labels(store.eventStore, stream)).toEqual([
      ...earlier.map((_, i) => `e${i}`),
      'late',
      'next',
    ]);
  });

  it('fails retryably while the store is down, then works again', async () => {
    const writer = createArchiveWriter(store.eventStore, { timeoutMs: 1_500 });
    const stream = `call-${randomUUID()}`;
    const e = event('during-outage');
    await store.takeDown();
    try {
      const failure = await writer.append(stream, e).catch((error: unknown) => error);
      expect(isRetryableAppendFailure(failure)).toBe(true);
    } finally {
      await store.bringBack();
    }
    // The client reconnects in its own time: retry, as Flireo would, until the append goes through.
    const outcome = await vi.waitFor(() => writer.append(stream, e), { timeout: 10_000, interval: 250 });
    expect(outcome).toEqual({ duplicate: false });
    expect(await labels(store.eventStore, stream)).toEqual(['during-outage']);
  });
});

describe('archive writer on a slow eventstoredb', () => {
  let store: EventStoreDbUnderTest;

  beforeAll(async () => {
    store = await openEventStoreDb({ timeoutMs: 5_000 });
  });
  afterAll(async () => {
    await store?.close();
  });

  it('times out within its bound, holds no queue, and the unfinished write never lands', async () => {
    const writer = createArchiveWriter(store.eventStore, { timeoutMs: 500 });
    const stream = `call-${randomUUID()}`;
    const slow = event('slow');
    store.slowWrites(3_000);
    const waiting = event('queued-behind');
    // Each write takes 3 s: an AppendTimeoutError for both is the 500 ms bound at work, the queued one
    // included, however loaded the machine.
    const [first, second] = await Promise.all([
      writer.append(stream, slow).catch((error: unknown) => error),
      writer.append(stream, waiting).catch((error: unknown) => error),
    ]);
    expect(first).toBeInstanceOf(AppendTimeoutError);
    expect(second).toBeInstanceOf(AppendTimeoutError);
    store.slowWrites(0);

    // The server's own write timeout (2 s) passes: the slow writes fail there, unwritten.
    await vi.waitFor(() => expect(store.slowWritesInFlight()).toBe(0), { timeout: 10_000, interval: 50 });
    expect(await labels(store.eventStore, stream)).toEqual([]);
    expect(await writer.append(stream, slow)).toEqual({ duplicate: false });
    expect(await writer.append(stream, waiting)).toEqual({ duplicate: false });
    expect(await labels(store.eventStore, stream)).toEqual(['slow', 'queued-behind']);
  });
});
