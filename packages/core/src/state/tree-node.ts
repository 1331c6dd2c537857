/**
 * In-memory nodes of the state tree and their stored records. Internal to the tree: nothing here
 * is part of the package's API.
 *
 * A node record is stored under the version that wrote it and its own hash (`version ‖ hash`, see
 * `StateTree`), so a record never changes and is never deleted; every historical root stays
 * readable. A branch names each child by hash and by the version it was written at, which is how
 * a reader finds the child's record:
 *
 * ```
 * leaf:   0x00 ‖ path (32) ‖ bytes(key) ‖ bytes(value)      (bytes = uvarint length ‖ bytes)
 * branch: 0x01 ‖ left hash (32) ‖ right hash (32) ‖ uvarint(left version) ‖ uvarint(right version)
 *         (32 zero bytes and version 0 = empty child)
 * ```
 *
 * Resident nodes hold hashes and paths as 32-character binary strings (see `binary.ts`).
 *
 * The leaf keeps its key so that a state snapshot can be rebuilt from nodes alone, and its whole
 * value (not just the hash) so that a proof at an old root can return the value of that time.
 */
import { bytes, fixedBytes, Reader, struct, uvarint, Writer } from '../codec/codec.js'
import { HASH_LENGTH } from '../crypto/hash.js'
import { DecodeError } from '../errors.js'
import { bytesToBinaryString, writeBinaryString } from './binary.js'
import { StateTreeError } from './errors.js'

/** Longest key the tree accepts: room for a contract address and a hashed or structured slot. */
export const MAX_STATE_KEY_LENGTH = 1024
/** Longest value the tree accepts: contract code is the largest value kept in state. */
export const MAX_STATE_VALUE_LENGTH = 16 * 1024 * 1024

/** Node kind tags; also the first byte of a stored record. */
export const LEAF = 0
/** See {@link LEAF}. */
export const BRANCH = 1
/** A child known only by hash: its record has not been read from the store yet. */
export const STUB = 2

/**
 * A key's leaf, placed at the highest position where it is alone in its subtree. The key itself
 * stays in the stored record only: the resident tree never needs it, and at 10^6 leaves it adds up.
 */
export class Leaf {
  readonly kind = LEAF
  constructor(
    readonly hash: string,
    readonly path: string,
    /** The value as a binary string: a third of a small `Uint8Array`'s heap cost. */
    readonly value: string,
    /** The version whose commit wrote this leaf's record (part of its store key). */
    readonly version: number,
  ) {}
}

/**
 * An internal node. Children are filled in lazily — a {@link Stub} is replaced by the node read
 * from the store — which makes the tree itself the decoded-node cache: a hot path is plain
 * pointer chasing, and only a stub costs an `await`.
 */
export class Branch {
  readonly kind = BRANCH
  constructor(
    readonly hash: string,
    public left: TreeNode | null,
    public right: TreeNode | null,
    /** The version whose commit wrote this branch's record (part of its store key). */
    readonly version: number,
  ) {}
}

/** The empty subtree's hash (32 zero bytes) as a binary string. */
export const EMPTY_HASH = '\0'.repeat(HASH_LENGTH)

/** A child not loaded yet. */
export class Stub {
  readonly kind = STUB
  constructor(
    readonly hash: string,
    /** The version its record is stored under. */
    readonly version: number,
  ) {}
}

/** Any node; `null` is the empty subtree. */
export type TreeNode = Leaf | Branch | Stub

/** The hash of a child slot: the empty subtree hashes to 32 zero bytes. */
export function hashOf(n: TreeNode | null): string {
  return n === null ? EMPTY_HASH : n.hash
}

const leafRecord = struct('StateLeafRecord', {
  path: fixedBytes(HASH_LENGTH),
  key: bytes(MAX_STATE_KEY_LENGTH),
  value: bytes(MAX_STATE_VALUE_LENGTH),
})

function uvarintLength(n: number): number {
  let len = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    len++
  }
  return len
}

function putUvarint(out: Uint8Array, o: number, n: number): number {
  while (n >= 0x80) {
    out[o++] = (n % 0x80) | 0x80
    n = Math.floor(n / 0x80)
  }
  out[o++] = n
  return o
}

