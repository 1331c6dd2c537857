/**
 * The persistence seam of loopchain. Everything that outlives a process (blocks, receipts, the
 * state tree's nodes) goes through a {@link KVStore}: LevelDB on a full node, IndexedDB in a
 * browser, {@link MemoryKVStore} in tests. The interface is deliberately small — point reads, one
 * atomic batch write, ordered range scans — because that is what every one of those back ends does
 * well, and because a single atomic batch is what lets a node write a block and the state it
 * produced together, so a crash never leaves them out of step.
 */

/** One change in an atomic {@link KVStore.write} batch. */
export type WriteOp =
  | { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly type: 'del'; readonly key: Uint8Array }

/** A key range for {@link KVStore.iterate}; keys compare as unsigned bytes, lexicographically. */
export interface IterateOptions {
  /** Smallest key included (inclusive); the start of the key space when absent. */
  readonly gte?: Uint8Array
  /** Bound that ends the range (exclusive); the end of the key space when absent. */
  readonly lt?: Uint8Array
  /** Yield from the largest key down instead of the smallest up. */
  readonly reverse?: boolean
  /** Yield at most this many entries. */
  readonly limit?: number
}

/** An ordered byte-keyed store with atomic batch writes. */
export interface KVStore {
  /** The value under `key`, or `undefined` when there is none. */
  get(key: Uint8Array): Promise<Uint8Array | undefined>
  /**
   * {@link get} without waiting, offered by stores that can answer at once (LevelDB through its
   * synchronous read, memory); one over IndexedDB could not. Contract execution reads through it so that a
   * read the caches miss does not rerun the call (see `StateCache` in the executor).
   */
  getSync?(key: Uint8Array): Uint8Array | undefined
  /** Applies every op in order, all or nothing. A later op on the same key wins. */
  write(ops: readonly WriteOp[]): Promise<void>
  /** The entries of a key range in key order (or reverse order), as `[key, value]` pairs. */
  iterate(opts?: IterateOptions): AsyncIterable<[Uint8Array, Uint8Array]>
}

/**
 * The exclusive upper bound of all keys that start with `prefix` (the prefix "plus one"), or
 * `undefined` when no such bound exists (the prefix is empty or all 0xff). With `gte: prefix`
 * this scans exactly one namespace.
 */
export function prefixUpperBound(prefix: Uint8Array): Uint8Array | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] !== 0xff) {
      const out = prefix.slice(0, i + 1)
      out[i] = (out[i] as number) + 1
      return out
    }
  }
  return undefined
}

/** The range options that select exactly the keys starting with `prefix`. */
export function prefixRange(prefix: Uint8Array): IterateOptions {
  const lt = prefixUpperBound(prefix)
  return lt === undefined ? { gte: prefix } : { gte: prefix, lt }
}
