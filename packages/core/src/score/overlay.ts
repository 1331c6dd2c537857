/**
 * Per-call write buffering. The engine does not undo a failed call's writes, so every SCORE call
 * runs against its own {@link StateOverlay}: reads fall through to the parent (an enclosing call's
 * overlay, or the executor's synchronous reader over the state tree), writes and event logs stay
 * in the overlay, and only a successful call merges them into its parent. A failed nested call
 * therefore drops exactly its own writes and logs, and the caller may go on.
 */
import { LoopchainError } from '../errors.js'
import type { EventLog } from '../ledger/receipt.js'
import { bytesToBinaryString } from '../state/binary.js'

/**
 * Reads committed state synchronously: the value under `key`, or undefined. The executor serves it
 * from a cache or the local state tree; it must be deterministic and must not change during a call.
 */
export type StateReader = (key: Uint8Array) => Uint8Array | undefined

/** One buffered change: a new value, or `undefined` for a deletion. */
export interface StateWrite {
  readonly key: Uint8Array
  readonly value: Uint8Array | undefined
}

/** Thrown when an overlay is used after it was committed or discarded: a bug in the caller. */
export class OverlayClosedError extends LoopchainError<'OVERLAY_CLOSED'> {
  constructor() {
    super('OVERLAY_CLOSED', 'the state overlay was already committed or discarded', { penalize: false })
  }
}

/**
 * Buffered writes and event logs over a parent. Keys and values are kept by reference: callers hand
 * over fresh arrays (the engine copies at the boundary) and must not mutate what `get` returns.
 */
export class StateOverlay {
  private readonly pending = new Map<string, StateWrite>()
  private readonly collected: EventLog[] = []
  private open = true

  /** A root overlay over a state reader, or a child of another overlay (see {@link child}). */
  constructor(readonly parent: StateOverlay | StateReader) {}

  private check(): void {
    if (!this.open) throw new OverlayClosedError()
  }

  /** The current value under `key`: this overlay's write, else the parent's view. */
  get(key: Uint8Array): Uint8Array | undefined {
    return this.lookup(bytesToBinaryString(key), key)
  }

  /** {@link get} with the key's id (its binary string) made once for the whole chain of overlays. */
  private lookup(id: string, key: Uint8Array): Uint8Array | undefined {
    this.check()
    const w = this.pending.get(id)
    if (w !== undefined) return w.value
    return this.parent instanceof StateOverlay ? this.parent.lookup(id, key) : this.parent(key)
  }

  /** Buffers `value` under `key`. */
  set(key: Uint8Array, value: Uint8Array): void {
    this.check()
    this.pending.set(bytesToBinaryString(key), { key, value })
  }

  /** Buffers the removal of `key` (kept as a tombstone so the parent's value is hidden). */
  delete(key: Uint8Array): void {
    this.check()
    this.pending.set(bytesToBinaryString(key), { key, value: undefined })
  }

  /** Appends an event log. */
  log(entry: EventLog): void {
    this.check()
    this.collected.push(entry)
  }

  /** Logs collected here, in emission order (including those of committed nested calls). */
  get logs(): readonly EventLog[] {
    return this.collected
  }

  /** Logs collected here and in the open overlays above it: what a new log would be counted against. */
  get logCount(): number {
    return this.collected.length + (this.parent instanceof StateOverlay ? this.parent.logCount : 0)
  }

  /** A nested overlay for a nested call. */
  child(): StateOverlay {
    this.check()
    return new StateOverlay(this)
  }

  /**
   * Merges this overlay's writes and logs into its parent overlay and closes it. A root overlay
   * (over a reader) cannot be committed: the executor applies {@link changes} to the state tree.
   */
  commit(): void {
    this.check()
    const parent = this.parent
    if (!(parent instanceof StateOverlay)) throw new TypeError('a root overlay is applied with changes(), not committed')
    parent.check()
    for (const [k, w] of this.pending) parent.pending.set(k, w)
    for (const e of this.collected) parent.collected.push(e)
    this.open = false
  }

  /** Drops this overlay's writes and logs and closes it. */
  discard(): void {
    this.pending.clear()
    this.collected.length = 0
    this.open = false
  }

  /** False once committed or discarded. */
  get isOpen(): boolean {
    return this.open
  }

  /** The buffered changes, sorted by key bytes, so applying them is deterministic. */
  changes(): StateWrite[] {
    const ids = [...this.pending.keys()]
    if (ids.length > 16) ids.sort()
    else {
      // A transaction writes a handful of keys: an insertion sort, without the work arrays of
      // Array.prototype.sort (the ids, binary strings, compare as their bytes).
      for (let i = 1; i < ids.length; i++) {
        const id = ids[i] as string
        let j = i - 1
        for (; j >= 0 && (ids[j] as string) > id; j--) ids[j + 1] = ids[j] as string
        ids[j + 1] = id
      }
    }
    return ids.map((id) => this.pending.get(id) as StateWrite)
  }
}
