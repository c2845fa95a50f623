import { anonymous, grants, type Caller } from './authorization.ts';

/**
 * The in-memory database behind the EventStoreDB test server: streams, the `$all` log, stream
 * metadata, soft delete and tombstones, and the write-time checks (expected version, idempotency,
 * maximum append size) exactly as the real server makes them. It knows nothing of gRPC; the service
 * modules translate its results into the four error channels the client understands.
 *
 * Numbers follow the server's own int64 conventions, as bigint: an expected version is a revision or
 * one of the negative codes below, a missing stream's current version is -1, a tombstoned stream's
 * last revision is 2^63-1. `$all` positions are unsigned 64-bit and never pass through a JS number.
 */

/** The server's expected-version codes (`ExpectedVersion` in its source). */
export const expectedVersion = {
  noStream: -1n,
  any: -2n,
  streamExists: -4n,
} as const;

/** The revision of a tombstone, and the `$tb` a soft delete writes (`EventNumber.DeletedStream`). */
export const deletedStreamRevision = (1n << 63n) - 1n;

export const contentTypes = {
  json: 'application/json',
  octetStream: 'application/octet-stream',
} as const;

export interface ProposedRecord {
  /** Lower-case canonical UUID. */
  readonly eventId: string;
  readonly eventType: string;
  readonly isJson: boolean;
  readonly data: Uint8Array;
  readonly metadata: Uint8Array;
}

export interface StoredEvent extends ProposedRecord {
  readonly streamName: string;
  readonly revision: bigint;
  /** The record's log position; commit and prepare positions are both this for gRPC writes. */
  readonly position: bigint;
  /** .NET ticks (100 ns) since the Unix epoch. */
  readonly created: bigint;
}

export type WriteResult =
  | {
      readonly kind: 'success';
      /** The stream's last revision after the write, -1 when still empty. */
      readonly currentRevision: bigint;
      /** Position of the last event written (or re-recognised); undefined when nothing was. */
      readonly position: bigint | undefined;
    }
  | { readonly kind: 'wrong-expected-version'; readonly currentVersion: bigint }
  | { readonly kind: 'stream-deleted' }
  | { readonly kind: 'access-denied' };

export type DeleteResult =
  | { readonly kind: 'success'; readonly position: bigint | undefined }
  | { readonly kind: 'wrong-expected-version'; readonly currentVersion: bigint }
  | { readonly kind: 'stream-deleted' }
  | { readonly kind: 'access-denied' };

export type StreamReadResult =
  | { readonly kind: 'success'; readonly events: readonly StoredEvent[] }
  | { readonly kind: 'stream-not-found' }
  | { readonly kind: 'stream-deleted' }
  | { readonly kind: 'access-denied' };

/** The parts of stream metadata the server itself acts on. */
export interface StreamMetadata {
  readonly maxAge?: number;
  readonly maxCount?: number;
  readonly truncateBefore?: bigint;
  readonly acl?: StreamAcl;
}

export interface StreamAcl {
  readonly read?: readonly string[];
  readonly write?: readonly string[];
  readonly metaRead?: readonly string[];
  readonly metaWrite?: readonly string[];
}

export interface EventFilter {
  readonly on: 'stream-name' | 'event-type';
  /** Either prefixes (any of) or a regular expression, as the request carries them. */
  readonly prefixes: readonly string[];
  readonly regex: RegExp | undefined;
}

export const eventMatches = (filter: EventFilter | undefined, event: StoredEvent): boolean => {
  if (!filter) return true;
  const subject = filter.on === 'stream-name' ? event.streamName : event.eventType;
  return filter.regex ? filter.regex.test(subject) : filter.prefixes.some((p) => subject.startsWith(p));
};

export const compareLogPositions = (a: bigint, b: bigint): number => (a === b ? 0 : a < b ? -1 : 1);

