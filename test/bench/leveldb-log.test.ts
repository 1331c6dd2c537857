import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { describe, expect, it } from 'vitest'
import { compactionsIn, levelZeroCompactionsBetween } from './leveldb-log.js'

const LOG = `2026/12/06-11:07:37.298535 7fb3c4fff6c0 Level-0 table #141: started
2026/12/06-11:07:38.314176 7fb3c4fff6c0 Compacting 4@0 + 6@1 files
2026/12/06-11:07:41.573997 7fb3c4fff6c0 Compacted 4@0 + 6@1 files => 84109054 bytes
2026/12/06-11:07:47.277186 7fb3c4fff6c0 Compacting 1@1 + 2@2 files
`

describe('LevelDB log reading for bench net', () => {
  it('finds each compaction begun, its level, its input files and its local time', () => {
    const c = compactionsIn(LOG)
    expect(c).toEqual([
      { atMs: new Date(2026, 11, 6, 11, 7, 38, 314).getTime(), level: 0, files: 10 },
      { atMs: new Date(2026, 11, 6, 11, 7, 47, 277).getTime(), level: 1, files: 3 },
    ])
  })

  it('counts only level-0 compactions begun inside the span, and nothing where there is no log', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-leveldb-log-'))
    try {
      writeFileSync(join(dir, 'LOG'), LOG)
      const at = new Date(2026, 11, 6, 11, 7, 38, 314).getTime()
      expect(levelZeroCompactionsBetween(dir, at - 1000, at + 1)).toBe(1)
      expect(levelZeroCompactionsBetween(dir, at + 1, at + 60_000)).toBe(0)
      expect(levelZeroCompactionsBetween(join(dir, 'absent'), 0, Number.MAX_SAFE_INTEGER)).toBeUndefined()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("reads the log a real LevelDB writes: a compaction it ran shows up in this process's clock", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-leveldb-log-'))
    const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view', writeBufferSize: 64 * 1024 })
    try {
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
      const all = compactionsIn(readFileSync(join(dir, 'LOG'), 'utf8'))
      // 8 MB through a 64 KiB memtable: level-0 files pile up and are compacted into level 1.
      expect(all.filter((c) => c.level === 0).length).toBeGreaterThan(0)
      for (const c of all) {
        expect(c.atMs).toBeGreaterThanOrEqual(from)
        expect(c.atMs).toBeLessThanOrEqual(Date.now() + 1000)
      }
      expect(levelZeroCompactionsBetween(dir, from, Date.now() + 1000)).toBe(all.filter((c) => c.level === 0).length)
    } finally {
      if (db.status === 'open') await db.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
