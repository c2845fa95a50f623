/**
 * The sealer: follows the global order of the archive's streams, off the webhook's hot path, and
 * every `maxEvents` events or `maxSeconds` after the first unsealed one (whichever comes first)
 * appends a signed digest to the digest stream, and writes it out as a file when a directory is set.
 *
 * Like the projector, any number of processes may run it: one holds the sealer's session advisory
 * lock in PostgreSQL and seals, the others stand by and take over when its session ends. Its
 * checkpoint is the digest stream itself (the last digest's position), and each digest is appended
 * at an exact expected revision, so even two sealers that both believed they led could not fork or
 * duplicate the chain: the loser starts over from the winner's digest.
 */
import type pg from 'pg';
import type {
  EventStore,
  GlobalPosition,
  HashedEventColumns,
  HashedEventPage,
} from '../event-store/event-store.ts';
import { parsePosition } from '../event-store/event-store.ts';
import type { Logger } from '../logger.ts';
import { digestType, sealHashedEvents, type Digest } from './digest.ts';
import { writeDigestFile } from './digest-files.ts';
import { digestStreamName, readLastDigest } from './digest-stream.ts';
import { readHashPage } from './event-hashes.ts';
import { PendingHashes } from './hashed-columns.ts';
import type { SigningKey } from './signing-key.ts';

export interface SealerOptions {
  /** Which streams are sealed: every archive stream. */
  readonly streamPrefixes: readonly string[];
  readonly maxEvents: number;
  readonly maxSeconds: number;
  /** Where digest files go; undefined: none are written. */
  readonly digestDirectory: string | undefined;
  readonly standbyPollMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /** How often the active sealer looks for new events once it has sealed everything. Default 500. */
  readonly followPollMs?: number;
}

const defaultFollowPollMs = 500;

export interface SealerDependencies {
  readonly eventStore: EventStore;
  readonly pool: pg.Pool;
  readonly key: SigningKey;
  readonly logger: Logger;
  readonly clock: () => Date;
}

export type SealerRole = 'starting' | 'standby' | 'active' | 'stopped';

export interface RunningSealer {
  readonly role: SealerRole;
  /** The last digest this process appended or started from. */
  readonly lastDigest: Digest | undefined;
  stop(): Promise<void>;
}

/** Lock key (class, hashtext('sealer')); the class is the projector's family, next free number. */
const sealerLockClass = 0x43_54_10;

class ChainMovedError extends Error {
  override readonly name = 'ChainMovedError';
}

