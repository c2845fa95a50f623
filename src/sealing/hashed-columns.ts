/**
 * Hashed events in columns (`HashedEventColumns`): built from hashed events one by one (a store that
 * is read event by event), and queued between the pages the sealer reads and the runs it seals, with
 * each run's columns copied in bulk rather than an object per event.
 */
import {
  eventHashBytes,
  formatPosition,
  type HashedEvent,
  type HashedEventColumns,
} from '../event-store/event-store.ts';

/** Whether `value` fits an unsigned 64-bit number (what positions and revisions are). */
export const isUint64 = (value: bigint): boolean => BigInt.asUintN(64, value) === value;

/** The columns of already hashed events, in order. */
export const columnsOfHashedEvents = (events: readonly HashedEvent[]): HashedEventColumns => {
  const count = events.length;
  const hashes = Buffer.alloc(count * eventHashBytes);
  const streams: string[] = [];
  const streamNumbers = new Map<string, number>();
  const streamIndexes = new Uint32Array(count);
  const commits = new BigUint64Array(count);
  const prepares = new BigUint64Array(count);
  const revisions = new BigUint64Array(count);
  const createdMs = new Float64Array(count);
  for (let index = 0; index < count; index += 1) {
    const event = events[index]!;
    const { commit, prepare } = event.position;
    if (!isUint64(commit) || !isUint64(prepare) || !isUint64(event.revision))
      throw new RangeError(`event at ${formatPosition(event.position)}: a position or revision past 64 bits`);
    if (hashes.write(event.hash, index * eventHashBytes, eventHashBytes, 'hex') !== eventHashBytes)
      throw new RangeError(`event at ${formatPosition(event.position)}: its hash is not 32 bytes of hex`);
    let stream = streamNumbers.get(event.streamName);
    if (stream === undefined) {
      stream = streams.length;
      streams.push(event.streamName);
      streamNumbers.set(event.streamName, stream);
    }
    streamIndexes[index] = stream;
    commits[index] = commit;
    prepares[index] = prepare;
    revisions[index] = event.revision;
    createdMs[index] = event.created.getTime();
  }
  return { count, hashes, streams, streamIndexes, commits, prepares, revisions, createdMs };
};

/**
 * Pages of hashed events waiting to be sealed, in order: pushed as they are read, taken as runs of
 * any length. A run copies each column's part of each page it spans in one go; only stream numbers
 * are looked at one by one, to name each stream once per run.
 */
export class PendingHashes {
  private readonly pages: HashedEventColumns[] = [];
  /** How far the first page has been taken. */
  private taken = 0;
  private waiting = 0;

  /** How many events wait. */
  get count(): number {
    return this.waiting;
  }

  push(columns: HashedEventColumns): void {
    if (columns.count === 0) return;
    this.pages.push(columns);
    this.waiting += columns.count;
  }

  /** The next `count` waiting events as columns of their own (`count` must not exceed `this.count`). */
  take(count: number): HashedEventColumns {
    if (!Number.isInteger(count) || count < 0 || count > this.waiting)
      throw new RangeError(`cannot take ${count} of ${this.waiting} waiting events`);
    const hashes = Buffer.allocUnsafe(count * eventHashBytes);
    const streams: string[] = [];
    const streamIndexes = new Uint32Array(count);
    const commits = new BigUint64Array(count);
    const prepares = new BigUint64Array(count);
    const revisions = new BigUint64Array(count);
    const createdMs = new Float64Array(count);
    // Each stream's number in this run, by name: a stream can go on from one page into the next.
    const runNumbers = new Map<string, number>();
    let filled = 0;
    while (filled < count) {
      const page = this.pages[0]!;
      const from = this.taken;
      const to = Math.min(page.count, from + count - filled);
      page.hashes.copy(hashes, filled * eventHashBytes, from * eventHashBytes, to * eventHashBytes);
      commits.set(page.commits.subarray(from, to), filled);
      prepares.set(page.prepares.subarray(from, to), filled);
      revisions.set(page.revisions.subarray(from, to), filled);
      createdMs.set(page.createdMs.subarray(from, to), filled);
      // This run's number for each of the page's streams, found at its first event on the page.
      const numbers = new Int32Array(page.streams.length).fill(-1);
      for (let index = from; index < to; index += 1) {
        const pageStream = page.streamIndexes[index]!;
        let stream = numbers[pageStream]!;
        if (stream < 0) {
          const name = page.streams[pageStream]!;
          stream = runNumbers.get(name) ?? streams.length;
          if (stream === streams.length) {
            streams.push(name);
            runNumbers.set(name, stream);
          }
          numbers[pageStream] = stream;
        }
        streamIndexes[filled + index - from] = stream;
      }
      filled += to - from;
      if (to === page.count) {
        this.pages.shift();
        this.taken = 0;
      } else {
        this.taken = to;
      }
    }
    this.waiting -= count;
    return { count, hashes, streams, streamIndexes, commits, prepares, revisions, createdMs };
  }
}
