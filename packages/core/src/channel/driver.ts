/**
 * Runs a {@link ChannelSession} over a link with durable storage: what a browser wallet, a hub
 * node and the benchmark share. It keeps the protocol's one storage rule — a state is saved before
 * it is acknowledged — with a group commit: acknowledgements wait for the next save, and one save
 * covers every state that arrived while the previous one was being written, so pipelined payments
 * cost one storage write per batch, not per payment. No I/O of its own: the caller passes the
 * link's send and the store's save.
 */
import type { Address } from '../crypto/address.js'
import {
  type ChangeMaker,
  type ChannelContext,
  ChannelProtocolError,
  type ChannelSession,
  type ChannelSessionEvent,
  type ChannelSnapshot,
  type ChannelWire,
  MAX_IN_FLIGHT,
  MAX_RUN,
} from './session.js'
import type { SignedChannelState } from './state.js'

/** How long a change nobody waits for (the peer's revocation) may wait for a save that covers it (ms). */
export const LAZY_SAVE_MS = 50

/** Where a driver sends messages and saves snapshots. */
export interface ChannelDriverIo {
  /** Sends a message to the peer (undefined link: the peer is offline; messages are re-sent on hello). */
  send(m: ChannelWire): void
  /**
   * Saves the snapshot; resolves once saved. `durable`: an acknowledgement or a message waits for
   * this save, so it must be on disk (not only handed to the system) before it resolves; false
   * when it only records the peer's countersignatures of my proposals, which the peer has saved.
   * `events`: those held back for this save (of the peer's updates: a settlement of my payment is
   * one), emitted once it resolves; what the caller keeps beside the snapshot because of them (say,
   * that an invoice was paid) belongs in the same write, or a crash between two writes would keep
   * the state and lose the rest. Acknowledgements' and revocations' events are emitted before the
   * save that stores them, and are not passed.
   */
  save(snapshot: ChannelSnapshot, durable: boolean, events: readonly ChannelSessionEvent[]): Promise<void>
  /** The block height the wallet sees (for hash-locked payments' expiries). */
  height(): number
  /** Every event, after the state it reports was saved. */
  onEvent?(e: ChannelSessionEvent): void
  /** A message from the peer was refused (nothing changed). */
  onRefused?(e: ChannelProtocolError, m: ChannelWire): void
  /** A save nobody waited for failed (the next save tries again). */
  onSaveFailed?(e: unknown): void
  /** Runs `f` in about `ms` milliseconds (a save nobody waits for is put off to merge with the next one); absent: saved at once. */
  later?(f: () => void, ms: number): void
}

interface Waiter {
  resolve: () => void
  reject: (e: Error) => void
}

/** Drives one channel session (see the module comment). */
export class ChannelDriver {
  /** Proposals of mine by seq, resolved when countersigned. */
  private readonly waiters = new Map<number, Waiter>()
  private dirty = false
  /** Something waiting for the next save needs it on disk. */
  private durable = false
  private writing: Promise<void> | undefined
  private held: ChannelWire[] = []
  private heldEvents: ChannelSessionEvent[] = []
  private closeWaiter: { resolve: (s: SignedChannelState) => void; reject: (e: Error) => void } | undefined
  /** Proposals waiting for room in the in-flight window, in call order. */
  private queued: { make: ChangeMaker; waiter: Waiter }[] = []
  /** A batch of proposals is being made (signed). */
  private making = false
  private drainScheduled = false
  /** Set the moment {@link endOffChain} is called, before the session records it. */
  private offChainEnded = false
  /** Set by {@link abandon}: this driver is done, and everything asked of it since rejects with this. */
  private abandoned: ChannelProtocolError | undefined

  constructor(
    readonly session: ChannelSession,
    private readonly io: ChannelDriverIo,
  ) {
    this.gated = session.restored
  }

  private get ctx(): ChannelContext {
    return { height: this.io.height() }
  }

