/**
 * The mempool: transactions that passed every check a node can make before they are in a block,
 * waiting for a proposer. Checks, in order (DESIGN.md, "The path of a transaction"): size,
 * decoding, version, network, the key's address, step limit, timestamp window and payload (core's
 * `checkTransactionBody`: no state read for input that cannot be a transaction here), the pool's
 * room, replay (already pooled, or a nonce the sender has used) and the nonce gap — all cheap, so
 * what cannot be pooled costs no signature verification — then the signature, the sender's
 * permission, and the pool's limits.
 *
 * A full pool makes room by fair share ({@link Mempool.add}): a transaction may take the place of
 * the last ones of the sender holding the most, while that sender keeps as many as the newcomer's
 * will have. Steps cost nothing by default, so there is no fee to rank by; a share per account
 * keeps a few accounts flooding the pool from shutting every other sender out. It is per account:
 * a party with thousands of funded accounts, one transaction each, still fills the pool.
 *
 * Proposal order is deterministic for a given pool: each sender's transactions leave in nonce
 * order, and among the senders' next transactions the one with the smallest (timestamp, hash)
 * goes first — so no sender can jump ahead by flooding, and two proposers with the same pool
 * propose the same block. The timestamp is the sender's own, signed: a sender may date a
 * transaction back, as far as the timestamp window allows, to go ahead of others pooled at the
 * same time. Arrival time would not do instead: each node sees its own, so proposers would not
 * agree, and a leader could order by it as it pleased anyway.
 */
import {
  type Address,
  addNewest,
  bytesEqual,
  type CryptoProvider,
  checkTransactionBody,
  checkTransactionSignature,
  decodeTransaction,
  encode,
  LoopchainError,
  MAX_TX_BYTES,
  setNewest,
  type Transaction,
  type TxCheckContext,
  TxError,
  toHex,
  transactionCodec,
  transactionHash,
  transactionStepBound,
} from '@loopchain/core'

/**
 * Most steps a transaction of an account without funds (and not a member) may use: room for a
 * channel call (joining a channel someone else funds takes about 21,000). Steps cost nothing by
 * default and such keys are free to make: without this, each could declare the largest step
 * limit, and two such calls would fill a block's step budget (`maxBlockSteps`).
 */
export const LIMITED_STEP_BOUND = 100_000

/**
 * The share of a block that transactions of accounts without funds may take: a sixteenth of its
 * transactions and of its step budget (at least one such transaction). The step bound alone does
 * not do it: a thousand free keys at 100,000 steps each declare a whole default block, and a sender
 * may date its transaction back to go first, so they could crowd every funded sender out of every
 * block. It also bounds their share of the pool by default (`maxLimited`).
 */
export const LIMITED_SHARE = 16

/**
 * Why the pool refused a transaction, beyond the stateless {@link TxError} codes. `DUPLICATE`:
 * this very transaction is pooled already. `NONCE_POOLED`: another transaction of the sender with
 * this nonce is (a pooled transaction is not replaced; the next nonce is free, or the sender waits
 * for the block).
 */
export type MempoolErrorCode =
  | 'DUPLICATE'
  | 'NONCE_POOLED'
  | 'NONCE_TOO_LOW'
  | 'NONCE_TOO_FAR'
  | 'NOT_PERMITTED'
  | 'SENDER_LIMIT'
  | 'POOL_FULL'

/** A refusal by the pool's own rules. Not the sender's fault, so never penalised. */
export class MempoolError extends LoopchainError<MempoolErrorCode> {
  constructor(code: MempoolErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, { penalize: false, ...(details ? { details } : {}) })
  }
}

