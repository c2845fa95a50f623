/**
 * The hash of one archived event: SHA-256 over its stream, revision, id, type, and its data and
 * metadata exactly as stored, each field length-prefixed so no two different events can produce the
 * same input. Position and write time are not part of it: the digest's leaf list binds each hash to
 * its position, so a moved event is told apart from a changed one.
 */
import { createHash, hash } from 'node:crypto';
import type { RecordedEvent, StoredEventBytes } from '../event-store/event-store.ts';

/**
 * The first field of every event hash. The PostgreSQL store records the same hash, computed in SQL,
 * as each event is written (what sealing uses); verification always computes it here.
 */
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

const domainBytes = Buffer.from(eventHashDomain, 'utf8');
const lengthBytes = 8;
/** An id's text: 32 lowercase hex digits and 4 hyphens, as every store writes it. */
const idTextBytes = 36;
const hexDigits = Buffer.from('0123456789abcdef', 'latin1');
const hyphen = 0x2d;
/** Events up to this size are laid out in one reused buffer; larger ones get a buffer of their own. */
const reusedInputBytes = 1024 * 1024;
let reusedInput = Buffer.allocUnsafe(64 * 1024);

const putLength = (input: Buffer, at: number, length: number): number => {
  input.writeUInt32BE(Math.floor(length / 0x1_0000_0000), at);
  input.writeUInt32BE(length % 0x1_0000_0000, at + 4);
  return at + lengthBytes;
};

const putBytes = (input: Buffer, at: number, from: Buffer, start: number, end: number): number => {
  const next = putLength(input, at, end - start);
  return next + from.copy(input, next, start, end);
};

/**
 * `eventHash` of an event given as its stored bytes (`readStoredEvents`): the same input, laid out
 * straight from those bytes (no string per field), hashed in one call. The hash comes as a string of
 * 32 one-byte characters (latin1), not a Buffer: a Buffer per event, each with memory of its own
 * outside the heap, cost more than hashing the event (2.3 against 1.1 us for a 1.4 KB event).
 */
export const storedEventHashText = (event: StoredEventBytes): string => {
  const { bytes } = event;
  const revisionHigh = bytes.readUInt32BE(event.revision);
  const revision =
    revisionHigh === 0
      ? String(bytes.readUInt32BE(event.revision + 4))
      : bytes.readBigUInt64BE(event.revision).toString();
  const size =
    7 * lengthBytes +
    domainBytes.length +
    (event.streamNameEnd - event.streamNameStart) +
    revision.length +
    idTextBytes +
    (event.typeEnd - event.typeStart) +
    (event.dataEnd - event.dataStart) +
    (event.metadataEnd - event.metadataStart);
  if (size > reusedInput.length && size <= reusedInputBytes)
    reusedInput = Buffer.allocUnsafe(Math.min(reusedInputBytes, 2 * size));
  const input = size <= reusedInput.length ? reusedInput : Buffer.allocUnsafe(size);
  let at = putBytes(input, 0, domainBytes, 0, domainBytes.length);
  at = putBytes(input, at, bytes, event.streamNameStart, event.streamNameEnd);
  at = putLength(input, at, revision.length);
  at += input.write(revision, at, 'latin1');
  at = putLength(input, at, idTextBytes);
  for (let index = 0; index < 16; index += 1) {
    if (index === 4 || index === 6 || index === 8 || index === 10) input[at++] = hyphen;
    const byte = bytes[event.id + index]!;
    input[at++] = hexDigits[byte >> 4]!;
    input[at++] = hexDigits[byte & 0x0f]!;
  }
  at = putBytes(input, at, bytes, event.typeStart, event.typeEnd);
  at = putBytes(input, at, bytes, event.dataStart, event.dataEnd);
  at = putBytes(input, at, bytes, event.metadataStart, event.metadataEnd);
  return hash('sha256', input.subarray(0, at), 'binary');
};
