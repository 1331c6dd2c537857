/**
 * Port blocks for tests and benchmarks that start whole networks side by side on one machine.
 * Each caller gets a block of {@link PORT_BLOCK} consecutive ports that no other caller on this
 * machine holds: the claim is a directory made atomically under the system's temp dir, released
 * when the process exits (a claim left by a killed process expires after two hours). Random
 * bases in overlapping ranges collided now and then (EADDRINUSE) when test files ran in parallel.
 */
import { mkdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Ports in a block: nodes use base + 10·i (+1, +2), a web app base + 100. */
export const PORT_BLOCK = 200
const FIRST = 30_000
const BLOCKS = 125 // 30000–54999; benches and the devnet's 27600 stay outside
const STALE_MS = 2 * 60 * 60 * 1000
const DIR = join(tmpdir(), 'loopchain-port-blocks')

/** Claims a free block and returns its first port. */
export function reservePortBlock(): number {
  mkdirSync(DIR, { recursive: true })
  const start = Math.floor(Math.random() * BLOCKS)
  for (let k = 0; k < BLOCKS; k++) {
    const base = FIRST + ((start + k) % BLOCKS) * PORT_BLOCK
    const claim = join(DIR, String(base))
    try {
      mkdirSync(claim)
    } catch {
      try {
        if (Date.now() - statSync(claim).mtimeMs < STALE_MS) continue
        rmSync(claim, { recursive: true, force: true })
        mkdirSync(claim)
      } catch {
        continue
      }
    }
    process.once('exit', () => rmSync(claim, { recursive: true, force: true }))
    return base
  }
  throw new Error(`no free block of ${PORT_BLOCK} ports between ${FIRST} and ${FIRST + BLOCKS * PORT_BLOCK}`)
}
