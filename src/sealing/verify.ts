/**
 * Verification of the archive against its digests and a public key: every digest well-formed,
 * signed and chained; every sealed event present, unchanged and in its place; nothing inserted into a
 * sealed range; and nothing left unsealed for longer than sealing takes. Each problem is reported
 * with its kind and where it is; the archive is sound only when there is none.
 *
 * Scopes: `all` (every digest and every archived event), `range` (the digests whose events were
 * written in a time range, and the events they cover), `call` (one call's stream against every leaf
 * that names it). The chain is always checked whole: it is what makes a digest trustworthy at all.
 *
 * Digests are read as the events are compared, at most `maxEventsAhead` sealed events ahead: a
 * verification holds that many events' leaves, not the archive's.
 */
import {
  comparePositions,
  formatPosition,
  parsePosition,
  type EventStore,
  type GlobalPosition,
  type HashedEvent,
  type RecordedEvent,
  type StoredEventBytes,
} from '../event-store/event-store.ts';
import { compareSealed, type EventFinding, type EventFindingKind, type ObservedEvent } from './compare.ts';
import {
  digestHash,
  digestSignatureValid,
  digestType,
  isDigest,
  leafTableOf,
  leavesMatchRoot,
  leavesOf,
  type Digest,
  type DigestLeaf,
} from './digest.ts';
import { eventHash } from './event-hash.ts';
import { hashedEventsAfter } from './event-hashes.ts';
import { sameAsTable, StoredRangeCheck, type LeafTable } from './leaf-table.ts';
import type { PublicKey } from './signing-key.ts';

export type FindingKind =
  | EventFindingKind
  | 'unsealed-tail'
  | 'bad-signature'
  | 'broken-chain'
  | 'digest-altered'
  | 'malformed-digest';

export interface Finding {
  readonly kind: FindingKind;
  readonly detail: string;
  /** The digest concerned, by sequence (or by place in the digest source when unreadable). */
  readonly digest?: number;
  readonly position?: string;
  readonly stream?: string;
  readonly revision?: string;
}

export type VerifyScope =
  | { readonly kind: 'all' }
  | { readonly kind: 'range'; readonly from: Date; readonly to: Date }
  | { readonly kind: 'stream'; readonly streamName: string };

export interface VerifyReport {
  readonly ok: boolean;
  readonly scope: string;
  readonly digests: number;
  readonly eventsChecked: number;
  /** Archived events after the last digest. Recent ones are not a problem: sealing runs behind. */
  readonly unsealedEvents: number;
  readonly findings: readonly Finding[];
}

/** Where digests come from: the digest stream, or digest files. */
export type DigestEntry = { readonly where: string; readonly type: string; readonly data: unknown };

export interface VerifyInput {
  readonly digests: AsyncIterable<DigestEntry>;
  readonly keys: ReadonlyMap<string, PublicKey>;
  readonly scope: VerifyScope;
  readonly streamPrefixes: readonly string[];
  /** Unsealed events written longer ago than this are a finding (`unsealed-tail`). */
  readonly unsealedGraceMs: number;
  readonly now: Date;
  /**
   * Also read each sealed stream's first sealed revision: on EventStoreDB, $all keeps a deleted
   * stream's events until a scavenge, so only a stream read shows the deletion.
   */
  readonly checkStreams: boolean;
  /**
   * Told of progress: events checked, and events sealed by the digests read so far, which is the
   * total once `allDigestsRead` (from the start on an archive of up to `maxEventsAhead` events).
   */
  readonly onProgress?: (eventsChecked: number, totalSealed: number, allDigestsRead: boolean) => void;
  /**
   * Sealed events whose digests are read ahead of their comparison, at most (each digest's leaves are
   * held until its range is compared): what bounds a verification's memory. Default 200,000.
   */
  readonly maxEventsAhead?: number;
  /** Bound on findings kept (each kind is still counted). */
  readonly maxFindings?: number;
}

const observedOf = (event: HashedEvent): ObservedEvent => ({
  position: formatPosition(event.position),
  streamName: event.streamName,
  revision: event.revision.toString(),
  hash: event.hash,
});

const observe = (event: RecordedEvent): ObservedEvent =>
  observedOf({ ...event, hash: eventHash(event).toString('hex') });

