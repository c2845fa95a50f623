/**
 * The PostgreSQL adapter's pure rules: EventStoreDB's append decision (expected revision and
 * idempotency), and the translation of (commit, prepare) positions into bounds on the stored column.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { comparePositions, type GlobalPosition } from '../../src/event-store/event-store.ts';
import { decideAppend, type StreamView } from '../../src/event-store/postgres/append-decision.ts';
import {
  exclusiveLowerBound,
  firstAtOrAfter,
  lastAtOrBefore,
  maxStoredPosition,
} from '../../src/event-store/postgres/positions.ts';

/** A stream holding `ids` at revisions 0, 1, ... */
const streamOf = (...ids: string[]): StreamView => ({
  head: ids.length === 0 ? undefined : BigInt(ids.length - 1),
  idAt: (revision) => ids[Number(revision)],
  latestRevisionOf: (id) => {
    const index = ids.lastIndexOf(id);
    return index < 0 ? undefined : BigInt(index);
  },
});

describe('decideAppend', () => {
  it('writes at the head for the exact revision, no-stream on a missing stream, any and stream-exists', () => {
    expect(decideAppend(1n, ['c'], streamOf('a', 'b'))).toEqual({ kind: 'write', firstRevision: 2n });
    expect(decideAppend('no-stream', ['a'], streamOf())).toEqual({ kind: 'write', firstRevision: 0n });
    expect(decideAppend('any', ['a'], streamOf())).toEqual({ kind: 'write', firstRevision: 0n });
    expect(decideAppend('any', ['c'], streamOf('a', 'b'))).toEqual({ kind: 'write', firstRevision: 2n });
    expect(decideAppend('stream-exists', ['c'], streamOf('a'))).toEqual({ kind: 'write', firstRevision: 1n });
  });

  it('refuses an expected revision that is not the head, saying what the head is', () => {
    expect(decideAppend(5n, ['c'], streamOf('a', 'b'))).toEqual({
      kind: 'wrong-expected-version',
      actualRevision: 1n,
    });
    expect(decideAppend(0n, ['a'], streamOf())).toEqual({
      kind: 'wrong-expected-version',
      actualRevision: 'no-stream',
    });
    expect(decideAppend('stream-exists', ['a'], streamOf())).toEqual({
      kind: 'wrong-expected-version',
      actualRevision: 'no-stream',
    });
  });

  it('acknowledges a retry whose ids sit right after the expected revision', () => {
    const stream = streamOf('a', 'b', 'c', 'd');
    expect(decideAppend('no-stream', ['a', 'b'], stream)).toEqual({ kind: 'idempotent', lastRevision: 1n });
    expect(decideAppend(0n, ['b', 'c'], stream)).toEqual({ kind: 'idempotent', lastRevision: 2n });
    expect(decideAppend(2n, ['d'], stream)).toEqual({ kind: 'idempotent', lastRevision: 3n });
  });

  it('treats a first-event mismatch, a partial match, or a match running past the head as a conflict', () => {
    const stream = streamOf('a', 'b', 'c');
    const conflict = { kind: 'wrong-expected-version', actualRevision: 2n };
    expect(decideAppend('no-stream', ['x', 'b'], stream)).toEqual(conflict);
    expect(decideAppend('no-stream', ['a', 'x'], stream)).toEqual(conflict);
    expect(decideAppend(0n, ['c'], stream)).toEqual(conflict); // right id, wrong revision
    expect(decideAppend(1n, ['c', 'd'], stream)).toEqual(conflict);
  });

  it('with any, acknowledges ids already in the stream and refuses a partial match', () => {
    const stream = streamOf('a', 'b', 'c');
    expect(decideAppend('any', ['b', 'c'], stream)).toEqual({ kind: 'idempotent', lastRevision: 2n });
    expect(decideAppend('stream-exists', ['a'], stream)).toEqual({ kind: 'idempotent', lastRevision: 0n });
    expect(decideAppend('any', ['b', 'x'], stream)).toEqual({
      kind: 'wrong-expected-version',
      actualRevision: 2n,
    });
    // Only the first id decides that this is new (EventStoreDB's rule).
    expect(decideAppend('any', ['x', 'a'], stream)).toEqual({ kind: 'write', firstRevision: 3n });
  });
});

const position = fc
  .tuple(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }))
  .map(([commit, prepare]): GlobalPosition => ({ commit, prepare }));
/** Positions near each other, where the boundary cases are. */
const nearbyPosition = fc
  .tuple(fc.bigInt({ min: 0n, max: 20n }), fc.bigInt({ min: 0n, max: 20n }))
  .map(([commit, prepare]): GlobalPosition => ({ commit, prepare }));
const stored = fc.bigInt({ min: 0n, max: maxStoredPosition });
const nearbyStored = fc.bigInt({ min: 0n, max: 21n });

const asPosition = (p: bigint): GlobalPosition => ({ commit: p, prepare: p });

describe('position bounds agree with comparePositions', () => {
  for (const [label, from, p] of [
    ['anywhere', position, stored],
    ['near the boundary', nearbyPosition, nearbyStored],
  ] as const) {
    it(`reading forwards from P includes exactly the positions >= P (${label})`, () => {
      fc.assert(
        fc.property(from, p, (bound, candidate) => {
          const least = firstAtOrAfter(bound);
          const included = least !== undefined && candidate >= least;
          expect(included).toBe(comparePositions(asPosition(candidate), bound) >= 0);
        }),
      );
    });

    it(`reading backwards from P includes exactly the positions <= P (${label})`, () => {
      fc.assert(
        fc.property(from, p, (bound, candidate) => {
          const greatest = lastAtOrBefore(bound);
          const included = greatest !== undefined && candidate <= greatest;
          expect(included).toBe(comparePositions(asPosition(candidate), bound) <= 0);
        }),
      );
    });

    it(`subscribing after P delivers exactly the positions > P (${label})`, () => {
      fc.assert(
        fc.property(from, p, (after, candidate) => {
          expect(candidate > exclusiveLowerBound(after)).toBe(
            comparePositions(asPosition(candidate), after) > 0,
          );
        }),
      );
    });
  }

  it('without a bound, forwards starts at the beginning and backwards at the end', () => {
    expect(firstAtOrAfter(undefined)).toBe(0n);
    expect(lastAtOrBefore(undefined)).toBe(maxStoredPosition);
    expect(exclusiveLowerBound(undefined)).toBe(-1n);
  });
});
