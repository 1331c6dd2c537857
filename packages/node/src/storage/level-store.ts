/**
 * A {@link KVStore} on one LevelDB database (`classic-level`). Every `write` is one LevelDB
 * batch, applied atomically, and synced to disk by default, so a kill -9 (or a power cut, with
 * sync on) at any instant leaves either all of it or none of it. A full node keeps two of them
 * (`SplitKVStore`).
 */
import { type IterateOptions, type KVStore, LoopchainError, type WriteOp } from '@loopchain/core'
import { ClassicLevel } from 'classic-level'

/** The database could not be opened: `LOCKED` when another process has it open (LevelDB's lock). */
export class StoreError extends LoopchainError<'LOCKED' | 'OPEN_FAILED'> {}

/** Options of {@link LevelKVStore.open}. */
export interface LevelStoreOptions {
  /**
   * fsync each batch before `write` resolves (default true). Turning it off keeps a process crash
   * safe (the OS still holds the data) but not a machine crash; benchmarks may.
   */
  readonly sync?: boolean
  /** LevelDB's block cache, in bytes (default 64 MiB: the hot state tree nodes stay resident). */
  readonly cacheSize?: number
  /**
   * LevelDB's memtable, in bytes (default {@link DEFAULT_WRITE_BUFFER_SIZE}): writes gather there
   * before LevelDB sorts them into a table file. A larger one means fewer, larger level-0 files,
   * so compactions rewrite less. It is allocated as it fills; up to twice this while a full one is
   * being written out.
   */
  readonly writeBufferSize?: number
  /** Create the database when there is none at the location (default true); otherwise `OPEN_FAILED`. */
  readonly createIfMissing?: boolean
}

/**
 * 32 MiB, not LevelDB's 4 MiB. A validator writes mostly state-tree nodes under hash keys, which
 * no compaction can drop, so every byte is rewritten at each level it passes. Replaying a
 * validator-like write load (3,000 blocks of 500 transfers, ~1.47 GB of keys and values), LevelDB
 * wrote 8,167 MiB of table files with 4 MiB and 4,336 MiB with 32 MiB, and the process used 11%
 * less CPU.
 * `npm run bench -- node` prints the node's own figure (`node.store_write_amplification`).
 */
export const DEFAULT_WRITE_BUFFER_SIZE = 32 * 1024 * 1024

/** The sizes a {@link LevelKVStore} was opened with, in bytes. */
export interface StoreSettings {
  readonly cacheSize: number
  readonly writeBufferSize: number
}

/** What a store has written, for the node's metrics. */
export interface StoreWriteStats {
  /** Bytes of keys and values written through {@link LevelKVStore.write} since the store opened. */
  readonly writtenBytes: number
  /**
   * Bytes LevelDB wrote to its table files since the store opened: memtable flushes and
   * compactions, in MiB rounded per level (as LevelDB reports them). Over {@link writtenBytes},
   * the write amplification beneath LevelDB's log.
   */
  readonly tableBytesWritten: number
  /** Bytes LevelDB's compactions read back from table files since the store opened, likewise. */
  readonly tableBytesRead: number
}

/**
 * The totals of LevelDB's `leveldb.stats` table (one row per level: level, files, size MB,
 * seconds, read MB, written MB), in bytes. Rows that do not parse are left out.
 */
export function parseLevelDbStats(stats: string): { read: number; written: number } {
  let read = 0
  let written = 0
  for (const line of stats.split('\n')) {
    const cols = line.trim().split(/\s+/)
    if (cols.length !== 6 || !cols.every((c) => /^\d+(\.\d+)?$/.test(c))) continue
    read += Number(cols[4])
    written += Number(cols[5])
  }
  return { read: read * 1024 * 1024, written: written * 1024 * 1024 }
}

/**
 * LevelDB hands back Node Buffers; callers get plain Uint8Arrays (a Buffer's `slice` aliases
 * instead of copying, and Buffers compare unequal to Uint8Arrays in deep equality).
 */
