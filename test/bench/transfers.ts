/**
 * The load the node benchmarks send: transfers of 1 from many funded senders to one recipient,
 * signed ahead with the native provider. Transaction j comes from sender j mod n with nonce
 * ⌊j / n⌋, so sending them in order keeps every sender's nonces in order.
 */
import {
  type Address,
  type KeyPair,
  keyPairFromSecret,
  STEP_COSTS,
  sha256,
  signTransaction,
  type Transaction,
  TxKind,
  utf8,
} from '@loopchain/core'
import { nativeCrypto } from '@loopchain/node'

export const BENCH_RECIPIENT = 'hx00000000000000000000000000000000000b3c01' as Address

/** `count` sender keys derived from `label`. */
export function benchSenders(label: string, count: number): KeyPair[] {
  return Array.from({ length: count }, (_, i) => keyPairFromSecret(sha256(utf8(`${label}-${i}`)), nativeCrypto))
}

/** The j-th transfer of the load (see the file comment), timestamped `now + j` microseconds. */
export function benchTransfer(senders: readonly KeyPair[], networkId: number, j: number, now: number): Transaction {
  const from = senders[j % senders.length] as KeyPair
  return signTransaction(
    {
      version: 1,
      networkId,
      from: from.address,
      to: BENCH_RECIPIENT,
      value: 1n,
      // Exactly what a transfer uses.
      stepLimit: STEP_COSTS.base,
      timestamp: now + j,
      nonce: Math.floor(j / senders.length),
      kind: TxKind.Transfer,
      data: new Uint8Array(0),
    },
    from,
    nativeCrypto,
  )
}
