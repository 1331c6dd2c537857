/**
 * The off-chain channel protocol: one {@link ChannelSession} per party per channel. Pure and
 * isomorphic — no I/O, clock or randomness: the caller moves the wire messages, persists
 * {@link ChannelSession.snapshot}, and passes the block height and the preimages in.
 *
 * Updates. A party proposes a change (pay, add / settle / fail a hash-locked payment, close) as
 * the next numbered state and signs it; the other party checks that the state is exactly that
 * change applied to the latest state, countersigns and acknowledges — "signed by the payer,
 * countersigned by the payee". The receiver must persist its snapshot before it sends the
 * acknowledgement ({@link ReceiveResult.persist}): whatever it acknowledged survives a crash.
 * A proposer may have up to {@link MAX_IN_FLIGHT} proposals in flight, each built on the one
 * before, so sequential payments do not wait a round trip each.
 *
 * Bursts. Proposals can be made several at once ({@link ChannelSession.proposeMany}), and updates
 * or acknowledgements that arrive back to back are handled as a run of up to {@link MAX_RUN}: the
 * receiver countersigns every update of a run. Each party keeps only the newest co-signed state,
 * so of a run of updates the receiver checks the proposer's signature on the last state, and of a
 * run of acknowledgements the proposer checks the last countersignature: that state covers every
 * change before it, and the earlier signatures are superseded in the same step, never kept or
 * used, so they are not checked. From the first message of a run that does not fit (or when the
 * last signature fails), the rest is handled one at a time, with exactly the outcome and error
 * each would have had alone.
 *
 * Conflicts. When both parties propose the same number at once, party 0's proposal wins: party 1
 * drops its own proposals in flight (reported as `dropped`, to propose again) and accepts party
 * 0's; party 0 refuses party 1's with `CONFLICT`. Deterministic, and no state is ever signed twice
 * by both parties under one number.
 *
 * Revocations. A signed proposal cannot be taken back: the peer may keep it, refused or not, and
 * add its own signature later. So a state is stale only once its own signer says so: when a
 * party's latest co-signed state advances to N and is saved, it sends `revoke` for the states
 * below N (the acknowledger with its acknowledgement, the proposer on the acknowledgement). A
 * unilateral close with a state its closer revoked is penalised on chain with that revocation; a
 * close with an older state its closer never revoked is only replaced by the newer one (see
 * {@link ChannelRevocation}). Each party keeps the peer's highest revocation in its snapshot.
 *
 * Closing. A final state settles at once on chain, whatever followed it, so a party that proposed
 * one signs no other state of the channel afterwards, even when the peer refuses it (`closing`):
 * the channel then ends on chain.
 *
 * Reconnects. Both parties send `hello` with their latest co-signed number; the one that is ahead
 * sends that state (`sync`, both signatures), and proposals still in flight are sent again. A
 * duplicate of an update already countersigned is acknowledged again, not refused.
 *
 * Messages. Private messages travel on the same link, numbered per sender and signed over the
 * channel id, the number and the body, so one cannot be replayed on this channel or into another.
 *
 * Refusals. A message that fails a check throws {@link ChannelProtocolError} and changes nothing.
 */
import {
  bigUint,
  bytes,
  type Codec,
  decode,
  encode,
  fixedBytes,
  option,
  Reader,
  string,
  struct,
  uvarint,
  type Writer,
} from '../codec/codec.js'
import { concatBytes } from '../codec/hex.js'
import { type Address, address } from '../crypto/address.js'
import { sha256 } from '../crypto/hash.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { DecodeError, LoopchainError } from '../errors.js'
import { memoByIdentity } from '../memo.js'
import {
  type ChannelRevocation,
  type ChannelState,
  channelMessageDigest,
  channelRevocationDigest,
  channelStateCodec,
  channelStateDigest,
  checkChannelState,
  type Htlc,
  htlcCodec,
  MAX_HTLCS,
  type Party,
  type SignedChannelState,
  signedChannelStateCodec,
} from './state.js'

/**
 * Proposals one party may have in flight (each built on the one before). A proposal is
 * acknowledged only once the peer has saved it, so the window must cover the payments of one
 * durable write: the payee's IndexedDB commits took 10–150 ms in `npm run bench -- channel`,
 * and a smaller window stalled the payer (64: ~2,300 payments/s, 256: ~3,300, 512: ~4,200, 1024:
 * ~5,000, before runs were checked through their last signature; see docs/channels.md). 2048
 * measured ~10% faster once they were (ratio 0.70–0.74 against 0.61–0.71); 1024 is kept, as it
 * halves what a payer writes on each save and sends again on a reconnect.
 */
export const MAX_IN_FLIGHT = 1024
/**
 * Most proposals made, or updates or acknowledgements received, as one batch: a burst flows on in
 * pieces of a few milliseconds instead of holding the page for one long turn.
 */
export const MAX_RUN = 64
/** A hash-locked payment must leave at least this many blocks before it expires. */
export const MIN_HTLC_MARGIN = 10
/** ... and expire within this many blocks. */
export const MAX_HTLC_WAIT = 10_000
/** Largest private message body, in bytes. */
export const MAX_MESSAGE_BYTES = 4096
/** Longest memo on an update, in UTF-8 bytes. */
export const MAX_MEMO_BYTES = 256

/** Signs and verifies for a session, synchronously (noble, native) or not (WebCrypto). */
export interface ChannelSigner {
  readonly name: string
  /** My signature of `message`. */
  sign(message: Uint8Array): Uint8Array | Promise<Uint8Array>
  /** True when `signature` of `message` is valid under `publicKey` (the core's rule). */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean | Promise<boolean>
}

/** A {@link ChannelSigner} over a synchronous {@link CryptoProvider}. */
export function providerSigner(secretKey: Uint8Array, crypto: CryptoProvider = nobleCrypto): ChannelSigner {
  const sk = secretKey.slice()
  return { name: crypto.name, sign: (m) => crypto.sign(m, sk), verify: (s, m, k) => crypto.verify(s, m, k) }
}

/** What an update claims to change. */
export type ChannelChange =
  | { readonly kind: 'pay'; readonly amount: bigint; readonly memo?: string }
  /** A hash-locked payment from the proposer; `next` asks a hub to forward it to that account. */
  | { readonly kind: 'add'; readonly htlc: Htlc; readonly next?: Address }
  /** The recipient shows the preimage: the amount is theirs. */
  | { readonly kind: 'settle'; readonly id: number; readonly preimage: Uint8Array }
  /** The recipient gives the payment back. */
  | { readonly kind: 'fail'; readonly id: number }
  /** Both agree to settle on chain at once on these balances (a final state). */
  | { readonly kind: 'close' }

