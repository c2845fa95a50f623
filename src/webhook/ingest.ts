/**
 * The idempotent append: store an event in its stream exactly once, however often it is delivered,
 * across restarts and with several calltrail processes ingesting the same call at once.
 *
 * The rule is read, then append with the exact expected revision: if the stream already holds the
 * event's id, it is a duplicate and nothing is written; otherwise append expecting the last revision
 * read (or no stream). A wrong expected version means another writer got there first: read what it
 * wrote (it may be this very event) and try again, a bounded number of times, with a little jitter.
 * Never `any`: the store only guarantees idempotency with an exact expectation.
 *
 * Accelerators keep the hot path to at most one read and one append per event (one append alone for
 * a stream this process already knows, or on a store that reports whether an append wrote
 * anything), and none is needed for correctness:
 * - appends to one stream from this process are queued, so they do not race one another and
 *   collide only with other processes;
 * - the ids and last revision of a stream are remembered (bounded, least recently used), so a known
 *   stream is appended to directly, and read only from where the last read ended when another
 *   writer got in first. This matters most for the per-day streams (assistant requests,
 *   quarantine), which grow all day.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  EventStoreUnavailableError,
  type EventStore,
  type ExpectedRevision,
  type ProposedEvent,
} from '../event-store/event-store.ts';

export interface ArchiveAppendResult {
  /** True when the stream already held the event: nothing was written. */
  readonly duplicate: boolean;
}

/** The whole append (queueing, reads, retries) did not finish within its time bound. */
export class AppendTimeoutError extends Error {
  override readonly name = 'AppendTimeoutError';
}

/** Other writers kept winning the race for the stream; the event was not written. */
export class AppendContentionError extends Error {
  override readonly name = 'AppendContentionError';
}

/** The failures after which the caller may answer "try again later": the event is not stored. */
export const isRetryableAppendFailure = (error: unknown): boolean =>
  error instanceof AppendTimeoutError ||
  error instanceof AppendContentionError ||
  error instanceof EventStoreUnavailableError;

export interface AppendOptions {
  /** A tighter bound than the writer's own for this append (a relayed request's archive budget). */
  readonly timeoutMs?: number;
}

export interface ArchiveBatchAppendResult {
  /** How many of the events the stream already held: those were not written again. */
  readonly duplicates: number;
}

export interface ArchiveWriter {
  append(streamName: string, event: ProposedEvent, options?: AppendOptions): Promise<ArchiveAppendResult>;
  /**
   * Stores consecutive events of one stream with one append, in their order, each exactly once: the
   * events the stream already holds (an earlier append whose acknowledgement was lost, say) are left
   * out, the rest appended atomically. The caller bounds the batch to what one append may carry.
   */
  appendAll(streamName: string, events: readonly ProposedEvent[]): Promise<ArchiveBatchAppendResult>;
}

export interface ArchiveWriterOptions {
  /** Bound on one whole append, queueing and retries included. */
  readonly timeoutMs: number;
  readonly maxAttempts?: number;
  /** How many event ids to remember across all streams. */
  readonly rememberedIds?: number;
  /** Jitter source, in [0, 1). */
  readonly random?: () => number;
}

interface StreamTail {
  lastRevision: bigint;
  readonly ids: Set<string>;
}

/** What is known of streams' contents; for any stream, the ids of revisions 0..lastRevision. */
class StreamTails {
  private readonly tails = new Map<string, StreamTail>();
  private rememberedIds = 0;

  constructor(private readonly capacity: number) {}

  get(streamName: string): StreamTail | undefined {
    const tail = this.tails.get(streamName);
    if (tail !== undefined) {
      this.tails.delete(streamName);
      this.tails.set(streamName, tail);
    }
    return tail;
  }

