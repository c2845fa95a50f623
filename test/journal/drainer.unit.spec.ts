/**
 * How the drain splits one stream's journaled events into appends: in order, at most so many events
 * and so many bytes each, an event larger than the byte bound alone.
 */
import { describe, expect, it } from 'vitest';
import { JsonText } from '../../src/event-store/event-store.ts';
import { appendBatches } from '../../src/journal/drainer.ts';
import type { JournalEntry } from '../../src/journal/journal.ts';

const entry = (sequence: number, bytes: number): JournalEntry => ({
  sequence,
  bytes,
  record: {
    id: `id-${sequence}`,
    stream: 'call-a',
    type: 'status-update',
    data: new JsonText('{}'),
    metadata: new JsonText('{}'),
    journaledAt: 0,
  },
});

const sequences = (batches: JournalEntry[][]) => batches.map((batch) => batch.map((e) => e.sequence));

describe('appendBatches', () => {
  it('bounds each batch by count', () => {
    const entries = Array.from({ length: 7 }, (_, index) => entry(index + 1, 10));
    expect(sequences(appendBatches(entries, 3, 1_000))).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
  });

  it('bounds each batch by bytes, and sends an event over the bound alone', () => {
    const entries = [entry(1, 400), entry(2, 500), entry(3, 200), entry(4, 1_500), entry(5, 100)];
    expect(sequences(appendBatches(entries, 100, 1_000))).toEqual([[1, 2], [3], [4], [5]]);
  });

  it('makes no batch of nothing', () => {
    expect(appendBatches([], 10, 1_000)).toEqual([]);
  });
});