/** Messages between the two parties. */
export type ChannelWire =
  | { readonly t: 'hello'; readonly channelId: Uint8Array; readonly seq: number }
  | {
      readonly t: 'update'
      readonly channelId: Uint8Array
      readonly seq: number
      readonly change: ChannelChange
      readonly signature: Uint8Array
    }
  | { readonly t: 'ack'; readonly channelId: Uint8Array; readonly seq: number; readonly signature: Uint8Array }
  /** A refused update, named by its number and the proposer's signature (a later proposal under that number is another one). */
  | {
      readonly t: 'reject'
      readonly channelId: Uint8Array
      readonly seq: number
      readonly signature: Uint8Array
      readonly code: string
      readonly reason: string
    }
  | { readonly t: 'sync'; readonly signed: SignedChannelState }
  | { readonly t: 'msg'; readonly channelId: Uint8Array; readonly seq: number; readonly body: Uint8Array; readonly signature: Uint8Array }
  /** The sender revokes its states below `below` (see {@link ChannelRevocation}); sent once its state `below` is saved. */
  | { readonly t: 'revoke'; readonly channelId: Uint8Array; readonly below: number; readonly signature: Uint8Array }

/**
 * The version of the channel protocol: these messages' encoding and the rules for accepting them.
 * Wallets say theirs when a link opens and speak only to a wallet of the same version; a change to
 * either bumps it. 2: the hello proves the wallet's key, bound to the link (`channelHelloDigest`).
 */
export const CHANNEL_PROTOCOL_VERSION = 2

const CHANGE_TAGS = ['pay', 'add', 'settle', 'fail', 'close'] as const
const WIRE_TAGS = ['hello', 'update', 'ack', 'reject', 'sync', 'msg', 'revoke'] as const
const id32 = fixedBytes(32)
const sig64 = fixedBytes(64)
const amount = bigUint(32)
const memoCodec = option(string(MAX_MEMO_BYTES))
const payCodec = struct('Pay', { amount, memo: memoCodec })
const addCodec = struct('Add', { htlc: htlcCodec, next: option(address) })
const settleCodec = struct('Settle', { id: uvarint, preimage: id32 })
const failCodec = struct('Fail', { id: uvarint })
const helloCodec = struct('Hello', { channelId: id32, seq: uvarint })
const ackCodec = struct('Ack', { channelId: id32, seq: uvarint, signature: sig64 })
const rejectCodec = struct('Reject', { channelId: id32, seq: uvarint, signature: sig64, code: string(64), reason: string(512) })
const msgCodec = struct('Msg', { channelId: id32, seq: uvarint, body: bytes(MAX_MESSAGE_BYTES), signature: sig64 })
const updateHeadCodec = struct('UpdateHead', { channelId: id32, seq: uvarint, signature: sig64 })
const revokeCodec = struct('Revoke', { channelId: id32, below: uvarint, signature: sig64 })

function writeChange(w: Writer, c: ChannelChange): void {
  w.u8(CHANGE_TAGS.indexOf(c.kind))
  switch (c.kind) {
    case 'pay':
      payCodec.write(w, { amount: c.amount, memo: c.memo })
      return
    case 'add':
      addCodec.write(w, { htlc: c.htlc, next: c.next })
      return
    case 'settle':
      settleCodec.write(w, c)
      return
    case 'fail':
      failCodec.write(w, c)
      return
    case 'close':
      return
  }
}

function readChange(r: Reader): ChannelChange {
  const tag = r.u8()
  switch (CHANGE_TAGS[tag]) {
    case 'pay': {
      const p = payCodec.read(r)
      return p.memo === undefined ? { kind: 'pay', amount: p.amount } : { kind: 'pay', amount: p.amount, memo: p.memo }
    }
    case 'add': {
      const a = addCodec.read(r)
      return a.next === undefined ? { kind: 'add', htlc: a.htlc } : { kind: 'add', htlc: a.htlc, next: a.next }
    }
    case 'settle':
      return { kind: 'settle', ...settleCodec.read(r) }
    case 'fail':
      return { kind: 'fail', ...failCodec.read(r) }
    case 'close':
      return { kind: 'close' }
    default:
      throw new DecodeError('INVALID_TAG', `channel change tag ${tag} is not one of 0..${CHANGE_TAGS.length - 1}`)
  }
}

/** Codec of {@link ChannelWire}: a tag byte, then the message. */
export const channelWireCodec: Codec<ChannelWire> = {
  name: 'ChannelWire',
  minSize: 2,
  write(w, m) {
    w.u8(WIRE_TAGS.indexOf(m.t))
    switch (m.t) {
      case 'hello':
        helloCodec.write(w, m)
        return
      case 'update':
        updateHeadCodec.write(w, m)
        return writeChange(w, m.change)
      case 'ack':
        ackCodec.write(w, m)
        return
      case 'reject':
        rejectCodec.write(w, m)
        return
      case 'sync':
        signedChannelStateCodec.write(w, m.signed)
        return
      case 'msg':
        msgCodec.write(w, m)
        return
      case 'revoke':
        revokeCodec.write(w, m)
        return
    }
  },
  read(r) {
    const tag = r.u8()
    switch (WIRE_TAGS[tag]) {
      case 'hello':
        return { t: 'hello', ...helloCodec.read(r) }
      case 'update': {
        const head = updateHeadCodec.read(r)
        return { t: 'update', ...head, change: readChange(r) }
      }
      case 'ack':
        return { t: 'ack', ...ackCodec.read(r) }
      case 'reject':
        return { t: 'reject', ...rejectCodec.read(r) }
      case 'sync':
        return { t: 'sync', signed: signedChannelStateCodec.read(r) }
      case 'msg':
        return { t: 'msg', ...msgCodec.read(r) }
      case 'revoke':
        return { t: 'revoke', ...revokeCodec.read(r) }
      default:
        throw new DecodeError('INVALID_TAG', `channel message tag ${tag} is not one of 0..${WIRE_TAGS.length - 1}`)
    }
  },
}

/** Encodes a wire message. */
export const encodeChannelWire = (m: ChannelWire): Uint8Array => encode(channelWireCodec, m)

/** Decodes a wire message; malformed bytes are a {@link ChannelProtocolError} `MALFORMED`. */
export function decodeChannelWire(b: Uint8Array): ChannelWire {
  try {
    return decode(channelWireCodec, b)
  } catch (e) {
    if (e instanceof DecodeError) throw new ChannelProtocolError('MALFORMED', `not a channel message: ${e.message}`)
    throw e
  }
}

/** Codes of {@link ChannelProtocolError}. */
export type ChannelProtocolErrorCode =
  | 'MALFORMED'
  | 'WRONG_CHANNEL'
  | 'STALE_UPDATE'
  | 'OUT_OF_ORDER'
  | 'CONFLICT'
  | 'BAD_SIGNATURE'
  | 'BAD_TRANSITION'
  | 'BAD_PREIMAGE'
  | 'INSUFFICIENT_BALANCE'
  | 'TOO_MANY_HTLCS'
  | 'TOO_MANY_IN_FLIGHT'
  | 'REPLAYED_MESSAGE'
  | 'UNEXPECTED_ACK'
  | 'CHANNEL_CLOSED'
  | 'DUPLICATE_LOCK'
  | 'NOT_PENDING'

