/**
 * The journal's files: a commit torn before LMDB switched its meta page is not there after a restart
 * (and nothing else is lost), a record corrupted in the middle is reported and kept aside while the
 * rest drains, and a journal is taken over only when the process that owned it is gone.
 */
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  appendFile,
  mkdir,
  mkdtemp,
  open as openFile,
  readdir,
  readFile,
  rm,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { open as openLmdb } from 'lmdb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/wait.ts';
import type { ProposedEvent } from '../../src/event-store/event-store.ts';
import { openJournal } from '../../src/journal/journal.ts';
import { claimJournalDirectories } from '../../src/journal/location.ts';
import { startDurableArchive } from '../../src/journal/durable-archive.ts';
import { openOutageJournal } from '../../src/journal/outage-journal.ts';
import { createLogger } from '../../src/logger.ts';
import { createArchiveWriter } from '../../src/webhook/ingest.ts';
import { capturingLogger } from '../support/projector-harness.ts';
import { startZombieParent } from '../support/zombie.ts';
import { openEventStoreDb, readStream, type EventStoreDbUnderTest } from '../webhook/stores.ts';

const event = (label: string): ProposedEvent => ({
  id: randomUUID(),
  type: 'status-update',
  data: { label },
  metadata: { receivedAt: '2026-01-01T00:00:00.000Z' },
});

const maxBytes = 64 * 1024 * 1024;
let root: string;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'calltrail-journal-files-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const freshDirectory = async (): Promise<string> => {
  const directory = path.join(root, randomUUID());
  await mkdir(directory);
  return directory;
};

/** LMDB's two meta pages: which commit is the current one. */
const metaBytes = 2 * 4096;

const readMeta = async (file: string): Promise<Buffer> => {
  const handle = await openFile(file, 'r');
  try {
    const buffer = Buffer.alloc(metaBytes);
    await handle.read(buffer, 0, metaBytes, 0);
    return buffer;
  } finally {
    await handle.close();
  }
};

const writeMeta = async (file: string, meta: Buffer): Promise<void> => {
  const handle = await openFile(file, 'r+');
  try {
    await handle.write(meta, 0, meta.length, 0);
  } finally {
    await handle.close();
  }
};

