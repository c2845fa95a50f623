/**
 * The binary COPY reader behind `readStoredEvents`: whatever sizes the chunks arrive in (a row split
 * anywhere, header and trailer included), every row is read whole and exactly once, and a stream of
 * another shape is refused rather than misread.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { StoredEventBytes } from '../../src/event-store/event-store.ts';
import { CopyRows } from '../../src/event-store/postgres/stored-events.ts';

interface Row {
  readonly position: bigint;
  readonly streamName: string;
  readonly revision: bigint;
  readonly id: Buffer;
  readonly type: string;
  readonly data: string;
  readonly metadata: string;
}

const int16 = (value: number) => {
  const bytes = Buffer.alloc(2);
  bytes.writeInt16BE(value);
  return bytes;
};
const int32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeInt32BE(value);
  return bytes;
};
const int64 = (value: bigint) => {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(value);
  return bytes;
};
const field = (bytes: Buffer) => Buffer.concat([int32(bytes.length), bytes]);

/** What PostgreSQL sends for `COPY (...) TO STDOUT (FORMAT binary)` over these rows. */
const copyStream = (rows: readonly Row[], extension = Buffer.alloc(0)) =>
  Buffer.concat([
    Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'),
    int32(0),
    int32(extension.length),
    extension,
    ...rows.map((row) =>
      Buffer.concat([
        int16(7),
        field(int64(row.position)),
        field(Buffer.from(row.streamName)),
        field(int64(row.revision)),
        field(row.id),
        field(Buffer.from(row.type)),
        field(Buffer.from(row.data)),
        field(Buffer.from(row.metadata)),
      ]),
    ),
    int16(-1),
  ]);

const readBack = (event: StoredEventBytes): Row => {
  const { bytes } = event;
  expect(bytes.readBigUInt64BE(event.prepare)).toBe(bytes.readBigUInt64BE(event.commit));
  return {
    position: bytes.readBigUInt64BE(event.commit),
    streamName: bytes.toString('utf8', event.streamNameStart, event.streamNameEnd),
    revision: bytes.readBigUInt64BE(event.revision),
    id: Buffer.from(bytes.subarray(event.id, event.id + 16)),
    type: bytes.toString('utf8', event.typeStart, event.typeEnd),
    data: bytes.toString('utf8', event.dataStart, event.dataEnd),
    metadata: bytes.toString('utf8', event.metadataStart, event.metadataEnd),
  };
};

/** Feeds `stream` cut at `cuts` (offsets, any order) and returns the rows read and the count. */
const readInChunks = (stream: Buffer, cuts: readonly number[]) => {
  const rows: Row[] = [];
  const reader = new CopyRows((event) => rows.push(readBack(event)));
  const offsets = [...new Set([0, ...cuts.map((cut) => cut % (stream.length + 1)), stream.length])].sort(
    (a, b) => a - b,
  );
  for (let index = 0; index + 1 < offsets.length; index += 1)
    reader.push(stream.subarray(offsets[index], offsets[index + 1]));
  return { rows, count: reader.finish() };
};

const rowArbitrary: fc.Arbitrary<Row> = fc.record({
  position: fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }),
  streamName: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  revision: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
  id: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
  type: fc.string({ minLength: 1, maxLength: 12 }),
  data: fc.string({ unit: 'grapheme', maxLength: 300 }),
  metadata: fc.string({ maxLength: 40 }),
});

describe('reading a binary COPY stream', () => {
  it('reads every row whole and once, however the stream is cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(rowArbitrary, { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.uint8Array({ maxLength: 6 }),
        (rows, cuts, extension) => {
          const read = readInChunks(copyStream(rows, Buffer.from(extension)), cuts);
          expect(read.rows).toEqual(rows);
          expect(read.count).toBe(rows.length);
        },
      ),
    );
  });

  it('reads a stream arriving one byte at a time', () => {
    const rows = fc.sample(rowArbitrary, { numRuns: 5, seed: 7 });
    const stream = copyStream(rows);
    const read = readInChunks(
      stream,
      Array.from({ length: stream.length }, (_, index) => index),
    );
    expect(read.rows).toEqual(rows);
  });

  it('refuses a stream that is not binary COPY, rows of another shape, and a missing trailer', () => {
    const [row] = fc.sample(rowArbitrary, { numRuns: 1, seed: 3 });
    const stream = copyStream([row!]);
    expect(() => new CopyRows(() => {}).push(Buffer.from('id\tname\n1\tx\n\\.\nmore bytes'))).toThrow(
      /binary signature/,
    );
    const otherShape = Buffer.from(stream);
    otherShape.writeInt16BE(6, 19);
    expect(() => readInChunks(otherShape, [])).toThrow(/6 fields, not 7/);
    const nullField = Buffer.from(stream);
    // The header, the field count, the position (length and value), the stream name's length and bytes.
    nullField.writeInt32BE(-1, 19 + 2 + 12 + 4 + Buffer.byteLength(row!.streamName));
    expect(() => readInChunks(nullField, [])).toThrow(/column revision has -1 bytes/);
    expect(() => readInChunks(stream.subarray(0, stream.length - 2), [])).toThrow(/before its trailer/);
    expect(() => readInChunks(Buffer.concat([stream, Buffer.from([0])]), [stream.length])).toThrow(
      /after the end/,
    );
  });
});
