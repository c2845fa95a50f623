/**
 * The one place where "durably recorded somewhere" is decided. Its writer has the shape of the
 * idempotent append (`ArchiveWriter`): it tries the event store within the append's budget and, when
 * the store is unavailable or too slow, writes the event to the outage journal instead, saying which
 * of the two holds it. The drainer then moves journaled events into the store.
 *
 * Order within a stream: appends for one stream pass through here one at a time, and while a stream
 * has journaled events not yet drained, its new events are journaled behind them rather than sent to
 * the store, so they can never overtake them. Once the store failed, every event goes to the journal
 * without waiting for the store again, until the drainer has stored one (the store is back).
 */
import type { ProposedEvent } from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import { isRetryableAppendFailure, type AppendOptions, type ArchiveWriter } from '../webhook/ingest.ts';
import { startDrainer, type Drainer } from './drainer.ts';
import type { Journal } from './journal.ts';

export interface DurableAppendResult {
  /** True when the event was already archived (or already journaled): nothing was written. */
  readonly duplicate: boolean;
  /** True when the journal holds it, for the drainer to store. */
  readonly journaled: boolean;
}

export interface DurableArchiveWriter {
  /**
   * Throws `JournalFullError` when neither the store nor the journal could take the event. A
   * `timeoutMs` tighter than the append's own bounds the store's turn (and the wait for the stream's
   * drain) for this event: past it, the event is journaled.
   */
  append(streamName: string, event: ProposedEvent, options?: AppendOptions): Promise<DurableAppendResult>;
}

export interface JournalStatus {
  /** The store failed and new events go to the journal. */
  readonly journaling: boolean;
  /** Whether the journal has room. */
  readonly accepting: boolean;
  readonly depth: number;
  readonly bytes: number;
  readonly maxBytes: number;
  readonly oldestAgeSeconds: number;
  /** Events stored by the drain per second, over the last few seconds. */
  readonly drainRatePerSecond: number;
  readonly drainedTotal: number;
  readonly journaledTotal: number;
  readonly setAsideTotal: number;
}

export interface DurableArchive {
  readonly writer: DurableArchiveWriter;
  status(): JournalStatus;
  /** Stops the drainer after its round; the journal stays open (its owner closes it). */
  stop(): Promise<void>;
}

export interface DurableArchiveOptions {
  /** The idempotent append to the store, with its time budget. */
  readonly writer: ArchiveWriter;
  readonly journal: Journal;
  readonly maxBytes: number;
  /** How long a live event waits for its stream's journaled events to drain before it is journaled. */
  readonly waitForDrainMs: number;
  readonly logger: Logger;
  readonly clock?: () => number;
  readonly drain?: { readonly batchSize?: number; readonly concurrency?: number };
}

/** Runs work for one stream at a time, in arrival order. Each step is bounded by the append's own. */
class StreamOrder {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(stream: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(stream) ?? Promise.resolve();
    const current = previous.then(work, work);
    const tail = current.catch(() => {});
    this.tails.set(stream, tail);
    void tail.then(() => {
      if (this.tails.get(stream) === tail) this.tails.delete(stream);
    });
    return current;
  }
}

const drainRateWindowMs = 10_000;

