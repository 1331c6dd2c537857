import { describe, expect, it } from 'vitest'
import { type KVStore, prefixRange, prefixUpperBound, type WriteOp } from '../../src/state/kv-store.js'
import { checkKVStoreContract } from '../../src/state/kv-store-contract.js'
import { binaryStringToBytes, bytesToBinaryString, MemoryKVStore } from '../../src/state/memory-store.js'

const b = (...xs: number[]) => Uint8Array.from(xs)

async function collect(it: AsyncIterable<[Uint8Array, Uint8Array]>): Promise<number[][]> {
  const out: number[][] = []
  for await (const [k] of it) out.push([...k])
  return out
}

describe('checkKVStoreContract', () => {
  it('passes MemoryKVStore', async () => {
    await checkKVStoreContract(() => new MemoryKVStore())
  })

  it('catches a store that ignores the lt bound', async () => {
    const leaky = (): KVStore => {
      const m = new MemoryKVStore()
      return { get: (k) => m.get(k), write: (ops) => m.write(ops), iterate: (o = {}) => m.iterate({ ...o, lt: undefined }) }
    }
    await expect(checkKVStoreContract(leaky)).rejects.toThrow(/lt exclusive/)
  })

  it('catches a store that hands out its own buffers', async () => {
    const aliasing = (): KVStore => {
      const m = new Map<string, Uint8Array>()
      return {
        get: async (k) => m.get(k.join()),
        write: async (ops) => {
          for (const op of ops) op.type === 'put' ? m.set(op.key.join(), op.value) : m.delete(op.key.join())
        },
        iterate: () => new MemoryKVStore().iterate(),
      }
    }
    await expect(checkKVStoreContract(aliasing)).rejects.toThrow(/own copy/)
  })
})

