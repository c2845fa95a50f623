/**
 * How far a projection is behind the store: the events after its checkpoint, and how long the
 * oldest of them has been waiting, at a cost bounded by a count of events rather than by the
 * store's size. Also the newest position still to be delivered, which the watchdog compares with
 * what the subscription has delivered.
 */
import {
  comparePositions,
  type EventStore,
  type GlobalPosition,
  type RecordedEvent,
} from '../event-store/event-store.ts';

export interface Lag {
  readonly caughtUp: boolean;
  /**
   * The projections' events after the checkpoint: exact when the head is within `countLimit`
   * events of it; beyond, extrapolated from positions (at least 1).
   */
  readonly lagEvents: number;
  /** Age of the oldest event not yet applied (of the projections' streams when one is in sight); 0 when caught up. */
  readonly lagSeconds: number;
  /**
   * The newest position the subscription must still deliver or pass: the newest of the
   * projections' events in sight, or the store's head when it is further than `countLimit` events
   * away; undefined when caught up.
   */
  readonly head: GlobalPosition | undefined;
}

const first = async <T>(source: AsyncIterable<T>): Promise<T | undefined> => {
  for await (const item of source) return item;
  return undefined;
};

export const readHead = async (
  eventStore: EventStore,
  streamPrefixes: readonly string[],
): Promise<RecordedEvent | undefined> =>
  first(eventStore.readAll({ streamPrefixes, direction: 'backwards', maxCount: 1 }));

/**
 * The newest event in the store, whatever its stream: one event read, however many of the newest
 * events belong to streams the projections do not read.
 */
export const readStoreHead = async (eventStore: EventStore): Promise<RecordedEvent | undefined> =>
  first(eventStore.readAll({ streamPrefixes: 'every-stream', direction: 'backwards', maxCount: 1 }));

const matches = (streamPrefixes: readonly string[], event: RecordedEvent) =>
  streamPrefixes.some((prefix) => event.streamName.startsWith(prefix));

/**
 * Reads at most `countLimit + 2` events, of any stream, however large the store: the store's head
 * (unless given), then the events just after the checkpoint. Caught up when none of those up to the
 * head is one the projections read; behind when one is, or when the head is further than
 * `countLimit` events away (a subscription that keeps up moves its checkpoint much closer).
 */
export const measureLag = async (
  eventStore: EventStore,
  options: {
    streamPrefixes: readonly string[];
    checkpoint: GlobalPosition | undefined;
    now: Date;
    countLimit: number;
    /** The store's newest event, when the caller read it already (several projections, one head). */
    head?: RecordedEvent | undefined;
  },
): Promise<Lag> => {
  const { streamPrefixes, checkpoint, countLimit } = options;
  const head = 'head' in options ? options.head : await readStoreHead(eventStore);
  if (head === undefined) return { caughtUp: true, lagEvents: 0, lagSeconds: 0, head: undefined };
  if (checkpoint !== undefined && comparePositions(head.position, checkpoint) <= 0) {
    return { caughtUp: true, lagEvents: 0, lagSeconds: 0, head: undefined };
  }
  let scanned = 0;
  let counted = 0;
  let reachedHead = false;
  let firstUnapplied: RecordedEvent | undefined;
  let oldest: RecordedEvent | undefined;
  let newest: RecordedEvent | undefined;
  let last: RecordedEvent | undefined;
  // `from` is inclusive and the checkpoint itself is applied: one more than the limit, skip it.
  for await (const event of eventStore.readAll({
    streamPrefixes: 'every-stream',
    from: checkpoint,
    maxCount: countLimit + 1,
  })) {
    if (checkpoint !== undefined && comparePositions(event.position, checkpoint) <= 0) continue;
    if (comparePositions(event.position, head.position) > 0) {
      reachedHead = true;
      break;
    }
    firstUnapplied ??= event;
    last = event;
    scanned += 1;
    if (matches(streamPrefixes, event)) {
      oldest ??= event;
      newest = event;
      counted += 1;
    }
    if (comparePositions(event.position, head.position) === 0) {
      reachedHead = true;
      break;
    }
    if (scanned >= countLimit) break;
  }
  if (reachedHead && counted === 0) return { caughtUp: true, lagEvents: 0, lagSeconds: 0, head: undefined };
  const waiting = oldest ?? firstUnapplied;
  const lagSeconds =
    waiting === undefined ? 0 : Math.max(0, (options.now.getTime() - waiting.created.getTime()) / 1000);
  return {
    caughtUp: false,
    lagEvents: Math.max(1, reachedHead ? counted : extrapolate(counted, checkpoint, last, head.position)),
    lagSeconds,
    // Beyond what was looked at, the head is the newest position the subscription has yet to pass.
    head: reachedHead ? newest?.position : head.position,
  };
};

// Positions are not contiguous, but they grow with what is stored, so the share of the position
// range already looked at is a fair estimate of the share of events counted.
const extrapolate = (
  counted: number,
  checkpoint: GlobalPosition | undefined,
  last: RecordedEvent | undefined,
  head: GlobalPosition,
): number => {
  if (last === undefined) return counted;
  const start = checkpoint?.commit ?? 0n;
  const covered = last.position.commit - start;
  const total = head.commit - start;
  if (covered <= 0n || total <= covered) return counted;
  return Math.round(counted * (Number(total) / Number(covered)));
};
