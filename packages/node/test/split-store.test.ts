import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { concatBytes, utf8 } from '@loopchain/core'
import { afterEach, describe, expect, it } from 'vitest'
import { HEIGHT_DB_DIR, HEIGHT_KEYED, LevelKVStore, SplitKVStore } from '../src/index.js'
import { be64 } from '../src/storage/chain-store.js'

const dirs: string[] = []
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'loopchain-split-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const height = (h: number, tail: Uint8Array) => concatBytes(Uint8Array.of(HEIGHT_KEYED), utf8('chain\0'), be64(h), tail)
const indexed = (s: string) => utf8(`chain\0${s}`)
const keysOf = async (it: AsyncIterable<[Uint8Array, Uint8Array]>) => {
  const out: string[] = []
  for await (const [k] of it) out.push(Buffer.from(k).toString('hex'))
  return out
}

/** The compactions LevelDB's log at `dir` records (trivial moves are not compactions). */
const compactions = (dir: string) => readFileSync(join(dir, 'LOG'), 'utf8').match(/Compacting \d+@\d+/g)?.length ?? 0

describe('SplitKVStore (two LevelDB databases on disk)', () => {
  it('keeps records keyed by height in their own database and the rest in the data directory’s', async () => {
    const dir = tempDir()
    const s = await SplitKVStore.open(dir)
    const a = height(7, Uint8Array.of(0x62))
    const b = indexed('H')
    await s.write([
      { type: 'put', key: a, value: Uint8Array.of(1) },
      { type: 'put', key: b, value: Uint8Array.of(2) },
    ])
    expect(await s.get(a)).toEqual(Uint8Array.of(1))
    expect(s.getSync(b)).toEqual(Uint8Array.of(2))
    await s.write([{ type: 'del', key: a }])
    expect(await s.get(a)).toBeUndefined()
    await s.write([{ type: 'put', key: a, value: Uint8Array.of(3) }])
    await s.close()

    const index = await LevelKVStore.open(dir)
    const heights = await LevelKVStore.open(join(dir, HEIGHT_DB_DIR))
    expect([await index.get(a), await index.get(b)]).toEqual([undefined, Uint8Array.of(2)])
    expect([await heights.get(a), await heights.get(b)]).toEqual([Uint8Array.of(3), undefined])
    await Promise.all([index.close(), heights.close()])
  })

  it('refuses a data directory whose index has records but no height-keyed database, and creates none', async () => {
    const dir = tempDir()
    // What an earlier storage format left: one LevelDB in the data directory.
    const old = await LevelKVStore.open(dir)
    await old.write([{ type: 'put', key: indexed('H'), value: Uint8Array.of(1) }])
    await old.close()
    await expect(SplitKVStore.open(dir)).rejects.toMatchObject({ name: 'StoreError', code: 'OPEN_FAILED' })
    await expect(SplitKVStore.open(dir)).rejects.toThrow(
      /no height-keyed database .* before storage format 4, .*--fresh\). A validator.s consensus WAL stays in the old directory: .*vote twice/,
    )
    expect(existsSync(join(dir, HEIGHT_DB_DIR))).toBe(false)
    // It let the index go: the directory opens again as it was.
    const again = await LevelKVStore.open(dir)
    expect(await again.get(indexed('H'))).toEqual(Uint8Array.of(1))
    await again.close()
  })

  it('scans a range on either side in key order, and refuses a range that could span both', async () => {
    const s = await SplitKVStore.open(tempDir())
    await s.write([3, 1, 2].flatMap((h) => [{ type: 'put' as const, key: height(h, Uint8Array.of(0x62)), value: Uint8Array.of(h) }]))
    await s.write(['t2', 't1', 'u'].map((k) => ({ type: 'put' as const, key: indexed(k), value: Uint8Array.of(0) })))
    const hex = (k: Uint8Array) => Buffer.from(k).toString('hex')
    expect(await keysOf(s.iterate({ gte: height(2, new Uint8Array()), lt: height(4, new Uint8Array()) }))).toEqual([
      hex(height(2, Uint8Array.of(0x62))),
      hex(height(3, Uint8Array.of(0x62))),
    ])
    expect(
      await keysOf(s.iterate({ gte: Uint8Array.of(HEIGHT_KEYED), lt: Uint8Array.of(HEIGHT_KEYED + 1), reverse: true, limit: 1 })),
    ).toEqual([hex(height(3, Uint8Array.of(0x62)))])
    expect(await keysOf(s.iterate({ gte: indexed('t'), lt: indexed('u') }))).toEqual([hex(indexed('t1')), hex(indexed('t2'))])
    expect(await keysOf(s.iterate({ gte: indexed('t') }))).toHaveLength(3)
    for (const range of [
      {},
      { lt: indexed('z') },
      { gte: Uint8Array.of(0), lt: indexed('z') },
      { gte: height(1, new Uint8Array()), lt: indexed('z') },
    ]) {
      expect(() => s.iterate(range)).toThrow(RangeError)
    }
    await s.close()
  })

  it('moves height-keyed files down LevelDB’s levels without merging them, where records keyed by hash are merged', async () => {
    // Tree-node-like records (~100 bytes under a hash) in many small batches, with a 64 KiB memtable
    // so that LevelDB writes dozens of table files: once keyed by height first, once by hash alone.
    const byHeight = tempDir()
    const byHash = tempDir()
    const opts = { writeBufferSize: 64 * 1024, sync: false }
    const h = await LevelKVStore.open(byHeight, opts)
    const x = await LevelKVStore.open(byHash, opts)
    for (let block = 1; block <= 300; block++) {
      const records = Array.from({ length: 40 }, () => ({ hash: randomBytes(32), value: randomBytes(70) }))
      await h.write(records.map((r) => ({ type: 'put' as const, key: height(block, r.hash), value: r.value })))
      await x.write(records.map((r) => ({ type: 'put' as const, key: concatBytes(indexed('sn'), r.hash), value: r.value })))
    }
    // Compactions run on LevelDB's own thread: give them time to finish before closing.
    await new Promise((r) => setTimeout(r, 1000))
    await Promise.all([h.close(), x.close()])
    expect(compactions(byHash)).toBeGreaterThan(0)
    expect(compactions(byHeight)).toBe(0)
  })
})
