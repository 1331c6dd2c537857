/**
 * Merkle lists: the root of an ordered list of items (a block's transactions, its receipts) and
 * inclusion proofs for single items. The tree shape is RFC 6962's (Certificate Transparency):
 * a list of n > 1 items splits at the largest power of two below n, leaves and inner nodes are
 * hashed under different domain tags, so no leaf can pose as a subtree. The root then binds the
 * list's length (hash of the length and the tree's top), so a proof cannot claim another position
 * or size for an item, as it could in a bare RFC 6962 tree where equal items make shapes alike.
 * The empty list's root is the zero hash.
 */
import { type Codec, encode, fixedBytes, list, struct, uvarint } from '../codec/codec.js'
import { bytesEqual, concatBytes } from '../codec/hex.js'
import { Domain, HASH_LENGTH, taggedHash, taggedHashPair, ZERO_HASH } from '../crypto/hash.js'
import { LoopchainError } from '../errors.js'

/** Most siblings a proof can have: a list of up to 2^32 items. */
const MAX_PROOF_DEPTH = 32

/** The leaf hash of an item's bytes. */
export function merkleLeaf(item: Uint8Array): Uint8Array {
  return taggedHash(Domain.MerkleLeaf, item)
}

function node(left: Uint8Array, right: Uint8Array): Uint8Array {
  return taggedHashPair(Domain.MerkleNode, left, right)
}

/** Largest power of two strictly below n (n >= 2). */
function split(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

function rootOfLeaves(leaves: readonly Uint8Array[], from: number, to: number): Uint8Array {
  const n = to - from
  if (n === 1) return leaves[from] as Uint8Array
  const k = split(n)
  return node(rootOfLeaves(leaves, from, from + k), rootOfLeaves(leaves, from + k, to))
}

/** Binds the list's length to the top of its tree. */
function sealRoot(size: number, top: Uint8Array): Uint8Array {
  return taggedHash(Domain.MerkleRoot, concatBytes(encode(uvarint, size), top))
}

/** The root of a list given its leaf hashes (see {@link merkleLeaf}). */
export function merkleRootOfLeaves(leaves: readonly Uint8Array[]): Uint8Array {
  return leaves.length === 0 ? ZERO_HASH : sealRoot(leaves.length, rootOfLeaves(leaves, 0, leaves.length))
}

/** The root of a list of items. */
export function merkleRoot(items: readonly Uint8Array[]): Uint8Array {
  return merkleRootOfLeaves(items.map(merkleLeaf))
}

/** Proof that the item at `index` is in a list of `size` items. Siblings run from leaf to root. */
export interface MerkleProof {
  readonly index: number
  readonly size: number
  readonly siblings: readonly Uint8Array[]
}

/** Codec of {@link MerkleProof}. */
export const merkleProofCodec: Codec<MerkleProof> = struct('MerkleProof', {
  index: uvarint,
  size: uvarint,
  siblings: list(fixedBytes(HASH_LENGTH), MAX_PROOF_DEPTH),
})

/** The inclusion proof of item `index` given all leaf hashes. */
export function merkleProof(leaves: readonly Uint8Array[], index: number): MerkleProof {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length) {
    throw new RangeError(`index ${index} is outside a list of ${leaves.length}`)
  }
  const siblings: Uint8Array[] = []
  let from = 0
  let to = leaves.length
  // Walk down from the root, remembering the other side at each split; reverse at the end.
  while (to - from > 1) {
    const k = split(to - from)
    if (index < from + k) {
      siblings.push(rootOfLeaves(leaves, from + k, to))
      to = from + k
    } else {
      siblings.push(rootOfLeaves(leaves, from, from + k))
      from += k
    }
  }
  return { index, size: leaves.length, siblings: siblings.reverse() }
}

/** Why a Merkle proof does not prove its item. */
export class MerkleProofError extends LoopchainError<'BAD_INDEX' | 'BAD_LENGTH' | 'ROOT_MISMATCH'> {}

/**
 * Verifies that `item` is at `proof.index` of the list whose root is `root`. Throws
 * {@link MerkleProofError}; returns nothing on success.
 */
export function verifyMerkleProof(root: Uint8Array, item: Uint8Array, proof: MerkleProof): void {
  const { index, size, siblings } = proof
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) {
    throw new MerkleProofError('BAD_INDEX', `index ${index} is outside a list of ${size}`)
  }
  // Recompute the path shape from (index, size): the same descent as merkleProof.
  const rightSide: boolean[] = []
  let from = 0
  let to = size
  while (to - from > 1) {
    const k = split(to - from)
    if (index < from + k) {
      rightSide.push(false)
      to = from + k
    } else {
      rightSide.push(true)
      from += k
    }
  }
  if (rightSide.length !== siblings.length) {
    throw new MerkleProofError(
      'BAD_LENGTH',
      `a list of ${size} needs ${rightSide.length} siblings at index ${index}, got ${siblings.length}`,
    )
  }
  let h = merkleLeaf(item)
  for (let i = 0; i < siblings.length; i++) {
    const s = siblings[i] as Uint8Array
    h = rightSide[rightSide.length - 1 - i] ? node(s, h) : node(h, s)
  }
  if (!bytesEqual(sealRoot(size, h), root)) throw new MerkleProofError('ROOT_MISMATCH', 'the proof does not lead to the expected root')
}
