import { describe, expect, it } from 'vitest'
import { fromHex, toHex } from '../../src/codec/hex.js'
import { MemoryKVStore } from '../../src/state/memory-store.js'
import { decodeStateProof, encodeStateProof, isValidStateProof, verifyStateProof } from '../../src/state/proof.js'
import { StateTree } from '../../src/state/state-tree.js'

/** The shape of `test/vectors/state.json` (self-describing; see its `description`). */
interface StateVectorFile {
  cases: {
    name: string
    ops: [string, string | null][]
    root: string
    proofs: { key: string; value: string | null; proof: string }[]
  }[]
}

// Loaded by a computed specifier so the type-checker does not pull JSON into the package build;
// Vitest (and any bundler running these vectors in a browser) resolves it like a static import.
const VECTORS = '../vectors/state.json'
const file = ((await import(/* @vite-ignore */ VECTORS)) as { default: StateVectorFile }).default

describe('state tree golden vectors', () => {
  it('has cases with present keys, foreign-leaf absences and empty-subtree absences', () => {
    const proofs = file.cases.flatMap((c) => c.proofs)
    expect(file.cases.length).toBeGreaterThanOrEqual(5)
    expect(proofs.some((p) => p.value !== null)).toBe(true)
    expect(proofs.some((p) => p.value === null && decodeStateProof(fromHex(p.proof)).leaf !== undefined)).toBe(true)
    expect(proofs.some((p) => p.value === null && decodeStateProof(fromHex(p.proof)).leaf === undefined && p.proof !== '0000')).toBe(true)
  })

  for (const c of file.cases) {
    it(`${c.name}: proofs verify from the vector data alone`, () => {
      const root = fromHex(c.root)
      for (const p of c.proofs) {
        const value = p.value === null ? undefined : fromHex(p.value)
        verifyStateProof(root, fromHex(p.key), value, fromHex(p.proof))
        // The opposite claim must not verify.
        expect(isValidStateProof(root, fromHex(p.key), value === undefined ? Uint8Array.of(0) : undefined, fromHex(p.proof))).toBe(false)
      }
    })

    it(`${c.name}: the tree reproduces the root and the proof bytes`, async () => {
      const t = await StateTree.open(new MemoryKVStore())
      for (const [k, v] of c.ops) {
        if (v === null) t.delete(fromHex(k))
        else t.put(fromHex(k), fromHex(v))
      }
      expect(toHex(await t.commitAndWrite())).toBe(c.root)
      for (const p of c.proofs) {
        const { value, proof } = await t.prove(fromHex(p.key))
        expect(value === undefined ? null : toHex(value)).toBe(p.value)
        expect(toHex(encodeStateProof(proof))).toBe(p.proof)
      }
    })
  }
})
