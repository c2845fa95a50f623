/**
 * The archive's events as sealing and verification need them: position, stream, revision, write
 * time and event hash, in the global order, a page at a time. For sealing, a store that recorded
 * each event's hash as it was written (`readEventHashes`, the PostgreSQL store) sends only that.
 * For verification every hash is computed here, from the events as read back: nothing the store
 * computes is trusted.
 */
import {
  comparePositions,
  type EventStore,
  type GlobalPosition,
  type HashedEvent,
  type HashedEventPage,
} from '../event-store/event-store.ts';
import { eventHash } from './event-hash.ts';
import { columnsOfHashedEvents } from './hashed-columns.ts';

/** Positions looked at per page: large, so per-query costs vanish, yet bounded in memory. */
export const hashPageSize = 5_000;

/**
 * Which hash each event gets: `computed` here from its data as stored now (verification), or the
 * one `recorded` by the store as it was written where it keeps one (sealing: the event as written).
 */
export type HashSource = 'computed' | 'recorded';

interface ComputedPage {
  readonly events: HashedEvent[];
  readonly lookedAt: GlobalPosition | undefined;
  readonly reachedEnd: boolean;
}

/** One page of events strictly after `after`, each hashed here from its data as read back. */
const computeHashPage = async (
  eventStore: EventStore,
  after: GlobalPosition | undefined,
  streamPrefixes: readonly string[],
  limit: number,
): Promise<ComputedPage> => {
  const events: HashedEvent[] = [];
  // `from` is inclusive: one more, in case the first is the event at `after` itself.
  for await (const event of eventStore.readAll({
    streamPrefixes,
    maxCount: limit + 1,
    ...(after === undefined ? {} : { from: after }),
  })) {
    if (after !== undefined && comparePositions(event.position, after) <= 0) continue;
    if (events.length === limit) return { events, lookedAt: events.at(-1)?.position, reachedEnd: false };
    events.push({
      position: event.position,
      streamName: event.streamName,
      revision: event.revision,
      hash: eventHash(event).toString('hex'),
      created: event.created,
    });
  }
  return { events, lookedAt: events.at(-1)?.position ?? after, reachedEnd: events.length < limit };
};

/** One page of hashed events strictly after `after` (up to `limit` positions or events). */
export const readHashPage = async (
  eventStore: EventStore,
  after: GlobalPosition | undefined,
  streamPrefixes: readonly string[],
  source: HashSource,
  limit: number = hashPageSize,
): Promise<HashedEventPage> => {
  if (source === 'recorded' && eventStore.readEventHashes !== undefined) {
    return eventStore.readEventHashes({
      streamPrefixes,
      limit,
      ...(after === undefined ? {} : { after }),
    });
  }
  const { events, lookedAt, reachedEnd } = await computeHashPage(eventStore, after, streamPrefixes, limit);
  return { events: columnsOfHashedEvents(events), lookedAt, reachedEnd };
};

/**
 * Every event after `after` with its hash computed from its data as stored now, to the end of $all
 * as it is when each page is read. The next page is read while the caller works through the current
 * one.
 */
export async function* hashedEventsAfter(
  eventStore: EventStore,
  after: GlobalPosition | undefined,
  streamPrefixes: readonly string[],
): AsyncGenerator<HashedEvent> {
  const readAfter = (from: GlobalPosition | undefined) => {
    const page = computeHashPage(eventStore, from, streamPrefixes, hashPageSize);
    // A prefetched page the caller no longer wants must not become an unhandled rejection.
    page.catch(() => {});
    return page;
  };
  let next: Promise<ComputedPage> | undefined = readAfter(after);
  while (next !== undefined) {
    const page: ComputedPage = await next;
    next = page.reachedEnd || page.lookedAt === undefined ? undefined : readAfter(page.lookedAt);
    yield* page.events;
  }
}