/** Limits and the facts the pool needs from the node. */
export interface MempoolOptions {
  /** Stateless checks' context, minus the clock, which each call passes. */
  readonly check: Omit<TxCheckContext, 'now'>
  readonly crypto: CryptoProvider
  /** The sender's next nonce in the latest state (directly when the node has it cached). */
  readonly accountNonce: (sender: Address) => number | Promise<number>
  /**
   * Whether `sender` may transact freely (a member, an account with funds); absent: everyone may.
   * A sender it says no to is limited: one transaction waiting at a time, at its next nonce (one
   * behind a gap would wait for nothing, holding its place), using at most
   * {@link LIMITED_STEP_BOUND} steps, and at most `maxLimited` such, of at most `maxLimitedBytes`
   * together, in the pool.
   */
  readonly mayTransact?: (sender: Address) => Promise<boolean> | boolean
  /** Most transactions of limited senders in the pool (default 1,000, at most a sixteenth of `maxTransactions`). */
  readonly maxLimited?: number
  /** Most bytes of limited senders' transactions in the pool (default: a sixteenth of `maxBytes`). */
  readonly maxLimitedBytes?: number
  /** Most transactions in the pool (default 20,000: several full blocks). */
  readonly maxTransactions?: number
  /** Most bytes in the pool (default 64 MiB). */
  readonly maxBytes?: number
  /** Most transactions one sender may have waiting (default 256; `maxNonceGap` caps it at that gap + 1). */
  readonly maxPerSender?: number
  /** Called with the hash (hex) of each transaction evicted to make room (see {@link Mempool.add}). */
  readonly onEvict?: (hashHex: string) => void
  /**
   * How many evicted transactions' hashes the pool remembers ({@link Mempool.wasEvicted}), and how
   * many senders' evicted nonces (their later nonces wait for those); the oldest go first. Default 4,096.
   */
  readonly evictedRemembered?: number
  /** How far ahead of the sender's next nonce a transaction may be (default 64). */
  readonly maxNonceGap?: number
}

interface Entry {
  readonly tx: Transaction
  readonly hash: string
  readonly bytes: number
  /** From a sender {@link MempoolOptions.mayTransact} limits. */
  readonly limited: boolean
}

function before(a: Entry, b: Entry): boolean {
  const ta = a.tx.body.timestamp
  const tb = b.tx.body.timestamp
  return ta !== tb ? ta < tb : a.hash < b.hash
}

/** What {@link Mempool.roomFor} returns when the pool has room (one array, not one per transaction). */
const NO_VICTIMS: readonly Entry[] = Object.freeze([])

/** Pending transactions, checked and ordered. */
export class Mempool {
  private readonly byHash = new Map<string, Entry>()
  /** Per sender: pooled transactions by nonce. */
  private readonly bySender = new Map<Address, Map<number, Entry>>()
  /**
   * Senders by how many transactions they have pooled (a map, not an array of `maxPerSender`
   * sets: an operator may set that limit high).
   */
  private readonly senderCounts = new Map<number, Set<Address>>()
  /** No sender has more pooled than this (a bound: lowered as the top sets empty). */
  private topCount = 0
  /** Hashes of the last evicted transactions that have not come back. */
  private readonly evictedHashes = new Set<string>()
  /**
   * Per sender whose last transactions were evicted, the nonces evicted (lowest and highest): a
   * later nonce of that sender is refused until the lowest comes back, so what its wallet sends
   * next does not wait behind the gap, holding a place no block would take it from.
   */
  private readonly holes = new Map<Address, { from: number; to: number }>()
  private evictions = 0
  /** Prunes begun (see {@link add}: a nonce read that one overlapped is read again). */
  private prunes = 0
  private totalBytes = 0
  /** Pooled transactions of limited senders, and their bytes. */
  private limitedCount = 0
  private limitedBytes = 0
  /**
   * Whether some sender's next transaction is pooled (so a block would not be empty). Set when a
   * transaction arrives with its sender's next nonce; recomputed after each block (prune).
   */
  private ready = false
  private readonly maxTransactions: number
  private readonly maxBytes: number
  private readonly maxPerSender: number
  private readonly maxNonceGap: number
  private readonly maxLimited: number
  private readonly maxLimitedBytes: number
  private readonly evictedRemembered: number

  constructor(private readonly opts: MempoolOptions) {
    this.maxTransactions = opts.maxTransactions ?? 20_000
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024
    this.maxPerSender = opts.maxPerSender ?? 256
    this.maxNonceGap = opts.maxNonceGap ?? 64
    this.maxLimited = opts.maxLimited ?? Math.max(1, Math.min(1000, Math.floor(this.maxTransactions / LIMITED_SHARE)))
    this.maxLimitedBytes = opts.maxLimitedBytes ?? Math.floor(this.maxBytes / 16)
    this.evictedRemembered = opts.evictedRemembered ?? 4096
  }

  /** Transactions evicted to make room since the pool was made. */
  get evicted(): number {
    return this.evictions
  }

  /** True when this transaction (hash, hex) was among the last 4,096 evicted and has not been pooled again. */
  wasEvicted(hashHex: string): boolean {
    return this.evictedHashes.has(hashHex)
  }

