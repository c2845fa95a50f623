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
 */
import {
  ANY,
  BACKWARDS,
  CancelledError,
  DeadlineExceededError,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  NotLeaderError,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  TimeoutError,
  UnavailableError,
  WrongExpectedVersionError,
  AccessDeniedError,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type AppendExpectedRevision,
  type ResolvedEvent,
  type StreamingRead,
} from '@eventstore/db-client';
import {
  EventStoreUnavailableError,
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
  type SubscriptionMessage,
} from './event-store.ts';

export interface EventStoreDbOptions {
  /** Upper bound on any single call (and on the wait for each read or subscription message). */
  readonly timeoutMs: number;
}

/** The connection string is unusable; the message says why. */
export class EventStoreDbConnectionError extends Error {
  override readonly name = 'EventStoreDbConnectionError';
}

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

const translate = (error: unknown, what: string): unknown =>
  error instanceof EventStoreUnavailableError
    ? error
    : isUnreachable(error)
      ? new EventStoreUnavailableError(`event store unavailable during ${what}`, { cause: error })
      : error;

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

const jsonText = (value: unknown, field: string): string => {
  const text: unknown = JSON.stringify(value);
  if (typeof text !== 'string') throw new TypeError(`${field} must be JSON-serializable`);
  return text;
};

const assertJson = (value: unknown, field: string): unknown => {
  jsonText(value, field);
  return value;
};

/** Metadata goes as bytes: the client would silently drop a falsy value such as `null` or `0`. */
const jsonBytes = (value: unknown, field: string): Uint8Array => utf8.encode(jsonText(value, field));

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

const toRecordedEvent = (event: NonNullable<ResolvedEvent['event']>): RecordedEvent => {
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

export const connectEventStoreDb = (url: string, options: EventStoreDbOptions): EventStore => {
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
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(new EventStoreUnavailableError(`event store did not answer ${what} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([run(), timeout]);
    } catch (error) {
      throw translate(error, what);
    } finally {
      clearTimeout(timer);
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
    const fromRevision = readOptions.fromRevision ?? 0n;
    if (fromRevision < 0n) throw new RangeError('fromRevision must not be negative');
    const read = client.readStream(streamName, {
      fromRevision: fromRevision === 0n ? START : fromRevision,
      maxCount: validateMaxCount(readOptions.maxCount) ?? maxReadCount,
      direction: FORWARDS,
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
    prefixes: readonly string[],
    limit: number,
  ): AsyncGenerator<RecordedEvent> {
    if (limit <= 0) return;
    let yielded = 0;
    const read = client.readAll({ fromPosition, direction, maxCount: maxReadCount });
    for await (const resolved of boundedRead<AllStreamResolvedEvent>(what, read)) {
      const event = resolved.event;
      if (!event || !matchesPrefix(prefixes, event.streamId)) continue;
      yield toRecordedEvent(event);
      yielded += 1;
      if (yielded >= limit) return;
    }
  }

  async function* readAll(readOptions: ReadAllOptions) {
    const prefixes = validatePrefixes(readOptions.streamPrefixes);
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
    close: () => client.dispose(),
  };
};

/**
 * Adapts a client subscription to the port: events, checkpoints and `caught-up` in the order the
 * server sent them. The client reports checkpoints and `caughtUp` through callbacks, ahead of events
 * still in its buffer, so the buffer is drained into one queue before each of them is queued.
 */
const openSubscription = (
  open: (
    checkpointReached: (_subscription: unknown, position: GlobalPosition) => void,
  ) => AllStreamSubscription,
  timeoutMs: number,
): Subscription => {
  const queue: SubscriptionMessage[] = [];
  let failure: Error | undefined;
  let ended = false;
  let closed = false;
  let confirmed = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  const highWater = 64;

  const pull = (force: boolean) => {
    while (force || queue.length < highWater) {
      const resolved = subscription.read() as AllStreamResolvedEvent | null;
      if (resolved === null) break;
      if (resolved.event) queue.push({ kind: 'event', event: toRecordedEvent(resolved.event) });
    }
    notify();
  };
  const subscription = open((_subscription, position) => {
    pull(true);
    queue.push({ kind: 'checkpoint', position: { commit: position.commit, prepare: position.prepare } });
    notify();
  });
  const confirmationTimer = setTimeout(() => {
    if (confirmed || closed) return;
    failure ??= new EventStoreUnavailableError(
      `event store did not confirm a subscription within ${timeoutMs} ms`,
    );
    void subscription.unsubscribe().catch(() => undefined);
    notify();
  }, timeoutMs);
  subscription.on('confirmation', () => {
    confirmed = true;
    clearTimeout(confirmationTimer);
  });
  subscription.on('caughtUp', () => {
    pull(true);
    queue.push({ kind: 'caught-up' });
    notify();
  });
  subscription.on('readable', () => pull(false));
  subscription.on('error', (error: unknown) => {
    const translated = translate(error, 'subscription to $all');
    failure ??= translated instanceof Error ? translated : new Error(String(translated));
    notify();
  });
  subscription.on('end', () => {
    ended = true;
    notify();
  });
  subscription.on('close', () => {
    ended = true;
    notify();
  });

  const close = async () => {
    if (closed) return;
    closed = true;
    clearTimeout(confirmationTimer);
    notify();
    await subscription.unsubscribe().catch(() => undefined);
  };

  async function* messages(): AsyncGenerator<SubscriptionMessage> {
    try {
      for (;;) {
        if (closed) return;
        const next = queue.shift();
        if (next) {
          if (queue.length < highWater / 2) pull(false);
          yield next;
          continue;
        }
        if (failure !== undefined) throw failure;
        if (ended) throw new EventStoreUnavailableError('subscription to $all ended unexpectedly');
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      await close();
    }
  }

  return {
    [Symbol.asyncIterator]: () => messages(),
    close,
  };
};
