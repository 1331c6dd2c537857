/**
 * The authenticated state tree: every key/value of the ledger's state, committed to by one 32-byte
 * root in each block header, with proofs of a key's value — or of its absence — that a light
 * client checks against that root (see `proof.ts`).
 *
 * ## Design
 *
 * A binary sparse Merkle tree over 256-bit paths `path = taggedHash(StateKey, key)`, compacted:
 * a subtree holding a single key is replaced by that key's leaf, placed at the highest position
 * where it is alone (as in Diem/Aptos's Jellyfish tree). Then
 *
 * - leaf     = `taggedHash(StateLeaf, path ‖ sha256(value))` — independent of depth, so a leaf can
 *              move up or down when neighbours come and go without being rehashed;
 * - internal = `taggedHash(StateNode, left ‖ right)`;
 * - empty    = 32 zero bytes.
 *
 * The root depends only on the set of key/value pairs, never on insertion order or history.
 * Expected leaf depth is about log2(n)+1.3, so a proof is ~22 siblings at 10^6 keys (~700 bytes
 * with the empty-sibling bitmap), against ~3 KB for a hexary Merkle-Patricia proof whose nodes
 * carry 16 child hashes each; and every hash is of a 65-byte preimage (two SHA-256 blocks) rather
 * than of a ~530-byte RLP branch.
 *
 * Measured against `@ethereumjs/mpt` 10.1.3 at 10^6 keys (`npx tsx test/bench/core-state.ts`, same
 * keys, both in memory, update batches interleaved, 2 shared cores): 12,081 vs 1,916 updates/s in
 * 1,000-update blocks (6.3x), 702 vs 2,621 bytes per proof of a present key, value included
 * (0.27x), 32k vs 4.7k proofs/s generated and 20.8k vs 2.8k verified.
 *
 * Choices made by measurement: SHA-256 of a 65-byte preimage takes 3.4–4.9 µs in `@noble/hashes`
 * (per-call objects), 2.2 µs through `node:crypto`'s hasher objects and 1.5 µs in the
 * allocation-free `sha256.ts` (since ~0.7 µs), so that is the default everywhere; a full node
 * routes it to OpenSSL's one-shot `crypto.hash` with a binary-string result (~0.26 µs, no
 * `Buffer`; `useSha256Backend` in `sha256.ts`). A hash injected per tree (`sha256` below) that
 * returns a fresh `Buffer` is slower in the tree (3.4k vs 12.4k updates/s at 10^5 keys); a resident
 * `Uint8Array(32)` costs ~230 bytes of heap against ~50 for a 32-character string, so resident
 * hashes, paths and values are binary strings, which halved the tree's memory and let 10^6 keys
 * build in the default 4 GB heap.
 *
 * ## Storage
 *
 * Each commit has a version (a full node passes the block height; by default the last plus one).
 * A node is stored under `nodePrefix ‖ version (8 bytes, big-endian) ‖ hash`, the version of the
 * commit that wrote it, and never deleted, so a proof against any committed root keeps working
 * (light clients ask about old heights). A branch record names each child's version beside its
 * hash. Keys that grow with the version, not keys scattered by hash, are what keep LevelDB from
 * rewriting old nodes: a memtable of new nodes becomes a table file that overlaps no older one, and
 * LevelDB moves it down the levels instead of merging it (Aptos's Jellyfish tree keys its nodes by
 * version for the same reason; `packages/node/docs/performance.md`).
 *
 * `namespace ‖ 'r' ‖ root → version` finds an older root's record. A flat index
 * `namespace ‖ 'v' ‖ key → value` makes {@link StateTree.get} one store read, and `namespace ‖ 'm'`
 * records the root that index describes (with its version and the last commit's), written in the
 * same batch. The latest values read or persisted are also kept in memory (bounded,
 * `valueCacheSize`), so a busy account costs no store read at all; a read that a commit overtakes
 * is never kept.
 *
 * ## Memory
 *
 * The tree keeps every node it builds or reads, linked parent to child, so the tree is its own
 * decoded-node cache: a hot path is pointer chasing, and only a node not yet read (a stub) costs an
 * `await`. Hashes, paths and leaf values are held as binary strings (`binary.ts`), ~0.4 KB per key
 * with its share of internal nodes. {@link StateTree.evict} trims it back to the top levels.
 *
 * ## Work per block
 *
 * Writes are staged in memory (with nestable checkpoints for per-transaction rollback). A commit
 * sorts the dirty keys by path, reads the nodes on their paths from the store in parallel rounds
 * (only nodes not already resident; a resident path costs no `await`), then rebuilds the dirty
 * paths synchronously, hashing each new node exactly once. It returns the new root and the write
 * ops instead of writing them, so the node can write them with the block, in the same write.
 */
