/**
 * A SCORE that reads many stored items, on a validator over LevelDB reopened cold (nothing of the
 * state in memory): a read-only call and a transaction each run once, their reads answered by
 * LevelDB's synchronous read. Before, every read the caches missed loaded its key and ran the
 * whole call again, so reading n items cost about n²/2 reads' worth of work: a read-only call over
 * 2,000 items took about a minute.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Address,
  callDataCodec,
  contractAddress,
  deployDataCodec,
  encode,
  initEngine,
  NEW_SCORE_ADDRESS,
  type TransactionBody,
  TxKind,
  utf8,
} from '@loopchain/core'
import { afterAll, beforeAll, expect, it, vi } from 'vitest'
import {
  FullNode,
  type Json,
  LevelKVStore,
  MAX_QUEUED_QUERIES_PER_CLIENT,
  type NodeRpcOptions,
  nodeRpcMethods,
  QUERY_CLIENT_SHARE,
  QueryBudget,
  RpcDispatcher,
  RpcErrorCode,
  type RpcServer,
  startRpcServer,
} from '../src/index.js'
import { signedForRpc, testGenesis, testKey, withDeployer } from './fixtures/test-chain.js'

const NETWORK = 14
const ITEMS = 600
const v = testKey('score-reads validator')
const alice = testKey('score-reads alice')
// Alice is a member institution with the deployer right.
const g = withDeployer(
  testGenesis({ chainId: 'score-reads-test', networkId: NETWORK, validators: [v], funded: alice, params: { blockIntervalMs: 10 } }),
  alice,
)
const SOURCE = `const { ArrayDB, VarDB } = loopchain
export const manifest = { name: 'Items', methods: {
  add: { params: [['n', 'int']] },
  sum: { readonly: true, returns: 'int' },
  keepSum: {},
  kept: { readonly: true, returns: 'int' },
} }
const items = new ArrayDB('items', 'int')
const total = new VarDB('total', 'int')
export function add({ n }) { for (let i = 0n; i < n; i++) items.push(i) }
function sumAll() { let s = 0n; const n = items.length; for (let i = 0; i < n; i++) s += items.get(i); return s }
export function sum() { return sumAll() }
export function keepSum() { total.set(sumAll()) }
export function kept() { return total.get() }
`
const SUM = BigInt((ITEMS * (ITEMS - 1)) / 2)

let dir: string
let node: FullNode
let server: RpcServer
let score: Address
let nonce = 0
const engine = initEngine()

const send = (body: Pick<TransactionBody, 'to' | 'kind' | 'data'>) => signedForRpc(NETWORK, alice, nonce++, body)

async function rpc(
  method: string,
  params: Json = {},
  url = server.url,
): Promise<{ result?: any; error?: { code: number; message: string; data?: any } }> {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return (await res.json()) as never
}

/** A JSON-RPC server on the node, with the read-only budget `opts`. */
const serve = (opts: NodeRpcOptions = {}) =>
  startRpcServer({ dispatcher: new RpcDispatcher(nodeRpcMethods(node, undefined, opts), { title: 'loopchain', version: '0.1.0' }) })

async function openNode(): Promise<void> {
  node = await FullNode.open({ dataDir: dir, genesis: g, validatorSecret: v.secretKey, engine: await engine })
  node.start()
  server = await serve()
}

async function closeNode(): Promise<void> {
  await server.close()
  await node.stop()
}

/** Store reads made while `f` runs: by waiting (`get`) and on the spot (`getSync`). */
async function countingReads<T>(f: () => Promise<T>): Promise<{ result: T; waited: number; onTheSpot: number }> {
  const get = vi.spyOn(LevelKVStore.prototype, 'get')
  const getSync = vi.spyOn(LevelKVStore.prototype, 'getSync')
  try {
    const result = await f()
    return { result, waited: get.mock.calls.length, onTheSpot: getSync.mock.calls.length }
  } finally {
    get.mockRestore()
    getSync.mockRestore()
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'loopchain-score-reads-'))
  await openNode()
  const deploy = send({
    kind: TxKind.Deploy,
    to: NEW_SCORE_ADDRESS,
    data: encode(deployDataCodec, { contentType: 'application/javascript', code: utf8(SOURCE), params: null }),
  })
  expect((await rpc('lc_sendTransactionAndWait', { tx: deploy.hex })).result?.status).toBe('success')
  score = contractAddress(deploy.hash)
  const add = send({ kind: TxKind.Call, to: score, data: encode(callDataCodec, { method: 'add', params: { n: BigInt(ITEMS) } }) })
  expect((await rpc('lc_sendTransactionAndWait', { tx: add.hex })).result?.status).toBe('success')
  // Reopened: the state is on disk only.
  await closeNode()
  await openNode()
}, 60_000)

