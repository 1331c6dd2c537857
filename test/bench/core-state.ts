/**
 * Benchmark of the core's authenticated state tree against `@ethereumjs/mpt` (Ethereum's hexary
 * Merkle-Patricia trie), on the same keys, both in memory. For each size n it measures the work a
 * block does (batches of 1,000 updates, half to existing keys and half new, each followed by
 * computing the root and writing the nodes), proof generation, proof verification, and bytes per
 * proof. Both structures are alive at once and their update batches alternate, so load from other
 * work on a shared machine slows both alike. Both sides hash keys before use (the MPT as a "secure" trie), both hash in pure
 * JavaScript (the core's SHA-256 vs noble keccak); the tree with Node's native SHA-256 injected
 * is reported separately as `state_update_native_*` for sizes below 10^6. Proof bytes are what
 * a light client receives for a present key: for the tree the encoded proof plus the value (an MPT
 * proof carries the value inside its leaf node), for the MPT the sum of its RLP nodes.
 *
 * Standalone: `npx tsx test/bench/core-state.ts [sizes...]`, e.g. `... 10000 100000 1000000`.
 */
import { hash as nodeHash } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import {
  BranchMPTNode,
  createMerkleProof,
  createMPT,
  ExtensionMPTNode,
  LeafMPTNode,
  type MerklePatriciaTrie,
  verifyMerkleProof,
} from '@ethereumjs/mpt'
import { encodeStateProof, MemoryKVStore, type Sha256, StateTree, stateProofSize, verifyStateProof } from '@loopchain/core'
import { keccak_256 } from '@noble/hashes/sha3.js'

/** Updates per batch: about one block's worth of state writes. */
const BATCH = 1_000
/** Batches per size: enough to average over noise without making 10^6 runs drag. */
const BATCHES = 8
/** Untimed batches first, so the JIT has compiled the update path before the clock starts. */
const WARMUP_BATCHES = 2
/** Keys per commit while building the initial tree: bounds the memory one commit holds. */
const BUILD_CHUNK = 100_000
/** Proofs generated and verified per size. */
const PROOFS = 1_000

type Report = (name: string, value: number, unit: string) => void

/** Small fast seeded PRNG (sfc32) so every run uses the same keys. */
function prng(seed: number): () => number {
  let a = 0x9e3779b9
  let b = 0x243f6a88
  let c = 0xb7e15162
  let d = seed >>> 0
  return () => {
    a >>>= 0
    b >>>= 0
    c >>>= 0
    d >>>= 0
    const t = (a + b + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) >>> 0
    return t
  }
}

function randomBytes(next: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i += 4) {
    const x = next()
    out[i] = x & 0xff
    if (i + 1 < n) out[i + 1] = (x >>> 8) & 0xff
    if (i + 2 < n) out[i + 2] = (x >>> 16) & 0xff
    if (i + 3 < n) out[i + 3] = x >>> 24
  }
  return out
}

/** A value of 32..64 bytes, the size of a balance record or a small contract slot. */
function randomValue(next: () => number): Uint8Array {
  return randomBytes(next, 32 + (next() % 33))
}

function sizeName(n: number): string {
  const e = Math.log10(n)
  return Number.isInteger(e) ? `1e${e}` : String(n)
}

function progress(msg: string): void {
  process.stderr.write(`[core-state] ${msg}\n`)
}

// -----------------------------------------------------------------------------------------------
// MPT bulk load. Inserting 10^6 keys one `put` at a time takes minutes, so the initial trie is
// built bottom-up from the sorted hashed keys with the library's own node classes; a self-check
// below proves the result has the same root as sequential puts and serves proofs.

function nibble(h: Uint8Array, i: number): number {
  const b = h[i >>> 1] as number
  return i & 1 ? b & 0x0f : b >>> 4
}

function nibbles(h: Uint8Array, from: number, to: number): number[] {
  const out: number[] = []
  for (let i = from; i < to; i++) out.push(nibble(h, i))
  return out
}

type Raw = Uint8Array | Uint8Array[]

