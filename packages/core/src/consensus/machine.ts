/**
 * The consensus state machine: Tendermint's algorithm (Buchman, Kwon, Milosevic, "The latest
 * gossip on BFT consensus", 2018) over weighted votes, driven by inputs and answering with
 * outputs. Each height runs rounds of propose → prevote → precommit; a block commits when more
 * than 2/3 of the power precommits it in one round.
 *
 * Invariants (n validators by power, at most f Byzantine with n ≥ 3f + 1; "quorum" is more than
 * 2/3 of the power, "weak quorum" more than 1/3):
 *
 * - I1 (one vote per slot): this node signs at most one prevote and one precommit per (height,
 *   round), and at most one proposal. Own signatures are recorded in the WAL (`wal-write` output
 *   before the `broadcast` that carries them) and restored, so a restart re-sends the recorded
 *   message instead of signing a new one. See {@link Machine.castVote} and {@link Machine.propose}.
 * - I2 (locking): this node precommits block B at round r only after a prevote quorum for B at r
 *   (a "polka"); it then locks on B at r (the lock is written to the WAL before the precommit).
 *   While locked, it prevotes another block B' at a later round only when B' comes with a polka
 *   at a round ≥ its lock round. See {@link Machine.tryPrevote} and the polka rule in
 *   {@link Machine.progress}.
 * - I3 (counting): each validator counts at most once for each block (or nil) in a tally of one
 *   (round, type); its first vote also counts once towards "any". A second, different vote is
 *   reported as evidence and counts only for its own block, as the signed fact it is (a node that
 *   saw the other one first must still be able to check a polka containing it). A block with a
 *   quorum needs more than 2/3 of the power; two blocks with quorums in one tally would need more
 *   than 1/3 equivocating, i.e. more than f. So with at most f Byzantine, one block per tally.
 * - Safety follows: if B commits at round r, a quorum precommitted B at r, so more than 1/3 honest
 *   power is locked on B at r; a polka for any B' ≠ B at a round > r would need their prevotes,
 *   which I2 withholds; so no B' gets a polka after r, and by I3 no B' gets precommits at r.
 * - Liveness after the network stabilises (the paper assumes gossip that eventually re-delivers
 *   every message; here the machine re-sends what matters itself): timeouts grow per round, so an
 *   honest proposer's round eventually lasts long enough; a weak quorum at a higher round pulls a
 *   node forward; a re-proposal carries its polka; a stalled round re-sends this node's proposal,
 *   votes, latest polka and the precommits that ended the previous round (`rebroadcast`); a lock
 *   is written to the WAL with its polka, so a restarted node can still justify it; a re-sent vote
 *   from an earlier height makes the driver send the committed decision back (`peer-behind`), and
 *   a stalled node that hears of later heights asks for it (`sync-needed`).
 * - Every message is verified before it counts (network id, membership, proposer, block hash,
 *   signature), and each distinct vote's signature is verified once: duplicates are dropped
 *   before verification, and own votes are never verified.
 */
import { bytesEqual } from '../codec/hex.js'
import type { Address } from '../crypto/address.js'
import { ZERO_HASH } from '../crypto/hash.js'
import { isQuorum, totalPower, type Validator, type ValidatorSet } from '../ledger/validators.js'
import { type Commit, type CommitSignature, type SignedVote, type Vote, VoteType, verifyCommit } from '../ledger/vote.js'
import {
  type ConsensusMessage,
  type Decision,
  messageHeight,
  type Proposal,
  proposalSignBytes,
  type SignedProposal,
  signProposal,
} from './messages.js'
import { proposerIndex } from './proposer.js'
import { fastVoteSignBytes } from './sign-bytes.js'
import {
  type ConsensusConfig,
  ConsensusError,
  type ConsensusInput,
  type ConsensusOutput,
  DEFAULT_TIMEOUTS,
  type Step,
  type TimeoutConfig,
  type TimeoutKind,
  type WalEntry,
} from './types.js'

/** Messages for later heights kept until that height starts: a few heights of a large set. */
export const MAX_FUTURE_MESSAGES = 10_000
/**
 * Block bytes those messages may hold in all (proposals and decisions carry a block): room for
 * several of the largest proposals, and a bound on what signed messages for a later height —
 * which this node cannot weigh yet — can make it keep.
 */
export const MAX_FUTURE_BLOCK_BYTES = 64 * 1024 * 1024
/** Rounds ahead of the current one that a vote may name; bounds the memory a peer can make us spend. */
export const MAX_ROUND_LOOKAHEAD = 10_000
/**
 * Rounds ahead of the current one whose proposals are kept. A proposal carries a block of up to
 * megabytes, and a faulty validator may sign two for every round it leads: over the votes' look-
 * ahead that was gigabytes per height. An honest proposer proposes in its current round, where
 * the others are or soon will be; a node further behind gets the proposal again from its
 * proposer's re-sends once it gets there.
 */
