/**
 * Redelivery: re-posting archived requests to a customer's server, as Flireo sent them — the exact
 * raw bytes with their original content type — one at a time in global order, rate-limited.
 *
 * Each event gets an outcome: `delivered` (2xx), `rejected` (another final answer: 3xx or 4xx other
 * than 408/429; the receiver decided, retrying would not change it, so redelivery goes on),
 * `skipped` (a record without a raw body), or, after retries with backoff on 408/429/5xx and
 * network errors, `failed`, which stops the redelivery. Whatever stops it (the end, a failure, an
 * interruption), the report says the position to resume after: the last event whose outcome was
 * final, so resuming there sends the failed or interrupted event again and nothing else twice.
 *
 * An interruption stops before the next request (or during a wait) but lets the request in flight
 * finish, so its outcome is known. A request that timed out may still have reached the receiver,
 * which is why receivers should deduplicate by event id.
 *
 * Flireo's signature headers are not re-sent (their timestamps would be stale); each request carries
 * `X-Calltrail-Event-Id`, `X-Calltrail-Stream` and `X-Calltrail-Position` so the receiver can tell a
 * redelivery and deduplicate.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { formatPosition, type GlobalPosition, type RecordedEvent } from '../event-store/event-store.ts';
import { decodeRawBody } from '../archive/archived-event.ts';
import { rawBodyOf } from './archived-event-view.ts';

export interface RedeliveryTarget {
  readonly url: URL;
  /** Requests started per second, at most. */
  readonly ratePerSecond: number;
  /** Attempts per event before it counts as failed. */
  readonly maxAttempts?: number;
  /** Per attempt. */
  readonly timeoutMs?: number;
  /** Delay before retry `attempt` (1-based); a `Retry-After` from the receiver takes precedence. */
  readonly retryDelayMs?: (attempt: number) => number;
}

export type DeliveryResult = 'delivered' | 'rejected' | 'skipped' | 'failed';

export interface DeliveryOutcome {
  readonly position: string;
  readonly stream: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly result: DeliveryResult;
  /** The last HTTP status received; null when none (network error, timeout, skipped). */
  readonly status: number | null;
  readonly attempts: number;
  readonly error?: string;
}

export interface RedeliveryReport {
  readonly result: 'completed' | 'failed' | 'interrupted';
  readonly delivered: number;
  readonly rejected: number;
  readonly skipped: number;
  /** Pass as `--after` to continue; undefined when nothing was final yet and no start was given. */
  readonly resumeAfter: GlobalPosition | undefined;
  /** The event that failed delivery, when one did. */
  readonly failure?: DeliveryOutcome;
  /** Why reading the archive stopped, when it did not reach the end. */
  readonly readError?: string;
}

const defaultRetryDelayMs = (attempt: number): number => Math.min(10_000, 500 * 2 ** (attempt - 1));

const maxRetryAfterMs = 60_000;

const isRetryable = (status: number): boolean => status === 408 || status === 429 || status >= 500;

/** The content type the request was received with; JSON for Flireo events, which are only accepted as JSON. */
export const contentTypeOf = (event: RecordedEvent): string => {
  for (const source of [event.metadata, event.data]) {
    if (typeof source === 'object' && source !== null) {
      const contentType = (source as Record<string, unknown>)['contentType'];
      if (typeof contentType === 'string' && contentType !== '') return contentType;
    }
  }
  return 'application/json';
};

const retryAfterMs = (response: Response): number | undefined => {
  const header = response.headers.get('retry-after');
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(maxRetryAfterMs, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.min(maxRetryAfterMs, Math.max(0, at - Date.now()));
};

class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

const pause = async (ms: number, signal: AbortSignal | undefined): Promise<void> => {
  if (ms <= 0) {
    if (signal?.aborted) throw new Interrupted();
    return;
  }
  try {
    await sleep(ms, undefined, signal ? { signal } : {});
  } catch (error) {
    if (signal?.aborted) throw new Interrupted();
    throw error;
  }
};

export const redeliver = async (
  events: AsyncIterable<RecordedEvent>,
  target: RedeliveryTarget,
  options: {
    /** Where the selection started (exclusive), reported when nothing was final yet. */
    readonly after?: GlobalPosition | undefined;
    readonly signal?: AbortSignal;
    readonly onOutcome?: (outcome: DeliveryOutcome) => void;
  } = {},
): Promise<RedeliveryReport> => {
  const { signal } = options;
  const maxAttempts = target.maxAttempts ?? 4;
  const timeoutMs = target.timeoutMs ?? 10_000;
  const retryDelayMs = target.retryDelayMs ?? defaultRetryDelayMs;
  const interval = 1000 / target.ratePerSecond;
  let nextStartAt = performance.now();
  const counts = { delivered: 0, rejected: 0, skipped: 0 };
  let resumeAfter = options.after;

  const report = (
    result: RedeliveryReport['result'],
    failure?: { outcome?: DeliveryOutcome; readError?: string },
  ): RedeliveryReport => ({
    result,
    ...counts,
    resumeAfter,
    ...(failure?.outcome ? { failure: failure.outcome } : {}),
    ...(failure?.readError ? { readError: failure.readError } : {}),
  });

  const deliver = async (event: RecordedEvent): Promise<DeliveryOutcome> => {
    const base = {
      position: formatPosition(event.position),
      stream: event.streamName,
      eventId: event.id,
      eventType: event.type,
    };
    const raw = rawBodyOf(event);
    if (!raw) return { ...base, result: 'skipped', status: null, attempts: 0, error: 'no raw body' };
    const body = decodeRawBody(raw);
    let status: number | null = null;
    let error: string | undefined;
    for (let attempt = 1; ; attempt += 1) {
      await pause(nextStartAt - performance.now(), signal);
      nextStartAt = Math.max(nextStartAt, performance.now()) + interval;
      let retryAfter: number | undefined;
      try {
        const response = await fetch(target.url, {
          method: 'POST',
          body,
          headers: {
            'content-type': contentTypeOf(event),
            'user-agent': 'calltrail-replay',
            'x-calltrail-event-id': event.id,
            'x-calltrail-stream': event.streamName,
            'x-calltrail-position': base.position,
          },
          redirect: 'manual',
          // Not the interruption signal: a request in flight is let finish, so its outcome is known
          // and resuming neither repeats nor skips it.
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.body?.cancel();
        status = response.status;
        error = undefined;
        if (status >= 200 && status < 300) return { ...base, result: 'delivered', status, attempts: attempt };
        if (!isRetryable(status)) return { ...base, result: 'rejected', status, attempts: attempt };
        retryAfter = retryAfterMs(response);
      } catch (caught) {
        status = null;
        error =
          caught instanceof Error
            ? caught.cause instanceof Error
              ? caught.cause.message
              : caught.message
            : String(caught);
      }
      if (attempt >= maxAttempts)
        return { ...base, result: 'failed', status, attempts: attempt, ...(error ? { error } : {}) };
      await pause(retryAfter ?? retryDelayMs(attempt), signal);
    }
  };

  try {
    for await (const event of events) {
      if (signal?.aborted) return report('interrupted');
      const outcome = await deliver(event);
      options.onOutcome?.(outcome);
      if (outcome.result === 'failed') return report('failed', { outcome });
      counts[outcome.result] += 1;
      resumeAfter = event.position;
    }
  } catch (error) {
    if (error instanceof Interrupted) return report('interrupted');
    // The store failed mid-way: what was delivered stands, and the report says where to resume.
    return report('failed', { readError: error instanceof Error ? error.message : String(error) });
  }
  return report('completed');
};
