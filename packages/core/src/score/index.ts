/**
 * SCOREs: the contract engine (`engine/`), the ABI read from a contract's manifest, per-call write
 * buffering with rollback, calls through the ABI, the developer SDK's types and example contracts.
 * See docs/score-engine.md and docs/writing-a-score.md.
 */
export * from './abi.js'
export * from './call.js'
export * from './engine/index.js'
export { ESCROW_SOURCE } from './examples/escrow.js'
export { TOKEN_SOURCE } from './examples/token.js'
export * from './overlay.js'
export type * from './sdk/types.js'
