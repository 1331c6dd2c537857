import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { bytesEqual, compareBytes, toHex } from '../../src/codec/hex.js'
import { Domain, sha256, taggedHash, ZERO_HASH } from '../../src/crypto/hash.js'
import { StateTreeError } from '../../src/state/errors.js'
import type { KVStore, WriteOp } from '../../src/state/kv-store.js'
import { MemoryKVStore } from '../../src/state/memory-store.js'
import { encodeStateProof, isValidStateProof, verifyStateProof } from '../../src/state/proof.js'
import { EMPTY_STATE_ROOT, MAX_STATE_KEY_LENGTH, StateTree } from '../../src/state/state-tree.js'

const enc = (s: string) => new TextEncoder().encode(s)

/**
 * The compact sparse Merkle tree root straight from its definition, independent of the tree's
 * incremental code: a lone key is a leaf wherever it stands; otherwise split on the next bit.
 */
function referenceRoot(entries: Map<string, Uint8Array>): Uint8Array {
  const items = [...entries.values()].map((v, i) => ({ v, key: [...entries.keys()][i] as string }))
  const leaves = items.map(({ key, v }) => {
    const path = taggedHash(Domain.StateKey, Uint8Array.from(key.split(',').filter(Boolean).map(Number)))
    return { path, hash: taggedHash(Domain.StateLeaf, new Uint8Array([...path, ...sha256(v)])) }
  })
  const bit = (p: Uint8Array, i: number) => ((p[i >> 3] as number) >> (7 - (i & 7))) & 1
  const root = (ls: typeof leaves, depth: number): Uint8Array => {
    if (ls.length === 0) return ZERO_HASH
    if (ls.length === 1) return (ls[0] as (typeof leaves)[number]).hash
    const l = root(
      ls.filter((x) => bit(x.path, depth) === 0),
      depth + 1,
    )
    const r = root(
      ls.filter((x) => bit(x.path, depth) === 1),
      depth + 1,
    )
    return taggedHash(Domain.StateNode, new Uint8Array([...l, ...r]))
  }
  return root(leaves, 0)
}

const id = (k: Uint8Array) => [...k].join(',')

/** Keys from a small space, so puts overwrite and deletes hit present keys often. */
const keyArb = fc.oneof(
  fc.integer({ min: 0, max: 24 }).map((i) => Uint8Array.of(i)),
  fc.uint8Array({ minLength: 1, maxLength: 6 }),
)
const valueArb = fc.uint8Array({ maxLength: 12 })
type Op = { t: 'put'; k: Uint8Array; v: Uint8Array } | { t: 'del'; k: Uint8Array } | { t: 'commit' }
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('put' as const), k: keyArb, v: valueArb }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('del' as const), k: keyArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('commit' as const) }) },
)

async function treeOf(entries: Iterable<[Uint8Array, Uint8Array]>, store: KVStore = new MemoryKVStore()): Promise<StateTree> {
  const t = await StateTree.open(store)
  for (const [k, v] of entries) t.put(k, v)
  await t.commitAndWrite()
  return t
}

describe('StateTree against a Map model', () => {
  it('agrees with the model on get, and its root depends only on the final contents', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 60 }), fc.boolean(), async (ops, reopen) => {
        const store = new MemoryKVStore()
        let tree = await StateTree.open(store)
        const model = new Map<string, [Uint8Array, Uint8Array]>()
        for (const op of ops) {
          if (op.t === 'put') {
            tree.put(op.k, op.v)
            model.set(id(op.k), [op.k, op.v])
          } else if (op.t === 'del') {
            tree.delete(op.k)
            model.delete(id(op.k))
          } else {
            await tree.commitAndWrite()
            // A reopened tree starts from the root alone and reads nodes lazily, deletions'
            // siblings included: the same history must give the same answers.
            if (reopen) tree = await StateTree.open(store)
          }
          if (op.t !== 'commit') expect(await tree.get(op.k)).toEqual(model.get(id(op.k))?.[1])
        }
        await tree.commitAndWrite()
        for (const [k, v] of model.values()) expect(await tree.get(k)).toEqual(v)
        const expected = referenceRoot(new Map([...model.values()].map(([k, v]) => [id(k), v])))
        expect(toHex(tree.root)).toBe(toHex(expected))
        // Built in one batch in reverse order: same root.
        const fresh = await treeOf([...model.values()].reverse())
        expect(toHex(fresh.root)).toBe(toHex(expected))
      }),
      { numRuns: 150 },
    )
  })

  it('proves every present key and every absent key against the committed root', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(keyArb, { maxLength: 40, selector: id }),
        fc.array(keyArb, { maxLength: 10 }),
        async (keys, probes) => {
          const tree = await treeOf(keys.map((k, i) => [k, enc(`v${i}`)]))
          const present = new Map(keys.map((k, i) => [id(k), enc(`v${i}`)]))
          for (const k of [...keys, ...probes]) {
            const { value, proof } = await tree.prove(k)
            expect(value).toEqual(present.get(id(k)))
            verifyStateProof(tree.root, k, value, proof)
            verifyStateProof(tree.root, k, value, encodeStateProof(proof))
            // The opposite claim fails.
            expect(isValidStateProof(tree.root, k, value === undefined ? enc('x') : undefined, proof)).toBe(false)
          }
        },
      ),
      { numRuns: 100 },
    )
  })
})