export interface StoreOptions {
  /** Where the log starts; an offset above 2^53 proves readers never use JS numbers. */
  readonly initialPosition?: bigint;
  /** The wall clock stamped on events (`created`) and used for `$maxAge`. */
  readonly clock?: () => Date;
  /** Bytes per append (`Event.SizeOnDisk` summed); the server's default is 1 MiB. */
  readonly maxAppendSize?: number;
  /** How many recently written event ids `any` appends can recognise (best effort). */
  readonly recentEventIds?: number;
  /**
   * Enforce `$acl` against the caller (anonymous over an insecure connection). Off by default, like
   * a server started `--insecure`, which does no authorization at all; a secure server enforces it.
   */
  readonly enforceAcl?: boolean;
  /** Start with the system events a fresh database holds; true by default. */
  readonly seedSystemEvents?: boolean;
}

export type AppendListener = (events: readonly StoredEvent[]) => void;

interface StreamState {
  readonly name: string;
  /** Indexed by revision; a stream's revisions are contiguous from 0, soft deletes included. */
  readonly events: StoredEvent[];
  tombstone: StoredEvent | undefined;
}

const ticksPerMillisecond = 10_000n;
const recordOverhead = 64n;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** `Event.SizeOnDisk`: what counts against the maximum append size. */
export const sizeOnDisk = (record: Pick<ProposedRecord, 'eventType' | 'data' | 'metadata'>): number =>
  record.data.length + record.metadata.length + record.eventType.length * 2;

export const isMetastream = (streamName: string): boolean => streamName.startsWith('$$');
export const metastreamOf = (streamName: string): string => `$$${streamName}`;
const isSystemStream = (streamName: string): boolean => streamName.startsWith('$');

/** Metadata JSON with `$tb` written exactly (it can be 2^63-1, beyond a JS number). */
const encodeMetadataJson = (properties: Record<string, unknown>, truncateBefore: bigint | undefined) => {
  const rest = JSON.stringify(properties);
  if (truncateBefore === undefined) return utf8.encode(rest);
  const tb = `"$tb":${truncateBefore.toString()}`;
  return utf8.encode(rest === '{}' ? `{${tb}}` : `{${tb},${rest.slice(1)}`);
};

const roles = (value: unknown): readonly string[] | undefined =>
  typeof value === 'string'
    ? [value]
    : Array.isArray(value)
      ? value.filter((v): v is string => typeof v === 'string')
      : undefined;