/** A refused message or action: nothing changed. */
export class ChannelProtocolError extends LoopchainError<ChannelProtocolErrorCode> {}

/** Makes a change from the state it is proposed on (see {@link ChannelSession.proposeMany}). */
export type ChangeMaker = (tip: ChannelState) => ChannelChange

/** One outcome of {@link ChannelSession.proposeMany}: the update to send, or why the change was refused (nothing changed for it). */
export type ChannelProposal = { readonly wire: ChannelWire; readonly error?: undefined } | { readonly error: ChannelProtocolError }

/** A message waiting in a run (see `joinRun`), with its caller's promise. */
interface Pending<M extends ChannelWire = Extract<ChannelWire, { t: 'ack' | 'update' }>> {
  readonly m: M
  readonly resolve: (r: ReceiveResult) => void
  readonly reject: (e: Error) => void
}
type PendingAck = Pending<Extract<ChannelWire, { t: 'ack' }>>
type PendingUpdate = Pending<Extract<ChannelWire, { t: 'update' }>>

/** A proposal of mine in flight: the change, the state it leads to, and my signature. */
export interface InFlight {
  readonly change: ChannelChange
  readonly state: ChannelState
  readonly signature: Uint8Array
}

/**
 * Everything a session needs to resume: plain data (structured-clone-able, bigints and bytes),
 * what a wallet persists. Version 2 keeps the proposals in flight as one byte string: a payer with
 * a full window saves it many times a second, and ~1,000 small objects cost milliseconds to copy
 * into IndexedDB on every save, where one buffer costs a memcpy.
 */
export interface ChannelSnapshot {
  readonly version: 2
  readonly me: Party
  readonly channelId: Uint8Array
  readonly keys: readonly [Uint8Array, Uint8Array]
  readonly total: bigint
  /** The latest state both signed (seq 0: the opening state, with empty signatures). */
  readonly latest: SignedChannelState
  /** My proposals not yet countersigned, in seq order: each its change, state and my signature, encoded ({@link inFlightCodec}) one after another. */
  readonly inFlight: Uint8Array
  /** Preimages I know, by hex of the hash lock. */
  readonly preimages: Readonly<Record<string, Uint8Array>>
  /** Number of my last private message, and of the peer's last one I accepted. */
  readonly messagesOut: number
  readonly messagesIn: number
  /** My latest revocation (of the states below my latest co-signed one), sent again on a reconnect. */
  readonly myRevocation?: ChannelRevocation
  /** The peer's highest revocation: with it, a close by the peer with a state it covers is penalised. */
  readonly peerRevocation?: ChannelRevocation
  /** I signed a final state of my own proposing: I sign no other state of this channel. */
  readonly closing?: boolean
  /** The channel is being settled on chain (I closed it alone, or saw it closed): I sign nothing more. */
  readonly onChain?: boolean
}

/** A snapshot as version 1 saved it (proposals in flight as objects); {@link ChannelSession.restore} still reads it. */
export type ChannelSnapshotV1 = Omit<ChannelSnapshot, 'version' | 'inFlight'> & {
  readonly version: 1
  readonly inFlight: readonly InFlight[]
}

/** A session's state in memory: the snapshot with its proposals in flight as objects. Never changed in place. */
type SessionState = Omit<ChannelSnapshot, 'version' | 'inFlight'> & { readonly inFlight: readonly InFlight[] }

/** Codec of one proposal in flight (in a {@link ChannelSnapshot}). */
export const inFlightCodec: Codec<InFlight> = {
  name: 'InFlight',
  minSize: 1,
  write(w, f) {
    writeChange(w, f.change)
    channelStateCodec.write(w, f.state)
    sig64.write(w, f.signature)
  },
  read(r) {
    const change = readChange(r)
    return { change, state: channelStateCodec.read(r), signature: sig64.read(r) }
  },
}

// Each proposal is encoded once, when first saved: a full window is saved many times.
const inFlightBytes = memoByIdentity((f: InFlight) => encode(inFlightCodec, f))

const encodeInFlight = (inFlight: readonly InFlight[]): Uint8Array => concatBytes(...inFlight.map(inFlightBytes))

function decodeInFlight(b: Uint8Array): InFlight[] {
  const r = new Reader(b)
  const out: InFlight[] = []
  while (r.remaining > 0) out.push(inFlightCodec.read(r))
  return out
}

/** Something that happened, for the wallet to show or act on. */
export type ChannelSessionEvent =
  | { readonly type: 'received'; readonly seq: number; readonly change: ChannelChange }
  | { readonly type: 'confirmed'; readonly seq: number; readonly change: ChannelChange }
  | { readonly type: 'forward'; readonly seq: number; readonly htlc: Htlc; readonly next: Address }
  | { readonly type: 'settled'; readonly seq: number; readonly htlc: Htlc; readonly preimage: Uint8Array }
  | {
      readonly type: 'refused'
      readonly seq: number
      readonly code: string
      readonly reason: string
      readonly changes: readonly ChannelChange[]
    }
  | { readonly type: 'dropped'; readonly changes: readonly ChannelChange[] }
  | { readonly type: 'message'; readonly seq: number; readonly body: Uint8Array }
  | { readonly type: 'synced'; readonly seq: number }
  /** The peer revoked its states below `below` (its revocation is kept in the snapshot). */
  | { readonly type: 'revoked'; readonly below: number }
  | { readonly type: 'closeAgreed'; readonly signed: SignedChannelState }

/** What handling one incoming message produced. */
export interface ReceiveResult {
  /** Messages to send back, in order. */
  readonly replies: readonly ChannelWire[]
  /** True when the snapshot must be persisted before the replies are sent. */
  readonly persist: boolean
  readonly events: readonly ChannelSessionEvent[]
}

/** The block height the caller sees: hash-locked payments' expiries are checked against it. */
export interface ChannelContext {
  readonly height: number
}

const NO_SIGNATURE = new Uint8Array(64)
const revokeWire = (r: ChannelRevocation): ChannelWire => ({ t: 'revoke', channelId: r.channelId, below: r.below, signature: r.signature })
const hexOf = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
const other = (p: Party): Party => (p === 0 ? 1 : 0)
/** Both signatures in party order, from mine and the peer's. */
const bothSignatures = (me: Party, mine: Uint8Array, theirs: Uint8Array): [Uint8Array, Uint8Array] =>
  me === 0 ? [mine, theirs] : [theirs, mine]
const fail = (code: ChannelProtocolErrorCode, message: string): never => {
  throw new ChannelProtocolError(code, message)
}

