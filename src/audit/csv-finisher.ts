/**
 * The byte state machine that finishes PostgreSQL's `COPY ... (FORMAT csv)` output for a
 * spreadsheet: CRLF row ends, ISO 8601 times with milliseconds and `Z`, and formula triggers
 * neutralized, in one streaming pass and constant memory (the rules are documented with the export
 * that uses it, `terminations-csv.ts`).
 */
import { Transform, type TransformCallback } from 'node:stream';

/**
 * How a column's bytes are finished: `text` gets an apostrophe before a formula trigger, `phone`
 * too unless it is an E.164 number, `time` is rewritten to ISO 8601, `number` is left alone.
 */
export type ColumnKind = 'text' | 'phone' | 'time' | 'number';

/** COPY's output was not what the finisher expects; the export fails rather than mislabel data. */
export class CsvShapeError extends Error {
  override readonly name = 'CsvShapeError';
}

const quote = 0x22;
const comma = 0x2c;
const lineFeed = 0x0a;
const carriageReturn = 0x0d;
const apostrophe = 0x27;
const plus = 0x2b;

const startsFormula = (byte: number): boolean =>
  byte === 0x3d ||
  byte === plus ||
  byte === 0x2d ||
  byte === 0x40 ||
  byte === 0x09 ||
  byte === carriageReturn;

const isDigit = (byte: number): boolean => byte >= 0x30 && byte <= 0x39;

// Where the finisher is in the byte stream.
const fieldStart = 0;
const unquoted = 1;
const quotedFirst = 2;
const quoted = 3;
const quoteSeen = 4;
const held = 5;
type State =
  typeof fieldStart | typeof unquoted | typeof quotedFirst | typeof quoted | typeof quoteSeen | typeof held;

const slabBytes = 1 << 20;

/** The longest E.164 number kept verbatim: `+` and up to 20 digits. */
const maxPhoneBytes = 21;
/** `YYYY-MM-DD HH:MM:SS.ffffff+00` and then some; anything longer is not a time this export knows. */
const maxTimeBytes = 40;

/** A column of the CSV, and how its bytes are finished. */
export interface CsvColumn {
  readonly name: string;
  readonly kind: ColumnKind;
}

/**
 * Finishes COPY's CSV in one pass over the bytes: LF row ends become CRLF, times are rewritten to
 * ISO 8601 with milliseconds and `Z`, and formula triggers get their apostrophe. It keeps COPY's
 * quoting (a value holding a comma, quote, CR or LF is quoted, quotes doubled) and never re-parses
 * a value into a string, so it runs at memory speed beside PostgreSQL; per-row expressions in the
 * query (`to_char`, `CASE`) cost the server more than the whole copy. Chunks may split rows,
 * values and doubled quotes anywhere: the state carries over, and only a time or a `+`-number is
 * held back, until its field ends.
 */
export class CopyCsvFinisher extends Transform {
  private readonly kinds: readonly ColumnKind[];
  private state: State = fieldStart;
  private column = 0;
  private rowCount = 0;
  private readonly heldBytes = new Uint8Array(maxTimeBytes);
  private heldLength = 0;
  private slab = new Uint8Array(0);
  private slabUsed = 0;

  constructor(columns: readonly CsvColumn[]) {
    super();
    this.kinds = columns.map((column) => column.kind);
    this.push(Buffer.from(`${columns.map((column) => column.name).join(',')}\r\n`, 'utf8'));
  }

  /** Data rows written so far. */
  get rows(): number {
    return this.rowCount;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      callback(null, this.finish(chunk));
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    callback(
      this.state === fieldStart && this.column === 0
        ? null
        : new CsvShapeError('the export ended inside a row'),
    );
  }

