/** The full node runtime: consensus driver, proposals, validation, execution and storage. */
export { type CommittedBlock, FullNode, type FullNodeOptions, NodeError, type NodeNetwork } from './full-node.js'
export { ConsensusWal, walEntryCodec } from './wal.js'