// Digests of states made or checked here, so a proposal's is not computed again when its
// acknowledgement comes (states are never changed once made; a restored session recomputes).
const digestOf = memoByIdentity(channelStateDigest)

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/**
 * The state `change`, proposed by `by`, makes of `prev` (seq + 1), or a refusal. Both parties run
 * this same function: the proposer to build the state it signs, the receiver to check it.
 */
export function applyChange(prev: ChannelState, change: ChannelChange, by: Party, ctx: ChannelContext): ChannelState {
  if (prev.final) fail('CHANNEL_CLOSED', 'the channel has a final state: nothing follows it')
  const balances: [bigint, bigint] = [prev.balances[0], prev.balances[1]]
  let htlcs = prev.htlcs
  let final = false
  switch (change.kind) {
    case 'pay': {
      if (change.amount <= 0n) fail('BAD_TRANSITION', 'a payment must be positive')
      if (change.amount > balances[by]) fail('INSUFFICIENT_BALANCE', `the payer holds ${balances[by]}, not ${change.amount}`)
      balances[by] -= change.amount
      balances[other(by)] += change.amount
      break
    }
    case 'add': {
      const h = change.htlc
      if (h.from !== by) fail('BAD_TRANSITION', 'a hash-locked payment is added by its payer')
      const nextId = nextHtlcId(prev)
      if (h.id !== nextId) fail('BAD_TRANSITION', `the next hash-locked payment id is ${nextId}, not ${h.id}`)
      if (h.amount <= 0n) fail('BAD_TRANSITION', 'a hash-locked payment must be positive')
      if (h.amount > balances[by]) fail('INSUFFICIENT_BALANCE', `the payer holds ${balances[by]}, not ${h.amount}`)
      if (h.expiry < ctx.height + MIN_HTLC_MARGIN / 2 || h.expiry > ctx.height + MAX_HTLC_WAIT)
        fail('BAD_TRANSITION', `expiry ${h.expiry} is not within ${MIN_HTLC_MARGIN / 2}..${MAX_HTLC_WAIT} blocks of height ${ctx.height}`)
      if (htlcs.length >= MAX_HTLCS) fail('TOO_MANY_HTLCS', `at most ${MAX_HTLCS} hash-locked payments may be pending`)
      balances[by] -= h.amount
      htlcs = [...htlcs, h]
      break
    }
    case 'settle':
    case 'fail': {
      const h = htlcs.find((x) => x.id === change.id)
      if (h === undefined) fail('BAD_TRANSITION', `no pending hash-locked payment ${change.id}`)
      const htlc = h as Htlc
      if (htlc.from === by) fail('BAD_TRANSITION', `only the recipient of payment ${change.id} may ${change.kind} it`)
      if (change.kind === 'settle') {
        if (!sameBytes(sha256(change.preimage), htlc.hashLock)) fail('BAD_PREIMAGE', `the preimage does not open payment ${change.id}`)
        if (ctx.height >= htlc.expiry) fail('BAD_TRANSITION', `payment ${change.id} expired at height ${htlc.expiry}`)
        balances[other(htlc.from)] += htlc.amount
      } else balances[htlc.from] += htlc.amount
      htlcs = htlcs.filter((x) => x.id !== change.id)
      break
    }
    case 'close':
      if (htlcs.length > 0) fail('BAD_TRANSITION', 'settle or fail the pending hash-locked payments before closing')
      final = true
      break
  }
  return { channelId: prev.channelId, seq: prev.seq + 1, balances, htlcs, final }
}

/** The id a hash-locked payment added to `s` gets: one above every pending one (ids are unique within a state). */
export function nextHtlcId(s: ChannelState): number {
  let id = 0
  for (const h of s.htlcs) id = Math.max(id, h.id)
  return id + 1
}

/** One party's side of one channel. Public methods run one at a time, in call order. */
export class ChannelSession {
  private s: SessionState
  private queue: Promise<unknown> = Promise.resolve()

  private constructor(
    state: SessionState,
    private readonly signer: ChannelSigner,
    /** True when resumed from a snapshot: proposals sent after the last save may be missing from it. */
    readonly restored = false,
  ) {
    this.s = state
  }

  /** A new session on the opening state (the deposits). */
  static create(opts: {
    me: Party
    channelId: Uint8Array
    keys: readonly [Uint8Array, Uint8Array]
    deposits: readonly [bigint, bigint]
    signer: ChannelSigner
  }): ChannelSession {
    const opening: ChannelState = {
      channelId: opts.channelId,
      seq: 0,
      balances: [opts.deposits[0], opts.deposits[1]],
      htlcs: [],
      final: false,
    }
    return new ChannelSession(
      {
        me: opts.me,
        channelId: opts.channelId.slice(),
        keys: [opts.keys[0].slice(), opts.keys[1].slice()],
        total: opts.deposits[0] + opts.deposits[1],
        latest: { state: opening, signatures: [NO_SIGNATURE, NO_SIGNATURE] },
        inFlight: [],
        preimages: {},
        messagesOut: 0,
        messagesIn: 0,
      },
      opts.signer,
    )
  }

  /** A session resumed from a persisted snapshot (version 2, or 1 as older wallets saved it); a damaged one is `MALFORMED`. */
  static restore(snapshot: ChannelSnapshot | ChannelSnapshotV1, signer: ChannelSigner): ChannelSession {
    const version = (snapshot as { version: unknown }).version
    if (version !== 1 && version !== 2) throw new ChannelProtocolError('MALFORMED', `unknown channel snapshot version ${version}`)
    const { version: _, inFlight, ...rest } = structuredClone(snapshot)
    let proposals: readonly InFlight[]
    if (inFlight instanceof Uint8Array) {
      try {
        proposals = decodeInFlight(inFlight)
      } catch (e) {
        if (e instanceof DecodeError)
          throw new ChannelProtocolError('MALFORMED', `the snapshot's proposals in flight are damaged: ${e.message}`)
        throw e
      }
    } else proposals = inFlight
    return new ChannelSession({ ...rest, inFlight: proposals }, signer, true)
  }

  /**
   * The session's state to persist. Not a deep copy: it shares bytes and objects with the session,
   * which never changes them in place (every change makes new ones), so it stays as it was taken;
   * do not change it. Stores copy it anyway (IndexedDB and structured serialisation do).
   */
  snapshot(): ChannelSnapshot {
    const { inFlight, ...rest } = this.s
    return { version: 2, ...rest, inFlight: encodeInFlight(inFlight) }
  }