import { setNewest } from '../bounded.js'
import { decode, encode, fixedBytes, struct, uvarint } from '../codec/codec.js'
import { bytesEqual, toHex } from '../codec/hex.js'
import { HASH_LENGTH, ZERO_HASH } from '../crypto/hash.js'
import { binaryStringToBytes, bytesToBinaryString, writeBinaryString } from './binary.js'
import { StateTreeError } from './errors.js'
import { BinaryStateHasher, type Sha256 } from './hasher.js'
import type { KVStore, WriteOp } from './kv-store.js'
import type { StateProof, StateProofResult } from './proof.js'
import {
  BRANCH,
  Branch,
  decodeNode,
  EMPTY_HASH,
  encodeBranch,
  encodeLeaf,
  hashOf,
  LEAF,
  Leaf,
  MAX_STATE_KEY_LENGTH,
  MAX_STATE_VALUE_LENGTH,
  Slab,
  STUB,
  Stub,
  type TreeNode,
} from './tree-node.js'

/** The `namespace ‖ 'm'` record: the root the flat index describes, its node's version, the last commit's version. */
const metaCodec = struct('StateMeta', { root: fixedBytes(HASH_LENGTH), rootVersion: uvarint, lastVersion: uvarint })

export { MAX_STATE_KEY_LENGTH, MAX_STATE_VALUE_LENGTH } from './tree-node.js'

/** The empty tree's root: the empty-subtree hash. */
export const EMPTY_STATE_ROOT: Uint8Array = ZERO_HASH

/** Default store namespace ('s'): keeps state records apart from blocks and receipts in one store. */
export const DEFAULT_STATE_NAMESPACE: Uint8Array = Uint8Array.of(0x73)

/** Stands in for the key and value of an existing leaf merged into a rebuild: it is reused, never re-encoded. */
const EMPTY = new Uint8Array(0)

/** Older roots kept resident (committed but not yet persisted, or recently proved against). */
const RECENT_ROOTS = 16

/** Options of {@link StateTree.open}. */
export interface StateTreeOptions {
  /** SHA-256 to hash with (e.g. a native one on a full node). Roots are the same for any correct one. */
  readonly sha256?: Sha256
  /** Key prefix of every record this tree stores; defaults to {@link DEFAULT_STATE_NAMESPACE}. */
  readonly namespace?: Uint8Array
  /**
   * Key prefix of the node records alone (`nodePrefix ‖ version ‖ hash`); defaults to
   * `namespace ‖ 'n'`. A full node puts them among its other records keyed by height.
   */
  readonly nodePrefix?: Uint8Array
  /**
   * How many values of the latest state to keep in memory for {@link StateTree.get} (default
   * {@link DEFAULT_VALUE_CACHE_SIZE}; 0: none). State values are at most a few hundred bytes.
   */
  readonly valueCacheSize?: number
}

/** Latest-state values kept in memory by default: the busy accounts of a loaded chain fit. */
export const DEFAULT_VALUE_CACHE_SIZE = 100_000

/** What {@link StateTree.commit} produces. */
export interface StateCommit {
  /** The new state root. */
  readonly root: Uint8Array
  /** Store writes that persist it; write them atomically together with the block that made them. */
  readonly ops: WriteOp[]
  /** This commit's number within the tree instance (1, 2, …), for {@link StateTree.markPersisted}. */
  readonly sequence: number
  /** The version its new nodes are stored under. */
  readonly version: number
}

/**
 * Reads of one state: a {@link StateTree} (its latest values, staged writes included) or a
 * committed root's snapshot ({@link StateTree.at}).
 */
export interface StateSource {
  /** The value under `key`; `undefined` when absent. */
  get(key: Uint8Array): Promise<Uint8Array | undefined>
  /**
   * The value under `key` when it can be read without waiting: the value, `null` when absent, or
   * `undefined` when only {@link get} can tell (a store without synchronous reads, or a read that
   * needs the tree's nodes). Contract execution reads through it first (`StateCache`).
   */
  tryGetSync?(key: Uint8Array): Uint8Array | null | undefined
}

/** A staged write; `value === undefined` stages a delete. */
interface Staged {
  readonly key: Uint8Array
  readonly value: Uint8Array | undefined
}

/** A dirty key during a commit, or a resident leaf merged into a rebuilt subtree. */
interface Item {
  /** The key's path as a binary string: strings compare in byte order natively. */
  readonly path: string
  readonly key: Uint8Array
  readonly value: Uint8Array | undefined
  /** Set when the item is an unchanged existing leaf, which is reused rather than rehashed. */
  readonly leaf?: Leaf
}

function bitAt(path: string, i: number): number {
  return (path.charCodeAt(i >>> 3) >>> (7 - (i & 7))) & 1
}

function isZero(h: Uint8Array): boolean {
  for (let i = 0; i < h.length; i++) if (h[i] !== 0) return false
  return true
}

