import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HashedEvent } from '../../src/event-store/event-store.ts';
import { columnsOfHashedEvents, PendingHashes } from '../../src/sealing/hashed-columns.ts';
import { hashedEventsOf } from '../support/hashed-events.ts';

const hashOf = (text: string) => createHash('sha256').update(text).digest('hex');

const eventsOf = (streams: readonly string[]): HashedEvent[] =>
  streams.map((streamName, index) => ({
    position: { commit: BigInt(index) * 3n, prepare: BigInt(index) * 3n + 1n },
    streamName,
    revision: BigInt(index % 7),
    hash: hashOf(`${streamName}/${index}`),
    created: new Date(1_764_000_000_000 + index * 1_001),
  }));

/** Splits `events` at the given places (clamped and sorted) into consecutive pages. */
const pagesOf = (events: readonly HashedEvent[], cuts: readonly number[]) => {
  const places = [...new Set(cuts.map((cut) => Math.min(cut, events.length)))].sort((a, b) => a - b);
  const pages: HashedEvent[][] = [];
  let from = 0;
  for (const place of [...places, events.length]) {
    pages.push(events.slice(from, place));
    from = place;
  }
  return pages;
};

describe('hashed events in columns', () => {
  it('read back as the events they were built from', () => {
    const events = eventsOf(['call-a', 'call-b', 'call-a', '', 'call-ë']);
    const columns = columnsOfHashedEvents(events);
    expect(columns.streams).toEqual(['call-a', 'call-b', '', 'call-ë']);
    expect([...columns.streamIndexes]).toEqual([0, 1, 0, 2, 3]);
    expect(hashedEventsOf(columns)).toEqual(events);
  });

  it('taken in runs across pages: each run as if built from its own events, each stream named once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('call-a', 'call-b', 'call-c', 'calltrail-access-2026-01-01'), {
          maxLength: 40,
        }),
        fc.array(fc.nat(40), { maxLength: 6 }),
        fc.array(fc.nat(15), { maxLength: 10 }),
        (streams, cuts, runLengths) => {
          const events = eventsOf(streams);
          const pending = new PendingHashes();
          for (const page of pagesOf(events, cuts)) pending.push(columnsOfHashedEvents(page));
          expect(pending.count).toBe(events.length);
          let from = 0;
          for (const length of [...runLengths, events.length]) {
            const count = Math.min(length, events.length - from);
            const run = pending.take(count);
            // Exactly the columns of those events built at once: same stream list, same numbers.
            expect(run).toEqual(columnsOfHashedEvents(events.slice(from, from + count)));
            from += count;
            expect(pending.count).toBe(events.length - from);
          }
        },
      ),
    );
  });

  it('refuses to take more than waits', () => {
    const pending = new PendingHashes();
    pending.push(columnsOfHashedEvents(eventsOf(['call-a', 'call-b'])));
    expect(() => pending.take(3)).toThrow(RangeError);
    expect(() => pending.take(-1)).toThrow(RangeError);
    expect(pending.take(2).count).toBe(2);
    expect(pending.count).toBe(0);
  });
});
