/**
 * @packageDocumentation
 *
 * The isomorphic core of loopchain: canonical encoding, hashing and signatures, ledger types
 * (transactions, blocks, receipts, validator sets, genesis), Merkle lists and the authenticated
 * state tree. It has no I/O, reads no clock and makes no randomness, so a full node on Node.js and
 * a light client in a browser compute the same bytes.
 *
 * @example
 * ```ts
 * import { keyPairFromSecret, signTransaction, transactionHash } from '@loopchain/core'
 * const alice = keyPairFromSecret(crypto.getRandomValues(new Uint8Array(32)))
 * ```
 */

export * from './bounded.js'
export * from './cert/index.js'
export * from './channel/index.js'
export * from './codec/codec.js'
export * from './codec/hex.js'
export * from './codec/value.js'
export * from './consensus/index.js'
export * from './crypto/address.js'
export * from './crypto/hash.js'
export * from './crypto/keys.js'
export * from './crypto/provider.js'
export * from './errors.js'
export * from './exec/index.js'
export * from './ledger/block.js'
export * from './ledger/genesis.js'
export * from './ledger/receipt.js'
export * from './ledger/transaction.js'
export * from './ledger/validators.js'
export * from './ledger/vote.js'
export * from './light/index.js'
export * from './memo.js'
export * from './merkle/merkle-list.js'
export * from './score/index.js'
export * from './state/index.js'
export * from './wire/index.js'