afterAll(async () => {
  await closeNode()
  rmSync(dir, { recursive: true, force: true })
})

it('a read-only call over stored items runs once on a cold node, its reads answered by LevelDB on the spot', async () => {
  const r = await countingReads(() => rpc('lc_call', { to: score, method: 'sum' }))
  expect(r.result.error).toBeUndefined()
  expect(r.result.result).toBe(SUM.toString())
  // Each item is one storage key (plus the length): read on the spot, not by waiting and rerunning.
  expect(r.onTheSpot).toBeGreaterThanOrEqual(ITEMS)
  expect(r.waited).toBeLessThan(20)
})

it('a transaction over the same items runs once in its block, and the next call reads what it wrote', async () => {
  const keep = send({ kind: TxKind.Call, to: score, data: encode(callDataCodec, { method: 'keepSum', params: {} }) })
  const r = await countingReads(() => rpc('lc_sendTransactionAndWait', { tx: keep.hex }))
  expect(r.result.result?.status).toBe('success')
  expect(r.waited).toBeLessThan(50)
  expect((await rpc('lc_call', { to: score, method: 'kept' })).result).toBe(SUM.toString())
})

it('read-only calls stop at the step limit for a call, and are refused with a retry time once they used the budget', async () => {
  let clock = 1_000_000
  // 100,000 steps a call (too few to sum the items), 10,000 a second: the budget holds two calls,
  // and this test's client address a quarter of the rate, holding one call.
  const limited = await serve({ queryStepLimit: 100_000, queryStepsPerSecond: 10_000, now: () => clock })
  try {
    const call = (method: string) => rpc('lc_call', { to: score, method }, limited.url)
    // A call that needs few steps is charged those: many run in a row.
    for (let i = 0; i < 20; i++) expect((await call('kept')).result).toBe(SUM.toString())
    expect((await call('sum')).error).toMatchObject({ code: RpcErrorCode.ScoreFailed, data: { code: 'OUT_OF_STEPS' } })
    const refused = await call('kept')
    expect(refused.error).toMatchObject({ code: RpcErrorCode.RateLimited, data: { code: 'QUERY_BUDGET' } })
    expect(refused.error?.data.retryAfterMs).toBeGreaterThan(0)
    // The node itself serves the other methods meanwhile.
    expect((await rpc('lc_getAccount', { address: alice.address }, limited.url)).result?.nonce).toBe(nonce)
    clock += refused.error?.data.retryAfterMs + 2_000
    expect((await call('kept')).result).toBe(SUM.toString())
    // A batch of small calls runs them one after another: none is refused.
    clock += 1e9
    const res = await fetch(limited.url, {
      method: 'POST',
      body: JSON.stringify(
        Array.from({ length: 30 }, (_, id) => ({ jsonrpc: '2.0', id, method: 'lc_call', params: { to: score, method: 'kept' } })),
      ),
    })
    const replies = (await res.json()) as { result?: string }[]
    expect(replies.map((x) => x.result)).toEqual(Array(30).fill(SUM.toString()))
  } finally {
    await limited.close()
  }
})