export const MAX_PROPOSAL_LOOKAHEAD = 4
/**
 * Highest round of a later height whose messages are kept for it. A height starts at round 0 on
 * every node; without a bound, one validator's signed messages for thousands of rounds of the next
 * height filled the buffer and honest ones arriving early were dropped.
 */
export const MAX_FUTURE_ROUND = 8
/** Previous-height votes remembered per height; beyond this every such vote counts as a re-send. */
const MAX_STRAGGLERS = 4096
/** Proposals kept per round: the first, and one conflicting one as evidence and as a block source. */
const MAX_PROPOSALS_PER_ROUND = 2
/** Bound on rule firings per input; each firing changes the step or round, so this is never reached. */
const MAX_RULE_FIRINGS = 100_000

/** A hash as a map key. */
function hashKey(h: Uint8Array): string {
  return String.fromCharCode.apply(null, h as unknown as number[])
}

/**
 * What identifies a message held for a later height: its signed fields and signatures. A proposal's
 * or decision's block is not in it: the block is checked against the signed hash before it is kept.
 */
function futureKey(m: ConsensusMessage): string {
  if (m.kind === 'vote') {
    const v = m.vote.vote
    return `v${v.networkId}:${v.height}:${v.round}:${v.type}:${v.validator}:${hashKey(v.blockHash)}:${hashKey(m.vote.signature)}`
  }
  if (m.kind === 'proposal') {
    const p = m.proposal.proposal
    return `p${p.networkId}:${p.height}:${p.round}:${p.validRound}:${p.proposer}:${hashKey(p.blockHash)}:${hashKey(m.proposal.signature)}`
  }
  const c = m.decision.commit
  return `d${c.height}:${c.round}:${hashKey(c.blockHash)}:${c.signatures.map((x) => `${x.index}:${hashKey(x.signature)}`).join(',')}`
}
const NIL = hashKey(ZERO_HASH)

/**
 * Conflicting votes kept per validator per tally, besides its first. An equivocator's votes for
 * other blocks still count for those blocks, as the signed facts they are: a node that saw the
 * "wrong" one first must still be able to check a polka (proof of lock) that contains the other.
 * With at most f Byzantine power, two blocks still cannot both reach a quorum in one tally
 * (two quorums overlap in more than f). The bound caps the memory an equivocator can make us use.
 */
export const MAX_CONFLICTING_VOTES = 3

/** Votes of one type in one round: the first per validator, and a few conflicting ones (I3). */
class Tally {
  /** Each validator's first vote; `any` counts each validator once. */
  readonly votes: (SignedVote | undefined)[]
  /** Per block hash (key): the power and the votes for it. */
  readonly byHash = new Map<string, { power: number; votes: Map<number, SignedVote> }>()
  /** Power that voted at all. */
  any = 0
  /** The hash (key) holding a quorum, once one does. */
  maj: string | undefined
  /** Conflicting votes kept per validator. */
  readonly conflicts = new Map<number, number>()
  constructor(n: number) {
    this.votes = new Array<SignedVote | undefined>(n).fill(undefined)
  }
}

interface RoundState {
  readonly proposals: SignedProposal[]
  readonly prevotes: Tally
  readonly precommits: Tally
  readonly senders: Set<number>
  senderPower: number
  prevoteTimeout: boolean
  precommitTimeout: boolean
  polka: boolean
}

/** A snapshot of the machine for drivers, tests and metrics. */
export interface ConsensusStatus {
  readonly started: boolean
  readonly height: number
  readonly round: number
  readonly step: Step
  readonly lockedRound: number
  readonly validRound: number
  /** Signature verifications done so far (votes, proposals, commit certificates). */
  readonly verifications: number
}

/** A consensus state machine: feed it inputs, carry out its outputs in order. */
export interface Consensus {
  handle(input: ConsensusInput): ConsensusOutput[]
  status(): ConsensusStatus
  /**
   * The validators whose signed votes or proposals for the height in progress reached the machine,
   * in any round, its own included, in the set's order: a driver names the others when a height
   * does not end.
   */
  heard(): Address[]
}

/**
 * Creates a state machine. After a restart pass the WAL entries written so far (any order); then
 * send `start-height` for the height the application is at.
 */
export function createConsensus(config: ConsensusConfig, wal: readonly WalEntry[] = []): Consensus {
  return new Machine(config, wal)
}

function slotKey(height: number, round: number, type?: number): string {
  return type === undefined ? `${height}/${round}` : `${height}/${round}/${type}`
}

