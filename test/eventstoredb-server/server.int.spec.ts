/**
 * The EventStoreDB test server behaves like the real one, as seen through the real client: every
 * test here drives `@eventstore/db-client` over gRPC and checks what a real server would answer.
 */
import { randomUUID } from 'node:crypto';
import {
  ANY,
  BACKWARDS,
  DeadlineExceededError,
  END,
  EventStoreDBClient,
  FORWARDS,
  MaxAppendSizeExceededError,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  AccessDeniedError,
  StreamNotFoundError,
  UnavailableError,
  WrongExpectedVersionError,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type Position,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import sharedPb from '@eventstore/db-client/generated/shared_pb.js';
import { uuidFromDto, uuidToDto } from './protocol.ts';
import { startEventStoreDbTestServer, type EventStoreDbTestServer } from './server.ts';

const credentials = { username: 'admin', password: 'changeit' };
const newStream = (label = 'stream') => `${label}-${randomUUID()}`;
const event = (type = 'happened', data: Record<string, unknown> = {}, id = randomUUID()) =>
  jsonEvent({ id, type, data: { ...data }, metadata: { by: 'test' } });

const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
};

const failureOf = async (run: () => Promise<unknown>): Promise<unknown> => {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
};

const idsOf = (events: readonly ResolvedEvent[]) => events.map((e) => e.event?.id);

type SubscriptionMessage =
  | { kind: 'event'; event: AllStreamResolvedEvent }
  | { kind: 'checkpoint'; position: Position }
  | { kind: 'caught-up' };

