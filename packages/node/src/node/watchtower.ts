/**
 * The watchtower: a party of a payment channel hands its latest co-signed state, with the peer's
 * revocation it holds, to its institution's node (light protocol `watch`, or JSON-RPC
 * `lc_watchChannel`), and while the party is offline the node watches the chain. When a block
 * records a unilateral close of a watched channel (or a challenge) with an older state than the
 * one held, the node sends `challenge` from its own account: with the closer's revocation of the
 * closing state, the closer is penalised and the other party receives the whole channel; without
 * one, the newer state replaces the closer's.
 *
 * Held states and revocations are checked against the chain's record of the channel (keys, total)
 * before they are kept, only the highest seq per channel and the highest revocation per party are
 * kept, and they live in their own LevelDB beside the node's (`<dataDir>/watchtower`), so a
 * restart keeps watching.
 */
import {
  accountKey,
  accountStateCodec,
  CHANNEL_ADDRESS,
  ChannelEvent,
  type ChannelRecord,
  type ChannelRevocation,
  ChannelStatus,
  channelCallTransaction,
  channelKey,
  channelRecordCodec,
  checkChannelRevocation,
  checkSignedChannelState,
  decode,
  decodeWatchRequest,
  EMPTY_ACCOUNT,
  encodeChannelRevocation,
  encodeSignedChannelState,
  encodeWatchRequest,
  type KeyPair,
  LoopchainError,
  type SignedChannelState,
  to0x,
  type WatchRequest,
} from '@loopchain/core'
import { nativeCrypto } from '../native-crypto.js'
import type { NodeLogger } from '../p2p/logger.js'
import { LevelKVStore } from '../storage/level-store.js'
import type { CommittedBlock, FullNode } from './full-node.js'

/** Most channels one watchtower holds. */
export const MAX_WATCHED_CHANNELS = 10_000

/** Why a state was not taken. */
export type WatchErrorCode = 'MALFORMED' | 'UNKNOWN_CHANNEL' | 'CHANNEL_CLOSED' | 'BAD_STATE' | 'BAD_REVOCATION' | 'FULL'

/** A state the watchtower refused (nothing changed). */
export class WatchError extends LoopchainError<WatchErrorCode> {}

/** The watchtower of one node. Open with {@link Watchtower.open}. */
export class Watchtower {
  private readonly held = new Map<string, WatchRequest>()
  /** Challenges sent and not yet seen through: the held seq they carry and their transaction's hash. */
  private readonly challenged = new Map<string, { seq: number; txHash: string }>()
  /** Watch requests are taken one at a time: each reads what is held, then writes. */
  private watching: Promise<unknown> = Promise.resolve()
  /** Channels whose challenge the node did not admit (a full pool, say): tried again at every block. */
  private readonly retry = new Set<string>()
  /** Challenges are made one at a time: each takes the next nonce of the node's account. */
  private serial: Promise<void> = Promise.resolve()
  private challenges = 0
  private off: (() => void) | undefined

  private constructor(
    private readonly node: FullNode,
    private readonly db: LevelKVStore,
    private readonly key: KeyPair,
    private readonly log: NodeLogger,
    private readonly maxChannels: number,
  ) {}

  /** Opens the watchtower's store under the node's data directory and starts watching committed blocks. */
  static async open(node: FullNode, key: KeyPair, log: NodeLogger, maxChannels = MAX_WATCHED_CHANNELS): Promise<Watchtower> {
    const db = await LevelKVStore.open(`${node.options.dataDir}/watchtower`)
    const w = new Watchtower(node, db, key, log, maxChannels)
    for await (const [k, v] of db.iterate()) w.held.set(to0x(k), decodeWatchRequest(v))
    w.off = node.onBlock((b) => void w.onBlock(b).catch((e) => log.warn('watchtower: a block could not be checked', { error: String(e) })))
    if (w.held.size > 0) log.info('watchtower: watching', { channels: w.held.size })
    // A close may have been committed while the tower was down (a kill -9 after the block, before
    // its challenge was in one): every held channel is looked at again now, not only on new events.
    await w.recheck([...w.held.keys()])
    return w
  }

  /** Challenges the given held channels that are closing with an older state; forgets closed ones. */
  private async recheck(hexes: readonly string[]): Promise<void> {
    for (const hex of hexes) {
      const held = this.held.get(hex)?.signed
      if (held === undefined) continue
      const rec = await this.record(held.state.channelId)
      if (rec === undefined) continue
      if (rec.status === ChannelStatus.Closed) await this.forget(hex, held.state.channelId)
      else await this.check(hex, rec)
    }
  }

  /** Channels watched. */
  get size(): number {
    return this.held.size
  }

  /** Challenges sent since start. */
  get challengesSent(): number {
    return this.challenges
  }

