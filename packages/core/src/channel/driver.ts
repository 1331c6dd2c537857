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
  type ChannelContext,
  ChannelProtocolError,
  type ChannelSession,
  type ChannelSessionEvent,
  type ChannelSnapshot,
  type ChannelWire,
  MAX_IN_FLIGHT,
} from './session.js'
import type { SignedChannelState } from './state.js'

/** Where a driver sends messages and saves snapshots. */
export interface ChannelDriverIo {
  /** Sends a message to the peer (undefined link: the peer is offline; messages are re-sent on hello). */
  send(m: ChannelWire): void
  /** Saves the snapshot durably; resolves once it is on disk. */
  save(snapshot: ChannelSnapshot): Promise<void>
  /** The block height the wallet sees (for hash-locked payments' expiries). */
  height(): number
  /** Every event, after the state it reports was saved. */
  onEvent?(e: ChannelSessionEvent): void
  /** A message from the peer was refused (nothing changed). */
  onRefused?(e: ChannelProtocolError, m: ChannelWire): void
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
  private writing: Promise<void> | undefined
  private held: ChannelWire[] = []
  private heldEvents: ChannelSessionEvent[] = []
  private closeWaiter: { resolve: (s: SignedChannelState) => void; reject: (e: Error) => void } | undefined
  /** Callers waiting for room in the in-flight window. */
  private slotWaiters: (() => void)[] = []

  constructor(
    readonly session: ChannelSession,
    private readonly io: ChannelDriverIo,
  ) {}

  private get ctx(): ChannelContext {
    return { height: this.io.height() }
  }

  /** Pays `amount`; resolves once the peer countersigned (and saved) it, rejects when refused or dropped. */
  async pay(amount: bigint, memo?: string): Promise<void> {
    return this.propose(() => this.session.pay(amount, this.ctx, memo))
  }

  /** Offers a hash-locked payment; resolves once countersigned. */
  async addHtlc(p: { amount: bigint; hashLock: Uint8Array; expiry: number; next?: Address }): Promise<void> {
    return this.propose(() => this.session.addHtlc(p, this.ctx))
  }

  /** Settles the peer's hash-locked payment `id` with its preimage; resolves once countersigned. */
  async settleHtlc(id: number, preimage: Uint8Array): Promise<void> {
    return this.propose(() => this.session.settleHtlc(id, preimage, this.ctx))
  }

  /** Gives the peer's hash-locked payment `id` back; resolves once countersigned. */
  async failHtlc(id: number): Promise<void> {
    return this.propose(() => this.session.failHtlc(id, this.ctx))
  }

  /** Agrees the final state with the peer; resolves with it, both signatures on it. */
  async proposeClose(): Promise<SignedChannelState> {
    const done = new Promise<SignedChannelState>((resolve, reject) => {
      this.closeWaiter = { resolve, reject }
    })
    await this.propose(() => this.session.proposeClose(this.ctx))
    return done
  }

  /** Sends a private message (signed, numbered); saved first so its number is never reused. */
  async message(body: Uint8Array): Promise<void> {
    const m = await this.session.message(body)
    this.dirty = true
    await this.flush()
    this.io.send(m)
  }

  /** Says hello on a new link (the peer answers with what this side lacks, and proposals in flight go again). */
  hello(): void {
    this.io.send(this.session.hello())
  }

  /** Handles one message from the peer. A refused update is answered with a `reject`; nothing changes. */
  async receive(m: ChannelWire): Promise<void> {
    let r: Awaited<ReturnType<ChannelSession['receive']>>
    try {
      r = await this.session.receive(m, this.ctx)
    } catch (e) {
      if (!(e instanceof ChannelProtocolError)) throw e
      if (m.t === 'update') this.io.send({ t: 'reject', channelId: m.channelId, seq: m.seq, code: e.code, reason: e.message.slice(0, 500) })
      this.io.onRefused?.(e, m)
      return
    }
    if (!r.persist) {
      for (const reply of r.replies) this.io.send(reply)
      this.emit(r.events)
      return
    }
    if (m.t === 'ack') {
      // My proposal, countersigned: confirmed at once. The peer saved it before acknowledging, so
      // it survives a crash of either side (a restarted side gets it back by sync); our own copy
      // goes to storage with the next save.
      this.dirty = true
      this.emit(r.events)
      await this.flush()
      return
    }
    this.dirty = true
    this.held.push(...r.replies)
    this.heldEvents.push(...r.events)
    await this.flush()
  }

  /** Saves now if anything changed, then releases what waited for the save. Resolves once saved. */
  async flush(): Promise<void> {
    while (this.dirty || this.writing) {
      if (this.writing) {
        await this.writing
        continue
      }
      this.dirty = false
      const replies = this.held
      const events = this.heldEvents
      this.held = []
      this.heldEvents = []
      this.writing = this.io.save(this.session.snapshot()).finally(() => {
        this.writing = undefined
      })
      await this.writing
      for (const reply of replies) this.io.send(reply)
      this.emit(events)
    }
  }

  /** Rejects every waiting proposal (the link or the page is going away). */
  abandon(reason: string): void {
    for (const w of this.waiters.values()) w.reject(new ChannelProtocolError('CHANNEL_CLOSED', reason))
    this.waiters.clear()
    this.closeWaiter?.reject(new ChannelProtocolError('CHANNEL_CLOSED', reason))
    this.closeWaiter = undefined
  }

  /**
   * Makes a proposal once the in-flight window has room (a burst of payments queues rather than
   * fails), sends it and waits for the countersignature. Proposals being made count as in flight.
   */
  private async propose(make: () => Promise<ChannelWire>): Promise<void> {
    while (this.session.inFlight.length + this.making >= MAX_IN_FLIGHT) await new Promise<void>((r) => this.slotWaiters.push(r))
    this.making++
    let m: ChannelWire
    try {
      m = await make()
    } finally {
      this.making--
      this.wakeSlots()
    }
    return this.sendAndWait(m)
  }
  private making = 0

  /** Wakes as many waiting proposals as the window has room for, first come first served (not all of them: a burst of thousands would wake thousands per payment). */
  private wakeSlots(): void {
    let room = MAX_IN_FLIGHT - this.session.inFlight.length - this.making
    while (room-- > 0 && this.slotWaiters.length > 0) (this.slotWaiters.shift() as () => void)()
  }

  private sendAndWait(m: ChannelWire): Promise<void> {
    const seq = (m as Extract<ChannelWire, { t: 'update' }>).seq
    const done = new Promise<void>((resolve, reject) => this.waiters.set(seq, { resolve, reject }))
    this.io.send(m)
    return done
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
    this.wakeSlots()
  }

  private fail(seq: number, e: Error): void {
    this.waiters.get(seq)?.reject(e)
    this.waiters.delete(seq)
    this.wakeSlots()
  }
}
