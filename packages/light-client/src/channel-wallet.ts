/**
 * The channel wallet: a key, its channels, and the links to their peers. It opens channels with
 * other wallets (a handshake on the direct link, then `open` and `join` on chain), pays and
 * chats over the link through a {@link ChannelDriver} per channel (every state saved before it
 * is acknowledged), closes cooperatively or alone, and watches the chain: a peer's close with an
 * older state than the one it holds is challenged at once (the peer is penalised when it had
 * revoked that state, and the newer state replaces it when it had not). Chain facts
 * come from the light client as state proofs against verified headers.
 *
 * Link frames: one tag byte, then a channel protocol message (tag 1) or a wallet control message
 * (tag 2, JSON: identity, channel proposals and their answers). Control messages carry nothing a
 * peer could abuse: what a channel is, the chain's proven record says.
 */
import {
  accountAddress,
  bytesEqual,
  CHANNEL_OUTCOME_NAMES,
  CHANNEL_PROTOCOL_VERSION,
  CHANNEL_STATUS_NAMES,
  type ChannelRecord as ChainChannelRecord,
  type ChannelChange,
  ChannelDriver,
  ChannelProtocolError,
  ChannelSession,
  type ChannelSessionEvent,
  type ChannelSigner,
  type ChannelSnapshot,
  ChannelStatus,
  type ChannelWire,
  channelHelloDigest,
  channelIdOf,
  decodeChannelWire,
  encodeChannelRevocation,
  encodeChannelWire,
  encodeSignedChannelState,
  encodeWatchRequest,
  fromHex,
  type Htlc,
  isAddress,
  type KeyPair,
  MAX_HTLC_WAIT,
  MIN_CHALLENGE_PERIOD,
  nobleCrypto,
  type SignedChannelState,
  setNewest,
  sha256,
  to0x,
  utf8,
} from '@loopchain/core'
import { type ChainAccess, ChannelCaller, provenAccount, provenChannel, provenPreimage } from './channel-chain.js'
import type { ChannelRecord, ChannelStore, StoredMessage } from './channel-store.js'
import { MAX_PAID_LOCKS, MAX_STORED_MESSAGES } from './channel-store.js'
import { type LinkKind, type WalletActions, type WalletChannel, WalletError, type WalletState } from './wallet-api.js'

/** A link to another wallet (peer-link.ts makes them over WebRTC or the relay). */
export interface WalletLink {
  /** The libp2p peer at the other end (authenticated by the link's handshake). */
  readonly remotePeer: string
  readonly kind: 'direct' | 'relayed'
  send(frame: Uint8Array): void
  onMessage(cb: (frame: Uint8Array) => void): void
  onClose(cb: () => void): void
  close(): void
}

/** Where links come from. */
export interface WalletLinks {
  /** Addresses other wallets dial to reach this one (empty until a relay reservation is made). */
  myAddresses(): string[]
  /** This end's id as the other end of a link sees it (its {@link WalletLink.remotePeer}): the libp2p peer id. */
  selfId(): string
  onLink(cb: (link: WalletLink) => void): void
  dial(address: string): Promise<WalletLink>
}

/** What a wallet is made of. */
export interface ChannelWalletOptions {
  readonly key: KeyPair
  /** Signs channel states and messages (WebCrypto where the runtime has Ed25519). */
  readonly signer: ChannelSigner
  readonly store: ChannelStore
  readonly chain: ChainAccess
  readonly links: WalletLinks
  readonly networkId: number
  readonly stepPrice: bigint
  /** Hands a co-signed state and the peer's revocation (an encoded `WatchRequest`) to this wallet's institution's watchtower (undefined: none). */
  readonly watch?: (request: Uint8Array) => Promise<void>
  /** How often the chain is checked for open, closing and closed channels (ms). Default 1000. */
  readonly pollMs?: number
  /**
   * How the wallet dials again a channel's peer it has no link to: every `everyMs` (default 3 s,
   * rounded to whole `pollMs`) for the first `fastDials` failures in a row (default 10, about 30 s:
   * a page reloading, a network coming back), then after each further failure twice as long as
   * after the one before, up to `maxWaitMs` (default 60 s). A peer away for hours then costs a dial
   * a minute, not twenty — each one a request to a relay, which counts those that reach a held slot
   * against the pair of addresses' budget. A link the peer makes (its page came back and dialled
   * this one) ends the wait at once, and a link made starts the count again.
   */
  readonly redial?: { readonly everyMs?: number; readonly fastDials?: number; readonly maxWaitMs?: number }
  /** Wall clock for message times and transaction timestamps (ms). */
  readonly now?: () => number
  /**
   * Forward hash-locked payments between this wallet's channels (a full node acting as hub): a
   * payment that arrives with `next` is offered on the channel with that account, and settled
   * back with the preimage the next hop reveals. Default false.
   */
  readonly hub?: boolean
  /**
   * How long a hub waits for the next hop's channel to be open and linked before giving a payment
   * back (ms). Default {@link FORWARD_WAIT_MS}.
   */
  readonly forwardWaitMs?: number
  /**
   * Blocks this wallet's routed payments may take to settle: their expiry, from the height it
   * pays at. Default {@link ROUTED_PAYMENT_WAIT}; above `HOP_DELTA + REDEEM_MARGIN` (30), so a hub
   * can offer the next hop an earlier one and still redeem on chain, and at most `MAX_HTLC_WAIT`.
   * A hub that holds the preimage of a payment its payer does not settle closes and redeems on
   * chain halfway to the expiry, so the payer's longer wait widens the hub's window too (the hub's
   * own setting plays no part in a payment it forwards: packages/core/docs/channels.md,
   * "Expiries are counted in blocks").
   */
  readonly routedPaymentWait?: number
}

/** The default challenge period (blocks) when the opener does not choose one. */
export const DEFAULT_CHALLENGE_PERIOD = 20
const TAG_WIRE = 1
const TAG_CONTROL = 2
const ANSWER_TIMEOUT_MS = 30_000
const RECONNECT_MS = 3_000
/** Failed dials in a row to one peer before the wallet waits longer between them (see `redial`). */
const FAST_REDIALS = 10
/** The longest wait between dials to a peer that stays unreachable (ms). */
const MAX_REDIAL_WAIT_MS = 60_000

type Control =
  // `protocol`: the channel protocol version (absent: 1, the version before it was sent).
  // `proof` (version 2 on): 0x signature by the address's key of channelHelloDigest(network id,
  // address, the receiver's link id, protocol).
  | { type: 'hi'; address: string; publicKey: string; links?: string[]; protocol?: number; proof?: string }
  | { type: 'propose'; localId: string; deposit: string; peerDeposit: string; challengePeriod: number }
  | { type: 'accept'; localId: string }
  | { type: 'decline'; localId: string; reason: string }
  | { type: 'opened'; localId: string; channelId: string; txHash: string }

/** The invite another wallet uses to reach this one. */
export interface Invite {
  readonly address: string
  readonly publicKey: string
  readonly links: readonly string[]
}

const INVITE_PREFIX = 'lcch1.'
const INVOICE_PREFIX = 'lcinv1.'
/** Why a routed payment's wait ends when its channel goes on chain. */
const ON_CHAIN_PAYMENT =
  'the channel is closing on chain with this payment in it: the next hop redeems it there with the secret if it was paid, or it comes back to you once it expires'

/** Blocks a routed payment may take to settle; each hop gives the next one {@link HOP_DELTA} fewer. */
export const ROUTED_PAYMENT_WAIT = 100
/** Blocks a hub keeps between the expiry it offers downstream and the one it was offered. */
export const HOP_DELTA = 20
/** How long a link to a wallet of another protocol version stays open after its hello (ms). */
const INCOMPATIBLE_CLOSE_MS = 1_000
/**
 * How long a wallet leaves a peer that answered with another protocol version before dialling it
 * again (ms): until its page is reloaded nothing comes of a dial, and through a relay each one
 * spends the relay's budget (a reloaded page dials this wallet itself).
 */
const INCOMPATIBLE_REDIAL_MS = 5 * 60_000
/** How a channel's error about a peer of another protocol version starts. */
const OTHER_VERSION = "the peer's wallet speaks channel protocol"
/** How long a hub waits for the next hop's channel to be open and linked before giving a payment back (ms). */
export const FORWARD_WAIT_MS = 10_000
/** How long closing the wallet waits for its sessions' last saves. */
const CLOSE_SAVE_MS = 2_000
/**
 * Blocks before a payment to us expires by which at the latest, holding its preimage but no
 * countersigned settlement (the payer went silent), the wallet closes the channel alone and
 * redeems the payment on chain: a close and a redeem take a block each, the rest is margin. It
 * closes earlier when it held the preimage earlier: halfway from then to the expiry. A hub learns
 * the preimage {@link HOP_DELTA} blocks before the expiry it was offered at the latest.
 */
export const REDEEM_MARGIN = 10
/** Blocks after which an on-chain call whose effect the chain does not show is sent again. */
export const RESEND_BLOCKS = 5

/** Sends `body` behind its tag byte. A closed link drops it: the hello on the next link brings the peer up to date. */
function sendFrame(link: WalletLink, tag: number, body: Uint8Array): void {
  const frame = new Uint8Array(body.length + 1)
  frame[0] = tag
  frame.set(body, 1)
  try {
    link.send(frame)
  } catch {
    // Closed: see above.
  }
}

/** A request for a payment, paid through a hub: who is paid, how much, and the hash of a secret only the payee knows. */
export interface Invoice {
  readonly address: string
  readonly amount: bigint
  readonly hashLock: Uint8Array
}

const b64url = (s: string) => btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
const unb64url = (s: string) => atob(s.replace(/-/g, '+').replace(/_/g, '/'))

/** Encodes an invoice as one URL-safe text. */
export function encodeInvoice(i: Invoice): string {
  return INVOICE_PREFIX + b64url(JSON.stringify({ a: i.address, v: String(i.amount), h: to0x(i.hashLock) }))
}

/** Reads an invoice text; throws {@link WalletError} `BAD_INVOICE`. */
export function parseInvoice(text: string): Invoice {
  const t = text.trim()
  const bad = (why: string): never => {
    throw new WalletError('BAD_INVOICE', `this is not an invoice: ${why}`)
  }
  if (!t.startsWith(INVOICE_PREFIX)) bad(`it should start with ${INVOICE_PREFIX}`)
  let o: { a?: unknown; v?: unknown; h?: unknown }
  try {
    o = JSON.parse(unb64url(t.slice(INVOICE_PREFIX.length)))
  } catch {
    return bad('it does not decode')
  }
  if (!isAddress(o.a)) bad('no payee address')
  if (typeof o.v !== 'string' || !/^[1-9]\d{0,70}$/.test(o.v)) bad('no amount')
  if (typeof o.h !== 'string' || !/^0x[0-9a-f]{64}$/.test(o.h)) bad('no hash lock')
  return { address: o.a as string, amount: BigInt(o.v as string), hashLock: fromHex(o.h as string) }
}

