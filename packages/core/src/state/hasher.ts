/**
 * The state tree's three hashes, over an injectable SHA-256. The default is the allocation-light
 * pure-JavaScript {@link fastSha256}, which runs everywhere; a full node may inject another (e.g.
 * OpenSSL via `node:crypto`). Every input is a domain-tagged byte string, so any correct SHA-256
 * gives identical roots.
 */
import { Domain } from '../crypto/hash.js'
import { hash32ToBinaryString } from './binary.js'
import { fastSha256, fastSha256Binary } from './sha256.js'

/** A SHA-256 implementation. It must not keep or modify its input: the hasher reuses the buffer. */
export type Sha256 = (data: Uint8Array) => Uint8Array

/** Hashing rules of the state tree; see `state-tree.ts` for the tree they define. */
export class StateHasher {
  /** Node and leaf preimages are always 65 bytes; one scratch buffer saves an allocation per hash. */
  protected readonly scratchBuffer = new Uint8Array(65)

  /** The injected SHA-256, returning a binary string. */
  protected readonly digest: (data: Uint8Array) => string

  /** @param sha256 the SHA-256 to use; defaults to {@link fastSha256}. */
  constructor(readonly sha256: Sha256 = fastSha256) {
    this.digest = sha256 === fastSha256 ? fastSha256Binary : (d) => hash32ToBinaryString(sha256(d))
  }

  /** The 256-bit path of a key: `taggedHash(StateKey, key)`. Hashing spreads keys evenly. */
  keyPath(key: Uint8Array): Uint8Array {
    const buf = new Uint8Array(key.length + 1)
    buf[0] = Domain.StateKey
    buf.set(key, 1)
    return this.sha256(buf)
  }

  /** `sha256(tag ‖ data)` as a binary string. */
  protected digestOf(tag: number, data: Uint8Array): string {
    const buf = new Uint8Array(data.length + 1)
    buf[0] = tag
    buf.set(data, 1)
    return this.digest(buf)
  }

  /** The hash a leaf commits to for its value: plain `sha256(value)`. */
  valueHash(value: Uint8Array): Uint8Array {
    return this.sha256(value)
  }

  /** A leaf's hash: `taggedHash(StateLeaf, path ‖ valueHash)`; independent of the leaf's depth. */
  leaf(path: Uint8Array, valueHash: Uint8Array): Uint8Array {
    const b = this.scratchBuffer
    b[0] = Domain.StateLeaf
    b.set(path, 1)
    b.set(valueHash, 33)
    return this.sha256(b)
  }

  /** An internal node's hash: `taggedHash(StateNode, left ‖ right)`; an empty child is 32 zero bytes. */
  node(left: Uint8Array, right: Uint8Array): Uint8Array {
    const b = this.scratchBuffer
    b[0] = Domain.StateNode
    b.set(left, 1)
    b.set(right, 33)
    return this.sha256(b)
  }
}

/**
 * The same hashes over binary strings (see `binary.ts`), the form the tree keeps them in.
 * Separate methods rather than conversions at the call sites keep the hot path allocation-light.
 */
export class BinaryStateHasher extends StateHasher {
  /** {@link StateHasher.keyPath} as a binary string. */
  keyPathBinary(key: Uint8Array): string {
    return this.digestOf(Domain.StateKey, key)
  }

  /** {@link StateHasher.leaf} over a binary-string path, as a binary string. */
  leafBinary(path: string, valueHash: Uint8Array): string {
    const b = this.scratchBuffer
    b[0] = Domain.StateLeaf
    for (let i = 0; i < 32; i++) b[1 + i] = path.charCodeAt(i)
    b.set(valueHash, 33)
    return this.digest(b)
  }

  /** {@link StateHasher.node} over binary strings, as a binary string. */
  nodeBinary(left: string, right: string): string {
    const b = this.scratchBuffer
    b[0] = Domain.StateNode
    for (let i = 0; i < 32; i++) {
      b[1 + i] = left.charCodeAt(i)
      b[33 + i] = right.charCodeAt(i)
    }
    return this.digest(b)
  }
}

/** The hasher over the default SHA-256, shared because it is stateless between calls. */
export const defaultStateHasher: StateHasher = new StateHasher()