  /**
   * Takes `bytes` (an encoded co-signed state, optionally followed by revocations: a
   * {@link WatchRequest}) if the state is a valid state of an open or closing channel and the
   * revocations are its parties'; keeps the newer state and each party's higher revocation.
   * Resolves with the seq now held. Throws {@link WatchError}.
   */
  watch(bytes: Uint8Array): Promise<number> {
    const run = this.watching.then(() => this.take(bytes))
    this.watching = run.catch(() => undefined)
    return run
  }

  private async take(bytes: Uint8Array): Promise<number> {
    let req: WatchRequest
    try {
      req = decodeWatchRequest(bytes)
    } catch (e) {
      throw new WatchError('MALFORMED', `not a signed channel state (with revocations): ${(e as Error).message}`)
    }
    const { signed } = req
    const id = signed.state.channelId
    const rec = await this.record(id)
    // Not the sender's fault (no penalty): a channel opened or closed a moment ago, or a full tower.
    if (rec === undefined) throw new WatchError('UNKNOWN_CHANNEL', `no channel ${to0x(id)} on chain`, { penalize: false })
    if (rec.status === ChannelStatus.Closed || rec.status === ChannelStatus.Opening)
      throw new WatchError('CHANNEL_CLOSED', `channel ${to0x(id)} is not open`, { penalize: false })
    const bad = checkSignedChannelState(signed, id, rec.deposits[0] + rec.deposits[1], rec.keys, nativeCrypto)
    if (bad !== undefined) throw new WatchError('BAD_STATE', bad)
    for (const r of req.revocations) {
      const why =
        r.below < 1
          ? 'a revocation covers state 0 at least'
          : checkChannelRevocation(r, id, r.party, r.below - 1, rec.keys[r.party], nativeCrypto)
      if (why !== undefined) throw new WatchError('BAD_REVOCATION', why)
    }
    const hex = to0x(id)
    const have = this.held.get(hex)
    const next: WatchRequest = {
      signed: have !== undefined && have.signed.state.seq >= signed.state.seq ? have.signed : signed,
      revocations: highestPerParty([...(have?.revocations ?? []), ...req.revocations]),
    }
    if (have !== undefined && next.signed === have.signed && sameRevocations(next.revocations, have.revocations))
      return have.signed.state.seq
    if (have === undefined && this.held.size >= this.maxChannels) await this.makeRoom(rec.deposits[0] + rec.deposits[1])
    await this.db.write([{ type: 'put', key: id, value: encodeWatchRequest(next) }])
    this.held.set(hex, next)
    this.log.info('watchtower: holding a channel state', {
      channel: hex,
      seq: next.signed.state.seq,
      revoked: next.revocations.map((r) => `party ${r.party} below ${r.below}`).join(', '),
    })
    // A close may already be on chain: read again now that the state is held. One committed while
    // this waited (for the write, say) came to onBlock before there was a state to defend.
    const now = await this.record(id)
    if (now !== undefined) await this.check(hex, now)
    return next.signed.state.seq
  }

  /**
   * A full tower lets the smallest channel it holds (by what the channel holds) go for a larger
   * one; a channel it is challenging for stays. Channels between fresh keys with a token each cost
   * little to open: without this, anyone could fill the tower and leave real channels unwatched.
   * Throws {@link WatchError} `FULL` when no held channel is smaller than `total`.
   */
  private async makeRoom(total: bigint): Promise<void> {
    let smallest: { hex: string; signed: SignedChannelState; total: bigint } | undefined
    for (const [hex, { signed }] of this.held) {
      if (this.challenged.has(hex) || this.retry.has(hex)) continue
      const t = channelTotal(signed)
      if (smallest === undefined || t < smallest.total) smallest = { hex, signed, total: t }
    }
    if (smallest === undefined || smallest.total >= total)
      throw new WatchError('FULL', 'this watchtower holds as many channels as it can, none smaller than this one', { penalize: false })
    await this.forget(smallest.hex, smallest.signed.state.channelId)
    this.log.warn('watchtower: full; stopped watching the smallest channel for a larger one', {
      channel: smallest.hex,
      total: String(smallest.total),
    })
  }

  /** Stops watching and closes the store. */
  async close(): Promise<void> {
    this.off?.()
    await this.db.close()
  }

  private async record(id: Uint8Array): Promise<ChannelRecord | undefined> {
    const raw = await this.node.committedState().get(channelKey(id))
    return raw === undefined ? undefined : decode(channelRecordCodec, raw)
  }

