/**
 * Offline verification, with no database: a replay JSON lines file, or an evidence bundle, against a
 * public key (and digest files, when given), and with the webhook secret Flireo's signatures too.
 * Every event line must agree with the data and metadata stored with it, hash to the leaf sealed at
 * its position, and (with a webhook secret) carry a valid Flireo signature over its raw body when it
 * was delivered signed. A manifest, when there is one, must match the file byte for byte and be signed.
 * Offline, only sealed events can be vouched for: an unsealed one is a finding.
 */
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import canonicalize from 'canonicalize';
import Value from 'typebox/value';
import { decodeRawBody, type ReceptionMetadata } from '../archive/archived-event.ts';
import { ArchivedEventLine, rawBodyOf, toArchivedEventLine } from '../audit/archived-event-view.ts';
import {
  comparePositions,
  parsePosition,
  type GlobalPosition,
  type RecordedEvent,
} from '../event-store/event-store.ts';
import { verifyProvenance } from '../webhook/provenance.ts';
import { digestHash, digestSignatureValid, leavesOf, type Digest, type DigestLeaf } from './digest.ts';
import { eventHash } from './event-hash.ts';
import { bundleSignedBytes, EvidenceBundle, evidenceFormat } from './evidence.ts';
import { hashFile, isManifest, manifestSignatureValid, type Manifest } from './manifest.ts';
import { checkEventProof } from './proof.ts';
import { parsePublicKeyText, verifyBytes, type PublicKey } from './signing-key.ts';
import { checkChain, type DigestEntry, type Finding, type FindingKind } from './verify.ts';

export type OfflineFindingKind =
  | FindingKind
  | 'malformed-file'
  | 'line-altered'
  | 'unsealed'
  | 'proof-invalid'
  | 'public-key-mismatch'
  | 'bundle-signature'
  | 'webhook-signature'
  | 'manifest-mismatch'
  | 'manifest-signature';

export interface OfflineFinding extends Omit<Finding, 'kind'> {
  readonly kind: OfflineFindingKind;
}

export interface OfflineReport {
  readonly ok: boolean;
  readonly scope: string;
  readonly digests: number;
  readonly eventsChecked: number;
  readonly unsealedEvents: number;
  /** With a webhook secret: signed deliveries re-checked, and events delivered without a signature. */
  readonly webhookSignatures?: {
    readonly checked: number;
    readonly valid: number;
    readonly notSigned: number;
  };
  readonly findings: readonly OfflineFinding[];
}

export interface OfflineInput {
  readonly file: string;
  readonly keys: ReadonlyMap<string, PublicKey>;
  /** Digest files (the chain is checked whole); required for a replay file, optional for a bundle. */
  readonly digests?: AsyncIterable<DigestEntry>;
  /** The manifest beside the file, when there is one. */
  readonly manifest?: { readonly where: string; readonly data: unknown };
  readonly webhookSecret?: string;
  readonly maxFindings?: number;
}

/** A bundle is read whole; this bounds it (a call's events, at most 1 MB each). */
export const maxBundleBytes = 256 * 1024 * 1024;

export class OfflineInputError extends Error {
  override readonly name = 'OfflineInputError';
}

const positionOf = (text: string): GlobalPosition => parsePosition(text) ?? { commit: 0n, prepare: 0n };

/** Finds the leaf sealed at a position among digests in chain order (ranges ascend), by bisection. */
class SealedLeaves {
  private readonly lastPositions: GlobalPosition[];

  constructor(private readonly digests: readonly Digest[]) {
    this.lastPositions = digests.map((digest) => positionOf(digest.lastPosition));
  }

  find(position: GlobalPosition): { digest: Digest; leaf: DigestLeaf | undefined } | undefined {
    let low = 0;
    let high = this.digests.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (comparePositions(this.lastPositions[middle]!, position) >= 0) high = middle;
      else low = middle + 1;
    }
    const digest = this.digests[low];
    if (digest === undefined) return undefined;
    let first = 0;
    const leaves = leavesOf(digest);
    let last = leaves.length;
    while (first < last) {
      const middle = (first + last) >> 1;
      if (comparePositions(positionOf(leaves[middle]![0]), position) >= 0) last = middle;
      else first = middle + 1;
    }
    const leaf = leaves[first];
    return {
      digest,
      leaf: leaf !== undefined && leaf[0] === `${position.commit}/${position.prepare}` ? leaf : undefined,
    };
  }
}

