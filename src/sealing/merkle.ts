/**
 * Merkle trees as RFC 6962 (section 2.1) defines them, as Certificate Transparency uses them: leaf
 * hash SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right), the split at the largest
 * power of two below the size. Inclusion proofs and their check follow RFC 9162 (section 2.1.3), so
 * any CT tooling can check a calltrail proof.
 */
import { createHash, hash } from 'node:crypto';

// One-shot hashing of one reused input buffer: a root over a digest's thousand leaves takes two
// thousand hashes, and a hash object per hash costs more than the hashing.
const leafInput = Buffer.alloc(1 + 32);
const nodeInput = Buffer.alloc(1 + 32 + 32);
nodeInput[0] = 0x01;

export const leafHash = (leaf: Buffer): Buffer => {
  if (leaf.length !== 32)
    return createHash('sha256')
      .update(Buffer.from([0x00]))
      .update(leaf)
      .digest();
  leaf.copy(leafInput, 1);
  return hash('sha256', leafInput, 'buffer');
};

export const nodeHash = (left: Buffer, right: Buffer): Buffer => {
  if (left.length !== 32 || right.length !== 32) {
    return createHash('sha256')
      .update(Buffer.from([0x01]))
      .update(left)
      .update(right)
      .digest();
  }
  left.copy(nodeInput, 1);
  right.copy(nodeInput, 33);
  return hash('sha256', nodeInput, 'buffer');
};

/** The leaf hash of an event hash given in hex, as digests carry them. */
export const leafHashOfHex = (eventHashHex: string): Buffer => {
  if (eventHashHex.length !== 64 || leafInput.write(eventHashHex, 1, 'hex') !== 32) {
    return leafHash(Buffer.from(eventHashHex, 'hex'));
  }
  return hash('sha256', leafInput, 'buffer');
};

/** The leaf hashes of `count` 32-byte event hashes laid end to end in `hashes`. */
export const leafHashesOfBlob = (hashes: Buffer, count: number): Buffer[] => {
  const leafHashes: Buffer[] = [];
  for (let index = 0; index < count; index += 1) {
    hashes.copy(leafInput, 1, index * 32, index * 32 + 32);
    leafHashes.push(hash('sha256', leafInput, 'buffer'));
  }
  return leafHashes;
};

/** SHA-256 of the empty string: the root of an empty tree. */
const emptyRoot = createHash('sha256').digest();

/**
 * The root over already leaf-hashed entries. Iterative, level by level: carrying an odd last node up
 * unchanged gives exactly RFC 6962's recursive split.
 */
export const merkleRootOfLeafHashes = (leafHashes: readonly Buffer[]): Buffer => {
  if (leafHashes.length === 0) return emptyRoot;
  let level = [...leafHashes];
  while (level.length > 1) {
    const next: Buffer[] = [];
    for (let index = 0; index + 1 < level.length; index += 2)
      next.push(nodeHash(level[index]!, level[index + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!;
};

export const merkleRoot = (leaves: readonly Buffer[]): Buffer => merkleRootOfLeafHashes(leaves.map(leafHash));

const largestPowerOfTwoBelow = (n: number): number => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};

/** RFC 6962's PATH(m, D[n]): the audit path of leaf `index` in a tree over `leafHashes`. */
export const inclusionProof = (leafHashes: readonly Buffer[], index: number): Buffer[] => {
  if (!Number.isInteger(index) || index < 0 || index >= leafHashes.length) {
    throw new RangeError(`leaf ${index} is not in a tree of ${leafHashes.length}`);
  }
  const path = (start: number, end: number, at: number): Buffer[] => {
    const size = end - start;
    if (size === 1) return [];
    const k = largestPowerOfTwoBelow(size);
    return at < k
      ? [...path(start, start + k, at), merkleRootOfLeafHashes(leafHashes.slice(start + k, end))]
      : [...path(start + k, end, at - k), merkleRootOfLeafHashes(leafHashes.slice(start, start + k))];
  };
  return path(0, leafHashes.length, index);
};

/** RFC 9162 section 2.1.3.2: whether `proof` shows `leafHashValue` at `index` in a tree of `size`. */
export const verifyInclusion = (
  leafHashValue: Buffer,
  index: number,
  size: number,
  proof: readonly Buffer[],
  root: Buffer,
): boolean => {
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leafHashValue;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
};