function plain(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

/** Typed arrays up to this size live inside V8's heap (a build constant of V8). */
const MAX_ON_HEAP_BYTES = 64

/** Bytes of `b` to copy out of the heap: its length when it is a typed array that may live inside. */
function stagedBytes(b: unknown): number {
  return b instanceof Uint8Array && b.byteLength <= MAX_ON_HEAP_BYTES ? b.byteLength : 0
}

/**
 * Copies of a batch's small keys and values in one buffer outside V8's heap. LevelDB's binding
 * reads each argument through N-API, which moves a typed array of 64 bytes or fewer out of the
 * heap first: a malloc, a copy and a buffer record for the GC to sweep, for most keys (~50 bytes:
 * chain, kind, hash) and many values of a block's thousands of writes. One buffer per batch and
 * a view per item cost a fraction of that. Larger arrays are outside the heap already.
 */
class OffHeapStaging {
  private readonly buf: Uint8Array | undefined
  private at = 0

  constructor(ops: readonly WriteOp[]) {
    let n = 0
    for (const op of ops) {
      n += stagedBytes(op.key)
      if (op.type === 'put') n += stagedBytes(op.value)
    }
    // A plain Uint8Array of more than 64 bytes, so outside the heap whatever `n` is (a Buffer's
    // `subarray` would ask for `.buffer` through a slower runtime call on every item).
    this.buf = n > 0 ? new Uint8Array(Math.max(n, MAX_ON_HEAP_BYTES + 1)) : undefined
  }

  /** `b`, or its copy outside the heap when it may be inside. Anything else is left for LevelDB to refuse. */
  outside(b: Uint8Array): Uint8Array {
    if (stagedBytes(b) === 0 || this.buf === undefined) return b
    const at = this.at
    this.buf.set(b, at)
    this.at = at + b.byteLength
    return this.buf.subarray(at, this.at)
  }
}

/** A LevelDB database behind the {@link KVStore} interface. */
export class LevelKVStore implements KVStore {
  private constructor(
    private readonly db: ClassicLevel<Uint8Array, Uint8Array>,
    private readonly sync: boolean,
    /** Where the database lives on disk. */
    readonly location: string,
    /** The block cache and memtable sizes LevelDB was opened with, in bytes. */
    readonly settings: StoreSettings,
  ) {}

  /** Opens (creating when missing) the database at `location`. */
  static async open(location: string, opts: LevelStoreOptions = {}): Promise<LevelKVStore> {
    const settings: StoreSettings = {
      cacheSize: opts.cacheSize ?? 64 * 1024 * 1024,
      writeBufferSize: opts.writeBufferSize ?? DEFAULT_WRITE_BUFFER_SIZE,
    }
    const db = new ClassicLevel<Uint8Array, Uint8Array>(location, { keyEncoding: 'view', valueEncoding: 'view', ...settings })
    try {
      await db.open({ createIfMissing: opts.createIfMissing ?? true })
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause
      if (cause?.code === 'LEVEL_LOCKED')
        throw new StoreError('LOCKED', `the database at ${location} is in use by another process (is this node already running?)`, {
          penalize: false,
          cause: e,
        })
      throw new StoreError('OPEN_FAILED', `cannot open the database at ${location}: ${cause?.message ?? (e as Error).message}`, {
        penalize: false,
        cause: e,
      })
    }
    const store = new LevelKVStore(db, opts.sync ?? true, location, settings)
    store.writeStats()
    return store
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    const v = await this.db.get(key)
    return v === undefined ? undefined : plain(v)
  }

  /**
   * {@link get} on the calling thread: a few µs from LevelDB's block cache, a disk read otherwise.
   * Contract execution uses it for the keys its caches miss (`KVStore.getSync`).
   */
  getSync(key: Uint8Array): Uint8Array | undefined {
    const v = this.db.getSync(key)
    return v === undefined ? undefined : plain(v)
  }

  /** Bytes of keys and values written since open (see {@link writeStats}). */
  private written = 0
  /**
   * LevelDB's table totals when the store opened: opening writes out what the last process left
   * in LevelDB's log (up to a memtable), which this process did not write.
   */
  private tablesAtOpen: { read: number; written: number } | undefined
  /** The last figures read, for after the database is closed (LevelDB answers nothing then). */
  private lastStats: StoreWriteStats = { writtenBytes: 0, tableBytesWritten: 0, tableBytesRead: 0 }

  /**
   * What this store has written since it opened, and what LevelDB wrote beneath it since then;
   * once closed, the last figures read.
   */
  writeStats(): StoreWriteStats {
    if (this.db.status !== 'open') return this.lastStats
    const t = parseLevelDbStats(this.db.getProperty('leveldb.stats'))
    this.tablesAtOpen ??= t
    this.lastStats = {
      writtenBytes: this.written,
      tableBytesWritten: t.written - this.tablesAtOpen.written,
      tableBytesRead: t.read - this.tablesAtOpen.read,
    }
    return this.lastStats
  }

  async write(ops: readonly WriteOp[]): Promise<void> {
    if (ops.length === 0) return
    // A chained batch, not an array one: the same single atomic write, at about a quarter of the
    // CPU per operation (abstract-level copies and re-normalises every operation object of an
    // array batch; `npm run bench -- node` prints both, ~2.9 vs ~10.7 µs per put here). A block
    // writes thousands of them.
    const staged = new OffHeapStaging(ops)
    const batch = this.db.batch()
    let bytes = 0
    try {
      for (const op of ops) {
        if (op.type === 'put') {
          batch.put(staged.outside(op.key), staged.outside(op.value))
          bytes += op.key.byteLength + op.value.byteLength
        } else {
          batch.del(staged.outside(op.key))
          bytes += op.key.byteLength
        }
      }
    } catch (e) {
      await batch.close()
      throw e
    }
    await batch.write({ sync: this.sync })
    this.written += bytes
  }

  async *iterate(opts: IterateOptions = {}): AsyncIterable<[Uint8Array, Uint8Array]> {
    const it = this.db.iterator({
      ...(opts.gte ? { gte: opts.gte } : {}),
      ...(opts.lt ? { lt: opts.lt } : {}),
      reverse: opts.reverse ?? false,
      limit: opts.limit ?? -1,
    })
    try {
      for await (const [k, v] of it) yield [plain(k), plain(v)]
    } finally {
      await it.close()
    }
  }

  /** Closes the database; the store is unusable afterwards. */
  async close(): Promise<void> {
    await this.db.close()
  }
}