const differingFields = (line: Record<string, unknown>, expected: Record<string, unknown>): string[] => {
  const names = new Set([...Object.keys(line), ...Object.keys(expected)]);
  return [...names].filter((name) => canonicalize(line[name]) !== canonicalize(expected[name])).sort();
};

interface Collector {
  readonly report: (finding: OfflineFinding) => void;
  readonly findings: OfflineFinding[];
}

const collector = (maxFindings: number): Collector => {
  const findings: OfflineFinding[] = [];
  return {
    findings,
    report: (finding) => {
      if (findings.length < maxFindings) findings.push(finding);
    },
  };
};

/**
 * One event line: well-formed, its view agreeing with its stored data and metadata; returns the
 * event rebuilt from what was stored, or undefined (reported) when it cannot be.
 */
const readEventLine = (
  value: unknown,
  where: string,
  report: Collector['report'],
): RecordedEvent | undefined => {
  if (!Value.Check(ArchivedEventLine, value)) {
    const error = Value.Errors(ArchivedEventLine, value)[0];
    report({
      kind: 'malformed-file',
      detail: `${where}: not an archived event line (${error?.instancePath || '/'} ${error?.message ?? 'is invalid'})`,
    });
    return undefined;
  }
  const position = parsePosition(value.position);
  let data: unknown;
  let metadata: unknown;
  try {
    data = JSON.parse(value.storedData);
    metadata = JSON.parse(value.storedMetadata);
  } catch {
    data = undefined;
  }
  const created = new Date(value.storedAt);
  const place = { position: value.position, stream: value.stream, revision: String(value.revision) };
  if (position === undefined || data === undefined || Number.isNaN(created.getTime())) {
    report({
      kind: 'line-altered',
      ...place,
      detail: `${where}: its position, stored JSON or storedAt cannot be read`,
    });
    return undefined;
  }
  const event: RecordedEvent = {
    streamName: value.stream,
    id: value.eventId,
    type: value.eventType,
    revision: BigInt(value.revision),
    position,
    data,
    metadata,
    storedData: value.storedData,
    storedMetadata: value.storedMetadata,
    created,
  };
  const differing = differingFields(value, toArchivedEventLine(event));
  if (differing.length > 0) {
    report({
      kind: 'line-altered',
      ...place,
      detail: `${where}: ${differing.join(', ')} disagree(s) with the data and metadata stored with it`,
    });
  }
  return event;
};

interface WebhookCount {
  checked: number;
  valid: number;
  notSigned: number;
}

const checkWebhookSignature = (
  event: RecordedEvent,
  secret: string,
  count: WebhookCount,
  where: string,
  report: Collector['report'],
) => {
  const provenance = (event.metadata as Partial<ReceptionMetadata> | null)?.provenance;
  const raw = rawBodyOf(event);
  if (provenance?.signature == null || raw === undefined) {
    count.notSigned += 1;
    return;
  }
  count.checked += 1;
  const check = verifyProvenance(secret, decodeRawBody(raw), provenance);
  if (check.ok) count.valid += 1;
  else if (check.reason === 'not-signed') count.notSigned += 1;
  else {
    report({
      kind: 'webhook-signature',
      position: `${event.position.commit}/${event.position.prepare}`,
      stream: event.streamName,
      revision: event.revision.toString(),
      detail: `${where}: Flireo's signature ${check.reason === 'malformed' ? 'is malformed' : 'does not match the raw body with this webhook secret'}`,
    });
  }
};

const placeOf = (event: RecordedEvent) => ({
  position: `${event.position.commit}/${event.position.prepare}`,
  stream: event.streamName,
  revision: event.revision.toString(),
});

