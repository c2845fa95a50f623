/**
 * How far a projection is behind the store: the events after its checkpoint, and how long the
 * oldest of them has been waiting. Also the store's head position, which the watchdog compares with
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
  /** Exact up to `countLimit`; beyond it, extrapolated from positions. */
  readonly lagEvents: number;
  /** Age of the oldest event not yet applied; 0 when caught up. */
  readonly lagSeconds: number;
  /** The newest matching event's position; undefined while the store holds none. */
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

export const measureLag = async (
  eventStore: EventStore,
  options: {
    streamPrefixes: readonly string[];
    checkpoint: GlobalPosition | undefined;
    now: Date;
    countLimit: number;
    /** The newest matching event, when the caller read it already (several projections, one head). */
    head?: RecordedEvent | undefined;
  },
): Promise<Lag> => {
  const { streamPrefixes, checkpoint, countLimit } = options;
  const head = 'head' in options ? options.head : await readHead(eventStore, streamPrefixes);
  if (head === undefined) return { caughtUp: true, lagEvents: 0, lagSeconds: 0, head: undefined };
  if (checkpoint !== undefined && comparePositions(head.position, checkpoint) <= 0) {
    return { caughtUp: true, lagEvents: 0, lagSeconds: 0, head: head.position };
  }
  let counted = 0;
  let oldest: RecordedEvent | undefined;
  let last: RecordedEvent | undefined;
  // `from` is inclusive and the checkpoint itself is applied: one more than the limit, skip it.
  for await (const event of eventStore.readAll({
    streamPrefixes,
    from: checkpoint,
    maxCount: countLimit + 1,
  })) {
    if (checkpoint !== undefined && comparePositions(event.position, checkpoint) <= 0) continue;
    oldest ??= event;
    last = event;
    counted += 1;
    if (counted >= countLimit) break;
  }
  const lagSeconds =
    oldest === undefined ? 0 : Math.max(0, (options.now.getTime() - oldest.created.getTime()) / 1000);
  return {
    caughtUp: false,
    lagEvents: Math.max(1, extrapolate(counted, countLimit, checkpoint, last, head.position)),
    lagSeconds,
    head: head.position,
  };
};

// Positions are not contiguous, but they grow with what is stored, so the share of the position
// range already counted is a fair estimate of the share of events counted.
const extrapolate = (
  counted: number,
  countLimit: number,
  checkpoint: GlobalPosition | undefined,
  last: RecordedEvent | undefined,
  head: GlobalPosition,
): number => {
  if (counted < countLimit || last === undefined) return counted;
  const start = checkpoint?.commit ?? 0n;
  const covered = last.position.commit - start;
  const total = head.commit - start;
  if (covered <= 0n || total <= covered) return counted;
  return Math.round(counted * (Number(total) / Number(covered)));
};
