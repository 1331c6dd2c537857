/**
 * Consensus wire messages: signed proposals (with the proposed block's bytes), signed votes, and
 * decisions (a committed block with its commit certificate) that bring a lagging node up to date.
 * A proposal's signature covers the block hash, never the bytes: the receiver hashes the bytes
 * itself with the application's block hash function and rejects a mismatch.
 */
import { bytes, type Codec, fixedBytes, hashEncoded, mapped, struct, uvarint } from '../codec/codec.js'
import { type Address, address } from '../crypto/address.js'
import { Domain, HASH_LENGTH } from '../crypto/hash.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { DecodeError } from '../errors.js'
import { MAX_BLOCK_BYTES } from '../ledger/block.js'
import { type Commit, commitCodec, type SignedVote, signedVoteCodec } from '../ledger/vote.js'

/** Largest block a proposal or decision may carry: the ledger's block size limit. */
export const MAX_PROPOSAL_BLOCK_BYTES = MAX_BLOCK_BYTES

/** A proposer's offer of one block at a height and round. */
export interface Proposal {
  readonly networkId: number
  readonly height: number
  readonly round: number
  readonly blockHash: Uint8Array
  /**
   * The round of the prevote quorum ("proof of lock") that made this block the proposer's valid
   * value, or -1 for a fresh block. Validators locked at a lower round may prevote for it.
   */
  readonly validRound: number
  readonly proposer: Address
}

/** Codec of {@link Proposal}; `validRound` travels as `validRound + 1` so -1 fits a uvarint. */
export const proposalCodec: Codec<Proposal> = struct('Proposal', {
  networkId: uvarint,
  height: uvarint,
  round: uvarint,
  blockHash: fixedBytes(HASH_LENGTH),
  validRound: mapped(
    uvarint,
    'validRound',
    (v) => v - 1,
    (v) => v + 1,
  ),
  proposer: address,
}) as unknown as Codec<Proposal>

/** A proposal, its proposer's signature, and the proposed block's bytes. */
export interface SignedProposal {
  readonly proposal: Proposal
  readonly signature: Uint8Array
  readonly block: Uint8Array
}

/** Codec of {@link SignedProposal}. */
export const signedProposalCodec: Codec<SignedProposal> = struct('SignedProposal', {
  proposal: proposalCodec,
  signature: fixedBytes(64),
  block: bytes(MAX_PROPOSAL_BLOCK_BYTES),
}) as unknown as Codec<SignedProposal>

/** The 32 bytes a proposer signs. */
export function proposalSignBytes(proposal: Proposal): Uint8Array {
  return hashEncoded(Domain.Proposal, proposalCodec, proposal)
}

/** Signs a proposal for `block`. */
export function signProposal(
  proposal: Proposal,
  block: Uint8Array,
  secretKey: Uint8Array,
  crypto: CryptoProvider = nobleCrypto,
): SignedProposal {
  return { proposal, signature: crypto.sign(proposalSignBytes(proposal), secretKey), block }
}

/** A committed block and the certificate that proves it: what a lagging node needs to move on. */
export interface Decision {
  readonly block: Uint8Array
  readonly commit: Commit
}

/** Every message the consensus protocol sends. */
export type ConsensusMessage =
  | { readonly kind: 'proposal'; readonly proposal: SignedProposal }
  | { readonly kind: 'vote'; readonly vote: SignedVote }
  | { readonly kind: 'decision'; readonly decision: Decision }

const decisionCodec: Codec<Decision> = struct('Decision', {
  block: bytes(MAX_PROPOSAL_BLOCK_BYTES),
  commit: commitCodec,
}) as unknown as Codec<Decision>

/** One-byte tags of {@link consensusMessageCodec}; part of the wire format, never renumber. */
const MessageTag = { proposal: 1, vote: 2, decision: 3 } as const

/** Codec of {@link ConsensusMessage}: a tag byte and the message. */
export const consensusMessageCodec: Codec<ConsensusMessage> = {
  name: 'ConsensusMessage',
  minSize: 1,
  write(w, m) {
    w.u8(MessageTag[m.kind])
    if (m.kind === 'proposal') signedProposalCodec.write(w, m.proposal)
    else if (m.kind === 'vote') signedVoteCodec.write(w, m.vote)
    else decisionCodec.write(w, m.decision)
  },
  read(r) {
    const start = r.offset
    const tag = r.u8()
    if (tag === MessageTag.proposal) return { kind: 'proposal', proposal: signedProposalCodec.read(r) }
    if (tag === MessageTag.vote) return { kind: 'vote', vote: signedVoteCodec.read(r) }
    if (tag === MessageTag.decision) return { kind: 'decision', decision: decisionCodec.read(r) }
    throw new DecodeError('INVALID_TAG', `ConsensusMessage at offset ${start} has tag ${tag}`, { details: { offset: start, tag } })
  },
}

/** The height a message belongs to. */
export function messageHeight(m: ConsensusMessage): number {
  if (m.kind === 'proposal') return m.proposal.proposal.height
  if (m.kind === 'vote') return m.vote.vote.height
  return m.decision.commit.height
}
