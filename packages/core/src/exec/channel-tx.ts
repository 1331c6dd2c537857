/** Signed calls to the channel SCORE, with the step limit they need: what wallets, watchtowers and tools send. */

import { encode } from '../codec/codec.js'
import type { Value } from '../codec/value.js'
import type { KeyPair } from '../crypto/keys.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { callDataCodec, STEP_COSTS, signTransaction, type Transaction, TX_VERSION, TxKind } from '../ledger/transaction.js'
import { CHANNEL_STEPS } from './channels.js'
import { CHANNEL_ADDRESS } from './layout.js'

/** What {@link channelCallTransaction} signs. */
export interface ChannelCallTx {
  readonly key: KeyPair
  readonly networkId: number
  readonly nonce: number
  readonly method: string
  readonly params: Value
  /** A deposit (`open`, `join`); 0 otherwise. */
  readonly value?: bigint
  /** Microseconds since the Unix epoch (the caller's clock: the core reads none). */
  readonly timestamp: number
}

/** A signed call to the channel SCORE whose step limit covers the base, its payload and the SCORE's fixed cost. */
export function channelCallTransaction(c: ChannelCallTx, crypto: CryptoProvider = nobleCrypto): Transaction {
  const data = encode(callDataCodec, { method: c.method, params: c.params })
  return signTransaction(
    {
      version: TX_VERSION,
      networkId: c.networkId,
      from: c.key.address,
      to: CHANNEL_ADDRESS,
      value: c.value ?? 0n,
      stepLimit: STEP_COSTS.base + STEP_COSTS.dataByte * data.length + CHANNEL_STEPS,
      timestamp: c.timestamp,
      nonce: c.nonce,
      kind: TxKind.Call,
      data,
    },
    c.key,
    crypto,
  )
}