describe('StateTree', () => {
  it('has the all-zero root when empty and after deleting everything', async () => {
    const store = new MemoryKVStore()
    const t = await StateTree.open(store)
    expect(t.root).toEqual(EMPTY_STATE_ROOT)
    t.put(enc('a'), enc('1'))
    t.put(enc('b'), enc('2'))
    await t.commitAndWrite()
    expect(t.root).not.toEqual(EMPTY_STATE_ROOT)
    t.delete(enc('a'))
    t.delete(enc('b'))
    await t.commitAndWrite()
    expect(t.root).toEqual(EMPTY_STATE_ROOT)
    const { value, proof } = await t.prove(enc('a'))
    expect(value).toBeUndefined()
    expect(proof.siblings).toHaveLength(0)
    verifyStateProof(EMPTY_STATE_ROOT, enc('a'), undefined, proof)
  })

  it('hashes a single key to its leaf at the root', async () => {
    const t = await treeOf([[enc('k'), enc('v')]])
    const path = taggedHash(Domain.StateKey, enc('k'))
    expect(t.root).toEqual(taggedHash(Domain.StateLeaf, new Uint8Array([...path, ...sha256(enc('v'))])))
  })

  it('keeps proofs against older roots valid after newer commits', async () => {
    const store = new MemoryKVStore()
    const t = await StateTree.open(store)
    const history: { root: Uint8Array; snapshot: Map<string, Uint8Array> }[] = []
    const current = new Map<string, Uint8Array>()
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 20; i++) {
        const k = enc(`key-${(round * 7 + i * 3) % 40}`)
        if ((round + i) % 5 === 0) {
          t.delete(k)
          current.delete(id(k))
        } else {
          t.put(k, enc(`r${round}-${i}`))
          current.set(id(k), enc(`r${round}-${i}`))
        }
      }
      history.push({ root: await t.commitAndWrite(), snapshot: new Map(current) })
    }
    // The live tree and a tree reopened from the store (nodes read lazily) agree on old roots.
    for (const tree of [t, await StateTree.open(store)]) {
      for (const { root, snapshot } of history) {
        for (let i = 0; i < 40; i++) {
          const k = enc(`key-${i}`)
          const { value, proof } = await tree.prove(k, root)
          expect(value).toEqual(snapshot.get(id(k)))
          verifyStateProof(root, k, value, encodeStateProof(proof))
        }
      }
    }
  })

  it('reopened at a committed root gives the same gets and proofs', async () => {
    const store = new MemoryKVStore()
    const t = await StateTree.open(store)
    for (let i = 0; i < 50; i++) t.put(enc(`a${i}`), enc(`x${i}`))
    const r1 = await t.commitAndWrite()
    for (let i = 25; i < 75; i++) t.put(enc(`a${i}`), enc(`y${i}`))
    for (let i = 0; i < 10; i++) t.delete(enc(`a${i}`))
    const r2 = await t.commitAndWrite()
    const latest = await StateTree.open(store)
    expect(latest.root).toEqual(r2)
    const old = await StateTree.open(store, r1)
    expect(old.root).toEqual(r1)
    for (let i = 0; i < 80; i++) {
      const k = enc(`a${i}`)
      expect(await latest.get(k)).toEqual(await t.get(k))
      expect(encodeStateProof((await latest.prove(k)).proof)).toEqual(encodeStateProof((await t.prove(k)).proof))
      // The flat index holds r2's values; a tree opened at r1 must read r1's from its nodes.
      expect(await old.get(k)).toEqual(i < 50 ? enc(`x${i}`) : undefined)
      expect(encodeStateProof((await old.prove(k)).proof)).toEqual(encodeStateProof((await t.prove(k, r1)).proof))
    }
  })

  it('can grow from an old root without touching the latest flat index', async () => {
    const store = new MemoryKVStore()
    const t = await treeOf([[enc('a'), enc('1')]], store)
    const r1 = t.root
    t.put(enc('a'), enc('2'))
    const r2 = await t.commitAndWrite()
    const fork = await StateTree.open(store, r1)
    fork.put(enc('b'), enc('3'))
    const { root, ops } = await fork.commit()
    // New nodes and the new root's entry in the root index ('r'), no flat value and no latest-root mark.
    expect(ops.every((op) => op.type === 'put' && (op.key[1] === 0x6e || op.key[1] === 0x72))).toBe(true)
    expect(ops.filter((op) => op.key[1] === 0x72)).toHaveLength(1)
    await store.write(ops)
    expect(await fork.get(enc('a'))).toEqual(enc('1'))
    expect(await fork.get(enc('b'))).toEqual(enc('3'))
    const latest = await StateTree.open(store)
    expect(latest.root).toEqual(r2)
    expect(await latest.get(enc('a'))).toEqual(enc('2'))
    expect(await latest.get(enc('b'))).toBeUndefined()
    expect(toHex(root)).toBe(
      toHex(
        (
          await treeOf([
            [enc('a'), enc('1')],
            [enc('b'), enc('3')],
          ])
        ).root,
      ),
    )
  })

  it('returns its writes from commit() instead of writing them, and serves reads before they land', async () => {
    const store = new MemoryKVStore()
    const t = await StateTree.open(store)
    t.put(enc('k1'), enc('v1'))
    t.put(enc('k2'), enc('v2'))
    const c1 = await t.commit()
    expect(store.size).toBe(0)
    expect(c1.ops.length).toBeGreaterThan(0)
    // Not written yet: reads and proofs come from memory.
    expect(await t.get(enc('k1'))).toEqual(enc('v1'))
    verifyStateProof(c1.root, enc('k2'), enc('v2'), (await t.prove(enc('k2'))).proof)
    t.delete(enc('k1'))
    const c2 = await t.commit()
    expect(await t.get(enc('k1'))).toBeUndefined()
    t.markPersisted(c1) // an older commit: the overlay must stay
    expect(await t.get(enc('k2'))).toEqual(enc('v2'))
    await store.write([...c1.ops, ...c2.ops])
    t.markPersisted(c2)
    expect(await t.get(enc('k1'))).toBeUndefined()
    expect(await t.get(enc('k2'))).toEqual(enc('v2'))
    const reopened = await StateTree.open(store)
    expect(reopened.root).toEqual(c2.root)
    expect(await reopened.get(enc('k2'))).toEqual(enc('v2'))
  })

  it('keeps writes staged while a commit awaits the store, and refuses a concurrent commit', async () => {
    const base = new MemoryKVStore()
    const t0 = await treeOf(
      Array.from({ length: 50 }, (_, i) => [enc(`k${i}`), enc(`v${i}`)] as [Uint8Array, Uint8Array]),
      base,
    )
    const slow: KVStore = {
      get: async (k) => {
        await new Promise((r) => setTimeout(r, 1))
        return base.get(k)
      },
      write: (ops: readonly WriteOp[]) => base.write(ops),
      iterate: (o) => base.iterate(o),
    }
    const t = await StateTree.open(slow)
    t.put(enc('k1'), enc('first'))
    const pending = t.commit()
    await expect(t.commit()).rejects.toMatchObject({ code: 'BUSY' })
    t.put(enc('k2'), enc('during'))
    t.put(enc('k1'), enc('later'))
    const c = await pending
    expect(t.stagedCount).toBe(2)
    expect(await t.get(enc('k1'))).toEqual(enc('later'))
    t0.put(enc('k1'), enc('first'))
    expect(c.root).toEqual(await t0.commitAndWrite())
    await base.write(c.ops)
    t.markPersisted(c)
    t0.put(enc('k2'), enc('during'))
    t0.put(enc('k1'), enc('later'))
    expect(await t.commitAndWrite()).toEqual(await t0.commitAndWrite())
  })

  it('serves latest values from memory once read or persisted, never a value a commit replaced', async () => {
    const base = new MemoryKVStore()
    await treeOf([[enc('a'), enc('a0')] as [Uint8Array, Uint8Array], [enc('b'), enc('b0')] as [Uint8Array, Uint8Array]], base)
    let reads = 0
    // When set, the next store read returns only after `release` is called.
    let holdNext: Promise<void> | undefined
    let release = () => {}
    const counting: KVStore = {
      get: async (k) => {
        reads++
        const v = await base.get(k)
        const hold = holdNext
        holdNext = undefined
        if (hold) await hold
        return v
      },
      write: (ops: readonly WriteOp[]) => base.write(ops),
      iterate: (o) => base.iterate(o),
    }
    const t = await StateTree.open(counting, undefined, { valueCacheSize: 2 })
    reads = 0
    // Read once from the store, then from memory; a caller that mutates what it got changes nothing.
    const got = (await t.get(enc('a'))) as Uint8Array
    got.fill(0)
    expect(await t.get(enc('a'))).toEqual(enc('a0'))
    expect(reads).toBe(1)
    // A read that a commit overtakes returns what it read but does not keep it.
    holdNext = new Promise<void>((r) => (release = r))
    const slowRead = t.get(enc('b'))
    await new Promise((r) => setTimeout(r, 0))
    t.put(enc('b'), enc('b1'))
    const c = await t.commit()
    await base.write(c.ops)
    t.markPersisted(c)
    release()
    expect(await slowRead).toEqual(enc('b0'))
    reads = 0
    expect(await t.get(enc('b'))).toEqual(enc('b1'))
    expect(reads).toBe(0)
    // Bounded: a third key pushes the oldest out, which is then read from the store again.
    expect(await t.get(enc('missing'))).toBeUndefined()
    expect(await t.get(enc('missing'))).toBeUndefined()
    expect(reads).toBe(1)
    expect(await t.get(enc('a'))).toEqual(enc('a0'))
    expect(reads).toBe(2)
  })

  it('writes nothing new when a commit changes nothing', async () => {
    const t = await treeOf([
      [enc('a'), enc('1')],
      [enc('b'), enc('2')],
    ])
    const before = t.root
    t.put(enc('a'), enc('1'))
    t.delete(enc('zzz'))
    const { root, ops } = await t.commit()
    expect(root).toEqual(before)
    expect(ops.filter((op) => op.key[1] === 0x6e)).toHaveLength(0)
  })

  it('reverts staged writes to a checkpoint, nested, like a Map-stack model', async () => {
    type COp = Op | { t: 'cp' } | { t: 'revert' } | { t: 'keep' }
    const cop: fc.Arbitrary<COp> = fc.oneof(
      opArb.filter((o) => o.t !== 'commit'),
      fc.constant({ t: 'cp' as const }),
      fc.constant({ t: 'revert' as const }),
      fc.constant({ t: 'keep' as const }),
    )
    await fc.assert(
      fc.asyncProperty(fc.array(cop, { maxLength: 50 }), async (ops) => {
        const t = await treeOf([[Uint8Array.of(1), enc('base')]])
        let view = new Map<string, Uint8Array | undefined>([[id(Uint8Array.of(1)), enc('base')]])
        const stack: Map<string, Uint8Array | undefined>[] = []
        const touched = new Map<string, Uint8Array>([[id(Uint8Array.of(1)), Uint8Array.of(1)]])
        for (const op of ops) {
          if (op.t === 'put') {
            t.put(op.k, op.v)
            view.set(id(op.k), op.v)
            touched.set(id(op.k), op.k)
          } else if (op.t === 'del') {
            t.delete(op.k)
            view.set(id(op.k), undefined)
            touched.set(id(op.k), op.k)
          } else if (op.t === 'cp') {
            t.checkpoint()
            stack.push(new Map(view))
          } else if (stack.length === 0) {
            expect(() => (op.t === 'revert' ? t.revert() : t.commitCheckpoint())).toThrow(StateTreeError)
          } else if (op.t === 'revert') {
            t.revert()
            view = stack.pop() as Map<string, Uint8Array | undefined>
          } else {
            t.commitCheckpoint()
            stack.pop()
          }
          expect(t.checkpointDepth).toBe(stack.length)
        }
        for (const [k, key] of touched) expect(await t.get(key)).toEqual(view.get(k))
        while (t.checkpointDepth > 0) t.commitCheckpoint()
        await t.commitAndWrite()
        const final = new Map([...view].filter((e): e is [string, Uint8Array] => e[1] !== undefined))
        expect(toHex(t.root)).toBe(toHex(referenceRoot(final)))
      }),
      { numRuns: 150 },
    )
  })

  it('refuses to commit with an open checkpoint, and rollback() drops everything staged', async () => {
    const t = await treeOf([[enc('a'), enc('1')]])
    const root = t.root
    t.checkpoint()
    t.put(enc('a'), enc('2'))
    await expect(t.commit()).rejects.toMatchObject({ code: 'CHECKPOINT' })
    t.rollback()
    expect(t.checkpointDepth).toBe(0)
    expect(t.stagedCount).toBe(0)
    expect(await t.get(enc('a'))).toEqual(enc('1'))
    expect(await t.commitAndWrite()).toEqual(root)
  })

  it('rejects empty and oversized keys with INVALID_KEY', async () => {
    const t = await StateTree.open(new MemoryKVStore())
    expect(() => t.put(new Uint8Array(0), enc('v'))).toThrow(StateTreeError)
    expect(() => t.put(new Uint8Array(MAX_STATE_KEY_LENGTH + 1), enc('v'))).toThrow(expect.objectContaining({ code: 'INVALID_KEY' }))
    t.put(new Uint8Array(MAX_STATE_KEY_LENGTH), enc('v'))
    await expect(t.get(new Uint8Array(0))).rejects.toMatchObject({ code: 'INVALID_KEY' })
  })

  it('copies keys and values at put(), so later caller mutation changes nothing', async () => {
    const t = await StateTree.open(new MemoryKVStore())
    const k = enc('key')
    const v = enc('value')
    t.put(k, v)
    v[0] = 0
    k[0] = 0
    expect(await t.get(enc('key'))).toEqual(enc('value'))
    await t.commitAndWrite()
    expect(await t.get(enc('key'))).toEqual(enc('value'))
  })

  it('fails with MISSING_NODE for a root that was never committed to the store', async () => {
    const store = new MemoryKVStore()
    await expect(StateTree.open(store, sha256(enc('nope')))).rejects.toMatchObject({ code: 'MISSING_NODE', penalize: false })
    const t = await treeOf([[enc('a'), enc('1')]], store)
    await expect(t.prove(enc('a'), sha256(enc('nope')))).rejects.toMatchObject({ code: 'MISSING_NODE' })
  })

  it('stores each commit’s nodes under its version, which only goes up and survives a reopen', async () => {
    const store = new MemoryKVStore()
    const t = await StateTree.open(store)
    expect(t.version).toBe(-1)
    const keys = Array.from({ length: 50 }, (_, i) => enc(`k${i}`))
    for (const k of keys) t.put(k, enc('1'))
    const first = await t.commit(10)
    await store.write(first.ops)
    t.markPersisted(first)
    t.put(enc('k7'), enc('2'))
    const second = await t.commit(20)
    await store.write(second.ops)
    t.markPersisted(second)
    expect([first.version, second.version, t.version]).toEqual([10, 20, 20])
    // Every node key is 's' 'n' ‖ the commit's version (8 bytes, big-endian) ‖ a hash.
    const be = (v: number) => [0, 0, 0, 0, 0, 0, 0, v]
    const nodeOps = (ops: WriteOp[]) => ops.filter((op) => op.key[0] === 0x73 && op.key[1] === 0x6e)
    for (const [c, v] of [
      [first, 10],
      [second, 20],
    ] as const) {
      expect(nodeOps(c.ops).length).toBeGreaterThan(0)
      for (const op of nodeOps(c.ops)) {
        expect(op.key).toHaveLength(2 + 8 + 32)
        expect([...op.key.subarray(2, 10)]).toEqual(be(v))
      }
    }
    // The second commit wrote only the changed path (a leaf and its branches), not 50 leaves again.
    expect(nodeOps(second.ops).length).toBeLessThan(15)
    await expect(t.commit(20)).rejects.toMatchObject({ name: 'StateTreeError', code: 'VERSION' })
    await expect(t.commit(19.5)).rejects.toMatchObject({ code: 'VERSION' })
    expect(t.stagedCount).toBe(0)

    const again = await StateTree.open(store)
    expect(again.version).toBe(20)
    expect(toHex(again.root)).toBe(toHex(second.root))
    await expect(again.commit(20)).rejects.toMatchObject({ code: 'VERSION' })
    again.put(enc('k8'), enc('3'))
    expect((await again.commit()).version).toBe(21)
    // The first root, opened and proved against after the reopen: found through the root index.
    const old = await StateTree.open(store, first.root)
    expect(await old.get(enc('k7'))).toEqual(enc('1'))
    const { value, proof } = await again.prove(enc('k7'), first.root)
    expect(value).toEqual(enc('1'))
    expect(verifyStateProof(first.root, enc('k7'), value, proof)).toBeUndefined()
  })

  it('reports CORRUPT_NODE when a stored node record does not decode', async () => {
    const store = new MemoryKVStore()
    const t = await treeOf(
      Array.from({ length: 8 }, (_, i) => [enc(`k${i}`), enc(`v${i}`)] as [Uint8Array, Uint8Array]),
      store,
    )
    // The root's record: 's' 'n', the version that wrote it (the first commit's, 0), its hash.
    const rootKey = new Uint8Array([0x73, 0x6e, ...new Array(8).fill(0), ...t.root])
    expect(await store.get(rootKey)).toBeDefined()
    await store.write([{ type: 'put', key: rootKey, value: Uint8Array.of(7, 1, 2) }])
    await expect(StateTree.open(store)).rejects.toMatchObject({ code: 'CORRUPT_NODE' })
  })

  it('reads nodes lazily: a tree reopened on a large store loads only what a commit touches', async () => {
    const base = new MemoryKVStore()
    const keys = Array.from({ length: 2000 }, (_, i) => enc(`account-${i}`))
    const t = await treeOf(
      keys.map((k, i) => [k, enc(`${i}`)]),
      base,
    )
    let reads = 0
    const counting: KVStore = {
      get: (k) => {
        reads++
        return base.get(k)
      },
      write: (ops: readonly WriteOp[]) => base.write(ops),
      iterate: (o) => base.iterate(o),
    }
    const reopened = await StateTree.open(counting)
    reads = 0
    reopened.put(keys[7] as Uint8Array, enc('changed'))
    t.put(keys[7] as Uint8Array, enc('changed'))
    const { root } = await reopened.commit()
    expect(root).toEqual((await t.commit()).root)
    // About one read per level of a ~2000-key tree (depth ~12), not thousands.
    expect(reads).toBeLessThan(40)
    expect(reads).toBeGreaterThan(3)
  })

  it('reads a committed root as a snapshot: no staged write, no later commit shows through getAt', async () => {
    const store = new MemoryKVStore()
    const t = await treeOf(
      Array.from({ length: 200 }, (_, i): [Uint8Array, Uint8Array] => [enc(`k${i}`), enc(`v${i}`)]),
      store,
    )
    const first = t.root
    const view = t.at(first)
    t.put(enc('k1'), enc('staged'))
    t.delete(enc('k2'))
    t.put(enc('new'), enc('staged'))
    expect(await t.get(enc('k1'))).toEqual(enc('staged'))
    expect(await view.get(enc('k1'))).toEqual(enc('v1'))
    expect(await view.get(enc('k2'))).toEqual(enc('v2'))
    expect(await view.get(enc('new'))).toBeUndefined()
    // Committed and persisted: the view still answers for its root, the tree for the new one.
    await t.commitAndWrite()
    expect(await view.get(enc('k1'))).toEqual(enc('v1'))
    expect(await view.get(enc('k2'))).toEqual(enc('v2'))
    expect(await t.getAt(enc('k1'), t.root)).toEqual(enc('staged'))
    expect(await t.getAt(enc('k2'), t.root)).toBeUndefined()
    // Another instance over the same store reads the old root from the stored nodes.
    const reopened = await StateTree.open(store)
    for (let i = 0; i < 200; i += 17) expect(await reopened.getAt(enc(`k${i}`), first)).toEqual(enc(`v${i}`))
    await expect(reopened.getAt(enc('k1'), new Uint8Array(32).fill(7))).rejects.toMatchObject({ code: 'MISSING_NODE' })
  })

  it('answers tryGetSync without waiting where it can, the same as get; undefined where only get can tell', async () => {
    const store = new MemoryKVStore()
    const t = await treeOf(
      Array.from({ length: 50 }, (_, i): [Uint8Array, Uint8Array] => [enc(`k${i}`), enc(`v${i}`)]),
      store,
    )
    const first = t.root
    // A cold tree over the store: values come from the flat index through the store's getSync.
    const cold = await StateTree.open(store)
    expect(cold.tryGetSync(enc('k3'))).toEqual(enc('v3'))
    expect(cold.tryGetSync(enc('absent'))).toBeNull()
    // Staged writes and deletes show, as in get; a snapshot of the root does not see them.
    const view = cold.at(first)
    cold.put(enc('k3'), enc('staged'))
    cold.delete(enc('k4'))
    expect(cold.tryGetSync(enc('k3'))).toEqual(enc('staged'))
    expect(cold.tryGetSync(enc('k4'))).toBeNull()
    expect(view.tryGetSync?.(enc('k3'))).toEqual(enc('v3'))
    expect(view.tryGetSync?.(enc('k4'))).toEqual(enc('v4'))
    // Committed, not yet written: served from memory. The old root's snapshot now needs the nodes.
    const c = await cold.commit()
    expect(cold.tryGetSync(enc('k3'))).toEqual(enc('staged'))
    expect(cold.tryGetSync(enc('k4'))).toBeNull()
    expect(view.tryGetSync?.(enc('k3'))).toBeUndefined()
    expect(await view.get(enc('k3'))).toEqual(enc('v3'))
    await store.write(c.ops)
    cold.markPersisted(c)
    expect(cold.at(cold.root).tryGetSync?.(enc('k5'))).toEqual(enc('v5'))
    // A store that can only be read by waiting (IndexedDB's case): only what is in memory answers.
    const asyncOnly: KVStore = { get: (k) => store.get(k), write: (ops) => store.write(ops), iterate: (o) => store.iterate(o) }
    const slow = await StateTree.open(asyncOnly)
    expect(slow.tryGetSync(enc('k6'))).toBeUndefined()
    expect(await slow.get(enc('k6'))).toEqual(enc('v6'))
    expect(slow.tryGetSync(enc('k6'))).toEqual(enc('v6'))
    slow.put(enc('k7'), enc('mine'))
    expect(slow.tryGetSync(enc('k7'))).toEqual(enc('mine'))
  })

  it('a snapshot read of the latest root that a commit overtakes still answers for that root', async () => {
    const base = new MemoryKVStore()
    let gate: Promise<void> | undefined
    const gated: KVStore = {
      get: async (k) => {
        if (gate) await gate
        return base.get(k)
      },
      write: (ops: readonly WriteOp[]) => base.write(ops),
      iterate: (o) => base.iterate(o),
    }
    // No value cache, so the read goes to the store's flat index.
    const t = await StateTree.open(gated, undefined, { valueCacheSize: 0 })
    for (let i = 0; i < 50; i++) t.put(enc(`k${i}`), enc(`v${i}`))
    await t.commitAndWrite()
    const first = t.root
    let open!: () => void
    gate = new Promise((r) => {
      open = r
    })
    const reading = t.getAt(enc('k3'), first)
    t.put(enc('k3'), enc('newer'))
    const c = await t.commit()
    await base.write(c.ops)
    t.markPersisted(c)
    gate = undefined
    open()
    expect(await reading).toEqual(enc('v3'))
    expect(await t.getAt(enc('k3'), t.root)).toEqual(enc('newer'))
    expect(await t.getAt(enc('k3'), first)).toEqual(enc('v3'))
  })

  it('commits while a proof reads the same unloaded nodes at the same time', async () => {
    // A node reopened from its store holds stubs; a light client's proof and the next block's
    // commit both load them. Whichever load lands second must still leave the commit's path
    // resident (before, the commit then found a stub on its path and threw).
    const base = new MemoryKVStore()
    const keys = Array.from({ length: 500 }, (_, i) => enc(`account-${i}`))
    await treeOf(
      keys.map((k, i) => [k, enc(`${i}`)]),
      base,
    )
    const reopened = await StateTree.open(base)
    const twin = await StateTree.open(base)
    for (const k of keys.slice(0, 40)) {
      reopened.put(k, enc('changed'))
      twin.put(k, enc('changed'))
    }
    const proofs = keys.slice(0, 40).map((k) => reopened.prove(k))
    const { root } = await reopened.commit()
    expect(root).toEqual((await twin.commit()).root)
    for (const [i, p] of (await Promise.all(proofs)).entries()) expect(p.value).toEqual(enc(`${i}`))
  })
  it('evicts deep resident nodes and reads them back on demand, with identical results', async () => {
    const base = new MemoryKVStore()
    let reads = 0
    const counting: KVStore = {
      get: (k) => {
        reads++
        return base.get(k)
      },
      write: (ops: readonly WriteOp[]) => base.write(ops),
      iterate: (o) => base.iterate(o),
    }
    const t = await StateTree.open(counting)
    const twin = await StateTree.open(new MemoryKVStore())
    for (let i = 0; i < 300; i++) {
      t.put(enc(`k${i}`), enc(`v${i}`))
      twin.put(enc(`k${i}`), enc(`v${i}`))
    }
    const c = await t.commit()
    await twin.commitAndWrite()
    expect(() => t.evict(2)).toThrow(expect.objectContaining({ code: 'UNPERSISTED' }))
    await base.write(c.ops)
    t.markPersisted(c)
    t.evict(2)
    expect(() => t.evict(0)).toThrow(RangeError)
    reads = 0
    const p = await t.prove(enc('k5'))
    expect(reads).toBeGreaterThan(3)
    expect(encodeStateProof(p.proof)).toEqual(encodeStateProof((await twin.prove(enc('k5'))).proof))
    for (let i = 0; i < 300; i += 3) {
      t.delete(enc(`k${i}`))
      twin.delete(enc(`k${i}`))
    }
    // Not while a commit is loading its paths: that would turn them back into stubs under it.
    const running = t.commit()
    expect(() => t.evict(2)).toThrow(expect.objectContaining({ code: 'BUSY' }))
    const c2 = await running
    await base.write(c2.ops)
    t.markPersisted(c2)
    expect(c2.root).toEqual(await twin.commitAndWrite())
  })

  it('computes the same root with an injected SHA-256', async () => {
    let calls = 0
    const counted = (d: Uint8Array) => {
      calls++
      return sha256(d)
    }
    const entries = Array.from({ length: 100 }, (_, i) => [enc(`k${i}`), enc(`v${i}`)] as [Uint8Array, Uint8Array])
    const a = await treeOf(entries)
    const tb = await StateTree.open(new MemoryKVStore(), undefined, { sha256: counted })
    for (const [k, v] of entries) tb.put(k, v)
    await tb.commitAndWrite()
    expect(calls).toBeGreaterThan(300)
    expect(tb.root).toEqual(a.root)
  })

  it('keeps namespaces apart in one store', async () => {
    const store = new MemoryKVStore()
    const a = await StateTree.open(store, undefined, { namespace: enc('A') })
    const b = await StateTree.open(store, undefined, { namespace: enc('B') })
    a.put(enc('k'), enc('from-a'))
    await a.commitAndWrite()
    expect(await b.get(enc('k'))).toBeUndefined()
    expect((await StateTree.open(store, undefined, { namespace: enc('B') })).root).toEqual(EMPTY_STATE_ROOT)
    expect(await (await StateTree.open(store, undefined, { namespace: enc('A') })).get(enc('k'))).toEqual(enc('from-a'))
  })

  it('orders sibling subtrees by path bit, matching the reference on a 500-key tree', async () => {
    const m = new Map<string, Uint8Array>()
    const entries: [Uint8Array, Uint8Array][] = []
    for (let i = 0; i < 500; i++) {
      const k = sha256(Uint8Array.of(i, i >> 8)).subarray(0, 1 + (i % 20))
      entries.push([k, enc(`${i}`)])
      m.set(id(k), enc(`${i}`))
    }
    const t = await treeOf(entries)
    expect(bytesEqual(t.root, referenceRoot(m))).toBe(true)
    expect(compareBytes(t.root, ZERO_HASH)).not.toBe(0)
  })
})