  /** Pays `amount`; resolves once the peer countersigned (and saved) it, rejects when refused or dropped. */
  async pay(amount: bigint, memo?: string): Promise<void> {
    return this.propose(() => (memo === undefined ? { kind: 'pay', amount } : { kind: 'pay', amount, memo }))
  }

  /** Offers a hash-locked payment; resolves once countersigned. */
  async addHtlc(p: { amount: bigint; hashLock: Uint8Array; expiry: number; next?: Address }): Promise<void> {
    return this.propose(this.session.htlcMaker(p))
  }

  /** Settles the peer's hash-locked payment `id` with its preimage; resolves once countersigned. */
  async settleHtlc(id: number, preimage: Uint8Array): Promise<void> {
    const copy = preimage.slice()
    return this.propose(() => ({ kind: 'settle', id, preimage: copy }))
  }

  /**
   * Gives the peer's hash-locked payment `id` back; resolves once countersigned. With `hashLock`,
   * only if `id` still holds that payment when the proposal is made (`NOT_PENDING` otherwise):
   * queued proposals are made later than asked for, and ids are reused.
   */
  async failHtlc(id: number, hashLock?: Uint8Array): Promise<void> {
    return this.propose(hashLock === undefined ? () => ({ kind: 'fail', id }) : this.session.failMaker(id, hashLock))
  }

  /** Agrees the final state with the peer; resolves with it, both signatures on it. */
  async proposeClose(): Promise<SignedChannelState> {
    const done = new Promise<SignedChannelState>((resolve, reject) => {
      this.closeWaiter = { resolve, reject }
    })
    // Handled here too: when the proposal itself fails, that error is the one the caller gets.
    done.catch(() => undefined)
    try {
      await this.propose(() => ({ kind: 'close' }))
    } catch (e) {
      this.closeWaiter = undefined
      throw e
    }
    return done
  }

  /** Sends a private message (signed, numbered); saved first so its number is never reused. Resolves with its number. */
  async message(body: Uint8Array): Promise<number> {
    if (this.abandoned !== undefined) throw this.abandoned
    const m = await this.session.message(body)
    await this.saveDurably()
    this.io.send(m)
    return m.seq
  }

  /** Says hello on a new link (the peer answers with what this side lacks, and proposals in flight go again). */
  hello(): void {
    this.io.send(this.session.hello())
  }

  /** Handles one message from the peer. A refused update is answered with a `reject`; nothing changes. */
  async receive(m: ChannelWire): Promise<void> {
    const handled = this.handle(m)
    const settled = handled.then(
      () => undefined,
      () => undefined,
    )
    this.handling.add(settled)
    try {
      await handled
    } finally {
      this.handling.delete(settled)
    }
    if (this.gated) this.checkGate(m)
  }

  /** Messages of the peer being handled now (settled when handled): their replies may not be queued yet (see {@link drain}). */
  private readonly handling = new Set<Promise<void>>()
  /** Replies in the save under way (see {@link flush}). */
  private writingReplies: readonly ChannelWire[] = []
  /** My proposals queued behind replies held for a save (see {@link drain}): not sent once the channel is being settled on chain. */
  private readonly heldProposals = new WeakSet<ChannelWire>()

  /**
   * A restored session may lack proposals it sent after its last save, which the peer may hold.
   * Proposing again under those numbers would give the peer two signed states for one number,
   * so after a restore proposals wait until the peer's hello shows that nothing newer than this
   * side's latest state is out there (or its sync brought it back).
   */
  private gated: boolean
  private peerSeq: number | undefined

  private checkGate(m: ChannelWire): void {
    if (m.t === 'hello') this.peerSeq = Math.max(this.peerSeq ?? 0, m.seq)
    if (this.peerSeq !== undefined && this.session.latest.state.seq >= this.peerSeq) {
      this.gated = false
      this.scheduleDrain()
    }
  }

