/**
 * A digest's leaf list in columns: for each sealed event, in order, its position, stream, revision
 * and event hash. Digest version 2 stores it compactly (the hashes as one base64 blob, the rest as
 * varints in another, each stream named once); version 1 stored a JSON tuple per event. Both read
 * into this one form, and sealing and verification work on it without a string per event.
 *
 * The places blob holds, per event, four unsigned LEB128 varints: the position's commit minus the
 * previous event's (the first: minus 0), zigzag(prepare - commit), the index of its stream in the
 * stream list, and its revision.
 */
import {
  eventHashBytes,
  formatPosition,
  type GlobalPosition,
  type HashedEvent,
  type HashedEventColumns,
  type StoredEventBytes,
} from '../event-store/event-store.ts';
import { storedEventHashText } from './event-hash.ts';
import { columnsOfHashedEvents, isUint64 } from './hashed-columns.ts';

/**
 * The leaves in columns: hashed events without their write times. Positions and revisions are in
 * typed arrays, not arrays of bigint: a verification holds every digest's table to its end, and a
 * bigint object per number made each of them garbage to copy.
 */
export type LeafTable = Omit<HashedEventColumns, 'createdMs'>;

/** The stored form (digest version 2). */
export interface EncodedLeaves {
  readonly streams: string[];
  readonly hashes: string;
  readonly places: string;
}

const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);

class VarintWriter {
  private buffer = Buffer.allocUnsafe(4096);
  length = 0;

