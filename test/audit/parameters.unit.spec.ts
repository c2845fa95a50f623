/**
 * Cursors and ranges: a cursor round-trips, and any change to it (garbled, truncated, edited,
 * foreign) is refused with a 400 naming the field rather than silently moving the page.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CallsPageKey } from '../../src/audit/call-queries.ts';
import {
  decodeCursor,
  encodeCursor,
  parsePositionParameter,
  parseTimeRange,
} from '../../src/audit/parameters.ts';
import { InvalidArgumentError } from '../../src/errors.ts';

const refusal = (run: () => unknown): InvalidArgumentError => {
  try {
    run();
  } catch (error) {
    if (error instanceof InvalidArgumentError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
};

describe('page cursors', () => {
  it('round-trip any key', () => {
    fc.assert(
      fc.property(
        fc.option(fc.date({ noInvalidDate: true }).map((d) => d.toISOString())),
        fc.string(),
        (at, id) => {
          const key: CallsPageKey = [at, id];
          expect(decodeCursor(encodeCursor(key), CallsPageKey)).toEqual(key);
        },
      ),
    );
  });

  it('refuse a cursor with any character changed', () => {
    const cursor = encodeCursor(['2026-03-01T10:00:00.000Z', 'call-1']);
    fc.assert(
      fc.property(
        fc.nat({ max: cursor.length - 1 }),
        fc.constantFrom(...'AZaz09-_'),
        (index, replacement) => {
          fc.pre(cursor[index] !== replacement);
          const edited = `${cursor.slice(0, index)}${replacement}${cursor.slice(index + 1)}`;
          const problem = refusal(() => decodeCursor(edited, CallsPageKey));
          expect(problem.problems).toEqual([
            { field: 'querystring/cursor', message: 'is not a cursor this API issued' },
          ]);
        },
      ),
    );
  });

  it('refuses truncated, foreign and non-base64url cursors', () => {
    const cursor = encodeCursor([null, 'call-1']);
    for (const bad of [cursor.slice(0, -3), 'bm90IGEgY3Vyc29yIGF0IGFsbA', `${cursor}!`, '', 'a b']) {
      expect(refusal(() => decodeCursor(bad, CallsPageKey)).problems[0]?.field).toBe('querystring/cursor');
    }
    // Well-formed and checksummed, but not the key shape this listing uses.
    expect(refusal(() => decodeCursor(encodeCursor({ offset: 100 }), CallsPageKey)).problems[0]?.field).toBe(
      'querystring/cursor',
    );
  });
});

describe('time ranges', () => {
  it('accept a half-open range and refuse an empty or inverted one, naming from', () => {
    expect(parseTimeRange({ from: '2026-03-01T00:00:00Z', to: '2026-03-02T00:00:00+01:00' })).toEqual({
      from: new Date('2026-03-01T00:00:00Z'),
      to: new Date('2026-03-01T23:00:00Z'),
    });
    for (const range of [
      { from: '2026-03-02T00:00:00Z', to: '2026-03-01T00:00:00Z' },
      { from: '2026-03-01T00:00:00Z', to: '2026-03-01T00:00:00Z' },
    ]) {
      expect(refusal(() => parseTimeRange(range)).problems[0]?.field).toBe('querystring/from');
    }
  });

  it('refuse times without a zone and impossible dates, naming the field', () => {
    for (const to of [
      '2026-03-01T00:00:00',
      '2026-02-30T00:00:00Z',
      '2026-03-01 00:00:00Z',
      '1772323200000',
    ]) {
      expect(refusal(() => parseTimeRange({ to }, '--')).message).toMatch(
        /^--to: must be an ISO 8601 date-time with a time zone/,
      );
    }
  });
});

describe('positions', () => {
  it('accept unsigned 64-bit pairs and refuse anything else', () => {
    expect(parsePositionParameter('18446744073709551615/0', 'after')).toEqual({
      commit: 18446744073709551615n,
      prepare: 0n,
    });
    for (const bad of ['18446744073709551616/0', '-1/0', '1', '1/2/3', 'a/b']) {
      expect(refusal(() => parsePositionParameter(bad, 'querystring/after')).problems[0]?.field).toBe(
        'querystring/after',
      );
    }
  });
});
