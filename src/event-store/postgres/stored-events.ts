/**
 * The events of a range exactly as stored, for a reader that hashes them itself: one `COPY ... TO
 * STDOUT` in binary format, so every field arrives as the bytes the server keeps (text and json as
 * UTF-8, the client encoding every connection asks for; integers and the uuid in their binary form),
 * nothing is computed by the database, and no JavaScript string or object is made per field.
 */
import { addAbortSignal } from 'node:stream';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { StoredEventBytes } from '../event-store.ts';
import { asError, connectWithin, timedOut, translateError, withTimeout } from './errors.ts';

/** The columns read, in this order; all NOT NULL. */
const columns = ['position', 'stream_name', 'revision', 'event_id', 'event_type', 'data', 'metadata'];
/** Fixed sizes in the binary format: bigint, uuid. */
const fixedSizes: readonly (number | undefined)[] = [8, undefined, 8, 16, undefined, undefined, undefined];

/** `PGCOPY\n\377\r\n\0`, then 32-bit flags and the length of a header extension. */
const copySignature = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]);
const headerBytes = copySignature.length + 8;

class MalformedCopyError extends Error {
  override readonly name = 'MalformedCopyError';
}

class StoredEventView implements StoredEventBytes {
  bytes: Buffer = Buffer.alloc(0);
  commit = 0;
  prepare = 0;
  revision = 0;
  id = 0;
  streamNameStart = 0;
  streamNameEnd = 0;
  typeStart = 0;
  typeEnd = 0;
  dataStart = 0;
  dataEnd = 0;
  metadataStart = 0;
  metadataEnd = 0;
}

/** Byte `index` of `first` followed by `second`. */
const byteAcross = (first: Buffer, second: Buffer, index: number): number =>
  index < first.length ? first[index]! : second[index - first.length]!;

/** The signed 32-bit big-endian integer at `index` of `first` followed by `second`. */
const int32Across = (first: Buffer, second: Buffer, index: number): number =>
  (byteAcross(first, second, index) << 24) |
  (byteAcross(first, second, index + 1) << 16) |
  (byteAcross(first, second, index + 2) << 8) |
  byteAcross(first, second, index + 3);

/**
 * Cuts the binary COPY stream into rows and hands each to `visit`. A row split across chunks is
 * completed by copying only that row's bytes (so at most one row, one event, is held beyond the
 * current chunk, and chunks are never copied whole).
 */
export class CopyRows {
  count = 0;
  private pending: Buffer | undefined;
  private headerRead = false;
  private ended = false;
  private readonly view = new StoredEventView();
  /** Start and end of each column of the row being read. */
  private readonly fields = new Int32Array(columns.length * 2);

  constructor(private readonly visit: (event: StoredEventBytes) => void) {}

  push(chunk: Buffer): void {
    if (this.ended) throw new MalformedCopyError('data after the end of the COPY stream');
    let at = 0;
    const { pending } = this;
    if (pending !== undefined) {
      const length = this.unitLength(pending, chunk);
      if (length === undefined) {
        this.pending = Buffer.concat([pending, chunk]);
        return;
      }
      this.pending = undefined;
      at = length - pending.length;
      const unit = Buffer.concat([pending, chunk.subarray(0, at)]);
      if (this.read(unit, 0) !== unit.length) throw new Error('a COPY row was measured wrongly');
    }
    for (;;) {
      if (this.ended) {
        if (at < chunk.length) throw new MalformedCopyError('data after the end of the COPY stream');
        return;
      }
      const next = this.read(chunk, at);
      if (next === undefined) break;
      at = next;
    }
    if (at < chunk.length) this.pending = chunk.subarray(at);
  }

  /** Checks the stream ended where it should. */
  finish(): number {
    if (!this.ended || this.pending !== undefined)
      throw new MalformedCopyError('the COPY stream ended before its trailer');
    return this.count;
  }

  /**
   * The length of the header or row that starts `pending` and goes on into `chunk`; undefined when
   * `chunk` does not complete it either.
   */
  private unitLength(pending: Buffer, chunk: Buffer): number | undefined {
    const available = pending.length + chunk.length;
    if (!this.headerRead) {
      if (available < headerBytes) return undefined;
      const length = headerBytes + int32Across(pending, chunk, copySignature.length + 4);
      return available < length ? undefined : length;
    }
    if (available < 2) return undefined;
    const fieldCount = (byteAcross(pending, chunk, 0) << 8) | byteAcross(pending, chunk, 1);
    // The trailer (-1) or a row of another shape: either is all the reader needs to see.
    if (fieldCount !== columns.length) return 2;
    let cursor = 2;
    for (let field = 0; field < columns.length; field += 1) {
      if (available - cursor < 4) return undefined;
      const length = int32Across(pending, chunk, cursor);
      cursor += 4 + Math.max(0, length);
      if (available < cursor) return undefined;
    }
    return cursor;
  }

