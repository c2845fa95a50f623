/**
 * An evidence bundle: one call's complete record in one JSON file, checkable offline. It holds the
 * call's archived events (raw bodies, reception metadata with Flireo's signature material, and the
 * data and metadata exactly as stored), each event's inclusion proof, the digests those proofs name
 * (as signed), and the sealing public key; the whole is signed with the sealing key at export, so a
 * change to any byte is detected even where no seal reaches (the store's write time, say).
 */
import canonicalize from 'canonicalize';
import Type from 'typebox';
import { ArchivedEventLine, toArchivedEventLine } from '../audit/archived-event-view.ts';
import type { EventStore, RecordedEvent } from '../event-store/event-store.ts';
import { EventProof, proveStream, SignedDigest } from './proof.ts';
import { rawPublicKeyHex, signBytes, type SigningKey } from './signing-key.ts';

export const evidenceFormat = 'calltrail-evidence';

const Hex256 = Type.String({ pattern: '^[0-9a-f]{64}$' });

/** A proof as the bundle carries it: the stored text is in the event already. */
export const BundledProof = Type.Object({
  position: Type.String(),
  eventHash: Hex256,
  status: EventProof.properties.status,
  proof: EventProof.properties.proof,
});
export type BundledProof = Type.Static<typeof BundledProof>;

export const BundleSignature = Type.Object({
  keyId: Type.String({ pattern: '^[0-9a-f]{16}$' }),
  /** Ed25519 over the RFC 8785 canonical JSON of the bundle without `signature`, base64. */
  value: Type.String(),
});

export const EvidenceBundle = Type.Object({
  format: Type.Literal(evidenceFormat),
  version: Type.Literal(1),
  callId: Type.String(),
  stream: Type.String(),
  exportedAt: Type.String(),
  publicKey: Type.Object({
    keyId: Type.String(),
    pem: Type.String(),
    hex: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  }),
  events: Type.Array(ArchivedEventLine),
  proofs: Type.Array(BundledProof),
  digests: Type.Array(Type.Object({ ...SignedDigest.properties, digestHash: Hex256 })),
  signature: BundleSignature,
});
export type EvidenceBundle = Type.Static<typeof EvidenceBundle>;

/** The exact bytes a bundle's signature covers. */
export const bundleSignedBytes = (bundle: Omit<EvidenceBundle, 'signature'> | EvidenceBundle): Buffer => {
  const { signature: _signature, ...signed } = bundle as EvidenceBundle;
  return Buffer.from(canonicalize(signed) ?? '', 'utf8');
};

export const buildEvidenceBundle = async (
  eventStore: EventStore,
  call: {
    readonly callId: string;
    readonly streamName: string;
    readonly events: AsyncIterable<RecordedEvent>;
  },
  key: SigningKey,
  exportedAt: Date,
): Promise<EvidenceBundle> => {
  const events: RecordedEvent[] = [];
  const recorded = (async function* () {
    for await (const event of call.events) {
      events.push(event);
      yield event;
    }
  })();
  const proof = await proveStream(eventStore, call.streamName, recorded);
  const unsigned: Omit<EvidenceBundle, 'signature'> = {
    format: evidenceFormat,
    version: 1,
    callId: call.callId,
    stream: call.streamName,
    exportedAt: exportedAt.toISOString(),
    publicKey: { keyId: key.keyId, pem: key.publicKeyPem, hex: rawPublicKeyHex(key.publicKey) },
    events: events.map(toArchivedEventLine),
    proofs: proof.events.map((each) => ({
      position: each.position,
      eventHash: each.eventHash,
      status: each.status,
      proof: each.proof,
    })),
    digests: proof.digests,
  };
  return {
    ...unsigned,
    signature: { keyId: key.keyId, value: signBytes(key, bundleSignedBytes(unsigned)) },
  };
};
