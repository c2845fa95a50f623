/**
 * The event-store contract: what every adapter of the port (src/event-store/event-store.ts) must do,
 * with EventStoreDB's semantics. Each adapter's spec calls `describeEventStoreContract` with a way to
 * open it; the EventStoreDB one also runs against a real server when one is configured.
 *
 * Every test writes to streams under a fresh random prefix, so the suite can share a store with other
 * tests (or a real server with other data) and filters only ever see its own events.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  comparePositions,
  formatPosition,
  JsonText,
  parsePosition,
  type AppendResult,
  type EventStore,
  type GlobalPosition,
  type ProposedEvent,
  type RecordedEvent,
  type Subscription,
  type SubscriptionMessage,
} from '../../src/event-store/event-store.ts';

export interface ContractSubject {
  readonly eventStore: EventStore;
  /** Releases whatever `open` created (the store itself is closed by the suite). */
  readonly dispose?: () => Promise<void>;
}

const proposed = (type = 'status-update', data: Record<string, unknown> = {}): ProposedEvent => ({
  id: randomUUID(),
  type,
  data: { note: 'contract', ...data },
  metadata: { receivedAt: new Date().toISOString() },
});

const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => {
  const items: T[] = [];
  for await (const item of source) items.push(item);
  return items;
};

/** Reads subscription messages until `done` says so, or fails after `timeoutMs`. */
const readUntil = async (
  subscription: Subscription,
  done: (messages: readonly SubscriptionMessage[]) => boolean,
  timeoutMs = 10_000,
): Promise<SubscriptionMessage[]> => {
  const messages: SubscriptionMessage[] = [];
  const iterator = subscription[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  while (!done(messages)) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw new Error(`subscription timed out after ${messages.length} messages`);
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      iterator.next(),
      new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), remaining);
      }),
    ]);
    clearTimeout(timer);
    if (next === 'timeout') throw new Error(`subscription timed out after ${messages.length} messages`);
    if (next.done) throw new Error('subscription ended before the expected messages arrived');
    messages.push(next.value);
  }
  return messages;
};

const eventsOf = (messages: readonly SubscriptionMessage[]): RecordedEvent[] =>
  messages.flatMap((message) => (message.kind === 'event' ? [message.event] : []));

const expectAscending = (positions: readonly GlobalPosition[]): void => {
  for (let i = 1; i < positions.length; i++) {
    expect(comparePositions(positions[i - 1]!, positions[i]!)).toBeLessThan(0);
  }
};

/** An idempotent re-append answers like the first append, but (where the store can tell) wrote nothing. */
const expectAcknowledged = (again: AppendResult, first: AppendResult): void => {
  const { written: firstWritten, ...firstAnswer } =
    first.outcome === 'appended' ? first : { written: undefined };
  const { written: againWritten, ...againAnswer } =
    again.outcome === 'appended' ? again : { written: undefined };
  expect(again.outcome).toBe('appended');
  expect(againAnswer).toEqual(first.outcome === 'appended' ? firstAnswer : first);
  if (firstWritten !== undefined) expect(firstWritten).toBe(true);
  if (againWritten !== undefined) expect(againWritten).toBe(false);
};