  private async handle(m: ChannelWire): Promise<void> {
    let r: Awaited<ReturnType<ChannelSession['receive']>>
    try {
      r = await this.session.receive(m, this.ctx)
    } catch (e) {
      if (!(e instanceof ChannelProtocolError)) throw e
      if (m.t === 'update')
        this.io.send({
          t: 'reject',
          channelId: m.channelId,
          seq: m.seq,
          signature: m.signature,
          code: e.code,
          reason: e.message.slice(0, 500),
        })
      this.io.onRefused?.(e, m)
      return
    }
    if (!r.persist) {
      if (r.replies.length > 0 && (this.dirty || this.writing !== undefined)) {
        // What it sends again (my latest revocation, a repeated acknowledgement) may follow a
        // state not on disk yet: it leaves after the save that covers it (durable: replies are held).
        this.dirty = true
        this.held.push(...r.replies)
        this.heldEvents.push(...r.events)
        await this.flush()
        return
      }
      for (const reply of r.replies) this.io.send(reply)
      this.emit(r.events)
      return
    }
    if (m.t === 'revoke') {
      // The peer's revocation: saved with the next save, or a moment later if none comes (a save
      // of its own here would delay the acknowledgement of the update right behind it). Lost in a
      // crash before that, it comes again with the peer's next hello.
      this.dirty = true
      this.emit(r.events)
      this.saveSoon()
      return
    }
    if (m.t === 'ack') {
      // My proposal, countersigned: confirmed at once. The peer saved it before acknowledging, so
      // it survives a crash of either side (a restarted side gets it back by sync); our own copy
      // goes to storage with the next save. My revocation of the states before it waits for that
      // save, made durable: sent earlier, a crash could leave me with only a revoked state to close
      // with. Nobody waits for it, so it is put off to cover more acknowledgements (one durable
      // write per burst, not one per payment).
      this.dirty = true
      this.emit(r.events)
      this.held.push(...r.replies)
      this.saveSoon()
      return
    }
    this.dirty = true
    this.durable = true
    this.held.push(...r.replies)
    this.heldEvents.push(...r.events)
    await this.flush()
  }

  private saveScheduled = false

  /**
   * Saves within {@link LAZY_SAVE_MS} unless another save covers it first (through the caller's
   * `later`); at once when the caller gives none.
   */
  private saveSoon(): void {
    const save = () => {
      this.saveScheduled = false
      if (this.abandoned !== undefined) return
      void this.flush().catch((e) => {
        this.dirty = true
        this.io.onSaveFailed?.(e)
      })
    }
    if (this.io.later === undefined) {
      save()
      return
    }
    if (this.saveScheduled) return
    this.saveScheduled = true
    this.io.later(save, LAZY_SAVE_MS)
  }

  /**
   * Remembers a preimage in the session (a payment locked with it can then be settled, or redeemed
   * on chain) and saves it durably before resolving: the caller may act on it right after (a hub
   * that paid the next hop must still hold it after a restart). Returns the hash lock.
   */
  async rememberPreimage(preimage: Uint8Array): Promise<Uint8Array> {
    const lock = this.session.rememberPreimage(preimage)
    await this.saveDurably()
    return lock
  }

  /**
   * Ends the off-chain protocol before the channel is settled on chain (see
   * {@link ChannelSession.endOffChain}): saved durably before it resolves, so the close can be sent
   * after it; proposals waiting or in flight reject.
   */
  async endOffChain(): Promise<void> {
    // At once, not when the session's queue gets to it: a batch being signed now finishes first,
    // and must find this set before it would leave (see drain).
    this.offChainEnded = true
    await this.session.endOffChain()
    await this.saveDurably()
    this.rejectAll(new ChannelProtocolError('CHANNEL_CLOSED', 'the channel is being settled on chain'))
  }

  /** Saves the session now, on disk (what waits for it needs it there). */
  private saveDurably(): Promise<void> {
    this.dirty = true
    this.durable = true
    return this.flush()
  }

