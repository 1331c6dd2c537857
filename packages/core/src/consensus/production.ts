/**
 * Block production policy: a block as soon as transactions wait, never sooner than a minimum
 * interval after the last commit, and empty blocks only if configured (then at most one per
 * interval). The driver applies it to pace heights: after a commit it sends `start-height` for the
 * next height when {@link blockProductionDue} says so — or at once when a peer's proposal or vote
 * for that height arrives (another validator's mempool was ready first) — so an idle chain does
 * not spin through empty rounds. When this node leads, the driver answers `request-block` with
 * the mempool's block.
 */

/** When to produce blocks. */
export interface BlockProductionPolicy {
  /** Least time between two commits, in milliseconds. */
  readonly minIntervalMs: number
  /** Whether to produce blocks with no transactions at all. */
  readonly emptyBlocks: boolean
  /** With `emptyBlocks`, least time between empty blocks (defaults to `minIntervalMs`). */
  readonly emptyBlockIntervalMs?: number
}

/** The facts the policy looks at. */
export interface BlockProductionState {
  /** Transactions waiting in the mempool. */
  readonly pendingTxs: number
  /** Time of the last commit (the driver's clock), in milliseconds. */
  readonly lastCommitTimeMs: number
  /** Now, on the same clock. */
  readonly nowMs: number
}

/** The policy's answer: produce now, or look again at `recheckAtMs` (or when a transaction arrives). */
export type BlockProductionDecision = { readonly due: true } | { readonly due: false; readonly recheckAtMs?: number }

/** Whether a block is due now. */
export function blockProductionDue(policy: BlockProductionPolicy, state: BlockProductionState): BlockProductionDecision {
  const earliest = state.lastCommitTimeMs + policy.minIntervalMs
  if (state.nowMs < earliest) return { due: false, recheckAtMs: earliest }
  if (state.pendingTxs > 0) return { due: true }
  if (!policy.emptyBlocks) return { due: false }
  const emptyAt = state.lastCommitTimeMs + Math.max(policy.minIntervalMs, policy.emptyBlockIntervalMs ?? 0)
  return state.nowMs >= emptyAt ? { due: true } : { due: false, recheckAtMs: emptyAt }
}