  /** Transactions waiting. */
  get size(): number {
    return this.byHash.size
  }

  /**
   * True when a block made now would carry a transaction: some sender's next nonce is pooled.
   * Transactions stuck behind a nonce gap do not count, so they never make empty blocks.
   */
  get hasReady(): boolean {
    return this.ready
  }

  /** Encoded bytes waiting. */
  get bytes(): number {
    return this.totalBytes
  }

  /** Transactions of `sender` waiting (its next nonce is its account's plus these, when they have no gap). */
  pendingFrom(sender: Address): number {
    return this.bySender.get(sender)?.size ?? 0
  }

  /** True when a transaction with this hash (hex) is pooled. */
  has(hashHex: string): boolean {
    return this.byHash.has(hashHex)
  }

  /**
   * True when exactly this transaction (same hash, key and signature) is pooled, so its signature
   * was verified on the way in: a proposal made of pooled transactions is checked without
   * verifying them again.
   */
  holds(tx: Transaction, hash: Uint8Array): boolean {
    return this.pooled(tx, hash) !== undefined
  }

  /**
   * The pooled object of exactly this transaction (same hash, key and signature), if any. For a
   * block's bytes, {@link known} finds it before anything is decoded: the pooled object has lived
   * long enough to be in the old generation, while a fresh copy held until the block commits would
   * be copied by every young-generation collection on the way.
   */
  pooled(tx: Transaction, hash: Uint8Array): Transaction | undefined {
    const e = this.byHash.get(toHex(hash))
    if (e === undefined) return undefined
    if (e.tx === tx) return tx
    return bytesEqual(e.tx.signature, tx.signature) && bytesEqual(e.tx.publicKey, tx.publicKey) ? e.tx : undefined
  }

  /**
   * The pooled transaction whose body has this hash and whose public key and signature are the 96
   * bytes `keyAndSignature`, if any: {@link pooled} for a transaction not yet decoded (a block's,
   * see `transactionCodecReusing` in the core).
   */
  readonly known = (hash: Uint8Array, keyAndSignature: Uint8Array): Transaction | undefined => {
    const e = this.byHash.get(toHex(hash))
    if (e === undefined) return undefined
    const { publicKey, signature } = e.tx
    if (keyAndSignature.length !== publicKey.length + signature.length) return undefined
    for (let i = 0; i < publicKey.length; i++) if (publicKey[i] !== keyAndSignature[i]) return undefined
    for (let i = 0, o = publicKey.length; i < signature.length; i++) if (signature[i] !== keyAndSignature[o + i]) return undefined
    return e.tx
  }

