/**
 * What an attempt's result means for its delivery, and when the next attempt is due. Pure: the
 * clock and the random source are passed in.
 *
 * - 2xx: delivered.
 * - 408, 429, 5xx, or no answer (timeout, refused, reset): retried after an exponential backoff with
 *   jitter (initial × 2^(n-1), at most the maximum, each ±20%), or after the receiver's
 *   `Retry-After` when it gives one (up to the maximum delay); dead after the last attempt.
 * - Any other answer (3xx, since redirects are not followed, and 4xx): the receiver decided, and
 *   retrying would not change it: dead at once.
 */
import type { AttemptResult } from './delivery-request.ts';

export interface RetrySchedule {
  /** Attempts per round (a manual retry starts a new round). */
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

export type AttemptVerdict =
  | { readonly outcome: 'delivered' }
  | { readonly outcome: 'retry'; readonly nextAttemptAt: Date }
  | { readonly outcome: 'failed'; readonly reason: 'rejected' | 'exhausted' };

export const isRetryable = (status: number | undefined): boolean =>
  status === undefined || status === 408 || status === 429 || status >= 500;

/** The delay before the next attempt, after `failedInRound` failed attempts of this round. */
export const backoffMs = (schedule: RetrySchedule, failedInRound: number, random: () => number): number => {
  const exponent = Math.max(0, failedInRound - 1);
  const base = Math.min(schedule.maxDelayMs, schedule.initialDelayMs * 2 ** Math.min(exponent, 40));
  return Math.min(schedule.maxDelayMs, Math.round(base * (0.8 + 0.4 * random())));
};

export const judgeAttempt = (
  result: Pick<AttemptResult, 'status' | 'retryAfterMs'>,
  attemptsInRound: number,
  schedule: RetrySchedule,
  now: Date,
  random: () => number,
): AttemptVerdict => {
  const { status } = result;
  if (status !== undefined && status >= 200 && status < 300) return { outcome: 'delivered' };
  if (!isRetryable(status)) return { outcome: 'failed', reason: 'rejected' };
  if (attemptsInRound >= schedule.maxAttempts) return { outcome: 'failed', reason: 'exhausted' };
  const delay =
    result.retryAfterMs === undefined
      ? backoffMs(schedule, attemptsInRound, random)
      : Math.min(schedule.maxDelayMs, result.retryAfterMs);
  return { outcome: 'retry', nextAttemptAt: new Date(now.getTime() + delay) };
};

/** The documented schedule without jitter: the delays before attempts 2..maxAttempts. */
export const nominalDelaysMs = (schedule: RetrySchedule): number[] =>
  Array.from({ length: schedule.maxAttempts - 1 }, (_, index) => backoffMs(schedule, index + 1, () => 0.5));
