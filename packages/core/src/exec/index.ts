/**
 * Block execution over the authenticated state: accounts, transfers, messages, SCORE deploys and
 * calls, receipts and the block result.
 */
export { BlockState, MAX_STATE_LOADS_PER_TX, StateMiss } from './block-state.js'
export {
  applyGenesis,
  type BlockExecution,
  CONTRACT_MEMORY_LIMIT,
  type ExecutionEnv,
  executeBlock,
  getAccount,
  queryScore,
  STEP_COSTS,
  stateResult,
} from './executor.js'
export * from './layout.js'
