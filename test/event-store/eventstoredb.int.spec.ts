/**
 * What the EventStoreDB adapter adds beyond the shared contract: connection strings, failures of
 * the store turned into `EventStoreUnavailableError` within a bounded time, dropped subscriptions
 * that throw so the caller resubscribes, and positions that never pass through a JS number. Each
 * test starts its own test server, since most of them break it on purpose.
 */
import { randomUUID } from 'node:crypto';
import { waitFor } from '../support/wait.ts';
import { afterEach, describe, expect, it } from 'vitest';
import {
  EventStoreDbConnectionError,
  connectEventStoreDb,
  toClientConnectionString,
} from '../../src/event-store/eventstoredb.ts';
import {
  EventStoreUnavailableError,
  JsonText,
  type EventStore,
  type ProposedEvent,
  type ReadStreamOptions,
  type SubscriptionMessage,
} from '../../src/event-store/event-store.ts';
import {
  startEventStoreDbTestServer,
  type EventStoreDbTestServer,
  type EventStoreDbTestServerOptions,
} from '../eventstoredb-server/server.ts';

const proposed = (data: unknown = { n: 1 }, metadata: unknown = { receivedAt: 'now' }): ProposedEvent => ({
  id: randomUUID(),
  type: 'status-update',
  data,
  metadata,
});

const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
};