it('a read-only call is charged 50 steps per value of its params for typing them, and one of more than 16,384 values is refused untyped', async () => {
  const clock = 1_000_000
  // This client's share holds one call's limit, 1,000,000 steps, and refills at 25,000 a second (the clock stands still).
  const limited = await serve({ queryStepLimit: 1_000_000, queryStepsPerSecond: 100_000, now: () => clock })
  try {
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))
    const call = (params: Json) => rpc('lc_call', { to: score, method: 'kept', params }, limited.url)
    // More than 16,384 values: refused before they are typed, and charged nothing.
    const tooMany = await call(keys(16_384))
    expect(tooMany.error).toMatchObject({ code: RpcErrorCode.InvalidParams, message: expect.stringContaining('more than 16384 values') })
    // 10,000 values: ~500,000 steps each, whatever the call runs. The share takes two such calls.
    for (let i = 0; i < 2; i++) expect((await call(keys(9_999))).error?.code).not.toBe(RpcErrorCode.RateLimited)
    expect((await call({})).error).toMatchObject({ code: RpcErrorCode.RateLimited, data: { code: 'QUERY_BUDGET' } })
  } finally {
    await limited.close()
  }
})

it('a call whose reads must be waited for (a block being written) runs again at most a few times, each run charged', async () => {
  let clock = 1_000_000
  const limited = await serve({ queryStepLimit: 1_000_000, queryStepsPerSecond: 1_000, now: () => clock })
  // The state as it reads while the node writes a block: nothing can be read on the spot.
  const real = node.committedState()
  const waiting = vi.spyOn(node, 'committedState').mockReturnValue({ get: (k) => real.get(k) })
  try {
    const call = (method: string) => rpc('lc_call', { to: score, method }, limited.url)
    // Two keys to wait for (the SCORE's record is read before): two reruns, so three runs charged
    // about 2,000,000 steps of the 2,000,000 the budget holds.
    expect((await call('kept')).result).toBe(SUM.toString())
    expect((await call('kept')).error).toMatchObject({ code: RpcErrorCode.RateLimited, data: { code: 'QUERY_BUDGET' } })
    clock += 1e9
    // Six hundred items: the call gives up after MAX_QUERY_STATE_LOADS waits, with a retry.
    expect((await call('sum')).error).toMatchObject({ code: RpcErrorCode.RateLimited, data: { code: 'QUERY_RETRY' } })
    expect((await call('kept')).error).toMatchObject({ data: { code: 'QUERY_BUDGET' } })
    waiting.mockRestore()
    clock += 1e9
    expect((await call('sum')).result).toBe(SUM.toString())
  } finally {
    waiting.mockRestore()
    await limited.close()
  }
})

it('a query budget runs calls one at a time, charges what they report, and refills with time', async () => {
  let t = 0
  const b = new QueryBudget(100, 50, () => t)
  const order: string[] = []
  // Each call from its own client: this is the node's budget (a client's share is below).
  const slow = (name: string, steps?: number) =>
    b.run(name, async (charge) => {
      order.push(`${name} starts`)
      await new Promise((r) => setTimeout(r, 5))
      order.push(`${name} ends`)
      if (steps !== undefined) charge(steps)
      return name
    })
  // One at a time, in arrival order, each charged what it reports: 200 − 30 − 40.
  expect(await Promise.all([slow('a', 30), slow('b', 40)])).toEqual(['a', 'b'])
  expect(order).toEqual(['a starts', 'a ends', 'b starts', 'b ends'])
  // A call that reports nothing, or throws, is charged the whole limit: 130 − 100 − 100 = −70.
  await slow('c')
  await expect(b.run('x', async () => Promise.reject(new Error('fault')))).rejects.toThrow('fault')
  await expect(slow('d')).rejects.toMatchObject({ rpcCode: RpcErrorCode.RateLimited, data: { code: 'QUERY_BUDGET', retryAfterMs: 1420 } })
  // Refilled at 50 steps a second; a nonsense count is charged nothing.
  t += 1399
  await expect(slow('e')).rejects.toMatchObject({ data: { code: 'QUERY_BUDGET' } })
  t += 21
  expect(await slow('f', Number.NaN)).toBe('f')
  expect(await slow('g', -5)).toBe('g')
  // Never above two calls' limits, however long it rested; a clock that goes back gives nothing.
  t += 1e9
  await slow('h', 150)
  t -= 1e6
  await slow('i', 60)
  await expect(slow('j')).rejects.toMatchObject({ data: { code: 'QUERY_BUDGET' } })
  expect(() => new QueryBudget(0, 1, () => 0)).toThrow(RangeError)
  expect(() => new QueryBudget(1, Number.NaN, () => 0)).toThrow(RangeError)
})

