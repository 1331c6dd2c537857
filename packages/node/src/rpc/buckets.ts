/**
 * Token buckets by key (a client's address, say): each refills at `perSecond` up to `capacity`,
 * and a key not seen yet is full. The JSON-RPC server counts requests with them, the node's
 * read-only calls count steps.
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, { level: number; at: number }>()
  constructor(
    readonly perSecond: number,
    readonly capacity: number,
    private readonly now: () => number,
    /**
     * Keys held at most; past it the tenth least recently used go (a client away that long has
     * refilled, or nearly). Clearing the table instead would let anyone with enough addresses
     * refill every client's bucket at will.
     */
    private readonly maxKeys = 100_000,
  ) {
    if (!(Number.isFinite(perSecond) && perSecond > 0)) throw new RangeError('a bucket must refill at a positive rate')
    if (!(Number.isFinite(capacity) && capacity > 0)) throw new RangeError('a bucket must hold a positive amount')
  }

  /** The tokens `key` holds now (below zero after a charge larger than it held). */
  level(key: string): number {
    return this.refilled(key).level
  }

  /** Takes `n` tokens from `key`, whatever it holds (its level may go below zero). */
  spend(key: string, n: number): void {
    this.refilled(key).level -= n
  }

  /** Takes `n` tokens from `key` if it holds them all; otherwise takes none. */
  take(key: string, n = 1): boolean {
    const b = this.refilled(key)
    if (b.level < n) return false
    b.level -= n
    return true
  }

  /** Milliseconds until `key` holds more than zero tokens. */
  msUntilPositive(key: string): number {
    const level = this.level(key)
    return level > 0 ? 0 : Math.ceil(((1 - level) / this.perSecond) * 1000)
  }

  private refilled(key: string): { level: number; at: number } {
    const t = this.now()
    let b = this.buckets.get(key)
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) {
        let drop = Math.max(1, Math.floor(this.maxKeys / 10))
        for (const k of this.buckets.keys()) {
          if (drop-- <= 0) break
          this.buckets.delete(k)
        }
      }
      b = { level: this.capacity, at: t }
    } else this.buckets.delete(key)
    // Kept in the order of use: the first keys are the least recently used.
    this.buckets.set(key, b)
    // A clock that goes back adds nothing (and takes nothing away).
    b.level = Math.min(this.capacity, b.level + (Math.max(0, t - b.at) / 1000) * this.perSecond)
    b.at = Math.max(b.at, t)
    return b
  }
}
