/**
 * The terminations CSV: one row per ended call, from the `terminations` read model. The HTTP export
 * (`GET /exports/terminations.csv`) and `calltrail export terminations` both stream it from here.
 *
 * PostgreSQL writes the CSV (`COPY (SELECT ...) TO STDOUT`, quoting and escaping included) and
 * Node finishes it in one streaming pass over the bytes (`TerminationsCsvFinisher`): constant
 * memory at any size, and no per-row work in the query, which would cost the server more than the
 * copy itself.
 *
 * The file (RFC 4180): UTF-8 without a byte-order mark, a header row, CRLF row ends, a value quoted
 * when it holds a comma, quote, CR or LF (quotes doubled; line breaks inside a value kept as
 * stored), a NULL as an empty field and an empty string as `""`. Rows ordered by `ended_at`, then
 * `call_id`. Times are ISO 8601 UTC with milliseconds and `Z`. Columns, in order:
 *
 * | column | content |
 * |---|---|
 * | call_id | the call session id |
 * | outcome | `ended` or `ended-with-debugging` |
 * | ended_reason | why the call ended, as Flireo said (free text) |
 * | debugging_artifact | Flireo's debugging artifact (free text) |
 * | started_at | when the call started, if known |
 * | ended_at | when the call ended |
 * | duration_seconds | the call's length in seconds, if known |
 * | caller | the calling number (E.164) |
 * | assistant | the assistant's number (E.164) |
 *
 * Formula injection: a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and some also
 * after a leading tab or CR) as a formula. Every text cell starting with one of those characters
 * gets a leading `'`, which spreadsheets show as text and do not evaluate. The one exception is a
 * phone number in E.164 form (`+` then 1 to 20 digits, as in `+31612345678`) in the `caller` and
 * `assistant` columns: it is kept verbatim, because `+` and digits cannot form a function call or
 * an external reference, and an auditor must see the number exactly as Flireo sent it. Any other
 * value in those columns follows the general rule. Times and `duration_seconds` are not text: a
 * time never starts with a trigger, and a number (even a negative one) is a number to a
 * spreadsheet, not a formula.
 */
import { Readable, Transform, type TransformCallback, pipeline } from 'node:stream';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

export const terminationOutcomes = ['ended', 'ended-with-debugging'] as const;
export type TerminationOutcome = (typeof terminationOutcomes)[number];

export interface TerminationsFilter {
  /** `ended_at` inclusive. */
  readonly from?: Date | undefined;
  /** `ended_at` exclusive. */
  readonly to?: Date | undefined;
  readonly outcome?: TerminationOutcome | undefined;
  readonly assistant?: string | undefined;
}

export const terminationsCsvColumns = [
  'call_id',
  'outcome',
  'ended_reason',
  'debugging_artifact',
  'started_at',
  'ended_at',
  'duration_seconds',
  'caller',
  'assistant',
] as const;

/** How each column's bytes are finished (see the module comment). */
type ColumnKind = 'text' | 'phone' | 'time' | 'number';

const columnKinds: Record<(typeof terminationsCsvColumns)[number], ColumnKind> = {
  call_id: 'text',
  outcome: 'text',
  ended_reason: 'text',
  debugging_artifact: 'text',
  started_at: 'time',
  ended_at: 'time',
  duration_seconds: 'number',
  caller: 'phone',
  assistant: 'phone',
};

/** The filter as SQL; values are inlined as escaped literals because COPY takes no parameters. */
const whereClause = (filter: TerminationsFilter): string => {
  const conditions = [
    filter.from && `ended_at >= ${pg.escapeLiteral(filter.from.toISOString())}::timestamptz`,
    filter.to && `ended_at < ${pg.escapeLiteral(filter.to.toISOString())}::timestamptz`,
    filter.outcome && `outcome = ${pg.escapeLiteral(filter.outcome)}`,
    filter.assistant !== undefined && `assistant = ${pg.escapeLiteral(filter.assistant)}`,
  ].filter((condition): condition is string => typeof condition === 'string');
  return conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
};

export const terminationsCopyStatement = (filter: TerminationsFilter): string =>
  `COPY (SELECT ${terminationsCsvColumns.join(', ')} FROM terminations ${whereClause(filter)} ` +
  `ORDER BY ended_at, call_id) TO STDOUT WITH (FORMAT csv, ENCODING 'UTF8')`;

