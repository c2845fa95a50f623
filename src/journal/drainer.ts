/**
 * The drainer: appends journaled events to the event store as soon as it takes them again, through
 * the same idempotent append as live traffic (so an event that did reach the store before it was
 * journaled is not stored twice), then removes them from the journal.
 *
 * Each round reads the journal's head in receive order and groups it by stream; streams drain side by
 * side, each one event after the other, and a stream stops at its first event the store does not take
 * (the next round starts again from the journal's head, so nothing of that stream overtakes it). While
 * the store is away, rounds back off exponentially up to a bound.
 */
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
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** After each event stored by the drain. */
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

export const startDrainer = (options: DrainerOptions): Drainer => {
  const { journal, writer, logger } = options;
  const batchSize = options.batchSize ?? 4096;
  const concurrency = options.concurrency ?? 128;
  const minBackoffMs = options.minBackoffMs ?? 100;
  const maxBackoffMs = options.maxBackoffMs ?? 5_000;
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
    const removals: Promise<void>[] = [];
    await inPool([...byStream.values()], concurrency, async (entries) => {
      for (const entry of entries) {
        if (stopped || unavailable !== undefined) return;
        try {
          await writer.append(entry.record.stream, eventOf(entry));
        } catch (error) {
          if (isRetryableAppendFailure(error)) {
            unavailable = error;
            return;
          }
          // The store refuses this event for good: keep it aside, reported, and let the stream go on.
          await setAside(entry.sequence, `refused by the event store: ${String(error)}`);
          continue;
        }
        removals.push(journal.remove(entry));
        drained += 1;
        options.onStored?.();
      }
    });
    await Promise.all(removals);
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
