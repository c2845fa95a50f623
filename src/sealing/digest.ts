/**
 * A digest: the seal over one consecutive run of archived events in the global order. It names the
 * last position it covers (the run starts right after the previous digest's), the number of events,
 * the Merkle root over their event hashes (RFC 6962), the hash of the previous digest (a chain),
 * the time, and an Ed25519 signature with the key's id over the canonical JSON (RFC 8785) of all of
 * that. The leaf list (position, stream, revision and hash of each event, in order) travels with the
 * digest unsigned: it is bound by the signed root, and lets a verifier say exactly which event is
 * modified, missing, inserted or moved.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import Type from 'typebox';
import { Compile } from 'typebox/compile';
import { formatPosition, type HashedEvent, type RecordedEvent } from '../event-store/event-store.ts';
import { eventHash } from './event-hash.ts';
import { leafHashOfHex, merkleRootOfLeafHashes } from './merkle.ts';
import { signBytes, verifyBytes, type PublicKey, type SigningKey } from './signing-key.ts';

export const digestType = 'archive-digest';
export const digestVersion = 1;

const Hex256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
const PositionText = Type.String({ pattern: '^\\d{1,20}/\\d{1,20}$' });

/** One sealed event: [position, stream, revision, event hash (hex)]. */
export const DigestLeaf = Type.Tuple([
  PositionText,
  Type.String(),
  Type.String({ pattern: '^\\d{1,20}$' }),
  Hex256,
]);
export type DigestLeaf = Type.Static<typeof DigestLeaf>;

export const DigestBody = Type.Object({
  version: Type.Literal(digestVersion),
  /** 0, 1, 2, ...: the digest's place in the chain. */
  sequence: Type.Integer({ minimum: 0 }),
  /** The last position the previous digest covered; null for the first digest. */
  afterPosition: Type.Union([PositionText, Type.Null()]),
  /** The last position this digest covers (inclusive). */
  lastPosition: PositionText,
  eventCount: Type.Integer({ minimum: 1 }),
  merkleRoot: Hex256,
  /** `digestHash` of the previous digest; null for the first. */
  previousDigestHash: Type.Union([Hex256, Type.Null()]),
  /** The store's write times of the first and last event covered (ISO 8601). */
  firstEventAt: Type.String(),
  lastEventAt: Type.String(),
  sealedAt: Type.String(),
  keyId: Type.String({ pattern: '^[0-9a-f]{16}$' }),
});
export type DigestBody = Type.Static<typeof DigestBody>;

export const Digest = Type.Object({
  ...DigestBody.properties,
  /** Ed25519 over the canonical JSON of the body, base64. */
  signature: Type.String(),
  leaves: Type.Array(DigestLeaf),
});
export type Digest = Type.Static<typeof Digest>;

const digestCheck = Compile(Digest);

export const isDigest = (value: unknown): value is Digest => digestCheck.Check(value);

const bodyOf = (digest: Digest): DigestBody => ({
  version: digest.version,
  sequence: digest.sequence,
  afterPosition: digest.afterPosition,
  lastPosition: digest.lastPosition,
  eventCount: digest.eventCount,
  merkleRoot: digest.merkleRoot,
  previousDigestHash: digest.previousDigestHash,
  firstEventAt: digest.firstEventAt,
  lastEventAt: digest.lastEventAt,
  sealedAt: digest.sealedAt,
  keyId: digest.keyId,
});

/** The exact bytes signed: RFC 8785 canonical JSON of the body. */
export const signedBytes = (digest: Digest | DigestBody): Buffer =>
  Buffer.from(canonicalize('signature' in digest ? bodyOf(digest) : digest) ?? '', 'utf8');

/** What the next digest chains to: SHA-256 (hex) of the signed bytes. */
export const digestHash = (digest: Digest): string =>
  createHash('sha256').update(signedBytes(digest)).digest('hex');

const hashedOf = (event: RecordedEvent): HashedEvent => ({
  position: event.position,
  streamName: event.streamName,
  revision: event.revision,
  hash: eventHash(event).toString('hex'),
  created: event.created,
});

export const leafOf = (event: HashedEvent): DigestLeaf => [
  formatPosition(event.position),
  event.streamName,
  event.revision.toString(),
  event.hash,
];

/** The Merkle root (hex) over the leaves' event hashes, in order. */
export const rootOfLeaves = (leaves: readonly DigestLeaf[]): string =>
  merkleRootOfLeafHashes(leaves.map((leaf) => leafHashOfHex(leaf[3]))).toString('hex');

/** The digest over already hashed events (consecutive in the global order, after `previous`). */
export const sealHashedEvents = (
  events: readonly HashedEvent[],
  previous: Digest | undefined,
  key: SigningKey,
  sealedAt: Date,
): Digest => {
  const first = events[0];
  const last = events[events.length - 1];
  if (first === undefined || last === undefined) throw new RangeError('a digest covers at least one event');
  const leaves = events.map(leafOf);
  const body: DigestBody = {
    version: digestVersion,
    sequence: previous === undefined ? 0 : previous.sequence + 1,
    afterPosition: previous?.lastPosition ?? null,
    lastPosition: formatPosition(last.position),
    eventCount: events.length,
    merkleRoot: rootOfLeaves(leaves),
    previousDigestHash: previous === undefined ? null : digestHash(previous),
    firstEventAt: first.created.toISOString(),
    lastEventAt: last.created.toISOString(),
    sealedAt: sealedAt.toISOString(),
    keyId: key.keyId,
  };
  return { ...body, signature: signBytes(key, signedBytes(body)), leaves };
};

export const sealEvents = (
  events: readonly RecordedEvent[],
  previous: Digest | undefined,
  key: SigningKey,
  sealedAt: Date,
): Digest => sealHashedEvents(events.map(hashedOf), previous, key, sealedAt);

export const digestSignatureValid = (digest: Digest, keys: ReadonlyMap<string, PublicKey>): boolean => {
  const key = keys.get(digest.keyId);
  return key !== undefined && verifyBytes(key, signedBytes(digest), digest.signature);
};
