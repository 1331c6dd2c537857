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
  type Genesis,
  initEngine,
  NEW_SCORE_ADDRESS,
  Right,
  signTransaction,
  type TransactionBody,
  TxKind,
  to0x,
  transactionCodec,
  transactionHash,
  utf8,
} from '@loopchain/core'
import { afterAll, beforeAll, expect, it, vi } from 'vitest'
import { FullNode, type Json, LevelKVStore, nodeRpcMethods, RpcDispatcher, type RpcServer, startRpcServer } from '../src/index.js'
import { testGenesis, testKey } from './fixtures/test-chain.js'

const NETWORK = 14
const ITEMS = 600
const v = testKey('score-reads validator')
const alice = testKey('score-reads alice')
const base = testGenesis({
  chainId: 'score-reads-test',
  networkId: NETWORK,
  validators: [v],
  funded: alice,
  params: { blockIntervalMs: 10 },
})
const g: Genesis = {
  ...base,
  members: [...base.members, { id: 'alice-bank', name: 'Alice Bank', address: alice.address, nodeKey: undefined, rights: Right.Deployer }],
}
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

function send(body: Pick<TransactionBody, 'to' | 'kind' | 'data'>): { hex: string; hash: Uint8Array } {
  const tx = signTransaction(
    {
      version: 1,
      networkId: NETWORK,
      from: alice.address,
      value: 0n,
      stepLimit: 50_000_000,
      timestamp: Date.now() * 1000,
      nonce: nonce++,
      ...body,
    },
    alice,
  )
  return { hex: to0x(encode(transactionCodec, tx)), hash: transactionHash(tx.body) }
}

async function rpc(method: string, params: Json = {}): Promise<{ result?: any; error?: { code: number; message: string } }> {
  const res = await fetch(server.url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return (await res.json()) as never
}

async function openNode(): Promise<void> {
  node = await FullNode.open({ dataDir: dir, genesis: g, validatorSecret: v.secretKey, engine: await engine })
  node.start()
  server = await startRpcServer({ dispatcher: new RpcDispatcher(nodeRpcMethods(node), { title: 'loopchain', version: '0.1.0' }) })
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
