/**
 * The drainer: appends journaled events to the event store as soon as it takes them again, through
 * the same idempotent append as live traffic (so an event that did reach the store before it was
 * journaled is not stored twice), then removes them from the journal.
 *
 * Each round reads the journal's head in receive order and groups it by stream; streams drain side by
 * side, each stream's consecutive events in appends of several at once (bounded in count and in bytes
 * by what one append may carry), and a stream stops at its first batch the store does not take (the
 * next round starts again from the journal's head, so nothing of that stream overtakes it). A batch
 * whose append succeeded but whose removal from the journal did not (a crash in between) is appended
 * again later: the idempotent append leaves out the events the stream already holds.
 *
 * A slow store must not stall the drain: an append that fails for want of time (or of the store)
 * halves that stream's next appends, down to one event, and each success doubles them back, so a
 * backlog that grew while the store was away never outgrows what one append can carry within its
 * budget. A round that stored anything found the store there, and the next one starts at once; only
 * rounds that stored nothing back off, exponentially up to a bound.
 */
import { maxRecordBytes } from '../archive/archived-event.ts';
import type { ProposedEvent } from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import { isRetryableAppendFailure, type ArchiveWriter } from '../webhook/ingest.ts';
import type { Journal, JournalEntry } from './journal.ts';

export interface DrainerOptions {
  readonly journal: Journal;
  readonly writer: ArchiveWriter;
  readonly logger: Logger;
  /** Records read per round. */
  readonly batchSize?: number;
  /** Streams drained side by side. */
  readonly concurrency?: number;
  /** Streams whose appends are held below `maxAppendEvents` after a failure, at most (least recent go). */
  readonly maxThrottledStreams?: number;
  /** Events of one stream stored by one append, at most. */
  readonly maxAppendEvents?: number;
  /** Stored bytes of the events one append carries, at most (a larger event goes alone). */
  readonly maxAppendBytes?: number;
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** After each batch of events stored by the drain. */
  readonly onStored?: () => void;
  /** A round found the store unavailable. */
  readonly onUnavailable?: (error: unknown) => void;
  /** A record could not be used and was set aside. */
  readonly onSetAside?: (reason: string) => void;
}

export interface Drainer {
  /** Events drained into the store since start. */
  drained(): number;
  /** Starts a round now rather than after the current back-off or wait. */
  wake(): void;
  stop(): Promise<void>;
}

export const eventOf = ({ record }: JournalEntry): ProposedEvent => ({
  id: record.id,
  type: record.type,
  data: record.data,
  metadata: record.metadata,
});

/** Runs `work` over `items` with at most `limit` at once. */
const inPool = async <T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) => {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next]!;
      next += 1;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
};

/**
 * Splits one stream's entries, in order, into batches of at most `maxEvents` and `maxBytes` (an entry
 * larger than `maxBytes` alone).
 */