  /**
   * Checks and pools a transaction given as wire bytes or decoded; `now` is the node's clock in
   * microseconds. Returns its hash (hex). Throws {@link TxError} or {@link MempoolError}.
   */
  async add(input: Uint8Array | Transaction, now: number): Promise<string> {
    const raw = input instanceof Uint8Array ? input : undefined
    if (raw && raw.length > MAX_TX_BYTES) throw new TxError('TOO_LARGE', `transaction of ${raw.length} bytes is above ${MAX_TX_BYTES}`)
    const tx = raw ? decodeTransaction(raw) : (input as Transaction)
    const size = raw?.length ?? encode(transactionCodec, tx).length
    // A full pool refuses before any costly check, unless it could make room for this sender:
    // under overload, verifying what cannot be kept would take the CPU that consensus needs to
    // empty the pool.
    const sender = tx.body.from
    // The sender's permission, asked once per transaction: started here when a full pool needs it
    // (an account without funds never evicts, so it is refused before its signature), else after
    // the signature below.
    let permission: boolean | Promise<boolean> | undefined
    const permitted = (): boolean | Promise<boolean> => {
      if (permission === undefined) {
        permission = this.opts.mayTransact?.(sender) ?? true
        if (typeof permission !== 'boolean') permission.catch(() => undefined) // awaited below, or the add threw first
      }
      return permission
    }
    // A literal of one shape (a spread made a slow-path object per call, and missed the checks' caches).
    const check = this.opts.check
    const ctx = {
      networkId: check.networkId,
      now,
      timestampWindow: check.timestampWindow,
      maxStepLimit: check.maxStepLimit,
      alreadyVerified: check.alreadyVerified,
    }
    // What needs no state first (version, network, the key's address, step limit, timestamp,
    // payload): input that cannot be a transaction of this chain costs no read of the state.
    checkTransactionBody(tx, ctx)
    let awaited = false
    if (this.overLimits(size)) {
      const may = permitted()
      if (typeof may !== 'boolean') {
        awaited = true
        permission = await may
      }
    }
    this.roomFor(sender, size, permission === false)
    // A duplicate costs a hash, not a signature verification (gossip delivers many).
    const hashBytes = transactionHash(tx.body)
    const hash = toHex(hashBytes)
    this.refuseDuplicate(hash)
    // The nonce (a cached lookup) before the signature: a transaction that can never be included
    // — typically one gossip brings after its block committed — is refused without a verification.
    const prunesBefore = this.prunes
    const known = this.opts.accountNonce(sender)
    awaited ||= typeof known !== 'number'
    let next = typeof known === 'number' ? known : await known
    this.checkNonce(sender, tx.body.nonce, next)
    if (awaited) {
      // While the nonce was read, the pool may have filled, or taken this very transaction from
      // another copy: refused before the signature, as without the wait.
      this.refuseDuplicate(hash)
      if (this.overLimits(size)) {
        const may = permitted()
        permission = typeof may === 'boolean' ? may : await may
      }
      this.roomFor(sender, size, permission === false)
    }
    checkTransactionSignature(tx, hashBytes, ctx, this.opts.crypto)
    let limited = false
    if (this.opts.mayTransact) {
      const may = permitted()
      awaited ||= typeof may !== 'boolean'
      limited = !(typeof may === 'boolean' ? may : await may)
      // An account with no funds may still act (join a channel someone else funds, say), one
      // transaction at a time and within a small share of the pool and of each block: keys cost
      // nothing to make.
      if (limited && transactionStepBound(tx.body) > LIMITED_STEP_BOUND) {
        throw new MempoolError(
          'NOT_PERMITTED',
          `${sender} holds no funds and is not a member: its transaction may use at most ${LIMITED_STEP_BOUND} steps, not ${tx.body.stepLimit} (fund the account for more)`,
        )
      }
    }
    if (awaited) {
      // A block may have committed while this waited, using this nonce, and its prune may have run
      // already. A cached nonce is current, and free to look at again. One that is not is read
      // again only when a prune began since the last read (a prune that begins once this is in the
      // pool drops it itself): only then does this wait after the signature, so concurrent adds
      // otherwise find the pool as it is.
      for (let prunes = prunesBefore; ; ) {
        const again = this.opts.accountNonce(sender)
        if (typeof again === 'number') {
          if (again > next) next = again
          break
        }
        if (this.prunes === prunes) {
          again.catch(() => undefined)
          break
        }
        prunes = this.prunes
        const n = await again
        if (n > next) next = n
      }
      // And the pool may have evicted this sender's last transactions meanwhile.
      this.checkNonce(sender, tx.body.nonce, next)
      this.refuseDuplicate(hash)
    }
    if (limited && tx.body.nonce !== next) {
      throw new MempoolError(
        'NOT_PERMITTED',
        `${sender} holds no funds and is not a member: it may send only its next transaction (nonce ${next}), not one behind a gap`,
        { next },
      )
    }
    // From here to the insert nothing waits: the counts below are the ones the insert changes.
    if (limited && (this.limitedCount >= this.maxLimited || this.limitedBytes + size > this.maxLimitedBytes)) {
      throw new MempoolError('POOL_FULL', 'the pool holds all the transactions of accounts without funds it takes; retry later')
    }
    const queue = this.bySender.get(sender) ?? new Map<number, Entry>()
    if (queue.has(tx.body.nonce)) {
      throw new MempoolError('NONCE_POOLED', `another transaction of ${sender} with nonce ${tx.body.nonce} is already pooled`)
    }
    if (limited && queue.size > 0) {
      throw new MempoolError(
        'NOT_PERMITTED',
        `${sender} holds no funds and is not a member: it may have one transaction waiting at a time (fund the account to send more)`,
      )
    }
    if (queue.size >= this.maxPerSender) throw new MempoolError('SENDER_LIMIT', `${sender} already has ${queue.size} transactions waiting`)
    for (const victim of this.roomFor(sender, size, limited)) this.evict(victim)
    const entry: Entry = { tx, hash, bytes: size, limited }
    if (limited) {
      this.limitedCount++
      this.limitedBytes += size
    }
    if (tx.body.nonce === next) this.ready = true
    // Nothing to look up on the common path: a pool that never evicted has neither.
    if (this.evictedHashes.size > 0) this.evictedHashes.delete(hash)
    const hole = this.holes.size > 0 ? this.holes.get(sender) : undefined
    // checkHole let it in, so every evicted nonce up to it is back or on chain.
    if (hole !== undefined && tx.body.nonce >= hole.from) {
      if (tx.body.nonce >= hole.to) this.holes.delete(sender)
      else this.holes.set(sender, { from: tx.body.nonce + 1, to: hole.to })
    }
    this.enqueue(sender, queue, entry)
    this.byHash.set(hash, entry)
    this.totalBytes += size
    return hash
  }

