import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkKVStoreContract, prefixRange, StateTree, utf8, verifyStateProof } from '@loopchain/core'
import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_WRITE_BUFFER_SIZE, LevelKVStore, parseLevelDbStats } from '../src/index.js'

const dirs: string[] = []
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'loopchain-level-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const dec = new TextDecoder()
const keysOf = async (it: AsyncIterable<[Uint8Array, Uint8Array]>) => {
  const out: string[] = []
  for await (const [k] of it) out.push(dec.decode(k))
  return out
}

describe('LevelDB store (classic-level on disk)', () => {
  it('meets the KVStore contract that the in-memory twin meets', async () => {
    const opened: LevelKVStore[] = []
    await checkKVStoreContract(async () => {
      const s = await LevelKVStore.open(tempDir())
      opened.push(s)
      return s
    })
    for (const s of opened) await s.close()
  })

  it('a database held open elsewhere is refused with StoreError LOCKED; one that cannot be made, with OPEN_FAILED', async () => {
    const dir = tempDir()
    const s = await LevelKVStore.open(dir)
    try {
      await expect(LevelKVStore.open(dir)).rejects.toMatchObject({
        name: 'StoreError',
        code: 'LOCKED',
        message: `the database at ${dir} is in use by another process (is this node already running?)`,
      })
    } finally {
      await s.close()
    }
    // Closed, it opens again.
    await (await LevelKVStore.open(dir)).close()
    writeFileSync(join(dir, 'a-file'), 'not a directory')
    await expect(LevelKVStore.open(join(dir, 'a-file', 'db'))).rejects.toMatchObject({ name: 'StoreError', code: 'OPEN_FAILED' })
  })

  it('counts the bytes written, and what LevelDB wrote beneath them with the memtable it was given', async () => {
    // 10 MiB of puts in 160 batches: 13-byte keys, 1 KiB values of bytes that do not compress. More
    // than two of LevelDB's default 4 MiB memtables, so with that one LevelDB must have written a
    // table file before the last batch is taken (it takes no writes past a second full memtable).
    const batches = Array.from({ length: 160 }, (_, b) =>
      Array.from({ length: 64 }, (_, i) => ({
        type: 'put' as const,
        key: utf8(`k-${String(b).padStart(4, '0')}-${String(i).padStart(6, '0')}`),
        value: globalThis.crypto.getRandomValues(new Uint8Array(1024)),
      })),
    )
    const bytes = batches.flat().reduce((n, op) => n + op.key.length + op.value.length, 0)
    const stats = async (writeBufferSize?: number) => {
      const s = await LevelKVStore.open(tempDir(), writeBufferSize === undefined ? {} : { writeBufferSize })
      try {
        for (const b of batches) await s.write(b)
        await s.write([{ type: 'del', key: utf8('gone') }])
        return s.writeStats()
      } finally {
        await s.close()
      }
    }
    // The default memtable (32 MiB) holds it all: no table file written yet.
    expect(DEFAULT_WRITE_BUFFER_SIZE).toBe(32 * 1024 * 1024)
    expect(await stats()).toEqual({ writtenBytes: bytes + 4, tableBytesWritten: 0, tableBytesRead: 0 })
    // A 256 KiB one is written out some forty times over: the 10 MiB, counted in MiB per level.
    const small = await stats(256 * 1024)
    expect(small.writtenBytes).toBe(bytes + 4)
    expect(small.tableBytesWritten).toBeGreaterThanOrEqual(6 * 1024 * 1024)
    expect(small.tableBytesWritten % (1024 * 1024)).toBe(0)
  })

  it("counts LevelDB's writes from its own opening, not the last process's log written out then; and answers once closed", async () => {
    const dir = tempDir()
    const first = await LevelKVStore.open(dir, { writeBufferSize: 4 << 20 })
    // 3 MiB left in LevelDB's log, under the memtable: no table file yet.
    for (let b = 0; b < 3; b++)
      await first.write(
        Array.from({ length: 1024 }, (_, i) => ({
          type: 'put' as const,
          key: utf8(`k-${b}-${i}`),
          value: globalThis.crypto.getRandomValues(new Uint8Array(1024)),
        })),
      )
    expect(first.writeStats().tableBytesWritten).toBe(0)
    await first.close()
    // Opening again writes those 3 MiB out to a table file before anything else.
    const again = await LevelKVStore.open(dir, { writeBufferSize: 4 << 20 })
    try {
      await again.write([{ type: 'put', key: utf8('one'), value: utf8('more') }])
      expect(again.writeStats()).toEqual({ writtenBytes: 7, tableBytesWritten: 0, tableBytesRead: 0 })
    } finally {
      await again.close()
    }
    expect(again.writeStats()).toEqual({ writtenBytes: 7, tableBytesWritten: 0, tableBytesRead: 0 })
  })

  it("reads the totals of LevelDB's stats table, and nothing else of it", () => {
    const stats = [
      '                               Compactions',
      'Level  Files Size(MB) Time(sec) Read(MB) Write(MB)',
      '--------------------------------------------------',
      '  0        3        6         0        0        12',
      '  1        4        8         1       17        15',
      '  2       11       21         0        4         3',
      '',
    ].join('\n')
    expect(parseLevelDbStats(stats)).toEqual({ read: 21 * 1024 * 1024, written: 30 * 1024 * 1024 })
    expect(parseLevelDbStats('')).toEqual({ read: 0, written: 0 })
    expect(parseLevelDbStats('garbage 1 2 3 4 5\n  0 1 2 x 4 5')).toEqual({ read: 0, written: 0 })
  })

  it('gets, writes batches atomically, iterates ranges in byte order, and persists across reopen', async () => {
    const dir = tempDir()
    const s = await LevelKVStore.open(dir)
    await s.write(['a1', 'a2', 'b1', 'a3'].map((k) => ({ type: 'put' as const, key: utf8(k), value: utf8(`v-${k}`) })))
    await s.write([
      { type: 'del', key: utf8('a2') },
      { type: 'put', key: utf8('a1'), value: utf8('first') },
      { type: 'put', key: utf8('a1'), value: utf8('second') },
    ])
    expect(dec.decode((await s.get(utf8('a1'))) as Uint8Array)).toBe('second')
    expect(await s.get(utf8('a2'))).toBeUndefined()
    expect(await keysOf(s.iterate(prefixRange(utf8('a'))))).toEqual(['a1', 'a3'])
    expect(await keysOf(s.iterate({ reverse: true, limit: 2 }))).toEqual(['b1', 'a3'])
    await s.close()
    const again = await LevelKVStore.open(dir)
    expect(await keysOf(again.iterate())).toEqual(['a1', 'a3', 'b1'])
    // A batch with one malformed operation writes none of them, and the store stays usable.
    const bad = [
      { type: 'put' as const, key: utf8('c1'), value: utf8('kept?') },
      { type: 'put' as const, key: utf8('c2'), value: undefined as unknown as Uint8Array },
    ]
    await expect(again.write(bad)).rejects.toThrow()
    expect(await again.get(utf8('c1'))).toBeUndefined()
    await again.write([{ type: 'put', key: utf8('c3'), value: utf8('after') }])
    expect(await keysOf(again.iterate())).toEqual(['a1', 'a3', 'b1', 'c3'])
    await again.close()
  })

  it('writes small and large keys and values, views at offsets and empty values byte for byte, leaving the inputs as they were', async () => {
    const s = await LevelKVStore.open(tempDir())
    // Around the 64-byte line where a typed array moves from V8's heap to its own memory (and the
    // store stages copies): lengths 0, 1, 63, 64, 65 and 300, some as views inside larger buffers.
    const lengths = [0, 1, 63, 64, 65, 300]
    const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 29 + seed * 7 + 1) & 0xff)
    const asView = (b: Uint8Array) => {
      const outer = new Uint8Array(b.length + 9).fill(0xee)
      outer.set(b, 5)
      return outer.subarray(5, 5 + b.length)
    }
    const ops = lengths.flatMap((kn, i) =>
      lengths.map((vn, j) => {
        const key = Uint8Array.of(i, j, ...pattern(Math.max(0, kn - 2), i))
        const value = pattern(vn, 10 * i + j)
        return { type: 'put' as const, key: (i + j) % 2 ? asView(key) : key, value: j % 2 ? asView(value) : value }
      }),
    )
    const copies = ops.map((op) => [op.key.slice(), op.value.slice()])
    await s.write(ops)
    ops.forEach((op, n) => {
      expect(op.key).toEqual(copies[n]?.[0])
      expect(op.value).toEqual(copies[n]?.[1])
    })
    for (const [key, value] of copies) expect(await s.get(key as Uint8Array)).toEqual(value)
    let count = 0
    for await (const _ of s.iterate()) count++
    expect(count).toBe(lengths.length * lengths.length)
    await s.close()
  })

  it('a state tree committed to LevelDB reopens at its root with the same values and proofs', async () => {
    const dir = tempDir()
    const store = await LevelKVStore.open(dir)
    const tree = await StateTree.open(store)
    for (let i = 0; i < 500; i++) tree.put(utf8(`account-${i}`), utf8(`balance-${i * 7}`))
    const { root, ops } = await tree.commit()
    await store.write(ops)
    await store.close()

    const reopened = await LevelKVStore.open(dir)
    const tree2 = await StateTree.open(reopened, root)
    expect(dec.decode((await tree2.get(utf8('account-42'))) as Uint8Array)).toBe('balance-294')
    const present = await tree2.prove(utf8('account-7'))
    expect(dec.decode(present.value as Uint8Array)).toBe('balance-49')
    verifyStateProof(root, utf8('account-7'), utf8('balance-49'), present.proof)
    const absent = await tree2.prove(utf8('account-9999'))
    expect(absent.value).toBeUndefined()
    verifyStateProof(root, utf8('account-9999'), undefined, absent.proof)
    expect(() => verifyStateProof(root, utf8('account-7'), utf8('balance-50'), present.proof)).toThrow(/does not hash/)
    await reopened.close()
  })

  it('kill -9 in the middle of writing leaves only whole batches', async () => {
    const dir = tempDir()
    const script = fileURLToPath(new URL('./fixtures/batch-writer.ts', import.meta.url))
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] })
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve())
        child.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)))
      })
      // Let it write for a while, then kill it without warning.
      await new Promise((r) => setTimeout(r, 300 + round * 200))
      child.kill('SIGKILL')
      await new Promise((r) => child.once('exit', r))

      const s = await LevelKVStore.open(dir)
      const last = Number(dec.decode((await s.get(utf8('last'))) as Uint8Array))
      expect(last).toBeGreaterThan(0)
      // Every batch up to 'last' is whole, and nothing of batch last+1 is visible.
      for (const n of [0, Math.floor(last / 2), last]) {
        expect(await keysOf(s.iterate(prefixRange(utf8(`b${n}:`))))).toHaveLength(100)
      }
      expect(await keysOf(s.iterate(prefixRange(utf8(`b${last + 1}:`))))).toHaveLength(0)
      await s.close()
    }
  })
})