/**
 * The session settings the finisher relies on: times as `YYYY-MM-DD HH:MM:SS[.fff]+00`, floats in
 * their shortest exact form. Set for the export's transaction only. An export streams for as long as
 * its rows take to read, so the pool's statement bound does not apply to it.
 */
const exportSettings =
  "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL extra_float_digits = 1; " +
  'SET LOCAL statement_timeout = 0';

/**
 * pg's client-side query timeout cannot be lifted per query (0 means "the pool's"), and a COPY stream
 * never clears its timer: it is unset on the connection while the COPY is submitted.
 */
const withoutQueryTimeout = <T>(client: pg.PoolClient, submit: () => T): T => {
  const parameters = (client as unknown as { connectionParameters: { query_timeout?: number } })
    .connectionParameters;
  const saved = parameters.query_timeout;
  delete parameters.query_timeout;
  try {
    return submit();
  } finally {
    if (saved !== undefined) parameters.query_timeout = saved;
  }
};

/** How many rows the export will have (for progress bars); the export itself may see more. */
export const countTerminations = async (pool: pg.Pool, filter: TerminationsFilter): Promise<number> => {
  const result = await pool.query<{ count: string }>(
    `SELECT count(*)::text AS count FROM terminations ${whereClause(filter)}`,
  );
  return Number(result.rows[0]?.count ?? 0);
};

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

/**
 * Finishes COPY's CSV in one pass over the bytes: LF row ends become CRLF, times are rewritten to
 * ISO 8601 with milliseconds and `Z`, and formula triggers get their apostrophe. It keeps COPY's
 * quoting (a value holding a comma, quote, CR or LF is quoted, quotes doubled) and never re-parses
 * a value into a string, so it runs at memory speed beside PostgreSQL; per-row expressions in the
 * query (`to_char`, `CASE`) cost the server more than the whole copy. Chunks may split rows,
 * values and doubled quotes anywhere: the state carries over, and only a time or a `+`-number is
 * held back, until its field ends.
 */
export class TerminationsCsvFinisher extends Transform {
  private readonly kinds: readonly ColumnKind[] = terminationsCsvColumns.map((column) => columnKinds[column]);
  private state: State = fieldStart;
  private column = 0;
  private rowCount = 0;
  private readonly heldBytes = new Uint8Array(maxTimeBytes);
  private heldLength = 0;
  private slab = new Uint8Array(0);
  private slabUsed = 0;

  constructor() {
    super();
    this.push(Buffer.from(`${terminationsCsvColumns.join(',')}\r\n`, 'utf8'));
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

export type ExportOutcome = 'completed' | 'aborted' | 'failed';

export interface TerminationsCsv {
  /** The CSV bytes; destroying it stops the query and frees its connection. */
  readonly stream: Readable;
  /** Data rows written so far. */
  rows(): number;
  /** Settles once the connection is back in the pool (or closed), with how the export ended. */
  readonly finished: Promise<{
    readonly outcome: ExportOutcome;
    readonly rows: number;
    readonly error?: unknown;
  }>;
}

/**
 * Starts the export on a connection of its own. The connection goes back to the pool when the CSV
 * has been read to the end; if the reader stops early or the query fails, the connection is closed
 * instead, because it would still be in COPY mode.
 */
export const openTerminationsCsv = async (
  pool: pg.Pool,
  filter: TerminationsFilter,
): Promise<TerminationsCsv> => {
  const client = await pool.connect();
  const finisher = new TerminationsCsvFinisher();
  let copy;
  try {
    await client.query(`BEGIN READ ONLY; ${exportSettings}`);
    copy = withoutQueryTimeout(client, () => client.query(copyTo(terminationsCopyStatement(filter))));
  } catch (error) {
    client.release(error instanceof Error ? error : true);
    throw error;
  }
  const finished = new Promise<{ outcome: ExportOutcome; rows: number; error?: unknown }>((resolve) => {
    pipeline(copy, finisher, (error) => {
      if (!error) {
        client.query('COMMIT').then(
          () => {
            client.release();
            resolve({ outcome: 'completed', rows: finisher.rows });
          },
          (commitError: unknown) => {
            client.release(commitError instanceof Error ? commitError : true);
            resolve({ outcome: 'failed', rows: finisher.rows, error: commitError });
          },
        );
        return;
      }
      client.release(error);
      const aborted = error.code === 'ERR_STREAM_PREMATURE_CLOSE';
      resolve({ outcome: aborted ? 'aborted' : 'failed', rows: finisher.rows, error });
    });
  });
  return { stream: finisher, rows: () => finisher.rows, finished };
};
