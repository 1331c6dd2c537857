/**
 * The node's database as two LevelDB databases behind one {@link KVStore}: records keyed by height
 * in one, everything else in the other.
 *
 * Why two. LevelDB sorts what it writes into files and merges a new file into the older ones it
 * overlaps by key. Records that only ever go in at the newest height (a block, its receipts, the
 * state-tree nodes that block wrote: see {@link HEIGHT_KEYED}) overlap nothing older when they are
 * alone in their database, so LevelDB moves their files down its levels without rewriting them.
 * Records under hashes (the transaction index, the block-hash index) and records rewritten in place
 * (state values, the head, the consensus WAL) are scattered over the whole key range: in the same
 * database they made every new file overlap every old one, and each merge rewrote all of LevelDB's
 * first level, height-keyed records included. At ~2,000 transactions a second that was an ~80 MB
 * rewrite about once a minute on every validator at once (`packages/node/docs/performance.md`).
 *
 * The cost is atomicity across the two, and it needs both written with `sync` (the default): with
 * it off, a machine crash could keep the second write and lose the first. {@link write} writes the height-keyed part of a batch
 * first and the rest second, each atomically. The node's commit point is therefore the second
 * write, which carries the head (`ChainStore`): a crash between the two leaves height-keyed records
 * above the head, which nothing reads (the head says where the chain ends) and which the block's
 * second commit writes again, byte for byte.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { IterateOptions, KVStore, WriteOp } from '@loopchain/core'
import { LevelKVStore, type LevelStoreOptions, StoreError, type StoreSettings, type StoreWriteStats } from './level-store.js'

/**
 * The first byte of every record keyed by height: blocks and their companions, and the state tree's
 * nodes (`ChainStore`). Other keys start with the chain id, a lower-case letter or digit.
 */
export const HEIGHT_KEYED = 0x01

/** Where the height-keyed database lives, inside the node's data directory. */
export const HEIGHT_DB_DIR = 'blocks'

/** Whether `key` belongs in the height-keyed database. */
export function isHeightKeyed(key: Uint8Array): boolean {
  return key[0] === HEIGHT_KEYED
}

/** A {@link KVStore} over two LevelDB databases; see the file comment. */
export class SplitKVStore implements KVStore {
  private constructor(
    /** Everything not keyed by height; its writes are the commit point. */
    readonly index: LevelKVStore,
    /** The records keyed by height. */
    readonly heights: LevelKVStore,
  ) {}

  /**
   * Opens (creating when missing) the node's database in `dataDir`: the index database in the
   * directory itself, the height-keyed one in its `blocks` subdirectory, with the same options
   * (so up to twice the memtable and block cache of one). A height-keyed database is only created
   * with an empty index: an index without one was written before storage format 4, or its blocks
   * were lost, and either way it is refused (`StoreError` `OPEN_FAILED`) rather than read as a
   * chain with no blocks.
   */
  static async open(dataDir: string, opts: LevelStoreOptions = {}): Promise<SplitKVStore> {
    const index = await LevelKVStore.open(dataDir, opts)
    try {
      let empty = true
      for await (const _ of index.iterate({ limit: 1 })) empty = false
      const heightsDir = join(dataDir, HEIGHT_DB_DIR)
      // Checked before LevelDB looks: it makes the directory even when told not to create the database.
      if (!empty && !existsSync(heightsDir)) {
        throw new StoreError(
          'OPEN_FAILED',
          `the database at ${dataDir} has no height-keyed database at ${heightsDir}: it was written before storage format 4, which keeps blocks there, or that directory was lost. Move the data directory aside and let the node sync from its peers (a devnet: npm run devnet -- --fresh). A validator's consensus WAL stays in the old directory: start it on a new one only once the network has committed a block after this node stopped, or it could vote twice at the height it stopped in`,
          { penalize: false },
        )
      }
      return new SplitKVStore(index, await LevelKVStore.open(heightsDir, { ...opts, createIfMissing: empty }))
    } catch (e) {
      await index.close()
      throw e
    }
  }

  /** The sizes each of the two databases was opened with. */
  get settings(): StoreSettings {
    return this.index.settings
  }

  private side(key: Uint8Array): LevelKVStore {
    return isHeightKeyed(key) ? this.heights : this.index
  }

  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.side(key).get(key)
  }

  getSync(key: Uint8Array): Uint8Array | undefined {
    return this.side(key).getSync(key)
  }

  /** The height-keyed ops, then the others: each part atomically, the second only once the first is written. */
  async write(ops: readonly WriteOp[]): Promise<void> {
    const heights: WriteOp[] = []
    const rest: WriteOp[] = []
    for (const op of ops) (isHeightKeyed(op.key) ? heights : rest).push(op)
    if (heights.length > 0) await this.heights.write(heights)
    if (rest.length > 0) await this.index.write(rest)
  }

  /**
   * A range within one of the two databases: from a height-keyed key up to at most the first key
   * after them (`0x02`), or from a key after them on. A range that could span both is refused.
   */
  iterate(opts: IterateOptions = {}): AsyncIterable<[Uint8Array, Uint8Array]> {
    const { gte, lt } = opts
    const first = gte?.[0]
    if (first === HEIGHT_KEYED && lt !== undefined && (lt[0] === HEIGHT_KEYED || (lt.length === 1 && lt[0] === HEIGHT_KEYED + 1))) {
      return this.heights.iterate(opts)
    }
    if (first !== undefined && first > HEIGHT_KEYED) return this.index.iterate(opts)
    throw new RangeError('SplitKVStore: a range must lie within the height-keyed records or after them')
  }

  /** What both databases wrote since they opened. */
  writeStats(): StoreWriteStats {
    const a = this.index.writeStats()
    const b = this.heights.writeStats()
    return {
      writtenBytes: a.writtenBytes + b.writtenBytes,
      tableBytesWritten: a.tableBytesWritten + b.tableBytesWritten,
      tableBytesRead: a.tableBytesRead + b.tableBytesRead,
    }
  }

  /** Closes both databases (both are closed even when one fails to). */
  async close(): Promise<void> {
    const results = await Promise.allSettled([this.index.close(), this.heights.close()])
    for (const r of results) if (r.status === 'rejected') throw r.reason
  }
}
