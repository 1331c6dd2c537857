/**
 * The mempool's limits from the config file, through a real `loopchain start` process: a full pool
 * makes room for a newcomer by evicting the last transaction of the sender holding the most, and
 * says so to a client asking about it and on /metrics.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  encode,
  type KeyPair,
  keyPairFromSecret,
  parseGenesis,
  STEP_COSTS,
  sha256,
  signTransaction,
  type Transaction,
  TxKind,
  to0x,
  toHex,
  transactionCodec,
  transactionHash,
  utf8,
} from '@loopchain/core'
import { nativeCrypto, reservePortBlock } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readKey } from '../src/tx.js'
import { type OneNode, startOneNode } from './fixtures/one-node.js'

const basePort = reservePortBlock()
let one: OneNode

beforeAll(async () => {
  one = await startOneNode('cli-mempool', basePort, {
    config: (c) => ({ ...c, mempool: { maxTransactions: 3 }, storage: { cacheSize: 8 << 20, writeBufferSize: 1 << 20 } }),
  })
})
afterAll(() => one?.stop())

async function call(method: string, params: object): Promise<{ result?: any; error?: { code: number; message: string; data?: any } }> {
  const res = await fetch(one.url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return (await res.json()) as never
}

describe('loopchain start with a mempool limit', () => {
  it('opens its database with the storage sizes of its config, and says so when ready', async () => {
    const ready = async () => {
      for (let i = 0; i < 100; i++) {
        const line = readFileSync(join(one.dir, 'node.log'), 'utf8')
          .split('\n')
          .find((l) => l.includes('"msg":"node ready"'))
        if (line) return JSON.parse(line)
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error('no "node ready" line in the log')
    }
    expect((await ready()).storage).toEqual({ cacheSize: 8 << 20, writeBufferSize: 1 << 20 })
  })

  it('a full pool evicts the flooding sender’s last transaction for a newcomer; the client asking gets EVICTED', async () => {
    const genesis = parseGenesis(JSON.parse(readFileSync(join(one.dir, 'genesis.json'), 'utf8')))
    const faucet = readKey(join(one.dir, 'faucet.json'))
    const now = Date.now() * 1000
    const transfer = (from: KeyPair, nonce: number, to = faucet.address, value = 1n): Transaction =>
      signTransaction(
        {
          version: 1,
          networkId: genesis.networkId,
          from: from.address,
          to,
          value,
          stepLimit: STEP_COSTS.base,
          timestamp: now + nonce,
          nonce,
          kind: TxKind.Transfer,
          data: new Uint8Array(0),
        },
        from,
        nativeCrypto,
      )
    const hex = (t: Transaction) => to0x(encode(transactionCodec, t))
    // A second account with funds (one without may have one transaction waiting, and never evicts).
    const newcomer = keyPairFromSecret(sha256(utf8('cli-mempool newcomer')), nativeCrypto)
    const funded = await call('lc_sendTransactionAndWait', { tx: hex(transfer(faucet, 0, newcomer.address, 10n ** 18n)) })
    expect(funded.result, JSON.stringify(funded.error)).toMatchObject({ status: 'success' })
    // The faucet fills the pool behind a nonce gap (its next nonce is 1), so no block takes them;
    // its client waits for the last one.
    const flood = []
    for (const nonce of [2, 3]) {
      const r = await call('lc_sendTransaction', { tx: hex(transfer(faucet, nonce)) })
      expect(r.error, JSON.stringify(r.error)).toBeUndefined()
      flood.push(r.result as string)
    }
    const last = transfer(faucet, 4)
    const waiting = call('lc_sendTransactionAndWait', { tx: hex(last), timeoutMs: 60_000 })
    while ((await one.rpc('lc_getNetworkInfo')).mempool < 3) await new Promise((r) => setTimeout(r, 50))
    flood.push(`0x${toHex(transactionHash(last.body))}`)
    // A fourth from the faucet is refused: it holds all three places itself.
    expect((await call('lc_sendTransaction', { tx: hex(transfer(faucet, 5)) })).error?.data?.code).toBe('POOL_FULL')
    // An account without funds evicts nothing: refused, the pool as it was.
    const unfunded = keyPairFromSecret(sha256(utf8('cli-mempool unfunded')), nativeCrypto)
    expect((await call('lc_sendTransaction', { tx: hex(transfer(unfunded, 0)) })).error?.data?.code).toBe('POOL_FULL')
    expect((await one.rpc('lc_getNetworkInfo')).mempool).toBe(3)
    const sent = await call('lc_sendTransactionAndWait', { tx: hex(transfer(newcomer, 0)) })
    // The newcomer's transaction took the faucet's last place and went into a block.
    expect(sent.result, JSON.stringify(sent.error)).toMatchObject({ status: 'success', height: expect.any(Number) })
    // The client waiting for the evicted one hears it at once, not at its timeout.
    expect((await waiting).error).toMatchObject({ code: -32001, data: { code: 'EVICTED', hash: flood[2] } })
    const evicted = await call('lc_getTransactionResult', { hash: flood[2] })
    expect(evicted.error).toMatchObject({ code: -32001, data: { code: 'EVICTED', hash: flood[2] } })
    expect(evicted.error?.message).toMatch(/evicted it to make room for another sender's .*send it again/)
    // The two before it wait in the pool still.
    expect((await call('lc_getTransactionResult', { hash: flood[1] })).error?.message).toBe('receipt (pending in the mempool) not found')
    const metrics = await (await fetch(new URL('/metrics', one.url))).text()
    expect(metrics).toMatch(/^loopchain_mempool_evicted_total 1$/m)
    expect(metrics).toMatch(/^loopchain_mempool_transactions 2$/m)
  })
})
