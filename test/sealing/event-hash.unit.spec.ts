/**
 * The event hash computed from an event's stored bytes (what verification does) is the reference
 * encoding's, for any field values: revisions past 32 bits, any id, text of any script, and events
 * larger than the hashing buffer it reuses.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { StoredEventBytes } from '../../src/event-store/event-store.ts';
import { eventHash, storedEventHashText, type HashedFields } from '../../src/sealing/event-hash.ts';

/** The event's fields laid out as a store hands them over, at an offset into a larger buffer. */
const storedBytesOf = (event: HashedFields, position: bigint): StoredEventBytes => {
  const parts: Buffer[] = [Buffer.from('some bytes before')];
  let at = parts[0]!.length;
  const put = (bytes: Buffer) => {
    const start = at;
    parts.push(bytes);
    at += bytes.length;
    return [start, at] as const;
  };
  const integer = (value: bigint) => {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64BE(value);
    return bytes;
  };
  const [commit] = put(integer(position));
  const [streamNameStart, streamNameEnd] = put(Buffer.from(event.streamName));
  const [revision] = put(integer(event.revision));
  const [id] = put(Buffer.from(event.id.replaceAll('-', ''), 'hex'));
  const [typeStart, typeEnd] = put(Buffer.from(event.type));
  const [dataStart, dataEnd] = put(Buffer.from(event.storedData));
  const [metadataStart, metadataEnd] = put(Buffer.from(event.storedMetadata));
  put(Buffer.from('and after'));
  return {
    bytes: Buffer.concat(parts),
    commit,
    prepare: commit,
    revision,
    id,
    streamNameStart,
    streamNameEnd,
    typeStart,
    typeEnd,
    dataStart,
    dataEnd,
    metadataStart,
    metadataEnd,
  };
};

const eventArbitrary: fc.Arbitrary<HashedFields> = fc.record({
  streamName: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
  revision: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
  id: fc.uuid(),
  type: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  storedData: fc.string({ unit: 'grapheme', maxLength: 400 }),
  storedMetadata: fc.string({ maxLength: 60 }),
});

describe('the event hash of stored bytes', () => {
  it('is the reference encoding’s hash, for any fields', () => {
    fc.assert(
      fc.property(eventArbitrary, fc.bigInt({ min: 1n, max: 2n ** 62n }), (event, position) => {
        expect(storedEventHashText(storedBytesOf(event, position))).toBe(eventHash(event).toString('latin1'));
      }),
    );
  });

  it('is the same for events larger than its reused buffer, before and after one', () => {
    const sizes = [10, 100_000, 1_500_000, 20, 3_000_000, 50];
    for (const [index, size] of sizes.entries()) {
      const event: HashedFields = {
        streamName: `call-${index}`,
        revision: 2n ** 40n + BigInt(index),
        id: randomUUID(),
        type: 'end-of-call-report',
        storedData: JSON.stringify({ transcript: 'é'.repeat(size / 2) }),
        storedMetadata: '{}',
      };
      expect(storedEventHashText(storedBytesOf(event, 7n))).toBe(eventHash(event).toString('latin1'));
    }
  });
});
