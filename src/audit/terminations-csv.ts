/**
 * The terminations CSV: one row per ended call, from the `terminations` read model. The HTTP export
 * (`GET /exports/terminations.csv`) and `calltrail export terminations` both stream it from here.
 *
 * PostgreSQL writes the CSV (`COPY (SELECT ...) TO STDOUT`, quoting and escaping included) and
 * Node finishes it in one streaming pass over the bytes (`csv-finisher.ts`): constant
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
import { Readable, pipeline } from 'node:stream';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { terminations, terminationsExportColumns } from '../../projections/terminations/read-model.ts';
import { tableName } from '../database/sql.ts';
import { CopyCsvFinisher, type CsvColumn } from './csv-finisher.ts';

export { CsvShapeError } from './csv-finisher.ts';

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

/** The export's columns, in order: the `terminations` table's, without the projector's bookkeeping. */
export const terminationsCsvColumns: readonly string[] = terminationsExportColumns.map(
  (column) => column.name,
);

/** How each column's bytes are finished (see the module comment), from its type. */
const terminationsCsvLayout: readonly CsvColumn[] = terminationsExportColumns.map((column) => ({
  name: column.name,
  kind:
    column === terminations.caller || column === terminations.assistant
      ? 'phone'
      : column.getSQLType().startsWith('timestamp')
        ? 'time'
        : column.getSQLType() === 'double precision'
          ? 'number'
          : 'text',
}));

/** The finisher for this export's columns. */
export class TerminationsCsvFinisher extends CopyCsvFinisher {
  constructor() {
    super(terminationsCsvLayout);
  }
}

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
  `COPY (SELECT ${terminationsCsvColumns.join(', ')} FROM ${tableName(terminations)} ${whereClause(filter)} ` +
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
    `SELECT count(*)::text AS count FROM ${tableName(terminations)} ${whereClause(filter)}`,
  );
  return Number(result.rows[0]?.count ?? 0);
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
