/**
 * The hash of one archived event: SHA-256 over its stream, revision, id, type, and its data and
 * metadata exactly as stored, each field length-prefixed so no two different events can produce the
 * same input. Position and write time are not part of it: the digest's leaf list binds each hash to
 * its position, so a moved event is told apart from a changed one.
 */
import { createHash } from 'node:crypto';
import type { RecordedEvent } from '../event-store/event-store.ts';

/** The first field of every event hash; the PostgreSQL store computes the same hash in SQL. */
export const eventHashDomain = 'calltrail-event-v1';

export type HashedFields = Pick<
  RecordedEvent,
  'streamName' | 'revision' | 'id' | 'type' | 'storedData' | 'storedMetadata'
>;

const lengthPrefixed = (hash: ReturnType<typeof createHash>, text: string): void => {
  const bytes = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64BE(BigInt(bytes.length));
  hash.update(length).update(bytes);
};

export const eventHash = (event: HashedFields): Buffer => {
  const hash = createHash('sha256');
  for (const field of [
    eventHashDomain,
    event.streamName,
    event.revision.toString(),
    event.id.toLowerCase(),
    event.type,
    event.storedData,
    event.storedMetadata,
  ]) {
    lengthPrefixed(hash, field);
  }
  return hash.digest();
};
