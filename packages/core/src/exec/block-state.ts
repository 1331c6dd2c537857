/**
 * Synchronous reads over the asynchronous state tree, for the duration of one block. The contract
 * engine runs synchronously (it is WebAssembly and cannot await), but the state lives behind an
 * async store (LevelDB on a node, IndexedDB in a browser). A read is answered from what is
 * loaded, else from the source without waiting when it can (staged writes, values in memory, and
 * on a full node LevelDB's synchronous read: {@link StateSource.tryGetSync}). Only a source that
 * cannot (a store without synchronous reads, as one over IndexedDB would be) makes execution
 * optimistic: a read of anything not loaded throws
 * {@link StateMiss}; the executor then loads that key and runs the transaction again from the
 * start. Execution is deterministic, so the rerun takes the same path up to the missing key and
 * then further; a transaction that touches k new keys runs at most k + 1 times, and so costs up to
 * k times its steps: a read-only call listing 2,000 stored items took about a minute on a node
 * before its reads went through LevelDB synchronously (now one run, whatever the cache holds).
 */
import { LoopchainError } from '../errors.js'
import { bytesToBinaryString } from '../state/binary.js'
import type { StateSource, StateTree } from '../state/state-tree.js'

/** Thrown by {@link BlockState.read} for a key that is not loaded yet; the executor loads it and retries. */
export class StateMiss extends LoopchainError<'STATE_MISS'> {
  constructor() {
    super('STATE_MISS', 'a state key is not loaded yet (the executor loads it and runs the transaction again)', { penalize: false })
  }
}

/**
 * One shared instance: a miss is control flow, not a fault, and is thrown thousands of times per
 * block; building (and, inside the engine, formatting) a fresh stack trace each time cost more
 * than a tenth of execution. The missing key travels in {@link BlockState}, not in the error.
 */
const STATE_MISS = new StateMiss()

/** Most loaded values kept from one block to the next (about 100 MB at 1 KiB values). */
export const MAX_CACHED_STATE_VALUES = 100_000

/** Views left by the last block on each tree. */
const warm = new WeakMap<StateTree, BlockState>()

/**
 * Most reruns of one transaction, each after loading a key it missed. It bounds the keys a
 * transaction reads only over a source without synchronous reads; a full node's reads do not
 * rerun (see the file comment).
 */
export const MAX_STATE_LOADS_PER_TX = 100_000

/**
 * Values loaded from a {@link StateSource} for synchronous reads, with the load-and-rerun loop
 * ({@link retrying}). A query runs on one over a committed state's snapshot; a block's execution
 * on a {@link BlockState}.
 */
export class StateCache {
  /** Loaded or written values by key (as a binary string); `null` records a known absence. */
  protected readonly values = new Map<string, Uint8Array | null>()
  /**
   * The key of the last miss, kept here as well as in the thrown error: the contract engine turns
   * a host function's exception into its own fault (dropping the error's identity), and the miss
   * must survive that trip.
   */
  private missed: Uint8Array | undefined

  constructor(private readonly reader: StateSource) {}

  /**
   * The value under `key`, `undefined` when absent. A key not loaded yet is read from the source
   * without waiting when it can be ({@link StateSource.tryGetSync}: a full node's LevelDB can);
   * otherwise this throws {@link StateMiss}, and {@link retrying} loads it and runs the attempt
   * again.
   */
  read(key: Uint8Array): Uint8Array | undefined {
    const id = bytesToBinaryString(key)
    let v = this.values.get(id)
    if (v === undefined) {
      const now = this.reader.tryGetSync?.(key)
      if (now === undefined) {
        this.missed = key.slice()
        throw STATE_MISS
      }
      this.values.set(id, now)
      v = now
    }
    return v ?? undefined
  }

  /** Loads `key` from the reader (a block's tree: staged writes included). */
  async load(key: Uint8Array): Promise<void> {
    const id = bytesToBinaryString(key)
    if (this.values.has(id)) return
    this.values.set(id, (await this.reader.get(key)) ?? null)
  }

