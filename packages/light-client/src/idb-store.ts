/**
 * The browser's {@link LightStore}: IndexedDB through `idb`. One database per chain, three object
 * stores of canonical encodings — `headers` (by height), `changes` (by announcing height) and
 * `meta` (the checkpoint) — written in one transaction per update, so a closed tab or a crash
 * leaves the previous checkpoint or the new one, never half of an update.
 */
import { decode, encode, type SignedHeader, signedHeaderCodec, validatorSetChangeCodec } from '@loopchain/core'
import { type DBSchema, type IDBPDatabase, openDB } from 'idb'
import { type LightSnapshot, type LightStore, type LightStoreUpdate, lightCheckpointCodec } from './store.js'

interface LightDB extends DBSchema {
  headers: { key: number; value: Uint8Array }
  changes: { key: number; value: Uint8Array }
  meta: { key: string; value: Uint8Array }
}

const CHECKPOINT = 'checkpoint'
// Bump when the layout changes; `upgrade` then migrates or clears.
const DB_VERSION = 1

/** A {@link LightStore} in IndexedDB. Open with {@link IndexedDbLightStore.open}. */
export class IndexedDbLightStore implements LightStore {
  private constructor(private readonly db: IDBPDatabase<LightDB>) {}

  /** Opens (or creates) the database `name`, by default `loopchain-light-<chainId>`. */
  static async open(opts: { chainId: string; name?: string }): Promise<IndexedDbLightStore> {
    const db = await openDB<LightDB>(opts.name ?? `loopchain-light-${opts.chainId}`, DB_VERSION, {
      upgrade(db) {
        if (!db.objectStoreNames.contains('headers')) db.createObjectStore('headers')
        if (!db.objectStoreNames.contains('changes')) db.createObjectStore('changes')
        if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta')
      },
    })
    return new IndexedDbLightStore(db)
  }

  async load(): Promise<LightSnapshot | undefined> {
    const tx = this.db.transaction(['meta', 'changes'], 'readonly')
    const [raw, changes] = await Promise.all([tx.objectStore('meta').get(CHECKPOINT), tx.objectStore('changes').getAll(), tx.done])
    if (raw === undefined) return undefined
    // Keys are heights, and IndexedDB returns them in key order: the changes come in height order.
    return { checkpoint: decode(lightCheckpointCodec, raw), changes: changes.map((c) => decode(validatorSetChangeCodec, c)) }
  }

  async header(height: number): Promise<SignedHeader | undefined> {
    const raw = await this.db.get('headers', height)
    return raw === undefined ? undefined : decode(signedHeaderCodec, raw)
  }

  async save(update: LightStoreUpdate): Promise<void> {
    const tx = this.db.transaction(['headers', 'changes', 'meta'], 'readwrite')
    const headers = tx.objectStore('headers')
    const changes = tx.objectStore('changes')
    const writes: Promise<unknown>[] = []
    for (const sh of update.headers) writes.push(headers.put(encode(signedHeaderCodec, sh), sh.header.height))
    for (const c of update.changes) writes.push(changes.put(encode(validatorSetChangeCodec, c), c.signed.header.height))
    writes.push(tx.objectStore('meta').put(encode(lightCheckpointCodec, update.checkpoint), CHECKPOINT))
    await Promise.all([...writes, tx.done])
  }

  async pruneBelow(height: number): Promise<void> {
    if (height <= 0) return
    await this.db.delete('headers', IDBKeyRange.upperBound(height, true))
  }

  async headerCount(): Promise<number> {
    return this.db.count('headers')
  }

  /** Bytes of the stored encodings (headers, changes, checkpoint): what the data costs, before IndexedDB's own overhead. */
  async storedBytes(): Promise<number> {
    let n = 0
    for (const name of ['headers', 'changes', 'meta'] as const) for (const v of await this.db.getAll(name)) n += v.byteLength
    return n
  }

  async close(): Promise<void> {
    this.db.close()
  }
}
