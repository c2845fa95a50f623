/**
 * Multi-row writes over `unnest` arrays (one round trip and one plan per batch instead of one per
 * row), with the column list taken from the drizzle table, so a table's columns are declared once.
 *
 * Table names stay unqualified on purpose: the transaction's `search_path` decides whether a
 * statement writes the live read models or a rebuild's shadow copies.
 */
import { getTableColumns, getTableName, type Table } from 'drizzle-orm';
import type pg from 'pg';

type Encoded = string | number | boolean | null;

export interface UnnestColumn<Row> {
  readonly name: string;
  /** The Postgres element type of the array parameter (`text`, `timestamptz`, `numeric`, ...). */
  readonly type: string;
  readonly value: (row: Row) => Encoded;
}

// Element types whose text form never holds an array literal's special characters (quotes,
// backslashes, commas, braces, spaces), so they go into the literal unquoted.
const plainTypes = new Set(['uuid', 'int2', 'int4', 'int8', 'numeric', 'float8', 'bool', 'timestamptz']);

const specialCharacters = /["\\]/;
const escaped = (text: string): string =>
  specialCharacters.test(text) ? text.replace(/["\\]/g, '\\$&') : text;

/**
 * A Postgres array literal of values of the element type `type` (`text`, `timestamptz`, `int4`,
 * ...), for a `$n::type[]` parameter. Built here rather than by node-postgres, which quotes and
 * regex-escapes every element whatever its type: on the projector's hot path that was a large share
 * of the time spent per row. Joined once: appending element by element builds a chain of partial
 * strings per element, which was most of what a batch allocated here.
 */
export const arrayParameter = (type: string, values: readonly Encoded[]): string => {
  if (plainTypes.has(type)) {
    return `{${values.map((value) => (value === null ? 'NULL' : String(value))).join(',')}}`;
  }
  if (values.length === 0) return '{}';
  // Without NULLs, the quotes go in with the separators rather than around each element.
  if (!values.includes(null)) return `{"${values.map((value) => escaped(String(value))).join('","')}"}`;
  return `{${values.map((value) => (value === null ? 'NULL' : `"${escaped(String(value))}"`)).join(',')}}`;
};

/**
 * A JSON column's values as one JSON array of their own text: no escaping at all (inside an array
 * literal every quote of the JSON would be escaped), and PostgreSQL takes the elements back out in
 * order. A null value is SQL NULL, as in the other columns.
 */
const jsonArray = <Row>(column: UnnestColumn<Row>, rows: readonly Row[]): string => {
  const elements = new Array<string>(rows.length);
  for (let index = 0; index < rows.length; index += 1) {
    const value = column.value(rows[index]!);
    elements[index] = value === null ? 'null' : String(value);
  }
  return `[${elements.join(',')}]`;
};

const jsonElements = (parameter: string) =>
  `ARRAY(SELECT CASE WHEN json_typeof(e.value) = 'null' THEN NULL ELSE e.value END ` +
  `FROM json_array_elements(${parameter}::json) WITH ORDINALITY AS e(value, n) ORDER BY e.n)`;

/** `INSERT INTO table (...) SELECT * FROM unnest($1::type[], ...) <onConflict>`, one array per column. */
export const unnestInsert = <Row>(
  table: string,
  columns: readonly UnnestColumn<Row>[],
  rows: readonly Row[],
  onConflict: string,
): pg.QueryConfig => ({
  text:
    `INSERT INTO ${table} (${columns.map((column) => column.name).join(', ')}) ` +
    `SELECT * FROM unnest(${columns
      .map((column, index) =>
        column.type === 'json' ? jsonElements(`$${index + 1}`) : `$${index + 1}::${column.type}[]`,
      )
      .join(', ')}) ` +
    onConflict,
  values: columns.map((column) =>
    column.type === 'json' ? jsonArray(column, rows) : arrayParameter(column.type, rows.map(column.value)),
  ),
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

// A time is sent as ISO 8601 text (rows may carry it as text already: making a Date only to format
// it again costs more than the rest of the row); a bigint as text, which node-postgres would
// otherwise round through a JS number; JSON as its text; bytes in bytea's hex form.
const asIs = (value: unknown): Encoded => value as Encoded;
const timeText = (value: unknown): Encoded =>
  value === null ? null : value instanceof Date ? value.toISOString() : (value as string);
const bigintOrNullText = (value: unknown): Encoded => (value === null ? null : (value as bigint).toString());
const jsonText = (value: unknown): Encoded => (value === null ? null : JSON.stringify(value));
const byteaText = (value: unknown): Encoded =>
  value === null ? null : `\\x${(value as Buffer).toString('hex')}`;

/** The array element type and encoding for each SQL type the read models use. */
const encodings: Record<string, { readonly type: string; readonly encode: (value: unknown) => Encoded }> = {
  text: { type: 'text', encode: asIs },
  uuid: { type: 'uuid', encode: asIs },
  boolean: { type: 'bool', encode: asIs },
  smallint: { type: 'int2', encode: asIs },
  integer: { type: 'int4', encode: asIs },
  'double precision': { type: 'float8', encode: asIs },
  bigint: { type: 'int8', encode: bigintOrNullText },
  numeric: { type: 'numeric', encode: bigintOrNullText },
  timestamp: { type: 'timestamptz', encode: timeText },
  json: { type: 'json', encode: jsonText },
  bytea: { type: 'bytea', encode: byteaText },
};

const encodingOf = (sqlType: string) => {
  // `timestamp (3) with time zone`, `numeric(20, 0)`: the type without its modifiers.
  const base = sqlType.replace(/\s*\(.*$/, '');
  const encoding = encodings[base];
  if (encoding === undefined) throw new Error(`no unnest encoding for SQL type ${sqlType}`);
  if (base === 'timestamp' && !sqlType.endsWith('with time zone')) {
    throw new Error(`no unnest encoding for SQL type ${sqlType}`);
  }
  return encoding;
};

/**
 * The table's columns as unnest columns, each read from the row property of the same name as the
 * drizzle column, except those in `omit` (e.g. a serial key the database assigns).
 */
export const unnestColumnsOf = <
  T extends Table,
  Omitted extends keyof T['$inferSelect'] & string = never,
  Row extends object = Omit<T['$inferSelect'], Omitted>,
>(
  table: T,
  omit: readonly Omitted[] = [],
): readonly UnnestColumn<Row>[] =>
  Object.entries(getTableColumns(table))
    // A generated column is PostgreSQL's to fill: never written.
    .filter(([key, column]) => column.generated === undefined && !(omit as readonly string[]).includes(key))
    .map(([key, column]) => {
      const { type, encode } = encodingOf(column.getSQLType());
      return {
        name: column.name,
        type,
        value: (row: Row) => encode((row as Record<string, unknown>)[key] ?? null),
      };
    });

/** The table's name, for statements that write it (unqualified; see the module comment). */
export const tableName = (table: Table): string => getTableName(table);

/** A bigint travels as text: node-postgres would otherwise round it through a JS number. */
export const bigintText = (value: bigint): string => value.toString();

/** Quotes an identifier we built ourselves (schema names); never user input. */
export const quoteIdentifier = (name: string): string => `"${name.replace(/"/g, '""')}"`;
