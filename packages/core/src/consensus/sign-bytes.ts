/**
 * A vote's sign bytes without the generic codec: the hot path of every node verifies about 2n
 * votes per height, and the generic encoder (a growable writer, the address parsed from hex each
 * time) and hash copy cost as much as a tenth of a native signature check. The bytes are exactly
 * `voteSignBytes` (a test compares them over many votes); anything unusual falls back to it.
 */
import type { Address } from '../crypto/address.js'
import { addressToBytes } from '../crypto/address.js'
import { Domain, HASH_LENGTH } from '../crypto/hash.js'
import { type Vote, VoteType, voteSignBytes } from '../ledger/vote.js'

/** Address bytes kept: a few validator sets' worth; the memo is cleared when it grows past this. */
const ADDRESS_MEMO_SIZE = 4096
const addressMemo = new Map<Address, Uint8Array>()

function addressBytes(a: Address): Uint8Array {
  let b = addressMemo.get(a)
  if (!b) {
    if (addressMemo.size >= ADDRESS_MEMO_SIZE) addressMemo.clear()
    b = addressToBytes(a)
    addressMemo.set(a, b)
  }
  return b
}

function putUvarint(buf: Uint8Array, o: number, v: number): number {
  let x = v
  while (x >= 0x80) {
    buf[o++] = (x % 0x80) | 0x80
    x = Math.floor(x / 0x80)
  }
  buf[o++] = x
  return o
}

function plain(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0
}

/** `voteSignBytes(vote)`, hashed with `sha256` (any correct SHA-256, e.g. a native one). */
export function fastVoteSignBytes(vote: Vote, sha256: (data: Uint8Array) => Uint8Array): Uint8Array {
  if (
    !plain(vote.networkId) ||
    !plain(vote.height) ||
    !plain(vote.round) ||
    (vote.type !== VoteType.Prevote && vote.type !== VoteType.Precommit) ||
    !(vote.blockHash instanceof Uint8Array) ||
    vote.blockHash.length !== HASH_LENGTH ||
    typeof vote.validator !== 'string' ||
    vote.validator.length !== 42
  ) {
    return voteSignBytes(vote)
  }
  // Tag, three uvarints of at most 8 bytes, the type byte, the hash and the 21-byte address.
  const buf = new Uint8Array(1 + 3 * 8 + 1 + HASH_LENGTH + 21)
  let o = 0
  buf[o++] = Domain.Vote
  o = putUvarint(buf, o, vote.networkId)
  buf[o++] = vote.type
  o = putUvarint(buf, o, vote.height)
  o = putUvarint(buf, o, vote.round)
  buf.set(vote.blockHash, o)
  o += HASH_LENGTH
  buf.set(addressBytes(vote.validator), o)
  o += 21
  return sha256(buf.subarray(0, o))
}