  private finish(chunk: Buffer): Buffer {
    // Plain byte views: one element type through the hot loops keeps them monomorphic.
    const input = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    const n = input.length;
    // Each input byte makes at most two output bytes (an LF gains a CR, a field start an
    // apostrophe, a time a few); a value held from the last chunk adds at most its own length.
    const output = this.reserve(2 * n + 2 * maxTimeBytes);
    const kinds = this.kinds;
    const lastColumn = kinds.length - 1;
    let state = this.state;
    let column = this.column;
    let o = 0;
    let i = 0;
    while (i < n) {
      let byte = input[i]!;
      if (state === quoted) {
        const close = input.indexOf(quote, i);
        o = copyRun(input, i, close === -1 ? n : close, output, o);
        if (close === -1) break;
        state = quoteSeen;
        i = close + 1;
        continue;
      }
      if (state === quotedFirst) {
        if (byte === quote) {
          state = quoteSeen;
          i += 1;
          continue;
        }
        if (kinds[column] !== 'number' && startsFormula(byte)) output[o++] = apostrophe;
        state = quoted;
        continue;
      }
      if (state === quoteSeen) {
        output[o++] = quote;
        if (byte === quote) {
          output[o++] = quote;
          state = quoted;
          i += 1;
          continue;
        }
        if (byte !== comma && byte !== lineFeed)
          throw new CsvShapeError('a quoted value is followed by data');
      } else if (state === unquoted) {
        const end = fieldEnd(input, i);
        o = copyRun(input, i, end, output, o);
        if (end === n) break;
        i = end;
        byte = input[end]!;
      } else if (state === held) {
        const end = fieldEnd(input, i);
        const kind = kinds[column]!;
        if (this.heldLength + (end - i) > (kind === 'phone' ? maxPhoneBytes : maxTimeBytes)) {
          if (kind !== 'phone') throw new CsvShapeError('a time value is too long');
          // Too long for an E.164 number: the general rule applies (it starts with `+`).
          output[o++] = apostrophe;
          o = copyRun(this.heldBytes, 0, this.heldLength, output, o);
          o = copyRun(input, i, end, output, o);
          state = unquoted;
          if (end === n) break;
        } else {
          this.heldBytes.set(input.subarray(i, end), this.heldLength);
          this.heldLength += end - i;
          if (end === n) break;
          o = writeHeld(kind, this.heldBytes, 0, this.heldLength, output, o);
        }
        i = end;
        byte = input[end]!;
      } else if (byte !== comma && byte !== lineFeed) {
        // The first byte of a field.
        const kind = kinds[column]!;
        if (byte === quote) {
          output[o++] = quote;
          state = quotedFirst;
          i += 1;
          continue;
        }
        const end = fieldEnd(input, i + 1);
        if (kind === 'time' || (kind === 'phone' && byte === plus)) {
          if (end === n) {
            // The value goes on in the next chunk: hold what there is of it.
            const length = end - i;
            if (length > maxTimeBytes) throw new CsvShapeError('a time value is too long');
            this.heldBytes.set(input.subarray(i, end), 0);
            this.heldLength = length;
            state = held;
            break;
          }
          o = writeHeld(kind, input, i, end, output, o);
        } else {
          if (kind !== 'number' && startsFormula(byte)) output[o++] = apostrophe;
          o = copyRun(input, i, end, output, o);
          if (end === n) {
            state = unquoted;
            break;
          }
        }
        i = end;
        byte = input[end]!;
      }
      // A field ends here, at a comma or at the end of the row.
      if (byte === comma) {
        if (column === lastColumn) throw new CsvShapeError('a row has more columns than the export');
        output[o++] = comma;
        column += 1;
      } else {
        if (column !== lastColumn) throw new CsvShapeError('a row has fewer columns than the export');
        output[o++] = carriageReturn;
        output[o++] = lineFeed;
        column = 0;
        this.rowCount += 1;
      }
      state = fieldStart;
      i += 1;
    }
    this.state = state;
    this.column = column;
    this.slabUsed += o;
    return Buffer.from(output.buffer, output.byteOffset, o);
  }

  /**
   * Output space, carved from a slab rather than allocated per chunk (which costs more than
   * finishing the chunk). Handed-out parts stay valid: a full slab is replaced, never reused.
   */
  private reserve(size: number): Uint8Array {
    if (this.slab.length - this.slabUsed < size) {
      this.slab = new Uint8Array(Math.max(slabBytes, size));
      this.slabUsed = 0;
    }
    return this.slab.subarray(this.slabUsed, this.slabUsed + size);
  }
}

/** Where an unquoted field that goes on at `from` ends: its comma or LF, or the end of the chunk. */
const fieldEnd = (input: Uint8Array, from: number): number => {
  let at = from;
  while (at < input.length) {
    const byte = input[at]!;
    if (byte === comma || byte === lineFeed) break;
    at += 1;
  }
  return at;
};

const copyRun = (source: Uint8Array, start: number, end: number, output: Uint8Array, at: number): number => {
  let o = at;
  // Short runs are the common case (one field); a native copy only pays off for longer ones.
  if (end - start > 32) {
    output.set(source.subarray(start, end), o);
    return o + (end - start);
  }
  for (let k = start; k < end; k += 1) output[o++] = source[k]!;
  return o;
};

/** A whole time or `+`-number: an E.164 number as is, a time in ISO 8601 form. */
const writeHeld = (
  kind: ColumnKind,
  source: Uint8Array,
  start: number,
  end: number,
  output: Uint8Array,
  at: number,
): number => {
  let o = at;
  const length = end - start;
  if (kind === 'phone') {
    let e164 = length >= 2 && length <= maxPhoneBytes;
    for (let k = start + 1; e164 && k < end; k += 1) e164 = isDigit(source[k]!);
    if (!e164) output[o++] = apostrophe;
    return copyRun(source, start, end, output, o);
  }
  // `YYYY-MM-DD HH:MM:SS`, then `.f`, `.ff` or `.fff` when the milliseconds are not zero, then `+00`.
  const fraction = length - 22;
  if (
    length < 22 ||
    fraction === 1 ||
    fraction > 4 ||
    source[start + 10] !== 0x20 ||
    source[end - 3] !== plus ||
    source[end - 2] !== 0x30 ||
    source[end - 1] !== 0x30 ||
    (fraction > 0 && source[start + 19] !== 0x2e)
  ) {
    throw new CsvShapeError(
      `unexpected time text ${JSON.stringify(Buffer.from(source.subarray(start, end)).toString('latin1'))}`,
    );
  }
  o = copyRun(source, start, start + 10, output, o);
  output[o++] = 0x54; // T
  o = copyRun(source, start + 11, start + 19, output, o);
  output[o++] = 0x2e; // .
  for (let k = 0; k < 3; k += 1) output[o++] = k < fraction - 1 ? source[start + 20 + k]! : 0x30;
  output[o++] = 0x5a; // Z
  return o;
};