class Machine implements Consensus {
  private readonly cfg: ConsensusConfig
  private readonly timeouts: TimeoutConfig
  private readonly quorum: (power: number) => boolean
  private out: ConsensusOutput[] = []
  private started = false
  private height = 0
  private round = 0
  private step: Step = 'propose'
  private validators: ValidatorSet = { validators: [] }
  private total = 0
  private indexOf = new Map<Address, number>()
  private ownIndex = -1
  private rounds = new Map<number, RoundState>()
  /** Blocks of this height by hash key, from verified proposals, the WAL lock, or our own. */
  private blocks = new Map<string, { hash: Uint8Array; block: Uint8Array }>()
  private validity = new Map<string, boolean>()
  private validationAsked = new Set<string>()
  /** Rounds whose precommits hold a quorum for a block. */
  private commitRounds = new Set<number>()
  /** Rounds whose prevotes hold a quorum for a block (polkas). */
  private polkaRounds = new Set<number>()
  private skipTarget = -1
  private lockedRound = -1
  private lockedHash: string | undefined
  private validRound = -1
  private validHash: string | undefined
  private future: { message: ConsensusMessage; from: string | undefined }[] = []
  /** Block bytes held in {@link future}. */
  private futureBlockBytes = 0
  /** What identifies each message held in {@link future} (see `futureKey`), so a copy is not kept twice. */
  private futureKeys = new Set<string>()
  /** Votes of the previous height seen once since this height started (see `looksStuck`). */
  private stragglers = new Set<string>()
  /** Own signed votes and proposals by slot, from signing and from the WAL (I1). */
  private readonly ownVotes = new Map<string, SignedVote>()
  private readonly ownProposals = new Map<string, SignedProposal>()
  private readonly walLocks = new Map<number, Extract<WalEntry, { kind: 'lock' }>>()
  private verifications = 0

