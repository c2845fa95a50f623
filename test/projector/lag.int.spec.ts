/**
 * The lag measurement's cost does not grow with the archive: however many other streams' events
 * follow the last call event, it reads a bounded number of events from EventStoreDB.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { connectEventStoreDb } from '../../src/event-store/eventstoredb.ts';
import type { EventStore, RecordedEvent } from '../../src/event-store/event-store.ts';
import { measureLag, readStoreHead } from '../../src/projector/lag.ts';
import { startEventStoreDbTestServer } from '../eventstoredb-server/server.ts';

const countLimit = 20;
const otherEvents = 600;

const appendOne = async (eventStore: EventStore, stream: string): Promise<RecordedEvent> => {
  await eventStore.append(stream, [{ id: randomUUID(), type: 'test', data: {}, metadata: {} }], 'any');
  let last: RecordedEvent | undefined;
  for await (const event of eventStore.readStream(stream)) last = event;
  return last!;
};

/** Events of a stream the projections do not read, in one append. */
const appendOthers = async (eventStore: EventStore, stream: string, count: number): Promise<void> => {
  const events = Array.from({ length: count }, () => ({
    id: randomUUID(),
    type: 'test',
    data: {},
    metadata: {},
  }));
  await eventStore.append(stream, events, 'any');
};

const setUp = async () => {
  const server = await startEventStoreDbTestServer();
  onTestFinished(() => server.stop());
  const eventStore = connectEventStoreDb(server.url, { timeoutMs: 5_000 });
  onTestFinished(() => eventStore.close());
  const tag = randomUUID().slice(0, 8);
  return { server, eventStore, streamPrefixes: [`call-${tag}-`], other: `other-${tag}` };
};

const lagWithHead = async (
  eventStore: EventStore,
  streamPrefixes: readonly string[],
  checkpoint: RecordedEvent['position'] | undefined,
) =>
  measureLag(eventStore, {
    streamPrefixes,
    checkpoint,
    now: new Date(),
    countLimit,
    head: await readStoreHead(eventStore),
  });

describe('projection lag on EventStoreDB', () => {
  it('reads a bounded number of events when other streams follow the last call event', async () => {
    const { server, eventStore, streamPrefixes, other } = await setUp();
    const applied = await appendOne(eventStore, `${streamPrefixes[0]}1`);
    await appendOthers(eventStore, other, otherEvents);

    const before = server.allEventsSent;
    const lag = await lagWithHead(eventStore, streamPrefixes, applied.position);
    expect(server.allEventsSent - before).toBeLessThanOrEqual(countLimit + 2);
    // The checkpoint is far behind the store's head: not confirmed caught up, but no call event waits.
    expect(lag.caughtUp).toBe(false);
    expect(lag.lagEvents).toBeGreaterThanOrEqual(1);
  });

  it('is caught up when only a few other streams\u2019 events follow the checkpoint', async () => {
    const { server, eventStore, streamPrefixes, other } = await setUp();
    const applied = await appendOne(eventStore, `${streamPrefixes[0]}1`);
    await appendOthers(eventStore, other, 5);

    const before = server.allEventsSent;
    const lag = await lagWithHead(eventStore, streamPrefixes, applied.position);
    expect(server.allEventsSent - before).toBeLessThanOrEqual(countLimit + 2);
    expect(lag).toMatchObject({ caughtUp: true, lagEvents: 0, lagSeconds: 0 });
  });

  it('counts the call events after the checkpoint, exactly below the limit', async () => {
    const { eventStore, streamPrefixes, other } = await setUp();
    const applied = await appendOne(eventStore, `${streamPrefixes[0]}1`);
    for (let index = 0; index < 3; index += 1) {
      await appendOthers(eventStore, other, 2);
      await appendOne(eventStore, `${streamPrefixes[0]}2`);
    }
    const lag = await lagWithHead(eventStore, streamPrefixes, applied.position);
    expect(lag.caughtUp).toBe(false);
    expect(lag.lagEvents).toBe(3);
    expect(lag.head).toBeDefined();
    const caughtUp = await lagWithHead(eventStore, streamPrefixes, lag.head);
    expect(caughtUp).toMatchObject({ caughtUp: true, lagEvents: 0 });
  });
});
