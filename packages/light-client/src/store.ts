/**
 * Where a light client keeps what it verified: signed headers by height, the validator-set
 * changes it followed, and its checkpoint (the verified tip and how far it knows set changes).
 * Everything is kept in canonical encodings, so a store is bytes the core can re-check on load.
 */
import { type Codec, fixedBytes, type SignedHeader, string, struct, uvarint, type ValidatorSetChange } from '@loopchain/core'

/** The light client's position: the verified tip and the pinned chain it belongs to. */
export interface LightCheckpoint {
  readonly chainId: string
  readonly networkId: number
  /** Hash of the pinned genesis validator set: a store of another genesis is refused. */
  readonly genesisSetHash: Uint8Array
  /** Height of the verified tip. */
  readonly height: number
  /** Hash of the verified tip header. */
  readonly hash: Uint8Array
  /** Every set change announced by a header at or below this height is among the stored changes. */
  readonly setsKnownThrough: number
}

/** Codec of {@link LightCheckpoint}. */
export const lightCheckpointCodec: Codec<LightCheckpoint> = struct('LightCheckpoint', {
  chainId: string(64),
  networkId: uvarint,
  genesisSetHash: fixedBytes(32),
  height: uvarint,
  hash: fixedBytes(32),
  setsKnownThrough: uvarint,
})

/** What a store holds about the chain as a whole (headers are read one by one). */
export interface LightSnapshot {
  readonly checkpoint: LightCheckpoint
  /** In height order. */
  readonly changes: readonly ValidatorSetChange[]
}

/** One atomic write: new headers and set changes, and the checkpoint they lead to. */
export interface LightStoreUpdate {
  readonly headers: readonly SignedHeader[]
  readonly changes: readonly ValidatorSetChange[]
  readonly checkpoint: LightCheckpoint
}

/**
 * A light client's storage. Writes are atomic: after a crash or reload the store holds either
 * all of an update or none of it. Implementations: {@link MemoryLightStore} (tests, one-shot
 * scripts) and `IndexedDbLightStore` (browsers).
 */
export interface LightStore {
  /** The checkpoint and set changes, or undefined for an empty store. */
  load(): Promise<LightSnapshot | undefined>
  /** The stored header at `height`. */
  header(height: number): Promise<SignedHeader | undefined>
  /** Writes an update atomically. */
  save(update: LightStoreUpdate): Promise<void>
  /** Deletes stored headers below `height` (set-change headers stay with their changes). */
  pruneBelow(height: number): Promise<void>
  /** How many headers are stored. */
  headerCount(): Promise<number>
  /** Releases the store (the data stays). */
  close(): Promise<void>
}

/** A {@link LightStore} in memory: the twin the tests use, and a store for short-lived clients. */
export class MemoryLightStore implements LightStore {
  private checkpoint: LightCheckpoint | undefined
  private changes: ValidatorSetChange[] = []
  private readonly headers = new Map<number, SignedHeader>()

  async load(): Promise<LightSnapshot | undefined> {
    return this.checkpoint ? { checkpoint: this.checkpoint, changes: [...this.changes] } : undefined
  }

  async header(height: number): Promise<SignedHeader | undefined> {
    return this.headers.get(height)
  }

  async save(update: LightStoreUpdate): Promise<void> {
    for (const sh of update.headers) this.headers.set(sh.header.height, sh)
    const known = new Set(this.changes.map((c) => c.signed.header.height))
    for (const c of update.changes) if (!known.has(c.signed.header.height)) this.changes.push(c)
    this.changes.sort((a, b) => a.signed.header.height - b.signed.header.height)
    this.checkpoint = update.checkpoint
  }

  async pruneBelow(height: number): Promise<void> {
    for (const h of this.headers.keys()) if (h < height) this.headers.delete(h)
  }

  async headerCount(): Promise<number> {
    return this.headers.size
  }

  async close(): Promise<void> {}
}
