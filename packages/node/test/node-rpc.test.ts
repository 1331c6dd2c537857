import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  accountKey,
  decode,
  encode,
  fromHex,
  type Genesis,
  stateProofCodec,
  to0x,
  transactionCodec,
  verifyStateProof,
} from '@loopchain/core'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import WebSocket from 'ws'
import {
  FullNode,
  type Json,
  MAX_SUBSCRIPTIONS_PER_CLIENT,
  MAX_SUBSCRIPTIONS_PER_CONNECTION,
  nodeRpcMethods,
  RpcDispatcher,
  RpcErrorCode,
  type RpcServer,
  startRpcServer,
} from '../src/index.js'
import { testGenesis, testKey, testTransfer } from './fixtures/test-chain.js'

const key = testKey
const v = key('rpc validator')
const alice = key('rpc alice')
const bob = key('rpc bob')
let node: FullNode
let server: RpcServer
let dir: string

const g: Genesis = testGenesis({ chainId: 'rpc-test', networkId: 12, validators: [v], funded: alice, params: { blockIntervalMs: 10 } })

const tx = (nonce: number, value = 3n) => to0x(encode(transactionCodec, testTransfer(12, alice, bob.address, nonce, value)))

async function rpc(method: string, params: Json = {}): Promise<{ result?: any; error?: { code: number; message: string; data?: any } }> {
  const res = await fetch(server.url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return (await res.json()) as never
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'loopchain-rpc-'))
  node = await FullNode.open({ dataDir: dir, genesis: g, validatorSecret: v.secretKey })
  node.start()
  server = await startRpcServer({ dispatcher: new RpcDispatcher(nodeRpcMethods(node), { title: 'loopchain', version: '0.1.0' }) })
})
afterAll(async () => {
  await server.close()
  await node.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('node JSON-RPC against a running validator', () => {
  it('sends a transaction, waits for its receipt, and finds it by hash and in its block', async () => {
    const r = await rpc('lc_sendTransactionAndWait', { tx: tx(0) })
    expect(r.result).toMatchObject({ status: 'success', failure: null, height: 1, index: 0 })
    const hash = r.result.txHash as string
    expect((await rpc('lc_getTransactionResult', { hash })).result.status).toBe('success')
    expect((await rpc('lc_getTransactionByHash', { hash })).result).toMatchObject({ hash, from: alice.address, value: '3', height: 1 })
    const block = (await rpc('lc_getBlockByHeight', { height: 1 })).result
    expect(block.transactions[0].hash).toBe(hash)
    expect((await rpc('lc_getBlockByHash', { hash: block.hash })).result.height).toBe(1)
    expect((await rpc('lc_getLastBlock')).result.height).toBeGreaterThanOrEqual(1)
    expect((await rpc('lc_getAccount', { address: bob.address })).result).toEqual({ balance: '3', nonce: 0 })
  })

  it('refuses bad transactions with the reason, and reports what is missing', async () => {
    const replay = await rpc('lc_sendTransaction', { tx: tx(0) })
    expect(replay.error?.code).toBe(RpcErrorCode.TransactionRejected)
    expect(replay.error?.data?.code).toBe('NONCE_TOO_LOW')
    // With the nonce to use instead.
    expect(replay.error?.data?.next).toBe(1)
    const bytes = fromHex(tx(1))
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1
    expect((await rpc('lc_sendTransaction', { tx: to0x(bytes) })).error?.data?.code).toBe('BAD_SIGNATURE')
    expect((await rpc('lc_sendTransaction', { tx: '0x1234' })).error?.data?.code).toBe('MALFORMED')
    expect((await rpc('lc_sendTransaction', { tx: 'zz' })).error?.code).toBe(RpcErrorCode.InvalidParams)
    expect((await rpc('lc_getBlockByHeight', { height: 999 })).error?.code).toBe(RpcErrorCode.NotFound)
    expect((await rpc('lc_getTransactionResult', { hash: `0x${'00'.repeat(32)}` })).error?.code).toBe(RpcErrorCode.NotFound)
    // Nothing above changed the chain: bob still has what the first test sent.
    expect((await rpc('lc_getAccount', { address: bob.address })).result.balance).toBe('3')
  })

  it('proves an account against the state root', async () => {
    const key = to0x(accountKey(bob.address))
    const p = (await rpc('lc_getStateProof', { key })).result
    expect(p.value).not.toBeNull()
    verifyStateProof(fromHex(p.stateRoot), accountKey(bob.address), fromHex(p.value), decode(stateProofCodec, fromHex(p.proof)))
    expect(() =>
      verifyStateProof(fromHex(p.stateRoot), accountKey(alice.address), fromHex(p.value), decode(stateProofCodec, fromHex(p.proof))),
    ).toThrow()
    // At the genesis (height 0), once the chain has moved on: bob had nothing then.
    const info = (await rpc('lc_getNetworkInfo', {})).result
    expect(info.height).toBeGreaterThan(0)
    // A node without a network has nothing to sync from: in step.
    expect(info.sync).toEqual({ height: info.height, target: info.height, syncing: false, blocksPerSecond: 0, secondsLeft: null })
    const g = (await rpc('lc_getStateProof', { key, height: 0 })).result
    expect(g.height).toBe(0)
    expect(g.value).toBeNull()
    expect(g.stateRoot).not.toBe(p.stateRoot)
    verifyStateProof(fromHex(g.stateRoot), accountKey(bob.address), undefined, decode(stateProofCodec, fromHex(g.proof)))
  })

  it('pushes new block headers to a WebSocket subscriber', async () => {
    const ws = new WebSocket(server.wsUrl)
    await new Promise((r) => ws.once('open', r))
    const heads: number[] = []
    const replies = new Map<number, any>()
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString())
      if (m.method === 'lc_subscription') heads.push(m.params.result.height)
      else replies.set(m.id, m)
    })
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'lc_subscribe', params: { topic: 'blocks' } }))
    // A filter is for event logs: on 'blocks' it would be ignored, so it is refused.
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'lc_subscribe', params: { topic: 'blocks', filter: { event: 'Transfer' } } }))
    await new Promise((r) => setTimeout(r, 100))
    await rpc('lc_sendTransactionAndWait', { tx: tx(1) })
    await new Promise((r) => setTimeout(r, 100))
    ws.close()
    expect(heads.length).toBeGreaterThanOrEqual(1)
    expect(heads.at(-1)).toBe(node.height)
    expect(typeof replies.get(1)?.result).toBe('string')
    expect(replies.get(2)?.error).toMatchObject({ code: RpcErrorCode.InvalidParams, message: expect.stringContaining("'logs' topic only") })
  })

  it('caps the subscriptions a connection may hold', async () => {
    const open = async () => {
      const ws = new WebSocket(server.wsUrl)
      await new Promise((r) => ws.once('open', r))
      return ws
    }
    const subscribeAll = async (ws: WebSocket, n: number) => {
      const answers: { result?: string; error?: { code: number; message: string } }[] = []
      const all = new Promise<void>((resolve) =>
        ws.on('message', (d) => {
          const m = JSON.parse(d.toString())
          if (m.id !== undefined && answers.push(m) === n) resolve()
        }),
      )
      for (let i = 0; i < n; i++) ws.send(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'lc_subscribe', params: { topic: 'blocks' } }))
      await all
      return answers
    }
    const first = await open()
    const answers = await subscribeAll(first, MAX_SUBSCRIPTIONS_PER_CONNECTION + 1)
    expect(answers.filter((a) => typeof a.result === 'string')).toHaveLength(MAX_SUBSCRIPTIONS_PER_CONNECTION)
    const refused = answers.filter((a) => a.error)
    expect(refused).toHaveLength(1)
    expect(refused[0]?.error?.code).toBe(RpcErrorCode.TooLarge)
    expect(refused[0]?.error?.message).toContain(`at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions`)
    // The cap is per connection: another one gets its own.
    const second = await open()
    const [theirs] = await subscribeAll(second, 1)
    expect(theirs?.result).toMatch(/^0x/)
    // lc_unsubscribe frees a place; it ends only this connection's own subscriptions.
    const call = (ws: WebSocket, method: string, params: Json) =>
      new Promise<{ result?: unknown; error?: { code: number } }>((resolve) => {
        const id = `${method}-${Math.random()}`
        const on = (d: WebSocket.RawData) => {
          const m = JSON.parse(d.toString())
          if (m.id !== id) return
          ws.off('message', on)
          resolve(m)
        }
        ws.on('message', on)
        ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }))
      })
    expect((await call(first, 'lc_unsubscribe', { subscription: theirs?.result as string })).result).toBe(false)
    expect((await call(first, 'lc_unsubscribe', { subscription: '0x0000000000000000' })).result).toBe(false)
    const mine = answers.find((a) => typeof a.result === 'string')?.result as string
    expect((await call(first, 'lc_unsubscribe', { subscription: mine })).result).toBe(true)
    expect((await call(first, 'lc_unsubscribe', { subscription: mine })).result).toBe(false)
    expect((await call(first, 'lc_subscribe', { topic: 'blocks' })).result).toMatch(/^0x/)
    expect((await call(first, 'lc_subscribe', { topic: 'blocks' })).error?.code).toBe(RpcErrorCode.TooLarge)
    expect((await rpc('lc_unsubscribe', { subscription: mine })).error?.code).toBe(RpcErrorCode.MethodNotFound)
    first.close()
    second.close()
  })

  it('caps the subscriptions of one client address over all its connections, and frees them as connections close', async () => {
    // Its own server, whose rate limit lets one address subscribe this much at once.
    const wide = await startRpcServer({
      dispatcher: new RpcDispatcher(nodeRpcMethods(node), { title: 'loopchain', version: '0.1.0' }),
      rateLimit: { perSecond: 100_000, burst: 100_000 },
    })
    const sockets: WebSocket[] = []
    /** Opens a connection and subscribes `n` times in one batch; the batch's answers. */
    const subscribe = async (n: number) => {
      const ws = new WebSocket(wide.wsUrl)
      sockets.push(ws)
      await new Promise((r) => ws.once('open', r))
      const reply = new Promise<{ result?: string; error?: { message: string } }[]>((resolve) =>
        ws.once('message', (d) => resolve(JSON.parse(d.toString()))),
      )
      ws.send(
        JSON.stringify(Array.from({ length: n }, (_, id) => ({ jsonrpc: '2.0', id, method: 'lc_subscribe', params: { topic: 'blocks' } }))),
      )
      return reply
    }
    try {
      const full = MAX_SUBSCRIPTIONS_PER_CLIENT / MAX_SUBSCRIPTIONS_PER_CONNECTION
      for (let i = 0; i < full; i++) {
        const got = await subscribe(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        expect(got.filter((a) => typeof a.result === 'string')).toHaveLength(MAX_SUBSCRIPTIONS_PER_CONNECTION)
      }
      const over = await subscribe(1)
      expect(over[0]?.error?.message).toContain(`at most ${MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions`)
      // A closed connection gives its places back.
      const closing = sockets[0] as WebSocket
      await new Promise((r) => {
        closing.once('close', r)
        closing.close()
      })
      await vi.waitFor(async () => {
        const again = await subscribe(1)
        expect(again[0]?.result).toMatch(/^0x/)
      })
    } finally {
      for (const ws of sockets) ws.close()
      await wide.close()
    }
  })

  it('runs the calls of a batch together: two send-and-wait calls land in one block, answered in order', async () => {
    const { nonce } = (await rpc('lc_getAccount', { address: alice.address })).result as { nonce: number }
    const res = await fetch(server.url, {
      method: 'POST',
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 'a', method: 'lc_sendTransactionAndWait', params: { tx: tx(nonce) } },
        { jsonrpc: '2.0', id: 'b', method: 'lc_sendTransactionAndWait', params: { tx: tx(nonce + 1) } },
        { jsonrpc: '2.0', id: 'c', method: 'lc_getTransactionResult', params: { hash: `0x${'00'.repeat(32)}` } },
      ]),
    })
    const [a, b, c] = (await res.json()) as { id: string; result?: { height: number; status: string }; error?: unknown }[]
    expect([a?.id, b?.id, c?.id]).toEqual(['a', 'b', 'c'])
    expect(a?.result?.status).toBe('success')
    expect(b?.result?.status).toBe('success')
    // One after another, the second was sent only once the first had committed: the next block.
    expect(b?.result?.height).toBe(a?.result?.height)
    expect(c?.error).toBeDefined()
  })

  it('refuses an empty state key as invalid params', async () => {
    expect((await rpc('lc_getStateProof', { key: '0x' })).error?.code).toBe(RpcErrorCode.InvalidParams)
  })
})

