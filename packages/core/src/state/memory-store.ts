/**
 * The in-memory twin of {@link KVStore}, used by tests, benchmarks and short-lived tools. It keeps
 * the same contract as the durable stores — values are copied in and out so a caller can never
 * mutate stored bytes, a batch is validated before any of it applies, iteration is a snapshot — and
 * adds synchronous fast paths for callers that know they hold a memory store.
 */
import { binaryStringToBytes, bytesToBinaryString } from './binary.js'
import type { IterateOptions, KVStore, WriteOp } from './kv-store.js'

export { binaryStringToBytes, bytesToBinaryString } from './binary.js'

function checkOp(op: WriteOp, i: number): void {
  if (typeof op !== 'object' || op === null) throw new TypeError(`write op ${i} is not an object`)
  if (!(op.key instanceof Uint8Array)) throw new TypeError(`write op ${i} has no Uint8Array key`)
  if (op.type === 'put') {
    if (!(op.value instanceof Uint8Array)) throw new TypeError(`write op ${i} (put) has no Uint8Array value`)
  } else if (op.type !== 'del') {
    throw new TypeError(`write op ${i} has unknown type ${String((op as { type: unknown }).type)}`)
  }
}

/** Initial arena size; it doubles as needed. */
const ARENA_INITIAL = 64 * 1024

/**
 * A {@link KVStore} held in memory; nothing survives the process.
 *
 * Keys are binary strings in a `Map` (`binary.ts`: JavaScript compares them in byte order); values
 * live in one growing byte arena, each behind a 4-byte length, and the map holds only their offsets.
 * A state tree writes millions of ~65-byte records: as separate `Uint8Array`s (~230 bytes of heap
 * each) or even strings they would be millions of objects for the garbage collector to trace on
 * every major collection, while offsets are plain small integers. Overwritten and deleted values
 * are reclaimed by compacting the arena once they make up half of it.
 */
export class MemoryKVStore implements KVStore {
  private readonly map = new Map<string, number>()
  /** Keys in order, rebuilt lazily: sorting on every insert would make bulk loads quadratic. */
  private sorted: string[] | undefined = []
  private arena = new Uint8Array(ARENA_INITIAL)
  private used = 0
  /** Arena bytes held by values no key points to any more. */
  private dead = 0

  /** Number of entries held. */
  get size(): number {
    return this.map.size
  }

  /** Synchronous {@link get}. */
  getSync(key: Uint8Array): Uint8Array | undefined {
    const at = this.map.get(bytesToBinaryString(key))
    return at === undefined ? undefined : this.valueAt(at)
  }

  /** The value under `key`, or `undefined`. */
  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.getSync(key)
  }

  /** Synchronous {@link write}: every op is checked before the first one applies. */
  writeSync(ops: readonly WriteOp[]): void {
    if (!Array.isArray(ops)) throw new TypeError('write ops must be an array')
    let bytes = 0
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i] as WriteOp
      checkOp(op, i)
      if (op.type === 'put') bytes += 4 + op.value.length
    }
    this.reserve(bytes)
    for (const op of ops) {
      const k = bytesToBinaryString(op.key)
      const old = this.map.get(k)
      if (old !== undefined) this.dead += 4 + this.lengthAt(old)
      if (op.type === 'put') {
        if (old === undefined) this.sorted = undefined
        this.map.set(k, this.append(op.value))
      } else if (old !== undefined) {
        this.map.delete(k)
        this.sorted = undefined
      }
    }
    if (this.dead > ARENA_INITIAL && this.dead * 2 > this.used) this.compact()
  }

  private lengthAt(at: number): number {
    const a = this.arena
    return (((a[at] as number) << 24) | ((a[at + 1] as number) << 16) | ((a[at + 2] as number) << 8) | (a[at + 3] as number)) >>> 0
  }

  private valueAt(at: number): Uint8Array {
    return this.arena.slice(at + 4, at + 4 + this.lengthAt(at))
  }

  /** Makes room for `n` more arena bytes. */
  private reserve(n: number): void {
    if (this.used + n <= this.arena.length) return
    let size = this.arena.length * 2
    while (size < this.used + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.arena.subarray(0, this.used))
    this.arena = next
  }

  /** Copies `v` into reserved arena space behind its length; returns its offset. */
  private append(v: Uint8Array): number {
    const at = this.used
    const a = this.arena
    const n = v.length
    a[at] = n >>> 24
    a[at + 1] = n >>> 16
    a[at + 2] = n >>> 8
    a[at + 3] = n
    a.set(v, at + 4)
    this.used = at + 4 + n
    return at
  }

  /** Rewrites the arena with live values only. */
  private compact(): void {
    const old = this.arena
    const oldOffsets = [...this.map]
    this.arena = new Uint8Array(Math.max(ARENA_INITIAL, this.used - this.dead))
    this.used = 0
    this.dead = 0
    for (const [k, at] of oldOffsets) {
      const n =
        4 +
        ((((old[at] as number) << 24) | ((old[at + 1] as number) << 16) | ((old[at + 2] as number) << 8) | (old[at + 3] as number)) >>> 0)
      this.arena.set(old.subarray(at, at + n), this.used)
      this.map.set(k, this.used)
      this.used += n
    }
  }

  /** Applies `ops` atomically. */
  async write(ops: readonly WriteOp[]): Promise<void> {
    this.writeSync(ops)
  }

  /** Synchronous {@link iterate}, returning the snapshot as an array. */
  entriesSync(opts: IterateOptions = {}): [Uint8Array, Uint8Array][] {
    if (this.sorted === undefined) this.sorted = [...this.map.keys()].sort()
    const keys = this.sorted
    const lo = opts.gte === undefined ? 0 : lowerBound(keys, bytesToBinaryString(opts.gte))
    const hi = opts.lt === undefined ? keys.length : lowerBound(keys, bytesToBinaryString(opts.lt))
    const limit = opts.limit ?? Number.POSITIVE_INFINITY
    const out: [Uint8Array, Uint8Array][] = []
    if (opts.reverse) {
      for (let i = hi - 1; i >= lo && out.length < limit; i--) out.push(this.entry(keys[i] as string))
    } else {
      for (let i = lo; i < hi && out.length < limit; i++) out.push(this.entry(keys[i] as string))
    }
    return out
  }

  /**
   * Entries of a key range in order. The range is read when iteration starts (a snapshot, like a
   * LevelDB iterator), so writes made while iterating do not show up half-way.
   */
  async *iterate(opts: IterateOptions = {}): AsyncGenerator<[Uint8Array, Uint8Array]> {
    yield* this.entriesSync(opts)
  }

  private entry(k: string): [Uint8Array, Uint8Array] {
    return [binaryStringToBytes(k), this.valueAt(this.map.get(k) as number)]
  }
}

/** First index whose key is >= `k` in the sorted array. */
function lowerBound(keys: readonly string[], k: string): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((keys[mid] as string) < k) lo = mid + 1
    else hi = mid
  }
  return lo
}