  /** Rejects every proposal waiting or in flight, and a close waiting for its agreement, with `e`. */
  private rejectAll(e: ChannelProtocolError): void {
    for (const w of [...this.waiters.values(), ...this.queued.map((q) => q.waiter)]) w.reject(e)
    this.waiters.clear()
    this.queued = []
    this.closeWaiter?.reject(e)
    this.closeWaiter = undefined
  }

  /** Saves now if anything changed, then releases what waited for the save. Resolves once saved. */
  async flush(): Promise<void> {
    while (this.dirty || this.writing) {
      if (this.writing) {
        await this.writing
        continue
      }
      this.dirty = false
      // Replies held for a save need it on disk (acknowledgements, revocations).
      const durable = this.durable || this.held.length > 0
      this.durable = false
      const replies = this.held
      const events = this.heldEvents
      this.held = []
      this.heldEvents = []
      this.writingReplies = replies
      this.writing = this.io.save(this.session.snapshot(), durable, events).finally(() => {
        this.writing = undefined
      })
      try {
        await this.writing
      } catch (e) {
        // Not on disk: what waited for it keeps waiting for the next save, which is still due.
        this.writingReplies = []
        this.dirty = true
        this.durable ||= durable
        this.held = [...replies, ...this.held]
        this.heldEvents = [...events, ...this.heldEvents]
        throw e
      }
      for (const reply of replies) {
        // A proposal of mine queued behind acknowledgements (see drain) does not leave once the
        // channel is being settled on chain: its waiter was told it failed.
        if (this.heldProposals.has(reply) && (this.offChainEnded || this.session.onChain || this.abandoned !== undefined)) continue
        this.io.send(reply)
      }
      // Cleared once they left, not when the write ended: a proposal must not overtake them in between.
      this.writingReplies = []
      this.emit(events)
    }
  }

  /**
   * Ends this driver (the page or the channel is going away): every waiting proposal rejects, a
   * batch being signed rejects and is not sent (it stays in the session's window, so a new driver
   * on the session sends it on the next hello), and whatever is asked of this driver later rejects.
   */
  abandon(reason: string): void {
    const e = new ChannelProtocolError('CHANNEL_CLOSED', reason)
    this.abandoned ??= e
    this.rejectAll(e)
  }