  get me(): Party {
    return this.s.me
  }
  get channelId(): Uint8Array {
    return this.s.channelId
  }
  /** The latest state both signed. */
  get latest(): SignedChannelState {
    return this.s.latest
  }
  /** The state I proposed last (or the latest co-signed one): what my next proposal builds on. */
  get tip(): ChannelState {
    return this.s.inFlight.at(-1)?.state ?? this.s.latest.state
  }
  get inFlight(): readonly InFlight[] {
    return this.s.inFlight
  }
  /** The peer's highest revocation: a close by the peer with a state below its number is stale (see {@link ChannelRevocation}). */
  get peerRevocation(): ChannelRevocation | undefined {
    return this.s.peerRevocation
  }
  /** True once I proposed a final state: I sign no other state of this channel. */
  get closing(): boolean {
    return this.s.closing === true
  }
  /** My balance and the peer's in the latest co-signed state. */
  get balances(): { mine: bigint; theirs: bigint } {
    const b = this.s.latest.state.balances
    return { mine: b[this.s.me], theirs: b[other(this.s.me)] }
  }

  /** Proposes paying `amount` to the peer; returns the update to send. */
  pay(amount: bigint, ctx: ChannelContext, memo?: string): Promise<ChannelWire> {
    return this.propose(memo === undefined ? { kind: 'pay', amount } : { kind: 'pay', amount, memo }, ctx)
  }

  /** Proposes a hash-locked payment to the peer (`next`: forward it to that account, for a hub). */
  addHtlc(p: { amount: bigint; hashLock: Uint8Array; expiry: number; next?: Address }, ctx: ChannelContext): Promise<ChannelWire> {
    return this.proposeOne(this.htlcMaker(p), ctx)
  }

  /** The change that adds a hash-locked payment on top of whatever state it is proposed on (its id depends on it). */
  htlcMaker(p: { amount: bigint; hashLock: Uint8Array; expiry: number; next?: Address }): ChangeMaker {
    const me = this.s.me
    return (tip) => {
      // One pending payment of mine per lock: a second would pay the same invoice twice (a page that
      // reloaded before its first came back from the peer asks again). Made on the state it goes on.
      if (tip.htlcs.some((h) => h.from === me && sameBytes(h.hashLock, p.hashLock)))
        fail('DUPLICATE_LOCK', 'a payment of mine locked with this hash is already pending in this channel')
      const htlc: Htlc = { id: nextHtlcId(tip), from: me, amount: p.amount, hashLock: p.hashLock.slice(), expiry: p.expiry }
      return p.next === undefined ? { kind: 'add', htlc } : { kind: 'add', htlc, next: p.next }
    }
  }

  /**
   * The change that gives the peer's hash-locked payment `id` back, made only while `id` still
   * holds the payment locked with `hashLock` in the state it is proposed on (`NOT_PENDING` if not):
   * ids are reused once a payment is gone, and an answer that comes late must not give back
   * another payment that took the id between the call and the proposal.
   */
  failMaker(id: number, hashLock: Uint8Array): ChangeMaker {
    const lock = hashLock.slice()
    return (tip) => {
      if (!tip.htlcs.some((h) => h.id === id && sameBytes(h.hashLock, lock)))
        fail('NOT_PENDING', `payment ${id} is no longer the one locked with this hash`)
      return { kind: 'fail', id }
    }
  }

  /** Proposes settling the peer's hash-locked payment `id` with its preimage. */
  settleHtlc(id: number, preimage: Uint8Array, ctx: ChannelContext): Promise<ChannelWire> {
    return this.propose({ kind: 'settle', id, preimage: preimage.slice() }, ctx)
  }

  /** Proposes giving the peer's hash-locked payment `id` back. */
  failHtlc(id: number, ctx: ChannelContext): Promise<ChannelWire> {
    return this.propose({ kind: 'fail', id }, ctx)
  }

  /** Proposes the final state for a cooperative close (no payments may be pending). */
  proposeClose(ctx: ChannelContext): Promise<ChannelWire> {
    return this.propose({ kind: 'close' }, ctx)
  }

  /**
   * Stops the off-chain protocol because the channel is being settled on chain (I am about to close
   * it alone, or it was closed): from now on nothing is signed — no proposal, acknowledgement or
   * revocation — and nothing is sent again on hello. Persist the snapshot before sending the close.
   */
  endOffChain(): Promise<void> {
    return this.serial(async () => {
      this.s = { ...this.s, onChain: true }
    })
  }

  /** True once {@link endOffChain} was called (the channel is being settled on chain). */
  get onChain(): boolean {
    return this.s.onChain === true
  }

  /** Remembers a preimage (e.g. one I made for an invoice), so a payment locked with it can be settled. */
  rememberPreimage(preimage: Uint8Array): Uint8Array {
    const lock = sha256(preimage)
    this.s = { ...this.s, preimages: { ...this.s.preimages, [hexOf(lock)]: preimage.slice() } }
    return lock
  }

  /**
   * Forgets the preimage of `hashLock` unless a payment locked with it is in the latest state both
   * signed or in my proposals; whether it did. For a hub, once its settlement with the payer is
   * countersigned: kept, its sessions gathered one for every payment it passed on, each copied at
   * every remember and written at every save. (A payee keeps its invoices' preimages: a peer may
   * still close on chain with a state that holds the payment, and it redeems there with one.)
   * Saved with the next save.
   */
  forgetPreimage(hashLock: Uint8Array): boolean {
    const key = hexOf(hashLock)
    if (this.s.preimages[key] === undefined) return false
    const locked = (st: ChannelState) => st.htlcs.some((h) => sameBytes(h.hashLock, hashLock))
    if (locked(this.s.latest.state) || this.s.inFlight.some((f) => locked(f.state))) return false
    const { [key]: _gone, ...rest } = this.s.preimages
    this.s = { ...this.s, preimages: rest }
    return true
  }

  /** The preimage of `hashLock`, if known. */
  preimageOf(hashLock: Uint8Array): Uint8Array | undefined {
    return this.s.preimages[hexOf(hashLock)]
  }

  /**
   * Proposes several changes at once, each built on the one before (a refused one is skipped and
   * the next builds on the last accepted): one outcome per maker, in order — the update to send,
   * or why it was refused. The updates are signed together and must be sent in this order.
   */
  proposeMany(makers: readonly ChangeMaker[], ctx: ChannelContext): Promise<ChannelProposal[]> {
    return this.serial(() => this.proposeNow(makers, ctx))
  }

  /** A signed private message to the peer. */
  message(body: Uint8Array): Promise<Extract<ChannelWire, { t: 'msg' }>> {
    return this.serial(async () => {
      if (body.length > MAX_MESSAGE_BYTES) fail('MALFORMED', `a message holds at most ${MAX_MESSAGE_BYTES} bytes`)
      const seq = this.s.messagesOut + 1
      const signature = await this.signer.sign(channelMessageDigest(this.s.channelId, seq, this.s.me, body))
      this.s = { ...this.s, messagesOut: seq }
      return { t: 'msg', channelId: this.s.channelId, seq, body: body.slice(), signature }
    })
  }

  /** The hello to send when a link (re)opens. */
  hello(): ChannelWire {
    return { t: 'hello', channelId: this.s.channelId, seq: this.s.latest.state.seq }
  }