type UnsealedEvent = Pick<RecordedEvent, 'position' | 'streamName' | 'revision' | 'created'>;

const positionOf = (text: string): GlobalPosition => parsePosition(text) ?? { commit: 0n, prepare: 0n };

const after = (a: string, b: string | null): boolean => {
  if (b === null) return true;
  const x = positionOf(a);
  const y = positionOf(b);
  return x.commit === y.commit ? x.prepare > y.prepare : x.commit > y.commit;
};

/** Checks the chain as it is read: yields the digests that are usable (well-formed), in order. */
async function* chainOf(
  entries: AsyncIterable<DigestEntry>,
  keys: ReadonlyMap<string, PublicKey>,
  report: (finding: Finding) => void,
): AsyncGenerator<Digest> {
  let previous: Digest | undefined;
  let index = 0;
  for await (const entry of entries) {
    const place = index++;
    if (entry.type !== digestType || !isDigest(entry.data)) {
      report({
        kind: 'malformed-digest',
        digest: place,
        detail: `${entry.where} is not a well-formed digest`,
      });
      continue;
    }
    const digest = entry.data;
    if (!digestSignatureValid(digest, keys)) {
      report({
        kind: 'bad-signature',
        digest: digest.sequence,
        detail: keys.has(digest.keyId)
          ? `${entry.where}: the signature does not match the digest`
          : `${entry.where}: signed with key ${digest.keyId}, which is not among the given public keys`,
      });
    }
    if (!leavesMatchRoot(digest)) {
      report({
        kind: 'digest-altered',
        digest: digest.sequence,
        detail: `${entry.where}: its leaf list does not match its signed Merkle root`,
      });
    }
    const expectedSequence = previous === undefined ? 0 : previous.sequence + 1;
    const chainProblems: string[] = [];
    if (digest.sequence !== expectedSequence) {
      chainProblems.push(
        `sequence ${digest.sequence} where ${expectedSequence} was expected (digests missing or repeated)`,
      );
    }
    const expectedPrevious = previous === undefined ? null : digestHash(previous);
    if (digest.previousDigestHash !== expectedPrevious)
      chainProblems.push('it does not chain to the digest before it');
    if (digest.afterPosition !== (previous?.lastPosition ?? null)) {
      chainProblems.push('its range does not start where the digest before it ended');
    }
    if (chainProblems.length > 0) {
      report({
        kind: 'broken-chain',
        digest: digest.sequence,
        detail: `${entry.where}: ${chainProblems.join('; ')}`,
      });
    }
    yield digest;
    previous = digest;
  }
}

/** Checks the chain: returns the digests in order that are usable (well-formed), with findings. */
export const checkChain = async (
  entries: AsyncIterable<DigestEntry>,
  keys: ReadonlyMap<string, PublicKey>,
  report: (finding: Finding) => void,
): Promise<Digest[]> => {
  const digests: Digest[] = [];
  for await (const digest of chainOf(entries, keys, report)) digests.push(digest);
  return digests;
};

/**
 * The chain's digests whose ranges advance, in order: a digest whose range does not move forwards (a
 * forged or repeated one, reported by the chain check) would only confuse the walk over the events.
 * `read` counts every well-formed digest.
 */
async function* advancingDigests(
  chain: AsyncIterable<Digest>,
  read: { count: number },
): AsyncGenerator<Digest> {
  let previous: Digest | undefined;
  for await (const digest of chain) {
    read.count += 1;
    if (previous !== undefined && !after(digest.lastPosition, previous.lastPosition)) continue;
    previous = digest;
    yield digest;
  }
}

/**
 * Reads of stored events at once: the store reads two side by side (two connections) while this
 * process hashes what arrives.
 */
const readsAtOnce = 2;

/**
 * Events one read covers at most: the ranges of consecutive digests waiting to be checked are read
 * together, so the statements each read costs (and the wait for the first row) are paid once per
 * span rather than once per digest.
 */
const eventsPerRead = 20_000;

interface Range {
  /** Exclusive; null: from the start. */
  readonly after: string | null;
  readonly last: string;
}

/** What a digest is compared against: from the end of the one before it, else its own start. */
const rangeOf = (digest: Digest, previous: Digest | undefined): Range => ({
  after: previous?.lastPosition ?? digest.afterPosition,
  last: digest.lastPosition,
});

