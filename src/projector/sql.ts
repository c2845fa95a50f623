/**
 * The SQL the projector writes with: multi-row statements over `unnest` arrays (one round trip
 * and one plan per batch instead of one per row), plus the Postgres facts the runner decides on.
 *
 * Table names stay unqualified on purpose: the transaction's `search_path` decides whether a
 * statement writes the live read models or a rebuild's shadow copies.
 */
import type pg from 'pg';

export interface UnnestColumn<Row> {
  readonly name: string;
  /** The Postgres element type of the array parameter (`text`, `timestamptz`, `numeric`, ...). */
  readonly type: string;
  readonly value: (row: Row) => string | number | boolean | null;
}

// Element types whose text form never holds an array literal's special characters (quotes,
// backslashes, commas, braces, spaces), so they go into the literal unquoted.
const plainTypes = new Set(['uuid', 'int2', 'int4', 'int8', 'numeric', 'float8', 'bool', 'timestamptz']);

const quoted = (text: string): string => `"${/["\\]/.test(text) ? text.replace(/["\\]/g, '\\$&') : text}"`;

/**
 * A Postgres array literal of the column's values. Built here rather than by node-postgres, which
 * quotes and regex-escapes every element whatever its type: on the projector's hot path that was a
 * large share of the time spent per row.
 */
const arrayLiteral = <Row>(column: UnnestColumn<Row>, rows: readonly Row[]): string => {
  const quote = !plainTypes.has(column.type);
  let literal = '{';
  for (let index = 0; index < rows.length; index += 1) {
    const value = column.value(rows[index]!);
    if (index > 0) literal += ',';
    literal += value === null ? 'NULL' : quote ? quoted(String(value)) : String(value);
  }
  return `${literal}}`;
};

/** `INSERT INTO table (...) SELECT * FROM unnest($1::type[], ...) <onConflict>`, one array per column. */
export const unnestInsert = <Row>(
  table: string,
  columns: readonly UnnestColumn<Row>[],
  rows: readonly Row[],
  onConflict: string,
): pg.QueryConfig => ({
  text:
    `INSERT INTO ${table} (${columns.map((column) => column.name).join(', ')}) ` +
    `SELECT * FROM unnest(${columns.map((column, index) => `$${index + 1}::${column.type}[]`).join(', ')}) ` +
    onConflict,
  values: columns.map((column) => arrayLiteral(column, rows)),
});

/** `ON CONFLICT (key) DO UPDATE SET` every other column to the proposed value. */
export const updateAllOnConflict = (
  key: string,
  columns: readonly { readonly name: string }[],
  where = '',
): string =>
  `ON CONFLICT (${key}) DO UPDATE SET ` +
  columns
    .filter((column) => column.name !== key)
    .map((column) => `${column.name} = excluded.${column.name}`)
    .join(', ') +
  (where === '' ? '' : ` WHERE ${where}`);

export const isoOrNull = (date: Date | null): string | null => (date === null ? null : date.toISOString());

/** A bigint travels as text: node-postgres would otherwise round it through a JS number. */
export const bigintText = (value: bigint): string => value.toString();

const sqlStateOf = (error: unknown): string | undefined =>
  typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string'
    ? error.code
    : undefined;

/**
 * The statement failed because of the values it carried (data exceptions, constraint violations):
 * the same statement will fail again, so the event behind it is poison. Anything else (connection
 * lost, server shutting down, lock timeout) is worth retrying.
 */
export const isDataError = (error: unknown): boolean => {
  const code = sqlStateOf(error);
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'));
};

export const describeError = (error: unknown): string => {
  const code = sqlStateOf(error);
  const message = error instanceof Error ? error.message : String(error);
  return (code === undefined ? message : `${code}: ${message}`).slice(0, 2000);
};

/** Quotes an identifier we built ourselves (schema names); never user input. */
export const quoteIdentifier = (name: string): string => `"${name.replace(/"/g, '""')}"`;
