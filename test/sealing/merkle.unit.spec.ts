import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  inclusionProof,
  leafHash,
  merkleRoot,
  merkleRootOfBlob,
  merkleRootOfLeafHashes,
  verifyInclusion,
} from '../../src/sealing/merkle.ts';

/** RFC 6962 section 2.1, written as the RFC states it (recursive split at the largest power of two). */
const referenceRoot = (leaves: readonly Buffer[]): Buffer => {
  if (leaves.length === 0) return createHash('sha256').digest();
  if (leaves.length === 1)
    return createHash('sha256')
      .update(Buffer.from([0]))
      .update(leaves[0]!)
      .digest();
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return createHash('sha256')
    .update(Buffer.from([1]))
    .update(referenceRoot(leaves.slice(0, k)))
    .update(referenceRoot(leaves.slice(k)))
    .digest();
};

const leavesArbitrary = fc.array(fc.uint8Array({ minLength: 0, maxLength: 40 }), {
  minLength: 1,
  maxLength: 70,
});

describe('RFC 6962 Merkle trees', () => {
  it('computes the root exactly as RFC 6962 defines it, for every size', () => {
    fc.assert(
      fc.property(leavesArbitrary, (arrays) => {
        const leaves = arrays.map((array) => Buffer.from(array));
        expect(merkleRoot(leaves).equals(referenceRoot(leaves))).toBe(true);
      }),
    );
    expect(merkleRoot([]).toString('hex')).toBe(createHash('sha256').digest('hex'));
  });

  it("matches Certificate Transparency's known root for its test leaves", () => {
    // The leaves and the 8-leaf root of the CT reference implementation's test vectors (RFC 6962 trees).
    const leaves = [
      '',
      '00',
      '10',
      '2021',
      '3031',
      '40414243',
      '5051525354555657',
      '606162636465666768696a6b6c6d6e6f',
    ].map((hex) => Buffer.from(hex, 'hex'));
    expect(merkleRoot(leaves).toString('hex')).toBe(
      '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
    );
    expect(merkleRoot(leaves.slice(0, 1)).toString('hex')).toBe(
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    );
  });

  it('computes the same root over event hashes laid end to end, for every size', () => {
    for (let size = 0; size <= 70; size += 1) {
      const eventHashes = Array.from({ length: size }, () => randomBytes(32));
      const blob = Buffer.concat(eventHashes);
      expect(merkleRootOfBlob(blob, size).toString('hex')).toBe(referenceRoot(eventHashes).toString('hex'));
    }
  });

  it('proves every leaf of every tree, and no proof survives a change to the leaf, index or root', () => {
    fc.assert(
      fc.property(leavesArbitrary, fc.nat(), (arrays, pick) => {
        const hashes = arrays.map((array) => leafHash(Buffer.from(array)));
        const root = merkleRootOfLeafHashes(hashes);
        const index = pick % hashes.length;
        const proof = inclusionProof(hashes, index);
        expect(verifyInclusion(hashes[index]!, index, hashes.length, proof, root)).toBe(true);
        const other = leafHash(randomBytes(8));
        expect(verifyInclusion(other, index, hashes.length, proof, root)).toBe(false);
        if (hashes.length > 1) {
          const wrongIndex = (index + 1) % hashes.length;
          if (!hashes[wrongIndex]!.equals(hashes[index]!)) {
            expect(verifyInclusion(hashes[index]!, wrongIndex, hashes.length, proof, root)).toBe(false);
          }
        }
        expect(verifyInclusion(hashes[index]!, index, hashes.length, proof, leafHash(randomBytes(8)))).toBe(
          false,
        );
      }),
    );
  });

  it('refuses proofs for indexes outside the tree', () => {
    const hashes = [leafHash(Buffer.from('a')), leafHash(Buffer.from('b'))];
    expect(() => inclusionProof(hashes, 2)).toThrow(RangeError);
    expect(verifyInclusion(hashes[0]!, 2, 2, [], merkleRootOfLeafHashes(hashes))).toBe(false);
  });
});
