/**
 * SCORE methods of the node's JSON-RPC against a running validator with the contract engine: a
 * token deployed by a transaction, its ABI (`lc_getScoreApi`), read-only calls typed by that ABI
 * (integers beyond 2^53 as decimal strings), and event logs pushed to a WebSocket subscriber
 * filtered by SCORE and event.
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
  TOKEN_SOURCE,
  type TransactionBody,
  TxKind,
  utf8,
  type Value,
} from '@loopchain/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { FullNode, type Json, nodeRpcMethods, RpcDispatcher, RpcErrorCode, type RpcServer, startRpcServer } from '../src/index.js'
import { signedForRpc, testGenesis, testKey, withDeployer } from './fixtures/test-chain.js'

const NETWORK = 13
const v = testKey('score-rpc validator')
const alice = testKey('score-rpc alice')
const bob = testKey('score-rpc bob')
const SUPPLY = 10n ** 24n
let node: FullNode
let server: RpcServer
let dir: string
let token: Address
/** A SCORE whose read-only method calls another SCORE's. */
let relay: Address
const RELAY_SOURCE = `export const manifest = {
  name: 'Relay',
  methods: { viewRelay: { readonly: true, params: [['to', 'Address'], ['method', 'str']], returns: 'any' } },
}
export function viewRelay({ to, method }) { return loopchain.call(to, method, null) }
`
let nonce = 0

// Alice is a member institution with the deployer right.
const g = withDeployer(
  testGenesis({ chainId: 'score-rpc-test', networkId: NETWORK, validators: [v], funded: alice, params: { blockIntervalMs: 10 } }),
  alice,
)

const send = (body: Pick<TransactionBody, 'to' | 'kind' | 'data'>) => signedForRpc(NETWORK, alice, nonce++, body)

const call = (method: string, params: Value) => send({ kind: TxKind.Call, to: token, data: encode(callDataCodec, { method, params }) })

async function rpc(method: string, params: Json = {}): Promise<{ result?: any; error?: { code: number; message: string; data?: any } }> {
  const res = await fetch(server.url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return (await res.json()) as never
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'loopchain-score-rpc-'))
  node = await FullNode.open({ dataDir: dir, genesis: g, validatorSecret: v.secretKey, engine: await initEngine() })
  node.start()
  server = await startRpcServer({ dispatcher: new RpcDispatcher(nodeRpcMethods(node), { title: 'loopchain', version: '0.1.0' }) })
  const deploy = send({
    kind: TxKind.Deploy,
    to: NEW_SCORE_ADDRESS,
    data: encode(deployDataCodec, {
      contentType: 'application/javascript',
      code: utf8(TOKEN_SOURCE),
      params: { _name: 'Test', _symbol: 'TST', _decimals: 18n, _initialSupply: SUPPLY },
    }),
  })
  const r = await rpc('lc_sendTransactionAndWait', { tx: deploy.hex })
  expect(r.result?.status).toBe('success')
  token = contractAddress(deploy.hash)
  expect(r.result.scoreAddress).toBe(token)
  const relayDeploy = send({
    kind: TxKind.Deploy,
    to: NEW_SCORE_ADDRESS,
    data: encode(deployDataCodec, { contentType: 'application/javascript', code: utf8(RELAY_SOURCE), params: null }),
  })
  const rr = await rpc('lc_sendTransactionAndWait', { tx: relayDeploy.hex })
  expect(rr.result?.status).toBe('success')
  relay = contractAddress(relayDeploy.hash)
}, 60_000)

