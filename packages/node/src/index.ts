/**
 * @packageDocumentation
 *
 * The loopchain full node for Node.js. So far: the native crypto provider; LevelDB stores,
 * networking, the mempool, the consensus driver and JSON-RPC arrive with the full node.
 *
 * @example
 * ```ts
 * import { nativeCrypto } from '@loopchain/node'
 * import { checkTransaction } from '@loopchain/core'
 * checkTransaction(tx, ctx, nativeCrypto)
 * ```
 */
export { nativeCrypto } from './native-crypto.js'
export { LevelKVStore, type LevelStoreOptions } from './storage/level-store.js'
export * from './p2p/index.js'
