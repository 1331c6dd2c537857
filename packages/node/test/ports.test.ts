import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { PORT_BLOCK, PORT_RANGE_BLOCKS, PORT_RANGE_FIRST, releasePortBlock, reservePortBlock } from '../src/index.js'

const END = PORT_RANGE_FIRST + PORT_RANGE_BLOCKS * PORT_BLOCK

const DIR = join(tmpdir(), 'loopchain-port-blocks')

describe('port blocks for side-by-side networks', () => {
  it('never hands the same block out twice while it is held, and marks the claim on disk', () => {
    const bases = Array.from({ length: 20 }, () => reservePortBlock())
    try {
      expect(new Set(bases).size).toBe(bases.length)
      for (const b of bases) {
        expect(b % PORT_BLOCK).toBe(0)
        expect(readFileSync(join(DIR, String(b), 'pid'), 'utf8')).toBe(String(process.pid))
      }
    } finally {
      for (const b of bases) releasePortBlock(b)
    }
    for (const b of bases) expect(existsSync(join(DIR, String(b)))).toBe(false)
  })

  it('gives back every block a process still holds when it exits, with one exit listener', () => {
    const ports = fileURLToPath(new URL('../src/testing/ports.ts', import.meta.url))
    const script = `import { reservePortBlock } from ${JSON.stringify(ports)}
const bases = Array.from({ length: 15 }, () => reservePortBlock())
process.stdout.write(JSON.stringify({ bases, listeners: process.listenerCount('exit') }))`
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' })
    expect(child.status).toBe(0)
    const out = JSON.parse(child.stdout) as { bases: number[]; listeners: number }
    expect(out.bases).toHaveLength(15)
    expect(out.listeners).toBeLessThanOrEqual(2) // ours, and at most one of tsx's
    expect(child.stderr).not.toContain('MaxListenersExceededWarning')
    for (const b of out.bases) expect(existsSync(join(DIR, String(b)))).toBe(false)
  })

  it('takes over claims left by processes that are gone (workers ended by a signal, kill -9)', () => {
    // A process that has exited: its pid is free (the OS does not reuse it this fast).
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    }).stdout
    mkdirSync(DIR, { recursive: true })
    for (let base = PORT_RANGE_FIRST; base < END; base += PORT_BLOCK) {
      const claim = join(DIR, String(base))
      try {
        mkdirSync(claim)
      } catch {
        continue // held by a test running beside this one
      }
      writeFileSync(join(claim, 'pid'), dead)
    }
    // Every block of the range is now claimed: by the dead process, or by a test running beside.
    expect(readdirSync(DIR).filter((n) => Number(n) >= PORT_RANGE_FIRST && Number(n) < END).length).toBe(PORT_RANGE_BLOCKS)
    const bases = Array.from({ length: 20 }, () => reservePortBlock())
    try {
      expect(new Set(bases).size).toBe(20)
      for (const b of bases) expect(readFileSync(join(DIR, String(b), 'pid'), 'utf8')).toBe(String(process.pid))
    } finally {
      for (const b of bases) releasePortBlock(b)
      for (const name of readdirSync(DIR)) {
        const claim = join(DIR, name)
        try {
          if (readFileSync(join(claim, 'pid'), 'utf8') === dead) rmSync(claim, { recursive: true, force: true })
        } catch {}
      }
    }
  })
})