  /**
   * Queues a proposal and resolves once it is countersigned. Queued proposals are made in batches
   * as the in-flight window has room (a burst of payments queues rather than fails): a batch is
   * signed together and its updates leave in one write, so pipelined payments cost one link
   * send per batch, not per payment.
   */
  private propose(make: ChangeMaker): Promise<void> {
    if (this.abandoned !== undefined) return Promise.reject(this.abandoned)
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ make, waiter: { resolve, reject } })
      this.scheduleDrain()
    })
  }

  private scheduleDrain(): void {
    if (this.drainScheduled || this.making || this.gated || this.queued.length === 0 || this.abandoned !== undefined) return
    this.drainScheduled = true
    // Later in this turn, so the payments asked for together go out as one batch.
    void Promise.resolve().then(() => {
      this.drainScheduled = false
      return this.drain()
    })
  }

  /** Makes the queued proposals the window has room for, sends them in order, and goes on while room is left. */
  private async drain(): Promise<void> {
    const room = MAX_IN_FLIGHT - this.session.inFlight.length
    if (this.making || this.gated || room <= 0 || this.queued.length === 0) return
    const batch = this.queued.splice(0, Math.min(room, MAX_RUN))
    this.making = true
    try {
      const made = await this.session.proposeMany(
        batch.map((b) => b.make),
        this.ctx,
      )
      if (this.abandoned !== undefined) {
        for (const b of batch) b.waiter.reject(this.abandoned)
        return
      }
      if (this.offChainEnded || this.session.onChain) {
        // Settled on chain meanwhile (the batch was being signed): nothing of it leaves.
        const e = new ChannelProtocolError('CHANNEL_CLOSED', 'the channel is being settled on chain')
        for (const b of batch) b.waiter.reject(e)
        return
      }
      if (made.some((r) => r.error === undefined && r.wire.t === 'update' && r.wire.change.kind === 'close')) {
        // A final state leaves only once saved, with the mark that nothing else is signed after
        // it: the peer may close with it at any time, so a restart must not sign a later state.
        await this.saveDurably()
      }
      const out: ChannelWire[] = []
      for (const [i, r] of made.entries()) {
        const { waiter } = batch[i] as (typeof batch)[number]
        if (r.error !== undefined) waiter.reject(r.error)
        else {
          this.waiters.set((r.wire as Extract<ChannelWire, { t: 'update' }>).seq, waiter)
          out.push(r.wire)
        }
      }
      // The replies to the peer's updates these proposals build on leave first: a proposal that
      // overtook its acknowledgement would be refused as out of order. So they wait for the
      // peer's messages being handled now (whose replies may not be queued yet; not for those
      // that come later, which these do not build on), then go behind the acknowledgements held
      // for a save, and leave after it, in order. (My revocations held for a lazy save are not
      // waited for: the peer needs none of them before my next update.)
      if (out.length > 0 && this.handling.size > 0) await Promise.all([...this.handling])
      if (this.abandoned !== undefined || this.offChainEnded || this.session.onChain) {
        // Ended or settled on chain meanwhile: nothing of it leaves (its waiters were rejected).
        const e = this.abandoned ?? new ChannelProtocolError('CHANNEL_CLOSED', 'the channel is being settled on chain')
        for (const wire of out) this.waiters.delete((wire as Extract<ChannelWire, { t: 'update' }>).seq)
        for (const b of batch) b.waiter.reject(e)
        return
      }
      const acks = (ws: readonly ChannelWire[]) => ws.some((w) => w.t !== 'revoke')
      if (out.length > 0 && (acks(this.held) || acks(this.writingReplies))) {
        for (const wire of out) this.heldProposals.add(wire)
        this.dirty = true
        this.held.push(...out)
        void this.flush().catch((e) => {
          this.dirty = true
          this.io.onSaveFailed?.(e)
        })
      } else for (const wire of out) this.io.send(wire)
    } catch (e) {
      for (const b of batch) b.waiter.reject(e instanceof Error ? e : new Error(String(e)))
    } finally {
      this.making = false
      this.scheduleDrain()
    }
  }

  private emit(events: readonly ChannelSessionEvent[]): void {
    for (const e of events) {
      switch (e.type) {
        case 'confirmed':
          this.settle(e.seq)
          break
        case 'synced':
          // Proposals up to the synced state that are no longer in flight were countersigned.
          for (const seq of [...this.waiters.keys()])
            if (seq <= e.seq && !this.session.inFlight.some((f) => f.state.seq === seq)) this.settle(seq)
          break
        case 'refused':
          for (const seq of [...this.waiters.keys()])
            if (seq >= e.seq) this.fail(seq, new ChannelProtocolError('CONFLICT', `the peer refused state ${e.seq}: ${e.code} ${e.reason}`))
          break
        case 'dropped':
          for (const seq of [...this.waiters.keys()])
            if (!this.session.inFlight.some((f) => f.state.seq === seq))
              this.fail(seq, new ChannelProtocolError('CONFLICT', 'the peer proposed a state at the same time; propose again'))
          break
        case 'closeAgreed':
          this.closeWaiter?.resolve(e.signed)
          this.closeWaiter = undefined
          break
      }
      this.io.onEvent?.(e)
    }
  }

  private settle(seq: number): void {
    this.waiters.get(seq)?.resolve()
    this.waiters.delete(seq)
    this.scheduleDrain()
  }

  private fail(seq: number, e: Error): void {
    this.waiters.get(seq)?.reject(e)
    this.waiters.delete(seq)
    this.scheduleDrain()
  }
}