  /** Handles one message from the peer. Throws {@link ChannelProtocolError} (nothing changed) when it is refused. */
  receive(m: ChannelWire, ctx: ChannelContext): Promise<ReceiveResult> {
    if (m.t === 'ack' || m.t === 'update') return this.joinRun(m, ctx)
    return this.serial(() => this.receiveOne(m, ctx))
  }

  // -------------------------------------------------------------------------------------------

  private serial<T>(f: () => Promise<T>): Promise<T> {
    // Whatever is queued after a run keeps its place: later messages start a new run.
    this.pending = undefined
    const run = this.queue.then(f, f)
    this.queue = run.catch(() => undefined)
    return run
  }

  private async receiveOne(m: ChannelWire, ctx: ChannelContext): Promise<ReceiveResult> {
    const before = this.s
    try {
      return await this.receiveNow(m, ctx)
    } catch (e) {
      // Undone — but a preimage remembered meanwhile (outside the queue) stays.
      this.s = { ...before, preimages: this.s.preimages }
      throw e
    }
  }

  /** A run of updates or of acknowledgements queued back to back and not started yet: the next one of its kind joins it. */
  private pending: { readonly t: 'ack' | 'update'; readonly run: Pending[] } | undefined

  /**
   * Queues an update or an acknowledgement. Those that arrive back to back (pipelined payments)
   * are handled as one run — their signatures checked together, one state change for all — with
   * the outcome each would have had alone.
   */
  private joinRun(m: Extract<ChannelWire, { t: 'ack' | 'update' }>, ctx: ChannelContext): Promise<ReceiveResult> {
    return new Promise<ReceiveResult>((resolve, reject) => {
      const entry = { m, resolve, reject }
      if (this.pending?.t === m.t && this.pending.run.length < MAX_RUN) {
        this.pending.run.push(entry)
        return
      }
      const pending = { t: m.t, run: [entry] }
      void this.serial(async () => {
        if (this.pending === pending) this.pending = undefined
        await (pending.t === 'ack' ? this.onAcks(pending.run as PendingAck[], ctx) : this.onUpdates(pending.run as PendingUpdate[], ctx))
      })
      this.pending = pending
    })
  }

  /**
   * A run of updates: while they follow each other on the latest state (and none of mine is in
   * flight), each is countersigned, all at once. Only the newest co-signed state is kept, so the
   * proposer's signatures are checked through the last one (see {@link takeRun}).
   */
  private async onUpdates(run: readonly PendingUpdate[], ctx: ChannelContext): Promise<void> {
    const s = this.s
    const peer = other(s.me)
    const states: ChannelState[] = []
    if (s.inFlight.length === 0 && s.closing !== true && s.onChain !== true) {
      let prev = s.latest.state
      for (const { m } of run) {
        if (m.seq !== prev.seq + 1 || !sameBytes(m.channelId, s.channelId)) break
        try {
          prev = applyChange(prev, m.change, peer, ctx)
        } catch {
          break
        }
        states.push(prev)
      }
    }
    const n = states.length
    await this.takeRun(run, n, ctx, async () => {
      // Check theirs and make mine at once; mine leave only if theirs holds.
      const theirs = (run[n - 1] as PendingUpdate).m.signature
      const last = states[n - 1] as ChannelState
      const [ok, mine, revocation] = await Promise.all([
        this.signer.verify(theirs, digestOf(last), s.keys[peer]),
        Promise.all(states.map((st) => this.signer.sign(digestOf(st)))),
        this.revocation(last.seq),
      ])
      if (!ok) return undefined
      const signatures = bothSignatures(s.me, mine[n - 1] as Uint8Array, theirs)
      this.s = { ...this.s, latest: { state: last, signatures }, myRevocation: revocation }
      return states.map((state, i) => {
        const { m } = run[i] as PendingUpdate
        const ack: ChannelWire = { t: 'ack', channelId: s.channelId, seq: m.seq, signature: mine[i] as Uint8Array }
        return {
          replies: i === n - 1 ? [ack, revokeWire(revocation)] : [ack],
          persist: true,
          events: this.changeEvents('received', m.seq, m.change, i === 0 ? s.latest.state : (states[i - 1] as ChannelState), state),
        }
      })
    })
  }

  /** A run of acknowledgements: the i-th countersigns my i-th proposal in flight; checked through the last one (see {@link takeRun}). */
  private async onAcks(run: readonly PendingAck[], ctx: ChannelContext): Promise<void> {
    const s = this.s
    const fits: InFlight[] = []
    for (const [i, { m }] of s.onChain === true ? [] : run.entries()) {
      const f = s.inFlight[i]
      if (f === undefined || f.state.seq !== m.seq || !sameBytes(m.channelId, s.channelId)) break
      fits.push(f)
    }
    const n = fits.length
    await this.takeRun(run, n, ctx, async () => {
      const last = fits[n - 1] as InFlight
      const theirs = (run[n - 1] as PendingAck).m.signature
      const [ok, revocation] = await Promise.all([
        this.signer.verify(theirs, digestOf(last.state), s.keys[other(s.me)]),
        this.revocation(last.state.seq),
      ])
      if (!ok) return undefined
      this.s = {
        ...this.s,
        latest: { state: last.state, signatures: bothSignatures(s.me, last.signature, theirs) },
        inFlight: s.inFlight.slice(n),
        myRevocation: revocation,
      }
      return fits.map((f, i) => ({
        replies: i === n - 1 ? [revokeWire(revocation)] : [],
        persist: true,
        events: this.changeEvents('confirmed', f.state.seq, f.change, i === 0 ? s.latest.state : (fits[i - 1] as InFlight).state, f.state),
      }))
    })
  }

  /**
   * Finishes a run whose first `n` messages fit one on the other. Only the newest co-signed state
   * is kept, so `step` checks their signatures through the last one, on the state that covers
   * every change before it — the earlier ones are superseded in the same step, never kept or used,
   * so they are not checked — and commits, giving each its result; or gives undefined, changing
   * nothing, when that signature fails. The rest, and the whole run when it failed, is taken one
   * message at a time: exactly the single-message rules and errors, which find the first bad one.
   */
  private async takeRun(
    run: readonly Pending[],
    n: number,
    ctx: ChannelContext,
    step: () => Promise<ReceiveResult[] | undefined>,
  ): Promise<void> {
    let done = 0
    if (n > 0) {
      let results: ReceiveResult[] | undefined
      try {
        results = await step()
      } catch (e) {
        for (const x of run) x.reject(e instanceof Error ? e : new Error(String(e)))
        return
      }
      if (results !== undefined) {
        for (const [i, r] of results.entries()) (run[i] as Pending).resolve(r)
        done = n
      }
    }
    for (const e of run.slice(done)) await this.receiveOne(e.m, ctx).then(e.resolve, e.reject)
  }

