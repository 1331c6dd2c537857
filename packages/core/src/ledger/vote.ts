/**
 * Votes and commit certificates. A validator's prevote or precommit names a block hash (or the
 * zero hash: "nil") at a height and round of one network; its signature covers all of that, so a
 * vote cannot be replayed on another network, height, round or block. A commit certificate is the
 * precommits of more than two thirds of the voting power for one block; the next block carries it
 * and light clients verify it.
 */
import { type Codec, enumeration, fixedBytes, hashEncoded, list, struct, u16, uvarint } from '../codec/codec.js'
import { bytesEqual } from '../codec/hex.js'
import { type Address, address } from '../crypto/address.js'
import { Domain, HASH_LENGTH, ZERO_HASH } from '../crypto/hash.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { LoopchainError } from '../errors.js'
import { isQuorum, MAX_VALIDATORS, totalPower, type ValidatorSet } from './validators.js'

/** The two voting phases. */
export const VoteType = { Prevote: 1, Precommit: 2 } as const
/** A voting phase. */
export type VoteType = (typeof VoteType)[keyof typeof VoteType]

/** What a validator votes for. `blockHash` all zero is a vote for nil (no block this round). */
export interface Vote {
  readonly networkId: number
  readonly type: VoteType
  readonly height: number
  readonly round: number
  readonly blockHash: Uint8Array
  readonly validator: Address
}

/** Codec of {@link Vote}. */
export const voteCodec: Codec<Vote> = struct('Vote', {
  networkId: uvarint,
  type: enumeration('VoteType', [VoteType.Prevote, VoteType.Precommit]),
  height: uvarint,
  round: uvarint,
  blockHash: fixedBytes(HASH_LENGTH),
  validator: address,
}) as unknown as Codec<Vote>

/** A vote and its validator's signature. */
export interface SignedVote {
  readonly vote: Vote
  readonly signature: Uint8Array
}

/** Codec of {@link SignedVote}. */
export const signedVoteCodec: Codec<SignedVote> = struct('SignedVote', {
  vote: voteCodec,
  signature: fixedBytes(64),
}) as unknown as Codec<SignedVote>

/** The 32 bytes a validator signs for a vote. */
export function voteSignBytes(vote: Vote): Uint8Array {
  return hashEncoded(Domain.Vote, voteCodec, vote)
}

/** Signs a vote. */
export function signVote(vote: Vote, secretKey: Uint8Array, crypto: CryptoProvider = nobleCrypto): SignedVote {
  return { vote, signature: crypto.sign(voteSignBytes(vote), secretKey) }
}

/** True for a vote for nil. */
export function isNilVote(vote: Vote): boolean {
  return bytesEqual(vote.blockHash, ZERO_HASH)
}

/** One precommit signature in a commit, by the signer's index in the validator set in force. */
export interface CommitSignature {
  readonly index: number
  readonly signature: Uint8Array
}

/** A commit certificate: precommits of more than 2/3 of the power for one block. */
export interface Commit {
  readonly height: number
  readonly round: number
  readonly blockHash: Uint8Array
  /** Sorted by strictly increasing validator index. */
  readonly signatures: readonly CommitSignature[]
}

/** Codec of {@link Commit}. */
export const commitCodec: Codec<Commit> = struct('Commit', {
  height: uvarint,
  round: uvarint,
  blockHash: fixedBytes(HASH_LENGTH),
  signatures: list(struct('CommitSignature', { index: u16, signature: fixedBytes(64) }), MAX_VALIDATORS),
}) as unknown as Codec<Commit>

/** The hash a header carries as `lastCommitHash`. The genesis block's "no commit" is the zero hash. */
export function commitHash(commit: Commit): Uint8Array {
  return hashEncoded(Domain.Commit, commitCodec, commit)
}

/** Why a commit certificate does not prove its block. */
export class CommitError extends LoopchainError<
  'WRONG_BLOCK' | 'UNSORTED' | 'UNKNOWN_VALIDATOR' | 'BAD_SIGNATURE' | 'NO_QUORUM' | 'NIL_BLOCK'
> {}

/**
 * Verifies that `commit` proves block `blockHash` at `height`: every signature is a valid
 * precommit by a distinct member of `validators` (the set in force at that height), and their
 * power is more than two thirds of the set's. Returns the signing power.
 */
export function verifyCommit(
  commit: Commit,
  expected: { networkId: number; height: number; blockHash: Uint8Array },
  validators: ValidatorSet,
  crypto: CryptoProvider = nobleCrypto,
): number {
  if (commit.height !== expected.height || !bytesEqual(commit.blockHash, expected.blockHash)) {
    throw new CommitError('WRONG_BLOCK', `commit is for height ${commit.height}, not the expected block at height ${expected.height}`)
  }
  if (bytesEqual(commit.blockHash, ZERO_HASH)) throw new CommitError('NIL_BLOCK', 'a commit cannot be for nil')
  let power = 0
  let prev = -1
  for (const s of commit.signatures) {
    if (s.index <= prev) throw new CommitError('UNSORTED', `commit signatures must have strictly increasing indexes (at ${s.index})`)
    prev = s.index
    const v = validators.validators[s.index]
    if (!v) throw new CommitError('UNKNOWN_VALIDATOR', `commit signature index ${s.index} is outside the validator set`)
    const vote: Vote = {
      networkId: expected.networkId,
      type: VoteType.Precommit,
      height: commit.height,
      round: commit.round,
      blockHash: commit.blockHash,
      validator: v.address,
    }
    if (!crypto.verify(s.signature, voteSignBytes(vote), v.publicKey)) {
      throw new CommitError('BAD_SIGNATURE', `precommit signature of validator ${v.address} does not verify`, {
        details: { index: s.index },
      })
    }
    power += v.power
  }
  const total = totalPower(validators)
  if (!isQuorum(power, total)) {
    throw new CommitError('NO_QUORUM', `commit carries ${power} of ${total} voting power, not more than 2/3`, { details: { power, total } })
  }
  return power
}
