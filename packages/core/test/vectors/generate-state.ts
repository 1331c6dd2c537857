/**
 * Regenerates state.json from fixed inputs: `npx tsx packages/core/test/vectors/generate-state.ts`.
 * Run only when the tree format changes on purpose, and review the diff.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { fromHex, toHex } from '../../src/codec/hex.js'
import { encodeStateProof, MemoryKVStore, StateTree } from '../../src/state/index.js'

const u = (s: string) => toHex(new TextEncoder().encode(s))
type Op = [string, string | null]
const cases: { name: string; ops: Op[]; probe: string[] }[] = [
  { name: 'empty tree', ops: [], probe: [u('a')] },
  { name: 'one key: the root is its leaf', ops: [[u('alice'), u('100')]], probe: [u('alice'), u('bob')] },
  {
    name: 'two keys',
    ops: [
      [u('alice'), u('100')],
      [u('bob'), u('250')],
    ],
    probe: [u('alice'), u('bob'), u('carol')],
  },
  {
    name: 'empty value is present, not absent',
    ops: [
      [u('k'), ''],
      [u('j'), u('x')],
    ],
    probe: [u('k'), u('j'), u('i')],
  },
  {
    name: 'puts, overwrites and deletes in one batch',
    ops: [
      ...Array.from({ length: 12 }, (_, i): Op => [u(`key-${i}`), u(`value-${i}`)]),
      [u('key-3'), u('overwritten')],
      [u('key-5'), null],
      [u('key-9'), null],
      [u('never-there'), null],
    ],
    probe: [
      ...Array.from({ length: 12 }, (_, i) => u(`key-${i}`)),
      u('never-there'),
      ...Array.from({ length: 8 }, (_, i) => u(`absent-${i}`)),
    ],
  },
  {
    name: 'binary keys and a long value',
    ops: [
      ['00', 'ff'],
      ['ff', '00'],
      ['0000000000000000000000000000000000000000000000000000000000000000', 'aa'.repeat(200)],
      ['01020304', '0506'],
    ],
    probe: ['00', 'ff', '0000000000000000000000000000000000000000000000000000000000000000', '01020304', '02', '0102030405'],
  },
]

const out = []
for (const c of cases) {
  const t = await StateTree.open(new MemoryKVStore())
  for (const [k, v] of c.ops) v === null ? t.delete(fromHex(k)) : t.put(fromHex(k), fromHex(v))
  const root = await t.commitAndWrite()
  const proofs = []
  for (const k of c.probe) {
    const { value, proof } = await t.prove(fromHex(k))
    proofs.push({ key: k, value: value === undefined ? null : toHex(value), proof: toHex(encodeStateProof(proof)) })
  }
  out.push({ name: c.name, ops: c.ops, root: toHex(root), proofs })
}
const doc = {
  description:
    "Golden vectors of the loopchain state tree (packages/core/src/state). Apply each case's ops in order to an empty tree ([key, value] puts, [key, null] deletes), commit once: the root must equal `root`. Each proof (hex of the canonical StateProof encoding) must verify for `key` with `value` (null = absent) against `root`, and the tree must produce exactly these bytes. All byte strings are lower-case hex without a 0x prefix.",
  hashes: {
    path: 'taggedHash(0x04 StateKey, key)',
    leaf: 'taggedHash(0x02 StateLeaf, path || sha256(value))',
    node: 'taggedHash(0x03 StateNode, left || right)',
    empty: '32 zero bytes',
  },
  cases: out,
}
writeFileSync(fileURLToPath(new URL('./state.json', import.meta.url)), `${JSON.stringify(doc, null, 2)}\n`)
console.log(
  'wrote',
  out.length,
  'cases',
  out.reduce((a, c) => a + c.proofs.length, 0),
  'proofs',
)
