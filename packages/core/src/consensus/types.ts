/**
 * The consensus state machine's inputs, outputs, configuration, write-ahead-log entries,
 * evidence and errors. The machine is deterministic: the same inputs in the same order give the
 * same outputs. It reads no clock, does no I/O and makes no randomness; the driver (the full node,
 * the simulator, the benchmark) delivers messages, fires timeouts, answers block questions and
 * carries out the outputs in order.
 */
import type { Address } from '../crypto/address.js'
import type { CryptoProvider } from '../crypto/provider.js'
import { LoopchainError } from '../errors.js'
import type { ValidatorSet } from '../ledger/validators.js'
import type { Commit, SignedVote } from '../ledger/vote.js'
import type { ConsensusMessage, Proposal, SignedProposal } from './messages.js'

/** The steps of a round, then `committed` until the next height starts. */
export type Step = 'propose' | 'prevote' | 'precommit' | 'committed'

/** The timers the machine asks for. `rebroadcast` re-sends this node's messages when a round stalls. */
export type TimeoutKind = 'propose' | 'prevote' | 'precommit' | 'rebroadcast'

/** A timer: it fires for one height and round and is ignored if the machine has moved on. */
export interface Timeout {
  readonly kind: TimeoutKind
  readonly height: number
  readonly round: number
}

/** Timeout durations: `base + delta · round` milliseconds, so they grow per round and reset each height. */
export interface TimeoutConfig {
  readonly proposeMs: number
  readonly proposeDeltaMs: number
  readonly prevoteMs: number
  readonly prevoteDeltaMs: number
  readonly precommitMs: number
  readonly precommitDeltaMs: number
  readonly rebroadcastMs: number
  readonly rebroadcastDeltaMs: number
}

/**
 * Defaults for a LAN or WAN of institutions: a proposer has 3 s to get its block out, votes 1 s
 * each; every failed round adds half of that, so the schedule outgrows any fixed network delay.
 */
export const DEFAULT_TIMEOUTS: TimeoutConfig = {
  proposeMs: 3000,
  proposeDeltaMs: 500,
  prevoteMs: 1000,
  prevoteDeltaMs: 500,
  precommitMs: 1000,
  precommitDeltaMs: 500,
  rebroadcastMs: 5000,
  rebroadcastDeltaMs: 1000,
}

/** This node's signing identity. */
export interface ConsensusSigner {
  readonly address: Address
  readonly secretKey: Uint8Array
}

/** Configuration of a consensus state machine. */
export interface ConsensusConfig {
  readonly networkId: number
  /** The validator key, or absent for an observer that follows without voting. */
  readonly signer?: ConsensusSigner
  readonly crypto: CryptoProvider
  /**
   * The application's block hash function (pure); a proposal's bytes must hash to its `blockHash`.
   * It may throw on bytes that are not a block: the message that carried them is refused
   * (`MALFORMED_BLOCK`).
   */
  readonly hashBlock: (block: Uint8Array) => Uint8Array
  readonly timeouts?: Partial<TimeoutConfig>
  /**
   * Deliberate protocol breakage, only so tests can show the simulator's checkers catch it.
   * `ignoreLocks`: prevote for any valid proposal. `halfQuorum`: half the power counts as a quorum.
   */
  readonly unsafeTestOnly?: { readonly ignoreLocks?: boolean; readonly halfQuorum?: boolean }
}

/** What the driver feeds the machine. */
export type ConsensusInput =
  /** Begin `height` with the validator set in force there (from execution). Also the first input after a restart. */
  | { readonly type: 'start-height'; readonly height: number; readonly validators: ValidatorSet }
  /** A message from the network; `from` names the peer for `peer-behind` and penalties. */
  | { readonly type: 'message'; readonly message: ConsensusMessage; readonly from?: string }
  /** A timer asked for by `schedule-timeout` fired. */
  | { readonly type: 'timeout'; readonly timeout: Timeout }
  /** The application's block for this node to propose, answering `request-block`. */
  | { readonly type: 'block'; readonly height: number; readonly round: number; readonly block: Uint8Array }
  /** The application's verdict on a proposed block, answering `validate-block`. */
  | { readonly type: 'block-validity'; readonly height: number; readonly blockHash: Uint8Array; readonly valid: boolean }

/** Proof that one validator signed two conflicting messages at one height, round and type. */
export type Evidence =
  | { readonly kind: 'conflicting-votes'; readonly first: SignedVote; readonly second: SignedVote }
  | {
      readonly kind: 'conflicting-proposals'
      readonly first: { readonly proposal: Proposal; readonly signature: Uint8Array }
      readonly second: { readonly proposal: Proposal; readonly signature: Uint8Array }
    }

/**
 * What the driver must make durable before it sends anything that follows it in the same output
 * list: this node's own votes and proposals, and its lock (with the block, so it can re-propose
 * it, and the polka, so it can show why).
 */
export type WalEntry =
  | { readonly kind: 'vote'; readonly vote: SignedVote }
  | { readonly kind: 'proposal'; readonly proposal: SignedProposal }
  | {
      readonly kind: 'lock'
      readonly height: number
      readonly round: number
      readonly blockHash: Uint8Array
      readonly block: Uint8Array
      /** The prevotes that justify the lock: after a restart they prove it to peers that missed them. */
      readonly polka: readonly SignedVote[]
    }

/** What the machine asks the driver to do, in order. */
export type ConsensusOutput =
  /** Persist durably (fsync) before carrying out any later output. */
  | { readonly type: 'wal-write'; readonly entry: WalEntry }
  | { readonly type: 'broadcast'; readonly message: ConsensusMessage }
  | { readonly type: 'schedule-timeout'; readonly timeout: Timeout; readonly delayMs: number }
  /** This node leads `round`: answer with a `block` input (following the production policy). */
  | { readonly type: 'request-block'; readonly height: number; readonly round: number }
  /** Answer with a `block-validity` input. The block's hash has already been checked. */
  | {
      readonly type: 'validate-block'
      readonly height: number
      readonly round: number
      readonly blockHash: Uint8Array
      readonly block: Uint8Array
    }
  /** `block` is final at `height`; `commit` is its certificate for the next block's `lastCommit`. Then send `start-height`. */
  | {
      readonly type: 'commit'
      readonly height: number
      readonly round: number
      readonly blockHash: Uint8Array
      readonly block: Uint8Array
      readonly commit: Commit
    }
  | { readonly type: 'evidence'; readonly evidence: Evidence }
  /** A peer sent a vote of an earlier height: send it the decisions from `height` on (rate-limit this). */
  | { readonly type: 'peer-behind'; readonly from: string | undefined; readonly validator: Address; readonly height: number }
  /** This node stalled while peers sent messages of later heights: fetch decisions from `height` on from `from`. */
  | { readonly type: 'sync-needed'; readonly from: string | undefined; readonly height: number }
  /** A message was refused; `error.penalize` says whether the sender deserves a penalty. */
  | { readonly type: 'rejected'; readonly from: string | undefined; readonly error: ConsensusError }

/** Codes of {@link ConsensusError}. */
export type ConsensusErrorCode =
  | 'WRONG_NETWORK'
  | 'UNKNOWN_VALIDATOR'
  | 'BAD_SIGNATURE'
  | 'WRONG_PROPOSER'
  | 'BLOCK_HASH_MISMATCH'
  | 'MALFORMED_BLOCK'
  | 'BAD_VALID_ROUND'
  | 'BAD_COMMIT'
  | 'BAD_EVIDENCE'

/** Why the machine refused a message or an input. */
export class ConsensusError extends LoopchainError<ConsensusErrorCode> {}
