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
import { type ChainAccess, ChannelCaller, LightClientError } from '../src/index.js'

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
  it('a nonce the node has seen (pooled from another page of the account, or used since the proof) is skipped at once', async () => {
    // The proof says 4; 4 and 5 were committed since, and the pool holds 6 to 8 from another page
    // of this account. The node refuses them as a light client hears it (REFUSED with the pool's code).
    const accepted: number[] = []
    const c: ChainAccess = {
      ...chain(4),
      async submitTransaction(tx: Transaction) {
        const n = tx.body.nonce
        if (n <= 5)
          throw new LightClientError('REFUSED', `nonce ${n} was already used; the sender's next nonce is 6`, {
            penalize: false,
            details: { code: 'NONCE_TOO_LOW' },
          })
        if (n <= 8)
          throw new LightClientError('REFUSED', `another transaction with nonce ${n} is already pooled`, {
            penalize: false,
            details: { code: 'NONCE_POOLED' },
          })
        accepted.push(n)
        return transactionHash(tx.body)
      },
    }
    const caller = new ChannelCaller(c, key, 1, { stepPrice: 0n })
    const id = new Uint8Array(32)
    // Before, each refusal went back to the proven 4 (after 500 ms), and the call failed after ten.
    await caller.call('withdraw', { id })
    await caller.call('withdraw', { id })
    expect(accepted).toEqual([9, 10])
  })

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