/** Reads the metadata properties the server honours; anything unparseable counts as none. */
export const parseStreamMetadata = (data: Uint8Array): StreamMetadata => {
  let text: string;
  let parsed: unknown;
  try {
    text = utf8Decoder.decode(data);
    parsed = JSON.parse(text);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const properties = parsed as Record<string, unknown>;
  // `$tb` may exceed 2^53, so it is read from the text rather than from the parsed number.
  const tbMatch = /"\$tb"\s*:\s*(\d+)/.exec(text);
  const acl = properties['$acl'];
  const aclObject = typeof acl === 'object' && acl !== null ? (acl as Record<string, unknown>) : undefined;
  const integer = (value: unknown) =>
    typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
  const maxAge = integer(properties['$maxAge']);
  const maxCount = integer(properties['$maxCount']);
  const readRoles = roles(aclObject?.['$r']);
  const writeRoles = roles(aclObject?.['$w']);
  const metaReadRoles = roles(aclObject?.['$mr']);
  const metaWriteRoles = roles(aclObject?.['$mw']);
  return {
    ...(maxAge === undefined ? {} : { maxAge }),
    ...(maxCount === undefined ? {} : { maxCount }),
    ...(tbMatch ? { truncateBefore: BigInt(tbMatch[1]!) } : {}),
    ...(aclObject
      ? {
          acl: {
            ...(readRoles ? { read: readRoles } : {}),
            ...(writeRoles ? { write: writeRoles } : {}),
            ...(metaReadRoles ? { metaRead: metaReadRoles } : {}),
            ...(metaWriteRoles ? { metaWrite: metaWriteRoles } : {}),
          },
        }
      : {}),
  };
};

/** Bounded insertion-ordered map: the server's cache of recently committed event ids. */
class RecentEventIds {
  private readonly entries = new Map<string, { streamName: string; revision: bigint }>();
  constructor(private readonly capacity: number) {}
  get(eventId: string) {
    return this.entries.get(eventId);
  }
  add(eventId: string, value: { streamName: string; revision: bigint }) {
    this.entries.delete(eventId);
    this.entries.set(eventId, value);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }
}

type CommitCheck =
  | { readonly decision: 'ok'; readonly currentVersion: bigint; readonly softDeleted: boolean }
  | {
      readonly decision: 'idempotent';
      readonly currentVersion: bigint;
      readonly lastRecognised: StoredEvent | undefined;
    }
  | { readonly decision: 'wrong-expected-version'; readonly currentVersion: bigint }
  | { readonly decision: 'deleted' };

export class InMemoryEventStore {
  private readonly log: StoredEvent[] = [];
  private readonly streams = new Map<string, StreamState>();
  private readonly listeners = new Set<AppendListener>();
  private readonly recentIds: RecentEventIds;
  private nextPosition: bigint;
  readonly clock: () => Date;
  readonly maxAppendSize: number;
  readonly enforceAcl: boolean;

  constructor(options: StoreOptions = {}) {
    this.nextPosition = options.initialPosition ?? 0n;
    this.clock = options.clock ?? (() => new Date());
    this.maxAppendSize = options.maxAppendSize ?? 1_048_576;
    this.enforceAcl = options.enforceAcl ?? false;
    this.recentIds = new RecentEventIds(options.recentEventIds ?? 100_000);
    if (options.seedSystemEvents ?? true) this.seedSystemEvents();
  }

  /** Listeners run synchronously inside the write, so a subscriber can never miss an append. */
  onAppend(listener: AppendListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The position the next record will take: nothing in the log is at or after it. */
  get headPosition(): bigint {
    return this.nextPosition;
  }

  get allEvents(): readonly StoredEvent[] {
    return this.log;
  }

  /** `-1` for a stream that never existed, 2^63-1 once tombstoned, else the raw last revision. */
  lastRevision(streamName: string): bigint {
    const stream = this.streams.get(streamName);
    if (!stream) return -1n;
    if (stream.tombstone) return deletedStreamRevision;
    return BigInt(stream.events.length) - 1n;
  }

  streamMetadata(streamName: string): StreamMetadata {
    // Metastreams keep only their latest event, whatever they say themselves.
    if (isMetastream(streamName)) return { maxCount: 1 };
    const meta = this.streams.get(metastreamOf(streamName));
    const latest = meta?.events.at(-1);
    return latest ? parseStreamMetadata(latest.data) : {};
  }

  private isSoftDeleted(streamName: string): boolean {
    return this.streamMetadata(streamName).truncateBefore === deletedStreamRevision;
  }

  /**
   * The default ACLs: the latest `$settings` event's `$userStreamAcl` / `$systemStreamAcl` when one
   * was written, else the server's built-in ones (everyone for user streams, `$admins` for system
   * streams). A fresh database has no `$settings` event.
   */
  private defaultAcl(system: boolean): StreamAcl {
    const builtIn = system ? ['$admins'] : ['$all'];
    const fallback: StreamAcl = { read: builtIn, write: builtIn, metaRead: builtIn, metaWrite: builtIn };
    const latest = this.streams.get('$settings')?.events.at(-1);
    if (!latest) return fallback;
    const settings = parseStreamMetadata(
      utf8.encode(
        JSON.stringify({
          $acl: (() => {
            try {
              const parsed = JSON.parse(utf8Decoder.decode(latest.data)) as Record<string, unknown>;
              return parsed[system ? '$systemStreamAcl' : '$userStreamAcl'];
            } catch {
              return undefined;
            }
          })(),
        }),
      ),
    ).acl;
    return { ...fallback, ...settings };
  }

  /** Whether `caller` may do `operation` on the stream (always, unless enforcing). */
  allowed(streamName: string, operation: 'read' | 'write', caller: Caller = anonymous): boolean {
    if (!this.enforceAcl) return true;
    // A metastream is governed by its stream's `$mr` / `$mw`.
    const meta = isMetastream(streamName);
    const subject = meta ? streamName.slice(2) : streamName;
    const key = meta ? (operation === 'read' ? 'metaRead' : 'metaWrite') : operation;
    const granted =
      this.streamMetadata(subject).acl?.[key] ?? this.defaultAcl(isSystemStream(subject))[key] ?? [];
    return grants(caller, granted);
  }

  append(
    streamName: string,
    expected: bigint,
    records: readonly ProposedRecord[],
    caller: Caller = anonymous,
  ): WriteResult {
    if (!this.allowed(streamName, 'write', caller)) return { kind: 'access-denied' };
    const check = this.checkCommit(streamName, expected, records);
    switch (check.decision) {
      case 'deleted':
        return { kind: 'stream-deleted' };
      case 'wrong-expected-version':
        return { kind: 'wrong-expected-version', currentVersion: check.currentVersion };
      case 'idempotent':
        return {
          kind: 'success',
          currentRevision: check.lastRecognised?.revision ?? check.currentVersion,
          position: check.lastRecognised?.position,
        };
      case 'ok':
        break;
    }
    const written: StoredEvent[] = [];
    if (check.softDeleted && records.length > 0) {
      // Recreating a soft-deleted stream: the truncation point moves to the first new revision,
      // written before the events, keeping every other metadata property.
      written.push(this.undeleteMetadata(streamName, check.currentVersion + 1n));
    }
    for (const record of records) written.push(this.write(streamName, record));
    this.notify(written);
    const stream = this.streams.get(streamName);
    return {
      kind: 'success',
      currentRevision: stream ? BigInt(stream.events.length) - 1n : -1n,
      position: records.length > 0 ? written.at(-1)?.position : undefined,
    };
  }

  /**
   * The server's commit check: expected version, tombstones and soft deletes, and idempotency
   * (exact revision / no-stream compare ids at expected+1...; any looks only at recent ids).
   */
  private checkCommit(streamName: string, expected: bigint, records: readonly ProposedRecord[]): CommitCheck {
    const currentVersion = this.lastRevision(streamName);
    if (currentVersion === deletedStreamRevision) return { decision: 'deleted' };
    let effective = expected;
    if (effective === expectedVersion.streamExists) {
      if (this.isSoftDeleted(streamName)) return { decision: 'deleted' };
      if (currentVersion < 0n && this.lastRevision(metastreamOf(streamName)) < 0n) {
        return { decision: 'wrong-expected-version', currentVersion };
      }
      effective = expectedVersion.any;
    }
    if (effective === expectedVersion.any) {
      let lastRecognised: StoredEvent | undefined;
      for (const [index, record] of records.entries()) {
        const known = this.recentIds.get(record.eventId);
        if (!known || known.streamName !== streamName) {
          return index === 0
            ? { decision: 'ok', currentVersion, softDeleted: this.isSoftDeleted(streamName) }
            : { decision: 'wrong-expected-version', currentVersion };
        }
        lastRecognised = this.eventAt(streamName, known.revision);
      }
      return records.length === 0
        ? { decision: 'ok', currentVersion, softDeleted: this.isSoftDeleted(streamName) }
        : { decision: 'idempotent', currentVersion, lastRecognised };
    }
    if (effective < currentVersion) {
      let revision = effective;
      let lastRecognised: StoredEvent | undefined;
      for (const record of records) {
        revision += 1n;
        const existing = this.eventAt(streamName, revision);
        if (existing && existing.eventId === record.eventId) {
          lastRecognised = existing;
          continue;
        }
        if (revision !== effective + 1n) return { decision: 'wrong-expected-version', currentVersion };
        if (effective === expectedVersion.noStream && this.isSoftDeleted(streamName)) {
          return { decision: 'ok', currentVersion, softDeleted: true };
        }
        return { decision: 'wrong-expected-version', currentVersion };
      }
      return records.length === 0
        ? { decision: 'ok', currentVersion, softDeleted: false }
        : { decision: 'idempotent', currentVersion, lastRecognised };
    }
    if (effective > currentVersion) return { decision: 'wrong-expected-version', currentVersion };
    return { decision: 'ok', currentVersion, softDeleted: this.isSoftDeleted(streamName) };
  }

  private eventAt(streamName: string, revision: bigint): StoredEvent | undefined {
    if (revision < 0n) return undefined;
    return this.streams.get(streamName)?.events[Number(revision)];
  }

  /** Soft delete (`hardDelete` false) or tombstone (`hardDelete` true). */
  delete(
    streamName: string,
    expected: bigint,
    hardDelete: boolean,
    caller: Caller = anonymous,
  ): DeleteResult {
    if (!this.allowed(streamName, 'write', caller)) return { kind: 'access-denied' };
    const currentVersion = this.lastRevision(streamName);
    if (currentVersion === deletedStreamRevision) return { kind: 'stream-deleted' };
    const versionOk =
      expected === expectedVersion.any ||
      (expected === expectedVersion.noStream && currentVersion === -1n) ||
      (expected === expectedVersion.streamExists && currentVersion >= 0n) ||
      expected === currentVersion;
    if (!versionOk) return { kind: 'wrong-expected-version', currentVersion };
    let written: StoredEvent;
    if (hardDelete) {
      written = this.write(
        streamName,
        {
          eventId: crypto.randomUUID(),
          eventType: '$streamDeleted',
          isJson: false,
          data: new Uint8Array(),
          metadata: new Uint8Array(),
        },
        deletedStreamRevision,
      );
    } else {
      const current = this.streams.get(metastreamOf(streamName))?.events.at(-1);
      written = this.writeMetadata(streamName, current, deletedStreamRevision);
    }
    this.notify([written]);
    return { kind: 'success', position: written.position };
  }

  /**
   * Reads a stream forwards or backwards from `fromRevision` (inclusive; undefined = start for
   * forwards, end for backwards), applying `$tb`, `$maxCount` and `$maxAge` at read time.
   */
  readStream(
    streamName: string,
    fromRevision: bigint | undefined,
    direction: 'forwards' | 'backwards',
    maxCount: bigint,
    caller: Caller = anonymous,
  ): StreamReadResult {
    if (!this.allowed(streamName, 'read', caller)) return { kind: 'access-denied' };
    const stream = this.streams.get(streamName);
    if (stream?.tombstone) return { kind: 'stream-deleted' };
    if (!stream || stream.events.length === 0) return { kind: 'stream-not-found' };
    const metadata = this.streamMetadata(streamName);
    if (metadata.truncateBefore === deletedStreamRevision) return { kind: 'stream-not-found' };
    const visible = this.visibleFrom(stream, metadata);
    const last = BigInt(stream.events.length) - 1n;
    const events: StoredEvent[] = [];
    if (direction === 'forwards') {
      let revision = fromRevision ?? 0n;
      if (revision < visible) revision = visible;
      for (; revision <= last && BigInt(events.length) < maxCount; revision += 1n) {
        const event = stream.events[Number(revision)]!;
        if (this.alive(event, metadata)) events.push(event);
      }
    } else {
      let revision = fromRevision === undefined || fromRevision > last ? last : fromRevision;
      for (; revision >= visible && BigInt(events.length) < maxCount; revision -= 1n) {
        const event = stream.events[Number(revision)]!;
        if (this.alive(event, metadata)) events.push(event);
      }
    }
    return { kind: 'success', events };
  }

  /** Whether a stream can be subscribed to: a tombstoned one cannot. */
  streamDeleted(streamName: string): boolean {
    return this.streams.get(streamName)?.tombstone !== undefined;
  }

  /** The first revision `$tb` and `$maxCount` leave readable. */
  private visibleFrom(stream: StreamState, metadata: StreamMetadata): bigint {
    const count = BigInt(stream.events.length);
    let first = metadata.truncateBefore ?? 0n;
    if (metadata.maxCount !== undefined) {
      const byCount = count - BigInt(metadata.maxCount);
      if (byCount > first) first = byCount;
    }
    return first;
  }

  private alive(event: StoredEvent, metadata: StreamMetadata): boolean {
    if (metadata.maxAge === undefined) return true;
    const now = BigInt(this.clock().getTime()) * ticksPerMillisecond;
    return event.created >= now - BigInt(metadata.maxAge) * 1000n * ticksPerMillisecond;
  }

  /** Index of the first `$all` record at or after `position`. */
  indexAtOrAfter(position: bigint): number {
    let low = 0;
    let high = this.log.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.log[middle]!.position < position) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private write(streamName: string, record: ProposedRecord, revisionOverride?: bigint): StoredEvent {
    let stream = this.streams.get(streamName);
    if (!stream) {
      stream = { name: streamName, events: [], tombstone: undefined };
      this.streams.set(streamName, stream);
    }
    const revision = revisionOverride ?? BigInt(stream.events.length);
    const event: StoredEvent = {
      ...record,
      streamName,
      revision,
      position: this.nextPosition,
      created: BigInt(this.clock().getTime()) * ticksPerMillisecond,
    };
    this.nextPosition +=
      recordOverhead +
      BigInt(utf8.encode(streamName).length + utf8.encode(record.eventType).length) +
      BigInt(record.data.length + record.metadata.length);
    this.log.push(event);
    if (revisionOverride === deletedStreamRevision) stream.tombstone = event;
    else stream.events.push(event);
    this.recentIds.add(record.eventId, { streamName, revision });
    return event;
  }

  private writeMetadata(streamName: string, current: StoredEvent | undefined, truncateBefore: bigint) {
    let properties: Record<string, unknown> = {};
    if (current) {
      try {
        const parsed: unknown = JSON.parse(utf8Decoder.decode(current.data));
        if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
          properties = { ...(parsed as Record<string, unknown>) };
        }
      } catch {
        properties = {};
      }
    }
    delete properties['$tb'];
    return this.write(metastreamOf(streamName), {
      eventId: crypto.randomUUID(),
      eventType: '$metadata',
      isJson: true,
      data: encodeMetadataJson(properties, truncateBefore),
      metadata: new Uint8Array(),
    });
  }

  private undeleteMetadata(streamName: string, firstRevision: bigint): StoredEvent {
    const current = this.streams.get(metastreamOf(streamName))?.events.at(-1);
    return this.writeMetadata(streamName, current, firstRevision);
  }

  private notify(events: readonly StoredEvent[]) {
    if (events.length === 0) return;
    for (const listener of [...this.listeners]) listener(events);
  }

  /** What a fresh database already holds in `$all`: users, scavenge settings, projection bookkeeping. */
  private seedSystemEvents() {
    const json = (value: unknown) => utf8.encode(JSON.stringify(value));
    const seed = (streamName: string, eventType: string, data: unknown) =>
      this.write(streamName, {
        eventId: crypto.randomUUID(),
        eventType,
        isJson: true,
        data: json(data),
        metadata: new Uint8Array(),
      });
    const user = (loginName: string, fullName: string, groups: string[]) => {
      seed(`$user-${loginName}`, '$user', {
        loginName,
        fullName,
        salt: '',
        hash: '',
        disabled: false,
        groups,
      });
      seed('$users', '$User', loginName);
    };
    seed('$$$users', '$metadata', { $acl: { $r: '$admins', $w: '$admins' } });
    user('admin', 'Event Store Administrator', ['$admins']);
    user('ops', 'Event Store Operations', ['$ops']);
    // No `$settings` event: a fresh server applies its built-in default ACLs (see `defaultAcl`).
    seed('$$$scavenges', '$metadata', { $maxAge: 2_592_000 });
    seed('$projections-$all', '$ProjectionsInitialized', {});
    for (const projection of [
      '$streams',
      '$stream_by_category',
      '$by_category',
      '$by_event_type',
      '$by_correlation_id',
    ]) {
      seed('$projections-$all', '$ProjectionCreated', projection);
    }
  }
}
