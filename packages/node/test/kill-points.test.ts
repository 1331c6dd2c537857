/**
 * kill -9 at chosen instants of a validator's writes, in a real process on LevelDB
 * (`fixtures/kill-point-node.ts`), then a restart: between the two databases of a block's write,
 * and after a consensus WAL append before the message it records leaves the process. What the
 * node said was committed is there, the chain is whole, the state adds up, and no vote or
 * proposal slot is signed two ways.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { blockHash, toHex } from '@loopchain/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { FullNode } from '../src/index.js'
import { killPointChain } from './fixtures/test-chain.js'

const SCRIPT = fileURLToPath(new URL('./fixtures/kill-point-node.ts', import.meta.url))

interface Line {
  killed?: string
  recorded?: string
  open?: number
  hash?: string
  proposal?: string
  vote?: string
  block?: string
  signature?: string
  commit?: number
  txs?: number
}

const dirs: string[] = []
const children: ChildProcess[] = []
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** The node process on `dir`, killing itself at the `n`th write of `mode`; its lines as they come, and its exit. */
function run(dir: string, mode: 'between-databases' | 'after-wal' | 'none', n: number, timestamp: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, dir, mode, String(n), String(timestamp)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(child)
  const lines: Line[] = []
  let buffered = ''
  child.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString()
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      lines.push(JSON.parse(buffered.slice(0, nl)) as Line)
      buffered = buffered.slice(nl + 1)
    }
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  )
  return { child, lines, exited }
}

const lastCommit = (lines: Line[]) => Math.max(0, ...lines.flatMap((l) => (l.commit === undefined ? [] : [l.commit])))

/** Every signed message of these runs by slot (height/round for a proposal, height/round/type for a vote): each slot must hold one. */
function slots(...runs: Line[][]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>()
  for (const l of runs.flat()) {
    const slot = l.proposal !== undefined ? `proposal ${l.proposal}` : l.vote !== undefined ? `vote ${l.vote}` : undefined
    if (slot === undefined) continue
    const set = out.get(slot) ?? new Set<string>()
    set.add(`${l.block} ${l.signature}`)
    out.set(slot, set)
  }
  return out
}

/** Restarts the node, lets it commit three more blocks, stops it, and checks the database it leaves against what both runs said. */
async function restartAndCheck(dir: string, timestamp: number, first: Line[]): Promise<Line[]> {
  const second = run(dir, 'none', 0, timestamp)
  await vi.waitFor(() => expect(second.lines.some((l) => l.open !== undefined)).toBe(true), { timeout: 30_000, interval: 50 })
  const opened = second.lines.find((l) => l.open !== undefined) as Line
  // Nothing it said was committed is lost, and it opens on the very block it said.
  const said = lastCommit(first)
  expect(opened.open).toBeGreaterThanOrEqual(said)
  expect(opened.hash).toBe(first.find((l) => l.commit === opened.open)?.hash ?? opened.hash)
  const target = (opened.open as number) + 3
  await vi.waitFor(() => expect(lastCommit(second.lines)).toBeGreaterThanOrEqual(target), { timeout: 30_000, interval: 50 })
  second.child.kill('SIGTERM')
  expect(await second.exited).toEqual({ code: 0, signal: null })

  // No slot signed two ways, across the kill.
  for (const [slot, signed] of slots(first, second.lines)) expect([slot, signed.size]).toEqual([slot, 1])
  // The database: every block there, each the one the node said; the state adds up (each
  // transaction moves 1 from alice to bob).
  const { genesis, alice, bob } = killPointChain(timestamp)
  const node = await FullNode.open({ dataDir: dir, genesis, watchtower: false })
  try {
    expect(node.height).toBe(lastCommit(second.lines))
    const hashes = new Map([...first, ...second.lines].flatMap((l) => (l.commit === undefined ? [] : [[l.commit, l.hash]])))
    let txs = 0
    for (let h = 1; h <= node.height; h++) {
      const block = await node.chain.blockAt(h)
      expect(block, `block ${h}`).toBeDefined()
      if (hashes.has(h)) expect(toHex(blockHash(block?.header as never))).toBe(hashes.get(h))
      txs += block?.transactions.length ?? 0
    }
    expect(txs).toBeGreaterThan(0)
    expect((await node.account(alice.address)).nonce).toBe(txs)
    expect((await node.account(bob.address)).balance).toBe(BigInt(txs))
  } finally {
    await node.stop()
  }
  return second.lines
}

/** A fresh data directory and genesis time, and the node's first run there, killed at the `n`th write of `mode`. */
async function killedRun(mode: 'between-databases' | 'after-wal', n: number, said: string) {
  const dir = mkdtempSync(join(tmpdir(), 'loopchain-kill-points-'))
  dirs.push(dir)
  const timestamp = Date.now() * 1000 - 1_000_000
  const first = run(dir, mode, n, timestamp)
  expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' })
  expect(first.lines.at(-1)).toEqual({ killed: said })
  return { dir, timestamp, first: first.lines }
}

describe('a validator killed at a chosen instant of its writes', () => {
  it("between the two databases of a block's write: it opens on the block before, commits that height again with the same proposal, and loses nothing", async () => {
    // The genesis is the first write of the height-keyed database: the fifth is block 4's.
    const { dir, timestamp, first } = await killedRun('between-databases', 5, 'between the databases')
    expect(lastCommit(first)).toBe(3)
    const proposed = first.find((l) => l.proposal === '4/0')
    expect(proposed).toBeDefined()
    const second = await restartAndCheck(dir, timestamp, first)
    // Block 4 never reached the index: the restart opens at 3 and commits the block it proposed before.
    expect(second.find((l) => l.open !== undefined)?.open).toBe(3)
    expect(second.find((l) => l.commit === 4)?.hash).toBe(proposed?.block)
  }, 90_000)

  it('after a consensus WAL append, before what it records is sent: the restart sends that very message, and signs nothing else for its slot', async () => {
    const { dir, timestamp, first } = await killedRun('after-wal', 7, 'after a WAL append')
    const recorded = first.at(-2) as Line
    expect(recorded.recorded).toMatch(new RegExp(`^${lastCommit(first) + 1}/`))
    // Recorded, not sent: no message of that slot left before the kill.
    expect(first.some((l) => (l.proposal ?? l.vote) === recorded.recorded)).toBe(false)
    const second = await restartAndCheck(dir, timestamp, first)
    // The restart sends that very message: the same block, the same signature.
    expect(second.filter((l) => (l.proposal ?? l.vote) === recorded.recorded).map((l) => [l.block, l.signature])).toContainEqual([
      recorded.block,
      recorded.signature,
    ])
  }, 90_000)
})