  /**
   * Loads many keys at once (their reads run concurrently). A block's known keys are loaded
   * before it runs, so that its transactions execute without waiting per key: a node busy with
   * incoming transactions would otherwise hand the event loop away at every single read.
   */
  async loadAll(keys: Iterable<Uint8Array>): Promise<void> {
    const pending: Promise<void>[] = []
    const seen = new Set<string>()
    for (const key of keys) {
      const id = bytesToBinaryString(key)
      if (this.values.has(id) || seen.has(id)) continue
      seen.add(id)
      pending.push(this.reader.get(key).then((v) => void this.values.set(id, v ?? null)))
    }
    await Promise.all(pending)
  }

  /**
   * Runs `attempt` until it stops missing state: each miss loads the key and runs it again. A
   * miss ends the attempt however it surfaces (the StateMiss itself, or an engine fault wrapping
   * it). `attempt` must have no effects outside what it returns (writes go through an overlay).
   * An attempt that misses nothing (a warm view: the common case) returns its result directly,
   * without a promise or a turn of the event loop; callers await it either way.
   */
  retrying<T>(attempt: () => T): T | Promise<T> {
    this.missed = undefined
    try {
      return attempt()
    } catch (e) {
      if (this.missed === undefined) throw e
    }
    return this.retryAfterMiss(attempt)
  }

  /** {@link retrying} once the first attempt missed `this.missed`. */
  private async retryAfterMiss<T>(attempt: () => T): Promise<T> {
    for (let i = 1; i <= MAX_STATE_LOADS_PER_TX; i++) {
      await this.load(this.missed as Uint8Array)
      this.missed = undefined
      try {
        return attempt()
      } catch (e) {
        if (this.missed === undefined) throw e
      }
    }
    throw new LoopchainError('TOO_MANY_STATE_LOADS', `a transaction read more than ${MAX_STATE_LOADS_PER_TX} state keys`, {
      penalize: false,
    })
  }
}

/**
 * The state as a block's execution sees it: loaded values plus the block's own writes. The view
 * may outlive its block (see {@link BlockState.for}): after a commit it equals the committed state
 * for every key it holds, so the next block on the same tree starts warm.
 */
export class BlockState extends StateCache {
  /** The tree root this view matches when no block is running (undefined while one is). */
  private settledRoot: string | undefined

  constructor(readonly tree: StateTree) {
    super(tree)
  }

  /**
   * The view to execute the next block on `tree` with: the one left by the previous block when it
   * provably still matches (same tree, same root, nothing staged since), else a fresh one.
   * Anything that changed the tree outside execution changes its root or leaves staged writes,
   * so a stale view is never reused.
   */
  static for(tree: StateTree): BlockState {
    const kept = warm.get(tree)
    if (kept && kept.settledRoot === tree.rootId && tree.stagedCount === 0 && kept.values.size <= MAX_CACHED_STATE_VALUES) {
      kept.settledRoot = undefined
      return kept
    }
    return new BlockState(tree)
  }

  /**
   * The committed value under `key` as the last block on `tree` left it, without touching the
   * store: the bytes, `null` for a known absence, or `undefined` when that view does not hold the
   * key or no longer provably matches the tree (see {@link for}); the caller then reads the tree.
   */
  static peek(tree: StateTree, key: Uint8Array): Uint8Array | null | undefined {
    const kept = warm.get(tree)
    if (kept === undefined || kept.settledRoot === undefined || tree.stagedCount !== 0 || kept.settledRoot !== tree.rootId) {
      return undefined
    }
    return kept.values.get(bytesToBinaryString(key))
  }

  /** Marks the view as matching the tree's committed root, for the next block to reuse. */
  settle(): void {
    this.settledRoot = this.tree.rootId
    warm.set(this.tree, this)
  }

  /**
   * Applies a transaction's writes: to the tree (staged until the block commits) and to the loaded
   * view. The writes' keys and values are handed over: nothing changes them afterwards.
   */
  apply(writes: Iterable<{ readonly key: Uint8Array; readonly value: Uint8Array | undefined }>): void {
    for (const w of writes) {
      if (w.value === undefined) this.tree.delete(w.key)
      else this.tree.putOwned(w.key, w.value)
      this.values.set(bytesToBinaryString(w.key), w.value ?? null)
    }
  }
}