  private async onBlock(b: CommittedBlock): Promise<void> {
    // A challenge sent but gone from the pool without a block taking it (expired, evicted) is sent
    // again while the channel is still closing with the older state.
    const dropped = [...this.challenged].filter(([, c]) => c.txHash !== '' && !this.node.mempool.has(c.txHash)).map(([hex]) => hex)
    for (const hex of dropped) this.challenged.delete(hex)
    // And one the node did not admit is tried again.
    const again = [...this.retry]
    this.retry.clear()
    await this.recheck([...dropped, ...again])
    for (const r of b.receipts)
      for (const l of r.logs) {
        if (l.score !== CHANNEL_ADDRESS) continue
        const id = l.indexed[0]
        if (!(id instanceof Uint8Array)) continue
        const hex = to0x(id)
        if (!this.held.has(hex)) continue
        const rec = await this.record(id)
        if (rec === undefined) continue
        // A close, or a challenge that replaced the closing state with one still older than ours.
        if (l.event === ChannelEvent.Closing || l.event === ChannelEvent.Challenged) await this.check(hex, rec)
        else if (rec.status === ChannelStatus.Closed) await this.forget(hex, id)
      }
  }

  /** Challenges a closing channel whose recorded state is older than the held one (one challenge at a time). */
  private check(hex: string, rec: ChannelRecord): Promise<void> {
    const run = this.serial.then(() => this.challenge(hex, rec))
    this.serial = run.catch(() => undefined)
    return run
  }

  private async challenge(hex: string, rec: ChannelRecord): Promise<void> {
    const watched = this.held.get(hex)
    const held = watched?.signed
    if (watched === undefined || held === undefined || rec.status !== ChannelStatus.Closing || held.state.seq <= rec.seq) return
    // A challenge lands in the next block at the earliest, and the chain takes none after the deadline.
    if (rec.deadline !== undefined && this.node.height >= rec.deadline) {
      this.log.error('watchtower: a channel closed with an old state and its challenge period is over', {
        channel: hex,
        deadline: rec.deadline,
      })
      return
    }
    // The closer's own revocation of the state it closed with makes the close stale: penalised.
    const revocation = watched.revocations.find((r) => r.party === rec.closer && r.below > rec.seq)
    const penalty = revocation !== undefined
    // Sent already. (A revocation handed in after a challenge without one went out comes too late:
    // once that challenge lands the record holds the newest state, and nothing newer is held.)
    if (this.challenged.get(hex)?.seq === held.state.seq) return
    this.challenged.set(hex, { seq: held.state.seq, txHash: '' })
    const raw = await this.node.committedState().get(accountKey(this.key.address))
    const account = raw === undefined ? EMPTY_ACCOUNT : decode(accountStateCodec, raw)
    const tx = channelCallTransaction(
      {
        key: this.key,
        networkId: this.node.options.genesis.networkId,
        nonce: account.nonce + this.node.mempool.pendingFrom(this.key.address),
        method: 'challenge',
        params:
          revocation === undefined
            ? { state: encodeSignedChannelState(held) }
            : { state: encodeSignedChannelState(held), revocation: encodeChannelRevocation(revocation) },
        timestamp: Date.now() * 1000,
      },
      nativeCrypto,
    )
    try {
      const txHash = await this.node.submit(tx)
      this.challenged.set(hex, { seq: held.state.seq, txHash: txHash.replace(/^0x/, '') })
      this.challenges++
      this.log.warn('watchtower: a channel was closed with an old state; challenge sent', {
        channel: hex,
        closedWith: rec.seq,
        held: held.state.seq,
        deadline: rec.deadline,
        penalty,
      })
    } catch (e) {
      // Tried again at the next block (a full pool, say).
      this.challenged.delete(hex)
      this.retry.add(hex)
      this.log.warn('watchtower: the challenge was not admitted; trying again at the next block', { channel: hex, error: String(e) })
    }
  }

  private async forget(hex: string, id: Uint8Array): Promise<void> {
    this.held.delete(hex)
    this.challenged.delete(hex)
    this.retry.delete(hex)
    await this.db.write([{ type: 'del', key: id }])
  }
}

/** Of `rs`, each party's revocation with the highest number. */
function highestPerParty(rs: readonly ChannelRevocation[]): ChannelRevocation[] {
  const best: (ChannelRevocation | undefined)[] = [undefined, undefined]
  for (const r of rs) if ((best[r.party]?.below ?? -1) < r.below) best[r.party] = r
  return best.filter((r): r is ChannelRevocation => r !== undefined)
}

function sameRevocations(a: readonly ChannelRevocation[], b: readonly ChannelRevocation[]): boolean {
  return a.length === b.length && a.every((r, i) => r.party === b[i]?.party && r.below === b[i]?.below)
}

/** What a channel holds: its state's balances and conditional payments (they add up to the deposits). */
function channelTotal(signed: SignedChannelState): bigint {
  return signed.state.htlcs.reduce((t, h) => t + h.amount, signed.state.balances[0] + signed.state.balances[1])
}
