/**
 * Port blocks for tests and benchmarks that start whole networks side by side on one machine.
 * Each caller gets a block of {@link PORT_BLOCK} consecutive ports that no other caller on this
 * machine holds: the claim is a directory made atomically under the system's temp dir, holding
 * the claiming process's id. It is released when the process exits normally, and a claim whose
 * process is gone (a test worker ended by a signal, a kill -9) is taken over by the next caller.
 * Random bases in overlapping ranges collided now and then (EADDRINUSE) when test files ran in
 * parallel.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Ports in a block: nodes use base + 10·i (+1, +2), a web app base + 100. */
export const PORT_BLOCK = 200
/**
 * First port of the range: 12000–27599, below Linux's ephemeral ports (32768–60999), where the
 * OS picks local ports for outgoing connections — a block there failed now and then with
 * EADDRINUSE when a browser's or a node's connection happened to hold one of its ports. The
 * devnet's default 27600 and `bench net` (28000–32735) stay outside.
 */
export const PORT_RANGE_FIRST = 12_000
/** Blocks in the range. */
export const PORT_RANGE_BLOCKS = 78
/** A claim with no owner file yet is being made; after this long its maker died mid-claim. */
const UNOWNED_GRACE_MS = 10_000
const DIR = join(tmpdir(), 'loopchain-port-blocks')

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** True when the claim's owner is gone (so the block may be taken over). */
function abandoned(claim: string): boolean {
  let text: string
  try {
    text = readFileSync(join(claim, 'pid'), 'utf8')
  } catch {
    try {
      return Date.now() - statSync(claim).mtimeMs > UNOWNED_GRACE_MS
    } catch {
      return true
    }
  }
  const pid = Number(text)
  return !Number.isSafeInteger(pid) || pid <= 0 || (pid !== process.pid && !alive(pid))
}

function tryClaim(claim: string): boolean {
  try {
    mkdirSync(claim)
    return true
  } catch {
    if (!abandoned(claim)) return false
    // Two callers may both see the same abandoned claim: only the one whose mkdir succeeds wins.
    rmSync(claim, { recursive: true, force: true })
    try {
      mkdirSync(claim)
      return true
    } catch {
      return false
    }
  }
}

/** Blocks this process holds, given back by one exit listener (one per block tripped Node's leak warning). */
const held = new Set<number>()
let releaseOnExit = false

/** Claims a free block and returns its first port. */
export function reservePortBlock(): number {
  mkdirSync(DIR, { recursive: true })
  const start = Math.floor(Math.random() * PORT_RANGE_BLOCKS)
  for (let k = 0; k < PORT_RANGE_BLOCKS; k++) {
    const base = PORT_RANGE_FIRST + ((start + k) % PORT_RANGE_BLOCKS) * PORT_BLOCK
    const claim = join(DIR, String(base))
    if (!tryClaim(claim)) continue
    writeFileSync(join(claim, 'pid'), String(process.pid))
    held.add(base)
    if (!releaseOnExit) {
      releaseOnExit = true
      process.once('exit', () => {
        for (const b of [...held]) releasePortBlock(b)
      })
    }
    return base
  }
  throw new Error(
    `no free block of ${PORT_BLOCK} ports between ${PORT_RANGE_FIRST} and ${PORT_RANGE_FIRST + PORT_RANGE_BLOCKS * PORT_BLOCK}`,
  )
}

/** Gives a block back before the process ends. */
export function releasePortBlock(base: number): void {
  held.delete(base)
  rmSync(join(DIR, String(base)), { recursive: true, force: true })
}