export const startSealer = (dependencies: SealerDependencies, options: SealerOptions): RunningSealer => {
  const { eventStore, pool, key, logger, clock } = dependencies;
  let role: SealerRole = 'starting';
  let lastDigest: Digest | undefined;
  let stopping = false;
  let wake: (() => void) | undefined;

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  /** One digest per run of events, chained after `previous`; nothing is appended yet. */
  const sealRuns = (runs: readonly HashedEventColumns[], previous: Digest | undefined) => {
    const digests: Digest[] = [];
    for (const events of runs)
      digests.push(sealHashedEvents(events, digests.at(-1) ?? previous, key, clock()));
    return digests;
  };

  /**
   * Appends digests in one append (so a backlog costs one round trip and one flush for several
   * digests), at the exact revision after the last digest.
   */
  const appendDigests = async (digests: readonly Digest[], revision: bigint | undefined) => {
    const result = await eventStore.append(
      digestStreamName,
      digests.map((digest) => ({
        id: crypto.randomUUID(),
        type: digestType,
        data: digest,
        metadata: { keyId: key.keyId },
      })),
      revision ?? 'no-stream',
    );
    if (result.outcome !== 'appended') throw new ChainMovedError('another sealer appended a digest');
    for (const digest of digests) {
      if (options.digestDirectory !== undefined) await writeDigestFile(options.digestDirectory, digest);
      lastDigest = digest;
      logger.debug(
        { sequence: digest.sequence, events: digest.eventCount, lastPosition: digest.lastPosition },
        'sealed',
      );
    }
    return result.nextRevision;
  };

  /**
   * Seals until stopped; throws on any failure, after which the caller starts over. Reads the
   * archive's event hashes a page at a time (the next page while the current one is sealed) and
   * appends each page's digests while the next page is sealed: at most one append is in flight, and
   * the next waits for it (its revision follows from it), so the chain is appended in order. At the
   * end of the archive, looks again every `followPollMs`.
   */
  const seal = async (): Promise<void> => {
    const last = await readLastDigest(eventStore);
    lastDigest = last?.digest;
    // The newest digest sealed, appended or not: the next one chains after it.
    let chainEnd = lastDigest;
    let lookedAt = last === undefined ? undefined : parsePosition(last.digest.lastPosition);
    const followPollMs = options.followPollMs ?? defaultFollowPollMs;
    const inBackground = <T>(promise: Promise<T>) => {
      promise.catch(() => {}); // awaited below, unless this attempt ends first
      return promise;
    };
    const readAfter = (after: GlobalPosition | undefined) =>
      inBackground(readHashPage(eventStore, after, options.streamPrefixes, 'recorded'));
    let appending: Promise<bigint | undefined> = Promise.resolve(last?.revision);
    // At most maxEvents - 1 events (and the pages they are on) wait here between pages, so memory
    // stays bounded.
    const pending = new PendingHashes();
    let sealBy: number | undefined;
    let next: Promise<HashedEventPage> | undefined;
    try {
      while (!stopping) {
        const page = await (next ?? readAfter(lookedAt));
        lookedAt = page.lookedAt ?? lookedAt;
        next = page.reachedEnd ? undefined : readAfter(lookedAt);
        if (page.events.count > 0) {
          pending.push(page.events);
          sealBy ??= clock().getTime() + options.maxSeconds * 1000;
        }
        const runs: HashedEventColumns[] = [];
        while (pending.count >= options.maxEvents) runs.push(pending.take(options.maxEvents));
        const due = sealBy !== undefined && clock().getTime() >= sealBy;
        if (due && pending.count > 0) runs.push(pending.take(pending.count));
        if (runs.length > 0) {
          const digests = sealRuns(runs, chainEnd);
          chainEnd = digests.at(-1);
          const revision = await appending;
          appending = inBackground(appendDigests(digests, revision));
          sealBy = pending.count > 0 ? clock().getTime() + options.maxSeconds * 1000 : undefined;
        }
        if (next === undefined && !stopping) {
          await appending;
          await pause(
            sealBy === undefined
              ? followPollMs
              : Math.min(followPollMs, Math.max(0, sealBy - clock().getTime())),
          );
        }
      }
    } finally {
      // Whatever ends this attempt, the digest in flight lands or fails before the next attempt reads the chain.
      await appending.catch(() => {});
    }
    await appending;
  };

  const run = async () => {
    let retryMs = options.retryInitialMs;
    while (!stopping) {
      let session: pg.PoolClient | undefined;
      try {
        session = await pool.connect();
        const { rows } = await session.query<{ locked: boolean }>(
          `SELECT pg_try_advisory_lock($1::int, hashtext('sealer')) AS locked`,
          [sealerLockClass],
        );
        if (rows[0]?.locked !== true) {
          role = 'standby';
          session.release();
          session = undefined;
          await pause(options.standbyPollMs);
          continue;
        }
        role = 'active';
        logger.info({ keyId: key.keyId }, 'sealer active');
        await seal();
        retryMs = options.retryInitialMs;
      } catch (error) {
        if (stopping) break;
        if (error instanceof ChainMovedError) {
          logger.warn('the digest chain moved under this sealer; starting over from its end');
        } else {
          logger.error({ err: error, retryMs }, 'sealer failed; retrying');
          await pause(retryMs);
          retryMs = Math.min(options.retryMaxMs, retryMs * 2);
        }
      } finally {
        // Ending the session releases the lock, so a standby can take over.
        session?.release(true);
      }
    }
    role = 'stopped';
  };

  const running = run();
  return {
    get role() {
      return role;
    },
    get lastDigest() {
      return lastDigest;
    },
    stop: async () => {
      stopping = true;
      wake?.();
      await running;
    },
  };
};