  /** Refuses a transaction (hash, hex) that is pooled already: gossip delivers many copies. */
  private refuseDuplicate(hash: string): void {
    if (this.byHash.has(hash)) throw new MempoolError('DUPLICATE', `transaction ${hash} is already pooled`)
  }

  /** Refuses nonce `nonce` of `sender` against its next nonce `next`: used, too far ahead, or past an evicted one. */
  private checkNonce(sender: Address, nonce: number, next: number): void {
    if (nonce < next)
      throw new MempoolError('NONCE_TOO_LOW', `nonce ${nonce} was already used; the sender's next nonce is ${next}`, { next })
    if (nonce > next + this.maxNonceGap) {
      throw new MempoolError('NONCE_TOO_FAR', `nonce ${nonce} is more than ${this.maxNonceGap} ahead of the next nonce ${next}`, { next })
    }
    this.checkHole(sender, nonce, next)
  }

  /**
   * What to evict so that a transaction of `size` bytes from `sender` fits: nothing when the pool
   * has room. A full pool takes the last transactions (highest nonces, so no gap opens) of the
   * sender with the most pooled, as many as the room needs, as long as that sender keeps at least
   * as many as `sender` will have: with k pooled, `sender` may displace a sender holding k + 2 or
   * more, down to k + 1. So one sender flooding the pool loses its tail to each newcomer, and two
   * senders never displace each other back and forth. Throws `POOL_FULL` when that cannot make
   * room (a pool shared evenly refuses newcomers, as it did before eviction), and for a `limited`
   * sender (no funds, not a member), which never evicts.
   */
  private roomFor(sender: Address, size: number, limited: boolean): readonly Entry[] {
    if (!this.overLimits(size)) return NO_VICTIMS
    const overCount = this.byHash.size + 1 - this.maxTransactions
    const overBytes = this.totalBytes + size - this.maxBytes
    // Keys without funds cost nothing to make: they take free places only, or a thousand of them
    // at a time could evict the funded senders' transactions, again as each block takes them.
    if (limited) throw new MempoolError('POOL_FULL', 'the mempool is full; retry later', { size: this.byHash.size, bytes: this.totalBytes })
    const own = this.bySender.get(sender)?.size ?? 0
    while (this.topCount > 0 && !this.senderCounts.get(this.topCount)?.size) this.topCount--
    const top = this.topCount
    const victims: Entry[] = []
    // The top sender keeps at least own + 1 after, what `sender` has once this one is in: never fewer.
    if (top > own + 1) {
      const victim = (this.senderCounts.get(top) as Set<Address>).values().next().value as Address
      const queue = this.bySender.get(victim) as Map<number, Entry>
      const tail = [...queue.keys()].sort((a, b) => b - a)
      let count = overCount
      let bytes = overBytes
      for (const nonce of tail) {
        if (count <= 0 && bytes <= 0) break
        if (top - victims.length <= own + 1) break
        const e = queue.get(nonce) as Entry
        victims.push(e)
        count--
        bytes -= e.bytes
      }
      if (count <= 0 && bytes <= 0) return victims
    }
    throw new MempoolError('POOL_FULL', 'the mempool is full; retry later', { size: this.byHash.size, bytes: this.totalBytes })
  }

  /** Whether one more transaction of `size` bytes is past the pool's limits (room must be made). */
  private overLimits(size: number): boolean {
    return this.byHash.size + 1 > this.maxTransactions || this.totalBytes + size > this.maxBytes
  }

