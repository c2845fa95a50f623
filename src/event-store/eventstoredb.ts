/**
 * The EventStoreDB (KurrentDB) adapter of the event-store port, over `@eventstore/db-client`.
 *
 * Choices that matter:
 * - appends keep the client's default `throwOnAppendFailure` (with it off, BatchAppend reports a
 *   bogus revision) and turn `WrongExpectedVersionError` into the port's result;
 * - `$all` holds system events, so every `$all` read and subscription is narrowed by the caller's
 *   stream-name prefixes (server-side for subscriptions; the client cannot filter reads, so those
 *   are filtered here);
 * - the client never gives up on a dead server by itself (reads have no deadline), so every call is
 *   bounded here and a store that cannot answer becomes `EventStoreUnavailableError`;
 * - positions stay bigint end to end.
 *
 * Its subscriptions are in `eventstoredb-subscription.ts`; what the client's errors and events mean
 * in the port's terms, in `eventstoredb-events.ts`.
 */
import {
  ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  WrongExpectedVersionError,
  AccessDeniedError,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AppendExpectedRevision,
  type StreamingRead,
} from '@eventstore/db-client';
import {
  EventStoreAccessDeniedError,
  EventStoreCredentialsError,
  EventStoreUnavailableError,
  JsonText,
  comparePositions,
  type AppendResult,
  type EventStore,
  type ExpectedRevision,
  type GlobalPosition,
  type ProposedEvent,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeToAllOptions,
  type Subscription,
} from './event-store.ts';
import { withDeadline } from './deadline.ts';
import { toRecordedEvent, translate } from './eventstoredb-events.ts';
import { openSubscription } from './eventstoredb-subscription.ts';

export interface EventStoreDbOptions {
  /** Upper bound on any single call (and on the wait for each read or subscription message). */
  readonly timeoutMs: number;
}

/** The connection string is unusable; the message says why. */
export class EventStoreDbConnectionError extends Error {
  override readonly name = 'EventStoreDbConnectionError';
}

/** The client only knows `esdb` schemes; KurrentDB's are the same protocol. */
export const toClientConnectionString = (url: string): string =>
  url.replace(/^kurrentdb(\+discover)?:\/\//i, (_match, discover: string | undefined) =>
    discover ? 'esdb+discover://' : 'esdb://',
  );

/** The client reads option names case-insensitively, ignoring `-` and `_`. */
const disablesThrowOnAppendFailure = (url: string): boolean =>
  (url.split('?')[1] ?? '')
    .split('&')
    .map((pair) => pair.split('='))
    .some(
      ([key, value]) =>
        key?.trim().toLowerCase().replace(/[_-]/g, '') === 'throwonappendfailure' &&
        value?.trim().toLowerCase() === 'false',
    );

const toClientExpectedRevision = (expected: ExpectedRevision): AppendExpectedRevision => {
  if (typeof expected === 'bigint') {
    if (expected < 0n)
      throw new RangeError(`expectedRevision must be a non-negative revision, got ${expected}`);
    return expected;
  }
  switch (expected) {
    case 'no-stream':
      return NO_STREAM;
    case 'stream-exists':
      return STREAM_EXISTS;
    case 'any':
      return ANY;
  }
};

const utf8 = new TextEncoder();

/** The value of text given as `JsonText`: the server keeps bytes, so they are checked here. */
const parsedJsonText = (value: JsonText, field: string): unknown => {
  try {
    return JSON.parse(value.text) as unknown;
  } catch (error) {
    throw new TypeError(
      `${field} must be JSON text (${error instanceof Error ? error.message : String(error)})`,
    );
  }
};

const jsonText = (value: unknown, field: string): string => {
  if (value instanceof JsonText) {
    parsedJsonText(value, field);
    return value.text;
  }
  const text: unknown = JSON.stringify(value);
  if (typeof text !== 'string') throw new TypeError(`${field} must be JSON-serializable`);
  return text;
};

/** The value the client serializes as the event's data. */
const assertJson = (value: unknown, field: string): unknown => {
  if (value instanceof JsonText) return parsedJsonText(value, field);
  jsonText(value, field);
  return value;
};

/** Metadata goes as bytes: the client would silently drop a falsy value such as `null` or `0`. */
const jsonBytes = (value: unknown, field: string): Uint8Array => utf8.encode(jsonText(value, field));

const validatePrefixes = (prefixes: readonly string[]): string[] => {
  if (prefixes.length === 0 || prefixes.some((prefix) => typeof prefix !== 'string' || prefix === '')) {
    throw new TypeError('streamPrefixes must list at least one non-empty prefix');
  }
  return [...prefixes];
};

const matchesPrefix = (prefixes: readonly string[], streamName: string) =>
  prefixes.some((prefix) => streamName.startsWith(prefix));

