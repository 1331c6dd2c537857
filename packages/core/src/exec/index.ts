/**
 * Block execution over the authenticated state: accounts, transfers, messages, SCORE deploys,
 * updates and calls, the SCORE registry, the native system SCOREs (governance, certificate registry,
 * payment channels), receipts and the block result.
 */
export { BlockState, MAX_STATE_LOADS_PER_TX, StateCache, StateMiss } from './block-state.js'
export {
  CERTIFICATE_STATUS_NAMES,
  CERTIFICATE_STEPS,
  type CertificateCall,
  type CertificateCallResult,
  certificateCall,
  certificateRecordToValue,
  readCertificateRecord,
} from './certificates.js'
export { type ChannelCallTx, channelCallTransaction } from './channel-tx.js'
export {
  CHANNEL_OUTCOME_NAMES,
  CHANNEL_STATUS_NAMES,
  CHANNEL_STEPS,
  type ChannelCall,
  type ChannelCallResult,
  channelCall,
  channelRecordToValue,
  readChannelRecord,
} from './channels.js'
export {
  applyGenesis,
  type BlockExecution,
  CONTRACT_MEMORY_LIMIT,
  type ExecutionEnv,
  executeBlock,
  getAccount,
  NEW_SCORE_ADDRESS,
  peekAccount,
  type QueryResult,
  queryScore,
  stateResult,
} from './executor.js'
export {
  admitsNode,
  approvalThreshold,
  GOVERNANCE_ABI,
  GOVERNANCE_STEPS,
  type GovernanceCall,
  type GovernanceResult,
  governanceActionParams,
  governanceCall,
  MAX_LISTED_PROPOSALS,
  readMember,
  readValidators,
} from './governance.js'
export * from './layout.js'
export { getScoreAbi, getScoreApi, getScoreInfo, type ScoreInfo, scoreInfoToValue, UPDATE_STEP_LIMIT } from './registry.js'
