/**
 * Inclusion proofs: for each of a stream's archived events, the digest that covers it and the RFC
 * 6962 audit path from the event's leaf to that digest's signed Merkle root, so a third party holding
 * the public key can check one call without the whole archive.
 *
 * The digest covering a position is found by binary search over the digest stream (a digest's
 * sequence is its revision there, and their ranges follow the global order), so a proof costs a few
 * digest reads, whatever the archive's size.
 */
import Type from 'typebox';
import {
  comparePositions,
  formatPosition,
  parsePosition,
  type EventStore,
  type GlobalPosition,
  type RecordedEvent,
} from '../event-store/event-store.ts';
import { digestStreamName } from './digest-stream.ts';
import {
  bodyOfDigest,
  digestHash,
  digestType,
  DigestBody,
  isDigest,
  leavesOf,
  type Digest,
} from './digest.ts';
import { eventHash } from './event-hash.ts';
import { inclusionProof, leafHash, verifyInclusion } from './merkle.ts';

const Hex256 = Type.String({ pattern: '^[0-9a-f]{64}$' });

/** A digest as a proof carries it: everything signed, and the signature, without the leaf list. */
export const SignedDigest = Type.Object({
  ...DigestBody.properties,
  signature: Type.String({ description: 'Ed25519 over the RFC 8785 canonical JSON of the other fields' }),
});
export type SignedDigest = Type.Static<typeof SignedDigest>;

export const signedDigestOf = (digest: Digest): SignedDigest => {
  const { signature } = digest;
  return { ...bodyOfDigest(digest), signature };
};

export const EventProof = Type.Object({
  position: Type.String(),
  stream: Type.String(),
  revision: Type.String({ description: 'Revision within the stream (decimal text, lossless)' }),
  eventId: Type.String(),
  eventType: Type.String(),
  /** What the event hash is computed over, so anyone can recompute it. */
  storedData: Type.String({ description: 'The data exactly as stored (JSON text)' }),
  storedMetadata: Type.String({ description: 'The metadata exactly as stored (JSON text)' }),
  eventHash: Type.String({ description: 'SHA-256 over the stored event: the Merkle leaf (hex)' }),
  status: Type.Unsafe<'sealed' | 'unsealed' | 'differs'>({
    type: 'string',
    enum: ['sealed', 'unsealed', 'differs'],
    description:
      '`sealed`: proven below; `unsealed`: after the last digest; `differs`: the store now holds ' +
      'something else than was sealed at this position (the proof, if any, is of what was sealed; ' +
      'none when nothing was sealed there)',
  }),
  proof: Type.Union([
    Type.Null(),
    Type.Object({
      digestSequence: Type.Integer({ minimum: 0 }),
      leafIndex: Type.Integer({ minimum: 0 }),
      treeSize: Type.Integer({ minimum: 1 }),
      /** The sealed leaf: equal to eventHash unless status is `differs`. */
      sealedEventHash: Hex256,
      leafHash: Type.String({ description: 'RFC 6962 leaf hash: SHA-256(0x00 || event hash), hex' }),
      auditPath: Type.Array(Hex256, { description: 'RFC 6962 audit path, leaf to root, hex' }),
    }),
  ]),
});
export type EventProof = Type.Static<typeof EventProof>;

export const StreamProof = Type.Object({
  stream: Type.String(),
  events: Type.Array(EventProof),
  /** Each digest the proofs name, once, by sequence. */
  digests: Type.Array(
    Type.Object({ ...SignedDigest.properties, digestHash: Hex256 }, { additionalProperties: false }),
  ),
});
export type StreamProof = Type.Static<typeof StreamProof>;

export class DigestStreamError extends Error {
  override readonly name = 'DigestStreamError';
}

/** Reads digests by sequence (revision), keeping those already read for this one proof. */
export class DigestLookup {
  private readonly cache = new Map<bigint, Digest>();
  private last: Digest | null | undefined;

  constructor(private readonly eventStore: EventStore) {}

  private async read(revision: bigint): Promise<Digest> {
    const cached = this.cache.get(revision);
    if (cached !== undefined) return cached;
    for await (const event of this.eventStore.readStream(digestStreamName, {
      fromRevision: revision,
      maxCount: 1,
    })) {
      if (event.revision === revision && event.type === digestType && isDigest(event.data)) {
        if (event.data.sequence !== Number(revision)) break;
        this.cache.set(revision, event.data);
        return event.data;
      }
      break;
    }
    throw new DigestStreamError(
      `${digestStreamName} revision ${revision} is not the digest of that sequence`,
    );
  }