export const appendBatches = (
  entries: readonly JournalEntry[],
  maxEvents: number,
  maxBytes: number,
): JournalEntry[][] => {
  const batches: JournalEntry[][] = [];
  let batch: JournalEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    if (batch.length > 0 && (batch.length >= maxEvents || bytes + entry.bytes > maxBytes)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(entry);
    bytes += entry.bytes;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
};

export const startDrainer = (options: DrainerOptions): Drainer => {
  const { journal, writer, logger } = options;
  const batchSize = options.batchSize ?? 4096;
  const concurrency = options.concurrency ?? 1024;
  const maxAppendEvents = options.maxAppendEvents ?? 500;
  // What EventStoreDB takes in one append by default, the smaller of the two stores' limits.
  const maxAppendBytes = options.maxAppendBytes ?? maxRecordBytes;
  const minBackoffMs = options.minBackoffMs ?? 100;
  const maxBackoffMs = options.maxBackoffMs ?? 5_000;
  const maxThrottledStreams = options.maxThrottledStreams ?? 10_000;
  /** Streams whose appends failed: how many events their next append carries, at most. */
  const appendLimits = new Map<string, number>();
  const appendLimitOf = (stream: string) => appendLimits.get(stream) ?? maxAppendEvents;
  const setAppendLimit = (stream: string, limit: number) => {
    appendLimits.delete(stream);
    if (limit >= maxAppendEvents) return;
    appendLimits.set(stream, limit);
    if (appendLimits.size > maxThrottledStreams) {
      const [oldest] = appendLimits.keys();
      if (oldest !== undefined) appendLimits.delete(oldest);
    }
  };
  let drained = 0;
  let stopped = false;
  let backoffMs = minBackoffMs;
  // A wake-up that comes while a round runs is kept for the next wait, never lost.
  let woken = false;
  let wakeUp: () => void = () => {
    woken = true;
  };
  let idle = false;

  /** Waits for a wake-up, or for `milliseconds` when given (a back-off, which appends do not cut). */
  const waitForWork = (milliseconds: number | undefined) =>
    new Promise<void>((resolve) => {
      if (woken && milliseconds === undefined) {
        woken = false;
        resolve();
        return;
      }
      idle = milliseconds === undefined;
      const timer = milliseconds === undefined ? undefined : setTimeout(done, milliseconds);
      function done() {
        clearTimeout(timer);
        idle = false;
        woken = false;
        wakeUp = () => {
          woken = true;
        };
        resolve();
      }
      wakeUp = done;
    });
  // While the store is away, new journal records must not cut the back-off short.
  const unsubscribe = journal.onAppend(() => {
    if (idle) wakeUp();
    else woken = true;
  });

  const setAside = async (sequence: number, reason: string) => {
    logger.error(
      { journal: journal.path, sequence, reason },
      'journal record set aside: it cannot be drained',
    );
    await journal.setAside(sequence, reason);
    options.onSetAside?.(reason);
  };

  const round = async (): Promise<'empty' | 'unavailable' | 'progress'> => {
    const head = journal.head(batchSize);
    if (head.length === 0) return 'empty';
    const byStream = new Map<string, JournalEntry[]>();
    for (const read of head) {
      if (read.kind === 'unreadable') {
        await setAside(read.sequence, read.reason);
        continue;
      }
      const entries = byStream.get(read.entry.record.stream);
      if (entries === undefined) byStream.set(read.entry.record.stream, [read.entry]);
      else entries.push(read.entry);
    }
    let unavailable: unknown;
    let journalFailed: unknown;
    const drainedBefore = drained;
    const stopsTheRound = () => stopped || unavailable !== undefined || journalFailed !== undefined;

    /** Appends one event alone; whether the stream may go on (false: the store is away). */
    const storeOne = async (entry: JournalEntry): Promise<'stored' | 'set-aside' | 'unavailable'> => {
      try {
        await writer.append(entry.record.stream, eventOf(entry));
        return 'stored';
      } catch (error) {
        if (isRetryableAppendFailure(error)) {
          unavailable = error;
          return 'unavailable';
        }
        // The store refuses this event for good: keep it aside, reported, and let the stream go on.
        await setAside(entry.sequence, `refused by the event store: ${String(error)}`);
        return 'set-aside';
      }
    };

    /**
     * Stores a batch with one append, or, when the store refuses the batch for good, one event at a
     * time. Returns the entries stored, and whether the stream may go on past the batch.
     */
    const storeBatch = async (
      stream: string,
      batch: readonly JournalEntry[],
    ): Promise<{ stored: JournalEntry[]; complete: boolean }> => {
      try {
        await writer.appendAll(stream, batch.map(eventOf));
        setAppendLimit(stream, Math.min(maxAppendEvents, 2 * appendLimitOf(stream)));
        return { stored: [...batch], complete: true };
      } catch (error) {
        if (isRetryableAppendFailure(error)) {
          unavailable = error;
          // Streams of one event each (an outage seen by every call) have nothing to make smaller.
          if (batch.length > 1) setAppendLimit(stream, Math.floor(batch.length / 2));
          return { stored: [], complete: false };
        }
      }
      const stored: JournalEntry[] = [];
      for (const entry of batch) {
        if (stopsTheRound()) return { stored, complete: false };
        const outcome = await storeOne(entry);
        if (outcome === 'unavailable') return { stored, complete: false };
        if (outcome === 'stored') stored.push(entry);
      }
      return { stored, complete: true };
    };

    await inPool([...byStream.entries()], concurrency, async ([stream, entries]) => {
      try {
        for (const batch of appendBatches(entries, appendLimitOf(stream), maxAppendBytes)) {
          if (stopsTheRound()) return;
          const { stored, complete } = await storeBatch(stream, batch);
          if (stored.length > 0) {
            await journal.remove(stored);
            drained += stored.length;
            options.onStored?.();
          }
          if (!complete) return;
        }
      } catch (error) {
        // Only the journal's own writes throw here (removals, set-asides: a full disk, say).
        journalFailed = error;
      }
    });
    if (journalFailed !== undefined) {
      // Stored but still journaled events are drained again, as duplicates, once the journal is writable.
      logger.error(
        { err: journalFailed, journal: journal.path },
        'the journal could not be written while draining',
      );
      return 'unavailable';
    }
    // Some streams stored and others not: the store is there but slow for those, whose appends are
    // smaller next round.
    if (drained > drainedBefore) return 'progress';
    if (unavailable !== undefined) {
      options.onUnavailable?.(unavailable);
      return 'unavailable';
    }
    return 'progress';
  };

  const loop = async () => {
    while (!stopped) {
      let outcome: Awaited<ReturnType<typeof round>>;
      try {
        outcome = await round();
      } catch (error) {
        logger.error({ err: error }, 'journal drain round failed');
        outcome = 'unavailable';
      }
      if (stopped) return;
      if (outcome === 'progress') {
        backoffMs = minBackoffMs;
        continue;
      }
      if (outcome === 'empty') {
        await waitForWork(undefined);
        continue;
      }
      await waitForWork(backoffMs);
      backoffMs = Math.min(maxBackoffMs, backoffMs * 2);
    }
  };
  const running = loop();

  return {
    drained: () => drained,
    wake: () => wakeUp(),
    stop: async () => {
      stopped = true;
      unsubscribe();
      wakeUp();
      await running;
    },
  };
};
