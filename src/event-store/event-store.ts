/**
 * The event-store port: the only way calltrail talks to its event store. Two adapters implement it,
 * EventStoreDB (`eventstoredb.ts`) and PostgreSQL (`postgres/`), and both pass the same contract suite
 * (`test/contract/event-store.contract.ts`). Nothing outside `src/event-store/` knows which one runs.
 *
 * Semantics follow EventStoreDB's, so the two adapters are interchangeable:
 * - a stream is an ordered list of events with revisions 0, 1, 2, ...;
 * - every event also has a position in the global order of all streams ($all); positions are
 *   unsigned 64-bit, monotonic, not contiguous, and always carried as bigint;
 * - appends are atomic per call and guarded by an expected revision.
 */

/** A position in the global order. Compare with `comparePositions`; never convert to a JS number. */
export interface GlobalPosition {
  readonly commit: bigint;
  readonly prepare: bigint;
}

export const comparePositions = (a: GlobalPosition, b: GlobalPosition): number =>
  a.commit === b.commit
    ? a.prepare === b.prepare
      ? 0
      : a.prepare < b.prepare
        ? -1
        : 1
    : a.commit < b.commit
      ? -1
      : 1;

/** `"<commit>/<prepare>"`: the lossless text form used in checkpoints, cursors and APIs. */
export const formatPosition = (position: GlobalPosition): string => `${position.commit}/${position.prepare}`;

const positionPattern = /^(\d{1,20})\/(\d{1,20})$/;
const maxUint64 = (1n << 64n) - 1n;

/** Parses the text form; returns undefined for anything that is not two unsigned 64-bit integers. */
export const parsePosition = (text: string): GlobalPosition | undefined => {
  const match = positionPattern.exec(text);
  if (!match) return undefined;
  const commit = BigInt(match[1]!);
  const prepare = BigInt(match[2]!);
  if (commit > maxUint64 || prepare > maxUint64) return undefined;
  return { commit, prepare };
};

/**
 * What the caller expects the stream's last revision to be:
 * - `'no-stream'`: the stream must not exist;
 * - `'stream-exists'`: it must exist;
 * - `'any'`: no check (idempotency is then best effort only; ingest never uses it);
 * - a bigint: the exact revision of the stream's last event.
 */
export type ExpectedRevision = 'no-stream' | 'stream-exists' | 'any' | bigint;

/**
 * Event data or metadata already serialized: one JSON value's text exactly as `JSON.stringify` wrote
 * it, which a store writes as it is instead of serializing a value again. The outage journal keeps
 * events this way, so draining one neither parses nor re-serializes its payload. Whatever serializes
 * it anyway gets the value it holds, so the text stored is the same either way.
 */
export class JsonText {
  constructor(readonly text: string) {}

  toJSON(): unknown {
    return JSON.parse(this.text) as unknown;
  }
}

/**
 * The JSON text event data or metadata given as a value is stored as (`undefined` as `null`);
 * undefined for what JSON cannot hold (a function); throws as `JSON.stringify` does (a cycle, a
 * bigint).
 */
export const jsonTextOf = (value: unknown): string | undefined =>
  JSON.stringify(value === undefined ? null : value);

export interface ProposedEvent {
  /** A UUID. Deterministic ids plus an exact expected revision make re-appends idempotent. */
  readonly id: string;
  readonly type: string;
  /** JSON-serializable, or a `JsonText`. */
  readonly data: unknown;
  /** JSON-serializable, or a `JsonText`. */
  readonly metadata: unknown;
}

export interface RecordedEvent {
  readonly streamName: string;
  readonly id: string;
  readonly type: string;
  readonly revision: bigint;
  readonly position: GlobalPosition;
  readonly data: unknown;
  readonly metadata: unknown;
  /**
   * `data` and `metadata` as the store holds them: the JSON text exactly as written, byte for byte,
   * so a hash over them is reproducible from what any reader gets back (the archive's seals are).
   */
  readonly storedData: string;
  readonly storedMetadata: string;
  /** When the store wrote it. */
  readonly created: Date;
}

/**
 * The outcome of an append. A wrong expected version is an expected failure (several ingest
 * processes race on one call), so it is a result, not an exception.
 *
 * Idempotency: when every proposed event's id already sits in the stream at expected+1, expected+2,
 * ... (exact revision or `'no-stream'`), the append writes nothing and returns `appended` with the
 * existing revision and position. A partial match, or a first-event mismatch, is a wrong expected
 * version.
 */