describe('journal files', () => {
  it('drops a commit torn before its meta page was written, and keeps every earlier one', async () => {
    const directory = await freshDirectory();
    const kept = [event('one'), event('two')];
    const first = openJournal({ path: directory, maxBytes });
    for (const e of kept) await first.append('call-torn', e);
    await first.close();
    const dataFile = path.join(directory, 'data.mdb');
    const metaBeforeTail = await readMeta(dataFile);

    // The tail's pages reach the file, but the crash comes before the meta page that commits them.
    const second = openJournal({ path: directory, maxBytes });
    await second.append('call-torn', event('torn'));
    await second.close();
    await writeMeta(dataFile, metaBeforeTail);
    await appendFile(dataFile, Buffer.from('half a page of garbage after the last page'));

    const reopened = openJournal({ path: directory, maxBytes });
    try {
      expect(reopened.unreadableAtOpen).toEqual([]);
      expect(reopened.depth()).toBe(2);
      const ids = reopened
        .head(10)
        .map((read) => (read.kind === 'entry' ? read.entry.record.id : read.reason));
      expect(ids).toEqual(kept.map((e) => e.id));
      // The journal goes on from there.
      await reopened.append('call-torn', event('three'));
      expect(reopened.depth()).toBe(3);
    } finally {
      await reopened.close();
    }
  });

  it('takes over a journal only when its owner is gone', async () => {
    const claimRoot = await freshDirectory();
    const alive = path.join(claimRoot, 'journal-alive');
    const dead = path.join(claimRoot, 'journal-dead');
    const exited = spawnSync(process.execPath, ['-e', '']).pid;
    const owner = (pid: number) =>
      JSON.stringify({ host: os.hostname(), bootId: 'x', pid, startedAt: new Date().toISOString() });
    await mkdir(alive);
    await mkdir(dead);
    // The boot id is read like calltrail reads it, so only the pid decides.
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    await writeFile(
      path.join(alive, 'owner.json'),
      owner(process.ppid).replace('"x"', JSON.stringify(bootId)),
    );
    await writeFile(path.join(dead, 'owner.json'), owner(exited).replace('"x"', JSON.stringify(bootId)));

    const claimed = await claimJournalDirectories(claimRoot);
    expect(claimed.adopted).toHaveLength(1);
    const names = await readdir(claimRoot);
    expect(names).toContain('journal-alive');
    expect(names).not.toContain('journal-dead');
    expect(names).toContain(path.basename(claimed.own));
  });

  it('takes over a journal whose owner is a zombie: it has exited, only its pid is still taken', async () => {
    const claimRoot = await freshDirectory();
    const held = path.join(claimRoot, 'journal-zombie');
    const { parent, zombie } = await startZombieParent();
    try {
      const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
      await mkdir(held);
      await writeFile(
        path.join(held, 'owner.json'),
        JSON.stringify({ host: os.hostname(), bootId, pid: zombie, startedAt: new Date().toISOString() }),
      );
      const claimed = await claimJournalDirectories(claimRoot);
      expect(claimed.adopted).toHaveLength(1);
      expect(await readdir(claimRoot)).not.toContain('journal-zombie');
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('a journal left by a process that is gone', () => {
  let store: EventStoreDbUnderTest;

  beforeAll(async () => {
    store = await openEventStoreDb({ timeoutMs: 2_000 });
  });
  afterAll(async () => {
    await store?.close();
  });

  let journalRoot: string | undefined;
  afterEach(async () => {
    if (journalRoot) await rm(journalRoot, { recursive: true, force: true });
  });

  it('keeps a busy call in order while its backlog drains slowly', async () => {
    journalRoot = await freshDirectory();
    const journal = openJournal({ path: journalRoot, maxBytes });
    const archive = startDurableArchive({
      writer: createArchiveWriter(store.eventStore, { timeoutMs: 2_000 }),
      journal,
      maxBytes,
      waitForDrainMs: 150,
      logger: createLogger({ level: 'silent' }),
    });
    const stream = `call-${randomUUID()}`;
    const sent: ProposedEvent[] = [];
    try {
      await store.takeDown();
      for (let i = 0; i < 10; i += 1) {
        const e = event(`outage-${i}`);
        sent.push(e);
        expect(await archive.writer.append(stream, e)).toEqual({ duplicate: false, journaled: true });
      }
      // Back, but slow: the backlog takes longer to drain than a live event waits for it.
      store.slowWrites(100);
      await store.bringBack();
      const outcomes: boolean[] = [];
      for (let i = 0; i < 15; i += 1) {
        const e = event(`live-${i}`);
        sent.push(e);
        outcomes.push((await archive.writer.append(stream, e)).journaled);
      }
      // Some waited in vain and were journaled behind the backlog; once it drained, they went direct.
      expect(outcomes).toContain(true);
      // Drained and done journaling: the drainer stops journaling once its round has emptied the
      // journal, a moment after the depth reaches 0.
      await waitFor(
        'the backlog to drain',
        async () => {
          const status = archive.status();
          return status.depth === 0 && !status.journaling;
        },
        30_000,
      );
      expect(journal.depth()).toBe(0);
      store.slowWrites(0);
      const last = event('after');
      sent.push(last);
      expect(await archive.writer.append(stream, last)).toEqual({ duplicate: false, journaled: false });
      expect((await readStream(store.eventStore, stream)).map((e) => e.id)).toEqual(sent.map((e) => e.id));
    } finally {
      store.slowWrites(0);
      await store.bringBack();
      await archive.stop();
      await journal.close();
    }
  });

  it('drains into the store, with a corrupted record reported and kept aside', async () => {
    journalRoot = await freshDirectory();
    const left = path.join(journalRoot, 'journal-left-behind');
    await mkdir(left);
    const streamA = `call-${randomUUID()}`;
    const streamB = `call-${randomUUID()}`;
    const [a1, a2, a3, b1] = [event('a1'), event('a2'), event('a3'), event('b1')];
    const earlier = openJournal({ path: left, maxBytes });
    await earlier.append(streamA, a1);
    await earlier.append(streamB, b1);
    await earlier.append(streamA, a2);
    await earlier.append(streamA, a3);
    await earlier.close();

    // Garbage under the third record's key, written straight through LMDB.
    const raw = openLmdb({ path: left, maxDbs: 4 });
    const records = raw.openDB<Buffer, number>({ name: 'records', encoding: 'binary' });
    const garbage = Buffer.from('\u0000\u0001 not a journal record');
    await records.put(3, garbage);
    await raw.close();

    const { logger, lines } = capturingLogger();
    const outage = await openOutageJournal({
      config: { dataDir: journalRoot, journal: { dir: journalRoot, maxBytes }, appendTimeoutMs: 2_000 },
      writer: createArchiveWriter(store.eventStore, { timeoutMs: 2_000 }),
      logger,
    });
    try {
      const deadline = Date.now() + 30_000;
      while (outage.journal.depth() > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(outage.journal.depth()).toBe(0);
      expect((await readStream(store.eventStore, streamA)).map((e) => e.id)).toEqual([a1.id, a3.id]);
      expect((await readStream(store.eventStore, streamB)).map((e) => e.id)).toEqual([b1.id]);

      const aside = outage.journal.aside();
      expect(aside).toHaveLength(1);
      expect(Buffer.from(aside[0]!.record.bytes, 'base64')).toEqual(garbage);
      expect(aside[0]!.record.reason).toMatch(/checksum mismatch/);
      expect(
        lines().filter((line) => line.msg === 'journal record set aside: it cannot be drained'),
      ).toHaveLength(1);
      expect(outage.archive.status().setAsideTotal).toBe(1);
      // The left journal's directory is gone: its records are in this process's journal now.
      expect(await readdir(journalRoot)).not.toContain('journal-left-behind');
    } finally {
      await outage.close();
    }
    // Records kept aside keep the journal directory for an operator to look at.
    expect((await readdir(journalRoot)).filter((name) => name.startsWith('journal-'))).toHaveLength(1);
  });
});
