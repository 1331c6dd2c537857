/**
 * `loopchain devnet` killed with -9 cannot stop its nodes: they stop on their own (each was started
 * with `--exit-with-parent`, and its stdout, the devnet's pipe, is closed), release their databases
 * and ports, and the next devnet goes on from the height they reached. Ctrl-C waits for the nodes,
 * up to 20 s; a second Ctrl-C does not wait.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { reservePortBlock } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { waitFor } from '../support/cli-network.js'
import { alive, childrenOf, runLoopchain } from '../support/devnet.js'

const CLI = fileURLToPath(new URL('../../apps/node/src/main.ts', import.meta.url))
const REPO = fileURLToPath(new URL('../../', import.meta.url))
const BIN = fileURLToPath(new URL('../../apps/node/bin/loopchain.mjs', import.meta.url))
const BASE = reservePortBlock()
const dir = mkdtempSync(join(tmpdir(), 'loopchain-devnet-parent-'))
const started: ChildProcess[] = []
/** Node processes started by a starter of this test: killed at the end should one outlive it. */
const nodePids: number[] = []

afterAll(() => {
  for (const p of started) for (const pid of p.pid ? childrenOf(p.pid) : []) if (alive(pid)) process.kill(pid, 'SIGKILL')
  for (const p of started) p.kill('SIGKILL')
  for (const pid of nodePids) if (alive(pid)) process.kill(pid, 'SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

/**
 * `loopchain devnet --no-web` on this test's directory, through the installed command and from
 * another working directory (its nodes must find tsx from the command's place, not from there);
 * `out()` is everything it and its nodes printed.
 */
function devnet(extra: string[] = []): { p: ChildProcess; out: () => string } {
  let out = ''
  const p = spawn(process.execPath, [BIN, 'devnet', '--no-web', '--dir', dir, '--base-port', String(BASE), ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: tmpdir(),
  })
  p.stdout?.on('data', (d) => {
    out += d
  })
  // The nodes' stderr is the devnet's: this pipe stays open after the devnet is killed.
  p.stderr?.on('data', (d) => {
    out += d
  })
  started.push(p)
  return { p, out: () => out }
}

const readyHeights = (out: string): number[] => [...out.matchAll(/ready at height (\d+)/g)].map((m) => Number(m[1]))
const lastBlock = (out: string): number => Math.max(0, ...[...out.matchAll(/^block (\d+) committed$/gm)].map((m) => Number(m[1])))

describe('loopchain devnet and its node processes', () => {
  // One validator and the observer, an empty block every 300 ms: heights come quickly.
  beforeAll(() =>
    runLoopchain(['init', '--validators', '1', '--out', dir, '--base-port', String(BASE), '--empty-block-interval-ms', '300']),
  )

  it('killed with -9, its nodes stop on their own; the next devnet starts them where they were; Ctrl-C waits for them', async () => {
    const first = devnet()
    await waitFor(async () => (readyHeights(first.out()).length === 2 ? true : undefined), 120_000, `two nodes ready\n${first.out()}`)
    const nodes = childrenOf(first.p.pid as number)
    expect(nodes).toHaveLength(2)
    await waitFor(async () => (lastBlock(first.out()) >= 3 ? true : undefined), 60_000, `block 3\n${first.out()}`)
    first.p.kill('SIGKILL')
    const reached = lastBlock(first.out())

    // Nobody is left to stop them: they see it and stop, as on Ctrl-C (not by a crash).
    await waitFor(async () => (nodes.every((pid) => !alive(pid)) ? true : undefined), 30_000, `the nodes to exit\n${first.out()}`)
    expect(first.out()).toMatch(/the process that started this node has exited|standard output is closed/)
    expect(first.out()).not.toMatch(/Error: write EPIPE|Uncaught|\n\s+at [^\n]*node:internal/)

    // Their databases and ports are free, and what they committed is there.
    const second = devnet()
    await waitFor(
      async () => (readyHeights(second.out()).length === 2 ? true : undefined),
      120_000,
      `two nodes ready again\n${second.out()}`,
    )
    expect(second.out()).not.toMatch(/in use|cannot start/)
    for (const h of readyHeights(second.out())) expect(h).toBeGreaterThanOrEqual(reached - 1)
    expect(Math.max(...readyHeights(second.out()))).toBeGreaterThanOrEqual(reached)
    const again = childrenOf(second.p.pid as number)
    expect(again).toHaveLength(2)

    // Each node's whole log is in its directory, JSON lines: this run's, and the run before's.
    const logOf = (file: string) =>
      readFileSync(join(dir, 'node-0', file), 'utf8')
        .split('\n')
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as { msg?: string; height?: number }]
          } catch {
            return [] // the last line of a devnet killed with -9 may be cut short
          }
        })
    const before = logOf('node.log.1')
    expect(before.filter((j) => j.msg === 'node ready')).toHaveLength(1)
    expect(before.some((j) => j.msg === 'block committed' && (j.height ?? 0) >= 3)).toBe(true)
    await waitFor(
      async () => (logOf('node.log').some((j) => j.msg === 'node ready') ? true : undefined),
      10_000,
      'the ready line in node.log',
    )
    expect(logOf('node.log').some((j) => j.msg === 'block committed' && (j.height ?? 0) < 3)).toBe(false)

    // Ctrl-C as a terminal sends it under npm: to the devnet and its nodes at once (one process
    // group), and npm passes it to the devnet again. One request to stop: the devnet exits once its
    // nodes have stopped and closed their databases, not before, and none is killed.
    const exited = new Promise<number | null>((r) => second.p.once('exit', (code) => r(code)))
    second.p.kill('SIGINT')
    for (const pid of again) process.kill(pid, 'SIGINT')
    second.p.kill('SIGINT')
    expect(await exited).toBe(0)
    for (const pid of again) expect(alive(pid)).toBe(false)
    expect(second.out()).toMatch(/node-0 stopped/)
    expect(second.out()).toMatch(/observer stopped/)
    expect(second.out()).not.toMatch(/again: the node exits now|did not stop within/)
  }, 300_000)

  it('Ctrl-C with a node that does not stop: killed after --stop-wait, or at once on a second Ctrl-C; exit 1 either way', async () => {
    // A node stopped with SIGSTOP hears no SIGTERM: the devnet has to kill it.
    const stuck = async (extra: string[] = []) => {
      const d = devnet(extra)
      await waitFor(async () => (readyHeights(d.out()).length === 2 ? true : undefined), 120_000, `two nodes ready\n${d.out()}`)
      const nodes = childrenOf(d.p.pid as number)
      expect(nodes).toHaveLength(2)
      process.kill(nodes[0] as number, 'SIGSTOP')
      const exited = new Promise<number | null>((r) => d.p.once('exit', (code) => r(code)))
      const stopAsked = Date.now()
      d.p.kill('SIGINT')
      return { d, nodes, exited, stopAsked }
    }

    const twice = await stuck()
    await new Promise((r) => setTimeout(r, 3_000))
    // Still waiting for the stuck node, which is still there; the other has stopped.
    expect(twice.d.p.exitCode).toBe(null)
    expect(alive(twice.nodes[0] as number)).toBe(true)
    await waitFor(async () => (alive(twice.nodes[1] as number) ? undefined : true), 30_000, `the other node to stop\n${twice.d.out()}`)
    twice.d.p.kill('SIGINT')
    expect(await twice.exited).toBe(1)
    expect(Date.now() - twice.stopAsked).toBeLessThan(15_000)
    await waitFor(async () => (alive(twice.nodes[0] as number) ? undefined : true), 10_000, 'the stuck node to be killed')

    // Once: killed when the wait runs out (6 s here instead of the default 20, which the first
    // devnet's second Ctrl-C cut short).
    const once = await stuck(['--stop-wait', '6'])
    expect(await once.exited).toBe(1)
    expect(Date.now() - once.stopAsked).toBeGreaterThanOrEqual(5_900)
    expect(once.d.out()).toMatch(/node-0 did not stop within 6 s: killed|observer did not stop within 6 s: killed/)
    await waitFor(async () => (once.nodes.every((pid) => !alive(pid)) ? true : undefined), 10_000, 'both nodes gone')
  }, 300_000)

  it('--exit-with-parent: a node whose logs go to a file stops when its starter is killed, before or after it is up', async () => {
    const config = join(dir, 'node-0', 'config.json')
    /** A starter process that runs the node, its stdout and stderr to `log`, and waits: the node's pid. */
    const starter = async (log: string) => {
      const script = [
        "const { spawn } = require('node:child_process')",
        "const fd = require('node:fs').openSync(process.argv[1], 'w')",
        "const c = spawn(process.execPath, ['--import', 'tsx', process.argv[2], 'start', '--config', process.argv[3], '--exit-with-parent'], { stdio: ['ignore', fd, fd], env: { ...process.env, LOOPCHAIN_PARENT_PID: String(process.pid) } })",
        'console.log(c.pid)',
        'setInterval(() => {}, 1000)',
      ].join('\n')
      const p = spawn(process.execPath, ['-e', script, log, CLI, config], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] })
      started.push(p)
      const pid = await new Promise<number>((r) => p.stdout?.once('data', (d) => r(Number(String(d).trim()))))
      nodePids.push(pid)
      return { p, pid }
    }
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '')

    // Killed once the node is up: the node stops as on Ctrl-C. Its stdout is a file, so nothing
    // else (no closed pipe) could tell it.
    const upLog = join(dir, 'start-up.log')
    const up = await starter(upLog)
    await waitFor(async () => (read(upLog).includes('"node ready"') ? true : undefined), 120_000, `node ready\n${read(upLog)}`)
    up.p.kill('SIGKILL')
    await waitFor(async () => (alive(up.pid) ? undefined : true), 30_000, `the node to exit\n${read(upLog)}`)
    expect(read(upLog)).toContain('the process that started this node has exited; the node stops')
    expect(read(upLog)).toContain('"msg":"stopping"')
    expect(read(upLog)).not.toContain('standard output')

    // Killed at once, before the node has even loaded its code (a second or more): the pid it was
    // given tells it, where the parent it would find then is already another.
    const earlyLog = join(dir, 'start-early.log')
    const early = await starter(earlyLog)
    early.p.kill('SIGKILL')
    await waitFor(async () => (alive(early.pid) ? undefined : true), 60_000, `the node to exit\n${read(earlyLog)}`)
    expect(read(earlyLog)).toContain('the process that started this node has exited; the node stops')
  }, 300_000)

  it('every node killed: the devnet says so and exits 1; flags for a new network on an existing one are named as unused', async () => {
    const d = devnet(['--validators', '3'])
    await waitFor(async () => (readyHeights(d.out()).length === 2 ? true : undefined), 120_000, `two nodes ready\n${d.out()}`)
    // The directory holds the network of one validator made at the start: the flag is not taken silently.
    expect(d.out()).toMatch(/holds a network already, started as it was made: --validators and --base-port apply to a new one/)
    const nodes = childrenOf(d.p.pid as number)
    expect(nodes).toHaveLength(2)
    const exited = new Promise<number | null>((r) => d.p.once('exit', (code) => r(code)))
    process.kill(nodes[0] as number, 'SIGKILL')
    // One node gone: the devnet goes on, and says how to restart it.
    await waitFor(
      async () => (/(node-0|observer) exited \(SIGKILL\); its log: \S+node\.log\. To restart it/.test(d.out()) ? true : undefined),
      30_000,
      d.out(),
    )
    await new Promise((r) => setTimeout(r, 500))
    expect(d.p.exitCode).toBe(null)
    process.kill(nodes[1] as number, 'SIGKILL')
    expect(await exited).toBe(1)
    expect(d.out()).toMatch(/devnet: every node has exited, none cleanly/)
  }, 300_000)
})
