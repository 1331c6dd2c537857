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

/**
 * A {@link KVStore} held in a `Map`; nothing survives the process. Keys and values are kept as
 * binary strings: a short string costs a header and its bytes, while a small `Uint8Array` costs
 * a typed-array object and a buffer object on top — a 10^6-key state tree's store is about a third
 * of the size this way.
 */
export class MemoryKVStore implements KVStore {
  private readonly map = new Map<string, string>()
  /** Keys in order, rebuilt lazily: sorting on every insert would make bulk loads quadratic. */
  private sorted: string[] | undefined = []

  /** Number of entries held. */
  get size(): number {
    return this.map.size
  }

  /** Synchronous {@link get}. */
  getSync(key: Uint8Array): Uint8Array | undefined {
    const v = this.map.get(bytesToBinaryString(key))
    return v === undefined ? undefined : binaryStringToBytes(v)
  }

  /** The value under `key`, or `undefined`. */
  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.getSync(key)
  }

  /** Synchronous {@link write}: every op is checked before the first one applies. */
  writeSync(ops: readonly WriteOp[]): void {
    if (!Array.isArray(ops)) throw new TypeError('write ops must be an array')
    for (let i = 0; i < ops.length; i++) checkOp(ops[i] as WriteOp, i)
    for (const op of ops) {
      const k = bytesToBinaryString(op.key)
      if (op.type === 'put') {
        if (this.sorted !== undefined && !this.map.has(k)) this.sorted = undefined
        this.map.set(k, bytesToBinaryString(op.value))
      } else if (this.map.delete(k)) {
        this.sorted = undefined
      }
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
    return [binaryStringToBytes(k), binaryStringToBytes(this.map.get(k) as string)]
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