  constructor(config: ConsensusConfig, wal: readonly WalEntry[]) {
    this.cfg = config
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...config.timeouts }
    this.quorum = config.unsafeTestOnly?.halfQuorum ? (p) => 2 * p >= this.total : (p) => isQuorum(p, this.total)
    for (const e of wal) {
      if (e.kind === 'vote') this.ownVotes.set(slotKey(e.vote.vote.height, e.vote.vote.round, e.vote.vote.type), e.vote)
      else if (e.kind === 'proposal') this.ownProposals.set(slotKey(e.proposal.proposal.height, e.proposal.proposal.round), e.proposal)
      else {
        const prev = this.walLocks.get(e.height)
        if (!prev || prev.round < e.round) this.walLocks.set(e.height, e)
      }
    }
  }

  status(): ConsensusStatus {
    return {
      started: this.started,
      height: this.height,
      round: this.round,
      step: this.step,
      lockedRound: this.lockedRound,
      validRound: this.validRound,
      verifications: this.verifications,
    }
  }

  heard(): Address[] {
    const seen = new Set<number>()
    for (const rs of this.rounds.values()) for (const i of rs.senders) seen.add(i)
    return this.validators.validators.filter((_, i) => seen.has(i)).map((v) => v.address)
  }

  handle(input: ConsensusInput): ConsensusOutput[] {
    this.out = []
    switch (input.type) {
      case 'start-height':
        this.startHeight(input.height, input.validators)
        break
      case 'message':
        this.onMessage(input.message, input.from)
        break
      case 'timeout':
        this.onTimeout(input.timeout.kind, input.timeout.height, input.timeout.round)
        break
      case 'block':
        this.onBlock(input.height, input.round, input.block)
        break
      case 'block-validity':
        if (this.started && input.height === this.height && this.step !== 'committed') {
          this.validity.set(hashKey(input.blockHash), input.valid)
        }
        break
    }
    this.progress()
    const out = this.out
    this.out = []
    return out
  }

  // -------------------------------------------------------------------------------------------
  // Heights and rounds

  private startHeight(height: number, validators: ValidatorSet): void {
    if (this.started && height <= this.height) return
    this.started = true
    this.height = height
    this.validators = validators
    this.total = totalPower(validators)
    this.indexOf = new Map(validators.validators.map((v, i) => [v.address, i]))
    this.ownIndex = this.cfg.signer ? (this.indexOf.get(this.cfg.signer.address) ?? -1) : -1
    this.rounds = new Map()
    this.blocks = new Map()
    this.validity = new Map()
    this.validationAsked = new Set()
    this.commitRounds = new Set()
    this.polkaRounds = new Set()
    this.stragglers = new Set()
    this.skipTarget = -1
    this.lockedRound = -1
    this.lockedHash = undefined
    this.validRound = -1
    this.validHash = undefined
    // Restore the lock of this height from the WAL (I2 across restarts); forget older heights.
    const lock = this.walLocks.get(height)
    if (lock) {
      const key = hashKey(lock.blockHash)
      this.lockedRound = this.validRound = lock.round
      this.lockedHash = this.validHash = key
      this.blocks.set(key, { hash: lock.blockHash, block: lock.block })
      this.validity.set(key, true)
      // The polka was verified before it was written; restore it so it can be shown again.
      const rs = this.roundState(lock.round)
      for (const sv of lock.polka) {
        const index = this.indexOf.get(sv.vote.validator)
        if (index !== undefined && sv.vote.height === height && sv.vote.round === lock.round && sv.vote.type === VoteType.Prevote) {
          this.addVote(lock.round, rs.prevotes, index, sv)
        }
      }
    }
    for (const h of this.walLocks.keys()) if (h < height) this.walLocks.delete(h)
    let startRound = 0
    for (const [k, sv] of this.ownVotes) {
      if (sv.vote.height < height) this.ownVotes.delete(k)
      else if (sv.vote.height === height) {
        startRound = Math.max(startRound, sv.vote.round)
        if (this.ownIndex >= 0 && sv.vote.validator === this.cfg.signer?.address) {
          const rs = this.roundState(sv.vote.round)
          this.addVote(sv.vote.round, sv.vote.type === VoteType.Prevote ? rs.prevotes : rs.precommits, this.ownIndex, sv)
        }
      }
    }
    for (const [k, sp] of this.ownProposals) {
      if (sp.proposal.height < height) this.ownProposals.delete(k)
      else if (sp.proposal.height === height) startRound = Math.max(startRound, sp.proposal.round)
    }
    this.startRound(startRound)
    const pending = this.future
    this.future = []
    this.futureBlockBytes = 0
    this.futureKeys = new Set()
    for (const m of pending) {
      const h = messageHeight(m.message)
      if (h === height) this.onMessage(m.message, m.from)
      else if (h > height) this.keepForLater(m.message, m.from)
    }
  }

  private startRound(round: number): void {
    this.round = round
    this.step = 'propose'
    if (this.skipTarget <= round) this.skipTarget = -1
    this.schedule('rebroadcast')
    this.schedule('propose')
    if (this.ownIndex < 0 || proposerIndex(this.validators, this.height, round) !== this.ownIndex) return
    const mine = this.ownProposals.get(slotKey(this.height, round))
    if (mine) {
      // Restarted after proposing: re-send the very same proposal (I1).
      this.sendProposal(mine)
      this.storeProposal(this.roundState(round), mine, this.ownIndex)
      this.validity.set(hashKey(mine.proposal.blockHash), true)
      return
    }
    const valid = this.validHash === undefined ? undefined : this.blocks.get(this.validHash)
    if (valid && this.validRound < round) this.propose(valid.block, valid.hash, this.validRound)
    else this.out.push({ type: 'request-block', height: this.height, round })
  }

  private schedule(kind: TimeoutKind): void {
    const t = this.timeouts
    const r = this.round
    const delayMs =
      kind === 'propose'
        ? t.proposeMs + t.proposeDeltaMs * r
        : kind === 'prevote'
          ? t.prevoteMs + t.prevoteDeltaMs * r
          : kind === 'precommit'
            ? t.precommitMs + t.precommitDeltaMs * r
            : t.rebroadcastMs + t.rebroadcastDeltaMs * r
    this.out.push({ type: 'schedule-timeout', timeout: { kind, height: this.height, round: r }, delayMs })
  }

  private roundState(round: number): RoundState {
    let rs = this.rounds.get(round)
    if (!rs) {
      const n = this.validators.validators.length
      rs = {
        proposals: [],
        prevotes: new Tally(n),
        precommits: new Tally(n),
        senders: new Set(),
        senderPower: 0,
        prevoteTimeout: false,
        precommitTimeout: false,
        polka: false,
      }
      this.rounds.set(round, rs)
    }
    return rs
  }

  private power(index: number): number {
    return (this.validators.validators[index] as Validator).power
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  private reject(from: string | undefined, error: ConsensusError): undefined {
    this.out.push({ type: 'rejected', from, error })
    return undefined
  }

  /**
   * Keeps a message of a later height for when it starts, within the buffer's bounds (else drops
   * it), once: a copy of a message already held is dropped, or one member could fill the buffer
   * with copies of one signed message and leave honest ones to wait for re-sends. A carried block
   * is checked against its signed hash here (that needs no state), so copies of a signed proposal
   * with other block bytes are refused now, not kept in place of the real one.
   */
  private keepForLater(message: ConsensusMessage, from: string | undefined): void {
    // A decision carries its commit certificate: it may name any round.
    const round = message.kind === 'vote' ? message.vote.vote.round : message.kind === 'proposal' ? message.proposal.proposal.round : 0
    if (round > MAX_FUTURE_ROUND) return
    const key = futureKey(message)
    if (this.futureKeys.has(key)) return
    const bytes = message.kind === 'vote' ? 0 : (message.kind === 'proposal' ? message.proposal : message.decision).block.length
    if (this.future.length >= MAX_FUTURE_MESSAGES || this.futureBlockBytes + bytes > MAX_FUTURE_BLOCK_BYTES) return
    if (
      message.kind === 'proposal' &&
      !this.carriesSignedBlock(message.proposal.block, message.proposal.proposal.blockHash, 'proposed', from)
    )
      return
    if (message.kind === 'decision' && !this.carriesSignedBlock(message.decision.block, message.decision.commit.blockHash, 'decided', from))
      return
    this.future.push({ message, from })
    this.futureKeys.add(key)
    this.futureBlockBytes += bytes
  }

  private onMessage(message: ConsensusMessage, from: string | undefined): void {
    const h = messageHeight(message)
    if (!this.started || h > this.height) {
      this.keepForLater(message, from)
      return
    }
    if (h < this.height) {
      if (message.kind === 'vote' && message.vote.vote.networkId === this.cfg.networkId && this.looksStuck(message.vote)) {
        this.out.push({ type: 'peer-behind', from, validator: message.vote.vote.validator, height: h })
      }
      return
    }
    if (this.step === 'committed') return
    if (message.kind === 'vote') this.onVote(message.vote, from)
    else if (message.kind === 'proposal') this.onProposal(message.proposal, from)
    else this.onDecision(message.decision, from)
  }

  /**
   * Whether a vote of an earlier height shows its sender stuck there. Votes of the previous height
   * that arrive once are the normal stragglers of a commit; a vote seen again is a stalled node's
   * re-send, and anything older than the previous height is behind for sure.
   */
  private looksStuck(sv: SignedVote): boolean {
    const v = sv.vote
    if (v.height < this.height - 1) return true
    const key = `${v.validator}/${v.round}/${v.type}/${hashKey(v.blockHash)}`
    if (this.stragglers.has(key)) return true
    if (this.stragglers.size < MAX_STRAGGLERS) this.stragglers.add(key)
    return this.stragglers.size >= MAX_STRAGGLERS
  }

  private onVote(sv: SignedVote, from: string | undefined): undefined {
    const v = sv.vote
    if (v.networkId !== this.cfg.networkId) {
      return this.reject(from, new ConsensusError('WRONG_NETWORK', `vote for network ${v.networkId}`))
    }
    const index = this.indexOf.get(v.validator)
    if (index === undefined) {
      return this.reject(from, new ConsensusError('UNKNOWN_VALIDATOR', `${v.validator} is not a validator at height ${v.height}`))
    }
    if (v.round > this.round + MAX_ROUND_LOOKAHEAD) return
    const rs = this.roundState(v.round)
    const tally = v.type === VoteType.Prevote ? rs.prevotes : rs.precommits
    const existing = tally.votes[index]
    if (existing) {
      // A duplicate is dropped unverified; a conflicting vote is verified once, reported as
      // evidence the first time, and counted for its own block only (I3).
      if (tally.byHash.get(hashKey(v.blockHash))?.votes.has(index)) return
      const conflicts = tally.conflicts.get(index) ?? 0
      if (conflicts >= MAX_CONFLICTING_VOTES) return
      if (!this.verifyVote(sv, index)) return this.reject(from, badSignature('vote', v.validator))
      tally.conflicts.set(index, conflicts + 1)
      if (conflicts === 0) this.out.push({ type: 'evidence', evidence: { kind: 'conflicting-votes', first: existing, second: sv } })
      this.countVote(v.round, tally, index, sv)
      return
    }
    if (!this.verifyVote(sv, index)) return this.reject(from, badSignature('vote', v.validator))
    this.addVote(v.round, tally, index, sv)
  }

  private verifyVote(sv: SignedVote, index: number): boolean {
    this.verifications++
    const crypto = this.cfg.crypto
    let message: Uint8Array
    try {
      message = fastVoteSignBytes(sv.vote, crypto.sha256)
    } catch {
      return false
    }
    return crypto.verify(sv.signature, message, (this.validators.validators[index] as Validator).publicKey)
  }

  private addVote(round: number, tally: Tally, index: number, sv: SignedVote): void {
    if (tally.votes[index]) return
    tally.votes[index] = sv
    tally.any += this.power(index)
    this.countVote(round, tally, index, sv)
    this.addSender(round, index)
  }

  private countVote(round: number, tally: Tally, index: number, sv: SignedVote): void {
    const key = hashKey(sv.vote.blockHash)
    let bucket = tally.byHash.get(key)
    if (!bucket) {
      bucket = { power: 0, votes: new Map() }
      tally.byHash.set(key, bucket)
    }
    bucket.votes.set(index, sv)
    bucket.power += this.power(index)
    if (tally.maj === undefined && this.quorum(bucket.power)) {
      tally.maj = key
      if (key !== NIL) (sv.vote.type === VoteType.Precommit ? this.commitRounds : this.polkaRounds).add(round)
    }
  }

  private addSender(round: number, index: number): void {
    const rs = this.roundState(round)
    if (rs.senders.has(index)) return
    rs.senders.add(index)
    rs.senderPower += this.power(index)
    // More than 1/3 of the power is at a later round: at least one honest validator is there.
    if (round > this.round && 3 * rs.senderPower > this.total) this.skipTarget = Math.max(this.skipTarget, round)
  }

  private onProposal(sp: SignedProposal, from: string | undefined): undefined {
    const p = sp.proposal
    if (p.networkId !== this.cfg.networkId) {
      return this.reject(from, new ConsensusError('WRONG_NETWORK', `proposal for network ${p.networkId}`))
    }
    if (p.round > this.round + MAX_PROPOSAL_LOOKAHEAD) return
    const rs = this.roundState(p.round)
    for (const q of rs.proposals) {
      if (bytesEqual(q.proposal.blockHash, p.blockHash) && q.proposal.validRound === p.validRound) return
    }
    if (rs.proposals.length >= MAX_PROPOSALS_PER_ROUND) return
    const index = proposerIndex(this.validators, this.height, p.round)
    const proposer = this.validators.validators[index] as Validator
    if (p.proposer !== proposer.address) {
      return this.reject(from, new ConsensusError('WRONG_PROPOSER', `${p.proposer} does not lead round ${p.round} at height ${p.height}`))
    }
    if (!Number.isSafeInteger(p.validRound) || p.validRound < -1 || p.validRound >= p.round) {
      return this.reject(from, new ConsensusError('BAD_VALID_ROUND', `valid round ${p.validRound} in round ${p.round}`))
    }
    if (!this.carriesSignedBlock(sp.block, p.blockHash, 'proposed', from)) return
    this.verifications++
    if (!this.cfg.crypto.verify(sp.signature, proposalSignBytes(p), proposer.publicKey)) {
      return this.reject(from, badSignature('proposal', p.proposer))
    }
    const first = rs.proposals[0]
    if (first) {
      this.out.push({
        type: 'evidence',
        evidence: {
          kind: 'conflicting-proposals',
          first: { proposal: first.proposal, signature: first.signature },
          second: { proposal: p, signature: sp.signature },
        },
      })
    }
    this.storeProposal(rs, sp, index)
    const key = hashKey(p.blockHash)
    if (!this.validity.has(key) && !this.validationAsked.has(key)) {
      this.validationAsked.add(key)
      this.out.push({ type: 'validate-block', height: this.height, round: p.round, blockHash: p.blockHash, block: sp.block })
    }
  }

  /**
   * A peer's block bytes hashed by the application, or `undefined` when its hash function refuses
   * them (bytes that do not decode as a block). Such bytes come signed only from a faulty
   * proposer; they are that message's problem alone, so the throw must not escape `handle` and
   * lose the outputs of the input being handled (a new height's timeouts, say).
   */
  private hashOf(block: Uint8Array): Uint8Array | undefined {
    try {
      return this.cfg.hashBlock(block)
    } catch {
      return undefined
    }
  }

  /**
   * Whether `block` (a proposal's or decision's bytes) is the block `signed` names, by the
   * application's hash; otherwise rejects the message (`MALFORMED_BLOCK`, `BLOCK_HASH_MISMATCH`).
   */
  private carriesSignedBlock(block: Uint8Array, signed: Uint8Array, what: 'proposed' | 'decided', from: string | undefined): boolean {
    const hash = this.hashOf(block)
    if (hash === undefined) this.reject(from, new ConsensusError('MALFORMED_BLOCK', `${what} block bytes are not a block`))
    else if (!bytesEqual(hash, signed))
      this.reject(from, new ConsensusError('BLOCK_HASH_MISMATCH', `${what} block bytes do not hash to the signed block hash`))
    else return true
    return false
  }

  private storeProposal(rs: RoundState, sp: SignedProposal, proposerIdx: number): void {
    if (!rs.proposals.some((q) => q.signature === sp.signature)) rs.proposals.push(sp)
    const key = hashKey(sp.proposal.blockHash)
    if (!this.blocks.has(key)) this.blocks.set(key, { hash: sp.proposal.blockHash, block: sp.block })
    this.addSender(sp.proposal.round, proposerIdx)
  }

  private onDecision(d: Decision, from: string | undefined): undefined {
    const c = d.commit
    if (!this.carriesSignedBlock(d.block, c.blockHash, 'decided', from)) return
    this.verifications += c.signatures.length
    try {
      verifyCommit(c, { networkId: this.cfg.networkId, height: this.height, blockHash: c.blockHash }, this.validators, this.cfg.crypto)
    } catch (cause) {
      return this.reject(from, new ConsensusError('BAD_COMMIT', `decision for height ${c.height} does not verify`, { cause }))
    }
    this.commit(c.round, c.blockHash, d.block, c)
  }

  private onBlock(height: number, round: number, block: Uint8Array): void {
    if (!this.started || height !== this.height || round !== this.round || this.step !== 'propose') return
    if (this.ownIndex < 0 || proposerIndex(this.validators, height, round) !== this.ownIndex) return
    if (this.ownProposals.has(slotKey(height, round))) return
    // The application's own block: its hash refusing it is a bug there, but must not throw out of
    // `handle` (the input's other outputs would be lost); the round goes on without a proposal.
    const hash = this.hashOf(block)
    if (hash !== undefined) this.propose(block, hash, -1)
  }

  private onTimeout(kind: TimeoutKind, height: number, round: number): void {
    if (!this.started || height !== this.height || round !== this.round || this.step === 'committed') return
    if (kind === 'propose' && this.step === 'propose') {
      this.castVote(VoteType.Prevote, ZERO_HASH)
      this.step = 'prevote'
    } else if (kind === 'prevote' && this.step === 'prevote') {
      this.castVote(VoteType.Precommit, ZERO_HASH)
      this.step = 'precommit'
    } else if (kind === 'precommit') {
      this.startRound(round + 1)
    } else if (kind === 'rebroadcast') {
      // A stalled round: peers may have missed what we sent, or be stuck in the round we left.
      // Re-send our proposal (with its polka) or our latest polka, our votes of this round, and
      // the precommits that took us out of the previous round.
      const mine = this.ownProposals.get(slotKey(height, round))
      if (mine) this.sendProposal(mine)
      else if (this.validHash !== undefined) this.sendPolka(this.validRound, this.validHash)
      const previous = this.rounds.get(round - 1)?.precommits.votes ?? []
      for (const sv of previous) if (sv) this.out.push({ type: 'broadcast', message: { kind: 'vote', vote: sv } })
      for (const type of [VoteType.Prevote, VoteType.Precommit]) {
        const v = this.ownVotes.get(slotKey(height, round, type))
        if (v) this.out.push({ type: 'broadcast', message: { kind: 'vote', vote: v } })
      }
      // Stalled while peers talk about later heights: we missed a commit; ask for it.
      const last = this.future[this.future.length - 1]
      if (last) this.out.push({ type: 'sync-needed', from: last.from, height: this.height })
      this.schedule('rebroadcast')
    }
  }

  // -------------------------------------------------------------------------------------------
  // Own messages (I1)

  private propose(block: Uint8Array, blockHash: Uint8Array, validRound: number): void {
    const signer = this.cfg.signer
    if (!signer) return
    const proposal: Proposal = {
      networkId: this.cfg.networkId,
      height: this.height,
      round: this.round,
      blockHash,
      validRound,
      proposer: signer.address,
    }
    const sp = signProposal(proposal, block, signer.secretKey, this.cfg.crypto)
    this.ownProposals.set(slotKey(this.height, this.round), sp)
    this.out.push({ type: 'wal-write', entry: { kind: 'proposal', proposal: sp } })
    this.sendProposal(sp)
    this.validity.set(hashKey(blockHash), true)
    this.storeProposal(this.roundState(this.round), sp, this.ownIndex)
  }

  /**
   * Broadcasts a proposal, and for a re-proposal also the polka it names: receivers need those
   * prevotes to accept it, and may have missed them (the paper assumes gossip re-delivers them).
   */
  private sendProposal(sp: SignedProposal): void {
    this.out.push({ type: 'broadcast', message: { kind: 'proposal', proposal: sp } })
    const vr = sp.proposal.validRound
    if (vr >= 0) this.sendPolka(vr, hashKey(sp.proposal.blockHash))
  }

  private sendPolka(round: number, key: string): void {
    const votes = this.rounds.get(round)?.prevotes.byHash.get(key)?.votes
    if (!votes) return
    for (const sv of votes.values()) this.out.push({ type: 'broadcast', message: { kind: 'vote', vote: sv } })
  }

  /**
   * Signs (or, if this slot was signed before, re-sends) this node's vote. A new signature is
   * written to the WAL before the broadcast, so no restart can sign a second vote in a slot.
   */
  private castVote(type: VoteType, blockHash: Uint8Array): void {
    const signer = this.cfg.signer
    if (!signer || this.ownIndex < 0) return
    const slot = slotKey(this.height, this.round, type)
    let sv = this.ownVotes.get(slot)
    if (!sv) {
      const vote: Vote = {
        networkId: this.cfg.networkId,
        type,
        height: this.height,
        round: this.round,
        blockHash,
        validator: signer.address,
      }
      sv = { vote, signature: this.cfg.crypto.sign(fastVoteSignBytes(vote, this.cfg.crypto.sha256), signer.secretKey) }
      this.ownVotes.set(slot, sv)
      this.out.push({ type: 'wal-write', entry: { kind: 'vote', vote: sv } })
    }
    this.out.push({ type: 'broadcast', message: { kind: 'vote', vote: sv } })
    const rs = this.roundState(this.round)
    this.addVote(this.round, type === VoteType.Prevote ? rs.prevotes : rs.precommits, this.ownIndex, sv)
  }

  // -------------------------------------------------------------------------------------------
  // Rules

  /** Fires the algorithm's rules until none applies. */
  private progress(): void {
    for (let i = 0; i < MAX_RULE_FIRINGS; i++) {
      if (!this.started || this.step === 'committed') return
      // Commit: a precommit quorum for a block we hold, in any round of this height.
      for (const r of this.commitRounds) {
        const key = (this.rounds.get(r) as RoundState).precommits.maj as string
        const b = this.blocks.get(key)
        if (b) {
          this.commitFromVotes(r, b.hash, b.block)
          return
        }
      }
      // The latest polka for a valid block we hold becomes the value to re-propose. This only
      // chooses what we would propose (receivers check the polka and their locks), so taking
      // polkas of any round keeps safety and spreads knowledge of them faster than the paper's rule.
      for (const r of this.polkaRounds) {
        if (r <= this.validRound || r > this.round) continue
        const key = (this.rounds.get(r) as RoundState).prevotes.maj as string
        if (this.blocks.has(key) && this.validity.get(key) === true) {
          this.validRound = r
          this.validHash = key
        }
      }
      // Round skip: a weak quorum is already at a later round.
      if (this.skipTarget > this.round) {
        this.startRound(this.skipTarget)
        continue
      }
      const rs = this.roundState(this.round)
      if (this.step === 'propose' && this.tryPrevote(rs)) continue
      if (this.step !== 'propose') {
        if (this.step === 'prevote' && !rs.prevoteTimeout && this.quorum(rs.prevotes.any)) {
          rs.prevoteTimeout = true
          this.schedule('prevote')
        }
        const maj = rs.prevotes.maj
        if (maj !== undefined && maj !== NIL && !rs.polka) {
          const b = this.blocks.get(maj)
          if (b && this.validity.get(maj) === true) {
            // Polka for a valid block we hold: lock on it (I2), WAL first, then precommit.
            rs.polka = true
            if (this.step === 'prevote') {
              const relock = this.lockedRound === this.round && this.lockedHash === maj
              this.lockedRound = this.round
              this.lockedHash = maj
              // (A lock restored from the WAL is not written again.)
              if (!relock)
                this.out.push({
                  type: 'wal-write',
                  entry: {
                    kind: 'lock',
                    height: this.height,
                    round: this.round,
                    blockHash: b.hash,
                    block: b.block,
                    polka: [...(rs.prevotes.byHash.get(maj)?.votes.values() ?? [])],
                  },
                })
              this.castVote(VoteType.Precommit, b.hash)
              this.step = 'precommit'
            }
            this.validRound = this.round
            this.validHash = maj
            // Beyond round 0 something is wrong, possibly a Byzantine validator showing its vote
            // to some of us only: pass the polka on, as gossip would, so that every honest node
            // sees it before its prevote timeout and precommits too. (Round 0, the common case,
            // skips this: all prevotes went to everyone already.)
            if (this.round > 0) this.sendPolka(this.round, maj)
            continue
          }
        }
        if (this.step === 'prevote' && maj === NIL) {
          this.castVote(VoteType.Precommit, ZERO_HASH)
          this.step = 'precommit'
          continue
        }
      }
      if (!rs.precommitTimeout && this.quorum(rs.precommits.any)) {
        rs.precommitTimeout = true
        this.schedule('precommit')
      }
      // A precommit quorum for nil: nothing can commit in this round, go on at once.
      if (rs.precommits.maj === NIL) {
        this.startRound(this.round + 1)
        continue
      }
      return
    }
  }

  /** The propose-step rule: prevote the round's proposal if it is valid and the lock allows (I2). */
  private tryPrevote(rs: RoundState): boolean {
    const sp = rs.proposals[0]
    if (!sp) return false
    const p = sp.proposal
    const key = hashKey(p.blockHash)
    const valid = this.validity.get(key)
    if (valid === undefined) return false
    const ignoreLocks = this.cfg.unsafeTestOnly?.ignoreLocks === true
    let ok: boolean
    if (p.validRound === -1) {
      ok = valid && (ignoreLocks || this.lockedRound === -1 || this.lockedHash === key)
    } else {
      // A re-proposal: it needs the polka it claims, and unlocks us if that polka is not older than our lock.
      if (this.rounds.get(p.validRound)?.prevotes.maj !== key) return false
      ok = valid && (ignoreLocks || this.lockedRound <= p.validRound || this.lockedHash === key)
    }
    this.castVote(VoteType.Prevote, ok ? p.blockHash : ZERO_HASH)
    this.step = 'prevote'
    return true
  }

  private commitFromVotes(round: number, blockHash: Uint8Array, block: Uint8Array): void {
    const votes = (this.rounds.get(round) as RoundState).precommits.byHash.get(hashKey(blockHash))?.votes ?? new Map<number, SignedVote>()
    const signatures: CommitSignature[] = [...votes].map(([index, sv]) => ({ index, signature: sv.signature }))
    signatures.sort((a, b) => a.index - b.index)
    this.commit(round, blockHash, block, { height: this.height, round, blockHash, signatures })
  }

  private commit(round: number, blockHash: Uint8Array, block: Uint8Array, commit: Commit): void {
    this.out.push({ type: 'commit', height: this.height, round, blockHash, block, commit })
    this.step = 'committed'
  }
}

function badSignature(what: string, signer: Address): ConsensusError {
  return new ConsensusError('BAD_SIGNATURE', `${what} signature of ${signer} does not verify`)
}