/** Subscribes to $all and records events, checkpoints and caught-up in arrival order. */
const recordSubscription = (
  client: EventStoreDBClient,
  options: Parameters<EventStoreDBClient['subscribeToAll']>[0],
) => {
  const messages: SubscriptionMessage[] = [];
  const filter = options?.filter;
  const subscription = client.subscribeToAll({
    ...options,
    ...(filter
      ? {
          filter: {
            ...filter,
            checkpointReached: (_s: unknown, position: Position) => {
              messages.push({ kind: 'checkpoint', position });
            },
          },
        }
      : {}),
  });
  subscription.on('caughtUp', () => messages.push({ kind: 'caught-up' }));
  subscription.on('data', (resolved: AllStreamResolvedEvent) =>
    messages.push({ kind: 'event', event: resolved }),
  );
  const until = async (done: (m: readonly SubscriptionMessage[]) => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!done(messages)) {
      if (Date.now() > deadline) throw new Error(`gave up after ${messages.length} messages`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return messages;
  };
  return { subscription, messages, until };
};

describe('EventStoreDB test server, through the real client', () => {
  let server: EventStoreDbTestServer;
  let client: EventStoreDBClient;

  beforeAll(async () => {
    server = await startEventStoreDbTestServer();
    client = EventStoreDBClient.connectionString(server.url);
  });

  afterAll(async () => {
    await client.dispose();
    await server.stop();
  });

  it('starts with system events in $all, as a fresh database does', async () => {
    const fresh = await startEventStoreDbTestServer();
    const freshClient = EventStoreDBClient.connectionString(fresh.url);
    try {
      const all = await collect(freshClient.readAll({ maxCount: 100 }));
      const streams = new Set(all.map((e) => e.event?.streamId));
      // No $settings event: a fresh server applies its built-in default ACLs.
      expect(streams).not.toContain('$settings');
      expect(streams).toContain('$users');
      expect(streams).toContain('$user-admin');
      expect(all.every((e) => e.event?.streamId.startsWith('$'))).toBe(true);
    } finally {
      await freshClient.dispose();
      await fresh.stop();
    }
  });

  describe('appending', () => {
    it('appends through BatchAppend by default and through Append when the call has credentials', async () => {
      const before = { ...server.callCounts };
      const stream = newStream();
      await client.appendToStream(stream, event(), { expectedRevision: NO_STREAM });
      expect((server.callCounts['batchAppend'] ?? 0) - (before['batchAppend'] ?? 0)).toBeLessThanOrEqual(1);
      expect(server.callCounts['append'] ?? 0).toBe(before['append'] ?? 0);
      expect(server.callCounts['getSupportedMethods']).toBeGreaterThanOrEqual(1);

      const result = await client.appendToStream(stream, event(), { expectedRevision: 0n, credentials });
      expect(server.callCounts['append']).toBe((before['append'] ?? 0) + 1);
      expect(result).toMatchObject({ success: true, nextExpectedRevision: 1n });
      expect(server.callCounts['batchAppend']).toBeGreaterThanOrEqual(1);
    });

    it('returns the revision and position of the last event written, which reading confirms', async () => {
      const stream = newStream();
      const result = await client.appendToStream(stream, [event('a'), event('b'), event('c')], {
        expectedRevision: NO_STREAM,
      });
      const read = await collect(client.readStream(stream));
      expect(read.map((e) => e.event?.revision)).toEqual([0n, 1n, 2n]);
      expect(result.nextExpectedRevision).toBe(2n);
      expect(result.position).toEqual(read[2]!.event!.position);
      expect(read[0]!.event!.position!.commit).toBeLessThan(read[1]!.event!.position!.commit);
    });

    for (const path of ['BatchAppend', 'Append'] as const) {
      const options = path === 'Append' ? { credentials } : {};

      it(`${path}: re-appending with an exact revision or no_stream writes nothing and answers the original`, async () => {
        const stream = newStream();
        const first = [event(), event()];
        const original = await client.appendToStream(stream, first, {
          expectedRevision: NO_STREAM,
          ...options,
        });
        expect(
          await client.appendToStream(stream, first, { expectedRevision: NO_STREAM, ...options }),
        ).toEqual(original);

        const next = event();
        const appended = await client.appendToStream(stream, next, { expectedRevision: 1n, ...options });
        await client.appendToStream(stream, event(), { expectedRevision: 2n, ...options });
        // The stream has moved on; a retry naming the old expected revision is still recognised.
        expect(await client.appendToStream(stream, next, { expectedRevision: 1n, ...options })).toEqual(
          appended,
        );
        expect(await collect(client.readStream(stream))).toHaveLength(4);
      });

      it(`${path}: a partial match or a first-event mismatch is a wrong expected version`, async () => {
        const stream = newStream();
        const [a, b] = [event(), event()];
        await client.appendToStream(stream, [a, b], { expectedRevision: NO_STREAM, ...options });
        const partial = await failureOf(() =>
          client.appendToStream(stream, [a, event()], { expectedRevision: NO_STREAM, ...options }),
        );
        expect(partial).toBeInstanceOf(WrongExpectedVersionError);
        expect(partial).toMatchObject({ actualVersion: 1n, expectedVersion: 'no_stream' });
        const mismatch = await failureOf(() =>
          client.appendToStream(stream, [event(), b], { expectedRevision: NO_STREAM, ...options }),
        );
        expect(mismatch).toMatchObject({ actualVersion: 1n });
        expect(idsOf(await collect(client.readStream(stream)))).toEqual([a.id, b.id]);
      });

      it(`${path}: expected revision rules for no_stream, stream_exists and exact revisions`, async () => {
        const stream = newStream();
        expect(
          await failureOf(() =>
            client.appendToStream(stream, event(), { expectedRevision: STREAM_EXISTS, ...options }),
          ),
        ).toMatchObject({ actualVersion: 'no_stream', expectedVersion: 'stream_exists' });
        expect(
          await failureOf(() => client.appendToStream(stream, event(), { expectedRevision: 0n, ...options })),
        ).toMatchObject({ actualVersion: 'no_stream', expectedVersion: 0n });
        await client.appendToStream(stream, event(), { expectedRevision: NO_STREAM, ...options });
        expect(
          await failureOf(() =>
            client.appendToStream(stream, event(), { expectedRevision: NO_STREAM, ...options }),
          ),
        ).toMatchObject({ actualVersion: 0n, expectedVersion: 'no_stream' });
        expect(
          await client.appendToStream(stream, event(), { expectedRevision: STREAM_EXISTS, ...options }),
        ).toMatchObject({ nextExpectedRevision: 1n });
        expect(
          await failureOf(() => client.appendToStream(stream, event(), { expectedRevision: 5n, ...options })),
        ).toMatchObject({ actualVersion: 1n, expectedVersion: 5n });
      });

      it(`${path}: appends larger than the maximum append size fail`, async () => {
        const small = await startEventStoreDbTestServer({ maxAppendSize: 2_000 });
        const smallClient = EventStoreDBClient.connectionString(small.url);
        try {
          const stream = newStream();
          const error = await failureOf(() =>
            smallClient.appendToStream(stream, event('big', { text: 'x'.repeat(3_000) }), {
              expectedRevision: ANY,
              ...options,
            }),
          );
          expect(error).toBeInstanceOf(MaxAppendSizeExceededError);
          expect(error).toMatchObject({ maxAppendSize: 2_000 });
          await expect(collect(smallClient.readStream(stream))).rejects.toBeInstanceOf(StreamNotFoundError);
        } finally {
          await smallClient.dispose();
          await small.stop();
        }
      });
    }

    it('with any, only recently written ids are recognised', async () => {
      const forgetful = await startEventStoreDbTestServer({ recentEventIds: 3 });
      const forgetfulClient = EventStoreDBClient.connectionString(forgetful.url);
      try {
        const stream = newStream();
        const first = event();
        await forgetfulClient.appendToStream(stream, first, { expectedRevision: ANY });
        const recent = event();
        const recentResult = await forgetfulClient.appendToStream(stream, recent, { expectedRevision: ANY });
        expect(await forgetfulClient.appendToStream(stream, recent, { expectedRevision: ANY })).toEqual(
          recentResult,
        );
        await forgetfulClient.appendToStream(stream, [event(), event(), event()], { expectedRevision: ANY });
        // `first` has left the recent-id cache: with any, it is written again.
        expect(await forgetfulClient.appendToStream(stream, first, { expectedRevision: ANY })).toMatchObject({
          nextExpectedRevision: 5n,
        });
        // With an exact revision the server checks the stream itself, however old the event.
        expect(
          await forgetfulClient.appendToStream(stream, first, { expectedRevision: NO_STREAM }),
        ).toMatchObject({
          nextExpectedRevision: 0n,
        });
      } finally {
        await forgetfulClient.dispose();
        await forgetful.stop();
      }
    });

    it('a BatchAppend whose deadline has passed times out', async () => {
      const error = await failureOf(() =>
        // A deadline already behind the server's clock when the request arrives.
        client.appendToStream(newStream(), event(), { expectedRevision: ANY, deadline: -1_000 }),
      );
      expect(error).toBeInstanceOf(DeadlineExceededError);
    });
  });

  describe('reading streams', () => {
    it('reports a missing stream as not found', async () => {
      await expect(collect(client.readStream(newStream()))).rejects.toBeInstanceOf(StreamNotFoundError);
    });

    it('reads forwards and backwards, from a revision, with a count; created is .NET ticks', async () => {
      const stream = newStream();
      const before = Date.now();
      await client.appendToStream(stream, [event('a'), event('b'), event('c'), event('d')], {
        expectedRevision: NO_STREAM,
      });
      const backwards = await collect(client.readStream(stream, { direction: BACKWARDS, fromRevision: END }));
      expect(backwards.map((e) => e.event?.type)).toEqual(['d', 'c', 'b', 'a']);
      const fromTwo = await collect(
        client.readStream(stream, { direction: BACKWARDS, fromRevision: 2n, maxCount: 2 }),
      );
      expect(fromTwo.map((e) => e.event?.type)).toEqual(['c', 'b']);
      const middle = await collect(client.readStream(stream, { fromRevision: 1n, maxCount: 2 }));
      expect(middle.map((e) => e.event?.type)).toEqual(['b', 'c']);
      expect(await collect(client.readStream(stream, { fromRevision: 10n }))).toEqual([]);
      const created = backwards[0]!.event!.created.getTime();
      expect(created).toBeGreaterThanOrEqual(before);
      expect(created).toBeLessThanOrEqual(Date.now());
      expect(backwards[0]!.event).toMatchObject({ isJson: true, data: {}, metadata: { by: 'test' } });
    });

    it('$acl is enforced when the server enforces it', async () => {
      const guarded = await startEventStoreDbTestServer({ enforceAcl: true });
      const guardedClient = EventStoreDBClient.connectionString(guarded.url);
      try {
        const stream = newStream();
        await guardedClient.appendToStream(stream, event(), { expectedRevision: NO_STREAM });
        await guardedClient.setStreamMetadata(stream, {
          acl: { readRoles: ['$admins'], writeRoles: ['$all'] },
        });
        await expect(collect(guardedClient.readStream(stream))).rejects.toBeInstanceOf(AccessDeniedError);
        await guardedClient.setStreamMetadata(stream, {
          acl: { readRoles: ['$all'], writeRoles: ['$admins'] },
        });
        expect(await collect(guardedClient.readStream(stream))).toHaveLength(1);
        await expect(
          guardedClient.appendToStream(stream, event(), { expectedRevision: ANY }),
        ).rejects.toBeInstanceOf(AccessDeniedError);
      } finally {
        await guardedClient.dispose();
        await guarded.stop();
      }
    });
  });

  describe('$all', () => {
    it('reading from P includes P; reading backwards from P starts before it; subscribing from P excludes it', async () => {
      const prefix = `${newStream('from')}-`;
      for (let i = 0; i < 4; i++)
        await client.appendToStream(`${prefix}${i}`, event(`e${i}`), { expectedRevision: NO_STREAM });
      const mine = (events: readonly AllStreamResolvedEvent[]) =>
        events.filter((e) => e.event?.streamId.startsWith(prefix)).map((e) => e.event!.type);
      const all = (await collect(client.readAll({ maxCount: 100_000 }))).filter((e) =>
        e.event?.streamId.startsWith(prefix),
      );
      const p = all[1]!.event!.position;
      expect(mine(await collect(client.readAll({ fromPosition: p })))).toEqual(['e1', 'e2', 'e3']);
      expect(mine(await collect(client.readAll({ fromPosition: p, direction: BACKWARDS })))).toEqual(['e0']);
      const recorder = recordSubscription(client, {
        fromPosition: p,
        filter: streamNameFilter({ prefixes: [prefix] }),
      });
      try {
        const messages = await recorder.until((m) => m.some((x) => x.kind === 'caught-up'));
        expect(mine(messages.flatMap((m) => (m.kind === 'event' ? [m.event] : [])))).toEqual(['e2', 'e3']);
      } finally {
        await recorder.subscription.unsubscribe();
      }
    });

    it('a filtered subscription sends no system events and a checkpoint every multiplier x 32 considered events', async () => {
      const quiet = await startEventStoreDbTestServer();
      const quietClient = EventStoreDBClient.connectionString(quiet.url);
      try {
        const systemEvents = quiet.store.allEvents.length;
        const mine = `${newStream('mine')}-`;
        // 150 events after the system ones; every 10th is ours.
        for (let i = 0; i < 150; i++) {
          const stream = i % 10 === 0 ? `${mine}${i}` : `noise-${i}`;
          await quietClient.appendToStream(stream, event(), { expectedRevision: NO_STREAM });
        }
        const total = systemEvents + 150;
        const recorder = recordSubscription(quietClient, {
          fromPosition: START,
          filter: streamNameFilter({ prefixes: [mine], checkpointInterval: 2 }),
        });
        try {
          const messages = await recorder.until((m) => m.some((x) => x.kind === 'caught-up'));
          const events = messages.flatMap((m) => (m.kind === 'event' ? [m.event] : []));
          expect(events).toHaveLength(15);
          expect(events.every((e) => e.event?.streamId.startsWith(mine))).toBe(true);
          const checkpoints = messages.flatMap((m) => (m.kind === 'checkpoint' ? [m.position] : []));
          // One per 64 considered events, then one at the end of catch-up.
          expect(checkpoints).toHaveLength(Math.floor(total / 64) + 1);
          const log = quiet.store.allEvents;
          expect(checkpoints[0]!.commit).toBe(log[63]!.position);
          expect(checkpoints.at(-1)!.commit).toBe(log.at(-1)!.position);
          expect(messages.at(-1)).toEqual({ kind: 'caught-up' });

          // Live: 64 more considered events bring one more checkpoint, after our live event.
          await quietClient.appendToStream(`${mine}live`, event('live'), { expectedRevision: NO_STREAM });
          for (let i = 0; i < 63; i++)
            await quietClient.appendToStream(`noise-live-${i}`, event(), { expectedRevision: ANY });
          const live = await recorder.until(
            (m) => m.filter((x) => x.kind === 'checkpoint').length > checkpoints.length,
          );
          const tail = live.slice(live.findIndex((m) => m.kind === 'caught-up') + 1);
          expect(tail.map((m) => m.kind)).toEqual(['event', 'checkpoint']);
        } finally {
          await recorder.subscription.unsubscribe();
        }
      } finally {
        await quietClient.dispose();
        await quiet.stop();
      }
    });

    it('hands over from catch-up to live with no gap and no duplicate while appends run', async () => {
      const prefix = `${newStream('handover')}-`;
      const written: string[] = [];
      const append = async (i: number) => {
        const e = event();
        written.push(e.id);
        await client.appendToStream(`${prefix}${i % 3}`, e, { expectedRevision: ANY });
      };
      for (let i = 0; i < 100; i++) await append(i);
      const recorder = recordSubscription(client, {
        fromPosition: START,
        filter: streamNameFilter({ prefixes: [prefix] }),
      });
      const unfiltered = recordSubscription(client, { fromPosition: START });
      try {
        for (let i = 100; i < 200; i++) await append(i);
        const isMine = (m: SubscriptionMessage) =>
          m.kind === 'event' && m.event.event!.streamId.startsWith(prefix);
        for (const sub of [recorder, unfiltered]) {
          const messages = await sub.until((m) => m.filter(isMine).length >= 200);
          const ids = messages.flatMap((m) => (isMine(m) && m.kind === 'event' ? [m.event.event!.id] : []));
          expect(ids).toEqual(written);
          expect(messages.filter((m) => m.kind === 'caught-up')).toHaveLength(1);
        }
      } finally {
        await recorder.subscription.unsubscribe();
        await unfiltered.subscription.unsubscribe();
      }
    });
  });

  describe('positions above 2^53', () => {
    it('round-trip exactly through append, read and subscribe', async () => {
      const far = await startEventStoreDbTestServer({ initialPosition: 2n ** 60n + 1n });
      const farClient = EventStoreDBClient.connectionString(far.url);
      try {
        const stream = newStream();
        const first = await farClient.appendToStream(stream, event(), { expectedRevision: NO_STREAM });
        const second = await farClient.appendToStream(stream, event(), { expectedRevision: 0n });
        const stored = far.store.allEvents.filter((e) => e.streamName === stream).map((e) => e.position);
        expect(first.position).toEqual({ commit: stored[0], prepare: stored[0] });
        expect(second.position!.commit).toBe(stored[1]);
        expect(stored[0]! > 2n ** 60n).toBe(true);
        const [fromAll] = await collect(farClient.readAll({ fromPosition: first.position!, maxCount: 1 }));
        expect(fromAll!.event!.position).toEqual(first.position);
        const recorder = recordSubscription(farClient, {
          fromPosition: first.position!,
          filter: streamNameFilter({ prefixes: [stream] }),
        });
        try {
          const messages = await recorder.until((m) => m.some((x) => x.kind === 'caught-up'));
          const events = messages.flatMap((m) => (m.kind === 'event' ? [m.event] : []));
          expect(events.map((e) => e.event!.position)).toEqual([second.position]);
          const checkpoints = messages.flatMap((m) => (m.kind === 'checkpoint' ? [m.position] : []));
          expect(checkpoints.at(-1)).toEqual(second.position);
        } finally {
          await recorder.subscription.unsubscribe();
        }
      } finally {
        await farClient.dispose();
        await far.stop();
      }
    });
  });

  describe('faults', () => {
    let faulty: EventStoreDbTestServer;
    let faultyClient: EventStoreDBClient;

    beforeAll(async () => {
      faulty = await startEventStoreDbTestServer();
      faultyClient = EventStoreDBClient.connectionString(faulty.url);
    });

    afterEach(async () => {
      faulty.setWriteDelay(0);
      await faulty.comeBack();
    });

    afterAll(async () => {
      await faultyClient.dispose();
      await faulty.stop();
    });

    it('a server that is down gives UNAVAILABLE; once back, the same client works again', async () => {
      const stream = newStream();
      await faultyClient.appendToStream(stream, event(), { expectedRevision: NO_STREAM });
      await faulty.goDown();
      await expect(
        faultyClient.appendToStream(stream, event(), { expectedRevision: 0n }),
      ).rejects.toBeInstanceOf(UnavailableError);
      await expect(collect(faultyClient.readStream(stream))).rejects.toBeInstanceOf(UnavailableError);
      await faulty.comeBack();
      expect(await faultyClient.appendToStream(stream, event(), { expectedRevision: 0n })).toMatchObject({
        nextExpectedRevision: 1n,
      });
    });

    it('dropping subscriptions ends them with an error the client sees', async () => {
      const subscription = faultyClient.subscribeToAll({ fromPosition: END });
      const failed = new Promise<unknown>((resolve) => subscription.on('error', resolve));
      await new Promise<void>((resolve) => subscription.once('confirmation', () => resolve()));
      expect(faulty.dropSubscriptions()).toBe(1);
      expect(await failed).toBeInstanceOf(UnavailableError);
    });

    it('writes slower than the write timeout time out unwritten', async () => {
      const slow = await startEventStoreDbTestServer({ writeTimeoutMs: 200 });
      const slowClient = EventStoreDBClient.connectionString(slow.url);
      try {
        slow.setWriteDelay(1_000);
        const stream = newStream();
        const started = Date.now();
        await expect(
          slowClient.appendToStream(stream, event(), { expectedRevision: ANY }),
        ).rejects.toBeInstanceOf(DeadlineExceededError);
        expect(Date.now() - started).toBeLessThan(900);
        slow.setWriteDelay(0);
        await expect(collect(slowClient.readStream(stream))).rejects.toBeInstanceOf(StreamNotFoundError);
      } finally {
        await slowClient.dispose();
        await slow.stop();
      }
    });
  });

  describe('wire forms', () => {
    it('UUIDs convert between string and structured forms exactly', () => {
      for (const id of [
        randomUUID(),
        'ffffffff-ffff-ffff-ffff-ffffffffffff',
        '00000000-0000-0000-0000-000000000001',
      ]) {
        expect(uuidFromDto(uuidToDto(id, true))).toBe(id);
        expect(uuidFromDto(uuidToDto(id, false))).toBe(id);
      }
      expect(uuidFromDto(new sharedPb.UUID().setString('ABCDEF00-0000-0000-0000-000000000000'))).toBe(
        'abcdef00-0000-0000-0000-000000000000',
      );
      expect(() => uuidFromDto(new sharedPb.UUID().setString('not-a-uuid'))).toThrow(/Guid/);
    });

    it('rejects BatchAppend requests with a bad event id as a bad request', async () => {
      const error = await failureOf(() =>
        client.appendToStream(newStream(), { ...event(), id: 'not-a-uuid' }, { expectedRevision: ANY }),
      );
      expect(error).toMatchObject({ message: expect.stringContaining('BadRequest') as unknown });
    });

    it('reads $all forwards and backwards from the ends', async () => {
      const forwards = await collect(
        client.readAll({ fromPosition: START, direction: FORWARDS, maxCount: 3 }),
      );
      const backwards = await collect(
        client.readAll({ fromPosition: END, direction: BACKWARDS, maxCount: 3 }),
      );
      expect(forwards.map((e) => e.event!.position)).toEqual(
        server.store.allEvents.slice(0, 3).map((e) => ({ commit: e.position, prepare: e.position })),
      );
      expect(backwards.map((e) => e.event!.position)).toEqual(
        server.store.allEvents
          .slice(-3)
          .reverse()
          .map((e) => ({ commit: e.position, prepare: e.position })),
      );
    });
  });
});