interface QueuedRange {
  readonly range: Range;
  readonly table: LeafTable;
  readonly resolve: (matches: boolean) => void;
  readonly reject: (error: unknown) => void;
}

/** Whether the stored event's position is after `position`. */
const storedAfter = (event: StoredEventBytes, position: GlobalPosition): boolean => {
  const commit = event.bytes.readBigUInt64BE(event.commit);
  return commit === position.commit
    ? event.bytes.readBigUInt64BE(event.prepare) > position.prepare
    : commit > position.commit;
};

/**
 * Whether a digest's range holds exactly what the digest sealed there, each event hashed here from
 * its stored bytes: at most `readsAtOnce` reads at a time, each digest's range read once. Verify
 * asks for a range as soon as it reads its digest (while it checks the next digests' leaves and
 * signatures, the store reads the events), and awaits the answer when it compares. Ranges asked
 * for while both reads are busy wait in order; the next read takes the first of them and the ones
 * that follow on from it, up to `eventsPerRead` events, and hands each event to its own digest's
 * check.
 */
const storedRangeChecks = (
  readStoredEvents: NonNullable<EventStore['readStoredEvents']>,
  streamPrefixes: readonly string[],
) => {
  const queue: QueuedRange[] = [];
  let running = 0;
  const read = async (span: readonly QueuedRange[]): Promise<void> => {
    const checks = span.map(({ table }) => new StoredRangeCheck(table));
    const lasts = span.map(({ range }) => positionOf(range.last));
    const first = span[0]!.range;
    let current = 0;
    try {
      await readStoredEvents(
        {
          streamPrefixes,
          last: lasts[lasts.length - 1]!,
          ...(first.after === null ? {} : { after: positionOf(first.after) }),
        },
        (event) => {
          while (current < span.length - 1 && storedAfter(event, lasts[current]!)) current += 1;
          checks[current]!.visit(event);
        },
      );
      for (const [index, queued] of span.entries()) queued.resolve(checks[index]!.matches);
    } catch (error) {
      for (const queued of span) queued.reject(error);
    }
  };
  const startReads = () => {
    while (running < readsAtOnce && queue.length > 0) {
      const span = [queue.shift()!];
      let events = span[0]!.table.count;
      for (let next = queue[0]; next !== undefined; next = queue[0]) {
        if (next.range.after !== span[span.length - 1]!.range.last) break;
        if (events + next.table.count > eventsPerRead) break;
        span.push(queue.shift()!);
        events += next.table.count;
      }
      running += 1;
      void read(span).finally(() => {
        running -= 1;
        startReads();
      });
    }
  };
  return (digest: Digest, range: Range): Promise<boolean> => {
    const table = leafTableOf(digest);
    const matches =
      table === undefined
        ? Promise.resolve(false)
        : new Promise<boolean>((resolve, reject) => {
            queue.push({ range, table, resolve, reject });
            startReads();
          });
    matches.catch(() => {}); // awaited when its range is compared, unless verify ends first
    return matches;
  };
};

/**
 * The digests verify reads ahead of their comparison: at most `maxEvents` sealed events of them, whose
 * leaves are what a verification holds. `prepare` runs on each as it is read (starting its range's
 * read, where the store reads ranges); what has been read is what progress knows of the total.
 */
class DigestsAhead<T> {
  /** Events sealed by the digests read so far: the total once `allRead`. */
  private sealed = 0;
  private done = false;
  private readonly iterator: AsyncIterator<Digest>;
  private readonly queued: { readonly digest: Digest; readonly held: number; readonly prepared: T }[] = [];
  private queuedEvents = 0;

  constructor(
    source: AsyncIterable<Digest>,
    private readonly maxEvents: number,
    private readonly prepare: (digest: Digest) => T,
  ) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  get totalSealed(): number {
    return this.sealed;
  }

  get allRead(): boolean {
    return this.done;
  }