export type AppendResult =
  | {
      readonly outcome: 'appended';
      readonly nextRevision: bigint;
      readonly position: GlobalPosition;
      /**
       * Whether this call wrote the events (true) or acknowledged identical ones already there
       * (false). Undefined when the store cannot tell: EventStoreDB answers both alike.
       */
      readonly written?: boolean;
    }
  | {
      readonly outcome: 'wrong-expected-version';
      /** The stream's last revision, or `'no-stream'` when it does not exist. */
      readonly actualRevision: bigint | 'no-stream';
    };

export interface ReadStreamOptions {
  /** Inclusive; defaults to 0 forwards, and to the stream's last event backwards. */
  readonly fromRevision?: bigint;
  readonly maxCount?: number;
  /** Defaults to forwards (towards the newest event). */
  readonly direction?: 'forwards' | 'backwards';
}

export interface ReadAllOptions {
  /** Inclusive; defaults to the start of $all. */
  readonly from?: GlobalPosition;
  /**
   * Only events whose stream name starts with one of these. Must not be empty. `'every-stream'`
   * reads every event of $all, the store's own included: a read whose cost is `maxCount`, however
   * the streams are mixed (the store's head, a bounded look ahead of a checkpoint).
   */
  readonly streamPrefixes: readonly string[] | 'every-stream';
  readonly maxCount?: number;
  readonly direction?: 'forwards' | 'backwards';
}

export interface SubscribeToAllOptions {
  /** Exclusive; defaults to the start of $all. */
  readonly after?: GlobalPosition;
  /** Only events whose stream name starts with one of these. Must not be empty. */
  readonly streamPrefixes: readonly string[];
}

/**
 * One event as the archive's seals see it: where it is, and the SHA-256 (hex) of its sealed fields,
 * exactly as `eventHash` in `src/sealing/event-hash.ts` encodes them.
 */
export interface HashedEvent {
  readonly position: GlobalPosition;
  readonly streamName: string;
  readonly revision: bigint;
  readonly hash: string;
  readonly created: Date;
}

export interface ReadEventHashesOptions {
  /** Exclusive; defaults to the start of $all. */
  readonly after?: GlobalPosition;
  /** Only events whose stream name starts with one of these. Must not be empty. */
  readonly streamPrefixes: readonly string[];
  /** How many positions of $all one call looks at, at most. */
  readonly limit: number;
}

/** A range of $all: the positions after `after` (exclusive) up to `last` (inclusive). */
export interface StoredEventRangeOptions {
  /** Exclusive; defaults to the start of $all. */
  readonly after?: GlobalPosition;
  /** Inclusive. */
  readonly last: GlobalPosition;
  /** Only events whose stream name starts with one of these. Must not be empty. */
  readonly streamPrefixes: readonly string[];
}

/**
 * One event exactly as the store holds it, as bytes, for a reader that hashes events itself. Each
 * field is a range of `bytes`: the commit and prepare positions and the revision as unsigned 64-bit
 * big-endian integers (8 bytes each at their offset), the id as its 16 bytes, and the stream name,
 * type, data and metadata as UTF-8 from `...Start` to `...End` (exclusive). The same object and
 * buffer are reused for the next event: read them only while the call they are given to runs.
 */
export interface StoredEventBytes {
  readonly bytes: Buffer;
  readonly commit: number;
  readonly prepare: number;
  readonly revision: number;
  readonly id: number;
  readonly streamNameStart: number;
  readonly streamNameEnd: number;
  readonly typeStart: number;
  readonly typeEnd: number;
  readonly dataStart: number;
  readonly dataEnd: number;
  readonly metadataStart: number;
  readonly metadataEnd: number;
}

/** The length of an event hash (SHA-256), as `HashedEventColumns.hashes` lays them end to end. */
export const eventHashBytes = 32;

/**
 * Hashed events in columns, in the global order: what sealing reads, without an object (or a string)
 * per event. Event `i` is at position (`commits[i]`, `prepares[i]`) in stream
 * `streams[streamIndexes[i]]` at revision `revisions[i]`, its hash is the 32 bytes at `i * 32` of
 * `hashes`, and the store wrote it at `createdMs[i]` (milliseconds since the epoch). Each stream is
 * named once in `streams`, in the order of its first event.
 */
export interface HashedEventColumns {
  readonly count: number;
  readonly hashes: Buffer;
  readonly streams: readonly string[];
  readonly streamIndexes: Uint32Array;
  readonly commits: BigUint64Array;
  readonly prepares: BigUint64Array;
  readonly revisions: BigUint64Array;
  readonly createdMs: Float64Array;
}

