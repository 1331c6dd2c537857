/**
 * Checking evidence of equivocation from anyone (a peer, a block, a light client): both messages
 * are signed by the same validator of the given set, for the same network, height, round and
 * type, and they differ.
 */
import { bytesEqual } from '../codec/hex.js'
import type { CryptoProvider } from '../crypto/provider.js'
import type { ValidatorSet } from '../ledger/validators.js'
import { voteSignBytes } from '../ledger/vote.js'
import { proposalSignBytes } from './messages.js'
import { ConsensusError, type Evidence } from './types.js'

/**
 * Verifies `evidence` against `validators` (the set in force at its height). Returns the
 * equivocating validator's index; throws {@link ConsensusError} (`BAD_EVIDENCE`) otherwise.
 */
export function verifyEvidence(evidence: Evidence, networkId: number, validators: ValidatorSet, crypto: CryptoProvider): number {
  const bad = (why: string) => new ConsensusError('BAD_EVIDENCE', `evidence rejected: ${why}`)
  if (evidence.kind === 'conflicting-votes') {
    const a = evidence.first.vote
    const b = evidence.second.vote
    if (a.networkId !== networkId || b.networkId !== networkId) throw bad('wrong network')
    if (a.validator !== b.validator || a.height !== b.height || a.round !== b.round || a.type !== b.type) throw bad('not the same slot')
    if (bytesEqual(a.blockHash, b.blockHash)) throw bad('the votes agree')
    const index = validators.validators.findIndex((v) => v.address === a.validator)
    const v = validators.validators[index]
    if (!v) throw bad(`${a.validator} is not a validator`)
    for (const sv of [evidence.first, evidence.second]) {
      if (!crypto.verify(sv.signature, voteSignBytes(sv.vote), v.publicKey)) throw bad('a signature does not verify')
    }
    return index
  }
  const a = evidence.first.proposal
  const b = evidence.second.proposal
  if (a.networkId !== networkId || b.networkId !== networkId) throw bad('wrong network')
  if (a.proposer !== b.proposer || a.height !== b.height || a.round !== b.round) throw bad('not the same slot')
  if (bytesEqual(a.blockHash, b.blockHash) && a.validRound === b.validRound) throw bad('the proposals agree')
  const index = validators.validators.findIndex((v) => v.address === a.proposer)
  const v = validators.validators[index]
  if (!v) throw bad(`${a.proposer} is not a validator`)
  for (const sp of [evidence.first, evidence.second]) {
    if (!crypto.verify(sp.signature, proposalSignBytes(sp.proposal), v.publicKey)) throw bad('a signature does not verify')
  }
  return index
}