  /** The next digest in order, having read ahead as far as the bound allows; undefined after the last. */
  async next(): Promise<{ readonly digest: Digest; readonly prepared: T } | undefined> {
    while (!this.done && this.queuedEvents < this.maxEvents) {
      const next = await this.iterator.next();
      if (next.done === true) {
        this.done = true;
        break;
      }
      const held = leafTableOf(next.value)?.count ?? 1;
      this.sealed += next.value.eventCount;
      this.queued.push({ digest: next.value, held, prepared: this.prepare(next.value) });
      this.queuedEvents += held;
    }
    const first = this.queued.shift();
    if (first !== undefined) this.queuedEvents -= first.held;
    return first;
  }

  /** Stops reading digests (a verification ended early by an error). */
  async close(): Promise<void> {
    await this.iterator.return?.(undefined);
  }
}

/**
 * Streams whose first sealed revision is read in one go, at most (`checkStreams`): the streams seen
 * since the last go are checked, then forgotten. A stream met again later is checked again at its
 * first revision since, which is harmless; its earliest was checked before.
 */
const streamsPerCheck = 10_000;

export const verifyArchive = async (eventStore: EventStore, input: VerifyInput): Promise<VerifyReport> => {
  const findings: Finding[] = [];
  const maxFindings = input.maxFindings ?? 10_000;
  const maxEventsAhead = input.maxEventsAhead ?? 200_000;
  const report = (finding: Finding) => {
    if (findings.length < maxFindings) findings.push(finding);
  };
  const reportEvents = (digest: number | undefined, found: readonly EventFinding[]) => {
    for (const finding of found) report({ ...finding, ...(digest === undefined ? {} : { digest }) });
  };
  const readStoredEvents = eventStore.readStoredEvents?.bind(eventStore);
  const storedRangeMatches =
    readStoredEvents === undefined ? undefined : storedRangeChecks(readStoredEvents, input.streamPrefixes);
  const wellFormed = { count: 0 };
  const digests = advancingDigests(chainOf(input.digests, input.keys, report), wellFormed);
  let eventsChecked = 0;
  let unsealedEvents = 0;
  let oldestUnsealed: UnsealedEvent | undefined;
  const noteUnsealed = (event: UnsealedEvent) => {
    unsealedEvents += 1;
    oldestUnsealed ??= event;
  };

  const { scope } = input;
  if (scope.kind === 'stream') {
    const sealed: DigestLeaf[] = [];
    let last: Digest | undefined;
    for await (const digest of digests) {
      last = digest;
      for (const leaf of leavesOf(digest)) if (leaf[1] === scope.streamName) sealed.push(leaf);
    }
    const observed: ObservedEvent[] = [];
    for await (const event of eventStore.readStream(scope.streamName)) {
      const text = observe(event);
      if (last === undefined || after(text.position, last.lastPosition)) noteUnsealed(event);
      else observed.push(text);
    }
    eventsChecked = observed.length;
    reportEvents(undefined, compareSealed(sealed, observed));
  } else {
    const selected =
      scope.kind === 'all'
        ? digests
        : (async function* () {
            for await (const digest of digests) {
              if (new Date(digest.firstEventAt) <= scope.to && new Date(digest.lastEventAt) >= scope.from)
                yield digest;
            }
          })();
    let lastRead: Digest | undefined;
    const ahead = new DigestsAhead(selected, maxEventsAhead, (digest) => {
      const range = rangeOf(digest, lastRead);
      lastRead = digest;
      // Where the store reads ranges, each is asked for as its digest is read: the store reads the
      // events while verify checks the next digests and compares the ranges before.
      return { range, matches: storedRangeMatches?.(digest, range) };
    });
    const streamsToCheck = new Map<string, string>();
    const checkStreams = async () => {
      for (const [streamName, revision] of streamsToCheck) {
        let found = false;
        for await (const event of eventStore.readStream(streamName, {
          fromRevision: BigInt(revision),
          maxCount: 1,
        })) {
          found = event.revision === BigInt(revision);
        }
        if (!found) {
          report({
            kind: 'missing',
            stream: streamName,
            revision,
            detail: `stream ${streamName} no longer yields revision ${revision} (deleted or truncated)`,
          });
        }
      }
      streamsToCheck.clear();
    };
    // A digest checked against the events observed in its range, or found intact as a whole.
    const checked = async (table: LeafTable | undefined, count: number) => {
      eventsChecked += count;
      input.onProgress?.(eventsChecked, ahead.totalSealed, ahead.allRead);
      if (input.checkStreams && table !== undefined) {
        for (let leaf = 0; leaf < table.count; leaf += 1) {
          const stream = table.streams[table.streamIndexes[leaf]!]!;
          if (!streamsToCheck.has(stream)) streamsToCheck.set(stream, table.revisions[leaf]!.toString());
        }
        if (streamsToCheck.size >= streamsPerCheck) await checkStreams();
      }
    };
    // Mostly the store holds exactly what was sealed, which one pass over the leaf table shows;
    // only a digest whose range differs is compared leaf by leaf, to name each difference.
    const compareObserved = async (digest: Digest, observed: readonly HashedEvent[]) => {
      const table = leafTableOf(digest);
      if (table === undefined || !sameAsTable(table, observed))
        reportEvents(digest.sequence, compareSealed(leavesOf(digest), observed.map(observedOf)));
      await checked(table, observed.length);
    };
    try {
      if (storedRangeMatches !== undefined) {
        // Each digest's range compared in one pass over its stored events; a range that differs is
        // read again event by event, to name each difference.
        for (let next = await ahead.next(); next !== undefined; next = await ahead.next()) {
          const { digest, prepared } = next;
          const table = leafTableOf(digest);
          if (table !== undefined && prepared.matches !== undefined && (await prepared.matches)) {
            await checked(table, table.count);
            continue;
          }
          const observed: HashedEvent[] = [];
          const { after: rangeAfter, last: rangeLast } = prepared.range;
          const start = rangeAfter === null ? undefined : positionOf(rangeAfter);
          const last = positionOf(rangeLast);
          for await (const event of hashedEventsAfter(eventStore, start, input.streamPrefixes)) {
            if (comparePositions(event.position, last) > 0) break;
            observed.push(event);
          }
          await compareObserved(digest, observed);
        }
        if (scope.kind === 'all') {
          const lastSealed = lastRead === undefined ? undefined : positionOf(lastRead.lastPosition);
          for await (const event of hashedEventsAfter(eventStore, lastSealed, input.streamPrefixes))
            noteUnsealed(event);
        }
      } else {
        // One walk over the archived events, each handed to the digest whose range it falls in.
        let current = (await ahead.next())?.digest;
        if (current !== undefined) {
          const start = current.afterPosition === null ? undefined : positionOf(current.afterPosition);
          let currentLast = positionOf(current.lastPosition);
          let observed: HashedEvent[] = [];
          // The next digest is taken before the current one is compared: progress then knows the last.
          const close = async (closing: Digest) => {
            const closingObserved = observed;
            observed = [];
            current = (await ahead.next())?.digest;
            if (current !== undefined) currentLast = positionOf(current.lastPosition);
            await compareObserved(closing, closingObserved);
          };
          for await (const event of hashedEventsAfter(eventStore, start, input.streamPrefixes)) {
            // Close the digests this event is past.
            while (current !== undefined && comparePositions(event.position, currentLast) > 0)
              await close(current);
            if (current !== undefined) observed.push(event);
            else if (scope.kind === 'all') noteUnsealed(event);
            else break;
          }
          while (current !== undefined) await close(current);
        } else if (scope.kind === 'all') {
          for await (const event of hashedEventsAfter(eventStore, undefined, input.streamPrefixes))
            noteUnsealed(event);
        }
      }
    } finally {
      await ahead.close();
    }
    await checkStreams();
  }

  if (
    oldestUnsealed !== undefined &&
    input.now.getTime() - oldestUnsealed.created.getTime() > input.unsealedGraceMs
  ) {
    report({
      kind: 'unsealed-tail',
      position: formatPosition(oldestUnsealed.position),
      stream: oldestUnsealed.streamName,
      revision: oldestUnsealed.revision.toString(),
      detail: `${unsealedEvents} event(s) after the last digest, the oldest written ${oldestUnsealed.created.toISOString()}, longer ago than sealing takes`,
    });
  }
  return {
    ok: findings.length === 0,
    scope:
      scope.kind === 'all'
        ? 'all'
        : scope.kind === 'range'
          ? `${scope.from.toISOString()}..${scope.to.toISOString()}`
          : scope.streamName,
    digests: wellFormed.count,
    eventsChecked,
    unsealedEvents,
    findings,
  };
};