it('one client spends at most its share of the query budget: the others are still served', async () => {
  let t = 0
  // The node: 400 steps a second, holding 200. A client: a quarter of that, holding one call (100).
  const b = new QueryBudget(100, 400, () => t)
  const call = (client: string, steps: number) =>
    b.run(client, async (charge) => {
      charge(steps)
      return client
    })
  expect(await call('greedy', 100)).toBe('greedy')
  await expect(call('greedy', 1)).rejects.toMatchObject({
    rpcCode: RpcErrorCode.RateLimited,
    data: { code: 'QUERY_BUDGET', retryAfterMs: Math.ceil((1 / (400 * QUERY_CLIENT_SHARE)) * 1000) },
  })
  // The node's budget still holds 100: another client is served.
  expect(await call('other', 60)).toBe('other')
  // The greedy client's share refills at its own rate.
  t += 10
  expect(await call('greedy', 50)).toBe('greedy')
  await expect(call('greedy', 1)).rejects.toMatchObject({ data: { code: 'QUERY_BUDGET' } })
  // A client's calls wait at most MAX_QUEUED_QUERIES_PER_CLIENT at once; another's still queue.
  t += 1e9
  let open = () => {}
  const held = new Promise<void>((r) => {
    open = r
  })
  const waiting = Array.from({ length: MAX_QUEUED_QUERIES_PER_CLIENT }, () =>
    b.run('burst', async (charge) => {
      await held
      charge(0)
    }),
  )
  await expect(b.run('burst', async () => 'x')).rejects.toMatchObject({ data: { code: 'QUERY_BUSY' } })
  const other = b.run('patient', async (charge) => {
    charge(1)
    return 'patient'
  })
  open()
  await Promise.all(waiting)
  expect(await other).toBe('patient')
  // A node that trusts its clients (a gateway) gives each the node's whole rate.
  const gateway = new QueryBudget(100, 400, () => t, 400)
  await gateway.run('gw', async (charge) => charge(100))
  await expect(gateway.run('gw', async () => 'x')).rejects.toMatchObject({ data: { retryAfterMs: 3 } })
  expect(() => new QueryBudget(100, 400, () => t, 0)).toThrow(RangeError)
})

it('a call made while a block is being stored waits for it, then runs once on the state that block left', async () => {
  // The block's store write is held until released: the tree has moved to the block's state and
  // the tip has not, the window a call can fall into at any time on a busy node.
  const write = node.chain.commitBlock.bind(node.chain)
  let entered = () => {}
  const inWindow = new Promise<void>((r) => {
    entered = r
  })
  let release = () => {}
  const gate = new Promise<void>((r) => {
    release = r
  })
  const held = vi.spyOn(node.chain, 'commitBlock').mockImplementation(async (...args) => {
    entered()
    await gate
    return write(...args)
  })
  try {
    const before = node.head.height
    // Two more items, 0 and 1: the sum grows by one.
    const add = send({ kind: TxKind.Call, to: score, data: encode(callDataCodec, { method: 'add', params: { n: 2n } }) })
    expect((await rpc('lc_sendTransaction', { tx: add.hex })).error).toBeUndefined()
    await inWindow
    const r = await countingReads(async () => {
      const answer = rpc('lc_call', { to: score, method: 'sum' })
      let answered = false
      void answer.then(() => {
        answered = true
      })
      await new Promise((res) => setTimeout(res, 200))
      // Still waiting for the block (before, it ran against the previous root, which is read by
      // waiting, and gave up after a few reruns with QUERY_RETRY).
      expect(answered).toBe(false)
      release()
      return answer
    })
    expect(r.result.error).toBeUndefined()
    expect(r.result.result).toBe((SUM + 1n).toString())
    expect(node.head.height).toBe(before + 1)
    // Its reads were in memory or read on the spot, not waited for: it ran once. (The store write
    // released above makes a read of its own; a call on the previous root waits for one per item.)
    expect(r.waited).toBeLessThan(5)
  } finally {
    release()
    held.mockRestore()
  }
})