  private async lastDigest(): Promise<Digest | null> {
    if (this.last !== undefined) return this.last;
    this.last = null;
    for await (const event of this.eventStore.readAll({
      streamPrefixes: [digestStreamName],
      direction: 'backwards',
      maxCount: 1,
    })) {
      if (event.streamName === digestStreamName && event.type === digestType && isDigest(event.data)) {
        this.cache.set(event.revision, event.data);
        this.last = event.data;
      }
    }
    return this.last;
  }

  /** The digest whose range (after its predecessor's last position, up to its own) holds `position`. */
  async covering(position: GlobalPosition): Promise<Digest | undefined> {
    const last = await this.lastDigest();
    if (last === null || comparePositions(position, parsePosition(last.lastPosition)!) > 0) return undefined;
    let low = 0n;
    let high = BigInt(last.sequence);
    while (low < high) {
      const middle = (low + high) / 2n;
      const digest = await this.read(middle);
      if (comparePositions(parsePosition(digest.lastPosition)!, position) >= 0) high = middle;
      else low = middle + 1n;
    }
    return this.read(low);
  }
}

export const proveEvent = (event: RecordedEvent, digest: Digest | undefined): EventProof => {
  const position = formatPosition(event.position);
  const hash = eventHash(event).toString('hex');
  const base = {
    position,
    stream: event.streamName,
    revision: event.revision.toString(),
    eventId: event.id,
    eventType: event.type,
    storedData: event.storedData,
    storedMetadata: event.storedMetadata,
    eventHash: hash,
  };
  if (digest === undefined) return { ...base, status: 'unsealed', proof: null };
  const leaves = leavesOf(digest);
  const leafIndex = leaves.findIndex((leaf) => leaf[0] === position);
  const leaf = leaves[leafIndex];
  // Inside a sealed range but sealed by no leaf: inserted after sealing.
  if (leaf === undefined) return { ...base, status: 'differs', proof: null };
  const leafHashes = leaves.map((each) => leafHash(Buffer.from(each[3], 'hex')));
  return {
    ...base,
    status: leaf[3] === hash && leaf[1] === event.streamName ? 'sealed' : 'differs',
    proof: {
      digestSequence: digest.sequence,
      leafIndex,
      treeSize: leaves.length,
      sealedEventHash: leaf[3],
      leafHash: leafHashes[leafIndex]!.toString('hex'),
      auditPath: inclusionProof(leafHashes, leafIndex).map((node) => node.toString('hex')),
    },
  };
};

/** Proofs for every event of a stream, in revision order, with the digests they name. */
export const proveStream = async (
  eventStore: EventStore,
  streamName: string,
  events: AsyncIterable<RecordedEvent> = eventStore.readStream(streamName),
): Promise<StreamProof> => {
  const lookup = new DigestLookup(eventStore);
  const proofs: EventProof[] = [];
  const digests = new Map<number, Digest>();
  for await (const event of events) {
    const digest = await lookup.covering(event.position);
    if (digest !== undefined) digests.set(digest.sequence, digest);
    proofs.push(proveEvent(event, digest));
  }
  return {
    stream: streamName,
    events: proofs,
    digests: [...digests.values()]
      .sort((a, b) => a.sequence - b.sequence)
      .map((digest) => ({ ...signedDigestOf(digest), digestHash: digestHash(digest) })),
  };
};

/**
 * Whether an event proof holds against a digest's signed root: the stored fields hash to the event
 * hash, which is the sealed leaf, whose audit path leads to the root. (The digest's own signature is
 * checked separately, with the public key.)
 */
export const checkEventProof = (
  proof: EventProof,
  digest: Pick<SignedDigest, 'merkleRoot' | 'sequence' | 'eventCount'>,
): 'ok' | 'event-hash' | 'differs' | 'path' => {
  const recomputed = eventHash({
    streamName: proof.stream,
    revision: BigInt(proof.revision),
    id: proof.eventId,
    type: proof.eventType,
    storedData: proof.storedData,
    storedMetadata: proof.storedMetadata,
  }).toString('hex');
  if (recomputed !== proof.eventHash) return 'event-hash';
  // The size is bound by the signed digest: a leaf of the left subtree has the same path in a
  // larger tree, so the proof's size must be the digest's own.
  if (proof.proof === null || proof.proof.treeSize !== digest.eventCount) return 'path';
  if (proof.proof.sealedEventHash !== proof.eventHash) return 'differs';
  const included = verifyInclusion(
    leafHash(Buffer.from(proof.eventHash, 'hex')),
    proof.proof.leafIndex,
    proof.proof.treeSize,
    proof.proof.auditPath.map((node) => Buffer.from(node, 'hex')),
    Buffer.from(digest.merkleRoot, 'hex'),
  );
  return included && proof.proof.digestSequence === digest.sequence ? 'ok' : 'path';
};