const maxReadCount = Number.MAX_SAFE_INTEGER;
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const validateMaxCount = (maxCount: number | undefined): number | undefined => {
  if (maxCount !== undefined && (!Number.isSafeInteger(maxCount) || maxCount < 0)) {
    throw new RangeError(`maxCount must be a non-negative integer, got ${maxCount}`);
  }
  return maxCount;
};

// --- Authentication and ACL refusals -----------------------------------------------------------
// The client reports both a refused login (gRPC UNAUTHENTICATED) and an ACL refusal as
// AccessDeniedError; they are told apart by the status in its message.

/** The user name in a connection string, for messages (never the password). */
const userOf = (url: string): string | undefined => {
  const match = /^[a-z+]+:\/\/([^:@/]+)(?::[^@/]*)?@/i.exec(url);
  return match ? decodeURIComponent(match[1]!) : undefined;
};

const refusalFor =
  (url: string) =>
  (error: unknown, stream: string, right: '$w' | '$r'): Error | undefined => {
    if (!(error instanceof AccessDeniedError)) return undefined;
    if (/UNAUTHENTICATED/.test(error.message)) {
      const user = userOf(url);
      return new EventStoreCredentialsError(
        `EventStoreDB refused the credentials in CALLTRAIL_EVENTSTORE_URL (${user === undefined ? 'no user' : `user "${user}"`}): unknown user or wrong password`,
        { cause: error },
      );
    }
    return new EventStoreAccessDeniedError(stream, right, { cause: error });
  };
// ---------------------------------------------------------------------------------------------------