  private room(bytes: number) {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  write(value: bigint | number): void {
    this.room(10);
    if (typeof value === 'bigint' && value > maxSafe) {
      let rest = value;
      while (rest >= 0x80n) {
        this.buffer[this.length++] = Number(rest & 0x7fn) | 0x80;
        rest >>= 7n;
      }
      this.buffer[this.length++] = Number(rest);
      return;
    }
    let rest = Number(value);
    while (rest >= 0x80) {
      this.buffer[this.length++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.buffer[this.length++] = rest;
  }

  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

const zigzag = (value: bigint): bigint => (value >= 0n ? value * 2n : -value * 2n - 1n);
const unzigzag = (value: bigint): bigint => (value % 2n === 0n ? value / 2n : -(value + 1n) / 2n);

export class MalformedLeavesError extends Error {
  override readonly name = 'MalformedLeavesError';
}

class VarintReader {
  private at = 0;
  constructor(private readonly buffer: Buffer) {}

  get done(): boolean {
    return this.at === this.buffer.length;
  }

  read(): bigint {
    let small = 0;
    let scale = 1;
    for (let bytes = 0; bytes < 10; bytes += 1) {
      const byte = this.buffer[this.at++];
      if (byte === undefined) throw new MalformedLeavesError('the places end in the middle of a number');
      small += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        if (small <= Number.MAX_SAFE_INTEGER) return BigInt(small);
        return this.readLarge(bytes + 1);
      }
      scale *= 0x80;
    }
    throw new MalformedLeavesError('a number in the places is longer than 64 bits');
  }

  /** Re-reads the last `bytes` bytes exactly, as a bigint. */
  private readLarge(bytes: number): bigint {
    let value = 0n;
    for (let index = this.at - 1; index >= this.at - bytes; index -= 1)
      value = (value << 7n) | BigInt(this.buffer[index]! & 0x7f);
    return value;
  }
}

/** The table of a version 1 leaf list; undefined when a leaf's position or hash is unreadable. */
export const tableOfLeafTuples = (
  leaves: readonly (readonly [string, string, string, string])[],
): LeafTable | undefined => {
  const events: HashedEvent[] = [];
  for (const [position, streamName, revision, hash] of leaves) {
    const [commit, prepare] = position.split('/');
    if (commit === undefined || prepare === undefined || !/^[0-9a-f]{64}$/.test(hash)) return undefined;
    events.push({
      position: { commit: BigInt(commit), prepare: BigInt(prepare) },
      streamName,
      revision: BigInt(revision),
      hash,
      created: new Date(0),
    });
  }
  return columnsOfHashedEvents(events);
};

export const encodeLeaves = (table: LeafTable): EncodedLeaves => {
  const places = new VarintWriter();
  let previousCommit = 0n;
  for (let index = 0; index < table.count; index += 1) {
    const commit = table.commits[index]!;
    const delta = commit - previousCommit;
    if (delta < 0n) throw new RangeError('the leaves are not in the global order');
    places.write(delta);
    places.write(zigzag(table.prepares[index]! - commit));
    places.write(table.streamIndexes[index]!);
    places.write(table.revisions[index]!);
    previousCommit = commit;
  }
  return {
    streams: [...table.streams],
    hashes: table.hashes.toString('base64'),
    places: places.bytes().toString('base64'),
  };
};

/** Reads the stored form back; throws `MalformedLeavesError` on anything inconsistent. */
export const decodeLeaves = (encoded: EncodedLeaves): LeafTable => {
  const hashes = Buffer.from(encoded.hashes, 'base64');
  if (hashes.length % eventHashBytes !== 0 || hashes.toString('base64') !== encoded.hashes)
    throw new MalformedLeavesError('the hashes are not base64 of whole 32-byte hashes');
  const count = hashes.length / eventHashBytes;
  const places = Buffer.from(encoded.places, 'base64');
  if (places.toString('base64') !== encoded.places)
    throw new MalformedLeavesError('the places are not base64');
  const reader = new VarintReader(places);
  const streamIndexes = new Uint32Array(count);
  const commits = new BigUint64Array(count);
  const prepares = new BigUint64Array(count);
  const revisions = new BigUint64Array(count);
  let commit = 0n;
  for (let index = 0; index < count; index += 1) {
    commit += reader.read();
    const prepare = commit + unzigzag(reader.read());
    if (!isUint64(commit) || !isUint64(prepare))
      throw new MalformedLeavesError(`leaf ${index} has a position outside 64 bits`);
    commits[index] = commit;
    prepares[index] = prepare;
    const stream = reader.read();
    if (stream >= BigInt(encoded.streams.length))
      throw new MalformedLeavesError(`leaf ${index} names stream ${stream}, past the stream list`);
    streamIndexes[index] = Number(stream);
    const revision = reader.read();
    if (!isUint64(revision)) throw new MalformedLeavesError(`leaf ${index} has a revision past 64 bits`);
    revisions[index] = revision;
  }
  if (!reader.done) throw new MalformedLeavesError('the places hold more leaves than the hashes');
  return { count, hashes, streams: encoded.streams, streamIndexes, commits, prepares, revisions };
};

export const positionAt = (table: LeafTable, index: number): GlobalPosition => ({
  commit: table.commits[index]!,
  prepare: table.prepares[index]!,
});

/** The leaf list as [position, stream, revision, hash-hex] tuples (what findings name). */
export const leafTuples = (table: LeafTable): [string, string, string, string][] => {
  const tuples: [string, string, string, string][] = [];
  for (let index = 0; index < table.count; index += 1) {
    tuples.push([
      formatPosition(positionAt(table, index)),
      table.streams[table.streamIndexes[index]!]!,
      table.revisions[index]!.toString(),
      table.hashes.toString('hex', index * eventHashBytes, (index + 1) * eventHashBytes),
    ]);
  }
  return tuples;
};

/**
 * Whether `events` are exactly the table's leaves: same count and, at each place, the same
 * position, stream, revision and hash (their bytes laid end to end, compared with the table's at once).
 */
export const sameAsTable = (table: LeafTable, events: readonly HashedEvent[]): boolean => {
  if (events.length !== table.count) return false;
  const scratch = Buffer.allocUnsafe(table.count * eventHashBytes);
  for (let index = 0; index < table.count; index += 1) {
    const event = events[index]!;
    if (
      event.position.commit !== table.commits[index] ||
      event.position.prepare !== table.prepares[index] ||
      event.revision !== table.revisions[index] ||
      event.streamName !== table.streams[table.streamIndexes[index]!] ||
      scratch.write(event.hash, index * eventHashBytes, eventHashBytes, 'hex') !== eventHashBytes
    ) {
      return false;
    }
  }
  return scratch.equals(table.hashes);
};

/**
 * Compares a range of stored events, given to `visit` one by one in order as the store reads them,
 * with what the table sealed there. Each event is hashed here from its stored bytes; `matches` says
 * whether the range held exactly the sealed events: as many, each at its position, in its stream at
 * its revision, with its hash. Once one differs, the rest are only counted (the caller then reads the
 * range event by event to name each difference).
 */
export class StoredRangeCheck {
  private seen = 0;
  private differs = false;
  private readonly streamBytes: readonly Buffer[];
  /** The table's hashes as one string of one-byte characters, to compare each event's hash with. */
  private readonly hashText: string;

  constructor(private readonly table: LeafTable) {
    this.streamBytes = table.streams.map((stream) => Buffer.from(stream, 'utf8'));
    this.hashText = table.hashes.toString('latin1');
  }

  readonly visit = (event: StoredEventBytes): void => {
    const index = this.seen;
    this.seen += 1;
    if (this.differs) return;
    const { table } = this;
    if (index >= table.count) {
      this.differs = true;
      return;
    }
    const { bytes } = event;
    const stream = this.streamBytes[table.streamIndexes[index]!]!;
    this.differs =
      bytes.readBigUInt64BE(event.commit) !== table.commits[index] ||
      bytes.readBigUInt64BE(event.prepare) !== table.prepares[index] ||
      bytes.readBigUInt64BE(event.revision) !== table.revisions[index] ||
      bytes.compare(stream, 0, stream.length, event.streamNameStart, event.streamNameEnd) !== 0 ||
      !this.hashText.startsWith(storedEventHashText(event), index * eventHashBytes);
  };

  get matches(): boolean {
    return !this.differs && this.seen === this.table.count;
  }
}
