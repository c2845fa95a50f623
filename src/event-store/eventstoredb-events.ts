/**
 * What the EventStoreDB client's answers mean in the port's terms: its errors (which of them say the
 * store cannot answer) and its recorded events.
 */
import {
  CancelledError,
  DeadlineExceededError,
  NotLeaderError,
  TimeoutError,
  UnavailableError,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { EventStoreUnavailableError, type RecordedEvent } from './event-store.ts';

// gRPC status codes that mean "no answer from the store" rather than "the store said no".
const unreachableStatusCodes = new Set([1 /* CANCELLED */, 4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);

const isUnreachable = (error: unknown): boolean =>
  error instanceof UnavailableError ||
  error instanceof DeadlineExceededError ||
  error instanceof CancelledError ||
  error instanceof TimeoutError ||
  error instanceof NotLeaderError ||
  (typeof error === 'object' &&
    error !== null &&
    'code' in error &&
    typeof error.code === 'number' &&
    unreachableStatusCodes.has(error.code));

export const translate = (error: unknown, what: string): unknown =>
  error instanceof EventStoreUnavailableError
    ? error
    : isUnreachable(error)
      ? new EventStoreUnavailableError(`event store unavailable during ${what}`, { cause: error })
      : error;

const utf8Decoder = new TextDecoder();

/**
 * The stored bytes as text. The client parses JSON and does not keep the bytes; calltrail (like the
 * client's own `jsonEvent`) writes exactly `JSON.stringify` of the value, and re-serializing the
 * parsed value gives those bytes back. Bytes the client could not parse as JSON come through as-is.
 */
const storedText = (value: unknown, isJson: boolean): string => {
  if (value === undefined) return '';
  if (value instanceof Uint8Array) return utf8Decoder.decode(value);
  if (!isJson && typeof value === 'string') return value;
  return JSON.stringify(value);
};

export const toRecordedEvent = (event: NonNullable<ResolvedEvent['event']>): RecordedEvent => {
  if (!event.position) throw new Error(`event ${event.id} in ${event.streamId} came without a position`);
  return {
    streamName: event.streamId,
    id: event.id,
    type: event.type,
    revision: event.revision,
    position: { commit: event.position.commit, prepare: event.position.prepare },
    data: event.data,
    metadata: event.metadata ?? null,
    storedData: storedText(event.data, event.isJson),
    storedMetadata: storedText(event.metadata, true),
    created: event.created,
  };
};