export const startDurableArchive = (options: DurableArchiveOptions): DurableArchive => {
  const { writer, journal, logger } = options;
  const clock = options.clock ?? Date.now;
  const order = new StreamOrder();
  /** Streams whose last wait for the drain ran out, until when their events skip the wait. */
  const impatientUntil = new Map<string, number>();
  let journaling = false;
  let journaledTotal = 0;
  let setAsideTotal = journal.asideCount();
  let full = false;
  // (time, drained total) samples for the drain rate.
  const samples: [number, number][] = [];

  const startJournaling = (error: unknown) => {
    if (journaling) return;
    journaling = true;
    logger.warn(
      { err: error, journal: journal.path },
      'event store unavailable: journaling events until it takes them again',
    );
  };

  const drainer: Drainer = startDrainer({
    journal,
    writer,
    logger,
    ...options.drain,
    onStored: () => {
      if (journaling) {
        journaling = false;
        logger.info(
          { journal: journal.path, depth: journal.depth() },
          'event store reachable again: draining the journal',
        );
      }
      if (journal.depth() === 0) {
        logger.info(
          { journal: journal.path, drained: drainer.drained() },
          'journal drained: stopped journaling',
        );
      }
    },
    onUnavailable: startJournaling,
    onSetAside: () => {
      setAsideTotal += 1;
    },
  });

  const toJournal = async (stream: string, event: ProposedEvent): Promise<DurableAppendResult> => {
    try {
      const { duplicate } = await journal.append(stream, event);
      if (full) {
        full = false;
        logger.info({ journal: journal.path }, 'the journal takes events again');
      }
      if (!duplicate) journaledTotal += 1;
      return { duplicate, journaled: true };
    } catch (error) {
      if (!full) {
        full = true;
        logger.error({ err: error, journal: journal.path }, 'the journal is full: events are refused');
      }
      throw error;
    }
  };

  const durableWriter: DurableArchiveWriter = {
    append: (stream, event, appendOptions) =>
      order.run(stream, async () => {
        const waitForDrainMs = Math.min(options.waitForDrainMs, appendOptions?.timeoutMs ?? Infinity);
        if (journaling) return toJournal(stream, event);
        // The stream's journaled events go first: give the drain the budget to store them, so a
        // busy stream is not journaled for ever behind its own backlog; past it, journal behind them.
        // One wait per budget and stream: the events queued behind a wait that ran out (a per-day
        // stream has many) are journaled at once rather than each waiting in turn.
        if (journal.pendingIn(stream) > 0) {
          if ((impatientUntil.get(stream) ?? 0) > clock()) return toJournal(stream, event);
          if (!(await journal.whenDrained(stream, waitForDrainMs))) {
            impatientUntil.set(stream, clock() + options.waitForDrainMs);
            return toJournal(stream, event);
          }
        }
        impatientUntil.delete(stream);
        if (journaling) return toJournal(stream, event);
        try {
          const { duplicate } = await writer.append(stream, event, appendOptions);
          return { duplicate, journaled: false };
        } catch (error) {
          if (!isRetryableAppendFailure(error)) throw error;
          startJournaling(error);
          return toJournal(stream, event);
        }
      }),
  };

  const drainRate = (): number => {
    const now = clock();
    samples.push([now, drainer.drained()]);
    while (samples.length > 2 && samples[0]![0] < now - drainRateWindowMs) samples.shift();
    const [firstAt, firstCount] = samples[0]!;
    const seconds = (now - firstAt) / 1000;
    return seconds > 0 ? (drainer.drained() - firstCount) / seconds : 0;
  };
  // Sampled once a second, so the rate does not depend on how often it is asked for.
  const sampler = setInterval(() => {
    drainRate();
    const now = clock();
    for (const [stream, until] of impatientUntil) if (until <= now) impatientUntil.delete(stream);
  }, 1000);
  sampler.unref();

  return {
    writer: durableWriter,
    status: () => {
      const oldest = journal.oldestJournaledAt();
      return {
        journaling,
        accepting: !full && journal.bytes() < options.maxBytes,
        depth: journal.depth(),
        bytes: journal.bytes(),
        maxBytes: options.maxBytes,
        oldestAgeSeconds: oldest === undefined ? 0 : Math.max(0, (clock() - oldest) / 1000),
        drainRatePerSecond: Math.round(drainRate() * 10) / 10,
        drainedTotal: drainer.drained(),
        journaledTotal,
        setAsideTotal,
      };
    },
    stop: async () => {
      clearInterval(sampler);
      await drainer.stop();
    },
  };
};

/**
 * The store alone, for processes without a journal: nothing is ever journaled. With nowhere else to
 * keep an event, the store always gets the append's whole budget, whatever tighter one is asked for.
 */
export const storeOnly = (writer: ArchiveWriter): DurableArchiveWriter => ({
  append: async (stream, event) => ({ ...(await writer.append(stream, event)), journaled: false }),
});
