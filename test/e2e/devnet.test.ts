/**
 * Four validators as four OS processes (`loopchain start`), libp2p over real TCP sockets on
 * 127.0.0.1, LevelDB in temporary directories, transactions over JSON-RPC. The leader is killed
 * with SIGKILL; the others go on; the leader restarts from its data, catches up by block sync and
 * rejoins.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type Address,
  encode,
  fromHex,
  keyPairFromSecret,
  parseGenesis,
  proposerOf,
  signTransaction,
  TxKind,
  to0x,
  transactionCodec,
} from '@loopchain/core'
import { reservePortBlock } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../support/cli-network.js'

const CLI = fileURLToPath(new URL('../../apps/node/src/main.ts', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'loopchain-devnet-'))
// A block of ports no other test holds; each node uses base + 10·i (+1 ws, +2 rpc).
const BASE = reservePortBlock()
const procs = new Map<number, ChildProcess>()
const rpcPort = (i: number) => BASE + 10 * i + 2
const RECIPIENT = 'hx00000000000000000000000000000000000e2e01' as Address

function cli(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Every log line each node printed, across restarts: the double-sign check reads them. */
const logs = new Map<number, string[]>()

function startNode(i: number): void {
  const p = cli(['start', '--config', join(dir, `node-${i}`, 'config.json')])
  const lines = logs.get(i) ?? []
  logs.set(i, lines)
  p.stdout?.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)))
  p.stderr?.resume()
  procs.set(i, p)
}