async function bulkLoadMPT(n: number, key: (i: number) => Uint8Array, value: (i: number) => Uint8Array): Promise<MerklePatriciaTrie> {
  const trie = await createMPT({ useKeyHashing: true })
  const hashed = Array.from({ length: n }, (_, i) => ({ h: keccak_256(key(i)), v: value(i) }))
  hashed.sort((a, b) => Buffer.compare(a.h, b.h))
  const ops: { type: 'put'; key: Uint8Array; value: Uint8Array }[] = []
  const ref = (node: LeafMPTNode | ExtensionMPTNode | BranchMPTNode, top: boolean): Raw => {
    const enc = node.serialize()
    if (enc.length < 32 && !top) return node.raw() as Raw
    const h = keccak_256(enc)
    ops.push({ type: 'put', key: h, value: enc })
    return h
  }
  const build = (lo: number, hi: number, d: number, top: boolean): Raw => {
    const first = (hashed[lo] as { h: Uint8Array }).h
    if (hi - lo === 1) return ref(new LeafMPTNode(nibbles(first, d, 64), (hashed[lo] as { v: Uint8Array }).v), top)
    const last = (hashed[hi - 1] as { h: Uint8Array }).h
    let c = d
    while (nibble(first, c) === nibble(last, c)) c++
    const branch = new BranchMPTNode()
    let i = lo
    while (i < hi) {
      const nb = nibble((hashed[i] as { h: Uint8Array }).h, c)
      let j = i + 1
      while (j < hi && nibble((hashed[j] as { h: Uint8Array }).h, c) === nb) j++
      branch.setBranch(nb, build(i, j, c + 1, false) as never)
      i = j
    }
    if (c === d) return ref(branch, top)
    const child = ref(branch, false)
    return ref(new ExtensionMPTNode(nibbles(first, d, c), child as Uint8Array), top)
  }
  if (hashed.length > 0) {
    const root = build(0, hashed.length, 0, true) as Uint8Array
    const db = trie.database()
    for (let i = 0; i < ops.length; i += 10_000) await db.batch(ops.slice(i, i + 10_000))
    trie.root(root)
  }
  return trie
}

async function checkBulkLoad(): Promise<void> {
  const next = prng(7)
  const keys = Array.from({ length: 3000 }, () => randomBytes(next, 32))
  const values = keys.map(() => randomValue(next))
  const loaded = await bulkLoadMPT(
    keys.length,
    (i) => keys[i] as Uint8Array,
    (i) => values[i] as Uint8Array,
  )
  const sequential = await createMPT({ useKeyHashing: true })
  for (let i = 0; i < keys.length; i++) await sequential.put(keys[i] as Uint8Array, values[i] as Uint8Array)
  if (Buffer.compare(loaded.root(), sequential.root()) !== 0) throw new Error('MPT bulk load disagrees with sequential puts')
  const proof = await createMerkleProof(loaded, keys[5] as Uint8Array)
  const got = await verifyMerkleProof(keys[5] as Uint8Array, proof, { root: loaded.root(), useKeyHashing: true })
  if (got === null || Buffer.compare(got, values[5] as Uint8Array) !== 0) throw new Error('MPT bulk-loaded proof does not verify')
}

// -----------------------------------------------------------------------------------------------

/** Native SHA-256 (OpenSSL), as a full node would inject it. */
const nativeSha256: Sha256 = (data) => {
  const out = nodeHash('sha256', data, 'buffer')
  return new Uint8Array(out.buffer, out.byteOffset, out.length)
}

/**
 * The keys and values of one size, packed into two buffers: a million separate small typed arrays
 * would cost more heap than the trees being measured.
 */
class Workload {
  readonly n: number
  private readonly keyBytes: Uint8Array
  private readonly valueBytes: Uint8Array
  private readonly valueEnds: Uint32Array
  readonly batches: [Uint8Array, Uint8Array][][] = []
  readonly proofKeys: number[]

  constructor(n: number) {
    const next = prng(n)
    this.n = n
    this.keyBytes = randomBytes(next, n * 32)
    this.valueEnds = new Uint32Array(n)
    let total = 0
    for (let i = 0; i < n; i++) {
      total += 32 + (next() % 33)
      this.valueEnds[i] = total
    }
    this.valueBytes = randomBytes(next, total)
    for (let b = 0; b < WARMUP_BATCHES + BATCHES; b++) {
      const batch: [Uint8Array, Uint8Array][] = []
      for (let i = 0; i < BATCH; i++) {
        const key = i % 2 === 0 ? this.key(next() % n) : randomBytes(next, 32)
        batch.push([key, randomValue(next)])
      }
      this.batches.push(batch)
    }
    this.proofKeys = Array.from({ length: Math.min(PROOFS, n) }, () => next() % n)
  }