  private propose(change: ChannelChange, ctx: ChannelContext): Promise<ChannelWire> {
    return this.proposeOne(() => change, ctx)
  }

  private async proposeOne(make: ChangeMaker, ctx: ChannelContext): Promise<ChannelWire> {
    const [r] = (await this.proposeMany([make], ctx)) as [ChannelProposal]
    if (r.error !== undefined) throw r.error
    return r.wire
  }

  private async proposeNow(makers: readonly ChangeMaker[], ctx: ChannelContext): Promise<ChannelProposal[]> {
    let tip = this.tip
    let room = MAX_IN_FLIGHT - this.s.inFlight.length
    const staged: { change: ChannelChange; state: ChannelState }[] = []
    // Per maker: the index of its staged proposal, or its refusal.
    const outcome: (number | ChannelProtocolError)[] = []
    for (const make of makers) {
      try {
        if (this.s.onChain === true) fail('CHANNEL_CLOSED', 'the channel is being settled on chain: nothing more is signed')
        if (this.s.closing === true) fail('CHANNEL_CLOSED', 'I proposed the final state: I sign nothing else; the channel closes on chain')
        if (room <= 0) fail('TOO_MANY_IN_FLIGHT', `at most ${MAX_IN_FLIGHT} proposals wait for the peer`)
        const change = make(tip)
        const state = applyChange(tip, change, this.s.me, ctx)
        outcome.push(staged.length)
        staged.push({ change, state })
        tip = state
        room--
      } catch (e) {
        if (!(e instanceof ChannelProtocolError)) throw e
        outcome.push(e)
      }
    }
    // Signed all at once: the signer may overlap them, and the updates leave together.
    const signatures = await Promise.all(staged.map((p) => this.signer.sign(digestOf(p.state))))
    const added: InFlight[] = staged.map((p, i) => ({ change: p.change, state: p.state, signature: signatures[i] as Uint8Array }))
    // Once I sign a final state, I sign no other: the peer may complete it and close with it at
    // any time, so a later state of mine would be overruled by it.
    const closing = this.s.closing === true || added.some((f) => f.state.final)
    if (added.length > 0) this.s = { ...this.s, inFlight: [...this.s.inFlight, ...added], ...(closing ? { closing } : {}) }
    const channelId = this.s.channelId
    return outcome.map((o) => {
      if (typeof o !== 'number') return { error: o }
      const f = added[o] as InFlight
      return { wire: { t: 'update', channelId, seq: f.state.seq, change: f.change, signature: f.signature } }
    })
  }

  private checkChannel(id: Uint8Array): void {
    if (!sameBytes(id, this.s.channelId)) fail('WRONG_CHANNEL', 'the message belongs to another channel')
  }

  private async receiveNow(m: ChannelWire, ctx: ChannelContext): Promise<ReceiveResult> {
    if (this.s.onChain === true && (m.t === 'update' || m.t === 'ack' || m.t === 'sync')) {
      this.checkChannel(m.t === 'sync' ? m.signed.state.channelId : m.channelId)
      // A closer that went on signing (an ack brings a revocation of the state it closed with)
      // would hand the peer a penalty.
      fail('CHANNEL_CLOSED', 'the channel is being settled on chain: nothing more is signed')
    }
    switch (m.t) {
      case 'update':
        this.checkChannel(m.channelId)
        return this.onUpdate(m, ctx)
      case 'ack':
        this.checkChannel(m.channelId)
        return this.onAck(m)
      case 'reject':
        this.checkChannel(m.channelId)
        return this.onReject(m)
      case 'hello':
        this.checkChannel(m.channelId)
        return this.onHello(m)
      case 'sync':
        this.checkChannel(m.signed.state.channelId)
        return this.onSync(m.signed)
      case 'msg':
        this.checkChannel(m.channelId)
        return this.onMessage(m)
      case 'revoke':
        this.checkChannel(m.channelId)
        return this.onRevoke(m)
      default:
        return fail('MALFORMED', `unknown channel message ${JSON.stringify((m as { t?: unknown }).t)}`)
    }
  }

  private async onUpdate(m: Extract<ChannelWire, { t: 'update' }>, ctx: ChannelContext): Promise<ReceiveResult> {
    const s = this.s
    const peer = other(s.me)
    const latest = s.latest
    // A duplicate of the update I countersigned last (re-sent after a reconnect): acknowledge it again.
    if (m.seq === latest.state.seq && m.seq > 0 && sameBytes(m.signature, latest.signatures[peer])) {
      return { replies: [{ t: 'ack', channelId: s.channelId, seq: m.seq, signature: latest.signatures[s.me] }], persist: false, events: [] }
    }
    if (m.seq <= latest.state.seq) fail('STALE_UPDATE', `state ${m.seq} is not newer than the latest, ${latest.state.seq}`)
    if (m.seq > latest.state.seq + 1) fail('OUT_OF_ORDER', `state ${m.seq} skips ahead of ${latest.state.seq + 1}`)
    if (s.closing === true) fail('CHANNEL_CLOSED', 'I proposed the final state: I sign nothing else')
    const events: ChannelSessionEvent[] = []
    if (s.inFlight.length > 0) {
      // Both proposed this number: party 0's proposal wins.
      if (s.me === 0) fail('CONFLICT', `both proposed state ${m.seq}; party 0's proposal stands`)
      events.push({ type: 'dropped', changes: s.inFlight.map((f) => f.change) })
    }
    const state = applyChange(latest.state, m.change, peer, ctx)
    const digest = channelStateDigest(state)
    // Verify the proposer's signature and make mine at once (WebCrypto runs them in parallel); mine leaves only if theirs holds.
    const [ok, mine, revocation] = await Promise.all([
      this.signer.verify(m.signature, digest, s.keys[peer]),
      this.signer.sign(digest),
      this.revocation(state.seq),
    ])
    if (!ok) fail('BAD_SIGNATURE', `the signature does not sign state ${m.seq} as this change makes it`)
    const signatures = bothSignatures(s.me, mine, m.signature)
    this.s = { ...this.s, latest: { state, signatures }, inFlight: [], myRevocation: revocation }
    events.push(...this.changeEvents('received', m.seq, m.change, latest.state, state))
    return { replies: [{ t: 'ack', channelId: s.channelId, seq: m.seq, signature: mine }, revokeWire(revocation)], persist: true, events }
  }

