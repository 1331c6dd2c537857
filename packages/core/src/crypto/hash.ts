/**
 * Hash functions and the domain tags that keep one structure's hash from ever being taken for
 * another's. Every protocol hash is SHA-256 over a one-byte domain tag and the canonical bytes.
 */
import { sha3_256 as nobleSha3 } from '@noble/hashes/sha3.js'
import { concatBytes } from '../codec/hex.js'
import { fastSha256 } from '../state/sha256.js'

/**
 * SHA-256 (FIPS 180-4). The allocation-light implementation of `state/sha256.ts`, checked against
 * `@noble/hashes` in the tests; `npm run bench -- core` prints both (here 2.2x noble's rate at 33
 * bytes, 1.6x at a 150-byte transaction body, 1.1x on 64 kB). A full node routes it to OpenSSL
 * (`useSha256Backend`), which gives the same hashes faster.
 */
export function sha256(data: Uint8Array): Uint8Array {
  return fastSha256(data)
}

/** SHA3-256 (FIPS 202); offered for interop, not used by the protocol's own hashes. */
export function sha3_256(data: Uint8Array): Uint8Array {
  return nobleSha3(data)
}

/** Length of every protocol hash, in bytes. */
export const HASH_LENGTH = 32

/** One-byte domain tags. Values are part of the protocol: never reuse or renumber one. */
export const Domain = {
  MerkleLeaf: 0x00,
  MerkleNode: 0x01,
  StateLeaf: 0x02,
  StateNode: 0x03,
  StateKey: 0x04,
  MerkleRoot: 0x05,
  Transaction: 0x10,
  Header: 0x11,
  Vote: 0x12,
  Proposal: 0x13,
  Receipt: 0x14,
  Result: 0x15,
  ValidatorSet: 0x16,
  Commit: 0x17,
  Genesis: 0x18,
  AccountAddress: 0x19,
  ContractAddress: 0x1a,
  Bloom: 0x1b,
  /** A certificate's digest (its id), which the issuing block's key signs. */
  Certificate: 0x20,
  /** A payment channel's id, from the transaction that opened it. */
  ChannelId: 0x21,
  /** A channel state both parties sign (packages/core/src/channel). */
  ChannelState: 0x22,
  /** A private message on a channel, signed by its sender. */
  ChannelMessage: 0x23,
  /** A party's revocation of its channel states below a number (packages/core/src/channel). */
  ChannelRevocation: 0x24,
  /** A wallet's hello on a link: it holds its address's key, and speaks to that link's peer. */
  ChannelHello: 0x25,
} as const

/** A domain tag's name. */
export type DomainName = keyof typeof Domain

/** SHA-256 of the domain tag followed by `data`. */
export function taggedHash(tag: number, data: Uint8Array): Uint8Array {
  // Through a kept buffer when it fits: a fresh one above 64 bytes lives outside the JavaScript
  // heap, and tagged hashes of 65-byte preimages run thousands of times per block.
  const buf = data.length < TAG_SCRATCH.length ? TAG_SCRATCH : new Uint8Array(data.length + 1)
  buf[0] = tag
  buf.set(data, 1)
  return fastSha256(buf === TAG_SCRATCH ? buf.subarray(0, data.length + 1) : buf)
}

const TAG_SCRATCH = new Uint8Array(4096)

/** `taggedHash(tag, a ‖ b)` for two hashes (a Merkle node), without building `a ‖ b`. */
export function taggedHashPair(tag: number, a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length + b.length >= TAG_SCRATCH.length) return taggedHash(tag, concatBytes(a, b))
  TAG_SCRATCH[0] = tag
  TAG_SCRATCH.set(a, 1)
  TAG_SCRATCH.set(b, 1 + a.length)
  return fastSha256(TAG_SCRATCH.subarray(0, 1 + a.length + b.length))
}

/** The all-zero hash: "no block", "empty tree", "no commit". */
export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_LENGTH)
