/**
 * A digest: the seal over one consecutive run of archived events in the global order. It names the
 * last position it covers (the run starts right after the previous digest's), the number of events,
 * the Merkle root over their event hashes (RFC 6962), the hash of the previous digest (a chain),
 * the time, and an Ed25519 signature with the key's id over the canonical JSON (RFC 8785) of all of
 * that. The leaf list (position, stream, revision and hash of each event, in order) travels with the
 * digest unsigned: it is bound by the signed root, and lets a verifier say exactly which event is
 * modified, missing, inserted or moved.
 *
 * Version 2 (written now) carries the leaf list compactly as `leafTable` (see `leaf-table.ts`: the
 * hashes as one base64 blob, positions and revisions as varints, each stream named once), about half
 * of version 1's JSON tuple per event (`leaves`), which is still read and verified.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import Type from 'typebox';
import { Compile } from 'typebox/compile';
import {
  formatPosition,
  type HashedEvent,
  type HashedEventColumns,
  type RecordedEvent,
} from '../event-store/event-store.ts';
import { eventHash } from './event-hash.ts';
import {
  decodeLeaves,
  encodeLeaves,
  leafTuples,
  positionAt,
  tableOfLeafTuples,
  type LeafTable,
} from './leaf-table.ts';
import { columnsOfHashedEvents } from './hashed-columns.ts';
import { merkleRootOfBlob } from './merkle.ts';
import { signBytes, verifyBytes, type PublicKey, type SigningKey } from './signing-key.ts';

export const digestType = 'archive-digest';
/** The version the sealer writes; version 1 digests are still read. */
export const digestVersion = 2;

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
  version: Type.Union([Type.Literal(1), Type.Literal(2)]),
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

/**
 * Version 2's leaf list; `leaf-table.ts` says what the blobs hold. The blobs are checked as base64
 * where they are decoded (`decodeLeaves`, which refuses any text that is not their canonical
 * base64): a pattern here cost more than decoding them (a regular expression over some 48 KB per
 * digest, 3% of a verification).
 */
export const DigestLeafTable = Type.Object({
  streams: Type.Array(Type.String()),
  hashes: Type.String({ contentEncoding: 'base64' }),
  places: Type.String({ contentEncoding: 'base64' }),
});

const DigestV1 = Type.Object({
  ...DigestBody.properties,
  version: Type.Literal(1),
  /** Ed25519 over the canonical JSON of the body, base64. */
  signature: Type.String(),
  leaves: Type.Array(DigestLeaf),
});

const DigestV2 = Type.Object({
  ...DigestBody.properties,
  version: Type.Literal(2),
  /** Ed25519 over the canonical JSON of the body, base64. */
  signature: Type.String(),
  leafTable: DigestLeafTable,
});

export const Digest = Type.Union([DigestV1, DigestV2]);
export type Digest = Type.Static<typeof Digest>;

const digestCheck = Compile(Digest);

export const isDigest = (value: unknown): value is Digest => digestCheck.Check(value);

/** A digest without its leaf list: what is signed, and the signature. */
export type SignedBody = DigestBody & { readonly signature: string };

export const bodyOfDigest = (digest: SignedBody): DigestBody => ({
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
export const signedBytes = (digest: SignedBody | DigestBody): Buffer =>
  Buffer.from(canonicalize('signature' in digest ? bodyOfDigest(digest) : digest) ?? '', 'utf8');

/** What the next digest chains to: SHA-256 (hex) of the signed bytes. */
export const digestHash = (digest: SignedBody): string =>
  createHash('sha256').update(signedBytes(digest)).digest('hex');

const hashedOf = (event: RecordedEvent): HashedEvent => ({
  position: event.position,
  streamName: event.streamName,
  revision: event.revision,
  hash: eventHash(event).toString('hex'),
  created: event.created,
});

const tables = new WeakMap<Digest, LeafTable | null>();

/**
 * The digest's leaf list in columns, whichever version stores it; undefined when it cannot be read
 * (a position, hash or varint out of shape: the list was altered). Read once per digest object.
 */
export const leafTableOf = (digest: Digest): LeafTable | undefined => {
  let table = tables.get(digest);
  if (table === undefined) {
    try {
      table =
        (digest.version === 1 ? tableOfLeafTuples(digest.leaves) : decodeLeaves(digest.leafTable)) ?? null;
    } catch {
      table = null;
    }
    tables.set(digest, table);
  }
  return table ?? undefined;
};

/** The leaf list as tuples (empty when unreadable). */
export const leavesOf = (digest: Digest): readonly DigestLeaf[] => {
  if (digest.version === 1) return digest.leaves;
  const table = leafTableOf(digest);
  return table === undefined ? [] : leafTuples(table);
};

/** The Merkle root (hex) over the table's event hashes, in order. */
export const rootOfTable = (table: LeafTable): string =>
  merkleRootOfBlob(table.hashes, table.count).toString('hex');

/** Whether the digest's leaf list is readable, as long as its event count, and has its signed root. */
export const leavesMatchRoot = (digest: Digest): boolean => {
  const table = leafTableOf(digest);
  return table !== undefined && table.count === digest.eventCount && rootOfTable(table) === digest.merkleRoot;
};

/** The digest over already hashed events, in columns (consecutive in the global order, after `previous`). */
export const sealHashedEvents = (
  table: HashedEventColumns,
  previous: Digest | undefined,
  key: SigningKey,
  sealedAt: Date,
  version: 1 | 2 = digestVersion,
): Digest => {
  const { count } = table;
  if (count === 0) throw new RangeError('a digest covers at least one event');
  const body: DigestBody = {
    version,
    sequence: previous === undefined ? 0 : previous.sequence + 1,
    afterPosition: previous?.lastPosition ?? null,
    lastPosition: formatPosition(positionAt(table, count - 1)),
    eventCount: count,
    merkleRoot: rootOfTable(table),
    previousDigestHash: previous === undefined ? null : digestHash(previous),
    firstEventAt: new Date(table.createdMs[0]!).toISOString(),
    lastEventAt: new Date(table.createdMs[count - 1]!).toISOString(),
    sealedAt: sealedAt.toISOString(),
    keyId: key.keyId,
  };
  const signature = signBytes(key, signedBytes(body));
  const digest: Digest =
    version === 1
      ? { ...body, version, signature, leaves: leafTuples(table) }
      : { ...body, version, signature, leafTable: encodeLeaves(table) };
  tables.set(digest, table);
  return digest;
};

export const sealEvents = (
  events: readonly RecordedEvent[],
  previous: Digest | undefined,
  key: SigningKey,
  sealedAt: Date,
  version: 1 | 2 = digestVersion,
): Digest => sealHashedEvents(columnsOfHashedEvents(events.map(hashedOf)), previous, key, sealedAt, version);

export const digestSignatureValid = (digest: SignedBody, keys: ReadonlyMap<string, PublicKey>): boolean => {
  const key = keys.get(digest.keyId);
  return key !== undefined && verifyBytes(key, signedBytes(digest), digest.signature);
};