const timed = async (run: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> => {
  const started = Date.now();
  try {
    await run();
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error('expected a failure');
};

const opened: { server: EventStoreDbTestServer; store: EventStore }[] = [];

const open = async (options: EventStoreDbTestServerOptions = {}, timeoutMs = 1_000) => {
  const server = await startEventStoreDbTestServer(options);
  const store = connectEventStoreDb(server.url, { timeoutMs });
  opened.push({ server, store });
  return { server, store };
};

afterEach(async () => {
  for (const { server, store } of opened.splice(0)) {
    await store.close();
    await server.stop();
  }
});

describe('EventStoreDB adapter', () => {
  describe('connection strings', () => {
    it('maps kurrentdb schemes to the esdb ones the client understands', () => {
      expect(toClientConnectionString('kurrentdb://db:2113?tls=false')).toBe('esdb://db:2113?tls=false');
      expect(toClientConnectionString('kurrentdb+discover://a,b?tls=true')).toBe(
        'esdb+discover://a,b?tls=true',
      );
      expect(toClientConnectionString('esdb://db:2113')).toBe('esdb://db:2113');
    });

    it('connects through a kurrentdb:// URL', async () => {
      const { server } = await open();
      const store = connectEventStoreDb(server.url.replace(/^esdb/, 'kurrentdb'), { timeoutMs: 1_000 });
      try {
        await store.ping();
      } finally {
        await store.close();
      }
    });

    it('refuses throwOnAppendFailure=false, and says what is wrong with a bad URL', () => {
      expect(() =>
        connectEventStoreDb('esdb://db:2113?tls=false&throw-on-append-failure=false', { timeoutMs: 1_000 }),
      ).toThrow(EventStoreDbConnectionError);
      expect(() => connectEventStoreDb('esdb://', { timeoutMs: 1_000 })).toThrow(
        /invalid EventStoreDB connection string/,
      );
      expect(() => connectEventStoreDb('esdb://db:2113', { timeoutMs: 0 })).toThrow(/timeoutMs/);
    });
  });

  describe('events', () => {
    it('keeps JSON data and metadata exactly, including null metadata and falsy data', async () => {
      const { store } = await open();
      const stream = `call-${randomUUID()}`;
      await store.append(
        stream,
        [proposed(0, null), proposed('text', { list: [1, 'two'] }), proposed(false, 0)],
        'no-stream',
      );
      const read = await collect(store.readStream(stream));
      expect(read.map((e) => [e.data, e.metadata])).toEqual([
        [0, null],
        ['text', { list: [1, 'two'] }],
        [false, 0],
      ]);
    });

    it('reads a stream backwards, from its end or a revision', async () => {
      const { store } = await open();
      const stream = `call-${randomUUID()}`;
      await store.append(stream, [proposed(0), proposed(1), proposed(2)], 'no-stream');
      const read = async (options: ReadStreamOptions) =>
        (await collect(store.readStream(stream, options))).map((e) => e.data);
      expect(await read({ direction: 'backwards' })).toEqual([2, 1, 0]);
      expect(await read({ direction: 'backwards', maxCount: 1 })).toEqual([2]);
      expect(await read({ direction: 'backwards', fromRevision: 1n })).toEqual([1, 0]);
      expect(await read({ direction: 'backwards', fromRevision: 0n })).toEqual([0]);
      expect(await read({ fromRevision: 1n })).toEqual([1, 2]);
      expect(await collect(store.readStream(`call-${randomUUID()}`, { direction: 'backwards' }))).toEqual([]);
    });

    it('rejects input it cannot store, naming the field', async () => {
      const { store } = await open();
      const noData = { ...proposed(), data: undefined };
      await expect(store.append('call-x', [proposed(), noData], 'any')).rejects.toThrow(/events\[1\]\.data/);
      await expect(store.append('call-x', [], 'any')).rejects.toThrow(/at least one event/);
      // Text given as already serialized is checked: the server would keep any bytes.
      const notJson = new JsonText('{"a":');
      await expect(store.append('call-x', [{ ...proposed(), data: notJson }], 'any')).rejects.toThrow(
        /events\[0\]\.data must be JSON text/,
      );
      await expect(store.append('call-x', [{ ...proposed(), metadata: notJson }], 'any')).rejects.toThrow(
        /events\[0\]\.metadata must be JSON text/,
      );
      await expect(store.append('call-x', [{ ...proposed(), id: 'call-42' }], 'any')).rejects.toThrow(
        /events\[0\]\.id must be a UUID/,
      );
      await expect(collect(store.readAll({ streamPrefixes: [] }))).rejects.toThrow(/streamPrefixes/);
      await expect(collect(store.readStream('call-x'))).resolves.toEqual([]);
    });

    it('never lets system events reach readers of $all', async () => {
      const { server, store } = await open();
      await store.append(`call-${randomUUID()}`, [proposed()], 'no-stream');
      expect(server.store.allEvents.some((e) => e.streamName.startsWith('$'))).toBe(true);
      const everything = await collect(store.readAll({ streamPrefixes: ['call-'] }));
      expect(everything).toHaveLength(1);
      const subscription = store.subscribeToAll({ streamPrefixes: ['call-'] });
      const messages: SubscriptionMessage[] = [];
      for await (const message of subscription) {
        messages.push(message);
        if (message.kind === 'caught-up') break;
      }
      expect(messages.filter((m) => m.kind === 'event')).toHaveLength(1);
    });

    it('reads $all backwards from a position inclusively', async () => {
      const { store } = await open();
      const results = [];
      for (let i = 0; i < 3; i++)
        results.push(await store.append(`call-${i}`, [proposed({ i })], 'no-stream'));
      const second = results[1]!;
      if (second.outcome !== 'appended') throw new Error('append failed');
      const backwards = await collect(
        store.readAll({ streamPrefixes: ['call-'], direction: 'backwards', from: second.position }),
      );
      expect(backwards.map((e) => e.data)).toEqual([{ i: 1 }, { i: 0 }]);
      const one = await collect(
        store.readAll({
          streamPrefixes: ['call-'],
          direction: 'backwards',
          from: second.position,
          maxCount: 1,
        }),
      );
      expect(one.map((e) => e.data)).toEqual([{ i: 1 }]);
    });

    it('carries positions above 2^53 as exact bigints', async () => {
      const { server, store } = await open({ initialPosition: 2n ** 60n + 7n });
      const stream = `call-${randomUUID()}`;
      const appended = await store.append(stream, [proposed(), proposed()], 'no-stream');
      const stored = server.store.allEvents.filter((e) => e.streamName === stream).map((e) => e.position);
      expect(appended).toEqual({
        outcome: 'appended',
        nextRevision: 1n,
        position: { commit: stored[1], prepare: stored[1] },
      });
      const [first] = await collect(store.readStream(stream));
      expect(first!.position).toEqual({ commit: stored[0], prepare: stored[0] });
      expect(first!.position.commit > 2n ** 53n).toBe(true);
      const subscription = store.subscribeToAll({ streamPrefixes: ['call-'], after: first!.position });
      const messages: SubscriptionMessage[] = [];
      for await (const message of subscription) {
        messages.push(message);
        if (message.kind === 'caught-up') break;
      }
      const events = messages.flatMap((m) => (m.kind === 'event' ? [m.event] : []));
      expect(events.map((e) => e.position.commit)).toEqual([stored[1]]);
      const checkpoints = messages.flatMap((m) => (m.kind === 'checkpoint' ? [m.position.commit] : []));
      expect(checkpoints.at(-1)).toBe(stored[1]);
    });
  });

  describe('when the store fails', () => {
    it('every operation on a store that is down throws EventStoreUnavailableError quickly', async () => {
      const { server, store } = await open({}, 1_000);
      await store.append('call-1', [proposed()], 'no-stream');
      await server.goDown();
      const attempts: (() => Promise<unknown>)[] = [
        () => store.append('call-1', [proposed()], 0n),
        () => collect(store.readStream('call-1')),
        () => collect(store.readAll({ streamPrefixes: ['call-'] })),
        () => store.ping(),
        () => collect(store.subscribeToAll({ streamPrefixes: ['call-'] })),
      ];
      for (const attempt of attempts) {
        const { error, ms } = await timed(attempt);
        expect(error).toBeInstanceOf(EventStoreUnavailableError);
        expect(ms).toBeLessThan(3_000);
      }
      await server.comeBack();
      await store.ping();
      expect(await store.append('call-1', [proposed()], 0n)).toMatchObject({
        outcome: 'appended',
        nextRevision: 1n,
      });
    });

    it('a store that does not answer in time counts as unavailable', async () => {
      const { server, store } = await open({ writeTimeoutMs: 10_000 }, 300);
      server.setWriteDelay(5_000);
      const { error, ms } = await timed(() => store.append('call-slow', [proposed()], 'any'));
      expect(error).toBeInstanceOf(EventStoreUnavailableError);
      expect(ms).toBeLessThan(1_500);
    });

    it('a dropped subscription throws; resubscribing from its checkpoint misses and repeats nothing', async () => {
      const { server, store } = await open();
      const written: string[] = [];
      const append = async (i: number) => {
        const event = proposed({ i });
        written.push(event.id);
        await store.append(`call-${i % 3}`, [event], 'any');
      };
      for (let i = 0; i < 10; i++) await append(i);

      const seen: string[] = [];
      let checkpoint: (SubscriptionMessage & { kind: 'checkpoint' }) | undefined;
      const first = store.subscribeToAll({ streamPrefixes: ['call-'] });
      const failure = (async () => {
        for await (const message of first) {
          if (message.kind === 'event') seen.push(message.event.id);
          if (message.kind === 'checkpoint') checkpoint = message;
          if (message.kind === 'caught-up') {
            await append(10);
            await append(11);
          }
          if (seen.length === 12) server.dropSubscriptions();
        }
      })().then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(await failure).toBeInstanceOf(EventStoreUnavailableError);
      expect(seen).toEqual(written);

      for (let i = 12; i < 15; i++) await append(i);
      // Resume after the last event handled (a projection keeps that as its checkpoint).
      const lastHandled = (await collect(store.readAll({ streamPrefixes: ['call-'] }))).find(
        (e) => e.id === seen.at(-1),
      )!;
      expect(checkpoint).toBeDefined();
      const second = store.subscribeToAll({ streamPrefixes: ['call-'], after: lastHandled.position });
      for await (const message of second) {
        if (message.kind === 'event') seen.push(message.event.id);
        if (seen.length === 15) break;
      }
      expect(seen).toEqual(written);
    });

    it('a subscription whose connection is cut throws, so the caller resubscribes', async () => {
      const { server, store } = await open();
      const subscription = store.subscribeToAll({ streamPrefixes: ['call-'] });
      const outcome = (async () => {
        for await (const message of subscription) {
          if (message.kind === 'caught-up') await server.goDown();
        }
      })().then(
        () => 'ended quietly',
        (error: unknown) => error,
      );
      expect(await outcome).toBeInstanceOf(EventStoreUnavailableError);
    });
  });

  describe('closing', () => {
    it('finishes within its bound while a subscription sits unread with messages waiting', async () => {
      const { store } = await open({}, 1_000);
      const streamName = `call-${randomUUID()}`;
      for (let batch = 0; batch < 10; batch += 1) {
        await store.append(
          streamName,
          Array.from({ length: 100 }, () => proposed({ padding: 'x'.repeat(2_000) })),
          'any',
        );
      }
      const subscription = store.subscribeToAll({ streamPrefixes: [streamName] });
      const iterator = subscription[Symbol.asyncIterator]();
      // One message read, the rest left waiting in the client's buffers: the stream is paused.
      expect((await iterator.next()).done).toBe(false);
      let closed = false;
      const closing = store.close().then(() => {
        closed = true;
      });
      await waitFor('the store to close', () => Promise.resolve(closed), 10_000);
      await closing;
    });
  });
});