function compareItems(a: Item, b: Item): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0
}

/** First index in [lo, hi) whose path has bit `depth` set; items there share the first `depth` bits. */
function split(items: readonly Item[], lo: number, hi: number, depth: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (bitAt((items[mid] as Item).path, depth) === 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** `a ‖ b`, where a number `b` is one byte. */
function concat(a: Uint8Array, b: number | Uint8Array): Uint8Array {
  const bLen = typeof b === 'number' ? 1 : b.length
  const out = new Uint8Array(a.length + bLen)
  out.set(a)
  if (typeof b === 'number') out[a.length] = b
  else out.set(b, a.length)
  return out
}

function sameValue(a: Uint8Array, b: string): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b.charCodeAt(i)) return false
  return true
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length === 0 || key.length > MAX_STATE_KEY_LENGTH) {
    throw new StateTreeError('INVALID_KEY', `state key must be 1..${MAX_STATE_KEY_LENGTH} bytes`, {
      details: { length: key instanceof Uint8Array ? key.length : undefined },
    })
  }
}

function checkValue(value: Uint8Array): void {
  if (!(value instanceof Uint8Array) || value.length > MAX_STATE_VALUE_LENGTH) {
    throw new StateTreeError('INVALID_VALUE', `state value must be a Uint8Array of at most ${MAX_STATE_VALUE_LENGTH} bytes`, {
      details: { length: value instanceof Uint8Array ? value.length : undefined },
    })
  }
}

/** The authenticated key-value state; see the file comment for the design. */
export class StateTree {
  private readonly hasher: BinaryStateHasher
  private readonly nodePrefix: Uint8Array
  private readonly flatPrefix: Uint8Array
  private readonly metaKey: Uint8Array
  private readonly rootIndexPrefix: Uint8Array
  /** The version of the last commit stored (-1: none); a commit's version must exceed it. */
  private lastVersion = -1
  /** The version the commit in progress writes its nodes under. */
  private commitVersion = 0

  private rootHash: string = EMPTY_HASH
  private rootNode: Leaf | Branch | null = null
  /** Whether the flat index in the store describes {@link rootHash} (false after opening an old root). */
  private flatValid = true
  /** Committed values whose ops may not be in the store yet; see {@link markPersisted}. */
  private unflushed = new Map<string, Uint8Array | undefined>()
  /**
   * Values of the latest committed state that are also in the store (read from it, or persisted
   * since): a hot key costs a map lookup instead of a store read. Bounded; the oldest go first.
   */
  private readonly recent = new Map<string, Uint8Array | undefined>()
  private readonly recentMax: number
  /**
   * Sequence number of the last commit. Not the commit object itself: that would pin its (possibly
   * huge) ops array after the caller has written and dropped it.
   */
  private commitSeq = 0
  private committing = false
  /** Sequence number of the last commit known to be in the store. */
  private persistedSeq = 0
  /** Recently committed or visited roots, most recent last (a small LRU). */
  private readonly roots = new Map<string, Leaf | Branch>()

  private staged = new Map<string, Staged>()
  /** One undo log per open checkpoint: each key's staged entry before the checkpoint first touched it. */
  private journal: Map<string, Staged | undefined>[] = []
  /** Write ops of the commit in progress. */
  private ops: WriteOp[] = []
  /** Buffers for the records of the commit in progress (one per commit, so old chunks can be freed). */
  private slab = new Slab()

  private constructor(
    private readonly store: KVStore,
    opts: StateTreeOptions,
  ) {
    this.hasher = new BinaryStateHasher(opts.sha256)
    this.recentMax = opts.valueCacheSize ?? DEFAULT_VALUE_CACHE_SIZE
    const ns = opts.namespace ?? DEFAULT_STATE_NAMESPACE
    this.nodePrefix = opts.nodePrefix ?? concat(ns, 0x6e)
    this.flatPrefix = concat(ns, 0x76)
    this.metaKey = concat(ns, 0x6d)
    this.rootIndexPrefix = concat(ns, 0x72)
  }

  /**
   * Opens the tree stored in `store` at `root`, or at the latest committed root when `root` is
   * omitted (the empty tree for an empty store). Throws {@link StateTreeError} `MISSING_NODE` when
   * the root was never committed to this store.
   */
  static async open(store: KVStore, root?: Uint8Array, opts: StateTreeOptions = {}): Promise<StateTree> {
    const t = new StateTree(store, opts)
    const raw = await store.get(t.metaKey)
    const latest = raw === undefined ? undefined : t.decodeMeta(raw)
    const r = root ?? latest?.root ?? ZERO_HASH
    if (!(r instanceof Uint8Array) || r.length !== HASH_LENGTH) throw new TypeError('state root must be 32 bytes')
    t.lastVersion = latest?.lastVersion ?? -1
    t.flatValid = latest === undefined ? isZero(r) : bytesEqual(latest.root, r)
    t.rootHash = bytesToBinaryString(r)
    if (!isZero(r)) {
      const version = latest !== undefined && t.flatValid ? latest.rootVersion : await t.versionOfRoot(t.rootHash)
      t.rootNode = await t.loadNode(t.rootHash, version)
      // A store without the latest-root record (one whose flat index was never written) still has
      // the root's version as a floor for the next commit.
      t.lastVersion = Math.max(t.lastVersion, version)
    }
    return t
  }

