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

/** Every event of the digest stream, in order, digests or not (the verifier judges them). */
export async function* readDigestEvents(
  eventStore: EventStore,
): AsyncGenerator<{ readonly revision: bigint; readonly type: string; readonly data: unknown }> {
  for await (const event of eventStore.readStream(digestStreamName)) {
    yield { revision: event.revision, type: event.type, data: event.data };
  }
}