  key(i: number): Uint8Array {
    return this.keyBytes.subarray(i * 32, i * 32 + 32)
  }

  value(i: number): Uint8Array {
    return this.valueBytes.subarray(i === 0 ? 0 : (this.valueEnds[i - 1] as number), this.valueEnds[i] as number)
  }
}

async function buildStateTree(w: Workload, sha256: Sha256 | undefined, label: string): Promise<{ tree: StateTree; ms: number }> {
  const tree = await StateTree.open(new MemoryKVStore(), undefined, sha256 ? { sha256 } : {})
  const t0 = performance.now()
  for (let i = 0; i < w.n; i++) {
    tree.put(w.key(i), w.value(i))
    if ((i + 1) % BUILD_CHUNK === 0 || i === w.n - 1) await tree.commitAndWrite()
  }
  const ms = performance.now() - t0
  progress(`${label}: built ${w.n} keys in ${(ms / 1000).toFixed(1)} s`)
  return { tree, ms }
}

/** One block's worth of state work: stage the updates, fold them into a root, write the nodes. */
async function stateBatch(tree: StateTree, batch: [Uint8Array, Uint8Array][]): Promise<number> {
  const t0 = performance.now()
  for (const [k, v] of batch) tree.put(k, v)
  await tree.commitAndWrite()
  return performance.now() - t0
}

/** The same block on the MPT: it hashes and writes its nodes on every `put`, so the root is ready. */
async function mptBatch(trie: MerklePatriciaTrie, batch: [Uint8Array, Uint8Array][]): Promise<number> {
  const t0 = performance.now()
  for (const [k, v] of batch) await trie.put(k, v)
  trie.root()
  return performance.now() - t0
}

async function stateProofs(tree: StateTree, w: Workload, report: Report): Promise<number> {
  const name = sizeName(w.n)
  const root = tree.root
  const proofs: { key: Uint8Array; value: Uint8Array | undefined; bytes: Uint8Array }[] = []
  let bytes = 0
  let t0 = performance.now()
  for (const i of w.proofKeys) {
    const key = w.key(i)
    const { value, proof } = await tree.prove(key)
    proofs.push({ key, value, bytes: encodeStateProof(proof) })
    bytes += stateProofSize(proof) + (value?.length ?? 0)
  }
  report(`state_proof_gen_${name}`, Math.round(proofs.length / ((performance.now() - t0) / 1000)), 'proofs/s')
  t0 = performance.now()
  for (const p of proofs) verifyStateProof(root, p.key, p.value, p.bytes)
  report(`state_proof_verify_${name}`, Math.round(proofs.length / ((performance.now() - t0) / 1000)), 'proofs/s')
  const avg = bytes / proofs.length
  report(`state_proof_bytes_${name}`, Math.round(avg), 'bytes')
  return avg
}

async function mptProofs(trie: MerklePatriciaTrie, w: Workload, report: Report): Promise<number> {
  const name = sizeName(w.n)
  const root = trie.root()
  const proofs: { key: Uint8Array; proof: Uint8Array[] }[] = []
  let bytes = 0
  let t0 = performance.now()
  for (const i of w.proofKeys) {
    const key = w.key(i)
    const proof = await createMerkleProof(trie, key)
    proofs.push({ key, proof })
    for (const node of proof) bytes += node.length
  }
  report(`mpt_proof_gen_${name}`, Math.round(proofs.length / ((performance.now() - t0) / 1000)), 'proofs/s')
  t0 = performance.now()
  for (const p of proofs) {
    if ((await verifyMerkleProof(p.key, p.proof, { root, useKeyHashing: true })) === null)
      throw new Error('MPT proof of a present key found nothing')
  }
  report(`mpt_proof_verify_${name}`, Math.round(proofs.length / ((performance.now() - t0) / 1000)), 'proofs/s')
  const avg = bytes / proofs.length
  report(`mpt_proof_bytes_${name}`, Math.round(avg), 'bytes')
  return avg
}