  /**
   * Refuses nonce `nonce` of `sender` (whose next nonce on chain is `next`) when it lies past
   * transactions of the sender this pool evicted and has not taken back: `NONCE_TOO_FAR`, with
   * `next` the first of them. Forgets a hole the chain has moved past.
   */
  private checkHole(sender: Address, nonce: number, next: number): void {
    if (this.holes.size === 0) return
    const hole = this.holes.get(sender)
    if (hole === undefined) return
    if (next > hole.to) {
      this.holes.delete(sender)
      return
    }
    const from = Math.max(hole.from, next)
    if (nonce > from)
      throw new MempoolError(
        'NONCE_TOO_FAR',
        `nonce ${nonce} comes after nonce ${from}, which this node's full pool evicted; send that one again first`,
        { next: from },
      )
  }

  /** Takes `entry` out of the pool to make room; its hash is remembered ({@link wasEvicted}). */
  private evict(entry: Entry): void {
    const sender = entry.tx.body.from
    const nonce = entry.tx.body.nonce
    const hole = this.holes.get(sender)
    setNewest(
      this.holes,
      sender,
      hole ? { from: Math.min(hole.from, nonce), to: Math.max(hole.to, nonce) } : { from: nonce, to: nonce },
      this.evictedRemembered,
    )
    this.dequeue(sender, this.bySender.get(sender) as Map<number, Entry>, entry.tx.body.nonce)
    this.forget(entry)
    this.evictions++
    addNewest(this.evictedHashes, entry.hash, this.evictedRemembered)
    this.opts.onEvict?.(entry.hash)
  }

  /** The senders with `count` pooled. */
  private countSet(count: number): Set<Address> {
    let set = this.senderCounts.get(count)
    if (set === undefined) {
      set = new Set()
      this.senderCounts.set(count, set)
    }
    return set
  }

  /** Puts `entry` in its sender's queue and keeps the count index in step. */
  private enqueue(sender: Address, queue: Map<number, Entry>, entry: Entry): void {
    const before = queue.size
    queue.set(entry.tx.body.nonce, entry)
    if (before === 0) this.bySender.set(sender, queue)
    else this.senderCounts.get(before)?.delete(sender)
    this.countSet(before + 1).add(sender)
    if (before + 1 > this.topCount) this.topCount = before + 1
  }

  /** Takes nonce `nonce` out of `sender`'s queue (dropping an emptied queue) and keeps the count index in step. */
  private dequeue(sender: Address, queue: Map<number, Entry>, nonce: number): void {
    const before = queue.size
    if (!queue.delete(nonce)) return
    this.senderCounts.get(before)?.delete(sender)
    if (before > 1) this.countSet(before - 1).add(sender)
    else this.bySender.delete(sender)
  }