const checkManifest = async (
  input: OfflineInput,
  count: number,
  report: Collector['report'],
  chain: readonly Digest[] | undefined,
): Promise<Manifest | undefined> => {
  if (input.manifest === undefined) return undefined;
  const { where, data } = input.manifest;
  if (!isManifest(data)) {
    report({ kind: 'malformed-file', detail: `${where}: not a calltrail manifest` });
    return undefined;
  }
  if (!manifestSignatureValid(data, input.keys)) {
    report({
      kind: 'manifest-signature',
      detail: input.keys.has(data.signature.keyId)
        ? `${where}: the signature does not match the manifest`
        : `${where}: signed with key ${data.signature.keyId}, which is not among the given public keys`,
    });
  }
  const { sha256, bytes } = await hashFile(input.file);
  const problems = [
    sha256 === data.sha256 ? undefined : `the file's SHA-256 is ${sha256}, the manifest says ${data.sha256}`,
    bytes === data.bytes ? undefined : `the file has ${bytes} bytes, the manifest says ${data.bytes}`,
    count < 0 || count === data.count
      ? undefined
      : `the file has ${count} events, the manifest says ${data.count}`,
  ].filter((problem) => problem !== undefined);
  if (problems.length > 0) report({ kind: 'manifest-mismatch', detail: `${where}: ${problems.join('; ')}` });
  if (chain !== undefined && data.lastDigest !== null) {
    const named = chain.find((digest) => digest.sequence === data.lastDigest!.sequence);
    if (named === undefined || digestHash(named) !== data.lastDigest.digestHash) {
      report({
        kind: 'digest-altered',
        digest: data.lastDigest.sequence,
        detail: `${where}: names digest ${data.lastDigest.sequence}, which the digest files ${named === undefined ? 'do not hold' : 'hold with another hash'}`,
      });
    }
  }
  return data;
};

const collectChain = async (
  input: OfflineInput,
  report: Collector['report'],
): Promise<Digest[] | undefined> =>
  input.digests === undefined ? undefined : checkChain(input.digests, input.keys, report);

/** The digests whose ranges advance, in chain order: what positions are looked up in. */
const advancing = (chain: readonly Digest[]): Digest[] => {
  const digests: Digest[] = [];
  for (const digest of chain) {
    const previous = digests[digests.length - 1];
    if (
      previous === undefined ||
      comparePositions(positionOf(digest.lastPosition), positionOf(previous.lastPosition)) > 0
    )
      digests.push(digest);
  }
  return digests;
};

const verifyJsonLines = async (input: OfflineInput): Promise<OfflineReport> => {
  const { findings, report } = collector(input.maxFindings ?? 10_000);
  const chain = await collectChain(input, report);
  if (chain === undefined)
    throw new OfflineInputError('--digests: a replay file is verified against digest files');
  const sealed = new SealedLeaves(advancing(chain));
  const webhook: WebhookCount = { checked: 0, valid: 0, notSigned: 0 };
  let lineNumber = 0;
  let eventsChecked = 0;
  let unsealedEvents = 0;
  let previous: GlobalPosition | undefined;
  const lines = createInterface({ input: createReadStream(input.file), crlfDelay: Infinity });
  for await (const line of lines) {
    lineNumber += 1;
    const where = `line ${lineNumber}`;
    if (line === '') {
      report({ kind: 'malformed-file', detail: `${where}: empty` });
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      report({ kind: 'malformed-file', detail: `${where}: not JSON` });
      continue;
    }
    const event = readEventLine(value, where, report);
    if (event === undefined) continue;
    if (previous !== undefined && comparePositions(event.position, previous) <= 0) {
      report({
        kind: 'reordered',
        ...placeOf(event),
        detail: `${where}: not after the line before it in the global order`,
      });
    }
    previous = event.position;
    if (input.webhookSecret !== undefined)
      checkWebhookSignature(event, input.webhookSecret, webhook, where, report);
    const found = sealed.find(event.position);
    if (found === undefined) {
      unsealedEvents += 1;
      report({
        kind: 'unsealed',
        ...placeOf(event),
        detail: `${where}: after the last digest; nothing vouches for it`,
      });
      continue;
    }
    eventsChecked += 1;
    const hash = eventHash(event).toString('hex');
    if (found.leaf === undefined) {
      report({
        kind: 'inserted',
        digest: found.digest.sequence,
        ...placeOf(event),
        detail: `${where}: inside a sealed range, but no digest sealed it`,
      });
    } else if (
      found.leaf[3] !== hash ||
      found.leaf[1] !== event.streamName ||
      found.leaf[2] !== event.revision.toString()
    ) {
      report({
        kind: 'modified',
        digest: found.digest.sequence,
        ...placeOf(event),
        detail: `${where}: differs from the event sealed at this position`,
      });
    }
  }
  await checkManifest(input, lineNumber, report, chain);
  return {
    ok: findings.length === 0,
    scope: input.file,
    digests: chain.length,
    eventsChecked,
    unsealedEvents,
    ...(input.webhookSecret === undefined ? {} : { webhookSignatures: webhook }),
    findings,
  };
};

