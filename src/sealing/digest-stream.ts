/**
 * Where digests live in the event store: one stream, outside every archive prefix, so the sealer
 * never seals its own output. Its last event is the sealer's checkpoint: the next digest covers what
 * comes after it, chains to it, and is appended at the next revision (so two sealers can never fork
 * the chain).
 */
import type { EventStore } from '../event-store/event-store.ts';
import { digestType, isDigest, type Digest } from './digest.ts';

export const digestStreamName = 'calltrail-digests';

export interface StoredDigest {
  readonly digest: Digest;
  readonly revision: bigint;
}

export class MalformedDigestError extends Error {
  override readonly name = 'MalformedDigestError';
}

/** The last digest: the digest stream's last event, read on its own (whatever the archive's size). */
export const readLastDigest = async (eventStore: EventStore): Promise<StoredDigest | undefined> => {
  for await (const event of eventStore.readStream(digestStreamName, {
    direction: 'backwards',
    maxCount: 1,
  })) {
    if (event.type !== digestType || !isDigest(event.data)) {
      throw new MalformedDigestError(
        `the last event of ${digestStreamName} (revision ${event.revision}) is not a digest`,
      );
    }
    return { digest: event.data, revision: event.revision };
  }
  return undefined;
};

/**
 * Digests read at a time: a digest holds up to 100,000 leaves, so a page of the store's own size (500
 * events) could hold gigabytes; this many bounds a reader's memory whatever the archive's size (some
 * 2 MB at the default of 1,000 leaves per digest) and keeps the reads few (one per 32 digests).
 */
const digestsPerRead = 32;

/** Every event of the digest stream, in order, digests or not (the verifier judges them). */
export async function* readDigestEvents(
  eventStore: EventStore,
): AsyncGenerator<{ readonly revision: bigint; readonly type: string; readonly data: unknown }> {
  let fromRevision = 0n;
  for (;;) {
    let read = 0;
    for await (const event of eventStore.readStream(digestStreamName, {
      fromRevision,
      maxCount: digestsPerRead,
    })) {
      read += 1;
      fromRevision = event.revision + 1n;
      yield { revision: event.revision, type: event.type, data: event.data };
    }
    if (read < digestsPerRead) return;
  }
}