  /**
   * The next block's transactions, in proposal order: at most `maxTxs` and `maxBytes`, declaring
   * at most `maxSteps` steps together (the chain's `maxBlockSteps`), each sender's in unbroken nonce order from its next nonce (a gap stops that sender). `now` is the
   * block's timestamp (microseconds): validators check every transaction's timestamp against it,
   * so one outside the window there would make the whole proposal invalid. Such a transaction is
   * left out and, like a gap, stops its sender (the pool's clock and the block's differ; pruning
   * drops the expired ones). Transactions of senders without funds take at most a
   * {@link LIMITED_SHARE}th of the block's transactions and steps.
   */
  async select(maxTxs: number, maxBytes: number, now: number, maxSteps = Number.POSITIVE_INFINITY): Promise<Transaction[]> {
    const window = this.opts.check.timestampWindow
    const inWindow = (e: Entry) => e.tx.body.timestamp >= now - window && e.tx.body.timestamp <= now + window
    // A binary heap of each sender's next transaction, smallest (timestamp, hash) on top: the
    // same order as a scan over all senders per pick, in O(log senders) a pick.
    type Head = { entry: Entry; nonce: number; queue: Map<number, Entry> }
    const heap: Head[] = []
    const up = (i: number) => {
      while (i > 0) {
        const parent = (i - 1) >> 1
        if (!before((heap[i] as Head).entry, (heap[parent] as Head).entry)) return
        ;[heap[i], heap[parent]] = [heap[parent] as Head, heap[i] as Head]
        i = parent
      }
    }
    const down = (i: number) => {
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < heap.length && before((heap[l] as Head).entry, (heap[m] as Head).entry)) m = l
        if (r < heap.length && before((heap[r] as Head).entry, (heap[m] as Head).entry)) m = r
        if (m === i) return
        ;[heap[i], heap[m]] = [heap[m] as Head, heap[i] as Head]
        i = m
      }
    }
    const pop = () => {
      const last = heap.pop() as Head
      if (heap.length > 0) {
        heap[0] = last
        down(0)
      }
    }
    const nonces = await this.nextNonces()
    for (const [sender, queue] of this.bySender) {
      const next = nonces.get(sender) as number
      const entry = queue.get(next)
      if (entry && inWindow(entry)) {
        heap.push({ entry, nonce: next, queue })
        up(heap.length - 1)
      }
    }
    const out: Transaction[] = []
    let bytes = 0
    let steps = 0
    const limitedTxs = Math.max(1, Math.floor(maxTxs / LIMITED_SHARE))
    const limitedSteps = Math.max(LIMITED_STEP_BOUND, maxSteps / LIMITED_SHARE)
    let limitedTaken = 0
    let limitedStepsTaken = 0
    while (out.length < maxTxs && heap.length > 0) {
      const h = heap[0] as Head
      const txSteps = transactionStepBound(h.entry.tx.body)
      if (
        bytes + h.entry.bytes > maxBytes ||
        steps + txSteps > maxSteps ||
        (h.entry.limited && (limitedTaken >= limitedTxs || limitedStepsTaken + txSteps > limitedSteps))
      ) {
        pop()
        continue
      }
      if (h.entry.limited) {
        limitedTaken++
        limitedStepsTaken += txSteps
      }
      out.push(h.entry.tx)
      bytes += h.entry.bytes
      steps += txSteps
      const following = h.queue.get(h.nonce + 1)
      if (following && inWindow(following)) {
        heap[0] = { entry: following, nonce: h.nonce + 1, queue: h.queue }
        down(0)
      } else pop()
    }
    return out
  }

  /**
   * Drops what a committed block made stale: its own transactions (`committed`: even one whose
   * nonce did not move, such as a proposer's BAD_NONCE, is never proposed again), and every pooled
   * transaction whose nonce its sender has now used. `now` (microseconds) also expires
   * transactions whose timestamp left the window; the node calls it on a timer too, so a pool
   * that no block empties (transactions behind a nonce gap) still empties.
   */
  async prune(now: number, committed: readonly Transaction[] = []): Promise<number> {
    this.prunes++
    let dropped = 0
    for (const tx of committed) {
      const entry = this.byHash.get(toHex(transactionHash(tx.body)))
      if (entry === undefined) continue
      const queue = this.bySender.get(entry.tx.body.from)
      if (queue?.get(entry.tx.body.nonce) === entry) this.dequeue(entry.tx.body.from, queue, entry.tx.body.nonce)
      this.forget(entry)
      dropped++
    }
    const window = this.opts.check.timestampWindow
    const nonces = await this.nextNonces()
    let ready = false
    for (const [sender, queue] of this.bySender) {
      const next = nonces.get(sender)
      for (const [nonce, entry] of queue) {
        if ((next !== undefined && nonce < next) || entry.tx.body.timestamp < now - window) {
          this.dequeue(sender, queue, nonce)
          this.forget(entry)
          dropped++
        }
      }
      // A sender that arrived while the nonces were read counts as ready (its add said so).
      if (queue.size > 0 && (next === undefined || queue.has(next))) ready = true
    }
    this.ready = ready
    return dropped
  }

  /** Takes a removed entry out of the hash index and the counts. */
  private forget(entry: Entry): void {
    this.byHash.delete(entry.hash)
    this.totalBytes -= entry.bytes
    if (entry.limited) {
      this.limitedCount--
      this.limitedBytes -= entry.bytes
    }
  }

  /** Every pooled sender's next nonce (see {@link readNonces}). */
  private nextNonces(): Promise<Map<Address, number>> {
    return readNonces(this.bySender.keys(), this.opts.accountNonce)
  }
}

/**
 * The next nonce of each of `senders`: the cached ones directly, the rest read concurrently (one
 * await, not one per sender).
 */
export async function readNonces(senders: Iterable<Address>, accountNonce: MempoolOptions['accountNonce']): Promise<Map<Address, number>> {
  const nonces = new Map<Address, number>()
  const reads: Promise<void>[] = []
  for (const a of senders) {
    if (nonces.has(a)) continue
    const n = accountNonce(a)
    if (typeof n === 'number') nonces.set(a, n)
    else reads.push(n.then((v) => void nonces.set(a, v)))
  }
  if (reads.length > 0) await Promise.all(reads)
  return nonces
}