describe('node JSON-RPC when the pool evicts', () => {
  it('a send-and-wait whose transaction a later one in the same batch evicts gets EVICTED at once, not at its timeout', async () => {
    const poolDir = mkdtempSync(join(tmpdir(), 'loopchain-rpc-evict-'))
    // Not started: nothing takes the pool into blocks. alice has funds; v is a member.
    const idle = await FullNode.open({ dataDir: poolDir, genesis: g, validatorSecret: v.secretKey, mempool: { maxTransactions: 4 } })
    const idleServer = await startRpcServer({
      dispatcher: new RpcDispatcher(nodeRpcMethods(idle), { title: 'loopchain', version: '0.1.0' }),
    })
    try {
      const call = (id: string, method: string, t: ReturnType<typeof testTransfer>, more: object = {}) => ({
        jsonrpc: '2.0',
        id,
        method,
        params: { tx: to0x(encode(transactionCodec, t)), ...more },
      })
      const post = async (body: unknown) =>
        (await fetch(idleServer.url, { method: 'POST', body: JSON.stringify(body) })).json() as Promise<any>
      // The member's first and alice's two: the node has both senders' nonces and rights at hand
      // now, so the batch below is checked in one go, without a wait between its transactions.
      for (const t of [
        testTransfer(12, v, bob.address, 0, 1n),
        testTransfer(12, alice, bob.address, 0, 1n),
        testTransfer(12, alice, bob.address, 1, 1n),
      ])
        expect((await post(call('1', 'lc_sendTransaction', t))).error).toBeUndefined()
      // One batch: alice's third (the pool's last place) and the member's second, which takes it.
      const [wait, member] = (await post([
        call('wait', 'lc_sendTransactionAndWait', testTransfer(12, alice, bob.address, 2, 1n), { timeoutMs: 20_000 }),
        call('member', 'lc_sendTransaction', testTransfer(12, v, bob.address, 1, 1n)),
      ])) as { result?: unknown; error?: { code: number; data?: { code?: string } } }[]
      expect(member?.error).toBeUndefined()
      // Not -32002 at the timeout: the waiter hears of the eviction, whenever it came.
      expect(wait?.error).toMatchObject({ code: RpcErrorCode.NotFound, data: { code: 'EVICTED' } })
      expect([idle.mempool.size, idle.mempool.pendingFrom(alice.address), idle.mempool.pendingFrom(v.address)]).toEqual([4, 2, 2])
    } finally {
      await idleServer.close()
      await idle.stop()
      rmSync(poolDir, { recursive: true, force: true })
    }
  })
})
