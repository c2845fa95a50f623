/**
 * The outage journal: a durable local queue of events the event store could not take in time, kept
 * in LMDB until the drainer has appended them to the store.
 *
 * Three LMDB databases in one environment:
 * - `records`: sequence number -> record (CRC-32 of the JSON, then the JSON: id, stream, type, the
 *   data's and the metadata's JSON text as strings, when it was journaled). Sequence numbers only
 *   grow, so a range read from the start is receive order, and one stream's records come back in the
 *   order they were received;
 * - `ids`: `<stream>\n<event id>` -> sequence number, so a redelivery of a journaled event is a
 *   duplicate before the drain (after it, the store itself says so);
 * - `aside`: records that could not be read back (checksum or shape wrong), kept with the reason
 *   rather than dropped, and reported.
 *
 * Durability: LMDB commits copy-on-write pages and then switches its meta page, so a commit cut short
 * (a torn tail) is never visible after a restart; with `overlappingSync` off, a write's promise
 * resolves only after the commit is synced to disk. Transactions queued while a commit runs share the
 * next commit, so concurrent requests share one sync.
 */
import { crc32 } from 'node:zlib';
import { open, type Database, type RootDatabase } from 'lmdb';
import Type from 'typebox';
import Compile from 'typebox/compile';
import { JsonText, jsonTextOf, type ProposedEvent } from '../event-store/event-store.ts';

const recordFields = {
  id: Type.String({ minLength: 1 }),
  stream: Type.String({ minLength: 1 }),
  type: Type.String({ minLength: 1 }),
  /** Epoch milliseconds. */
  journaledAt: Type.Number(),
};
/**
 * A record as stored: data and metadata as the JSON text they are stored in, so reading a record back
 * parses no payload and the drain hands the store the text as it is.
 */
const StoredRecord = Type.Object({ ...recordFields, dataJson: Type.String(), metadataJson: Type.String() });
/** Records written before data and metadata were kept as text: JSON values in the record. */
const StoredRecordWithValues = Type.Object({
  ...recordFields,
  data: Type.Unknown(),
  metadata: Type.Unknown(),
});
// Compiled once: the drain checks every record it reads back.
const storedRecord = Compile(StoredRecord);
const storedRecordWithValues = Compile(StoredRecordWithValues);

export interface JournalRecord {
  readonly id: string;
  readonly stream: string;
  readonly type: string;
  readonly data: JsonText;
  readonly metadata: JsonText;
  /** Epoch milliseconds. */
  readonly journaledAt: number;
}

export interface JournalEntry {
  readonly sequence: number;
  readonly record: JournalRecord;
  /** The record's stored size. */
  readonly bytes: number;
}

export interface AsideRecord {
  readonly reason: string;
  /** The stored bytes as they were found, base64. */
  readonly bytes: string;
  readonly setAsideAt: number;
}

/** The journal cannot take the event (size limit reached, disk full): it is kept nowhere. */
export class JournalFullError extends Error {
  override readonly name = 'JournalFullError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface JournalAppendResult {
  /** True when this stream's event was already in the journal: nothing was written. */
  readonly duplicate: boolean;
}

/** A record read back: the entry, or why it cannot be used. */
export type ReadEntry =
  | { readonly kind: 'entry'; readonly entry: JournalEntry }
  | {
      readonly kind: 'unreadable';
      readonly sequence: number;
      readonly reason: string;
      readonly bytes: Buffer;
    };

/** Per-record overhead counted against the size limit: keys, the id index, LMDB's node headers. */
const recordOverheadBytes = 160;

/** Event data or metadata as the JSON text the journal keeps (a value JSON cannot hold is refused). */
const journalText = (value: unknown, field: string): JsonText => {
  if (value instanceof JsonText) return value;
  const text = jsonTextOf(value);
  if (text === undefined) throw new TypeError(`the event's ${field} must be JSON-serializable`);
  return new JsonText(text);
};