  /** Reads the header or row at `at`: where the next one starts, or undefined when it is not all here. */
  private read(bytes: Buffer, at: number): number | undefined {
    if (this.headerRead) return this.row(bytes, at);
    if (bytes.length - at < headerBytes) return undefined;
    if (!bytes.subarray(at, at + copySignature.length).equals(copySignature))
      throw new MalformedCopyError('the COPY stream does not start with the binary signature');
    const extension = bytes.readUInt32BE(at + copySignature.length + 4);
    if (bytes.length - at < headerBytes + extension) return undefined;
    this.headerRead = true;
    return at + headerBytes + extension;
  }

  /** Reads the row at `at`: where the next one starts, or undefined when it is not all here yet. */
  private row(bytes: Buffer, at: number): number | undefined {
    if (bytes.length - at < 2) return undefined;
    const fieldCount = bytes.readInt16BE(at);
    if (fieldCount === -1) {
      this.ended = true;
      return at + 2;
    }
    if (fieldCount !== columns.length)
      throw new MalformedCopyError(`a COPY row of ${fieldCount} fields, not ${columns.length}`);
    const { fields } = this;
    let cursor = at + 2;
    for (let field = 0; field < columns.length; field += 1) {
      if (bytes.length - cursor < 4) return undefined;
      const length = bytes.readInt32BE(cursor);
      cursor += 4;
      const fixed = fixedSizes[field];
      if (length < 0 || (fixed !== undefined && length !== fixed))
        throw new MalformedCopyError(`column ${columns[field]} has ${length} bytes`);
      if (bytes.length - cursor < length) return undefined;
      fields[field * 2] = cursor;
      fields[field * 2 + 1] = cursor + length;
      cursor += length;
    }
    const { view } = this;
    view.bytes = bytes;
    view.commit = fields[0]!;
    view.prepare = fields[0]!;
    view.streamNameStart = fields[2]!;
    view.streamNameEnd = fields[3]!;
    view.revision = fields[4]!;
    view.id = fields[6]!;
    view.typeStart = fields[8]!;
    view.typeEnd = fields[9]!;
    view.dataStart = fields[10]!;
    view.dataEnd = fields[11]!;
    view.metadataStart = fields[12]!;
    view.metadataEnd = fields[13]!;
    this.count += 1;
    this.visit(view);
    return cursor;
  }
}

export interface StoredRange {
  /** Exclusive. */
  readonly lower: bigint;
  /** Inclusive. */
  readonly upper: bigint;
  readonly streamPrefixes: readonly string[];
}

/**
 * Each matching event in `range`, in order, to `visit`; resolves to how many. One connection of
 * `pool`. A range may be long and its reader slow, so what is bounded by `timeoutMs` is waiting for
 * the store: connecting, each statement, and each gap between the COPY's chunks (the time `visit`
 * takes does not count). The statement's own server-side timeout is lifted for this read and
 * restored after it. A connection left mid-COPY (a timeout, an error, a throwing visitor) is
 * discarded, not reused, so the lifted timeout never outlives the read.
 */
export const readStoredRange = async (
  pool: pg.Pool,
  timeoutMs: number,
  range: StoredRange,
  visit: (event: StoredEventBytes) => void,
): Promise<number> => {
  const doing = 'reading stored events of $all';
  const client = await connectWithin(pool, timeoutMs, doing);
  // COPY takes no parameters: the bounds are integers, the prefixes quoted as literals.
  const prefixes = range.streamPrefixes.map((prefix) => client.escapeLiteral(prefix)).join(', ');
  const sql = `COPY (
      SELECT e.${columns.join(', e.')}
        FROM event_store.events e
       WHERE e.position > ${range.lower.toString()} AND e.position <= ${range.upper.toString()}
         AND e.stream_name ^@ ANY (ARRAY[${prefixes}]::text[])
       ORDER BY e.position
    ) TO STDOUT (FORMAT binary)`;
  const rows = new CopyRows(visit);
  const stalled = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const waitForStore = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stalled.abort(), timeoutMs);
  };
  let failure: Error | undefined;
  try {
    await withTimeout(client.query('SET statement_timeout TO 0'), timeoutMs, doing);
    waitForStore();
    const stream = addAbortSignal(stalled.signal, client.query(copyTo(sql)));
    for await (const chunk of stream) {
      rows.push(chunk as Buffer);
      waitForStore();
    }
    clearTimeout(timer);
    const count = rows.finish();
    await withTimeout(client.query('RESET statement_timeout'), timeoutMs, doing);
    return count;
  } catch (error) {
    failure = asError(error);
    if (stalled.signal.aborted) throw timedOut(doing, timeoutMs);
    throw translateError(error, doing);
  } finally {
    clearTimeout(timer);
    client.release(failure);
  }
};