  private async onAck(m: Extract<ChannelWire, { t: 'ack' }>): Promise<ReceiveResult> {
    const s = this.s
    const first = s.inFlight[0]
    if (first === undefined || first.state.seq !== m.seq) fail('UNEXPECTED_ACK', `no proposal ${m.seq} waits for an acknowledgement`)
    const f = first as InFlight
    const peer = other(s.me)
    const [ok, revocation] = await Promise.all([this.signer.verify(m.signature, digestOf(f.state), s.keys[peer]), this.revocation(m.seq)])
    if (!ok) fail('BAD_SIGNATURE', `the countersignature does not sign state ${m.seq}`)
    const signatures = bothSignatures(s.me, f.signature, m.signature)
    this.s = { ...this.s, latest: { state: f.state, signatures }, inFlight: s.inFlight.slice(1), myRevocation: revocation }
    return {
      replies: [revokeWire(revocation)],
      persist: true,
      events: this.changeEvents('confirmed', m.seq, f.change, s.latest.state, f.state),
    }
  }

  private async onReject(m: Extract<ChannelWire, { t: 'reject' }>): Promise<ReceiveResult> {
    const s = this.s
    const at = s.inFlight.findIndex((f) => f.state.seq === m.seq && sameBytes(f.signature, m.signature))
    // A refusal of something no longer in flight (e.g. a conflict already resolved, and a new
    // proposal under that number since) changes nothing.
    if (at < 0) return { replies: [], persist: false, events: [] }
    const dropped = s.inFlight.slice(at).map((f) => f.change)
    this.s = { ...this.s, inFlight: s.inFlight.slice(0, at) }
    return { replies: [], persist: true, events: [{ type: 'refused', seq: m.seq, code: m.code, reason: m.reason, changes: dropped }] }
  }

  private async onHello(m: Extract<ChannelWire, { t: 'hello' }>): Promise<ReceiveResult> {
    const s = this.s
    const replies: ChannelWire[] = []
    // Settling on chain: nothing is sent again (a proposal acknowledged now would be revoked into a penalty).
    if (s.onChain === true) return { replies, persist: false, events: [] }
    if (m.seq < s.latest.state.seq) replies.push({ t: 'sync', signed: s.latest })
    // The peer may have missed my latest revocation (the link fell right after the save).
    if (s.myRevocation !== undefined) replies.push(revokeWire(s.myRevocation))
    // Proposals in flight go again (the peer acknowledges a duplicate again, or takes it as new).
    if (m.seq <= s.latest.state.seq)
      for (const f of s.inFlight)
        replies.push({ t: 'update', channelId: s.channelId, seq: f.state.seq, change: f.change, signature: f.signature })
    return { replies, persist: false, events: [] }
  }

  private async onSync(signed: SignedChannelState): Promise<ReceiveResult> {
    const s = this.s
    const st = signed.state
    if (st.seq <= s.latest.state.seq) return { replies: [], persist: false, events: [] }
    const bad = checkChannelState(st, s.channelId, s.total)
    if (bad !== undefined) fail('BAD_TRANSITION', bad)
    const digest = channelStateDigest(st)
    const [ok0, ok1] = await Promise.all([
      this.signer.verify(signed.signatures[0], digest, s.keys[0]),
      this.signer.verify(signed.signatures[1], digest, s.keys[1]),
    ])
    if (!ok0 || !ok1) fail('BAD_SIGNATURE', `state ${st.seq} is not signed by both parties`)
    const revocation = await this.revocation(st.seq)
    // If it is one of my proposals, those up to it were countersigned and the later ones still build on it;
    // otherwise my proposals in flight build on an older state and are dropped.
    const mineAt = s.inFlight.findIndex((f) => f.state.seq === st.seq && sameBytes(channelStateDigest(f.state), digest))
    const keep = mineAt >= 0 ? s.inFlight.slice(mineAt + 1) : []
    const dropped = mineAt >= 0 ? [] : s.inFlight
    this.s = {
      ...this.s,
      latest: { state: st, signatures: [signed.signatures[0], signed.signatures[1]] },
      inFlight: keep,
      myRevocation: revocation,
    }
    const events: ChannelSessionEvent[] = [{ type: 'synced', seq: st.seq }]
    if (dropped.length > 0) events.push({ type: 'dropped', changes: dropped.map((f) => f.change) })
    if (st.final) events.push({ type: 'closeAgreed', signed })
    const replies: ChannelWire[] = [
      revokeWire(revocation),
      ...keep.map(
        (f): ChannelWire => ({ t: 'update', channelId: s.channelId, seq: f.state.seq, change: f.change, signature: f.signature }),
      ),
    ]
    return { replies, persist: true, events }
  }

  private async onMessage(m: Extract<ChannelWire, { t: 'msg' }>): Promise<ReceiveResult> {
    const s = this.s
    if (m.seq <= s.messagesIn) fail('REPLAYED_MESSAGE', `message ${m.seq} was already received (last ${s.messagesIn})`)
    const peer = other(s.me)
    if (!(await this.signer.verify(m.signature, channelMessageDigest(s.channelId, m.seq, peer, m.body), s.keys[peer])))
      fail('BAD_SIGNATURE', `message ${m.seq} is not signed by the peer for this channel`)
    this.s = { ...this.s, messagesIn: m.seq }
    return { replies: [], persist: true, events: [{ type: 'message', seq: m.seq, body: m.body }] }
  }

  private async onRevoke(m: Extract<ChannelWire, { t: 'revoke' }>): Promise<ReceiveResult> {
    const s = this.s
    const peer = other(s.me)
    // An older one than held (re-sent on a reconnect) adds nothing.
    if (m.below <= (s.peerRevocation?.below ?? 0)) return { replies: [], persist: false, events: [] }
    if (!(await this.signer.verify(m.signature, channelRevocationDigest(s.channelId, peer, m.below), s.keys[peer])))
      fail('BAD_SIGNATURE', `the revocation of the states below ${m.below} is not signed by the peer for this channel`)
    const peerRevocation: ChannelRevocation = { channelId: s.channelId, party: peer, below: m.below, signature: m.signature }
    this.s = { ...this.s, peerRevocation }
    return { replies: [], persist: true, events: [{ type: 'revoked', below: m.below }] }
  }

  /** My revocation of the states below `below` (signed now; kept once the state it follows is). */
  private async revocation(below: number): Promise<ChannelRevocation> {
    const { channelId, me } = this.s
    return { channelId, party: me, below, signature: await this.signer.sign(channelRevocationDigest(channelId, me, below)) }
  }

  private changeEvents(
    type: 'received' | 'confirmed',
    seq: number,
    change: ChannelChange,
    prev: ChannelState,
    state: ChannelState,
  ): ChannelSessionEvent[] {
    const events: ChannelSessionEvent[] = [{ type, seq, change }]
    if (type === 'received' && change.kind === 'add' && change.next !== undefined)
      events.push({ type: 'forward', seq, htlc: change.htlc, next: change.next })
    if (change.kind === 'settle') {
      const htlc = prev.htlcs.find((h) => h.id === change.id)
      if (htlc !== undefined) events.push({ type: 'settled', seq, htlc, preimage: change.preimage })
    }
    if (state.final) events.push({ type: 'closeAgreed', signed: this.s.latest })
    return events
  }
}
