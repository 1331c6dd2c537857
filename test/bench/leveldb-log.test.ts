import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { compactionsIn, levelZeroCompactionStarts } from './leveldb-log.js'

const LOG = `2026/12/06-11:07:37.298535 7fb3c4fff6c0 Level-0 table #141: started
2026/12/06-11:07:38.314176 7fb3c4fff6c0 Compacting 4@0 + 6@1 files
2026/12/06-11:07:41.573997 7fb3c4fff6c0 Compacted 4@0 + 6@1 files => 84109054 bytes
2026/12/06-11:07:47.277186 7fb3c4fff6c0 Compacting 1@1 + 2@2 files
`

/**
 * Run in a child process under a time zone far from UTC, so that reading LevelDB's local
 * timestamps as UTC would put every compaction hours away: a real database with a 64 KiB memtable
 * takes 8 MB of random keys and a full compaction, and the child prints what the parser found.
 */
const CHILD = `
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from ${JSON.stringify(createRequire(import.meta.url).resolve('classic-level'))}
import { compactionsIn, levelZeroCompactionStarts } from ${JSON.stringify(fileURLToPath(new URL('./leveldb-log.ts', import.meta.url)))}
const dir = mkdtempSync(join(tmpdir(), 'loopchain-leveldb-log-'))
const db = new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view', writeBufferSize: 64 * 1024 })
const from = Date.now() - 1000
await db.open()
const value = new Uint8Array(1000)
for (let b = 0; b < 40; b++) {
  const batch = db.batch()
  for (let i = 0; i < 200; i++) batch.put(globalThis.crypto.getRandomValues(new Uint8Array(32)), value)
  await batch.write()
}
await db.compactRange(new Uint8Array([0]), new Uint8Array(33).fill(0xff))
await db.close()
const to = Date.now() + 1000
const all = compactionsIn(readFileSync(join(dir, 'LOG'), 'utf8'))
console.log(JSON.stringify({ from, to, offsetMin: new Date().getTimezoneOffset(), all, counted: levelZeroCompactionStarts(dir) }))
rmSync(dir, { recursive: true, force: true })
`

describe('LevelDB log reading for bench net', () => {
  it('finds each compaction begun, its level, its input files and its local time', () => {
    const c = compactionsIn(LOG)
    expect(c).toEqual([
      { atMs: new Date(2026, 11, 6, 11, 7, 38, 314).getTime(), level: 0, files: 10 },
      { atMs: new Date(2026, 11, 6, 11, 7, 47, 277).getTime(), level: 1, files: 3 },
    ])
  })

  it('gives the start of each level-0 compaction only, and nothing where there is no log', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-leveldb-log-'))
    try {
      writeFileSync(join(dir, 'LOG'), LOG)
      const at = new Date(2026, 11, 6, 11, 7, 38, 314).getTime()
      expect(levelZeroCompactionStarts(dir)).toEqual([at])
      expect(levelZeroCompactionStarts(join(dir, 'absent'))).toBeUndefined()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reads the log a real LevelDB writes, in a time zone nine hours from UTC', () => {
    // LevelDB stamps its log through the C library's time zone data, JavaScript through ICU's: both
    // must know the zone, or the child would silently run in UTC.
    if (!existsSync('/usr/share/zoneinfo/Asia/Seoul'))
      throw new Error('this test needs the system time zone data (Debian: apt-get install tzdata)')
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-leveldb-log-child-'))
    try {
      const script = join(dir, 'child.mts')
      writeFileSync(script, CHILD)
      const out = execFileSync(process.execPath, ['--import', 'tsx', script], {
        env: { ...process.env, TZ: 'Asia/Seoul' },
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        encoding: 'utf8',
      })
      const r = JSON.parse(out.trim().split('\n').pop() as string) as {
        from: number
        to: number
        offsetMin: number
        all: { atMs: number; level: number }[]
        counted: number[]
      }
      expect(r.offsetMin).toBe(-540)
      // 8 MB through a 64 KiB memtable: level-0 files pile up and are compacted into level 1.
      const l0 = r.all.filter((c) => c.level === 0)
      expect(l0.length).toBeGreaterThan(0)
      for (const c of r.all) {
        expect(c.atMs).toBeGreaterThanOrEqual(r.from)
        expect(c.atMs).toBeLessThanOrEqual(r.to)
      }
      expect(r.counted).toEqual(l0.map((c) => c.atMs))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
