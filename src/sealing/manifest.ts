/**
 * Signed manifests for the files calltrail writes (the terminations CSV, replay JSON lines): what was
 * asked (the query), when, how many rows or events, the file's size and SHA-256, and the last digest
 * at that moment, signed with the sealing key. Kept beside the file (`FILE.manifest.json`) or sent as
 * an HTTP trailer, it lets anyone holding the public key check the file is exactly what was exported.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import canonicalize from 'canonicalize';
import Type from 'typebox';
import Value from 'typebox/value';
import type { EventStore, GlobalPosition } from '../event-store/event-store.ts';
import { readLastDigest } from './digest-stream.ts';
import { digestHash, type Digest } from './digest.ts';
import { BundleSignature } from './evidence.ts';
import { DigestLookup } from './proof.ts';
import { signBytes, verifyBytes, type PublicKey, type SigningKey } from './signing-key.ts';

export const manifestFormat = 'calltrail-manifest';

export const ManifestKind = Type.Union([Type.Literal('replay'), Type.Literal('terminations-csv')]);
export type ManifestKind = Type.Static<typeof ManifestKind>;

export const DigestReference = Type.Object({
  sequence: Type.Integer({ minimum: 0 }),
  digestHash: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  lastPosition: Type.String(),
});
export type DigestReference = Type.Static<typeof DigestReference>;

export const Manifest = Type.Object({
  format: Type.Literal(manifestFormat),
  version: Type.Literal(1),
  kind: ManifestKind,
  /** The selection exactly as asked (option or parameter names to values). */
  query: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()])),
  createdAt: Type.String(),
  /** Rows (CSV, header excluded) or events (JSON lines). */
  count: Type.Integer({ minimum: 0 }),
  bytes: Type.Integer({ minimum: 0 }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  /** The digest covering the file's last event (replay), or the last digest at export; null if none. */
  lastDigest: Type.Union([DigestReference, Type.Null()]),
  signature: BundleSignature,
});
export type Manifest = Type.Static<typeof Manifest>;

export const isManifest = (value: unknown): value is Manifest => Value.Check(Manifest, value);

export const manifestFileName = (file: string): string => `${file}.manifest.json`;

const signedBytesOf = (manifest: Omit<Manifest, 'signature'> | Manifest): Buffer => {
  const { signature: _signature, ...signed } = manifest as Manifest;
  return Buffer.from(canonicalize(signed) ?? '', 'utf8');
};

export const referenceOf = (digest: Digest): DigestReference => ({
  sequence: digest.sequence,
  digestHash: digestHash(digest),
  lastPosition: digest.lastPosition,
});

/**
 * The digest to name: the one covering `lastEvent` when it is sealed, else (and for read-model
 * exports, which have no position) the last digest there is.
 */
export const digestForManifest = async (
  eventStore: EventStore,
  lastEvent: GlobalPosition | undefined,
): Promise<DigestReference | null> => {
  if (lastEvent !== undefined) {
    const covering = await new DigestLookup(eventStore).covering(lastEvent);
    if (covering !== undefined) return referenceOf(covering);
  }
  const last = await readLastDigest(eventStore);
  return last === undefined ? null : referenceOf(last.digest);
};

export const signManifest = (
  fields: Omit<Manifest, 'signature' | 'format' | 'version'>,
  key: SigningKey,
): Manifest => {
  const unsigned = { format: manifestFormat, version: 1, ...fields } as const;
  return { ...unsigned, signature: { keyId: key.keyId, value: signBytes(key, signedBytesOf(unsigned)) } };
};

export const manifestSignatureValid = (manifest: Manifest, keys: ReadonlyMap<string, PublicKey>): boolean => {
  const key = keys.get(manifest.signature.keyId);
  return key !== undefined && verifyBytes(key, signedBytesOf(manifest), manifest.signature.value);
};

/** SHA-256 (hex) and size of a file, read as a stream. */
export const hashFile = async (file: string): Promise<{ sha256: string; bytes: number }> => {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    const buffer = chunk as Buffer;
    hash.update(buffer);
    bytes += buffer.length;
  }
  return { sha256: hash.digest('hex'), bytes };
};

/** Writes the signed manifest of a finished file beside it (`FILE.manifest.json`); returns its name. */
export const writeManifestFile = async (
  file: string,
  fields: Pick<Manifest, 'kind' | 'query' | 'count'> & { readonly lastPosition?: GlobalPosition | undefined },
  dependencies: { readonly eventStore: EventStore; readonly key: SigningKey; readonly now: Date },
): Promise<string> => {
  const { sha256, bytes } = await hashFile(file);
  const manifest = signManifest(
    {
      kind: fields.kind,
      query: fields.query,
      createdAt: dependencies.now.toISOString(),
      count: fields.count,
      bytes,
      sha256,
      lastDigest: await digestForManifest(dependencies.eventStore, fields.lastPosition),
    },
    dependencies.key,
  );
  const target = manifestFileName(file);
  await writeFile(`${target}.partial`, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(`${target}.partial`, target);
  return target;
};
