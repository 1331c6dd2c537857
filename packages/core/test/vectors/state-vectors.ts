/**
 * The state tree's golden vectors as a runtime-neutral check: rebuild each case's tree, compare
 * the root and every proof's bytes, and verify every proof from the vector data alone. Node runs
 * it in state-vectors.test.ts; Chromium runs it in test/browser.
 */
import { encodeStateProof, fromHex, isValidStateProof, MemoryKVStore, StateTree, toHex } from '../../src/index.js'

/** The shape of state.json. */
export interface StateVectorFile {
  cases: { name: string; ops: [string, string | null][]; root: string; proofs: { key: string; value: string | null; proof: string }[] }[]
}

/** Returns every mismatch between the vectors and this runtime's tree (empty when all agree). */
export async function checkStateVectors(file: StateVectorFile): Promise<string[]> {
  const failures: string[] = []
  for (const c of file.cases) {
    const tree = await StateTree.open(new MemoryKVStore())
    for (const [k, v] of c.ops) {
      if (v === null) tree.delete(fromHex(k))
      else tree.put(fromHex(k), fromHex(v))
    }
    const root = toHex(await tree.commitAndWrite())
    if (root !== c.root) failures.push(`${c.name}: root ${root}, the vector says ${c.root}`)
    for (const p of c.proofs) {
      const { value, proof } = await tree.prove(fromHex(p.key))
      if ((value === undefined ? null : toHex(value)) !== p.value) failures.push(`${c.name}: value of ${p.key} differs`)
      if (toHex(encodeStateProof(proof)) !== p.proof) failures.push(`${c.name}: proof bytes of ${p.key} differ`)
      const claimed = p.value === null ? undefined : fromHex(p.value)
      if (!isValidStateProof(fromHex(c.root), fromHex(p.key), claimed, fromHex(p.proof)))
        failures.push(`${c.name}: proof of ${p.key} does not verify`)
    }
  }
  return failures
}