const verifyBundle = async (input: OfflineInput, text: string): Promise<OfflineReport> => {
  const { findings, report } = collector(input.maxFindings ?? 10_000);
  const chain = await collectChain(input, report);
  const webhook: WebhookCount = { checked: 0, valid: 0, notSigned: 0 };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!Value.Check(EvidenceBundle, parsed)) {
    const error = parsed === undefined ? undefined : Value.Errors(EvidenceBundle, parsed)[0];
    report({
      kind: 'malformed-file',
      detail: `not a readable evidence bundle${error === undefined ? ' (not JSON)' : ` (${error.instancePath || '/'} ${error.message})`}`,
    });
    return {
      ok: false,
      scope: input.file,
      digests: chain?.length ?? 0,
      eventsChecked: 0,
      unsealedEvents: 0,
      findings,
    };
  }
  const bundle = parsed;
  // The key the bundle names must be one the verifier was given: a bundle cannot vouch for itself.
  let bundleKey: PublicKey | undefined;
  try {
    bundleKey = parsePublicKeyText(bundle.publicKey.pem, 'the bundle');
  } catch {
    bundleKey = undefined;
  }
  const hexKey = (() => {
    try {
      return parsePublicKeyText(bundle.publicKey.hex, 'the bundle').keyId;
    } catch {
      return undefined;
    }
  })();
  if (
    bundleKey === undefined ||
    !input.keys.has(bundleKey.keyId) ||
    bundleKey.keyId !== bundle.publicKey.keyId ||
    hexKey !== bundleKey.keyId
  ) {
    report({
      kind: 'public-key-mismatch',
      detail: "publicKey: the bundle's public key is not (in all its forms) one of the given keys",
    });
  }
  const signer = input.keys.get(bundle.signature.keyId);
  if (signer === undefined || !verifyBytes(signer, bundleSignedBytes(bundle), bundle.signature.value)) {
    report({
      kind: 'bundle-signature',
      detail:
        signer === undefined
          ? `signature: by key ${bundle.signature.keyId}, which is not among the given public keys`
          : 'signature: does not match the bundle (something in it was changed after export)',
    });
  }
  const digests = new Map<number, EvidenceBundle['digests'][number]>();
  for (const digest of bundle.digests) {
    if (!digestSignatureValid(digest, input.keys)) {
      report({
        kind: 'bad-signature',
        digest: digest.sequence,
        detail: `digests: digest ${digest.sequence}'s signature does not hold with the given keys`,
      });
    }
    if (digestHash(digest) !== digest.digestHash) {
      report({
        kind: 'digest-altered',
        digest: digest.sequence,
        detail: `digests: digest ${digest.sequence}'s digestHash is not the hash of its signed fields`,
      });
    }
    if (chain !== undefined) {
      const kept = chain.find((each) => each.sequence === digest.sequence);
      if (kept === undefined || digestHash(kept) !== digestHash(digest)) {
        report({
          kind: 'digest-altered',
          digest: digest.sequence,
          detail: `digests: digest ${digest.sequence} ${kept === undefined ? 'is not among the digest files' : 'differs from the digest file of that sequence'}`,
        });
      }
    }
    digests.set(digest.sequence, digest);
  }
  const proofs = new Map(bundle.proofs.map((proof) => [proof.position, proof]));
  const seen = new Set<string>();
  let eventsChecked = 0;
  let unsealedEvents = 0;
  let previous: GlobalPosition | undefined;
  for (const [index, value] of bundle.events.entries()) {
    const where = `events[${index}]`;
    const event = readEventLine(value, where, report);
    if (event === undefined) continue;
    const place = placeOf(event);
    seen.add(place.position);
    if (event.streamName !== bundle.stream) {
      report({ kind: 'inserted', ...place, detail: `${where}: not an event of ${bundle.stream}` });
    }
    if (previous !== undefined && comparePositions(event.position, previous) <= 0) {
      report({ kind: 'reordered', ...place, detail: `${where}: not after the event before it` });
    }
    previous = event.position;
    if (input.webhookSecret !== undefined)
      checkWebhookSignature(event, input.webhookSecret, webhook, where, report);
    const proof = proofs.get(place.position);
    const hash = eventHash(event).toString('hex');
    if (proof === undefined) {
      report({ kind: 'proof-invalid', ...place, detail: `${where}: no proof for this position` });
      continue;
    }
    if (proof.status === 'unsealed' || proof.proof === null) {
      unsealedEvents += 1;
      report({
        kind: 'unsealed',
        ...place,
        detail: `${where}: not sealed when exported; nothing vouches for it`,
      });
      continue;
    }
    eventsChecked += 1;
    const digest = digests.get(proof.proof.digestSequence);
    if (digest === undefined) {
      report({
        kind: 'proof-invalid',
        ...place,
        detail: `${where}: its proof names digest ${proof.proof.digestSequence}, which the bundle lacks`,
      });
      continue;
    }
    if (proof.eventHash !== hash || proof.proof.sealedEventHash !== hash) {
      report({
        kind: 'modified',
        digest: digest.sequence,
        ...place,
        detail: `${where}: differs from the event sealed at this position`,
      });
      continue;
    }
    const outcome = checkEventProof(
      {
        ...place,
        eventId: event.id,
        eventType: event.type,
        storedData: event.storedData,
        storedMetadata: event.storedMetadata,
        eventHash: hash,
        status: 'sealed',
        proof: proof.proof,
      },
      digest,
    );
    if (outcome !== 'ok') {
      report({
        kind: 'proof-invalid',
        digest: digest.sequence,
        ...place,
        detail: `${where}: its audit path does not lead to digest ${digest.sequence}'s signed root`,
      });
    }
  }
  for (const proof of bundle.proofs) {
    if (!seen.has(proof.position))
      report({
        kind: 'proof-invalid',
        position: proof.position,
        detail: 'proofs: a proof for a position no event of the bundle has',
      });
  }
  // With the digest files, the call is complete only if every event they sealed for it is here.
  if (chain !== undefined) {
    for (const digest of chain)
      for (const [position, stream, revision] of leavesOf(digest))
        if (stream === bundle.stream && !seen.has(position))
          report({
            kind: 'missing',
            digest: digest.sequence,
            position,
            stream,
            revision,
            detail: 'sealed for this call, absent from the bundle',
          });
  }
  await checkManifest(input, -1, report, chain);
  return {
    ok: findings.length === 0,
    scope: `${input.file} (call ${bundle.callId})`,
    digests: chain?.length ?? bundle.digests.length,
    eventsChecked,
    unsealedEvents,
    ...(input.webhookSecret === undefined ? {} : { webhookSignatures: webhook }),
    findings,
  };
};