/**
 * The stored record of a leaf: the bytes `leafRecord` encodes (a test pins the equality), written
 * into one exact-size buffer because a big commit writes a million of them.
 */
export function encodeLeaf(path: string, key: Uint8Array, value: Uint8Array, slab?: Slab): Uint8Array {
  const size = 1 + HASH_LENGTH + uvarintLength(key.length) + key.length + uvarintLength(value.length) + value.length
  const out = slab === undefined ? new Uint8Array(size) : slab.alloc(size)
  out[0] = LEAF
  writeBinaryString(out, 1, path)
  let o = putUvarint(out, 1 + HASH_LENGTH, key.length)
  out.set(key, o)
  o = putUvarint(out, o + key.length, value.length)
  out.set(value, o)
  return out
}

/** {@link encodeLeaf} through the generic codec; the reference the fast encoder must match. */
export function encodeLeafGeneric(path: Uint8Array, key: Uint8Array, value: Uint8Array): Uint8Array {
  const w = new Writer()
  w.u8(LEAF)
  leafRecord.write(w, { path, key, value })
  return w.finish()
}

/** Bytes per {@link Slab} chunk: large enough that chunk allocation is rare, small enough to waste little. */
const SLAB_CHUNK = 64 * 1024

/**
 * Hands out record buffers as views of shared chunks. V8 allocates a typed array over 64 bytes
 * off-heap, which costs several times a hash; a branch record is 67–75 bytes and a commit writes
 * thousands to millions of them, so they are carved out of chunks instead.
 */
export class Slab {
  private chunk = new Uint8Array(0)
  private at = 0

  /** A zeroed `n`-byte view that no other call returns. */
  alloc(n: number): Uint8Array {
    if (this.at + n > this.chunk.length) {
      this.chunk = new Uint8Array(Math.max(SLAB_CHUNK, n))
      this.at = 0
    }
    const out = this.chunk.subarray(this.at, this.at + n)
    this.at += n
    return out
  }
}

/** The version of a child slot: the empty subtree's is 0. */
export function versionOf(n: TreeNode | null): number {
  return n === null ? 0 : n.version
}

/** The stored record of a branch over `left` and `right`, carved from `slab` when given. */
export function encodeBranch(left: TreeNode | null, right: TreeNode | null, slab?: Slab): Uint8Array {
  const lv = versionOf(left)
  const rv = versionOf(right)
  const size = 1 + 2 * HASH_LENGTH + uvarintLength(lv) + uvarintLength(rv)
  const out = slab === undefined ? new Uint8Array(size) : slab.alloc(size)
  out[0] = BRANCH
  writeBinaryString(out, 1, hashOf(left))
  writeBinaryString(out, 1 + HASH_LENGTH, hashOf(right))
  putUvarint(out, putUvarint(out, 1 + 2 * HASH_LENGTH, lv), rv)
  return out
}

/** A child slot of a decoded branch: empty, or a stub to read from the store. */
function child(hash: string, version: number): Stub | null {
  return hash === EMPTY_HASH ? null : new Stub(hash, version)
}

/**
 * Decodes the record stored under `version ‖ hash`. Records come from our own store, so a bad one
 * is corruption.
 */
export function decodeNode(hash: string, version: number, record: Uint8Array): Leaf | Branch {
  try {
    const r = new Reader(record)
    const tag = r.u8()
    let node: Leaf | Branch
    if (tag === LEAF) {
      const { path, value } = leafRecord.read(r)
      node = new Leaf(hash, bytesToBinaryString(path), bytesToBinaryString(value), version)
    } else if (tag === BRANCH) {
      const l = bytesToBinaryString(r.take(HASH_LENGTH))
      const rt = bytesToBinaryString(r.take(HASH_LENGTH))
      const lv = uvarint.read(r)
      const rv = uvarint.read(r)
      node = new Branch(hash, child(l, lv), child(rt, rv), version)
    } else {
      throw new DecodeError('INVALID_TAG', `state node record has tag ${tag}`)
    }
    if (r.remaining !== 0) throw new DecodeError('TRAILING_BYTES', `state node record has ${r.remaining} trailing byte(s)`)
    return node
  } catch (cause) {
    if (!(cause instanceof DecodeError)) throw cause
    throw new StateTreeError('CORRUPT_NODE', `stored state node does not decode: ${cause.message}`, { cause })
  }
}