afterAll(async () => {
  await server.close()
  await node.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('SCORE methods over JSON-RPC', () => {
  it('returns the ABI of a deployed SCORE and of governance, and NotFound for an unknown address', async () => {
    const abi = (await rpc('lc_getScoreApi', { address: token })).result
    expect(JSON.stringify(abi)).toContain('balanceOf')
    expect(JSON.stringify(abi)).toContain('Transfer')
    const gov = (await rpc('lc_getScoreApi', { address: 'cx0000000000000000000000000000000000000001' })).result
    expect(JSON.stringify(gov)).toContain('propose')
    const missing = await rpc('lc_getScoreApi', { address: `cx${'ab'.repeat(20)}` })
    expect(missing.error?.code).toBe(RpcErrorCode.NotFound)
    // A list of the SCORE's members, as rpc.discover says.
    expect(Array.isArray(abi)).toBe(true)
    const doc = (await rpc('rpc.discover')).result
    expect(doc.methods.find((m: { name: string }) => m.name === 'lc_getScoreApi').result.schema.type).toBe('array')
    // A read-only call to the same address is not found either; a SCORE that is there and calls
    // the missing one fails with the call's code instead.
    expect((await rpc('lc_call', { to: `cx${'ab'.repeat(20)}`, method: 'symbol' })).error?.code).toBe(RpcErrorCode.NotFound)
    expect((await rpc('lc_call', { to: relay, method: 'viewRelay', params: { to: token, method: 'symbol' } })).result).toBe('TST')
    const nested = await rpc('lc_call', { to: relay, method: 'viewRelay', params: { to: `cx${'ab'.repeat(20)}`, method: 'symbol' } })
    expect(nested.error).toMatchObject({ code: RpcErrorCode.ScoreFailed, data: { code: 'UNKNOWN_SCORE' } })
  })

  it('refuses what no SCORE method can take as invalid params: a name past the engine’s 64 characters, values nested past 32 levels', async () => {
    const nest = (levels: number) => {
      let v: Json = 1
      for (let i = 0; i < levels; i++) v = [v]
      return v
    }
    const long = await rpc('lc_call', { to: token, method: `m${'x'.repeat(64)}` })
    expect(long.error?.code).toBe(RpcErrorCode.InvalidParams)
    expect((await rpc('lc_call', { to: token, method: `m${'x'.repeat(63)}` })).error?.code).toBe(RpcErrorCode.ScoreFailed)
    // 60 levels pass the body's own limit (64) and stop at the value's, with a message, not a stack overflow.
    const nested = await rpc('lc_call', { to: token, method: 'balanceOf', params: { _owner: nest(60) } })
    expect(nested.error).toMatchObject({
      code: RpcErrorCode.InvalidParams,
      message: expect.stringContaining('deeper than a value may be (32 levels)'),
    })
    // A parameter sits one level into the map of parameters: 31 lists around it reach the
    // 32nd level, the deepest a value has (the engine then refuses a list for an address), 32 do not.
    expect((await rpc('lc_call', { to: token, method: 'balanceOf', params: { _owner: nest(31) } })).error?.code).toBe(
      RpcErrorCode.ScoreFailed,
    )
    expect((await rpc('lc_call', { to: token, method: 'balanceOf', params: { _owner: nest(32) } })).error?.code).toBe(
      RpcErrorCode.InvalidParams,
    )
  })

  it('runs read-only calls with parameters typed by the ABI, and reports a failing call with its code', async () => {
    expect((await rpc('lc_call', { to: token, method: 'balanceOf', params: { _owner: alice.address } })).result).toBe(SUPPLY.toString())
    expect((await rpc('lc_call', { to: token, method: 'symbol' })).result).toBe('TST')
    const bad = await rpc('lc_call', { to: token, method: 'noSuchMethod' })
    expect(bad.error?.code).toBe(RpcErrorCode.ScoreFailed)
    expect(typeof bad.error?.data?.code).toBe('string')
    // A write method is refused read-only, and nothing changes.
    const write = await rpc('lc_call', { to: token, method: 'transfer', params: { _to: bob.address, _value: '1' } })
    expect(write.error?.code).toBe(RpcErrorCode.ScoreFailed)
    expect((await rpc('lc_call', { to: token, method: 'balanceOf', params: { _owner: bob.address } })).result).toBe('0')
  })

  it('refuses an int parameter outside what a value holds before reading it, however long (BigInt of 2 M digits takes ~0.2 s of the main thread)', async () => {
    const transfer = (value: string) => rpc('lc_call', { to: token, method: 'transfer', params: { _to: bob.address, _value: value } })
    const outside = [
      `1${'0'.repeat(1_000_000)}`,
      (1n << 256n).toString(),
      `-${((1n << 256n) + 1n).toString()}`,
      `0x1${'0'.repeat(64)}`,
      `-0x${'f'.repeat(100_000)}`,
    ]
    for (const value of outside) {
      const r = await transfer(value)
      expect(r.error?.code).toBe(RpcErrorCode.InvalidParams)
      expect(r.error?.message).toContain('params._value is outside the integers a value holds')
    }
    // The bounds themselves pass (then the write method is refused read-only, as above).
    for (const value of [((1n << 256n) - 1n).toString(), `-${(1n << 256n).toString()}`, `0x${'0'.repeat(100)}${'f'.repeat(64)}`]) {
      expect((await transfer(value)).error?.code).toBe(RpcErrorCode.ScoreFailed)
    }
  })

  it('pushes event logs matching a SCORE and an event name to a WebSocket subscriber', async () => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}ws`)
    await new Promise((r, j) => ws.once('open', r).once('error', j))
    const seen: any[] = []
    const subscribed = new Promise<void>((resolve) =>
      ws.on('message', (raw) => {
        const m = JSON.parse(String(raw))
        if (m.id === 1) resolve()
        if (m.method === 'lc_subscription') seen.push(m.params.result)
      }),
    )
    ws.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'lc_subscribe',
        params: { topic: 'logs', filter: { score: token, event: 'Transfer' } },
      }),
    )
    await subscribed
    // 10^21 is beyond 2^53: it travels as a typed int, not a float.
    const big = 10n ** 21n
    const r = await rpc('lc_sendTransactionAndWait', { tx: call('transfer', { _to: bob.address, _value: big }).hex })
    expect(r.result?.status).toBe('success')
    for (let i = 0; i < 50 && seen.length === 0; i++) await new Promise((res) => setTimeout(res, 50))
    ws.close()
    expect(seen).toHaveLength(1)
    expect(seen[0].score).toBe(token)
    expect(seen[0].event).toMatch(/^Transfer/)
    expect(JSON.stringify(seen[0])).toContain(big.toString())
    expect((await rpc('lc_call', { to: token, method: 'balanceOf', params: { _owner: bob.address } })).result).toBe(big.toString())
  })
})

describe('a node whose state is not the network’s', () => {
  it('halts at the first block that names another result than it computed, instead of retrying it forever', async () => {
    // A node without the contract engine runs the deploy differently (it fails there), so the
    // result it computes for that block is not the one the next header names.
    const followerDir = mkdtempSync(join(tmpdir(), 'loopchain-diverged-'))
    const follower = await FullNode.open({ dataDir: followerDir, genesis: g })
    try {
      await rpc('lc_sendTransactionAndWait', { tx: call('transfer', { _to: bob.address, _value: 1n }).hex })
      let diverged: unknown
      for (let h = 1; h <= node.height && diverged === undefined; h++) {
        const c = (await node.committedBlock(h)) as NonNullable<Awaited<ReturnType<FullNode['committedBlock']>>>
        await follower.importBlock(c.block, c.commit).catch((e: unknown) => {
          diverged = e
        })
      }
      expect(diverged).toMatchObject({ code: 'CORRUPT_STORE' })
      expect(follower.failure).toMatchObject({ code: 'HALTED' })
      const at = follower.height
      // Halted: nothing more is taken.
      const next = (await node.committedBlock(at + 1)) as NonNullable<Awaited<ReturnType<FullNode['committedBlock']>>>
      await follower.importBlock(next.block, next.commit).catch(() => undefined)
      expect(follower.height).toBe(at)
    } finally {
      await follower.stop()
      rmSync(followerDir, { recursive: true, force: true })
    }
  })
})