export const connectEventStoreDb = (url: string, options: EventStoreDbOptions): EventStore => {
  const refusalOf = refusalFor(url);
  const { timeoutMs } = options;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`timeoutMs must be a positive integer, got ${timeoutMs}`);
  }
  if (disablesThrowOnAppendFailure(url)) {
    // With it off, BatchAppend reports a wrong expected version with a made-up revision.
    throw new EventStoreDbConnectionError(
      'throwOnAppendFailure=false is not supported; remove it from the URL',
    );
  }
  let client: EventStoreDBClient;
  try {
    client = EventStoreDBClient.connectionString(toClientConnectionString(url));
  } catch (error) {
    throw new EventStoreDbConnectionError(
      `invalid EventStoreDB connection string: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }

  /** Bounds a call: past `timeoutMs` the store counts as unavailable, whatever the client does. */
  const bounded = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    try {
      return await withDeadline(
        run(),
        timeoutMs,
        () => new EventStoreUnavailableError(`event store did not answer ${what} within ${timeoutMs} ms`),
      );
    } catch (error) {
      throw translate(error, what);
    }
  };

  /** Iterates a client read, waiting at most `timeoutMs` for each message; cancels it when left early. */
  async function* boundedRead<E>(what: string, read: StreamingRead<E>): AsyncGenerator<E> {
    const iterator = read[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        const next = await bounded(what, () => iterator.next());
        if (next.done) {
          finished = true;
          return;
        }
        yield next.value;
      }
    } finally {
      if (!finished) {
        await read.cancel().catch(() => undefined);
        await iterator.return?.().catch(() => undefined);
      }
    }
  }

  const append = async (
    streamName: string,
    events: readonly ProposedEvent[],
    expectedRevision: ExpectedRevision,
  ): Promise<AppendResult> => {
    if (events.length === 0) throw new TypeError('append needs at least one event');
    for (const [index, event] of events.entries()) {
      if (!uuidPattern.test(event.id)) throw new TypeError(`events[${index}].id must be a UUID`);
      if (typeof event.type !== 'string' || event.type === '') {
        throw new TypeError(`events[${index}].type must be a non-empty string`);
      }
    }
    const proposed = events.map((event, index) =>
      jsonEvent({
        id: event.id,
        type: event.type,
        data: assertJson(event.data, `events[${index}].data`) as never,
        metadata: jsonBytes(event.metadata, `events[${index}].metadata`),
      }),
    );
    const expected = toClientExpectedRevision(expectedRevision);
    try {
      const result = await bounded('append', () =>
        client.appendToStream(streamName, proposed, { expectedRevision: expected, deadline: timeoutMs }),
      );
      if (!result.position) throw new Error(`append to ${streamName} returned no position`);
      return {
        outcome: 'appended',
        nextRevision: result.nextExpectedRevision,
        position: { commit: result.position.commit, prepare: result.position.prepare },
      };
    } catch (error) {
      // --- Authentication and ACL refusals (see `refusalOf`) ---
      const refusal = refusalOf(error, streamName, '$w');
      if (refusal) throw refusal;
      if (error instanceof WrongExpectedVersionError) {
        const actual = error.actualVersion;
        return {
          outcome: 'wrong-expected-version',
          actualRevision: typeof actual === 'bigint' && actual >= 0n ? actual : 'no-stream',
        };
      }
      throw error;
    }
  };

  async function* readStream(streamName: string, readOptions: ReadStreamOptions = {}) {
    const backwards = readOptions.direction === 'backwards';
    if (!backwards && readOptions.direction !== undefined && readOptions.direction !== 'forwards')
      throw new RangeError("direction must be 'forwards' or 'backwards'");
    const { fromRevision } = readOptions;
    if (fromRevision !== undefined && fromRevision < 0n)
      throw new RangeError('fromRevision must not be negative');
    const read = client.readStream(streamName, {
      fromRevision: backwards
        ? (fromRevision ?? END)
        : fromRevision === undefined || fromRevision === 0n
          ? START
          : fromRevision,
      maxCount: validateMaxCount(readOptions.maxCount) ?? maxReadCount,
      direction: backwards ? BACKWARDS : FORWARDS,
    });
    try {
      for await (const resolved of boundedRead(`read of ${streamName}`, read)) {
        if (resolved.event) yield toRecordedEvent(resolved.event);
      }
    } catch (error) {
      if (error instanceof StreamNotFoundError) return;
      throw error;
    }
  }

  /** `$all` in one direction from a client position, narrowed to the prefixes, up to `limit`. */
  async function* readAllRaw(
    what: string,
    fromPosition: GlobalPosition | typeof START | typeof END,
    direction: typeof FORWARDS | typeof BACKWARDS,
    prefixes: readonly string[] | 'every-stream',
    limit: number,
  ): AsyncGenerator<RecordedEvent> {
    if (limit <= 0) return;
    let yielded = 0;
    const everyStream = prefixes === 'every-stream';
    // Filtered here, so a filtered read asks for everything; an unfiltered one for what it yields.
    const maxCount = everyStream && Number.isFinite(limit) ? limit : maxReadCount;
    const read = client.readAll({ fromPosition, direction, maxCount });
    for await (const resolved of boundedRead<AllStreamResolvedEvent>(what, read)) {
      const event = resolved.event;
      if (!event || (!everyStream && !matchesPrefix(prefixes, event.streamId))) continue;
      yield toRecordedEvent(event);
      yielded += 1;
      if (yielded >= limit) return;
    }
  }

  async function* readAll(readOptions: ReadAllOptions) {
    const prefixes =
      readOptions.streamPrefixes === 'every-stream'
        ? 'every-stream'
        : validatePrefixes(readOptions.streamPrefixes);
    const limit = validateMaxCount(readOptions.maxCount) ?? Number.POSITIVE_INFINITY;
    const from = readOptions.from;
    if ((readOptions.direction ?? 'forwards') === 'forwards') {
      yield* readAllRaw('read of $all', from ?? START, FORWARDS, prefixes, limit);
      return;
    }
    if (!from) {
      yield* readAllRaw('read of $all', END, BACKWARDS, prefixes, limit);
      return;
    }
    // The server reads backwards from just before a position; the port's `from` is inclusive.
    let yielded = 0;
    for await (const event of readAllRaw('read of $all', from, FORWARDS, prefixes, 1)) {
      if (comparePositions(event.position, from) === 0 && yielded < limit) {
        yield event;
        yielded += 1;
      }
    }
    yield* readAllRaw('read of $all', from, BACKWARDS, prefixes, limit - yielded);
  }

  const subscribeToAll = (subscribeOptions: SubscribeToAllOptions): Subscription => {
    const prefixes = validatePrefixes(subscribeOptions.streamPrefixes);
    return openSubscription(
      (checkpointReached) =>
        client.subscribeToAll({
          fromPosition: subscribeOptions.after ?? START,
          filter: streamNameFilter({ prefixes, checkpointInterval: 1, checkpointReached }),
        }),
      timeoutMs,
    );
  };

  const ping = async () => {
    try {
      await bounded('ping', async () => {
        const read = client.readStream('calltrail-ping', { maxCount: 1 });
        try {
          for await (const _ of read) break;
        } finally {
          await read.cancel().catch(() => undefined);
        }
      });
    } catch (error) {
      // Wrong credentials are not "up": nothing calltrail does can succeed with them.
      const refusal = refusalOf(error, 'calltrail-ping', '$r');
      if (refusal instanceof EventStoreCredentialsError) throw refusal;
      // Any answer from the store, even "no such stream" or "not allowed", means it is up.
      if (error instanceof StreamNotFoundError || error instanceof AccessDeniedError) return;
      throw error;
    }
  };

  return {
    kind: 'eventstoredb',
    reportsWrites: false,
    append,
    readStream,
    readAll,
    subscribeToAll,
    ping,
    // The client cancels each open read and subscription, then waits for every one to report that
    // it finished; shutting down must not wait longer than any other call on one that never does.
    close: () =>
      withDeadline(
        client.dispose(),
        timeoutMs,
        () => new EventStoreUnavailableError(`event store client did not close within ${timeoutMs} ms`),
      ).catch(() => undefined),
  };
};
