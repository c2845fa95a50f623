/**
 * The pieces of the hourly health summaries that need no database: which hours of a period they
 * answer for, and percentiles merged from duration histograms, checked against the exact
 * `percentile_cont` figure over random durations (the documented bound: 2% plus 0.1 s).
 */
import { describe, expect, it } from 'vitest';
import {
  durationBucketBase,
  durationBucketBounds,
  durationBucketGrowth,
  lastDurationBucket,
} from '../../projections/health-hourly/read-model.ts';
import {
  percentileOfHistogram,
  summarizedDaysOf,
  summarizedHoursOf,
} from '../../src/health/health-queries.ts';

const at = (iso: string) => new Date(iso);

describe('summarizedHoursOf', () => {
  it('takes the whole hours inside the period when buckets are whole hours', () => {
    expect(summarizedHoursOf(at('2026-01-05T01:40:00Z'), at('2026-01-05T17:50:00Z'), 3_600)).toEqual([
      at('2026-01-05T02:00:00Z'),
      at('2026-01-05T17:00:00Z'),
    ]);
    expect(summarizedHoursOf(at('2026-01-05T00:00:00Z'), at('2026-01-12T00:00:00Z'), 3 * 3_600)).toEqual([
      at('2026-01-05T00:00:00Z'),
      at('2026-01-12T00:00:00Z'),
    ]);
  });

  it('takes the whole days for the durations', () => {
    expect(summarizedDaysOf(at('2026-01-05T01:40:00Z'), at('2026-01-08T17:50:00Z'), 3 * 3_600)).toEqual([
      at('2026-01-06T00:00:00Z'),
      at('2026-01-08T00:00:00Z'),
    ]);
    const to = at('2026-01-06T17:50:00Z');
    expect(summarizedDaysOf(at('2026-01-05T01:40:00Z'), to, 3_600)).toEqual([to, to]);
  });

  it('takes none when buckets are shorter than an hour or no whole hour fits', () => {
    const to = at('2026-01-05T08:00:00Z');
    expect(summarizedHoursOf(at('2026-01-05T02:00:00Z'), to, 900)).toEqual([to, to]);
    const short = at('2026-01-05T02:59:00Z');
    expect(summarizedHoursOf(at('2026-01-05T02:01:00Z'), short, 3_600)).toEqual([short, short]);
  });
});

/** The bucket a duration falls in, as the SQL expression computes it. */
const bucketOf = (seconds: number): number =>
  seconds < durationBucketBase
    ? 0
    : Math.min(
        lastDurationBucket,
        Math.floor(Math.log(seconds / durationBucketBase) / Math.log(durationBucketGrowth)) + 1,
      );

/** PostgreSQL's `percentile_cont`. */
const exactPercentile = (sorted: readonly number[], fraction: number): number => {
  const position = fraction * (sorted.length - 1);
  const lower = Math.floor(position);
  return sorted[lower]! + (sorted[Math.ceil(position)]! - sorted[lower]!) * (position - lower);
};

const seeded = (seed: number) => {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
};

describe('percentileOfHistogram', () => {
  it('places each bucket where its durations are', () => {
    for (const seconds of [0, 0.05, 0.1, 1, 42.5, 600, 86_400]) {
      const [low, high] = durationBucketBounds(bucketOf(seconds));
      expect(seconds).toBeGreaterThanOrEqual(low);
      expect(seconds).toBeLessThan(high * (1 + 1e-12));
    }
  });

  it('stays within 2% plus 0.1 s of the exact percentile', () => {
    for (const [seed, count, spread] of [
      [1, 1, 600],
      [2, 2, 600],
      [3, 17, 600],
      [4, 500, 600],
      [5, 5_000, 3_600],
      [6, 300, 2],
    ] as const) {
      const random = seeded(seed);
      const durations = Array.from({ length: count }, () => random() * random() * spread).sort(
        (a, b) => a - b,
      );
      const counts = new Map<number, number>();
      for (const seconds of durations)
        counts.set(bucketOf(seconds), (counts.get(bucketOf(seconds)) ?? 0) + 1);
      const histogram = [...counts.entries()].sort(([a], [b]) => a - b);
      for (const fraction of [0, 0.5, 0.95, 0.99, 1]) {
        const exact = exactPercentile(durations, fraction);
        const merged = percentileOfHistogram(histogram, fraction);
        expect(Math.abs(merged - exact)).toBeLessThanOrEqual(0.02 * exact + 0.1);
      }
    }
  });
});