/** No hashed events. */
export const noHashedEvents: HashedEventColumns = {
  count: 0,
  hashes: Buffer.alloc(0),
  streams: [],
  streamIndexes: new Uint32Array(0),
  commits: new BigUint64Array(0),
  prepares: new BigUint64Array(0),
  revisions: new BigUint64Array(0),
  createdMs: new Float64Array(0),
};

/** One bounded look along $all, forwards. */
export interface HashedEventPage {
  /** The matching events looked at, in order. */
  readonly events: HashedEventColumns;
  /** The last position looked at, matching or not; undefined when there was none. */
  readonly lookedAt: GlobalPosition | undefined;
  /** Whether the look reached the end of $all (fewer than `limit` positions were left). */
  readonly reachedEnd: boolean;
}

/**
 * What a subscription delivers, in order: historical events (with periodic `checkpoint`s, which say
 * every event up to that position that matches the filter has been delivered), one `caught-up`,
 * then live events, with no gap and no duplicate between the catch-up and live parts.
 */
export type SubscriptionMessage =
  | { readonly kind: 'event'; readonly event: RecordedEvent }
  | { readonly kind: 'checkpoint'; readonly position: GlobalPosition }
  | { readonly kind: 'caught-up' };

/**
 * A live subscription. Iterating ends only when `close()` is called; if the subscription drops
 * (store gone, connection reset), iteration throws, and the caller resubscribes from its checkpoint.
 */
export interface Subscription extends AsyncIterable<SubscriptionMessage> {
  close(): Promise<void>;
}

export interface EventStore {
  /** Which adapter this is, for logs and `/readyz`. */
  readonly kind: 'eventstoredb' | 'postgres';
  /** Whether `append` results always say `written`, so a caller may rely on it. */
  readonly reportsWrites: boolean;
  append(
    streamName: string,
    events: readonly ProposedEvent[],
    expectedRevision: ExpectedRevision,
  ): Promise<AppendResult>;
  /** Yields nothing for a stream that does not exist. */
  readStream(streamName: string, options?: ReadStreamOptions): AsyncIterable<RecordedEvent>;
  readAll(options: ReadAllOptions): AsyncIterable<RecordedEvent>;
  subscribeToAll(options: SubscribeToAllOptions): Subscription;
  /**
   * Optional, for sealing: each event's hash as the store recorded it when the event was written
   * (computed where the events are for events without one), so only the hashes travel. Sealing
   * trusts the store as it writes; verification never uses this (see `readStoredEvents`). Stores
   * without it are hashed by the reader from `readAll` (`src/sealing/event-hashes.ts`).
   */
  readEventHashes?(options: ReadEventHashesOptions): Promise<HashedEventPage>;
  /**
   * Optional: the matching events of a range, in order, as the bytes they are stored as, each given
   * to `visit` in turn; resolves to how many there were. A verifier hashes these bytes itself and
   * so trusts nothing the store computes; this is only a faster read than `readAll`, which stores
   * without it are checked through.
   */
  readStoredEvents?(
    options: StoredEventRangeOptions,
    visit: (event: StoredEventBytes) => void,
  ): Promise<number>;
  /** Resolves when the store answers; throws `EventStoreUnavailableError` otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The store cannot be reached or did not answer in time. Callers map it to 503 (ingest) or retry
 * with backoff (projector). Adapters translate their own transport errors into this one.
 */
export class EventStoreUnavailableError extends Error {
  override readonly name: string = 'EventStoreUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The store refused an operation to calltrail's own identity (an ACL without the right it needs).
 * Nothing was written; like an outage, callers answer 503 (ingest) or retry (projector), and the
 * stream and the missing right go in the log, so an operator can grant it.
 */
export class EventStoreAccessDeniedError extends EventStoreUnavailableError {
  override readonly name: string = 'EventStoreAccessDeniedError';
  constructor(
    readonly stream: string,
    /** The `$acl` right calltrail lacks: `$w` to append, `$r` to read. */
    readonly missingRight: '$w' | '$r',
    options?: { cause?: unknown },
  ) {
    super(
      `the event store denied ${missingRight === '$w' ? 'appending to' : 'reading'} ${stream}: calltrail's user lacks ${missingRight} in its $acl`,
      options,
    );
  }
}

/** The store does not accept calltrail's credentials; nothing can work until they are fixed. */
export class EventStoreCredentialsError extends Error {
  override readonly name = 'EventStoreCredentialsError';
}
