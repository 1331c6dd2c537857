/**
 * State proofs: what a full node sends a light client so it can check one key's value — or its
 * absence — against a state root from a header it trusts, without holding the state.
 *
 * A proof is the list of sibling hashes on the key's path from the root down to where the path
 * ends: at the key's own leaf (inclusion), at an empty subtree (absence), or at another key's leaf
 * that occupies the position because it is alone in that subtree (absence; the proof then carries
 * that leaf's path and value hash). Empty siblings are common near the bottom of a sparse tree, so
 * the encoding replaces them with one bit each:
 *
 * ```
 * uvarint depth (0..256)
 * bitmap  ceil(depth / 8) bytes; bit i (most significant first) set = sibling i is non-empty;
 *         the padding bits after bit depth-1 are zero
 * siblings 32 bytes for each set bit, root side first; never the all-zero (empty) hash
 * option  tag 0, or tag 1 and the foreign leaf's path (32) and value hash (32)
 * ```
 *
 * The value itself is not in the proof: the verifier is given the value it is checking.
 */
import { type Codec, decode, encode, fixedBytes, option, type Reader, struct, uvarint, type Writer } from '../codec/codec.js'
import { bytesEqual } from '../codec/hex.js'
import { HASH_LENGTH, ZERO_HASH } from '../crypto/hash.js'
import { DecodeError } from '../errors.js'
import { StateProofError } from './errors.js'
import { defaultStateHasher, type StateHasher } from './hasher.js'

/** Deepest possible path end: two distinct 256-bit paths always differ within 256 bits. */
export const MAX_PROOF_DEPTH = 256

/** The leaf of another key that sits where the proven key's path ends (an absence proof). */
export interface ForeignLeaf {
  /** That key's 256-bit path. */
  readonly path: Uint8Array
  /** `sha256` of that key's value. */
  readonly valueHash: Uint8Array
}

/** A decoded state proof. */
export interface StateProof {
  /** Sibling hashes from the root's child level downwards; `ZERO_HASH` stands for an empty sibling. */
  readonly siblings: readonly Uint8Array[]
  /** Present when the path ends at another key's leaf; absent for inclusion or an empty end. */
  readonly leaf?: ForeignLeaf | undefined
}

/** A proof with the value it proves, as {@link StateTree.prove} returns it. */
export interface StateProofResult {
  /** The key's value at the root, or `undefined` when the key is absent. */
  readonly value: Uint8Array | undefined
  /** The proof of that value (or of absence). */
  readonly proof: StateProof
}

const hash32 = fixedBytes(HASH_LENGTH)
const foreignLeafCodec = option(struct('ForeignLeaf', { path: hash32, valueHash: hash32 }))

function isZero(h: Uint8Array): boolean {
  for (let i = 0; i < h.length; i++) if (h[i] !== 0) return false
  return true
}

/** The canonical codec of {@link StateProof}. */
export const stateProofCodec: Codec<StateProof> = {
  name: 'StateProof',
  minSize: 2,
  write(w: Writer, p: StateProof): void {
    const n = p.siblings.length
    if (n > MAX_PROOF_DEPTH) throw new RangeError(`state proof has ${n} siblings, more than ${MAX_PROOF_DEPTH}`)
    uvarint.write(w, n)
    const bitmap = new Uint8Array((n + 7) >>> 3)
    for (let i = 0; i < n; i++) {
      const s = p.siblings[i] as Uint8Array
      if (!(s instanceof Uint8Array) || s.length !== HASH_LENGTH) throw new RangeError(`state proof sibling ${i} is not 32 bytes`)
      if (!isZero(s)) bitmap[i >>> 3] = (bitmap[i >>> 3] as number) | (0x80 >>> (i & 7))
    }
    w.raw(bitmap)
    for (const s of p.siblings) if (!isZero(s)) w.raw(s)
    foreignLeafCodec.write(w, p.leaf)
  },
  read(r: Reader): StateProof {
    const start = r.offset
    const n = uvarint.read(r)
    if (n > MAX_PROOF_DEPTH) {
      throw new DecodeError('OVERSIZED', `state proof at offset ${start} has depth ${n}, more than ${MAX_PROOF_DEPTH}`, {
        details: { offset: start, length: n, max: MAX_PROOF_DEPTH },
      })
    }
    const bitmapAt = r.offset
    const bitmap = r.take((n + 7) >>> 3)
    if (n & 7 && ((bitmap[bitmap.length - 1] as number) & (0xff >>> (n & 7))) !== 0) {
      throw new DecodeError('NON_CANONICAL', `state proof bitmap at offset ${bitmapAt} has padding bits set`, {
        details: { offset: bitmapAt },
      })
    }
    const siblings: Uint8Array[] = new Array(n)
    for (let i = 0; i < n; i++) {
      if (((bitmap[i >>> 3] as number) & (0x80 >>> (i & 7))) === 0) {
        siblings[i] = ZERO_HASH
        continue
      }
      const at = r.offset
      const s = hash32.read(r)
      if (isZero(s)) {
        throw new DecodeError('NON_CANONICAL', `state proof sibling at offset ${at} is the empty hash but marked present`, {
          details: { offset: at },
        })
      }
      siblings[i] = s
    }
    const leaf = foreignLeafCodec.read(r)
    return leaf === undefined ? { siblings } : { siblings, leaf }
  },
}

