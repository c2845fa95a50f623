/**
 * Opening the outage journal for a serve process: claim its own journal directory, take over the
 * records of journals left by processes that are gone (so they drain here, in their order, ahead of
 * any new event of their streams), set aside what cannot be read back, and start the durable archive
 * and its drainer. Closing stops the drainer and removes the journal directory when it holds nothing.
 */
import path from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { ArchiveWriter } from '../webhook/ingest.ts';
import { startDurableArchive, type DurableArchive } from './durable-archive.ts';
import { openJournal, type Journal } from './journal.ts';
import { claimJournalDirectories, removeJournalDirectory } from './location.ts';
import { registerJournalMetrics } from './metrics.ts';

export interface OutageJournal {
  readonly archive: DurableArchive;
  readonly journal: Journal;
  close(): Promise<void>;
}

/** `CALLTRAIL_JOURNAL_DIR`, or `journal` under the data directory. */
export const journalRoot = (config: Pick<Config, 'dataDir' | 'journal'>): string =>
  path.resolve(config.journal.dir ?? path.join(config.dataDir, 'journal'));

const adoptionBatch = 1024;

/** Copies every record of an earlier process's journal into `into`, in order; then removes it. */
const adopt = async (directory: string, into: Journal, logger: Logger): Promise<number> => {
  const from = openJournal({ path: directory, maxBytes: Number.MAX_SAFE_INTEGER });
  let taken = 0;
  try {
    for (const aside of from.aside()) {
      await into.keepAside(
        Buffer.from(aside.record.bytes, 'base64'),
        `${aside.record.reason} (from ${directory})`,
      );
    }
    let after: number | undefined;
    for (;;) {
      const batch = from.head(adoptionBatch, after);
      if (batch.length === 0) break;
      const copies: Promise<unknown>[] = [];
      for (const read of batch) {
        after = read.kind === 'entry' ? read.entry.sequence : read.sequence;
        if (read.kind === 'unreadable') {
          logger.error(
            { journal: directory, sequence: read.sequence, reason: read.reason },
            'journal record set aside: it cannot be drained',
          );
          copies.push(into.keepAside(read.bytes, `${read.reason} (record ${read.sequence} of ${directory})`));
          continue;
        }
        const { record } = read.entry;
        copies.push(
          into.append(
            record.stream,
            { id: record.id, type: record.type, data: record.data, metadata: record.metadata },
            { journaledAt: record.journaledAt, evenWhenFull: true },
          ),
        );
        taken += 1;
      }
      // Every copy is synced before the next batch; the source goes only once all are.
      await Promise.all(copies);
    }
  } finally {
    await from.close();
  }
  await removeJournalDirectory(directory);
  return taken;
};

export const openOutageJournal = async (options: {
  readonly config: Pick<Config, 'dataDir' | 'journal' | 'appendTimeoutMs'>;
  readonly writer: ArchiveWriter;
  readonly logger: Logger;
  readonly metrics?: Metrics;
}): Promise<OutageJournal> => {
  const { config, logger } = options;
  const root = journalRoot(config);
  const directories = await claimJournalDirectories(root);
  const journal = openJournal({ path: directories.own, maxBytes: config.journal.maxBytes });
  let archive: DurableArchive | undefined;
  try {
    for (const directory of directories.adopted) {
      const taken = await adopt(directory, journal, logger);
      logger.info({ journal: directory, events: taken }, 'took over the journal of a process that is gone');
    }
    for (const { sequence, reason } of journal.unreadableAtOpen) {
      logger.error(
        { journal: directories.own, sequence, reason },
        'journal record set aside: it cannot be drained',
      );
      await journal.setAside(sequence, reason);
    }
    archive = startDurableArchive({
      writer: options.writer,
      journal,
      maxBytes: config.journal.maxBytes,
      waitForDrainMs: config.appendTimeoutMs,
      logger: logger.child({ component: 'journal' }),
    });
    const started = archive;
    if (options.metrics) registerJournalMetrics(options.metrics.registry, () => started.status());
    logger.info(
      { journal: directories.own, depth: journal.depth(), maxBytes: config.journal.maxBytes },
      'outage journal open',
    );
  } catch (error) {
    await journal.close();
    throw error;
  }
  const opened = archive;
  return {
    archive: opened,
    journal,
    close: async () => {
      await opened.stop();
      const empty = journal.depth() === 0 && journal.asideCount() === 0;
      await journal.close();
      // A journal that still holds events stays, for the next process to take over and drain.
      if (empty) await removeJournalDirectory(directories.own);
      else
        logger.warn(
          { journal: directories.own, depth: journal.depth() },
          'journal kept with undrained events',
        );
    },
  };
};
