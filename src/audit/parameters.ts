/**
 * Request parameters the audit API shares: time ranges, page sizes, cursors, global positions, call
 * ids. Each is declared once as a TypeBox schema (so the OpenAPI document shows it) together with the
 * checks a schema cannot express (a range's order, a cursor's integrity), which fail with an `InvalidArgumentError`
 * naming the field (a 400 over HTTP), like Fastify's own validation errors do (`querystring/from`).
 */
import { createHash } from 'node:crypto';
import Type from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { parsePosition, type GlobalPosition } from '../event-store/event-store.ts';
import { callIdDescription, callIdPattern } from '../flireo/schemas.ts';
import { InvalidArgumentError, invalidArgument } from '../errors.ts';
import { parseIsoDateTime } from '../iso-date-time.ts';

/**
 * A JSON-schema `type: [T, 'null']` rather than `anyOf`: the response serializer handles it without
 * a per-value schema match, and OpenAPI 3.1 reads it the same way.
 */
export const nullable = <T extends Type.TString | Type.TNumber | Type.TInteger | Type.TBoolean>(
  schema: T,
): Type.TUnsafe<Type.Static<T> | null> => {
  const { type, ...rest } = schema as unknown as { type: string } & Record<string, unknown>;
  return Type.Unsafe<Type.Static<T> | null>({ ...rest, type: [type, 'null'] });
};

export const isoDateTimeExample = '2025-03-01T00:00:00.000Z';

/** An ISO 8601 / RFC 3339 date-time with a zone (`Z` or an offset). */
export const IsoDateTime = (description: string) =>
  Type.String({ format: 'date-time', description, examples: [isoDateTimeExample] });

/** An exact-match text filter; control characters cannot be in a stored value (nor in SQL text). */
export const TextFilter = (description: string) =>
  Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\u0000-\\u001f]+$', description });

export const maxLimit = 1000;
export const defaultLimit = 100;

/**
 * Text with a strict pattern rather than an integer schema: query conversion would otherwise turn
 * `1.5` into 1 and `0x10` into 16 without a word.
 */
export const Limit = Type.String({
  pattern: '^[0-9]{1,9}$',
  description: `Page size, an integer from 1 to ${maxLimit} (default ${defaultLimit})`,
  examples: ['100'],
});

export const parseLimit = (text: string | undefined, field = 'querystring/limit'): number => {
  if (text === undefined) return defaultLimit;
  const limit = Number(text);
  if (!/^[0-9]{1,9}$/.test(text) || limit < 1 || limit > maxLimit) {
    throw invalidArgument(field, `must be an integer from 1 to ${maxLimit}`);
  }
  return limit;
};

/**
 * A call id as the webhook accepts it (it becomes part of a stream name): anything else cannot name
 * an archived call, so it is a bad request rather than an unknown call.
 */
export const CallId = Type.String({
  pattern: callIdPattern,
  description: `The call session id, as Flireo sent it: ${callIdDescription}`,
});

export const positionPatternText = '^[0-9]{1,20}/[0-9]{1,20}$';

export const PositionText = (description: string) =>
  Type.String({ pattern: positionPatternText, description, examples: ['1234/1234'] });

/** Half-open: `from` inclusive, `to` exclusive, so consecutive windows never count an event twice. */
export interface TimeRange {
  readonly from: Date | undefined;
  readonly to: Date | undefined;
}

/** Parses an ISO 8601 date-time with a zone; anything else is a 400 naming `field`. */
export const parseDateTime = (text: string | undefined, field: string): Date | undefined => {
  if (text === undefined) return undefined;
  // A zone is required, so a time never depends on the server's or the shell's locale.
  const at = parseIsoDateTime(text);
  if (at === undefined) {
    throw invalidArgument(
      field,
      `must be an ISO 8601 date-time with a time zone, e.g. ${isoDateTimeExample}`,
    );
  }
  return at;
};

/** Parses `from`/`to`; a range whose `from` is not before its `to` is a 400 naming `from`. */
export const parseTimeRange = (
  query: { readonly from?: string | undefined; readonly to?: string | undefined },
  fieldPrefix = 'querystring/',
): TimeRange => {
  const from = parseDateTime(query.from, `${fieldPrefix}from`);
  const to = parseDateTime(query.to, `${fieldPrefix}to`);
  if (from && to && from.getTime() >= to.getTime()) {
    throw new InvalidArgumentError([
      {
        field: `${fieldPrefix}from`,
        message: `must be before to (the range is [from, to), to exclusive); got from=${from.toISOString()} to=${to.toISOString()}`,
      },
    ]);
  }
  return { from, to };
};

/** Parses a `commit/prepare` position; anything that is not two unsigned 64-bit integers is a 400. */
export const parsePositionParameter = (
  text: string | undefined,
  field: string,
): GlobalPosition | undefined => {
  if (text === undefined) return undefined;
  const position = parsePosition(text);
  if (!position) {
    throw new InvalidArgumentError([
      { field, message: 'must be a global position "<commit>/<prepare>" of unsigned 64-bit integers' },
    ]);
  }
  return position;
};

/**
 * Opaque page cursors: base64url of a small JSON array plus a short checksum, so a cursor that was
 * garbled, truncated or edited by hand is refused (400) instead of silently moving the page. It is
 * not a secret: a cursor only says where a page starts, and every page is subject to the same
 * authorization.
 */
const cursorChecksum = (payload: string): string =>
  createHash('sha256').update(payload).digest('base64url').slice(0, 8);

export const encodeCursor = (key: unknown): string => {
  const payload = JSON.stringify(key);
  return Buffer.from(`${cursorChecksum(payload)}${payload}`, 'utf8').toString('base64url');
};

const validators = new WeakMap<Type.TSchema, Validator>();

/**
 * `schema` compiled, once per schema: checking with it costs far less than walking the schema on
 * every request (a page's query, every cursor after the first page).
 */
export const compiledSchema = (schema: Type.TSchema): Validator => {
  let validator = validators.get(schema);
  if (validator === undefined) {
    validator = Compile(schema);
    validators.set(schema, validator);
  }
  return validator;
};

export const decodeCursor = <T extends Type.TSchema>(
  text: string | undefined,
  schema: T,
  field = 'querystring/cursor',
): Type.Static<T> | undefined => {
  if (text === undefined) return undefined;
  const invalid = () => invalidArgument(field, 'is not a cursor this API issued');
  // Node's base64url decoder skips characters it does not know; a strict alphabet check does not.
  if (!/^[A-Za-z0-9_-]{12,2048}$/.test(text)) throw invalid();
  const bytes = Buffer.from(text, 'base64url');
  // Unused low bits in the last character would otherwise let two spellings decode alike.
  if (bytes.toString('base64url') !== text) throw invalid();
  const decoded = bytes.toString('utf8');
  const checksum = decoded.slice(0, 8);
  const payload = decoded.slice(8);
  if (cursorChecksum(payload) !== checksum) throw invalid();
  let key: unknown;
  try {
    key = JSON.parse(payload);
  } catch {
    throw invalid();
  }
  if (!compiledSchema(schema).Check(key)) throw invalid();
  return key as Type.Static<T>;
};

/** A date-time inside a cursor must be exactly what `toISOString` produced. */
export const parseCursorTime = (text: string, field = 'querystring/cursor'): Date => {
  const at = new Date(text);
  if (Number.isNaN(at.getTime()) || at.toISOString() !== text) {
    throw invalidArgument(field, 'is not a cursor this API issued');
  }
  return at;
};