  private decodeMeta(raw: Uint8Array): { root: Uint8Array; rootVersion: number; lastVersion: number } {
    try {
      return decode(metaCodec, raw)
    } catch (cause) {
      throw new StateTreeError('CORRUPT_NODE', 'the state tree’s latest-root record does not decode', { cause })
    }
  }

  /** The version of the last commit (-1 before the first). */
  get version(): number {
    return this.lastVersion
  }

  /** The last committed root (staged writes are not in it). */
  get root(): Uint8Array {
    return binaryStringToBytes(this.rootHash)
  }

  /** {@link root} as a binary string: compared without making a new array (see `BlockState`). */
  get rootId(): string {
    return this.rootHash
  }

  /** Number of keys with staged (uncommitted) writes. */
  get stagedCount(): number {
    return this.staged.size
  }

  /** Number of open checkpoints. */
  get checkpointDepth(): number {
    return this.journal.length
  }

  /** The current value of `key`, staged writes included; `undefined` when absent. */
  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    checkKey(key)
    const id = bytesToBinaryString(key)
    const s = this.staged.get(id)
    if (s !== undefined) return s.value?.slice()
    if (this.flatValid) {
      const held = this.latestInMemory(id)
      if (held !== undefined) return held ?? undefined
      const seq = this.commitSeq
      const v = await this.store.get(concat(this.flatPrefix, key))
      // A commit that ran during the read may have changed the key: only an undisturbed read is kept.
      if (seq === this.commitSeq && this.flatValid) this.rememberValue(id, v?.slice())
      return v
    }
    const leaf = await this.findLeaf(this.rootNode, this.hasher.keyPathBinary(key))
    return leaf === undefined ? undefined : binaryStringToBytes(leaf.value)
  }

  /**
   * {@link get} without waiting, when that is possible (see {@link StateSource.tryGetSync}): staged
   * writes, then the latest values in memory, then the flat index through the store's synchronous
   * read. A value read from the store is remembered as {@link get} remembers it.
   */
  tryGetSync(key: Uint8Array): Uint8Array | null | undefined {
    checkKey(key)
    const id = bytesToBinaryString(key)
    const s = this.staged.get(id)
    if (s !== undefined) return s.value === undefined ? null : s.value.slice()
    return this.latestSync(id, key, true)
  }

  /**
   * The latest committed value of `key` (`id` is its binary string) without waiting: `null` when
   * absent, `undefined` when the flat index is not in use or the store has no synchronous read.
   * Synchronous, so no commit can move the tree between the look-ups.
   */
  private latestSync(id: string, key: Uint8Array, remember: boolean): Uint8Array | null | undefined {
    if (!this.flatValid) return undefined
    const held = this.latestInMemory(id)
    if (held !== undefined) return held
    if (this.store.getSync === undefined) return undefined
    const v = this.store.getSync(concat(this.flatPrefix, key))
    if (remember) this.rememberValue(id, v?.slice())
    return v ?? null
  }

  /**
   * The latest committed value of the key `id` if memory holds it (committed values not yet in the
   * store, then recent reads): a copy, `null` when known absent, `undefined` when not held.
   */
  private latestInMemory(id: string): Uint8Array | null | undefined {
    if (this.unflushed.has(id)) return this.unflushed.get(id)?.slice() ?? null
    if (this.recent.has(id)) return this.recent.get(id)?.slice() ?? null
    return undefined
  }

  /**
   * The value of `key` in the state committed as `root` (the last committed root, or any root
   * ever committed to the store). Unlike {@link get} it never sees staged writes, nor a commit
   * made after `root`: a root's nodes never change, so reads of one root agree with each other
   * however many blocks commit meanwhile. The latest root is read as {@link get} reads (memory or
   * the flat index, falling back to the walk when a commit overtakes the read); an older one walks
   * the tree from that root.
   */
  async getAt(key: Uint8Array, root: Uint8Array): Promise<Uint8Array | undefined> {
    checkKey(key)
    if (!(root instanceof Uint8Array) || root.length !== HASH_LENGTH) throw new TypeError('state root must be 32 bytes')
    // The latest root: its values are in memory or the flat index (one read, not one per level),
    // as long as no commit moves the tree while the read is out.
    if (this.flatValid && bytesToBinaryString(root) === this.rootHash) {
      const held = this.latestInMemory(bytesToBinaryString(key))
      if (held !== undefined) return held ?? undefined
      const seq = this.commitSeq
      const v = await this.store.get(concat(this.flatPrefix, key))
      if (seq === this.commitSeq) return v
    }
    const leaf = await this.findLeaf(await this.rootAt(root), this.hasher.keyPathBinary(key))
    return leaf === undefined ? undefined : binaryStringToBytes(leaf.value)
  }

  /** The state committed as `root`, read through {@link getAt}: a snapshot (see there). */
  at(root: Uint8Array): StateSource {
    const r = root.slice()
    const id = bytesToBinaryString(r)
    return {
      get: (key) => this.getAt(key, r),
      // Without waiting only while `root` is the latest (an older root is read by walking nodes).
      // Not remembered: a query's reads should not push a block's accounts out of memory.
      tryGetSync: (key) => {
        checkKey(key)
        return id === this.rootHash ? this.latestSync(bytesToBinaryString(key), key, false) : undefined
      },
    }
  }

  /** Stages `key = value`; visible to {@link get} at once, part of the root after {@link commit}. */
  put(key: Uint8Array, value: Uint8Array): void {
    checkKey(key)
    checkValue(value)
    this.stage(key.slice(), value.slice())
  }

  /**
   * {@link put} without the copies, for a caller that hands `key` and `value` over and never
   * changes them afterwards (block execution: its keys and values are made for the write).
   */
  putOwned(key: Uint8Array, value: Uint8Array): void {
    checkKey(key)
    checkValue(value)
    this.stage(key, value)
  }

  /** Stages the removal of `key` (a no-op on the root if it is absent). */
  delete(key: Uint8Array): void {
    checkKey(key)
    this.stage(key.slice(), undefined)
  }

  /** Stages a write of `key` and `value`, which are the tree's from now on. */
  private stage(key: Uint8Array, value: Uint8Array | undefined): void {
    const id = bytesToBinaryString(key)
    const undo = this.journal[this.journal.length - 1]
    if (undo !== undefined && !undo.has(id)) undo.set(id, this.staged.get(id))
    this.staged.set(id, { key, value })
  }

  /** Opens a checkpoint: a later {@link revert} undoes the staged writes made after this point. */
  checkpoint(): void {
    this.journal.push(new Map())
  }

  /** Undoes the staged writes since the innermost open checkpoint, and closes it. */
  revert(): void {
    const undo = this.journal.pop()
    if (undo === undefined) throw new StateTreeError('CHECKPOINT', 'revert() without an open checkpoint')
    for (const [id, prev] of undo) {
      if (prev === undefined) this.staged.delete(id)
      else this.staged.set(id, prev)
    }
  }

  /** Keeps the staged writes since the innermost open checkpoint, and closes it (they join the enclosing one). */
  commitCheckpoint(): void {
    const undo = this.journal.pop()
    if (undo === undefined) throw new StateTreeError('CHECKPOINT', 'commitCheckpoint() without an open checkpoint')
    const parent = this.journal[this.journal.length - 1]
    if (parent === undefined) return
    // The enclosing checkpoint must restore what it saw, so an earlier undo entry wins.
    for (const [id, prev] of undo) if (!parent.has(id)) parent.set(id, prev)
  }

  /** Discards every staged write and open checkpoint. */
  rollback(): void {
    this.staged = new Map()
    this.journal = []
  }

  /**
   * Folds the staged writes into a new root and returns it with the store ops that persist it
   * (new nodes, flat-index updates, the latest-root marker). The tree moves to the new root at
   * once; write the ops (atomically, with the block), then call {@link markPersisted}.
   *
   * `version` (default: the last plus one) is the version the new nodes are stored under; it must
   * be a safe integer above the last commit's ({@link version}). A full node passes the block
   * height, so the nodes sort with the block that made them.
   */
  async commit(version: number = this.lastVersion + 1): Promise<StateCommit> {
    if (this.journal.length !== 0) throw new StateTreeError('CHECKPOINT', `commit() with ${this.journal.length} open checkpoint(s)`)
    if (this.committing) throw new StateTreeError('BUSY', 'commit() while another commit is running')
    if (!Number.isSafeInteger(version) || version <= this.lastVersion) {
      throw new StateTreeError('VERSION', `commit version must be an integer above the last one (${this.lastVersion}), got ${version}`)
    }
    this.committing = true
    try {
      return await this.commitStaged(version)
    } finally {
      this.committing = false
    }
  }

  private async commitStaged(version: number): Promise<StateCommit> {
    // Writes staged while this commit awaits the store are not part of it and must survive it.
    const batch = [...this.staged]
    const items: Item[] = []
    let hasDelete = false
    for (const [, s] of batch) {
      items.push({ path: this.hasher.keyPathBinary(s.key), key: s.key, value: s.value })
      if (s.value === undefined) hasDelete = true
    }
    items.sort(compareItems)
    await this.loadPaths(items, hasDelete)

    const ops: WriteOp[] = []
    this.ops = ops
    this.slab = new Slab()
    this.commitVersion = version
    let next: TreeNode | null
    try {
      next = this.update(this.rootNode, 0, items, 0, items.length)
    } finally {
      this.ops = []
    }
    if (next !== null && next.kind === STUB) throw new Error('state tree: root left unloaded')
    if (this.flatValid) {
      for (const [id, { key, value }] of batch) {
        this.unflushed.set(id, value)
        const k = concat(this.flatPrefix, key)
        ops.push(value === undefined ? { type: 'del', key: k } : { type: 'put', key: k, value })
      }
    }
    const root = hashOf(next)
    const rootBytes = binaryStringToBytes(root)
    const rootVersion = next === null ? 0 : next.version
    if (next !== null && next !== this.rootNode) {
      ops.push({ type: 'put', key: concat(this.rootIndexPrefix, rootBytes), value: encode(uvarint, rootVersion) })
    }
    if (this.flatValid) {
      ops.push({ type: 'put', key: this.metaKey, value: encode(metaCodec, { root: rootBytes, rootVersion, lastVersion: version }) })
    }
    this.rootNode = next
    this.rootHash = root
    this.lastVersion = version
    if (next !== null) this.remember(root, next)
    for (const [id, s] of batch) if (this.staged.get(id) === s) this.staged.delete(id)
    return { root: rootBytes, ops, sequence: ++this.commitSeq, version }
  }

  /**
   * Tells the tree that the ops of `commit` — and of every commit before it — are in the store,
   * so it can drop the in-memory copy of their values. Calling it for an older commit is a no-op.
   */
  markPersisted(commit: StateCommit): void {
    if (commit.sequence !== this.commitSeq) return
    this.persistedSeq = commit.sequence
    for (const [id, v] of this.unflushed) this.rememberValue(id, v)
    this.unflushed = new Map()
    // Older roots can now be read back from the store; holding their nodes would pin old versions.
    // The latest stays: readers of the last stored state (`at`) still use it while the next
    // block commits, which replaces it here one block later.
    this.roots.clear()
    if (this.rootNode !== null) this.remember(this.rootHash, this.rootNode)
  }

  private rememberValue(id: string, value: Uint8Array | undefined): void {
    if (this.recentMax === 0) return
    setNewest(this.recent, id, value, this.recentMax)
  }

  /** {@link commit}, written straight to the tree's store; returns the new root. */
  async commitAndWrite(): Promise<Uint8Array> {
    const c = await this.commit()
    await this.store.write(c.ops)
    this.markPersisted(c)
    return c.root
  }

  /**
   * Forgets resident nodes deeper than `depth`, replacing them with stubs that are read back from
   * the store on the next visit. The tree otherwise keeps every node it has built or read, which is
   * fastest but grows with the state; a long-running node calls this now and then to bound memory
   * (the top 16 levels are ~2^17 nodes, a few MB). Only persisted nodes can be forgotten, so this
   * throws {@link StateTreeError} `UNPERSISTED` while a commit's ops are not marked written, and
   * `BUSY` while a commit runs.
   */
  evict(depth = 16): void {
    if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`evict depth must be a positive integer, got ${depth}`)
    if (this.persistedSeq !== this.commitSeq) {
      throw new StateTreeError('UNPERSISTED', 'evict() before the last commit was marked persisted')
    }
    // A running commit has loaded its paths and rebuilds them after its last read.
    if (this.committing) throw new StateTreeError('BUSY', 'evict() while a commit is running')
    this.roots.clear()
    const cut = (n: TreeNode | null): TreeNode | null => (n === null || n.kind === STUB ? n : new Stub(n.hash, n.version))
    const walk = (n: TreeNode | null, d: number): void => {
      if (n === null || n.kind !== BRANCH) return
      if (d + 1 >= depth) {
        n.left = cut(n.left)
        n.right = cut(n.right)
        return
      }
      walk(n.left, d + 1)
      walk(n.right, d + 1)
    }
    walk(this.rootNode, 0)
  }

  /**
   * A proof of `key`'s value (or absence) at `root` — by default the last committed root; any
   * root ever committed to the store works. Check it with {@link verifyStateProof}.
   */
  async prove(key: Uint8Array, root?: Uint8Array): Promise<StateProofResult> {
    checkKey(key)
    let node: TreeNode | null = root === undefined ? this.rootNode : await this.rootAt(root)
    const path = this.hasher.keyPathBinary(key)
    const siblings: Uint8Array[] = []
    let parent: Branch | undefined
    for (let depth = 0; ; depth++) {
      if (node !== null && node.kind === STUB) node = await this.attach(parent as Branch, node)
      if (node === null) return { value: undefined, proof: { siblings } }
      if (node.kind === LEAF) {
        const value = binaryStringToBytes(node.value)
        if (node.path === path) return { value, proof: { siblings } }
        const leaf = { path: binaryStringToBytes(node.path), valueHash: this.hasher.valueHash(value) }
        const proof: StateProof = { siblings, leaf }
        return { value: undefined, proof }
      }
      const right = bitAt(path, depth) === 1
      siblings.push(binaryStringToBytes(hashOf(right ? node.left : node.right)))
      parent = node
      node = right ? node.right : node.left
    }
  }

  // -------------------------------------------------------------------------------------------
  // Reading nodes

  /** The store key of the node with hash `hash` written at `version`. */
  private nodeKey(version: number, hash: string): Uint8Array {
    const p = this.nodePrefix
    const out = new Uint8Array(p.length + 8 + HASH_LENGTH)
    out.set(p)
    const o = p.length
    const high = Math.floor(version / 0x1_0000_0000)
    const low = version >>> 0
    out[o] = high >>> 24
    out[o + 1] = (high >>> 16) & 0xff
    out[o + 2] = (high >>> 8) & 0xff
    out[o + 3] = high & 0xff
    out[o + 4] = low >>> 24
    out[o + 5] = (low >>> 16) & 0xff
    out[o + 6] = (low >>> 8) & 0xff
    out[o + 7] = low & 0xff
    writeBinaryString(out, o + 8, hash)
    return out
  }

  private async loadNode(hash: string, version: number): Promise<Leaf | Branch> {
    const record = await this.store.get(this.nodeKey(version, hash))
    if (record === undefined) {
      throw new StateTreeError('MISSING_NODE', 'state node not in the store', {
        details: { hash: toHex(binaryStringToBytes(hash)), version },
      })
    }
    return decodeNode(hash, version, record)
  }

  /** The version an older root's node is stored under, from the root index. */
  private async versionOfRoot(id: string): Promise<number> {
    const raw = await this.store.get(concat(this.rootIndexPrefix, binaryStringToBytes(id)))
    if (raw === undefined) {
      throw new StateTreeError('MISSING_NODE', 'state root not in the store', { details: { root: toHex(binaryStringToBytes(id)) } })
    }
    try {
      return decode(uvarint, raw)
    } catch (cause) {
      throw new StateTreeError('CORRUPT_NODE', 'a state root’s version record does not decode', { cause })
    }
  }

  /**
   * Loads a stub and puts the loaded node in its parent's slot, so the next visit needs no read.
   * Two readers may load the same stub at once (a proof during a commit): the one that lands
   * second gets the node the first put in the slot, so everything either goes on to load below it
   * hangs in the tree (a commit's path must be resident in the tree itself, not in a copy).
   */
  private async attach(parent: Branch, stub: Stub): Promise<Leaf | Branch> {
    const node = await this.loadNode(stub.hash, stub.version)
    if (parent.left === stub) parent.left = node
    else if (parent.right === stub) parent.right = node
    else {
      const slot = parent.left?.hash === stub.hash ? parent.left : parent.right
      if (slot !== null && slot.kind !== STUB && slot.hash === stub.hash) return slot
    }
    return node
  }

  private async rootAt(root: Uint8Array): Promise<Leaf | Branch | null> {
    if (!(root instanceof Uint8Array) || root.length !== HASH_LENGTH) throw new TypeError('state root must be 32 bytes')
    const id = bytesToBinaryString(root)
    if (id === this.rootHash) return this.rootNode
    if (id === EMPTY_HASH) return null
    const known = this.roots.get(id)
    if (known !== undefined) {
      this.roots.delete(id)
      this.roots.set(id, known)
      return known
    }
    const node = await this.loadNode(id, await this.versionOfRoot(id))
    this.remember(id, node)
    return node
  }

  private remember(id: string, node: Leaf | Branch): void {
    setNewest(this.roots, id, node, RECENT_ROOTS)
  }

  private async findLeaf(node: TreeNode | null, path: string): Promise<Leaf | undefined> {
    let parent: Branch | undefined
    for (let depth = 0; ; depth++) {
      if (node !== null && node.kind === STUB) node = await this.attach(parent as Branch, node)
      if (node === null) return undefined
      if (node.kind === LEAF) return node.path === path ? node : undefined
      parent = node
      node = bitAt(path, depth) === 1 ? node.right : node.left
    }
  }

  /**
   * Makes resident every node a commit of `items` will visit: the nodes on the dirty paths and,
   * when something is deleted, their siblings (a deletion can pull a sibling leaf up, which needs
   * to know whether the sibling is a leaf). Reads go out in parallel, one round per tree level
   * that is not resident yet; a fully resident tree costs one synchronous walk and no `await`.
   */
  private async loadPaths(items: readonly Item[], withSiblings: boolean): Promise<void> {
    interface Need {
      parent: Branch
      stub: Stub
      depth: number
      lo: number
      hi: number
    }
    let needs: Need[] = []
    const walk = (node: TreeNode | null, parent: Branch | undefined, depth: number, lo: number, hi: number): void => {
      if (node === null || node.kind === LEAF) return
      if (node.kind === STUB) {
        needs.push({ parent: parent as Branch, stub: node, depth, lo, hi })
        return
      }
      if (lo === hi) return
      const mid = split(items, lo, hi, depth)
      if (lo < mid || withSiblings) walk(node.left, node, depth + 1, lo, mid)
      if (mid < hi || withSiblings) walk(node.right, node, depth + 1, mid, hi)
    }
    walk(this.rootNode, undefined, 0, 0, items.length)
    while (needs.length > 0) {
      const round = needs
      needs = []
      const loaded = await Promise.all(round.map((n) => this.attach(n.parent, n.stub)))
      for (let i = 0; i < round.length; i++) {
        const n = round[i] as Need
        walk(loaded[i] as Leaf | Branch, n.parent, n.depth, n.lo, n.hi)
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Rebuilding (synchronous: everything it touches is resident)

  private update(node: TreeNode | null, depth: number, items: readonly Item[], lo: number, hi: number): TreeNode | null {
    if (lo === hi) return node
    if (node === null) {
      const puts: Item[] = []
      for (let i = lo; i < hi; i++) if ((items[i] as Item).value !== undefined) puts.push(items[i] as Item)
      return this.build(depth, puts, 0, puts.length)
    }
    if (node.kind === LEAF) return this.mergeLeaf(node, depth, items, lo, hi)
    if (node.kind === STUB) throw new Error('state tree: dirty path not loaded')
    const mid = split(items, lo, hi, depth)
    const l = this.update(node.left, depth + 1, items, lo, mid)
    const r = this.update(node.right, depth + 1, items, mid, hi)
    if (l === node.left && r === node.right) return node
    return this.join(l, r)
  }

  /** Rebuilds the subtree at an existing leaf's position from that leaf and the dirty keys below it. */
  private mergeLeaf(leaf: Leaf, depth: number, items: readonly Item[], lo: number, hi: number): TreeNode | null {
    const merged: Item[] = []
    let seen = false
    const own: Item = { path: leaf.path, key: EMPTY, value: EMPTY, leaf }
    for (let i = lo; i < hi; i++) {
      const it = items[i] as Item
      if (!seen && compareItems(own, it) < 0) {
        merged.push(own)
        seen = true
      }
      if (it.path === leaf.path) {
        seen = true
        if (it.value === undefined) continue
        // Rewriting the same value keeps the same leaf: no hash, no store write.
        merged.push(sameValue(it.value, leaf.value) ? own : it)
      } else if (it.value !== undefined) {
        merged.push(it)
      }
    }
    if (!seen) merged.push(own)
    if (merged.length === 1 && merged[0] === own) return leaf
    return this.build(depth, merged, 0, merged.length)
  }

  /** Builds the subtree at `depth` holding exactly `items[lo..hi)` (all present values). */
  private build(depth: number, items: readonly Item[], lo: number, hi: number): TreeNode | null {
    if (lo === hi) return null
    if (hi - lo === 1) {
      const it = items[lo] as Item
      return it.leaf ?? this.newLeaf(it)
    }
    const mid = split(items, lo, hi, depth)
    return this.join(this.build(depth + 1, items, lo, mid), this.build(depth + 1, items, mid, hi))
  }

  /** The node over two children, keeping the tree compact: a leaf with an empty sibling moves up. */
  private join(l: TreeNode | null, r: TreeNode | null): TreeNode | null {
    if (l === null || r === null) {
      const only = l ?? r
      if (only === null) return null
      if (only.kind === LEAF) return only
      if (only.kind === STUB) throw new Error('state tree: sibling of a deletion not loaded')
    }
    const hash = this.hasher.nodeBinary(hashOf(l), hashOf(r))
    const v = this.commitVersion
    this.ops.push({ type: 'put', key: this.nodeKey(v, hash), value: encodeBranch(l, r, this.slab) })
    return new Branch(hash, l, r, v)
  }

  private newLeaf(it: Item): Leaf {
    const value = it.value as Uint8Array
    const hash = this.hasher.leafBinary(it.path, this.hasher.valueHash(value))
    const v = this.commitVersion
    this.ops.push({ type: 'put', key: this.nodeKey(v, hash), value: encodeLeaf(it.path, it.key, value, this.slab) })
    return new Leaf(hash, it.path, bytesToBinaryString(value), v)
  }
}
