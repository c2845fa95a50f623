/**
 * Inclusion proofs checked against the signed root by a verifier written here from RFC 6962's
 * definition of the audit path (a recursive split, not the iterative check the product uses), for
 * every leaf of trees of 1 to 33 events; a tampered proof fails both checks.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sealEvents } from '../../src/sealing/digest.ts';
import { checkEventProof, proveEvent, type EventProof } from '../../src/sealing/proof.ts';
import { generateSigningKey } from '../../src/sealing/signing-key.ts';
import { recordedCallEvent, statusUpdate } from '../support/call-events.ts';

const sha256 = (...parts: Buffer[]) => {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
};

/** RFC 6962 section 2.1.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) (or mirrored). */
const independentRoot = (
  leaf: Buffer,
  index: number,
  size: number,
  path: readonly Buffer[],
): Buffer | null => {
  if (size === 1) return path.length === 0 && index === 0 ? leaf : null;
  if (path.length === 0) return null;
  let k = 1;
  while (k * 2 < size) k *= 2;
  const sibling = path[path.length - 1]!;
  const rest = path.slice(0, -1);
  if (index < k) {
    const left = independentRoot(leaf, index, k, rest);
    return left === null ? null : sha256(Buffer.from([1]), left, sibling);
  }
  const right = independentRoot(leaf, index - k, size - k, rest);
  return right === null ? null : sha256(Buffer.from([1]), sibling, right);
};

const independentlyIncluded = (proof: EventProof, merkleRoot: string): boolean => {
  if (proof.proof === null) return false;
  const leaf = sha256(Buffer.from([0]), Buffer.from(proof.eventHash, 'hex'));
  const root = independentRoot(
    leaf,
    proof.proof.leafIndex,
    proof.proof.treeSize,
    proof.proof.auditPath.map((node) => Buffer.from(node, 'hex')),
  );
  return root !== null && root.toString('hex') === merkleRoot;
};

const key = generateSigningKey();
const events = (count: number) =>
  Array.from({ length: count }, (_, index) =>
    recordedCallEvent(
      statusUpdate(
        'proof-call',
        'in-progress',
        `2026-03-01T10:00:${String(index % 60).padStart(2, '0')}.000Z`,
      ),
      BigInt(index),
      { commit: 500n + BigInt(index) * 7n, prepare: 500n + BigInt(index) * 7n },
    ),
  );

describe('inclusion proofs', () => {
  it('prove every leaf of trees of 1 to 33 events against the signed root', () => {
    for (let size = 1; size <= 33; size += 1) {
      const sealed = events(size);
      const digest = sealEvents(sealed, undefined, key, new Date('2026-03-01T10:01:00.000Z'));
      for (const event of sealed) {
        const proof = proveEvent(event, digest);
        expect(proof.status).toBe('sealed');
        expect(independentlyIncluded(proof, digest.merkleRoot)).toBe(true);
        expect(checkEventProof(proof, digest)).toBe('ok');
      }
    }
  });

  it('fail when the audit path, the index, the size or the stored event is tampered with', () => {
    const sealed = events(13);
    const digest = sealEvents(sealed, undefined, key, new Date('2026-03-01T10:01:00.000Z'));
    const proof = proveEvent(sealed[5]!, digest);
    const path = proof.proof!.auditPath;
    const flipped = `${path[1]!.slice(0, 10)}${path[1]![10] === '0' ? '1' : '0'}${path[1]!.slice(11)}`;
    const tampered: EventProof[] = [
      { ...proof, proof: { ...proof.proof!, auditPath: [path[0]!, flipped, ...path.slice(2)] } },
      { ...proof, proof: { ...proof.proof!, auditPath: path.slice(0, -1) } },
      { ...proof, proof: { ...proof.proof!, leafIndex: 6 } },
      { ...proof, proof: { ...proof.proof!, treeSize: 7 } },
    ];
    for (const each of tampered) {
      expect(independentlyIncluded(each, digest.merkleRoot)).toBe(false);
      expect(checkEventProof(each, digest)).toBe('path');
    }
    // Same path in a tree one larger (a left-subtree leaf): only the digest's signed count tells.
    expect(checkEventProof({ ...proof, proof: { ...proof.proof!, treeSize: 14 } }, digest)).toBe('path');
    const changedData = { ...proof, storedData: proof.storedData.replace('in-progress', 'ended') };
    expect(checkEventProof(changedData, digest)).toBe('event-hash');
    expect(checkEventProof(proof, { ...digest, merkleRoot: '0'.repeat(64) })).toBe('path');
  });

  it('say an event is unsealed without a digest, and differs when the store changed under the seal', () => {
    const sealed = events(4);
    const digest = sealEvents(sealed, undefined, key, new Date('2026-03-01T10:01:00.000Z'));
    expect(proveEvent(sealed[0]!, undefined)).toMatchObject({ status: 'unsealed', proof: null });
    const changed = { ...sealed[2]!, storedData: sealed[2]!.storedData.replace('in-progress', 'ended') };
    const proof = proveEvent(changed, digest);
    expect(proof.status).toBe('differs');
    expect(checkEventProof(proof, digest)).toBe('differs');
  });
});