  /**
   * Records events read after what was known and returns the stream's tail. A tail evicted meanwhile
   * is still updated and returned, just no longer remembered.
   */
  extend(
    streamName: string,
    known: StreamTail | undefined,
    read: readonly { id: string; revision: bigint }[],
  ): StreamTail | undefined {
    if (read.length === 0) return known;
    const tail = known ?? { lastRevision: -1n, ids: new Set<string>() };
    const remembered = known !== undefined && this.tails.get(streamName) === known;
    for (const event of read) {
      if (!tail.ids.has(event.id)) {
        tail.ids.add(event.id);
        if (remembered) this.rememberedIds += 1;
      }
      tail.lastRevision = event.revision;
    }
    if (known === undefined) {
      this.forget(streamName);
      this.tails.set(streamName, tail);
      this.rememberedIds += tail.ids.size;
    }
    this.evict();
    return tail;
  }

  forget(streamName: string): void {
    const tail = this.tails.get(streamName);
    if (tail === undefined) return;
    this.rememberedIds -= tail.ids.size;
    this.tails.delete(streamName);
  }

  private evict(): void {
    for (const [streamName] of this.tails) {
      if (this.rememberedIds <= this.capacity) return;
      this.forget(streamName);
    }
  }
}

/** Runs work for one key at a time, in arrival order; a waiter that times out leaves the queue. */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    let release = () => {};
    const current = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous === undefined ? current : previous.then(() => current);
    this.tails.set(key, tail);
    try {
      // Nobody ahead, as for most appends: the work starts at once, with no wait to bound.
      if (previous !== undefined) await abortable(previous, signal);
      return await abortable(work(), signal);
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

/** Settles with the promise, or rejects with the signal's reason as soon as it aborts. */
const abortable = <T>(promise: Promise<T>, signal: AbortSignal): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) {
      promise.catch(() => {});
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });

export const createArchiveWriter = (eventStore: EventStore, options: ArchiveWriterOptions): ArchiveWriter => {
  const maxAttempts = options.maxAttempts ?? 10;
  const random = options.random ?? Math.random;
  const tails = new StreamTails(options.rememberedIds ?? 50_000);
  const queue = new KeyedQueue();

  /** Reads what this process does not know of the stream yet; returns its last revision. */
  const catchUp = async (streamName: string, signal: AbortSignal): Promise<StreamTail | undefined> => {
    const known = tails.get(streamName);
    const read: { id: string; revision: bigint }[] = [];
    const fromRevision = known === undefined ? 0n : known.lastRevision + 1n;
    for await (const event of eventStore.readStream(streamName, { fromRevision })) {
      read.push({ id: event.id, revision: event.revision });
    }
    // A read finished after the deadline may interleave with the next caller's: drop it.
    signal.throwIfAborted();
    return tails.extend(streamName, known, read);
  };

  const appendOnce = async (
    streamName: string,
    event: ProposedEvent,
    signal: AbortSignal,
  ): Promise<ArchiveAppendResult> => {
    // A remembered tail is trusted until the store says otherwise: appending with its exact last
    // revision either succeeds (nothing was written since, so the id cannot be there) or comes back
    // as a wrong expected version, and only then is the stream read. A stream not remembered is read
    // first, so a redelivery after a restart is recognised as a duplicate; unless the store says
    // whether an append wrote anything: then expecting no stream either creates it, or acknowledges
    // this very event as the stream's first (a duplicate), or is refused and the stream is read.
    let tail = tails.get(streamName);
    let mustRead = tail === undefined && !eventStore.reportsWrites;
    for (let attempt = 1; ; attempt += 1) {
      if (mustRead) tail = await catchUp(streamName, signal);
      if (tail?.ids.has(event.id)) return { duplicate: true };
      const expected: ExpectedRevision = tail === undefined ? 'no-stream' : tail.lastRevision;
      signal.throwIfAborted();
      const result = await eventStore.append(streamName, [event], expected);
      signal.throwIfAborted();
      if (result.outcome === 'appended') {
        // This event sits at expected + 1, written now or by a racer (or an earlier delivery) before.
        // Only an acknowledged first event of an unread stream says nothing of what follows it.
        const duplicate = result.written === false;
        if (!(duplicate && tail === undefined)) {
          tails.extend(streamName, tail, [{ id: event.id, revision: result.nextRevision }]);
        }
        return { duplicate };
      }
      if (attempt >= maxAttempts) {
        throw new AppendContentionError(`${streamName}: still contended after ${maxAttempts} attempts`);
      }
      mustRead = true;
      if (attempt > 1) {
        // An aborted wait rejects with its own error; the deadline's reason is the one to report.
        await sleep(1 + random() * 4 * attempt, undefined, { signal }).catch(() => signal.throwIfAborted());
      }
    }
  };

  /** The same rule as `appendOnce`, for several events: those already in the stream are left out. */
  const appendAllOnce = async (
    streamName: string,
    events: readonly ProposedEvent[],
    signal: AbortSignal,
  ): Promise<ArchiveBatchAppendResult> => {
    let tail = tails.get(streamName);
    let mustRead = tail === undefined && !eventStore.reportsWrites;
    for (let attempt = 1; ; attempt += 1) {
      if (mustRead) tail = await catchUp(streamName, signal);
      const proposed = new Set<string>();
      const fresh = events.filter((event) => {
        if (tail?.ids.has(event.id) === true || proposed.has(event.id)) return false;
        proposed.add(event.id);
        return true;
      });
      if (fresh.length === 0) return { duplicates: events.length };
      const expected: ExpectedRevision = tail === undefined ? 'no-stream' : tail.lastRevision;
      signal.throwIfAborted();
      const result = await eventStore.append(streamName, fresh, expected);
      signal.throwIfAborted();
      if (result.outcome === 'appended') {
        // The fresh events sit at expected + 1 onwards, written now or (all of them, as the store's
        // idempotency requires) before. Acknowledged as the first events of an unread stream, they say
        // nothing of what follows them, so the stream is not remembered then.
        const written = result.written !== false;
        if (written || tail !== undefined) {
          const first = result.nextRevision - BigInt(fresh.length - 1);
          tails.extend(
            streamName,
            tail,
            fresh.map((event, index) => ({ id: event.id, revision: first + BigInt(index) })),
          );
        }
        return { duplicates: events.length - (written ? fresh.length : 0) };
      }
      if (attempt >= maxAttempts) {
        throw new AppendContentionError(`${streamName}: still contended after ${maxAttempts} attempts`);
      }
      mustRead = true;
      if (attempt > 1) {
        await sleep(1 + random() * 4 * attempt, undefined, { signal }).catch(() => signal.throwIfAborted());
      }
    }
  };

  /** Runs one append to the stream in its queue, within the time bound. */
  const bounded = async <T>(
    streamName: string,
    timeoutMs: number,
    work: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> => {
    // A timer cleared when the append ends, not `AbortSignal.timeout`: that one cannot be
    // cancelled, so every append would leave a timer behind to fire (and build an exception).
    const abort = new AbortController();
    const deadline = abort.signal;
    const timer = setTimeout(
      () => abort.abort(new DOMException(`append took over ${timeoutMs} ms`, 'TimeoutError')),
      timeoutMs,
    );
    try {
      return await queue.run(streamName, deadline, () => work(deadline));
    } catch (error) {
      // What is known of the stream stays true whatever an abandoned read or append still does (a
      // stream's events never change): an append that lands after all makes the next one expect a
      // revision that is gone, and only what follows the known part is read then. Reading a long
      // stream whole after every timeout could itself outlast the bound, again and again.
      if (deadline.aborted && error === deadline.reason) {
        throw new AppendTimeoutError(`${streamName}: append took over ${timeoutMs} ms`, {
          cause: error,
        });
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    append: (streamName, event, appendOptions) =>
      bounded(
        streamName,
        Math.min(options.timeoutMs, appendOptions?.timeoutMs ?? options.timeoutMs),
        (signal) => appendOnce(streamName, event, signal),
      ),
    appendAll: (streamName, events) =>
      bounded(streamName, options.timeoutMs, (signal) => appendAllOnce(streamName, events, signal)),
  };
};