export const encodeRecord = (record: JournalRecord): Buffer => {
  const stored: Type.Static<typeof StoredRecord> = {
    id: record.id,
    stream: record.stream,
    type: record.type,
    dataJson: record.data.text,
    metadataJson: record.metadata.text,
    journaledAt: record.journaledAt,
  };
  const json = Buffer.from(JSON.stringify(stored));
  const encoded = Buffer.allocUnsafe(4 + json.length);
  encoded.writeUInt32BE(crc32(json), 0);
  json.copy(encoded, 4);
  return encoded;
};

export const decodeRecord = (bytes: Uint8Array): JournalRecord | string => {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < 5) return 'record too short';
  const json = buffer.subarray(4);
  if (buffer.readUInt32BE(0) !== crc32(json)) return 'checksum mismatch';
  let parsed: unknown;
  try {
    parsed = JSON.parse(json.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  if (storedRecord.Check(parsed)) {
    const { id, stream, type, journaledAt, dataJson, metadataJson } = parsed;
    return {
      id,
      stream,
      type,
      journaledAt,
      data: new JsonText(dataJson),
      metadata: new JsonText(metadataJson),
    };
  }
  if (storedRecordWithValues.Check(parsed)) {
    // Values parsed from JSON always serialize again.
    const { id, stream, type, journaledAt } = parsed;
    const data = journalText(parsed.data, 'data');
    return { id, stream, type, journaledAt, data, metadata: journalText(parsed.metadata, 'metadata') };
  }
  return 'not a journal record';
};

const idKey = (stream: string, id: string): string => `${stream}\n${id}`;

/**
 * A failed LMDB commit (a full disk, say) rejects every write in it with one error, whose `commitError`
 * is a second promise, rejected with the file system's own error. Unobserved, each of these rejections
 * is unhandled and ends the process; the failure is reported once, by the transaction's promise.
 */
const observeCommitFailure = (error: unknown): void => {
  const commitError: unknown = (error as { commitError?: unknown } | null)?.commitError;
  if (commitError instanceof Promise) commitError.catch(() => undefined);
};

/** A write inside a transaction: its failure is the transaction's, reported there. */
const inTransaction = (write: Promise<unknown>): void => {
  write.catch(observeCommitFailure);
};

/** Awaits a commit, with its failure's second promise observed. */
const committed = async <T>(commit: Promise<T>): Promise<T> => {
  try {
    return await commit;
  } catch (error) {
    observeCommitFailure(error);
    throw error;
  }
};

export interface AppendOptions {
  /** Keeps an earlier journal's time when its records are taken over. */
  readonly journaledAt?: number;
  /** Taking over records another process already acknowledged: they are kept whatever the limit. */
  readonly evenWhenFull?: boolean;
}

export interface JournalOptions {
  /** The journal's own directory (it holds LMDB's files). */
  readonly path: string;
  readonly maxBytes: number;
  readonly clock?: () => number;
}

export interface Journal {
  readonly path: string;
  /** Records found unreadable when the journal was opened; the caller reports and sets them aside. */
  readonly unreadableAtOpen: readonly { readonly sequence: number; readonly reason: string }[];
  /** Events journaled and not yet drained. */
  depth(): number;
  /** Approximate bytes held, as counted against the size limit. */
  bytes(): number;
  /** Journaled events of this stream not yet drained. */
  pendingIn(stream: string): number;
  /** Resolves true once the stream has nothing journaled, or false after `timeoutMs`. */
  whenDrained(stream: string, timeoutMs: number): Promise<boolean>;
  /** When the oldest journaled event was journaled (epoch ms), undefined when empty. */
  oldestJournaledAt(): number | undefined;
  /** Writes the event durably (synced) unless the stream's event is already journaled. */
  append(stream: string, event: ProposedEvent, options?: AppendOptions): Promise<JournalAppendResult>;
  /** The first `limit` records in receive order (after `afterSequence` when given). */
  head(limit: number, afterSequence?: number): ReadEntry[];
  /** Removes drained records (and their ids) from the journal, in one commit. */
  remove(entries: readonly JournalEntry[]): Promise<void>;
  /** Moves an unusable record to `aside`, with the reason. */
  setAside(sequence: number, reason: string): Promise<void>;
  /** Keeps another journal's unusable record in `aside`, with the reason. */
  keepAside(bytes: Uint8Array, reason: string): Promise<void>;
  asideCount(): number;
  aside(): { sequence: number; record: AsideRecord }[];
  /** Calls `listener` after each record journaled. */
  onAppend(listener: () => void): () => void;
  close(): Promise<void>;
}

/**
 * Opens (creating if needed) the journal in `options.path`. Counts what it holds, and sets aside any
 * record that cannot be read back, so that depth and per-stream counts are exact from the start.
 */
export const openJournal = (options: JournalOptions): Journal => {
  const clock = options.clock ?? Date.now;
  // overlappingSync off: every commit is synced before its writes resolve (classic LMDB durability).
  // eventTurnBatching off: an event turn's writes would otherwise be wrapped in a batch of LMDB's own,
  // whose promise nobody can observe; when its commit fails (a full disk), that rejection is unhandled
  // and ends the process. Transactions queued while a commit runs still share the next one.
  const environment: RootDatabase = open({
    path: options.path,
    overlappingSync: false,
    eventTurnBatching: false,
    maxDbs: 4,
  });
  const records: Database<Buffer, number> = environment.openDB({ name: 'records', encoding: 'binary' });
  const ids: Database<number, string> = environment.openDB({ name: 'ids', encoding: 'ordered-binary' });
  const asideDb: Database<AsideRecord, number> = environment.openDB({ name: 'aside', encoding: 'json' });

  const pending = new Map<string, number>();
  const sizes = new Map<number, number>();
  let totalBytes = 0;
  let nextSequence = 1;
  let closed = false;
  const listeners = new Set<() => void>();
  const drainWaiters = new Map<string, Set<() => void>>();
  const unreadableAtOpen: { sequence: number; reason: string }[] = [];

  const count = (stream: string, delta: number) => {
    const next = (pending.get(stream) ?? 0) + delta;
    if (next > 0) {
      pending.set(stream, next);
      return;
    }
    pending.delete(stream);
    const waiters = drainWaiters.get(stream);
    drainWaiters.delete(stream);
    for (const waiter of waiters ?? []) waiter();
  };

  for (const { key, value } of records.getRange()) {
    nextSequence = Math.max(nextSequence, key + 1);
    const decoded = decodeRecord(value);
    if (typeof decoded === 'string') {
      unreadableAtOpen.push({ sequence: key, reason: decoded });
      continue;
    }
    count(decoded.stream, 1);
    const size = value.length + recordOverheadBytes;
    sizes.set(key, size);
    totalBytes += size;
  }
  for (const { key } of asideDb.getRange()) nextSequence = Math.max(nextSequence, key + 1);

  const setAside = async (sequence: number, reason: string): Promise<void> => {
    const bytes = records.getBinary(sequence);
    if (bytes === undefined) return;
    await committed(
      environment.transaction(() => {
        inTransaction(
          asideDb.put(sequence, {
            reason,
            bytes: Buffer.from(bytes).toString('base64'),
            setAsideAt: clock(),
          }),
        );
        inTransaction(records.remove(sequence));
      }),
    );
    const size = sizes.get(sequence);
    if (size !== undefined) {
      sizes.delete(sequence);
      totalBytes -= size;
    }
  };

  return {
    path: options.path,
    unreadableAtOpen,
    depth: () => sizes.size,
    bytes: () => totalBytes,
    pendingIn: (stream) => pending.get(stream) ?? 0,
    whenDrained: (stream, timeoutMs) =>
      new Promise<boolean>((resolve) => {
        if (!pending.has(stream)) {
          resolve(true);
          return;
        }
        const waiters = drainWaiters.get(stream) ?? new Set<() => void>();
        drainWaiters.set(stream, waiters);
        const done = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          waiters.delete(done);
          resolve(false);
        }, timeoutMs);
        waiters.add(done);
      }),
    oldestJournaledAt: () => {
      for (const { value } of records.getRange({ limit: 8 })) {
        const decoded = decodeRecord(value);
        if (typeof decoded !== 'string') return decoded.journaledAt;
      }
      return undefined;
    },
    append: async (stream, event, appendOptions = {}) => {
      if (closed) throw new JournalFullError('the journal is closed');
      const key = idKey(stream, event.id);
      if (ids.get(key) !== undefined) return { duplicate: true };
      const record: JournalRecord = {
        id: event.id,
        stream,
        type: event.type,
        data: journalText(event.data, 'data'),
        metadata: journalText(event.metadata, 'metadata'),
        journaledAt: appendOptions.journaledAt ?? clock(),
      };
      const encoded = encodeRecord(record);
      const size = encoded.length + recordOverheadBytes;
      if (totalBytes + size > options.maxBytes && appendOptions.evenWhenFull !== true) {
        throw new JournalFullError(
          `the journal is full (${totalBytes} of ${options.maxBytes} bytes); the event was not kept`,
        );
      }
      const sequence = nextSequence;
      nextSequence += 1;
      // Counted before the commit so concurrent appends cannot overshoot the limit together, and so
      // the stream counts as pending from now on: a later event of it must queue behind this one.
      totalBytes += size;
      sizes.set(sequence, size);
      count(stream, 1);
      try {
        await committed(
          environment.transaction(() => {
            inTransaction(records.put(sequence, encoded));
            inTransaction(ids.put(key, sequence));
          }),
        );
      } catch (error) {
        totalBytes -= size;
        sizes.delete(sequence);
        count(stream, -1);
        throw new JournalFullError('the journal could not be written (disk full?); the event was not kept', {
          cause: error,
        });
      }
      for (const listener of listeners) listener();
      return { duplicate: false };
    },
    head: (limit, afterSequence) => {
      const entries: ReadEntry[] = [];
      const range = afterSequence === undefined ? { limit } : { limit, start: afterSequence + 1 };
      for (const { key, value } of records.getRange(range)) {
        const decoded = decodeRecord(value);
        entries.push(
          typeof decoded === 'string'
            ? { kind: 'unreadable', sequence: key, reason: decoded, bytes: Buffer.from(value) }
            : { kind: 'entry', entry: { sequence: key, record: decoded, bytes: value.length } },
        );
      }
      return entries;
    },
    remove: async (entries) => {
      // Counted out at once: the events are in the store, so the streams' next live events may follow.
      const removed = entries.flatMap((entry) => {
        const size = sizes.get(entry.sequence);
        if (size === undefined) return [];
        sizes.delete(entry.sequence);
        totalBytes -= size;
        count(entry.record.stream, -1);
        return [{ entry, size }];
      });
      if (removed.length === 0) return;
      try {
        await committed(
          environment.transaction(() => {
            for (const { entry } of removed) {
              inTransaction(records.remove(entry.sequence));
              inTransaction(ids.remove(idKey(entry.record.stream, entry.record.id)));
            }
          }),
        );
      } catch (error) {
        // Still in the journal (a full disk, say): counted in again, to be drained, as duplicates, again.
        for (const { entry, size } of removed) {
          sizes.set(entry.sequence, size);
          totalBytes += size;
          count(entry.record.stream, 1);
        }
        throw error;
      }
    },
    setAside,
    keepAside: async (bytes, reason) => {
      const sequence = nextSequence;
      nextSequence += 1;
      await committed(
        asideDb.put(sequence, {
          reason,
          bytes: Buffer.from(bytes).toString('base64'),
          setAsideAt: clock(),
        }),
      );
    },
    asideCount: () => asideDb.getKeysCount(),
    aside: () => [...asideDb.getRange()].map(({ key, value }) => ({ sequence: key, record: value })),
    onAppend: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await environment.close();
    },
  };
};