/**
 * Measures one size. Both structures are built first and their update batches then alternate, so
 * that a machine shared with other work slows both sides alike and the ratio stays meaningful.
 */
async function benchSize(w: Workload, report: Report): Promise<number> {
  const name = sizeName(w.n)
  const { tree, ms } = await buildStateTree(w, undefined, 'state')
  report(`state_build_${name}`, Math.round(w.n / (ms / 1000)), 'keys/s')
  const t0 = performance.now()
  const trie = await bulkLoadMPT(
    w.n,
    (i) => w.key(i),
    (i) => w.value(i),
  )
  progress(`mpt: bulk-loaded ${w.n} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

  let stateMs = 0
  let mptMs = 0
  for (let b = 0; b < w.batches.length; b++) {
    const batch = w.batches[b] as [Uint8Array, Uint8Array][]
    const s = await stateBatch(tree, batch)
    const m = await mptBatch(trie, batch)
    if (b >= WARMUP_BATCHES) {
      stateMs += s
      mptMs += m
    }
  }
  const stateRate = (BATCH * BATCHES) / (stateMs / 1000)
  const mptRate = (BATCH * BATCHES) / (mptMs / 1000)
  report(`state_update_${name}`, Math.round(stateRate), 'ops/s')
  report(`mpt_update_${name}`, Math.round(mptRate), 'ops/s')
  const ratio = stateRate / mptRate
  report(`state_update_vs_mpt_ratio_${name}`, Number(ratio.toFixed(2)), 'x')

  const stateBytes = await stateProofs(tree, w, report)
  const mptBytes = await mptProofs(trie, w, report)
  report(`state_proof_bytes_vs_mpt_ratio_${name}`, Number((stateBytes / mptBytes).toFixed(3)), 'x')

  // Informational: the tree with Node's native SHA-256; at 10^6 a second build would double the run.
  if (w.n < 1e6) {
    const native = await buildStateTree(w, nativeSha256, 'state_native')
    let nativeMs = 0
    for (let b = 0; b < w.batches.length; b++) {
      const t = await stateBatch(native.tree, w.batches[b] as [Uint8Array, Uint8Array][])
      if (b >= WARMUP_BATCHES) nativeMs += t
    }
    const nativeRate = (BATCH * BATCHES) / (nativeMs / 1000)
    report(`state_update_native_${name}`, Math.round(nativeRate), 'ops/s')
    report(`state_update_native_vs_mpt_ratio_${name}`, Number((nativeRate / mptRate).toFixed(2)), 'x')
  }
  return ratio
}

/**
 * Runs the tree's whole cycle once on a small state so the first measured size does not pay for
 * JIT compilation (the MPT's code is warmed the same way by {@link checkBulkLoad}).
 */
async function warmUp(): Promise<void> {
  const w = new Workload(5_000)
  const tree = await StateTree.open(new MemoryKVStore())
  for (let i = 0; i < w.n; i++) tree.put(w.key(i), w.value(i))
  await tree.commitAndWrite()
  for (const batch of w.batches) {
    for (const [k, v] of batch) tree.put(k, v)
    await tree.commitAndWrite()
  }
  for (const i of w.proofKeys.slice(0, 200)) {
    const { value, proof } = await tree.prove(w.key(i))
    verifyStateProof(tree.root, w.key(i), value, encodeStateProof(proof))
  }
}

/** Runs the benchmark for each size and reports `state_*` and `mpt_*` figures (see file comment). */
export async function runStateBench(report: Report, opts: { sizes: number[] } = { sizes: [1e4, 1e5, 1e6] }): Promise<void> {
  await checkBulkLoad()
  await warmUp()
  let lastRatio: number | undefined
  for (const n of opts.sizes) {
    progress(`size ${n}: generating workload`)
    lastRatio = await benchSize(new Workload(n), report)
  }
  if (lastRatio !== undefined) report('state_update_vs_mpt_ratio', Number(lastRatio.toFixed(2)), 'x')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const sizes = process.argv.slice(2).map(Number)
  await runStateBench((name, value, unit) => console.log(`BENCH core.${name} ${value} ${unit}`), {
    sizes: sizes.length > 0 ? sizes : [1e4, 1e5, 1e6],
  })
}
