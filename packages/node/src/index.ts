/**
 * @packageDocumentation
 *
 * The loopchain full node for Node.js. So far: the native crypto provider, the LevelDB store and
 * the libp2p host layer; the mempool, the consensus driver, sync and JSON-RPC arrive with the
 * full node.
 *
 * @example
 * ```ts
 * import { nativeCrypto } from '@loopchain/node'
 * import { checkTransaction } from '@loopchain/core'
 * checkTransaction(tx, ctx, nativeCrypto)
 * ```
 */

export { ENDED_WARNING_MESSAGES, PEER_REACHED_MESSAGE, STALL_ENDED_MESSAGE } from './log-messages.js'
export { LIMITED_STEP_BOUND, Mempool, MempoolError, type MempoolErrorCode, type MempoolOptions } from './mempool.js'
export {
  installNativeSha256,
  nativeCrypto,
  nativeSha256Binary,
  opensslCrypto,
  type SodiumVerify,
  sodiumVerifier,
  verifiesWithSodium,
} from './native-crypto.js'
export * from './node/index.js'
export * from './p2p/index.js'
export * from './rpc/index.js'
export { type ChainHead, ChainStore, STORE_FORMAT, type TxLocation } from './storage/chain-store.js'
export {
  DEFAULT_WRITE_BUFFER_SIZE,
  LevelKVStore,
  type LevelStoreOptions,
  parseLevelDbStats,
  StoreError,
  type StoreSettings,
  type StoreWriteStats,
} from './storage/level-store.js'
export { HEIGHT_DB_DIR, HEIGHT_KEYED, isHeightKeyed, SplitKVStore } from './storage/split-store.js'
export { PORT_BLOCK, PORT_RANGE_BLOCKS, PORT_RANGE_FIRST, releasePortBlock, reservePortBlock } from './testing/ports.js'