describe('MemoryKVStore', () => {
  it('returns what was put and undefined for what was deleted or never put', async () => {
    const s = new MemoryKVStore()
    await s.write([
      { type: 'put', key: b(1), value: b(10) },
      { type: 'put', key: b(2), value: b(20) },
    ])
    await s.write([{ type: 'del', key: b(1) }])
    expect(await s.get(b(1))).toBeUndefined()
    expect(await s.get(b(2))).toEqual(b(20))
    expect(await s.get(b(3))).toBeUndefined()
    expect(s.size).toBe(1)
  })

  it('applies a batch in order, so a later op on the same key wins', async () => {
    const s = new MemoryKVStore()
    await s.write([
      { type: 'put', key: b(1), value: b(1) },
      { type: 'del', key: b(1) },
      { type: 'put', key: b(2), value: b(1) },
      { type: 'put', key: b(2), value: b(2) },
    ])
    expect(await s.get(b(1))).toBeUndefined()
    expect(await s.get(b(2))).toEqual(b(2))
  })

  it('applies nothing from a batch holding a malformed op', async () => {
    const s = new MemoryKVStore()
    const bad = [
      { type: 'put', key: b(1), value: b(1) },
      { type: 'put', key: b(2) },
    ] as unknown as WriteOp[]
    await expect(s.write(bad)).rejects.toThrow(TypeError)
    expect(await s.get(b(1))).toBeUndefined()
  })

  it('copies values in and out, so callers cannot mutate stored bytes', async () => {
    const s = new MemoryKVStore()
    const v = b(1, 2, 3)
    await s.write([{ type: 'put', key: b(9), value: v }])
    v[0] = 99
    const got = (await s.get(b(9))) as Uint8Array
    expect(got).toEqual(b(1, 2, 3))
    got[1] = 99
    expect(await s.get(b(9))).toEqual(b(1, 2, 3))
  })

  it('iterates in unsigned byte order over gte/lt ranges, reversed and limited', async () => {
    const s = new MemoryKVStore()
    const keys = [b(0xff), b(1), b(1, 0), b(0x80), b(0), b(2, 5), b(0x7f, 0xff)]
    await s.write(keys.map((key) => ({ type: 'put' as const, key, value: key })))
    expect(await collect(s.iterate())).toEqual([[0], [1], [1, 0], [2, 5], [0x7f, 0xff], [0x80], [0xff]])
    expect(await collect(s.iterate({ gte: b(1), lt: b(0x80) }))).toEqual([[1], [1, 0], [2, 5], [0x7f, 0xff]])
    expect(await collect(s.iterate({ gte: b(1), lt: b(0x80), reverse: true, limit: 2 }))).toEqual([
      [0x7f, 0xff],
      [2, 5],
    ])
    expect(await collect(s.iterate({ limit: 0 }))).toEqual([])
    // Order is rebuilt after new keys and after deletions.
    await s.write([
      { type: 'put', key: b(0x10), value: b() },
      { type: 'del', key: b(1, 0) },
    ])
    expect(await collect(s.iterate({ gte: b(1), lt: b(0x20) }))).toEqual([[1], [2, 5], [0x10]])
  })

  it('keeps every live value through overwrites, deletes and arena compaction', async () => {
    const s = new MemoryKVStore()
    const val = (i: number, round: number) => Uint8Array.from({ length: 100 + (i % 50) }, (_, j) => (i + j + round) & 0xff)
    const key = (i: number) => Uint8Array.of(i >> 8, i & 0xff)
    for (let round = 0; round < 4; round++) {
      await s.write(Array.from({ length: 2000 }, (_, i) => ({ type: 'put' as const, key: key(i), value: val(i, round) })))
    }
    await s.write(Array.from({ length: 1000 }, (_, i) => ({ type: 'del' as const, key: key(2 * i) })))
    expect(s.size).toBe(1000)
    for (let i = 0; i < 2000; i++) expect(await s.get(key(i))).toEqual(i % 2 === 0 ? undefined : val(i, 3))
    const seen = await collect(s.iterate())
    expect(seen).toHaveLength(1000)
    expect(seen[0]).toEqual([0, 1])
  })

  it('iterates over a snapshot: writes during iteration do not appear', async () => {
    const s = new MemoryKVStore()
    await s.write([1, 2, 3].map((x) => ({ type: 'put' as const, key: b(x), value: b(x) })))
    const seen: number[] = []
    for await (const [k, v] of s.iterate()) {
      seen.push(k[0] as number, v[0] as number)
      await s.write([{ type: 'put', key: b(0, k[0] as number), value: b() }])
    }
    expect(seen).toEqual([1, 1, 2, 2, 3, 3])
  })

  it('scans exactly one namespace with prefixRange', async () => {
    const s = new MemoryKVStore()
    await s.write(
      [b(0x73), b(0x73, 0), b(0x73, 0xff, 0xff), b(0x74), b(0x72, 0xff)].map((key) => ({ type: 'put' as const, key, value: key })),
    )
    expect(await collect(s.iterate(prefixRange(b(0x73))))).toEqual([[0x73], [0x73, 0], [0x73, 0xff, 0xff]])
    expect(prefixUpperBound(b(1, 0xff))).toEqual(b(2))
    expect(prefixUpperBound(b(0xff, 0xff))).toBeUndefined()
    expect(prefixRange(b(0xff))).toEqual({ gte: b(0xff) })
  })

  it('maps bytes to binary strings and back without loss, long keys included', () => {
    const long = Uint8Array.from({ length: 20_000 }, (_, i) => (i * 7) & 0xff)
    for (const x of [b(), b(0, 255, 128), long]) expect(binaryStringToBytes(bytesToBinaryString(x))).toEqual(x)
    expect(bytesToBinaryString(b(1, 0)) < bytesToBinaryString(b(1, 0, 0))).toBe(true)
    expect(bytesToBinaryString(b(0x7f)) < bytesToBinaryString(b(0x80))).toBe(true)
  })
})