/** What a file is: an evidence bundle (a JSON object), a CSV with its manifest, or JSON lines. */
const sniff = async (file: string): Promise<'bundle' | 'lines'> => {
  const handle = await open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(4096), 0, 4096, 0);
    const head = buffer.subarray(0, bytesRead).toString('utf8');
    // Bundles are written indented (a lone `{` first); a JSON line is one object on one line.
    const firstLine = head.split('\n', 1)[0]!.trim();
    return firstLine === '{' || head.startsWith(`{"format":"${evidenceFormat}"`) ? 'bundle' : 'lines';
  } finally {
    await handle.close();
  }
};

export const verifyOffline = async (input: OfflineInput): Promise<OfflineReport> => {
  const manifestKind = isManifest(input.manifest?.data) ? input.manifest.data.kind : undefined;
  if (manifestKind === 'terminations-csv') {
    // A CSV of read models: its manifest is what vouches for it.
    const { findings, report } = collector(input.maxFindings ?? 10_000);
    const chain = await collectChain(input, report);
    await checkManifest(input, -1, report, chain);
    return {
      ok: findings.length === 0,
      scope: input.file,
      digests: chain?.length ?? 0,
      eventsChecked: 0,
      unsealedEvents: 0,
      findings,
    };
  }
  if ((await sniff(input.file)) === 'lines') return verifyJsonLines(input);
  const size = (await stat(input.file)).size;
  if (size > maxBundleBytes)
    throw new OfflineInputError(`${input.file}: larger than a bundle can be (${maxBundleBytes} bytes)`);
  const stream = createReadStream(input.file, { encoding: 'utf8' });
  const chunks: string[] = [];
  stream.on('data', (chunk) => chunks.push(chunk as string));
  await once(stream, 'end');
  return verifyBundle(input, chunks.join(''));
};
