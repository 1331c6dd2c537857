/**
 * Errors of the state tree and its proofs. A proof comes from a peer (a full node answering a
 * light client), so a proof that does not verify is penalisable; tree errors are local faults
 * (a store missing a node, a caller passing an oversized key) and never blame a peer.
 */
import { LoopchainError } from '../errors.js'

/** Codes of {@link StateProofError}. */
export type StateProofErrorCode =
  /** The proof bytes are not a canonical encoding; `cause` holds the {@link DecodeError}. */
  | 'MALFORMED'
  /** The proof is well formed but does not hash up to the trusted root. */
  | 'ROOT_MISMATCH'
  /** The proof's shape contradicts the claim (e.g. a foreign leaf offered for a present value). */
  | 'INVALID_PROOF'

/** A state proof that does not prove the claimed key/value (or absence) against a root. */
export class StateProofError extends LoopchainError<StateProofErrorCode> {}

/** Codes of {@link StateTreeError}. */
export type StateTreeErrorCode =
  /** A node the tree needs is not in the store: the root was never committed there, or was pruned. */
  | 'MISSING_NODE'
  /** A stored node record does not decode. */
  | 'CORRUPT_NODE'
  /** A key is empty or longer than {@link MAX_STATE_KEY_LENGTH}. */
  | 'INVALID_KEY'
  /** A value is longer than {@link MAX_STATE_VALUE_LENGTH}. */
  | 'INVALID_VALUE'
  /** A checkpoint call without a matching open checkpoint, or a commit while one is open. */
  | 'CHECKPOINT'
  /** An operation that needs every commit in the store ran before the last one was marked persisted. */
  | 'UNPERSISTED'
  /** A commit was started while another one was still running. */
  | 'BUSY'
  /** A commit's version is not a safe integer above the last committed one. */
  | 'VERSION'

/** A local failure of the state tree; never the fault of a peer. */
export class StateTreeError extends LoopchainError<StateTreeErrorCode> {
  constructor(code: StateTreeErrorCode, message: string, opts: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(code, message, { ...opts, penalize: false })
  }
}
