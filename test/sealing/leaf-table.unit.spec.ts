import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HashedEvent } from '../../src/event-store/event-store.ts';
import {
  decodeLeaves,
  encodeLeaves,
  leafTuples,
  MalformedLeavesError,
  sameAsTable,
  tableOfLeafTuples,
} from '../../src/sealing/leaf-table.ts';
import { columnsOfHashedEvents } from '../../src/sealing/hashed-columns.ts';

const hashOf = (text: string) => createHash('sha256').update(text).digest('hex');

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

/** Events in the global order: commits never decrease; prepares anywhere in 64 bits. */
const eventsArbitrary = fc
  .array(
    fc.record({
      step: fc.oneof(fc.bigInt({ min: 0n, max: 3n }), u64),
      prepare: u64,
      stream: fc.constantFrom('call-a', 'call-b', 'calltrail-access-2026-01-01', ''),
      revision: u64,
      seed: fc.string(),
    }),
    { maxLength: 60 },
  )
  .map((parts) => {
    let commit = 0n;
    const events: HashedEvent[] = [];
    for (const part of parts) {
      commit += part.step;
      if (commit >= 2n ** 64n) break;
      events.push({
        position: { commit, prepare: part.prepare },
        streamName: part.stream,
        revision: part.revision,
        hash: hashOf(part.seed),
        created: new Date(0),
      });
    }
    return events;
  });

describe('the leaf table (digest version 2)', () => {
  it('reads back exactly what was written, 64-bit positions and revisions included', () => {
    fc.assert(
      fc.property(eventsArbitrary, (events) => {
        const table = columnsOfHashedEvents(events);
        const encoded = JSON.parse(JSON.stringify(encodeLeaves(table))) as ReturnType<typeof encodeLeaves>;
        const decoded = decodeLeaves(encoded);
        expect(leafTuples(decoded)).toEqual(
          events.map((event) => [
            `${event.position.commit}/${event.position.prepare}`,
            event.streamName,
            event.revision.toString(),
            event.hash,
          ]),
        );
        expect(sameAsTable(decoded, events)).toBe(true);
        expect(leafTuples(tableOfLeafTuples(leafTuples(decoded))!)).toEqual(leafTuples(decoded));
      }),
    );
  });

  it('takes less than half the JSON of a tuple per leaf', () => {
    const events: HashedEvent[] = Array.from({ length: 1_000 }, (_, index) => ({
      position: { commit: 5_000_000n + BigInt(index), prepare: 5_000_000n + BigInt(index) },
      streamName: `call-${index % 250}-0a6c1d3e-5b7f-4c2a-9e8d-1f2a3b4c5d6e`,
      revision: BigInt(index % 8),
      hash: hashOf(String(index)),
      created: new Date(0),
    }));
    const table = columnsOfHashedEvents(events);
    const compact = JSON.stringify(encodeLeaves(table)).length;
    const tuples = JSON.stringify(leafTuples(table)).length;
    expect(compact).toBeLessThan(tuples / 2);
  });

  it('tells every difference from the events it was made of', () => {
    const events: HashedEvent[] = [0, 1, 2].map((index) => ({
      position: { commit: BigInt(10 + index), prepare: BigInt(10 + index) },
      streamName: 'call-a',
      revision: BigInt(index),
      hash: hashOf(String(index)),
      created: new Date(0),
    }));
    const table = columnsOfHashedEvents(events);
    const changed = (index: number, change: Partial<HashedEvent>) =>
      events.map((event, at) => (at === index ? { ...event, ...change } : event));
    expect(sameAsTable(table, events)).toBe(true);
    expect(sameAsTable(table, events.slice(1))).toBe(false);
    expect(sameAsTable(table, changed(1, { hash: hashOf('other') }))).toBe(false);
    expect(sameAsTable(table, changed(2, { hash: 'zz'.repeat(32) }))).toBe(false);
    expect(sameAsTable(table, changed(0, { streamName: 'call-b' }))).toBe(false);
    expect(sameAsTable(table, changed(0, { revision: 7n }))).toBe(false);
    expect(sameAsTable(table, changed(2, { position: { commit: 12n, prepare: 11n } }))).toBe(false);
    expect(sameAsTable(table, [events[1]!, events[0]!, events[2]!])).toBe(false);
  });

  it('refuses a table that does not hold together', () => {
    const encoded = encodeLeaves(
      columnsOfHashedEvents([
        {
          position: { commit: 1n, prepare: 1n },
          streamName: 'call-a',
          revision: 0n,
          hash: hashOf('a'),
          created: new Date(0),
        },
      ]),
    );
    expect(() => decodeLeaves(encoded)).not.toThrow();
    for (const broken of [
      { ...encoded, hashes: encoded.hashes.slice(0, -4) },
      { ...encoded, hashes: `${encoded.hashes}AAAA` },
      { ...encoded, places: '' },
      { ...encoded, places: Buffer.from([1, 0, 0, 0, 0]).toString('base64') },
      { ...encoded, places: Buffer.from([1, 0, 1, 0]).toString('base64') },
      { ...encoded, places: Buffer.from([1, 0, 0, 0x80]).toString('base64') },
      { ...encoded, hashes: `!${encoded.hashes.slice(1)}` },
      { ...encoded, places: `${encoded.places}!` },
      { ...encoded, places: ` ${encoded.places}` },
      // A prepare before position 0 (commit 1, prepare - commit = -2), and a revision of 2^64.
      { ...encoded, places: Buffer.from([1, 3, 0, 0]).toString('base64') },
      {
        ...encoded,
        places: Buffer.from([1, 0, 0, ...new Array<number>(9).fill(0x80), 0x02]).toString('base64'),
      },
    ]) {
      expect(() => decodeLeaves(broken)).toThrow(MalformedLeavesError);
    }
  });
});