async function rpc(i: number, method: string, params: object = {}): Promise<any> {
  const res = await fetch(`http://127.0.0.1:${rpcPort(i)}/`, {
    method: 'POST',
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const j = (await res.json()) as { result?: unknown; error?: { message: string } }
  if (j.error) throw new Error(`${method}: ${j.error.message}`)
  return j.result
}

let nonce = 0
const faucet = () => keyPairFromSecret(fromHex(JSON.parse(readFileSync(join(dir, 'faucet.json'), 'utf8')).secretKey))
function transfer(value: bigint): string {
  const k = faucet()
  const tx = signTransaction(
    {
      version: 1,
      networkId: 1,
      from: k.address,
      to: RECIPIENT,
      value,
      stepLimit: 100_000,
      timestamp: Date.now() * 1000,
      nonce: nonce++,
      kind: TxKind.Transfer,
      data: new Uint8Array(0),
    },
    k,
  )
  return to0x(encode(transactionCodec, tx))
}

const lastBlock = async (i: number) =>
  (await rpc(i, 'lc_getLastBlock', { full: false })) as { height: number; hash: string; resultRoot: string }

beforeAll(async () => {
  const init = cli(['init', '--validators', '4', '--out', dir, '--base-port', String(BASE)])
  await new Promise((resolve) => init.once('exit', resolve))
  for (let i = 0; i < 4; i++) startNode(i)
  for (let i = 0; i < 4; i++) await waitFor(() => rpc(i, 'lc_getNetworkInfo'), 120_000, `node ${i}`)
}, 300_000)

afterAll(() => {
  for (const p of procs.values()) p.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

describe('a four-validator network of separate processes', () => {
  it('commits transactions sent over JSON-RPC, and every node reaches the same block and state', async () => {
    for (let k = 0; k < 4; k++) await rpc(k % 4, 'lc_sendTransaction', { tx: transfer(10n) })
    const receipt = await rpc(1, 'lc_sendTransactionAndWait', { tx: transfer(10n), timeoutMs: 30_000 })
    expect(receipt.status).toBe('success')
    const target = receipt.height as number
    const heads = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        waitFor(
          async () => ((await lastBlock(i)).height >= target ? rpc(i, 'lc_getBlockByHeight', { height: target, full: false }) : undefined),
          20_000,
          `node ${i} at ${target}`,
        ),
      ),
    )
    expect(new Set(heads.map((h) => h.hash)).size).toBe(1)
    const balances = await Promise.all([0, 1, 2, 3].map((i) => rpc(i, 'lc_getAccount', { address: RECIPIENT })))
    expect(balances.map((b) => b.balance)).toEqual(['50', '50', '50', '50'])
  }, 90_000)

  it('the CLI sends a transfer and reports status', async () => {
    const send = cli([
      'tx',
      'send',
      '--key',
      join(dir, 'faucet.json'),
      '--to',
      RECIPIENT,
      '--value',
      '2',
      '--rpc',
      `http://127.0.0.1:${rpcPort(2)}/`,
      '--wait',
    ])
    let out = ''
    send.stdout?.on('data', (d) => {
      out += d
    })
    const code = await new Promise((r) => send.once('exit', r))
    expect(code).toBe(0)
    expect(JSON.parse(out).status).toBe('success')
    nonce++ // the CLI used the faucet's next nonce
    const status = cli(['status', '--rpc', `http://127.0.0.1:${rpcPort(3)}/`])
    let st = ''
    status.stdout?.on('data', (d) => {
      st += d
    })
    await new Promise((r) => status.once('exit', r))
    expect(JSON.parse(st)).toMatchObject({ chainId: 'loopchain-devnet', role: 'validator', sync: { syncing: false } })
  }, 60_000)

  it('an observer started late syncs from genesis, follows the tip, and serves metrics', async () => {
    const obs = 4
    const p = cli(['start', '--config', join(dir, 'observer', 'config.json')])
    p.stdout?.resume()
    p.stderr?.resume()
    procs.set(obs, p)
    await waitFor(() => rpc(obs, 'lc_getNetworkInfo'), 60_000, 'the observer')
    expect((await rpc(obs, 'lc_getNetworkInfo')).role).toBe('observer')
    const tip = (await lastBlock(0)).height
    await waitFor(async () => ((await lastBlock(obs)).height >= tip ? true : undefined), 30_000, 'observer sync')
    const r = await rpc(0, 'lc_sendTransactionAndWait', { tx: transfer(1n), timeoutMs: 30_000 })
    const seen = await waitFor(
      async () =>
        (await lastBlock(obs)).height >= r.height ? rpc(obs, 'lc_getBlockByHeight', { height: r.height, full: false }) : undefined,
      30_000,
      'observer follows',
    )
    expect(seen.hash).toBe((await rpc(0, 'lc_getBlockByHeight', { height: r.height, full: false })).hash)
    const metrics = await (await fetch(`http://127.0.0.1:${rpcPort(1)}/metrics`)).text()
    expect(metrics).toMatch(/loopchain_height \d+/)
    expect(Number(/loopchain_peers (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3)
    procs.get(obs)?.kill('SIGKILL')
  }, 120_000)

  it('kill -9 of the next leader: the others go on; restarted, it catches up and rejoins', async () => {
    const genesis = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
    const { height } = await lastBlock(1)
    const leader = proposerOf(genesis.validators, height + 1, 0)
    const victim = genesis.members.findIndex((m) => m.address === leader.address)
    expect(victim).toBeGreaterThanOrEqual(0)
    procs.get(victim)?.kill('SIGKILL')
    const alive = [0, 1, 2, 3].filter((i) => i !== victim)
    const t0 = Date.now()
    const r = await rpc(alive[0] as number, 'lc_sendTransactionAndWait', { tx: transfer(5n), timeoutMs: 30_000 })
    expect(r.status).toBe('success')
    // Round 0's proposer is gone: the block needs round 1, after one propose timeout (1 s by default).
    expect(Date.now() - t0).toBeLessThan(15_000)
    const block = await rpc(alive[0] as number, 'lc_getBlockByHeight', { height: r.height, full: false })
    expect(block.round).toBeGreaterThanOrEqual(r.height === height + 1 ? 1 : 0)

    startNode(victim)
    await waitFor(() => rpc(victim, 'lc_getNetworkInfo'), 60_000, 'the restarted node')
    const caught = await waitFor(
      async () => ((await lastBlock(victim)).height >= r.height ? lastBlock(victim) : undefined),
      30_000,
      'catch-up',
    )
    expect(caught.height).toBeGreaterThanOrEqual(r.height)
    // It takes part again: a new transaction commits and every node agrees.
    const again = await rpc(victim, 'lc_sendTransactionAndWait', { tx: transfer(1n), timeoutMs: 30_000 })
    expect(again.status).toBe('success')
    const hashes = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        waitFor(
          async () =>
            (await lastBlock(i)).height >= again.height ? rpc(i, 'lc_getBlockByHeight', { height: again.height, full: false }) : undefined,
          20_000,
          `node ${i}`,
        ),
      ),
    )
    expect(new Set(hashes.map((h) => h.hash)).size).toBe(1)
    const balances = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        waitFor(
          async () => {
            const b = await rpc(i, 'lc_getAccount', { address: RECIPIENT })
            return b.balance === '59' ? b : undefined
          },
          20_000,
          `balance at ${i}`,
        ),
      ),
    )
    expect(balances).toHaveLength(4)
  }, 150_000)

  it('kill -9 of a validator under load, restart: no committed transaction is missing anywhere, and nobody double-signs', async () => {
    const victim = 2
    const committed: string[] = []
    const sent: Promise<void>[] = []
    for (let k = 0; k < 40; k++) {
      if (k === 15) procs.get(victim)?.kill('SIGKILL')
      const target = k % 4 === victim ? 0 : k % 4
      sent.push(
        rpc(target, 'lc_sendTransactionAndWait', { tx: transfer(1n), timeoutMs: 60_000 }).then((r: { txHash: string; status: string }) => {
          if (r.status === 'success') committed.push(r.txHash)
        }),
      )
      await new Promise((r) => setTimeout(r, 40))
    }
    await Promise.all(sent)
    expect(committed.length).toBe(40)
    startNode(victim)
    await waitFor(() => rpc(victim, 'lc_getNetworkInfo'), 60_000, 'the restarted validator')
    const tip = (await lastBlock(0)).height
    await waitFor(async () => ((await lastBlock(victim)).height >= tip ? true : undefined), 60_000, 'catch-up under load')
    // It reported its progress while it caught up, and its view of the target.
    const progress = (logs.get(victim) ?? []).filter((l) => l.includes('sync: progress')).map((l) => JSON.parse(l))
    expect(progress.length).toBeGreaterThan(0)
    expect(progress.at(-1).target).toBeGreaterThanOrEqual(progress.at(-1).height - 1)
    expect((await rpc(victim, 'lc_getNetworkInfo')).sync.target).toBeGreaterThanOrEqual(tip)
    for (const i of [0, 1, 2, 3]) {
      const found = await Promise.all(
        committed.map((hash) => rpc(i, 'lc_getTransactionResult', { hash }).then((r: { status: string }) => r.status)),
      )
      expect(found.every((st) => st === 'success')).toBe(true)
    }
    // Conflicting votes by one validator would be reported as evidence by every node that saw them.
    for (const [i, lines] of logs)
      expect(
        lines.filter((l) => l.includes('evidence')),
        `node ${i}`,
      ).toEqual([])
  }, 240_000)

  it("an idle network still makes blocks, one every emptyBlockIntervalMs (init's default, 5 s), so periods counted in blocks go on", async () => {
    const g = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
    expect(g.params.emptyBlockIntervalMs).toBe(5000)
    // Nothing is sent from here on: every block that follows is one the chain made by itself.
    const from = (await lastBlock(0)).height
    const blocks = await waitFor(
      async () => {
        const head = (await lastBlock(0)).height
        if (head < from + 3) return undefined
        return Promise.all([head - 1, head].map((height) => rpc(0, 'lc_getBlockByHeight', { height, full: false })))
      },
      40_000,
      'three more blocks on an idle chain',
    )
    const [a, b] = blocks as [{ timestamp: number; transactions: string[] }, { timestamp: number; transactions: string[] }]
    expect([a.transactions, b.transactions]).toEqual([[], []])
    // At most one empty block an interval: the next starts 5 s after the last commit, past its timestamp.
    expect(b.timestamp - a.timestamp).toBeGreaterThanOrEqual(5000 * 1000)
  }, 60_000)
})