/** Encodes an invite as one URL-safe text. */
export function encodeInvite(i: Invite): string {
  const json = JSON.stringify({ a: i.address, k: i.publicKey, l: i.links })
  return INVITE_PREFIX + btoa(json).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/** Reads an invite text; throws {@link WalletError} `BAD_INVITE` saying what is wrong. */
export function parseInvite(text: string): Invite {
  const t = text.trim()
  const bad = (why: string): never => {
    throw new WalletError('BAD_INVITE', `this is not a channel invite: ${why}`)
  }
  if (!t.startsWith(INVITE_PREFIX)) bad(`it should start with ${INVITE_PREFIX}`)
  let o: { a?: unknown; k?: unknown; l?: unknown }
  try {
    o = JSON.parse(atob(t.slice(INVITE_PREFIX.length).replace(/-/g, '+').replace(/_/g, '/')))
  } catch {
    return bad('it does not decode')
  }
  if (!isAddress(o.a)) bad('no account address')
  if (typeof o.k !== 'string' || !/^0x[0-9a-f]{64}$/.test(o.k)) bad('no public key')
  if (!Array.isArray(o.l) || o.l.length === 0 || !o.l.every((x) => typeof x === 'string' && x.length < 512))
    bad('no address to reach it at')
  return { address: o.a as string, publicKey: o.k as string, links: o.l as string[] }
}

interface Live {
  record: ChannelRecord
  driver?: ChannelDriver
  /** The latest co-signed state handed to the watchtower. */
  watchedSeq?: number
  onChain?: WalletChannel['onChain']
  error?: string
  saving: Promise<void>
  /** Hash locks of the payments we offered on this channel, by htlc id (to match settlements). */
  offered?: Map<number, string>
  /** The join transaction on its way. */
  joining?: Promise<Uint8Array>
  /** My open transaction on its way (its tries and their retries): the poll leaves the record alone meanwhile. */
  opening?: boolean
  /** The payments to us whose preimage we hold, by {@link heldKey}: the height of the first poll that saw it (see `redeemAt`). */
  heldSince?: Map<string, number>
  /** Expired payments to us being given back (see `failExpired`), by {@link heldKey}. */
  failing?: Set<string>
  /** A close made to redeem a payment on chain, on its way. */
  closingForPayments?: Promise<void>
  /** On-chain calls sent (close, challenges, redeems, a hub's withdraw), by what they do: the height each was sent at. */
  sent?: Map<string, number>
}

/** The hashes (0x) of a record's open transactions tried, the last one first. */
function openTryHashes(r: ChannelRecord): string[] {
  const tries = (r.openTries ?? []).map((e) => e.split('@')[0] as string)
  return [...new Set([...(r.openTx === undefined ? [] : [r.openTx]), ...tries.reverse()])]
}

/** A give-back that found its payment gone (another took its id): nothing to do. */
function isNotPending(err: unknown): boolean {
  return err instanceof ChannelProtocolError && err.code === 'NOT_PENDING'
}

/** A payment's key in `Live.heldSince`: its id and lock (a channel reuses an id once its payment is gone). */
function heldKey(h: Htlc): string {
  return `${h.id} ${to0x(h.hashLock)}`
}

/** Peers whose hello is remembered (their key, where they said they can be reached); past this, the least recent go. */
const KNOWN_PEERS = 4096

/** Sets `key` as the most recent entry of `map`, dropping the least recent past {@link KNOWN_PEERS}. */
function remember(map: Map<string, string>, key: string, value: string): void {
  setNewest(map, key, value, KNOWN_PEERS)
}

/** The channel wallet (see the module comment). */
export class ChannelWallet implements WalletActions {
  private readonly channels = new Map<string, Live>()
  /** Links by the peer's account address. */
  private readonly links = new Map<string, WalletLink>()
  /**
   * Links whose hello was of another channel protocol version: why nothing is exchanged. By link,
   * not by the address the hello names: another version's hello proves nothing, so it tells only
   * about the address this wallet dialled to get the link.
   */
  private readonly incompatible = new WeakMap<WalletLink, string>()
  /**
   * Peers (addresses) the reconnect loop leaves for a while, and until when: those of another
   * protocol version, and those it failed to reach {@link FAST_REDIALS} times in a row.
   */
  private readonly redialAfter = new Map<string, number>()
  /** Dials in a row that did not reach the peer, by the peer's address (cleared by a link). */
  private readonly failedDials = new Map<string, number>()
  /** Every link this wallet took and that is still open, named ({@link links}) or not yet. */
  private readonly adopted = new Set<WalletLink>()
  /** Links whose hello was taken (one a link: a proof is checked once). */
  private readonly greeted = new WeakSet<WalletLink>()
  private readonly subscribers = new Set<(s: WalletState) => void>()
  /** Answers awaited to my proposals, by local id: from the link each was sent on only. */
  private readonly answers = new Map<string, { link: WalletLink; take: (c: Control) => void }>()
  /** Preimages of this wallet's invoices, by hex of the hash lock. */
  private readonly invoices = new Map<string, Uint8Array>()
  /** Amounts of this wallet's invoices made since it opened, by hex of the hash lock (older ones: the records' `invoices`). */
  private readonly invoiceAmounts = new Map<string, bigint>()
  /** Routed payments this wallet sent, waiting to be settled, by hex of the hash lock. */
  private readonly routed = new Map<string, { channel: string; resolve: () => void; reject: (e: Error) => void }>()
  /** Payments a hub forwarded: by hex of the hash lock, where it came in. */
  private readonly forwards = new Map<string, { channel: string; htlcId: number }>()
  /**
   * Payments a hub forwarded whose offer went unanswered while the next hop's channel (`out`) went
   * on chain: by hex of the hash lock, where it came in. The next hop may hold the offer signed and
   * redeem it there, so the payment is not given back until that channel is closed (`releaseHeld`).
   */
  private readonly held = new Map<string, { out: string; channel: string; htlcId: number }>()
  private readonly caller: ChannelCaller
  private readonly now: () => number
  private balance: { value: bigint; height: number } | undefined
  private timer: ReturnType<typeof setInterval> | undefined
  private polling = false
  private closed = false
  private current: WalletState

  private constructor(private readonly o: ChannelWalletOptions) {
    this.now = o.now ?? Date.now
    this.caller = new ChannelCaller(o.chain, o.key, o.networkId, { stepPrice: o.stepPrice }, () => this.now() * 1000)
    this.current = this.compute()
  }

  /** Opens the wallet: loads its channels, listens for links, reconnects to peers, starts watching the chain. */
  static async open(o: ChannelWalletOptions): Promise<ChannelWallet> {
    const wait = o.routedPaymentWait
    if (wait !== undefined && !(Number.isSafeInteger(wait) && wait > HOP_DELTA + REDEEM_MARGIN && wait <= MAX_HTLC_WAIT))
      throw new WalletError(
        'BAD_OPTION',
        `routedPaymentWait must be a whole number of blocks above ${HOP_DELTA + REDEEM_MARGIN} and at most ${MAX_HTLC_WAIT}, not ${wait}`,
      )
    const fw = o.forwardWaitMs
    if (fw !== undefined && !(Number.isSafeInteger(fw) && fw > 0))
      throw new WalletError('BAD_OPTION', `forwardWaitMs must be a whole number of milliseconds above 0, not ${fw}`)
    const w = new ChannelWallet(o)
    for (const r of await o.store.list()) {
      const live: Live = { record: r, saving: Promise.resolve() }
      if (r.snapshot !== undefined) live.driver = w.makeDriver(live, ChannelSession.restore(r.snapshot as ChannelSnapshot, o.signer))
      w.channels.set(r.id, live)
    }
    // A hub's forwards whose offer is still out, as saved with each offer (forwardedFrom); the rest are
    // guessed by noteOffered (data from before the pairing was saved).
    for (const live of w.channels.values()) w.readForwards(live)
    // Offers of mine already countersigned before a restart (later ones come as session events).
    for (const live of w.channels.values()) w.noteAllOffered(live)
    // A hub's preimages of payments it forwarded, by hash lock (see settleKnown).
    const forwarded = new Map<string, Uint8Array>()
    for (const live of w.channels.values())
      for (const p of live.record.forwarded ?? []) {
        const preimage = fromHex(p)
        forwarded.set(to0x(sha256(preimage)), preimage)
      }
    for (const live of w.channels.values()) w.settleKnown(live, forwarded)
    o.links.onLink((link) => w.adopt(link))
    let ticks = 0
    w.timer = setInterval(() => {
      void w.poll()
      // Peers that dropped are dialled again every few seconds.
      if (++ticks % Math.max(1, Math.round((o.redial?.everyMs ?? RECONNECT_MS) / (o.pollMs ?? 1000))) === 0) void w.reconnect()
    }, o.pollMs ?? 1000)
    void w.poll()
    void w.reconnect()
    w.changed()
    return w
  }

  get state(): WalletState {
    return this.current
  }

  subscribe(cb: (s: WalletState) => void): () => void {
    this.subscribers.add(cb)
    cb(this.current)
    return () => this.subscribers.delete(cb)
  }

  /** This wallet's invite (undefined until a relay reservation gives it an address). */
  invite(): string | undefined {
    const links = this.o.links.myAddresses()
    if (links.length === 0) return undefined
    return encodeInvite({ address: this.o.key.address, publicKey: to0x(this.o.key.publicKey), links })
  }

  async openChannel(
    invite: string,
    opts: { deposit: bigint; peerDeposit?: bigint; challengePeriod?: number; label?: string },
  ): Promise<string> {
    const peer = parseInvite(invite)
    if (peer.address === this.o.key.address) throw new WalletError('SELF', 'this is your own invite')
    const peerDeposit = opts.peerDeposit ?? 0n
    const challengePeriod = opts.challengePeriod ?? DEFAULT_CHALLENGE_PERIOD
    if (opts.deposit <= 0n) throw new WalletError('BAD_AMOUNT', 'the deposit must be positive')
    if (peerDeposit < 0n) throw new WalletError('BAD_AMOUNT', "the peer's deposit cannot be negative")
    if (challengePeriod < MIN_CHALLENGE_PERIOD)
      throw new WalletError('BAD_PERIOD', `the challenge period is at least ${MIN_CHALLENGE_PERIOD} blocks`)
    const link = await this.linkTo(peer.address, peer.links)
    const localId = `local-${to0x(crypto.getRandomValues(new Uint8Array(8)))}`
    const record: ChannelRecord = {
      id: localId,
      me: 0,
      phase: 'proposed',
      peer: { address: peer.address, publicKey: peer.publicKey, link: peer.links[0], ...(opts.label ? { label: opts.label } : {}) },
      deposits: [opts.deposit, peerDeposit],
      challengePeriod,
      messages: [],
      updatedAt: this.now(),
    }
    const live: Live = { record, saving: Promise.resolve() }
    this.channels.set(localId, live)
    await this.save(live)
    const answer = await this.ask(link, localId, {
      type: 'propose',
      localId,
      deposit: String(opts.deposit),
      peerDeposit: String(peerDeposit),
      challengePeriod,
    })
    if (answer.type === 'decline') {
      await this.finish(live, 'closed', `declined: ${answer.reason}`)
      throw new WalletError('DECLINED', `the peer declined: ${answer.reason}`)
    }
    live.opening = true
    const txHash = await this.call(
      'open',
      { peer: peer.address, openerKey: this.o.key.publicKey, peerKey: fromHex(peer.publicKey), challengePeriod: BigInt(challengePeriod) },
      opts.deposit,
      false,
      // Saved before it leaves: a crash right after the node took it would otherwise leave the
      // deposit in a channel this wallet cannot name (see adoptOpened). Every try: a node that took
      // one but whose answer was lost, and another that then refused its nonce as used, make a
      // retry, and both can reach the chain (see cancelStrays).
      async (hash, nonce) => {
        const tries = [...(live.record.openTries ?? []), `${to0x(hash)}@${nonce}`]
        live.record = { ...live.record, openTx: to0x(hash), openTries: tries, updatedAt: this.now() }
        await this.save(live)
      },
    ).catch((e) => {
      live.opening = false
      throw e
    })
    try {
      return await this.adoptOpened(live, txHash)
    } finally {
      live.opening = false
    }
  }

  /**
   * The channel a proposal of mine opened with transaction `txHash`: the record takes its id and
   * waits for it on chain. Also at a poll after a restart, for a proposal whose open transaction
   * was saved but whose rename was not (the crash came in between).
   */
  private async adoptOpened(live: Live, txHash: Uint8Array): Promise<string> {
    const localId = live.record.id
    const id = to0x(channelIdOf(txHash))
    const proposedAs = live.record.proposedAs ?? localId
    live.record = { ...live.record, id, phase: 'opening', openTx: to0x(txHash), proposedAs, updatedAt: this.now() }
    this.channels.delete(localId)
    this.channels.set(id, live)
    await this.o.store.rename(localId, live.record)
    this.tellOpened(live)
    this.changed()
    return id
  }

  /**
   * Tells the peer which channel my proposal opened, if linked: at the open, after a restart that
   * found it on chain, and again at each link while it waits for the peer's deposit (the message
   * may have been lost with a link or a crash). The peer acts on it only while its record of the
   * proposal still waits for it.
   */
  private tellOpened(live: Live): void {
    const r = live.record
    const link = this.links.get(r.peer.address)
    if (link === undefined || r.me !== 0 || r.phase !== 'opening' || r.proposedAs === undefined || r.openTx === undefined) return
    this.send(link, { type: 'opened', localId: r.proposedAs, channelId: r.id, txHash: r.openTx })
  }

  /**
   * Tries of my open transaction other than the one that named the channel ("strays"): one that
   * reached the chain too opened a channel nobody knows of, holding a second deposit. It is
   * cancelled (the deposit comes back). A stray is forgotten once its channel is closed, or once
   * the account's proven nonce is past its own while its channel is not on chain: it cannot land.
   */
  private async cancelStrays(live: Live, accountNonce: number | undefined): Promise<void> {
    const r = live.record
    const keep: string[] = []
    for (const entry of r.openTries ?? []) {
      const [hash, nonce] = entry.split('@') as [string, string]
      const id = channelIdOf(fromHex(hash))
      // The try that named this channel (not the last one's hash, `openTx`, by necessity).
      if (to0x(id) === r.id) {
        keep.push(entry)
        continue
      }
      const p = await provenChannel(this.o.chain, id).catch(() => undefined)
      if (p === undefined) {
        keep.push(entry)
        continue
      }
      const rec = p.value
      if (rec === undefined) {
        if (accountNonce === undefined || accountNonce <= Number(nonce)) keep.push(entry)
        continue
      }
      if (rec.status === ChannelStatus.Closed) continue
      keep.push(entry)
      if (rec.status === ChannelStatus.Opening && rec.parties[0] === this.o.key.address)
        void this.sendOnce(live, `cancel ${hash}`, p.height, (again) => this.call('cancel', { id }, 0n, again))
    }
    if (keep.length !== (r.openTries ?? []).length) {
      live.record = { ...live.record, openTries: keep }
      await this.save(live)
    }
  }

  /**
   * Takes back my deposit from a channel I opened that the peer has not joined (it went away, or
   * never will): the channel closes as cancelled. Refused by the chain once the peer joined.
   */
  async cancelOpen(id: string): Promise<void> {
    const live = this.live(id)
    if (live.record.me !== 0 || live.record.phase !== 'opening')
      throw new WalletError('NOT_OPENING', 'only a channel you opened that the peer has not joined yet can be cancelled')
    // Checked by proof first: the chain would refuse it anyway, but only the chain would know.
    const p = await provenChannel(this.o.chain, fromHex(id)).catch(() => undefined)
    if (p?.value !== undefined && p.value.status !== ChannelStatus.Opening)
      throw new WalletError(
        'NOT_OPENING',
        `the channel is ${CHANNEL_STATUS_NAMES[p.value.status]} on chain (as of height ${p.height}): it cannot be cancelled`,
      )
    await this.call('cancel', { id: fromHex(id) })
  }

  async pay(id: string, amount: bigint): Promise<void> {
    if (amount <= 0n) throw new WalletError('BAD_AMOUNT', 'a payment must be positive')
    const d = this.openDriver(id)
    await this.guard(id, () => d.pay(amount))
  }

  async sendMessage(id: string, text: string): Promise<void> {
    const body = utf8(text)
    if (body.length === 0) throw new WalletError('EMPTY', 'the message is empty')
    const d = this.openDriver(id)
    const seq = await this.guard(id, () => d.message(body))
    const live = this.live(id)
    this.addMessage(live, { from: 'me', seq, text, at: this.now() })
    await this.save(live)
  }

  async closeCooperative(id: string): Promise<void> {
    const d = this.openDriver(id)
    const signed = await this.guard(id, () => d.proposeClose())
    await this.submitFinal(id, signed)
  }

  async closeUnilateral(id: string): Promise<void> {
    const live = this.live(id)
    const d = live.driver
    if (d === undefined || live.record.phase !== 'open') throw new WalletError('NOT_OPEN', 'only an open channel can be closed')
    // Marked sent first: a poll while the session ends below sees it on chain, and would send a
    // second close.
    live.sent ??= new Map()
    const height = this.o.chain.height
    live.sent.set('close', height)
    // First nothing more is signed (saved): an acknowledgement arriving after the close would
    // otherwise bring my revocation of the state I close with, and the peer a penalty.
    await d.endOffChain()
    this.failRouted(live, ON_CHAIN_PAYMENT)
    await this.sendClose(live, d)
    live.record = { ...live.record, phase: 'closing', updatedAt: this.now() }
    // The payments to us in the state we closed with, whose preimage we hold, are redeemed right
    // behind the close: the next nonce, so they run after it, usually in its block or the next
    // (a close that waits in a full pool holds them back with it). Waiting to see the close proven
    // first costs blocks, and near an expiry (a payer gone silent) a busy chain makes blocks fast:
    // the payment could expire in between. Sent before the save, for the same reason; the poll
    // sends them again if they do not show.
    const latest = d.session.latest.state
    if (!latest.final) await this.redeemHeld(live, latest.htlcs, height)
    await this.save(live)
  }

  /**
   * Sends `close` with the latest co-signed state (none: the deposits); a final one settles at once
   * instead (`closeCooperative`). `again`: a call sent again ({@link sendOnce}).
   */
  private async sendClose(live: Live, d: ChannelDriver, again = false): Promise<void> {
    const latest = d.session.latest
    if (latest.state.final) await this.call('closeCooperative', { state: encodeSignedChannelState(latest) }, 0n, again)
    else
      await this.call(
        'close',
        { id: fromHex(live.record.id), state: latest.state.seq === 0 ? null : encodeSignedChannelState(latest) },
        0n,
        again,
      )
  }

  async withdraw(id: string): Promise<void> {
    this.live(id)
    await this.call('withdraw', { id: fromHex(id) })
  }

  async watch(id: string): Promise<void> {
    const live = this.live(id)
    if (this.o.watch === undefined) throw new WalletError('NO_WATCHTOWER', 'this network offers no watchtower')
    const d = live.driver
    if (d === undefined) throw new WalletError('NOT_OPEN', 'the channel has no co-signed state yet')
    const latest = d.session.latest
    const revoked = d.session.peerRevocation
    await this.o.watch(encodeWatchRequest({ signed: latest, revocations: revoked === undefined ? [] : [revoked] }))
    live.watchedSeq = latest.state.seq
    this.changed()
  }

  /**
   * An invoice for `amount`: the payee keeps a random secret and gives out its hash; a payment
   * locked with that hash (through a hub) can be settled only by showing the secret, which
   * settles every hop on the way back.
   */
  createInvoice(amount: bigint): string {
    if (amount <= 0n) throw new WalletError('BAD_AMOUNT', 'an invoice must ask for a positive amount')
    const preimage = crypto.getRandomValues(new Uint8Array(32))
    const lock = sha256(preimage)
    // Every open session remembers it (saved with its snapshot), so a reload can still settle, or
    // redeem on chain; and its amount with the channel's record, written by the same save.
    const asked = `${to0x(lock)}=${amount}`
    for (const live of this.channels.values())
      if (live.driver && live.record.phase !== 'closed') {
        this.remember(live, 'invoices', [asked])
        void live.driver.rememberPreimage(preimage).catch((e) => this.fault(live, e))
      }
    this.invoices.set(to0x(lock), preimage)
    this.invoiceAmounts.set(to0x(lock), amount)
    return encodeInvoice({ address: this.o.key.address, amount, hashLock: lock })
  }

  /**
   * Pays an invoice through channel `id` (whose peer is a hub): a hash-locked payment to the hub
   * with the payee as its next hop. Resolves once it settled (the payee showed the secret), rejects
   * when a hop gave it back.
   */
  async payInvoice(id: string, invoice: string): Promise<void> {
    const inv = parseInvoice(invoice)
    const lock = to0x(inv.hashLock)
    if (this.routed.has(lock)) throw new WalletError('IN_FLIGHT', 'this invoice is being paid')
    const records = [...this.channels.values()].map((l) => l.record)
    if (records.some((r) => r.paid?.includes(lock))) throw new WalletError('ALREADY_PAID', 'this invoice was paid already')
    // Paying again now could pay twice: the first payment may still be redeemed on chain.
    if (records.some((r) => r.phase !== 'closed' && r.settlingOnChain?.includes(lock)))
      throw new WalletError('SETTLING_ON_CHAIN', 'a payment of this invoice is being settled on chain: wait until its channel is closed')
    // Pending in a channel (also after a reload, when nothing waits on it in memory).
    if ([...this.channels.values()].some((l) => l.record.phase !== 'closed' && this.pendingLocks(l, true).includes(lock)))
      throw new WalletError('IN_FLIGHT', 'a payment of this invoice is pending in a channel')
    const d = this.openDriver(id)
    const settled = new Promise<void>((resolve, reject) => this.routed.set(lock, { channel: id, resolve, reject }))
    // Handled here too: it may reject (the wallet closing) before the caller gets it, or while
    // addHtlc fails and the caller gets that error instead.
    settled.catch(() => undefined)
    try {
      await this.guard(id, () =>
        d.addHtlc({
          amount: inv.amount,
          hashLock: inv.hashLock,
          expiry: this.o.chain.height + (this.o.routedPaymentWait ?? ROUTED_PAYMENT_WAIT),
          next: inv.address as never,
        }),
      )
    } catch (e) {
      this.routed.delete(lock)
      throw e
    }
    return settled
  }

  /** The latest co-signed state of a channel (for tools and tests). */
  latestState(id: string): SignedChannelState | undefined {
    return this.channels.get(id)?.driver?.session.latest
  }

  /** Stops timers and links; the store stays open for the caller to close. */
  async close(): Promise<void> {
    this.closed = true
    if (this.timer !== undefined) clearInterval(this.timer)
    // States acknowledged since the last save are saved now (they wait for the next save otherwise,
    // and a closing wallet makes none): a reload then knows its pending payments without asking
    // the peer first. A save that fails, or takes longer than CLOSE_SAVE_MS (a peer that keeps
    // proposing keeps a session unsaved), leaves them to the peer's sync, as a crash would.
    let timer: ReturnType<typeof setTimeout> | undefined
    // A close the wallet started for a payment (and its redeems) goes out too, within the same time.
    await Promise.race([
      Promise.all([...this.channels.values()].flatMap((l) => [l.driver?.flush().catch(() => undefined), l.closingForPayments])),
      new Promise<void>((r) => {
        timer = setTimeout(r, CLOSE_SAVE_MS)
      }),
    ])
    clearTimeout(timer)
    for (const l of this.channels.values()) l.driver?.abandon('the wallet closed')
    for (const [lock, mine] of this.routed) {
      this.routed.delete(lock)
      mine.reject(new WalletError('WALLET_CLOSED', 'the wallet closed before the payment settled; it settles or expires in the channel'))
    }
    // Every link, named or still waiting for its hello.
    for (const link of [...this.adopted]) link.close()
    await Promise.all([...this.channels.values()].map((l) => l.saving))
  }

  // ------------------------------------------------------------------------------------------
  // Links and control messages.

  private async linkTo(address: string, addrs: readonly string[]): Promise<WalletLink> {
    const have = this.links.get(address)
    if (have !== undefined) return have
    let last: unknown
    for (const a of addrs) {
      try {
        const link = await this.o.links.dial(a)
        this.adopt(link)
        if (this.closed) throw new WalletError('WALLET_CLOSED', 'the wallet closed while it dialled the peer')
        await this.waitFor(
          () => {
            const why = this.incompatible.get(link)
            if (why !== undefined) throw new WalletError('INCOMPATIBLE_PEER', why)
            return this.links.get(address) === link ? link : undefined
          },
          10_000,
          'the peer to say who it is',
        )
        return link
      } catch (e) {
        if (e instanceof WalletError && (e.code === 'INCOMPATIBLE_PEER' || e.code === 'WALLET_CLOSED')) throw e
        last = e
      }
    }
    throw new WalletError('UNREACHABLE', `cannot reach the peer: ${(last as Error)?.message ?? 'no address'}`)
  }

  private adopt(link: WalletLink): void {
    // A link that comes once the wallet is closed (a dial under way when it closed, a peer dialling
    // in) is closed at once: nothing would ever close it.
    if (this.closed) {
      link.close()
      return
    }
    this.adopted.add(link)
    let peer: string | undefined
    let closed = false
    link.onClose(() => {
      closed = true
      this.adopted.delete(link)
      if (peer !== undefined && this.links.get(peer) === link) {
        this.links.delete(peer)
        this.changed()
      }
    })
    // Say who I am first, proving it for this link's other end: frames that came before I listened
    // are handed over at once when I do, and my answers to them (a hello) must not reach the peer
    // before my 'hi' (it drops frames from a link it cannot yet name).
    const me = this.o.key.address
    void Promise.resolve()
      .then(() => this.o.signer.sign(channelHelloDigest(this.o.networkId, me, link.remotePeer, CHANNEL_PROTOCOL_VERSION)))
      .then(
        (proof) => {
          // Closed while signing: nothing to say, and nothing it sent may name it.
          if (closed) return
          this.send(link, {
            type: 'hi',
            address: me,
            publicKey: to0x(this.o.key.publicKey),
            links: this.o.links.myAddresses(),
            protocol: CHANNEL_PROTOCOL_VERSION,
            proof: to0x(proof),
          })
          link.onMessage(
            (frame) =>
              void this.onFrame(
                link,
                frame,
                () => peer,
                (a) => (peer = a),
              ),
          )
        },
        () => link.close(),
      )
  }

  /**
   * Whether `c` proves its address for this link: its key is the address's, and it signed the
   * hello for this end. Checked at once (the signer's check when it is synchronous, else noble's,
   * ~1 ms; once a link), so that the frames right behind the hello find the link named. Without it
   * anyone who read an invite could speak in its wallet's name, and be sent its channels' messages.
   */
  private helloProven(c: Extract<Control, { type: 'hi' }>, theirs: number): boolean {
    if (typeof c.proof !== 'string' || !/^0x[0-9a-f]{128}$/.test(c.proof) || !/^0x[0-9a-f]{64}$/.test(c.publicKey)) return false
    const key = fromHex(c.publicKey)
    if (accountAddress(key) !== c.address) return false
    const sig = fromHex(c.proof)
    const digest = channelHelloDigest(this.o.networkId, c.address, this.o.links.selfId(), theirs)
    // The signer's own check when it answers at once (native in a node), else noble's.
    const quick = this.o.signer.verify(sig, digest, key)
    if (typeof quick === 'boolean') return quick
    void quick.catch(() => undefined)
    return nobleCrypto.verify(sig, digest, key)
  }

  private send(link: WalletLink, c: Control): void {
    sendFrame(link, TAG_CONTROL, utf8(JSON.stringify(c)))
  }

  private ask(link: WalletLink, localId: string, c: Control): Promise<Control> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.answers.delete(localId)
        reject(new WalletError('NO_ANSWER', 'the peer did not answer the proposal'))
      }, ANSWER_TIMEOUT_MS)
      this.answers.set(localId, {
        link,
        take: (a) => {
          clearTimeout(t)
          this.answers.delete(localId)
          resolve(a)
        },
      })
      this.send(link, c)
    })
  }

  private async onFrame(link: WalletLink, frame: Uint8Array, peer: () => string | undefined, setPeer: (a: string) => void): Promise<void> {
    if (frame[0] === TAG_WIRE) {
      const who = peer()
      if (who === undefined) return
      let m: ChannelWire
      try {
        m = decodeChannelWire(frame.subarray(1))
      } catch {
        return
      }
      const id = to0x(m.t === 'sync' ? m.signed.state.channelId : m.channelId)
      const live = this.channels.get(id)
      // Only the channel's own peer speaks for it.
      if (live?.driver === undefined || live.record.peer.address !== who) return
      await live.driver.receive(m).catch((e) => this.fault(live, e))
      return
    }
    if (frame[0] !== TAG_CONTROL) return
    let c: Control
    try {
      c = JSON.parse(new TextDecoder().decode(frame.subarray(1)))
    } catch {
      return
    }
    // Not an object (a bare null, say): nothing a wallet sends.
    if (typeof c !== 'object' || c === null) return
    switch (c.type) {
      case 'hi': {
        if (!isAddress(c.address) || typeof c.publicKey !== 'string') return
        const theirs = c.protocol ?? 1
        if (!Number.isSafeInteger(theirs)) return
        // One hello a link: a named link stays named, and a proof costs one check.
        if (this.greeted.has(link)) return
        this.greeted.add(link)
        if (theirs !== CHANNEL_PROTOCOL_VERSION) {
          // Another version's messages would be refused one by one, or misread: nothing is
          // exchanged, and the page says which side must update.
          const why = `${OTHER_VERSION} ${theirs} and this one ${CHANNEL_PROTOCOL_VERSION}: ${
            theirs > CHANNEL_PROTOCOL_VERSION ? 'reload this page to update it' : 'the peer must reload its page to update it'
          }; the channel waits until then`
          this.incompatible.set(link, why)
          // Closed a moment later, so my own hello reaches it first: its page can then say the same.
          setTimeout(() => link.close(), INCOMPATIBLE_CLOSE_MS)
          return
        }
        if (!this.helloProven(c, theirs)) {
          // Nobody this wallet can speak to: the link goes.
          link.close()
          return
        }
        // Its page was updated, or came back: what the mismatch said, or the failed dials, no longer hold.
        this.redialAfter.delete(c.address)
        this.failedDials.delete(c.address)
        for (const live of this.channels.values())
          if (live.record.peer.address === c.address && live.error?.startsWith(OTHER_VERSION)) live.error = undefined
        setPeer(c.address)
        const where = Array.isArray(c.links) && typeof c.links[0] === 'string' && c.links[0].length < 512 ? c.links[0] : undefined
        remember(this.peerKeys, c.address, c.publicKey)
        this.links.set(c.address, link)
        if (where !== undefined) remember(this.peerWhere, c.address, where)
        for (const live of this.channels.values()) {
          if (live.record.peer.address !== c.address) continue
          // Remember where the peer can be reached again, then resume the channel on the new link.
          if (where !== undefined && live.record.peer.link !== where) {
            live.record = { ...live.record, peer: { ...live.record.peer, link: where } }
            void this.save(live)
          }
          this.tellOpened(live)
          live.driver?.hello()
        }
        this.changed()
        return
      }
      case 'accept':
      case 'decline': {
        // Only the peer asked, on the link it was asked on, answers.
        const waiting = this.answers.get(c.localId)
        if (waiting !== undefined && waiting.link === link && peer() !== undefined) waiting.take(c)
        return
      }
      case 'propose':
        return this.onPropose(link, peer(), c)
      case 'opened':
        return this.onOpened(peer(), c)
    }
  }

  private async onPropose(link: WalletLink, from: string | undefined, c: Extract<Control, { type: 'propose' }>): Promise<void> {
    if (from === undefined) return
    let peerDeposit: bigint
    let deposit: bigint
    try {
      peerDeposit = BigInt(c.peerDeposit)
      deposit = BigInt(c.deposit)
    } catch {
      return this.send(link, { type: 'decline', localId: c.localId, reason: 'amounts must be integers' })
    }
    if (peerDeposit < 0n || deposit <= 0n || typeof c.localId !== 'string' || c.localId.length > 64)
      return this.send(link, { type: 'decline', localId: String(c.localId).slice(0, 64), reason: 'bad amounts' })
    if (peerDeposit > 0n) {
      const mine = await provenAccount(this.o.chain, this.o.key.address).catch(() => undefined)
      // A chain with no verified block yet (a fresh devnet) is not a lack of funds: say which it is.
      if (mine === undefined)
        return this.send(link, { type: 'decline', localId: c.localId, reason: 'I cannot prove my balance yet; try again in a moment' })
      if (mine.value.balance < peerDeposit)
        return this.send(link, {
          type: 'decline',
          localId: c.localId,
          reason: `I cannot deposit ${peerDeposit}: I hold ${mine.value.balance}`,
        })
    }
    const publicKey = this.peerKeys.get(from)
    // Where the proposer said it can be reached: after a reload of this page, this wallet dials it there.
    const where = this.peerWhere.get(from)
    const record: ChannelRecord = {
      id: `${from}:${c.localId}`,
      me: 1,
      phase: 'proposed',
      peer: { address: from, publicKey: publicKey ?? '', ...(where !== undefined ? { link: where } : {}) },
      deposits: [deposit, peerDeposit],
      challengePeriod: c.challengePeriod,
      messages: [],
      updatedAt: this.now(),
    }
    const live: Live = { record, saving: Promise.resolve() }
    this.channels.set(record.id, live)
    await this.save(live)
    this.send(link, { type: 'accept', localId: c.localId })
  }

  private readonly peerKeys = new Map<string, string>()
  /** Where each peer that said hello said it can be reached (the first address of its hello). */
  private readonly peerWhere = new Map<string, string>()

  private async onOpened(from: string | undefined, c: Extract<Control, { type: 'opened' }>): Promise<void> {
    if (from === undefined) return
    const oldId = `${from}:${c.localId}`
    const live = this.channels.get(oldId)
    if (live === undefined || live.record.phase !== 'proposed') return
    let id: Uint8Array
    try {
      id = fromHex(c.channelId)
      if (to0x(channelIdOf(fromHex(c.txHash))) !== c.channelId) return
    } catch {
      return
    }
    live.record = { ...live.record, id: c.channelId, phase: 'opening', openTx: c.txHash, updatedAt: this.now() }
    this.channels.delete(oldId)
    this.channels.set(c.channelId, live)
    await this.o.store.rename(oldId, live.record)
    this.changed()
    // Join once the chain shows the channel as proposed (checked by the poll); nothing here is taken on trust.
    void id
  }

  // ------------------------------------------------------------------------------------------
  // The chain.

  private async call(
    method: string,
    params: Record<string, unknown>,
    value = 0n,
    fromProven = false,
    beforeSubmit?: (hash: Uint8Array, nonce: number) => Promise<void>,
  ): Promise<Uint8Array> {
    try {
      return await this.caller.call(method, params as never, value, fromProven, beforeSubmit)
    } catch (e) {
      throw new WalletError('TX_REFUSED', `${method}: ${(e as Error).message}`)
    }
  }

  private async submitFinal(id: string, signed: SignedChannelState): Promise<void> {
    const live = this.live(id)
    live.record = { ...live.record, phase: 'closing', updatedAt: this.now() }
    await this.save(live)
    // Both parties may submit it; the second finds the channel closed, which is fine.
    await this.call('closeCooperative', { state: encodeSignedChannelState(signed) }).catch(() => undefined)
  }

  private async poll(): Promise<void> {
    if (this.polling || this.closed) return
    this.polling = true
    try {
      const acct = await provenAccount(this.o.chain, this.o.key.address).catch(() => undefined)
      if (acct !== undefined) this.balance = { value: acct.value.balance, height: acct.height }
      for (const live of [...this.channels.values()]) {
        let r = live.record
        // My proposal whose open transaction left before a crash, the record not renamed since:
        // once the channel of one of its tries shows on chain, it is that channel.
        if (r.phase === 'proposed' && r.me === 0 && r.openTx !== undefined && !r.id.startsWith('0x') && live.opening !== true) {
          let found: Uint8Array | undefined
          for (const hash of openTryHashes(r)) {
            const opened = await provenChannel(this.o.chain, channelIdOf(fromHex(hash))).catch(() => undefined)
            if (opened?.value !== undefined) {
              found = fromHex(hash)
              break
            }
          }
          if (found === undefined) continue
          await this.adoptOpened(live, found)
          r = live.record
        }
        if (r.phase === 'closed' || r.phase === 'proposed' || !r.id.startsWith('0x')) continue
        if ((r.openTries?.length ?? 0) > 1) await this.cancelStrays(live, acct?.value.nonce)
        const p = await provenChannel(this.o.chain, fromHex(r.id)).catch(() => undefined)
        if (p === undefined) continue
        await this.onRecord(live, p.value, p.height)
      }
    } finally {
      this.polling = false
      this.changed()
    }
  }

  private async onRecord(live: Live, rec: ChainChannelRecord | undefined, height: number): Promise<void> {
    const r = live.record
    if (rec === undefined) return
    const me = this.o.key.address
    // The chain's record is the truth: parties, my key, the opener's deposit and the period must be what was agreed.
    if (
      rec.parties[r.me] !== me ||
      rec.parties[1 - r.me] !== r.peer.address ||
      to0x(rec.keys[r.me] as Uint8Array) !== to0x(this.o.key.publicKey) ||
      rec.deposits[0] !== r.deposits[0] ||
      rec.challengePeriod !== r.challengePeriod
    ) {
      live.error = 'the chain records other terms for this channel than were agreed'
      this.changed()
      return
    }
    live.onChain = {
      status: CHANNEL_STATUS_NAMES[rec.status],
      provenAt: height,
      ...(rec.closer !== undefined ? { closer: rec.closer } : {}),
      ...(rec.status >= ChannelStatus.Closing ? { closedSeq: rec.seq } : {}),
      ...(rec.deadline !== undefined ? { deadline: rec.deadline } : {}),
      ...(rec.outcome !== undefined ? { outcome: CHANNEL_OUTCOME_NAMES[rec.outcome] } : {}),
    }
    if (rec.status === ChannelStatus.Opening && r.me === 1 && r.phase === 'opening' && live.joining === undefined) {
      live.joining = this.call('join', { id: fromHex(r.id) }, r.deposits[1]).catch((e) => {
        live.error = (e as Error).message
        live.joining = undefined
        return new Uint8Array()
      })
      return
    }
    if (rec.status === ChannelStatus.Open && live.driver === undefined) {
      const session = ChannelSession.create({
        me: r.me,
        channelId: fromHex(r.id),
        keys: [rec.keys[0], rec.keys[1]],
        deposits: [rec.deposits[0], rec.deposits[1]],
        signer: this.o.signer,
      })
      live.record = {
        ...r,
        phase: 'open',
        peer: { ...r.peer, publicKey: to0x(rec.keys[1 - r.me] as Uint8Array) },
        deposits: [rec.deposits[0], rec.deposits[1]],
        // Saved with the session from the start: a wallet restarted before its first countersigned
        // state restores it and syncs with the peer before it proposes anything (it may have signed
        // and sent a state it had not saved yet). Without it, it made a new session that could sign
        // another state of the same number.
        snapshot: session.snapshot(),
      }
      live.driver = this.makeDriver(live, session)
      await live.driver.flush()
      await this.save(live)
      live.driver.hello()
      return
    }
    if (rec.status === ChannelStatus.Open && live.driver !== undefined) {
      const d = live.driver
      // A payment to us whose preimage we hold, about to expire unsettled (the payer is silent):
      // only the chain can pay it now. Close with the latest state (it holds the payment), then redeem.
      const held = this.redeemable(live, d.session.latest.state.htlcs, height)
      const due = held.some(({ htlc }) => height >= this.redeemAt(live, htlc, height))
      for (const key of live.heldSince?.keys() ?? []) if (!held.some(({ htlc }) => heldKey(htlc) === key)) live.heldSince?.delete(key)
      if (due && r.phase === 'open' && live.closingForPayments === undefined) {
        live.closingForPayments = this.closeUnilateral(r.id).catch((e) => {
          live.error = (e as Error).message
          live.closingForPayments = undefined
        })
      }
      if (r.phase === 'open' && !d.session.onChain && live.closingForPayments === undefined) this.failExpired(live, d, height)
      // Our close is not on chain some blocks on (it left the pool unused, failed, or we crashed
      // before it left): again. Likewise a final state both signed whose cooperative close did not land.
      if (d.session.onChain || (r.phase === 'closing' && d.session.latest.state.final))
        void this.sendOnce(live, 'close', height, (again) => this.sendClose(live, d, again))
      return
    }
    if (rec.status === ChannelStatus.Closing) {
      if (r.phase !== 'closing') {
        live.record = { ...r, phase: 'closing', updatedAt: this.now() }
        await this.save(live)
      }
      // Settled on chain now: nothing more is signed off chain (see ChannelSession.endOffChain).
      if (live.driver !== undefined && !live.driver.session.onChain) await live.driver.endOffChain()
      this.failRouted(live, ON_CHAIN_PAYMENT)
      this.redeemOnChain(live, rec, height)
      await this.learnFromChain(live, rec)
      // The peer closed (or someone challenged) with an older state than the one we both signed:
      // challenge it. With the peer's revocation of that state the peer is penalised; without
      // one (it closed with its latest, and we hold a proposal of its it never saw countersigned),
      // our newer state replaces its. Again if the record changes (another challenge) or the
      // challenge leaves no trace.
      const d = live.driver
      const latest = d?.session.latest
      const revoked = d?.session.peerRevocation
      // (A call lands in a later block: at the deadline it would come too late.)
      if (d !== undefined && latest !== undefined && latest.state.seq > rec.seq && latest.state.final) {
        // A final state both signed settles at once, whoever closed.
        void this.sendOnce(live, `close ${rec.seq}`, height, (again) => this.sendClose(live, d, again))
      } else if (rec.closer !== r.me && latest !== undefined && latest.state.seq > rec.seq && height < (rec.deadline ?? 0)) {
        const state = encodeSignedChannelState(latest)
        const params =
          revoked !== undefined && revoked.below > rec.seq ? { state, revocation: encodeChannelRevocation(revoked) } : { state }
        void this.sendOnce(live, `challenge ${rec.seq}`, height, (again) => this.call('challenge', params, 0n, again))
      }
      return
    }
    if (rec.status === ChannelStatus.Closed && r.phase !== 'closed') {
      // Not closed for us until what the peer redeemed here is learnt (the next poll tries again).
      if (!(await this.learnFromChain(live, rec))) return
      this.releaseHeld(live, rec)
      // What the peer redeemed of my payments on chain is paid; the rest came back to me.
      this.remember(
        live,
        'paid',
        rec.htlcs.filter((h) => h.redeemed && h.htlc.from === r.me).map((h) => to0x(h.htlc.hashLock)),
      )
      const outcome = rec.outcome === undefined ? 'closed' : CHANNEL_OUTCOME_NAMES[rec.outcome]
      await this.finish(live, 'closed', outcome)
    }
  }

  /**
   * A channel on chain in which the peer redeemed payments we offered. A hub that forwarded such a
   * payment was paid one with the same lock on another channel, and the next hop may never have
   * sent its settlement off chain: the chain holds the preimage now (core's `preimageKey`). Proves
   * it, saves it in that channel's session and settles there; if that channel is on chain too, the
   * preimage makes its payment redeemable (`redeemOnChain`, next poll). False when a proof could not
   * be read (the next poll tries again).
   */
  private async learnFromChain(live: Live, rec: ChainChannelRecord): Promise<boolean> {
    for (const { htlc, redeemed } of rec.htlcs) {
      if (!redeemed || htlc.from !== live.record.me) continue
      const lock = to0x(htlc.hashLock)
      if (this.invoices.has(lock)) continue
      const waiting = [...this.channels.values()].flatMap((l) => {
        const d = l.driver
        if (l === live || d === undefined || l.record.phase === 'closed' || d.session.preimageOf(htlc.hashLock) !== undefined) return []
        const peer = 1 - l.record.me
        return d.session.latest.state.htlcs.filter((h) => h.from === peer && to0x(h.hashLock) === lock).map((h) => ({ l, d, h }))
      })
      if (waiting.length === 0) continue
      const p = await provenPreimage(this.o.chain, htlc.hashLock).catch(() => undefined)
      if (p === undefined) return false
      // Absent only on a chain whose redeem did not record preimages yet: nothing to learn there.
      const preimage = p.value
      if (preimage === undefined) continue
      this.forwards.delete(lock)
      this.forgetForwardedFrom(lock)
      for (const { l, d, h } of waiting) {
        const saved = await d.rememberPreimage(preimage).then(
          () => true,
          (err) => {
            this.fault(l, err)
            return false
          },
        )
        if (!saved) return false
        if (!d.session.onChain) void d.settleHtlc(h.id, preimage).catch((err) => this.fault(l, err))
      }
    }
    return true
  }

  /**
   * Gives back each payment to us past its expiry: nobody can settle or redeem it now (a
   * settlement is refused at or past the expiry, a redeem past it; one of ours still waiting for
   * its countersignature has already left the tip), and left in the channel it would lock the
   * payer's amount until one of us closes on chain. A hub's hold on it (see `held`) ends with it:
   * the offer downstream expired `HOP_DELTA` blocks before. Once each while the proposal is out
   * (`failing`); again after a refusal. Not while a close of ours for payments is on its way.
   */
  private failExpired(live: Live, d: ChannelDriver, height: number): void {
    const peer = 1 - live.record.me
    for (const h of d.session.tip.htlcs) {
      if (h.from !== peer || height <= h.expiry) continue
      const lock = to0x(h.hashLock)
      const key = heldKey(h)
      live.failing ??= new Set()
      if (live.failing.has(key)) continue
      live.failing.add(key)
      // Whatever still waits on it (a hold, a forward's answer) must not act on its id later: ids
      // are reused once a payment is gone.
      if (this.held.get(lock)?.channel === live.record.id) this.held.delete(lock)
      if (this.forwards.get(lock)?.channel === live.record.id) {
        this.forwards.delete(lock)
        this.forgetForwardedFrom(lock)
      }
      void this.failIfSame(live, d, h.id, lock).then(() => live.failing?.delete(key))
    }
  }

  /**
   * Payment `htlc` of mine on `live` is offered (countersigned): a settlement of it is matched by
   * its id (`lockOf`). For a hub, it is also paired with the payment it forwards when that pairing
   * is not in memory (a restart: the sessions are restored, or synced from the peer, with the offer
   * in them): a payment paid to me on another channel with the same lock and amount, expiring
   * `HOP_DELTA` blocks later, as `onRouted` forwards it. Without this, a next hop that settled after
   * a hub restart was paid, and the payer got its payment back at its expiry.
   */
  private noteOffered(live: Live, htlc: Htlc): void {
    if (live.record.phase === 'closed') return
    const lock = to0x(htlc.hashLock)
    live.offered ??= new Map()
    live.offered.set(htlc.id, lock)
    if (!this.o.hub || this.forwards.has(lock)) return
    for (const other of this.channels.values()) {
      // A closed channel's payments are settled; one closing on chain can still be redeemed.
      if (other === live || other.record.phase === 'closed') continue
      const from = other.driver?.session.tip.htlcs.find(
        (h) => h.from !== other.record.me && to0x(h.hashLock) === lock && h.amount === htlc.amount && h.expiry === htlc.expiry + HOP_DELTA,
      )
      if (from === undefined) continue
      this.forwards.set(lock, { channel: other.record.id, htlcId: from.id })
      return
    }
  }

  /**
   * A hub, restarted: settles each payment to it on `live` whose preimage it holds, in the session
   * or among those `forwarded` (the next hop was paid, and the crash came before the settlement
   * went back: see {@link forwardedPreimages}), saved in the session first. Without this only the
   * chain would pay it, by a close before it expires, or nothing if the preimage never reached
   * the session.
   */
  private settleKnown(live: Live, forwarded: ReadonlyMap<string, Uint8Array>): void {
    const d = live.driver
    if (!this.o.hub || d === undefined || live.record.phase === 'closed') return
    const peer = 1 - live.record.me
    for (const h of d.session.tip.htlcs) {
      if (h.from !== peer) continue
      const known = d.session.preimageOf(h.hashLock)
      const preimage = known ?? forwarded.get(to0x(h.hashLock))
      if (preimage === undefined) continue
      // In the session in any case: a channel closing on chain is redeemed with it (redeemable).
      void (known === undefined ? d.rememberPreimage(preimage) : Promise.resolve())
        .then(() => {
          if (live.record.phase !== 'open' || d.session.onChain) return
          return d.settleHtlc(h.id, preimage).catch((err) => {
            // Settled before the crash (the peer's sync brings it), given back or expired since,
            // or its id reused by another payment: nothing to do. Otherwise it shows.
            const still = d.session.tip.htlcs.some((x) => x.id === h.id && bytesEqual(x.hashLock, h.hashLock))
            if (still && !isNotPending(err)) this.fault(live, err)
          })
        })
        .catch((err) => this.fault(live, err))
    }
  }

  /**
   * A hub restarted: the pairings saved with `live`'s offers (`forwardedFrom`) whose offer is still
   * pending there, proposed or countersigned, go back into `forwards`.
   */
  private readForwards(live: Live): void {
    const session = live.driver?.session
    if (!this.o.hub || session === undefined || live.record.phase === 'closed') return
    const mine = (st: { htlcs: readonly Htlc[] }) => st.htlcs.filter((x) => x.from === session.me).map((x) => to0x(x.hashLock))
    const out = new Set([...mine(session.tip), ...mine(session.latest.state)])
    const kept: string[] = []
    for (const e of live.record.forwardedFrom ?? []) {
      const [lock, from] = e.split('=') as [string, string]
      const at = from.lastIndexOf(':')
      if (!out.has(lock)) continue
      this.forwards.set(lock, { channel: from.slice(0, at), htlcId: Number(from.slice(at + 1)) })
      kept.push(e)
    }
    // The rest ended while the hub was down, or were saved just before a crash that lost their
    // offer: dropped (written with the channel's next save).
    if (kept.length !== (live.record.forwardedFrom ?? []).length) live.record = { ...live.record, forwardedFrom: kept }
  }

  /** {@link noteOffered} for each of my payments in `live`'s latest countersigned state. */
  private noteAllOffered(live: Live): void {
    for (const h of live.driver?.session.latest.state.htlcs ?? []) if (h.from === live.record.me) this.noteOffered(live, h)
  }

  /**
   * Gives back payment `id` paid to us on `d` (of channel `live`) if it is still the one locked
   * with `lock` (hex) when the proposal is made: an answer that comes late must not give back
   * another payment that took its id (ids are reused once a payment is gone). Settles when done,
   * refused, or found gone; a refusal other than the last shows on the channel.
   */
  private failIfSame(live: Live, d: ChannelDriver, id: number, lock: string): Promise<void> {
    return d.failHtlc(id, fromHex(lock)).catch((err) => {
      if (!isNotPending(err)) this.fault(live, err)
    })
  }

  /**
   * Channel `live` is closed on chain: each payment held for an offer on it (see `held`) is settled
   * already if the next hop redeemed the offer (`learnFromChain`), else it can no longer be, and
   * goes back to its payer.
   */
  private releaseHeld(live: Live, rec: ChainChannelRecord): void {
    for (const [lock, h] of this.held) {
      if (h.out !== live.record.id) continue
      this.held.delete(lock)
      if (rec.htlcs.some((x) => x.redeemed && x.htlc.from === live.record.me && to0x(x.htlc.hashLock) === lock)) continue
      const inbound = this.channels.get(h.channel)
      const d = inbound?.driver
      if (inbound !== undefined && d !== undefined && !d.session.onChain) void this.failIfSame(inbound, d, h.htlcId, lock)
    }
  }

  /**
   * The height from which a payment to us whose preimage we hold, still unsettled, is redeemed on
   * chain: halfway from the first poll that saw us hold it to its expiry (the payer has the first
   * half to countersign the settlement, the chain the second), and {@link REDEEM_MARGIN} blocks
   * before the expiry at the latest. A hub that learns the preimage early so keeps about half the
   * payment's wait to close and redeem, not the last few blocks, which a busy chain passes in a
   * second. After a restart, the first poll of the new wallet counts.
   */
  private redeemAt(live: Live, htlc: Htlc, height: number): number {
    live.heldSince ??= new Map()
    const key = heldKey(htlc)
    let since = live.heldSince.get(key)
    if (since === undefined) {
      since = height
      live.heldSince.set(key, since)
    }
    return htlc.expiry - Math.max(REDEEM_MARGIN, Math.floor((htlc.expiry - since) / 2))
  }

  /** Payments to us among `htlcs`, not expired at `height`, whose preimage we hold. */
  private redeemable(live: Live, htlcs: readonly Htlc[], height: number): { htlc: Htlc; preimage: Uint8Array }[] {
    const peer = 1 - live.record.me
    const out: { htlc: Htlc; preimage: Uint8Array }[] = []
    for (const htlc of htlcs) {
      if (htlc.from !== peer || height > htlc.expiry) continue
      const preimage = this.invoices.get(to0x(htlc.hashLock)) ?? live.driver?.session.preimageOf(htlc.hashLock)
      if (preimage !== undefined) out.push({ htlc, preimage })
    }
    return out
  }

  /**
   * While a channel is closing: redeems each payment to us that the recorded state holds and we
   * hold the preimage of (once each; again after a refusal); a hub also pays the channel out once
   * it can (nobody clicks for it).
   */
  private redeemOnChain(live: Live, rec: ChainChannelRecord, height: number): void {
    const pending = rec.htlcs.filter((h) => !h.redeemed).map((h) => h.htlc)
    void this.redeemHeld(live, pending, height)
    const payable = height > (rec.deadline ?? 0) && pending.every((h) => height > h.expiry)
    if (this.o.hub && payable)
      void this.sendOnce(live, 'withdraw', height, (again) => this.call('withdraw', { id: fromHex(live.record.id) }, 0n, again))
  }

  /**
   * Redeems on chain each payment to us among `htlcs` (of the closing state) whose preimage we hold
   * ({@link sendOnce}); resolves once each was handed to the node or refused.
   */
  private async redeemHeld(live: Live, htlcs: readonly Htlc[], height: number): Promise<void> {
    const id = fromHex(live.record.id)
    for (const { htlc, preimage } of this.redeemable(live, htlcs, height))
      await this.sendOnce(live, `redeem ${htlc.id} ${to0x(htlc.hashLock)}`, height, (again) =>
        this.call('redeem', { id, htlcId: BigInt(htlc.id), preimage }, 0n, again),
      )
  }

  /**
   * Sends an on-chain call for `key` unless one was sent fewer than {@link RESEND_BLOCKS} blocks
   * ago: the proven record decides at every poll whether it is still needed, so a call that left
   * the pool unused, or failed on chain, is sent again, and a refused one at the next poll.
   */
  private sendOnce(live: Live, key: string, height: number, send: (again: boolean) => Promise<unknown>): Promise<void> {
    live.sent ??= new Map()
    const sent = live.sent
    const at = sent.get(key)
    if (at !== undefined && height < at + RESEND_BLOCKS) return Promise.resolve()
    sent.set(key, height)
    // Sent before and its effect never showed: that call may be lost (dropped from a pool), and its
    // nonce with it. Counting on from it would put this one behind the gap, and every later call
    // too, for good: `again` sends it at the proven nonce (ChannelCaller.call's `fromProven`).
    return send(at !== undefined).then(
      () => undefined,
      (e) => {
        live.error = (e as Error).message
        sent.delete(key)
        this.changed()
      },
    )
  }

  // ------------------------------------------------------------------------------------------
  // Channels.

  private makeDriver(live: Live, session: ChannelSession): ChannelDriver {
    return new ChannelDriver(session, {
      send: (m) => {
        const link = this.links.get(live.record.peer.address)
        if (link !== undefined) sendFrame(link, TAG_WIRE, encodeChannelWire(m))
      },
      save: async (snapshot, durable, events) => {
        live.record = { ...live.record, snapshot, updatedAt: this.now() }
        // Paid in the same write as the state that settled it: written apart, a crash between the
        // two would keep the settled state and forget the invoice was paid. Likewise a hub's
        // preimages of the payments it forwarded: written apart (in the payer's session, after),
        // a crash between would keep the next hop paid and lose what collects from the payer.
        this.remember(live, 'paid', this.settledLocks(live, events))
        this.remember(live, 'forwarded', this.forwardedPreimages(events, live))
        // A private message's text in the same write as the session that counts it received:
        // written apart, a crash between the two kept the count (the peer does not send it again)
        // and lost the text. Once each: a failed save hands the same events to the next one.
        for (const e of events)
          if (e.type === 'message' && !live.record.messages.some((m) => m.from === 'peer' && m.seq === e.seq))
            this.addMessage(live, { from: 'peer', seq: e.seq, text: new TextDecoder().decode(e.body), at: this.now() })
        await this.save(live, durable)
      },
      height: () => this.o.chain.height,
      onEvent: (e) => this.onSessionEvent(live, e),
      onRefused: (e) => {
        live.error = `refused a message from the peer: ${e.code} (${e.message})`
        this.changed()
      },
      onSaveFailed: (e) => {
        live.error = `could not save the channel: ${(e as Error).message}`
        this.changed()
      },
      later: (f, ms) => void setTimeout(f, ms),
    })
  }

  private onSessionEvent(live: Live, e: ChannelSessionEvent): void {
    if (e.type === 'confirmed' && e.change.kind === 'add') this.noteOffered(live, e.change.htlc)
    if (e.type === 'confirmed' && e.change.kind === 'settle' && this.o.hub) this.forgetForwarded(live, e.change.preimage)
    // Acknowledged by a resync rather than one by one: our payments in the synced state are offered too.
    if (e.type === 'synced') this.noteAllOffered(live)
    // Settled payments of mine are recorded by the save that covers them (see makeDriver): a
    // settlement is the peer's update, whose events always wait for that save.
    if (e.type === 'received') this.onRouted(live, e.change)
    // (A peer's message is in the record already: see makeDriver's save.)
    if (e.type === 'closeAgreed' && live.record.me === 1) void this.submitFinal(live.record.id, e.signed).catch(() => undefined)
    this.changed()
  }

  /** Hash-locked payments: settle ours, forward as a hub, and pass settlements and refusals back. */
  private onRouted(live: Live, change: ChannelChange): void {
    const d = live.driver
    if (d === undefined) return
    if (change.kind === 'add') {
      const h = change.htlc
      const lock = to0x(h.hashLock)
      const fail = (htlcId: number) => void this.failIfSame(live, d, htlcId, lock)
      const preimage = this.invoices.get(lock) ?? d.session.preimageOf(h.hashLock)
      if (change.next === undefined || change.next === this.o.key.address) {
        // For us: settle with the invoice's secret, once; give back a payment we never asked for
        // and another payment of an invoice already paid (a payer that crashed before saving its
        // first one pays again, not knowing). Marked received, and that on disk (a durable save
        // of the session, which writes the record), before the settlement shows the secret: a
        // proposal leaves before its own save.
        const asked = this.invoiceAmount(lock)
        if (preimage === undefined || this.receivedBefore(lock) || (asked !== undefined && h.amount < asked)) {
          // (Less than the invoice asks: settled, it would show the secret for part of the amount.)
          fail(h.id)
          return
        }
        this.remember(live, 'received', [lock])
        void d
          .rememberPreimage(preimage)
          .then(() => d.settleHtlc(h.id, preimage))
          .catch((err) => this.fault(live, err))
        return
      }
      if (!this.o.hub) {
        fail(h.id)
        return
      }
      const next = change.next
      const channelTo = () => [...this.channels.values()].find((l) => l.record.peer.address === next && l.record.phase !== 'closed')
      // One payment of a hash lock forwarded at a time, taken from when it arrives: a second one is
      // a payer paying again (or two paying one invoice), and would share the first's entry in
      // `forwards`, leaving one of them never passed back.
      if (this.forwards.has(lock) || this.held.has(lock) || channelTo() === undefined) {
        fail(h.id)
        return
      }
      const entry = { channel: live.record.id, htlcId: h.id }
      this.forwards.set(lock, entry)
      const giveBack = () => {
        if (this.forwards.get(lock) === entry) this.forwards.delete(lock)
        fail(h.id)
      }
      // The next hop's channel may have just opened (this node sees it a poll later than its owner)
      // or its link be re-forming: wait a little for both before giving the payment back.
      const ready = () => {
        const out = channelTo()
        return out?.record.phase === 'open' && out.driver !== undefined && this.links.has(next) ? out.driver : undefined
      }
      void this.waitFor(ready, this.o.forwardWaitMs ?? FORWARD_WAIT_MS, 'the next hop').then((out) => {
        const expiry = h.expiry - HOP_DELTA
        const outLive = channelTo()
        if (out.session.balances.mine < h.amount || expiry <= this.o.chain.height || outLive === undefined) {
          giveBack()
          return
        }
        // Which payment this offer forwards, with the channel's record: written by the save that
        // records the offer, so a restarted hub that has the offer reads it back (see open), where
        // it could only guess by lock, amount and expiry, and a guess can take a payment of the
        // same invoice it gave back. (Offers it lost in a crash come back by sync, and are guessed.)
        this.remember(outLive, 'forwardedFrom', [`${lock}=${live.record.id}:${h.id}`])
        void out.addHtlc({ amount: h.amount, hashLock: h.hashLock, expiry }).catch(() => {
          if (this.forwards.get(lock) === entry) this.forwards.delete(lock)
          // Refused, or never signed: give it back. But if the next hop's channel went on chain
          // while our signed offer was out, the next hop may hold it and redeem it there: giving
          // the payment back now could pay the next hop out of our pocket. Held until that
          // channel is closed on chain, then settled (learnFromChain) or given back.
          const offered =
            out.session.inFlight.some((f) => f.change.kind === 'add' && to0x(f.change.htlc.hashLock) === lock) ||
            out.session.latest.state.htlcs.some((x) => x.from === out.session.me && to0x(x.hashLock) === lock)
          // (An offer still in the session, the wallet closing, say, keeps its pairing for a restart.)
          if (!offered) this.forgetForwardedFrom(lock)
          if (offered && out.session.onChain)
            this.held.set(lock, { out: to0x(out.session.channelId), channel: live.record.id, htlcId: h.id })
          else fail(h.id)
        })
      }, giveBack)
      return
    }
    if (change.kind === 'settle' || change.kind === 'fail') {
      // The peer settled or gave back a payment we offered: find which one by the state before.
      const lock = this.lockOf(live, change.id)
      if (lock === undefined) return
      // Given back while another payment of the same invoice is still pending here (one sent
      // before a crash, read back by sync, and then this one again): the wait is that one's.
      const another = change.kind === 'fail' && this.pendingLocks(live).includes(lock)
      const mine = another ? undefined : this.takeWait(live, lock)
      if (mine) {
        if (change.kind === 'settle') mine.resolve()
        else mine.reject(new WalletError('PAYMENT_FAILED', 'a hop gave the payment back'))
      }
      const back = this.forwards.get(lock)
      if (back) {
        this.forwards.delete(lock)
        this.forgetForwardedFrom(lock)
        const from = this.channels.get(back.channel)
        const inbound = from?.driver
        if (from === undefined || inbound === undefined) return
        if (change.kind === 'settle') {
          // Saved in the inbound session first: if the payer never countersigns the settlement,
          // the preimage redeems the payment on chain (see REDEEM_MARGIN), also after a restart.
          const preimage = change.preimage
          void inbound
            .rememberPreimage(preimage)
            .then(() => inbound.settleHtlc(back.htlcId, preimage))
            .catch((err) => this.fault(live, err))
        } else void this.failIfSame(from, inbound, back.htlcId, lock)
      }
    }
  }

  /**
   * Ends the waits of {@link payInvoice} for the payments we offered on `live`, which left the
   * channel's off-chain life: they settle on chain now, or not at all.
   */
  private failRouted(live: Live, why: string): void {
    // Payments still in flight count too: the peer holds my signature on them, and may still
    // complete one and redeem it on chain.
    const locks = [...this.pendingLocks(live), ...(live.offered?.values() ?? [])]
    // Kept with the channel: a reload must not forget them while the channel settles.
    if (this.remember(live, 'settlingOnChain', locks)) void this.save(live)
    for (const [htlcId, lock] of live.offered ?? []) {
      live.offered?.delete(htlcId)
      this.takeWait(live, lock)?.reject(new WalletError('CHANNEL_ON_CHAIN', why))
    }
  }

  /**
   * Takes the wait of my payment locked with `lock` (hex) if it was made on `live`: an earlier
   * payment of the same invoice on another channel (read back after a reload) is not the one
   * waited on.
   */
  private takeWait(live: Live, lock: string): { resolve: () => void; reject: (e: Error) => void } | undefined {
    const mine = this.routed.get(lock)
    if (mine?.channel !== live.record.id) return undefined
    this.routed.delete(lock)
    return mine
  }

  /**
   * Hash locks of my payments pending in `live`'s channel: in its latest co-signed state, or
   * proposed since. With `payable`, only those that can still be paid (not past their expiry at
   * the verified height: nobody can settle or redeem them after it).
   */
  private pendingLocks(live: Live, payable = false): string[] {
    const session = live.driver?.session
    if (session === undefined) return []
    const height = this.o.chain.height
    const out = session.latest.state.htlcs
      .filter((h) => h.from === live.record.me && !(payable && h.expiry < height))
      .map((h) => to0x(h.hashLock))
    for (const f of session.inFlight) if (f.change.kind === 'add') out.push(to0x(f.change.htlc.hashLock))
    return out
  }

  /**
   * Hash locks of my payments that `events` report the peer settled: their invoices are paid. Read
   * from the state they settled in, so also after a reload (when nothing in memory says which
   * payments were mine). A hub pays no invoices.
   */
  private settledLocks(live: Live, events: readonly ChannelSessionEvent[]): string[] {
    if (this.o.hub) return []
    return events.flatMap((e) => (e.type === 'settled' && e.htlc.from === live.record.me ? [to0x(e.htlc.hashLock)] : []))
  }

  /** A hub's: 0x preimages of the payments it offered on `live` that `events` report settled. */
  private forwardedPreimages(events: readonly ChannelSessionEvent[], live: Live): string[] {
    if (!this.o.hub) return []
    return events.flatMap((e) => (e.type === 'settled' && e.htlc.from === live.record.me ? [to0x(e.preimage)] : []))
  }

  /**
   * A hub's: the payer on `live` countersigned my settlement with `preimage`. The payer's session
   * forgets it, and the copy kept with the next hop's channel (`forwarded`) goes: before the
   * settlement, the payer's session saved the preimage (rememberPreimage, durably), and now it holds
   * the settled state. Kept, both grew with every payment passed on and were written whole at every
   * save. Dropped in memory: each channel's next save writes it (a copy left on disk meanwhile
   * finds nothing to settle).
   */
  private forgetForwarded(live: Live, preimage: Uint8Array): void {
    live.driver?.session.forgetPreimage(sha256(preimage))
    const hex = to0x(preimage)
    this.dropEverywhere('forwarded', (p) => p === hex)
  }

  /** A hub's: drops the saved pairing of its offer locked with `lock` (hex) (written with that channel's next save). */
  private forgetForwardedFrom(lock: string): void {
    this.dropEverywhere('forwardedFrom', (e) => e.startsWith(`${lock}=`))
  }

  /** Drops the entries `gone` picks from every channel record's list `field`, in memory (written with each one's next save). */
  private dropEverywhere(field: 'forwarded' | 'forwardedFrom', gone: (entry: string) => boolean): void {
    for (const l of this.channels.values()) {
      const had = l.record[field]
      if (had?.some(gone)) l.record = { ...l.record, [field]: had.filter((e) => !gone(e)) }
    }
  }

  /** The amount my invoice locked with `lock` (hex) asks, if known (not for invoices made before amounts were kept). */
  private invoiceAmount(lock: string): bigint | undefined {
    const known = this.invoiceAmounts.get(lock)
    if (known !== undefined) return known
    for (const l of this.channels.values()) {
      const entry = l.record.invoices?.find((e) => e.startsWith(`${lock}=`))
      if (entry !== undefined) return BigInt(entry.slice(lock.length + 1))
    }
    return undefined
  }

  /** Whether a payment of my invoice locked with `lock` (hex) was settled, or is being settled, in any channel. */
  private receivedBefore(lock: string): boolean {
    for (const l of this.channels.values()) if (l.record.received?.includes(lock)) return true
    return false
  }

  /** Adds `entries` to the record's list `field` (the newest {@link MAX_PAID_LOCKS}); whether it changed. */
  private remember(
    live: Live,
    field: 'paid' | 'settlingOnChain' | 'forwarded' | 'received' | 'invoices' | 'forwardedFrom',
    entries: readonly string[],
  ): boolean {
    const had = live.record[field] ?? []
    const add = [...new Set(entries)].filter((l) => !had.includes(l))
    if (add.length === 0) return false
    live.record = { ...live.record, [field]: [...had, ...add].slice(-MAX_PAID_LOCKS) }
    return true
  }

  /** Hex of the hash lock of our payment `htlcId` on `live`, from the states we offered it in. */
  private lockOf(live: Live, htlcId: number): string | undefined {
    const locks = live.offered ?? new Map<number, string>()
    const lock = locks.get(htlcId)
    locks.delete(htlcId)
    return lock
  }

  private addMessage(live: Live, m: StoredMessage): void {
    const messages = [...live.record.messages, m]
    live.record = { ...live.record, messages: messages.slice(-MAX_STORED_MESSAGES) }
    this.changed()
  }

  private async finish(live: Live, phase: 'closed', outcome: string): Promise<void> {
    live.record = { ...live.record, phase, outcome, updatedAt: this.now() }
    live.driver?.abandon('the channel is closed')
    await this.save(live)
  }

  /** Writes a channel's record; writes of one channel happen in order. */
  private save(live: Live, durable = true): Promise<void> {
    const write = live.saving.then(() => this.o.store.put(live.record, { durable }))
    live.saving = write.catch(() => undefined)
    this.changed()
    return write
  }

  private live(id: string): Live {
    const l = this.channels.get(id)
    if (l === undefined) throw new WalletError('UNKNOWN_CHANNEL', `no channel ${id}`)
    return l
  }

  private openDriver(id: string): ChannelDriver {
    const l = this.live(id)
    if (l.driver === undefined || l.record.phase !== 'open') throw new WalletError('NOT_OPEN', 'the channel is not open')
    if (!this.links.has(l.record.peer.address)) throw new WalletError('PEER_OFFLINE', 'the peer is not connected')
    return l.driver
  }

  private async guard<T>(id: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f()
    } catch (e) {
      const live = this.channels.get(id)
      if (live) live.error = (e as Error).message
      this.changed()
      if (e instanceof ChannelProtocolError) throw new WalletError(e.code, e.message)
      throw e
    }
  }

  private fault(live: Live, e: unknown): void {
    live.error = (e as Error).message
    this.changed()
  }

  private reconnecting = false
  private async reconnect(): Promise<void> {
    if (this.reconnecting || this.closed) return
    this.reconnecting = true
    try {
      await this.reconnectNow()
    } finally {
      this.reconnecting = false
    }
  }

  private async reconnectNow(): Promise<void> {
    // One dial a round to a peer, at every address its channels last reached it at.
    const due = new Map<string, { addrs: Set<string>; lives: Live[] }>()
    const peers = new Set<string>()
    for (const live of this.channels.values()) {
      const r = live.record
      if (r.phase !== 'closed') peers.add(r.peer.address)
      if (r.phase === 'closed' || r.peer.link === undefined || this.links.has(r.peer.address)) continue
      // A proposal this wallet took but nobody has opened on chain costs its proposer nothing: its
      // proposer dials (a hub would otherwise redial every stranger that ever proposed).
      if (r.phase === 'proposed' && r.me === 1) continue
      if ((this.redialAfter.get(r.peer.address) ?? 0) > Date.now()) continue
      const d = due.get(r.peer.address) ?? { addrs: new Set<string>(), lives: [] }
      d.addrs.add(r.peer.link)
      d.lives.push(live)
      due.set(r.peer.address, d)
    }
    // Peers with no channel left are not dialled again: nothing to remember about them.
    for (const m of [this.failedDials, this.redialAfter]) for (const peer of m.keys()) if (!peers.has(peer)) m.delete(peer)
    for (const [peer, { addrs, lives }] of due) {
      if (this.closed) return
      await this.linkTo(peer, [...addrs]).then(
        () => this.failedDials.delete(peer),
        (e) => {
          if (this.closed) return
          if (e instanceof WalletError && e.code === 'INCOMPATIBLE_PEER') {
            // The peer's page, where this wallet last reached it, is of another version: say so,
            // and leave it for a while. It was reached: no failures in a row.
            this.failedDials.delete(peer)
            this.redialAfter.set(peer, Date.now() + INCOMPATIBLE_REDIAL_MS)
            for (const live of lives) live.error = e.message
            this.changed()
            return
          }
          // Not reached: again at once for a while, then less and less often.
          const failed = (this.failedDials.get(peer) ?? 0) + 1
          this.failedDials.set(peer, failed)
          const fast = this.o.redial?.fastDials ?? FAST_REDIALS
          if (failed < fast) return
          const every = this.o.redial?.everyMs ?? RECONNECT_MS
          const wait = Math.min(this.o.redial?.maxWaitMs ?? MAX_REDIAL_WAIT_MS, every * 2 ** (failed - fast + 1))
          this.redialAfter.set(peer, Date.now() + wait)
        },
      )
    }
  }

  private async waitFor<T>(f: () => T | undefined, ms: number, what: string): Promise<T> {
    const until = Date.now() + ms
    for (;;) {
      const v = f()
      if (v !== undefined) return v
      if (Date.now() > until) throw new WalletError('TIMEOUT', `timed out waiting for ${what}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  private changed(): void {
    this.current = this.compute()
    for (const cb of this.subscribers) cb(this.current)
  }

  private compute(): WalletState {
    const channels: WalletChannel[] = []
    for (const live of this.channels.values()) {
      const r = live.record
      const latest = live.driver?.session.latest.state
      const revoked = live.driver?.session.peerRevocation
      const mine = latest ? latest.balances[r.me] : r.deposits[r.me]
      const theirs = latest ? latest.balances[1 - r.me] : r.deposits[1 - r.me]
      const link = this.links.get(r.peer.address)
      channels.push({
        id: r.id,
        phase: r.phase,
        me: r.me,
        peer: { address: r.peer.address, publicKey: r.peer.publicKey, ...(r.peer.label ? { label: r.peer.label } : {}) },
        deposits: r.deposits,
        myBalance: mine as bigint,
        peerBalance: theirs as bigint,
        seq: latest?.seq ?? 0,
        pendingPayments: latest?.htlcs.length ?? 0,
        link: (link?.kind ?? 'none') as LinkKind,
        messages: r.messages,
        ...(live.onChain ? { onChain: live.onChain } : {}),
        ...(live.watchedSeq !== undefined ? { watchedSeq: live.watchedSeq } : {}),
        ...(revoked !== undefined ? { peerRevokedBelow: revoked.below } : {}),
        ...(live.error ? { error: live.error } : {}),
      })
    }
    return {
      address: this.o.key.address,
      publicKey: to0x(this.o.key.publicKey),
      ...(this.balance ? { balance: this.balance.value, balanceAt: this.balance.height } : {}),
      ...(this.invite() ? { invite: this.invite() } : {}),
      signer: this.o.signer.name,
      channels,
    }
  }
}
