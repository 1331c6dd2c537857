/** The full node runtime: consensus driver, proposals, validation, execution and storage. */
export {
  type CommittedBlock,
  type ConsensusProgress,
  FullNode,
  type FullNodeOptions,
  MAX_PROPOSED_BLOCK_BYTES,
  NodeError,
  type NodeNetwork,
  type NodeStore,
  type RememberingCrypto,
  rememberingCrypto,
  roundsWithQuorum,
  STALL_REPEAT_MS,
  stallWarningMs,
} from './full-node.js'
export { blockToJson, headerToJson, paramsFromJson, receiptToJson, transactionToJson, valueFromJson, valueToJson } from './json.js'
export { checkHeaderGossip, fullNodeLightBackend, LIGHT_NON_MEMBERS, serveLightClients } from './light-server.js'
export { connectNode, memberPeerIds, type NodeNetworkOptions } from './p2p-network.js'
export {
  DEFAULT_QUERY_STEP_LIMIT,
  DEFAULT_QUERY_STEPS_PER_SECOND,
  MAX_QUERY_STATE_LOADS,
  MAX_QUEUED_QUERIES,
  MAX_QUEUED_QUERIES_PER_CLIENT,
  MAX_SUBSCRIPTIONS,
  MAX_SUBSCRIPTIONS_PER_CLIENT,
  MAX_SUBSCRIPTIONS_PER_CONNECTION,
  type NodeRpcOptions,
  nodeRpcMethods,
  QUERY_BASE_STEPS,
  QUERY_CLIENT_SHARE,
  QueryBudget,
} from './rpc-methods.js'
export { ConsensusWal, walEntryCodec } from './wal.js'
export { MAX_WATCHED_CHANNELS, WatchError, type WatchErrorCode, Watchtower } from './watchtower.js'