export const describeEventStoreContract = (name: string, open: () => Promise<ContractSubject>): void => {
  describe(`event-store contract: ${name}`, () => {
    let subject: ContractSubject;
    let store: EventStore;
    /** A prefix of this suite's own, so $all filters see nothing else. */
    const prefix = `contract${randomBytes(4).toString('hex')}-`;
    let streamCounter = 0;
    const newStream = (): string => `${prefix}s${streamCounter++}-${randomBytes(3).toString('hex')}`;

    beforeAll(async () => {
      subject = await open();
      store = subject.eventStore;
    });

    afterAll(async () => {
      await store?.close();
      await subject?.dispose?.();
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    describe('append and read a stream', () => {
      it('appends to a new stream and reads back every field', async () => {
        const stream = newStream();
        const event = proposed('status-update', {
          text: 'héllo "quoted" \n ✓ 📞',
          n: 1.5,
          nested: { a: [1, null] },
        });
        const result = await store.append(stream, [event], 'no-stream');
        expect(result).toMatchObject({ outcome: 'appended', nextRevision: 0n });
        const read = await collect(store.readStream(stream));
        expect(read).toHaveLength(1);
        const [recorded] = read;
        expect(recorded).toMatchObject({
          streamName: stream,
          id: event.id,
          type: 'status-update',
          revision: 0n,
          data: event.data,
          metadata: event.metadata,
        });
        expect(typeof recorded!.position.commit).toBe('bigint');
        expect(typeof recorded!.position.prepare).toBe('bigint');
        expect(recorded!.created).toBeInstanceOf(Date);
        expect(Math.abs(recorded!.created.getTime() - Date.now())).toBeLessThan(60_000);
        if (result.outcome === 'appended')
          expect(comparePositions(result.position, recorded!.position)).toBe(0);
      });

      it('gives data and metadata as stored, the exact JSON text written, on every read path', async () => {
        const streamName = newStream();
        // Text a parse-and-reserialize round trip would change if it were not kept as written.
        const event: ProposedEvent = {
          id: randomUUID(),
          type: 'status-update',
          data: { b: 1, a: [1.5, 'é\u0000', { '10': true, '2': null }], z: 'x'.repeat(3000), n: 1e21 },
          metadata: { receivedAt: '2026-03-01T10:00:00.000Z', list: [] },
        };
        await store.append(streamName, [event], 'no-stream');
        const subscription = store.subscribeToAll({ streamPrefixes: [streamName] });
        try {
          const messages = await readUntil(subscription, (seen) => seen.some((m) => m.kind === 'caught-up'));
          const reads: RecordedEvent[] = [
            ...(await collect(store.readStream(streamName))),
            ...(await collect(store.readAll({ streamPrefixes: [streamName] }))),
            ...messages.flatMap((message) => (message.kind === 'event' ? [message.event] : [])),
          ];
          expect(reads).toHaveLength(3);
          for (const read of reads) {
            expect(read.storedData).toBe(JSON.stringify(event.data));
            expect(read.storedMetadata).toBe(JSON.stringify(event.metadata));
            expect(JSON.parse(read.storedData)).toEqual(read.data);
            expect(JSON.parse(read.storedMetadata)).toEqual(read.metadata);
          }
        } finally {
          await subscription.close();
        }
      });

      it('stores data and metadata given as JSON text exactly as that text, as if given as values', async () => {
        const streamName = newStream();
        const data = { b: 1, a: [1.5, 'é\u0000\ud800', { '10': true, '2': null }], z: 'x'.repeat(3000) };
        const metadata = { receivedAt: '2026-03-01T10:00:00.000Z', list: [] };
        const asText: ProposedEvent = {
          id: randomUUID(),
          type: 'status-update',
          data: new JsonText(JSON.stringify(data)),
          metadata: new JsonText(JSON.stringify(metadata)),
        };
        const asValues: ProposedEvent = { ...asText, id: randomUUID(), data, metadata };
        await store.append(streamName, [asText, asValues], 'no-stream');
        const [fromText, fromValues] = await collect(store.readStream(streamName));
        expect(fromText!.storedData).toBe(JSON.stringify(data));
        expect(fromText!.storedMetadata).toBe(JSON.stringify(metadata));
        expect(fromText!.data).toEqual(data);
        expect(fromText!.metadata).toEqual(metadata);
        expect([fromValues!.storedData, fromValues!.storedMetadata]).toEqual([
          fromText!.storedData,
          fromText!.storedMetadata,
        ]);
        // The same event appended again, as text, is recognised as the one already there.
        const again = await store.append(streamName, [asText], 'no-stream');
        expect(again).toMatchObject({ outcome: 'appended', nextRevision: 0n });
      });

      it('says whether an append wrote, when it claims to', async () => {
        const stream = newStream();
        const event = proposed();
        const first = await store.append(stream, [event], 'no-stream');
        const again = await store.append(stream, [event], 'no-stream');
        if (store.reportsWrites) {
          expect(first).toMatchObject({ outcome: 'appended', written: true });
          expect(again).toMatchObject({ outcome: 'appended', written: false });
        } else {
          expect(first).toMatchObject({ outcome: 'appended' });
          expect(again).toMatchObject({ outcome: 'appended' });
        }
      });

      it('appends several events atomically, with consecutive revisions', async () => {
        const stream = newStream();
        const events = [proposed(), proposed(), proposed()];
        expect(await store.append(stream, events, 'no-stream')).toMatchObject({ nextRevision: 2n });
        const read = await collect(store.readStream(stream));
        expect(read.map((e) => e.revision)).toEqual([0n, 1n, 2n]);
        expect(read.map((e) => e.id)).toEqual(events.map((e) => e.id));
        expectAscending(read.map((e) => e.position));
      });

      it('yields nothing for a stream that does not exist', async () => {
        expect(await collect(store.readStream(newStream()))).toEqual([]);
      });

      it('reads from a revision, and at most maxCount events', async () => {
        const stream = newStream();
        await store.append(stream, [proposed(), proposed(), proposed(), proposed()], 'no-stream');
        const tail = await collect(store.readStream(stream, { fromRevision: 2n }));
        expect(tail.map((e) => e.revision)).toEqual([2n, 3n]);
        const limited = await collect(store.readStream(stream, { fromRevision: 1n, maxCount: 2 }));
        expect(limited.map((e) => e.revision)).toEqual([1n, 2n]);
      });
    });

    describe('expected revision', () => {
      it('accepts the exact last revision and rejects any other', async () => {
        const stream = newStream();
        await store.append(stream, [proposed(), proposed()], 'no-stream');
        expect(await store.append(stream, [proposed()], 1n)).toMatchObject({
          outcome: 'appended',
          nextRevision: 2n,
        });
        expect(await store.append(stream, [proposed()], 1n)).toEqual({
          outcome: 'wrong-expected-version',
          actualRevision: 2n,
        });
        expect(await store.append(stream, [proposed()], 7n)).toEqual({
          outcome: 'wrong-expected-version',
          actualRevision: 2n,
        });
        expect((await collect(store.readStream(stream))).map((e) => e.revision)).toEqual([0n, 1n, 2n]);
      });

      it('no-stream fails on an existing stream; an exact revision fails on a missing one', async () => {
        const stream = newStream();
        await store.append(stream, [proposed()], 'no-stream');
        expect(await store.append(stream, [proposed()], 'no-stream')).toEqual({
          outcome: 'wrong-expected-version',
          actualRevision: 0n,
        });
        expect(await store.append(newStream(), [proposed()], 0n)).toEqual({
          outcome: 'wrong-expected-version',
          actualRevision: 'no-stream',
        });
      });

      it('stream-exists needs the stream; any takes whatever is there', async () => {
        const stream = newStream();
        expect(await store.append(stream, [proposed()], 'stream-exists')).toEqual({
          outcome: 'wrong-expected-version',
          actualRevision: 'no-stream',
        });
        expect(await store.append(stream, [proposed()], 'any')).toMatchObject({ nextRevision: 0n });
        expect(await store.append(stream, [proposed()], 'stream-exists')).toMatchObject({ nextRevision: 1n });
        expect(await store.append(stream, [proposed()], 'any')).toMatchObject({ nextRevision: 2n });
      });

      it('lets exactly one of several racers win each revision', async () => {
        const stream = newStream();
        await store.append(stream, [proposed()], 'no-stream');
        const racers = Array.from({ length: 8 }, () => store.append(stream, [proposed()], 0n));
        const results = await Promise.all(racers);
        expect(results.filter((r) => r.outcome === 'appended')).toHaveLength(1);
        for (const loser of results.filter((r) => r.outcome === 'wrong-expected-version')) {
          expect(loser).toEqual({ outcome: 'wrong-expected-version', actualRevision: 1n });
        }
        expect(await collect(store.readStream(stream))).toHaveLength(2);
      });
    });

    describe('idempotent appends', () => {
      it('re-appending the same ids with no-stream writes nothing and answers the existing revision', async () => {
        const stream = newStream();
        const events = [proposed(), proposed()];
        const first = await store.append(stream, events, 'no-stream');
        const again = await store.append(stream, events, 'no-stream');
        expectAcknowledged(again, first);
        expect(await collect(store.readStream(stream))).toHaveLength(2);
      });

      it('re-appending the same ids at the same exact revision writes nothing', async () => {
        const stream = newStream();
        await store.append(stream, [proposed()], 'no-stream');
        const event = proposed();
        const first = await store.append(stream, [event], 0n);
        expect(first).toMatchObject({ outcome: 'appended', nextRevision: 1n });
        await store.append(stream, [proposed()], 1n);
        // The stream moved on to revision 2; the retry still names revision 0 as expected.
        const again = await store.append(stream, [event], 0n);
        expectAcknowledged(again, first);
        expect((await collect(store.readStream(stream))).map((e) => e.id)).toHaveLength(3);
      });

      it('a partial match or a first-event mismatch is a wrong expected version', async () => {
        const stream = newStream();
        const [a, b] = [proposed(), proposed()];
        await store.append(stream, [a, b], 'no-stream');
        expect(await store.append(stream, [a, proposed()], 'no-stream')).toMatchObject({
          outcome: 'wrong-expected-version',
        });
        expect(await store.append(stream, [proposed(), b], 'no-stream')).toMatchObject({
          outcome: 'wrong-expected-version',
        });
        expect((await collect(store.readStream(stream))).map((e) => e.id)).toEqual([a.id, b.id]);
      });
    });

    describe('reading all streams', () => {
      it('reads only the given prefixes, in position order, forwards and backwards', async () => {
        const mine = `${prefix}read-${randomBytes(3).toString('hex')}-`;
        const other = `${prefix}other-${randomBytes(3).toString('hex')}-`;
        const expectedIds: string[] = [];
        for (let i = 0; i < 6; i++) {
          const event = proposed();
          await store.append(`${i % 2 === 0 ? mine : other}${i}`, [event], 'no-stream');
          if (i % 2 === 0) expectedIds.push(event.id);
        }
        const forwards = await collect(store.readAll({ streamPrefixes: [mine] }));
        expect(forwards.map((e) => e.id)).toEqual(expectedIds);
        expect(forwards.every((e) => e.streamName.startsWith(mine))).toBe(true);
        expectAscending(forwards.map((e) => e.position));

        const backwards = await collect(store.readAll({ streamPrefixes: [mine], direction: 'backwards' }));
        expect(backwards.map((e) => e.id)).toEqual([...expectedIds].reverse());

        const both = await collect(store.readAll({ streamPrefixes: [mine, other] }));
        expect(both).toHaveLength(6);
        expectAscending(both.map((e) => e.position));

        const latest = await collect(
          store.readAll({ streamPrefixes: [mine], direction: 'backwards', maxCount: 1 }),
        );
        expect(latest.map((e) => e.id)).toEqual([expectedIds.at(-1)]);
      });

      it("reads every stream's events with 'every-stream', the newest and from a position", async () => {
        const mine = `${prefix}every-${randomBytes(3).toString('hex')}-`;
        const appended: string[] = [];
        for (let i = 0; i < 3; i++) {
          const event = proposed();
          await store.append(`${mine}${i}`, [event], 'no-stream');
          appended.push(event.id);
        }
        const all = await collect(store.readAll({ streamPrefixes: [mine] }));
        // Other tests may append to the same store meanwhile: the newest is at least the last of these.
        const newest = await collect(
          store.readAll({ streamPrefixes: 'every-stream', direction: 'backwards', maxCount: 1 }),
        );
        expect(newest).toHaveLength(1);
        expect(comparePositions(newest[0]!.position, all.at(-1)!.position)).toBeGreaterThanOrEqual(0);
        const fromFirst = await collect(
          store.readAll({ streamPrefixes: 'every-stream', from: all[0]!.position, maxCount: 1_000 }),
        );
        expect(fromFirst[0]!.id).toBe(appended[0]);
        expect(fromFirst.filter((e) => e.streamName.startsWith(mine)).map((e) => e.id)).toEqual(appended);
      });

      it('reading from a position includes that position; maxCount limits', async () => {
        const mine = `${prefix}from-${randomBytes(3).toString('hex')}-`;
        for (let i = 0; i < 5; i++) await store.append(`${mine}${i}`, [proposed()], 'no-stream');
        const all = await collect(store.readAll({ streamPrefixes: [mine] }));
        const third = all[2]!;
        const fromThird = await collect(store.readAll({ streamPrefixes: [mine], from: third.position }));
        expect(fromThird.map((e) => e.id)).toEqual(all.slice(2).map((e) => e.id));
        const two = await collect(
          store.readAll({ streamPrefixes: [mine], from: third.position, maxCount: 2 }),
        );
        expect(two.map((e) => e.id)).toEqual(all.slice(2, 4).map((e) => e.id));
      });

      it('positions have a lossless text form', async () => {
        const stream = newStream();
        const result = await store.append(stream, [proposed()], 'no-stream');
        if (result.outcome !== 'appended') throw new Error('append failed');
        expect(parsePosition(formatPosition(result.position))).toEqual(result.position);
      });
    });

    describe('subscriptions', () => {
      it('delivers history, then caught-up, then live events, each once, excluding the start position', async () => {
        const mine = `${prefix}sub-${randomBytes(3).toString('hex')}-`;
        const history: string[] = [];
        for (let i = 0; i < 5; i++) {
          const event = proposed();
          history.push(event.id);
          await store.append(`${mine}${i % 2}`, [event], i < 2 ? 'no-stream' : 'any');
        }
        const subscription = store.subscribeToAll({ streamPrefixes: [mine] });
        try {
          const untilCaughtUp = await readUntil(subscription, (m) => m.some((x) => x.kind === 'caught-up'));
          expect(eventsOf(untilCaughtUp).map((e) => e.id)).toEqual(history);
          const live = [proposed(), proposed()];
          await store.append(`${mine}0`, [live[0]!], 'any');
          await store.append(`${mine}live`, [live[1]!], 'no-stream');
          const afterLive = await readUntil(subscription, (m) => eventsOf(m).length >= 2);
          expect(eventsOf(afterLive).map((e) => e.id)).toEqual(live.map((e) => e.id));
        } finally {
          await subscription.close();
        }

        const all = await collect(store.readAll({ streamPrefixes: [mine] }));
        const after = store.subscribeToAll({ streamPrefixes: [mine], after: all[4]!.position });
        try {
          const messages = await readUntil(
            after,
            (m) => m.some((x) => x.kind === 'caught-up') && eventsOf(m).length >= 2,
          );
          expect(eventsOf(messages).map((e) => e.id)).toEqual(all.slice(5).map((e) => e.id));
        } finally {
          await after.close();
        }
      });

      it('misses nothing and repeats nothing while appends run during catch-up', async () => {
        const mine = `${prefix}race-${randomBytes(3).toString('hex')}-`;
        const before = Array.from({ length: 60 }, () => proposed());
        for (const [i, event] of before.entries()) await store.append(`${mine}${i % 4}`, [event], 'any');
        const subscription = store.subscribeToAll({ streamPrefixes: [mine] });
        const during = Array.from({ length: 60 }, () => proposed());
        const writer = (async () => {
          for (const [i, event] of during.entries()) await store.append(`${mine}${i % 5}`, [event], 'any');
        })();
        try {
          const messages = await readUntil(subscription, (m) => eventsOf(m).length >= 120, 20_000);
          await writer;
          const seen = eventsOf(messages);
          expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);
          expect(new Set(seen.map((e) => e.id))).toEqual(new Set([...before, ...during].map((e) => e.id)));
          expectAscending(seen.map((e) => e.position));
          expect(messages.filter((m) => m.kind === 'caught-up')).toHaveLength(1);
        } finally {
          await writer.catch(() => {});
          await subscription.close();
        }
      });

      it('reports a checkpoint by the end of catch-up, never moving backwards', async () => {
        const mine = `${prefix}ckpt-${randomBytes(3).toString('hex')}-`;
        const other = `${prefix}noise-${randomBytes(3).toString('hex')}-`;
        await store.append(`${mine}a`, [proposed()], 'no-stream');
        for (let i = 0; i < 80; i++) await store.append(`${other}${i % 3}`, [proposed()], 'any');
        const subscription = store.subscribeToAll({ streamPrefixes: [mine] });
        try {
          const messages = await readUntil(subscription, (m) => m.some((x) => x.kind === 'caught-up'));
          const checkpoints = messages.flatMap((m) => (m.kind === 'checkpoint' ? [m.position] : []));
          expect(checkpoints.length).toBeGreaterThan(0);
          const [delivered] = eventsOf(messages);
          expect(delivered).toBeDefined();
          expect(comparePositions(checkpoints.at(-1)!, delivered!.position)).toBeGreaterThanOrEqual(0);
          for (let i = 1; i < checkpoints.length; i++) {
            expect(comparePositions(checkpoints[i - 1]!, checkpoints[i]!)).toBeLessThanOrEqual(0);
          }
          expect(eventsOf(messages).every((e) => e.streamName.startsWith(mine))).toBe(true);
        } finally {
          await subscription.close();
        }
      });

      it('close() ends iteration', async () => {
        const subscription = store.subscribeToAll({ streamPrefixes: [`${prefix}closing-`] });
        const drained = collect(subscription);
        await new Promise((resolve) => setTimeout(resolve, 200));
        await subscription.close();
        const messages = await drained;
        expect(messages.filter((m) => m.kind === 'caught-up')).toHaveLength(1);
        expect(eventsOf(messages)).toEqual([]);
      });
    });
  });
};
