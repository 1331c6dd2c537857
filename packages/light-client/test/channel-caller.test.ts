/**
 * The channel caller's nonces, against a chain twin whose node takes a while to accept: calls made
 * at once get consecutive nonces, and a call sent again `fromProven` takes the proven one.
 */
import {
  accountKey,
  accountStateCodec,
  bytesEqual,
  encode,
  keyPairFromSecret,
  sha256,
  type Transaction,
  transactionHash,
  utf8,
} from '@loopchain/core'
import { describe, expect, it } from 'vitest'
import { type ChainAccess, ChannelCaller } from '../src/index.js'

const key = keyPairFromSecret(sha256(utf8('caller test')))

/** A chain whose proven account of `key` has nonce `proven`; its node accepts after 20 ms. */
function chain(proven: number): ChainAccess & { nonces: number[] } {
  const nonces: number[] = []
  return {
    nonces,
    height: 10,
    async getStateProof(k) {
      const value = bytesEqual(k, accountKey(key.address)) ? encode(accountStateCodec, { balance: 1_000_000n, nonce: proven }) : undefined
      return { height: 10, key: k, value } as never
    },
    async submitTransaction(tx: Transaction) {
      await new Promise((r) => setTimeout(r, 20))
      nonces.push(tx.body.nonce)
      return transactionHash(tx.body)
    },
  }
}

describe('channel caller', () => {
  it('calls made at once take consecutive nonces; one sent again from the proven nonce takes it without moving the others', async () => {
    const c = chain(4)
    const caller = new ChannelCaller(c, key, 1, { stepPrice: 0n })
    const id = new Uint8Array(32)
    await Promise.all([caller.call('withdraw', { id }), caller.call('withdraw', { id }), caller.call('withdraw', { id })])
    expect(c.nonces).toEqual([4, 5, 6])
    // Nonce 4 was lost on the way: sent again, the call fills the gap; the next call goes on from 7.
    await caller.call('withdraw', { id }, 0n, true)
    await caller.call('withdraw', { id })
    expect(c.nonces).toEqual([4, 5, 6, 4, 7])
  })
})
