/**
 * Checks on what callers hand the adapter, before anything reaches the database: a bad argument is
 * a programming error reported with the field at fault, never a half-written batch.
 */
import {
  JsonText,
  jsonTextOf,
  type ExpectedRevision,
  type GlobalPosition,
  type ProposedEvent,
  type ReadAllOptions,
  type StoredEventRangeOptions,
  type ReadEventHashesOptions,
  type ReadStreamOptions,
  type SubscribeToAllOptions,
} from '../event-store.ts';
import type { EncodedEvent } from './group-commit.ts';
import { maxStoredPosition } from './positions.ts';

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const invalid = (field: string, rule: string): TypeError => new TypeError(`${field} ${rule}`);

// Postgres text cannot hold NUL characters.
const isStoredText = (value: unknown): value is string =>
  typeof value === 'string' && value.length > 0 && !value.includes('\u0000');

export const validateStreamName = (streamName: unknown, field = 'streamName'): string => {
  if (!isStoredText(streamName)) throw invalid(field, 'must be a non-empty string without NUL characters');
  return streamName;
};

const toJson = (value: unknown, field: string): string => {
  if (value instanceof JsonText) {
    // Only given text can hold one (`JSON.stringify` escapes it); PostgreSQL's text refuses it. The
    // `json` column checks the rest.
    if (value.text.includes('\u0000')) throw invalid(field, 'must be JSON text without NUL characters');
    return value.text;
  }
  let text: string | undefined;
  try {
    text = jsonTextOf(value);
  } catch (error) {
    throw invalid(
      field,
      `must be JSON-serializable (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (text === undefined) throw invalid(field, 'must be JSON-serializable');
  return text;
};

export const encodeEvents = (events: unknown): EncodedEvent[] => {
  if (!Array.isArray(events) || events.length === 0) throw invalid('events', 'must be a non-empty array');
  return (events as ProposedEvent[]).map((event, index) => {
    const field = `events[${index}]`;
    if (typeof event !== 'object' || event === null) throw invalid(field, 'must be an object');
    if (typeof event.id !== 'string' || !uuidPattern.test(event.id))
      throw invalid(`${field}.id`, 'must be a UUID');
    if (!isStoredText(event.type)) {
      throw invalid(`${field}.type`, 'must be a non-empty string without NUL characters');
    }
    return {
      id: event.id.toLowerCase(),
      type: event.type,
      data: toJson(event.data, `${field}.data`),
      metadata: toJson(event.metadata, `${field}.metadata`),
    };
  });
};

export const validateExpectedRevision = (expected: unknown): ExpectedRevision => {
  if (expected === 'no-stream' || expected === 'stream-exists' || expected === 'any') return expected;
  if (typeof expected === 'bigint' && expected >= 0n) return expected;
  throw invalid('expectedRevision', "must be 'no-stream', 'stream-exists', 'any' or a non-negative bigint");
};

const validatePosition = (position: unknown, field: string): GlobalPosition | undefined => {
  if (position === undefined) return undefined;
  const { commit, prepare } = (typeof position === 'object' && position !== null ? position : {}) as {
    commit?: unknown;
    prepare?: unknown;
  };
  if (typeof commit !== 'bigint' || typeof prepare !== 'bigint' || commit < 0n || prepare < 0n) {
    throw invalid(field, 'must be a position with non-negative bigint commit and prepare');
  }
  return { commit, prepare };
};

const validateMaxCount = (maxCount: unknown, field: string): number => {
  if (maxCount === undefined) return Number.POSITIVE_INFINITY;
  if (typeof maxCount !== 'number' || !Number.isSafeInteger(maxCount) || maxCount < 0) {
    throw invalid(field, 'must be a non-negative integer');
  }
  return maxCount;
};

const validatePrefixes = (prefixes: unknown, field: string): readonly string[] => {
  if (!Array.isArray(prefixes) || prefixes.length === 0) throw invalid(field, 'must be a non-empty array');
  prefixes.forEach((prefix, index) => {
    // An empty prefix would match every stream; both adapters refuse it.
    if (!isStoredText(prefix))
      throw invalid(`${field}[${index}]`, 'must be a non-empty string without NUL characters');
  });
  return prefixes as readonly string[];
};

const validateDirection = (value: unknown): 'forwards' | 'backwards' => {
  const direction = value ?? 'forwards';
  if (direction !== 'forwards' && direction !== 'backwards') {
    throw invalid('direction', "must be 'forwards' or 'backwards'");
  }
  return direction;
};

export const validateReadStreamOptions = (options: ReadStreamOptions | undefined) => {
  const direction = validateDirection(options?.direction);
  const fromRevision = options?.fromRevision ?? (direction === 'forwards' ? 0n : maxStoredPosition);
  if (typeof fromRevision !== 'bigint' || fromRevision < 0n) {
    throw invalid('fromRevision', 'must be a non-negative bigint');
  }
  return {
    // Backwards from past the largest number a bigint column holds is backwards from the end.
    fromRevision:
      direction === 'backwards' && fromRevision > maxStoredPosition ? maxStoredPosition : fromRevision,
    maxCount: validateMaxCount(options?.maxCount, 'maxCount'),
    direction,
  };
};

export const validateReadAllOptions = (options: ReadAllOptions) => {
  const direction = validateDirection(options.direction);
  return {
    from: validatePosition(options.from, 'from'),
    // Every stream name starts with the empty string.
    streamPrefixes:
      options.streamPrefixes === 'every-stream'
        ? ['']
        : validatePrefixes(options.streamPrefixes, 'streamPrefixes'),
    maxCount: validateMaxCount(options.maxCount, 'maxCount'),
    direction,
  };
};

export const validateSubscribeOptions = (options: SubscribeToAllOptions) => ({
  after: validatePosition(options.after, 'after'),
  streamPrefixes: validatePrefixes(options.streamPrefixes, 'streamPrefixes'),
});

/** The most positions one `readEventHashes` call may look at: a bound on one query's result. */
export const maxHashesLimit = 100_000;

export const validateStoredEventRangeOptions = (options: StoredEventRangeOptions) => ({
  after: validatePosition(options.after, 'after'),
  last: validatePosition(options.last, 'last') ?? invalidLast(),
  streamPrefixes: validatePrefixes(options.streamPrefixes, 'streamPrefixes'),
});

const invalidLast = (): never => {
  throw invalid('last', 'is required');
};

export const validateReadEventHashesOptions = (options: ReadEventHashesOptions) => {
  const { limit } = options;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > maxHashesLimit) {
    throw invalid('limit', `must be an integer from 1 to ${maxHashesLimit}`);
  }
  return {
    after: validatePosition(options.after, 'after'),
    streamPrefixes: validatePrefixes(options.streamPrefixes, 'streamPrefixes'),
    limit,
  };
};