/** The canonical bytes of a proof. */
export function encodeStateProof(proof: StateProof): Uint8Array {
  return encode(stateProofCodec, proof)
}

/** Decodes proof bytes; throws {@link DecodeError} on anything but a canonical encoding. */
export function decodeStateProof(bytes: Uint8Array): StateProof {
  return decode(stateProofCodec, bytes)
}

/**
 * The encoded size of a proof in bytes — what it costs to send. A light client also needs the
 * value itself, so "bytes on the wire" for a present key is this plus the value's length.
 */
export function stateProofSize(proof: StateProof): number {
  let nonEmpty = 0
  for (const s of proof.siblings) if (!isZero(s)) nonEmpty++
  const n = proof.siblings.length
  const varintLen = n < 0x80 ? 1 : 2
  return varintLen + ((n + 7) >>> 3) + nonEmpty * HASH_LENGTH + 1 + (proof.leaf ? 2 * HASH_LENGTH : 0)
}

function bitAt(path: Uint8Array, i: number): number {
  return ((path[i >>> 3] as number) >>> (7 - (i & 7))) & 1
}

function samePrefix(a: Uint8Array, b: Uint8Array, bits: number): boolean {
  for (let i = 0; i < bits; i++) if (bitAt(a, i) !== bitAt(b, i)) return false
  return true
}

/**
 * Checks that `proof` proves `key` has `value` (or, with `value === undefined`, that `key` is
 * absent) in the state whose root is `root`. Pure: no store, no clock. Throws
 * {@link StateProofError} — `MALFORMED` for undecodable bytes, `INVALID_PROOF` when the proof's
 * shape contradicts the claim, `ROOT_MISMATCH` when it does not hash to `root` — and returns
 * nothing on success. All three codes are penalisable: an honest server never sends such a proof.
 */
export function verifyStateProof(
  root: Uint8Array,
  key: Uint8Array,
  value: Uint8Array | undefined,
  proof: StateProof | Uint8Array,
  hasher: StateHasher = defaultStateHasher,
): void {
  let p: StateProof
  if (proof instanceof Uint8Array) {
    try {
      p = decodeStateProof(proof)
    } catch (cause) {
      if (!(cause instanceof DecodeError)) throw cause
      throw new StateProofError('MALFORMED', `state proof does not decode: ${cause.message}`, { cause, details: { code: cause.code } })
    }
  } else {
    p = proof
  }
  if (!(root instanceof Uint8Array) || root.length !== HASH_LENGTH) throw new TypeError('state root must be 32 bytes')
  if (!(key instanceof Uint8Array)) throw new TypeError('state key must be a Uint8Array')
  const depth = p.siblings.length
  if (depth > MAX_PROOF_DEPTH) {
    throw new StateProofError('INVALID_PROOF', `state proof has ${depth} siblings, more than ${MAX_PROOF_DEPTH}`, { details: { depth } })
  }
  const path = hasher.keyPath(key)
  let h: Uint8Array
  if (p.leaf !== undefined) {
    if (value !== undefined) throw new StateProofError('INVALID_PROOF', 'an absence proof (foreign leaf) cannot prove a value')
    if (bytesEqual(p.leaf.path, path))
      throw new StateProofError('INVALID_PROOF', "the foreign leaf is the key's own leaf: the key is present")
    // A leaf sits where it is alone in its subtree, so its path must run through the same nodes.
    if (!samePrefix(p.leaf.path, path, depth)) {
      throw new StateProofError('INVALID_PROOF', `the foreign leaf's path leaves the key's path above depth ${depth}`, {
        details: { depth },
      })
    }
    h = hasher.leaf(p.leaf.path, p.leaf.valueHash)
  } else {
    h = value === undefined ? ZERO_HASH : hasher.leaf(path, hasher.valueHash(value))
  }
  for (let i = depth - 1; i >= 0; i--) {
    const s = p.siblings[i] as Uint8Array
    if (!(s instanceof Uint8Array) || s.length !== HASH_LENGTH) throw new StateProofError('INVALID_PROOF', `sibling ${i} is not 32 bytes`)
    h = bitAt(path, i) === 1 ? hasher.node(s, h) : hasher.node(h, s)
  }
  if (!bytesEqual(h, root)) throw new StateProofError('ROOT_MISMATCH', 'state proof does not hash to the trusted root')
}

/** {@link verifyStateProof} as a boolean: true when the proof holds; still throws `TypeError` on misuse. */
export function isValidStateProof(
  root: Uint8Array,
  key: Uint8Array,
  value: Uint8Array | undefined,
  proof: StateProof | Uint8Array,
  hasher?: StateHasher,
): boolean {
  try {
    verifyStateProof(root, key, value, proof, hasher)
    return true
  } catch (e) {
    if (e instanceof StateProofError) return false
    throw e
  }
}
