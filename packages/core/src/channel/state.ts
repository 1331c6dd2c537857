/**
 * The payment channel's shared vocabulary: the numbered state both parties sign, its conditional
 * (hash-locked, expiring) payments, the digest they sign, and the channel SCORE's ABI. The channel
 * SCORE (exec/channels.ts), the off-chain protocol (protocol.ts), the light client's wallet and the
 * full node's watchtower all read and check states through this one module, so they cannot disagree
 * about what a party signed. See docs/channels.md.
 *
 * Party 0 ("A") opened the channel; party 1 ("B") joined it. Every state of a channel keeps the
 * channel's total: `balances[0] + balances[1] + Σ htlc.amount == depositA + depositB`.
 */
import {
  bigUint,
  bool,
  type Codec,
  decode,
  encode,
  enumeration,
  fixedBytes,
  hashEncoded,
  list,
  pairOf,
  Reader,
  struct,
  uvarint,
} from '../codec/codec.js'
import { concatBytes } from '../codec/hex.js'
import type { Address } from '../crypto/address.js'
import { Domain, taggedHash } from '../crypto/hash.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { DecodeError } from '../errors.js'
import type { AbiMethod, AbiParam, AbiType, ScoreAbi } from '../score/abi.js'

/** A party's index: 0 opened the channel (A), 1 joined it (B). */
export type Party = 0 | 1

/** Most conditional payments pending in one state. */
export const MAX_HTLCS = 16
/** Largest amount or balance in a channel (fits the account balance codec). */
export const MAX_CHANNEL_AMOUNT = (1n << 255n) - 1n

/**
 * A conditional payment: `amount` moves from party `from` to the other party when the preimage of
 * `hashLock` (SHA-256) is shown at or before block `expiry`; otherwise it returns to `from`.
 */
export interface Htlc {
  /** Unique among the payments pending in a state: one above the highest pending (`nextHtlcId`), so reused once a payment is gone. */
  readonly id: number
  readonly from: Party
  readonly amount: bigint
  /** SHA-256 of the 32-byte preimage. */
  readonly hashLock: Uint8Array
  /** Last block height at which the preimage may settle it on chain. */
  readonly expiry: number
}

/** One numbered state of a channel. A state with a higher `seq` replaces every lower one. */
export interface ChannelState {
  readonly channelId: Uint8Array
  /** 0 is the opening state (the deposits, needing no signatures); every update adds one. */
  readonly seq: number
  /** Balances of party 0 (A) and party 1 (B). */
  readonly balances: readonly [bigint, bigint]
  /** Conditional payments in flight, sorted by id. */
  readonly htlcs: readonly Htlc[]
  /** A closing state: both parties agree to settle on it at once (cooperative close); no htlcs. */
  readonly final: boolean
}

/** A state with both parties' signatures over {@link channelStateDigest}. */
export interface SignedChannelState {
  readonly state: ChannelState
  /** Signatures of party 0 and party 1. */
  readonly signatures: readonly [Uint8Array, Uint8Array]
}

const party = enumeration('Party', [0, 1]) as Codec<Party>

/** Codec of {@link Htlc}. */
export const htlcCodec: Codec<Htlc> = struct('Htlc', {
  id: uvarint,
  from: party,
  amount: bigUint(32),
  hashLock: fixedBytes(32),
  expiry: uvarint,
}) as unknown as Codec<Htlc>

const balancesCodec = pairOf('Balances', bigUint(32))

/** Codec of {@link ChannelState}. */
export const channelStateCodec: Codec<ChannelState> = struct('ChannelState', {
  channelId: fixedBytes(32),
  seq: uvarint,
  balances: balancesCodec,
  htlcs: list(htlcCodec, MAX_HTLCS),
  final: bool,
}) as unknown as Codec<ChannelState>

const signaturesCodec = pairOf('Signatures', fixedBytes(64))

/** Codec of {@link SignedChannelState}. */
export const signedChannelStateCodec: Codec<SignedChannelState> = struct('SignedChannelState', {
  state: channelStateCodec,
  signatures: signaturesCodec,
}) as unknown as Codec<SignedChannelState>

/** A channel's id: the tagged hash of the transaction that opened it (unique per chain). */
export function channelIdOf(openTxHash: Uint8Array): Uint8Array {
  return taggedHash(Domain.ChannelId, openTxHash)
}

/** What both parties sign: the tagged hash of the state's canonical encoding (the id binds the chain and channel). */
export function channelStateDigest(s: ChannelState): Uint8Array {
  return hashEncoded(Domain.ChannelState, channelStateCodec, s)
}

/** Party `p`'s signature of `s`. */
export function signChannelState(s: ChannelState, secretKey: Uint8Array, crypto: CryptoProvider = nobleCrypto): Uint8Array {
  return crypto.sign(channelStateDigest(s), secretKey)
}

/** Sum of a state's balances and pending conditional payments. */
export function stateTotal(s: ChannelState): bigint {
  let t = s.balances[0] + s.balances[1]
  for (const h of s.htlcs) t += h.amount
  return t
}

/**
 * Why `s` cannot be a state of channel `channelId` holding `total`, or undefined when it can:
 * htlc ids strictly increasing, amounts positive, a final state without htlcs, the total kept.
 */
export function checkChannelState(s: ChannelState, channelId: Uint8Array, total: bigint): string | undefined {
  if (!equalBytes(s.channelId, channelId)) return 'the state belongs to another channel'
  let prev = -1
  for (const h of s.htlcs) {
    if (h.id <= prev) return 'conditional payments must be sorted by id without repeats'
    if (h.amount <= 0n) return `conditional payment ${h.id} has no amount`
    prev = h.id
  }
  if (s.final && s.htlcs.length > 0) return 'a final state cannot hold conditional payments'
  const t = stateTotal(s)
  if (t !== total) return `the state holds ${t}, the channel ${total}`
  return undefined
}

/**
 * Why `signed` is not a state of the channel co-signed by both keys, or undefined when it is
 * (the shape by {@link checkChannelState}, then both signatures).
 */
export function checkSignedChannelState(
  signed: SignedChannelState,
  channelId: Uint8Array,
  total: bigint,
  keys: readonly [Uint8Array, Uint8Array],
  crypto: CryptoProvider = nobleCrypto,
): string | undefined {
  const bad = checkChannelState(signed.state, channelId, total)
  if (bad !== undefined) return bad
  const digest = channelStateDigest(signed.state)
  if (!crypto.verify(signed.signatures[0], digest, keys[0])) return "party A's signature does not verify"
  if (!crypto.verify(signed.signatures[1], digest, keys[1])) return "party B's signature does not verify"
  return undefined
}

/** Decodes a signed state from its bytes (throws DecodeError). */
export function decodeSignedChannelState(b: Uint8Array): SignedChannelState {
  return decode(signedChannelStateCodec, b)
}

/** The encoding of a signed state, as the channel SCORE's `close` / `challenge` take it. */
export function encodeSignedChannelState(s: SignedChannelState): Uint8Array {
  return encode(signedChannelStateCodec, s)
}

/**
 * A party's revocation: "every state of this channel numbered below `below` is revoked by me".
 * A party revokes the states below its latest co-signed one once that one is saved, never its
 * latest, so its own latest state is never revoked. A unilateral close with a state its closer
 * revoked is stale, and the revocation is what penalises it (the channel SCORE's `challenge`): a
 * close with a state that is only older than some other co-signed state, but not revoked (say
 * the peer refused the closer's newer proposal and kept its signature), is merely replaced by the
 * newer state, so an honest closer never loses the channel.
 */
export interface ChannelRevocation {
  readonly channelId: Uint8Array
  /** Who revokes (and signs). */
  readonly party: Party
  /** Every state with a lower seq is revoked. */
  readonly below: number
  readonly signature: Uint8Array
}

/** Codec of {@link ChannelRevocation}. */
export const channelRevocationCodec: Codec<ChannelRevocation> = struct('ChannelRevocation', {
  channelId: fixedBytes(32),
  party,
  below: uvarint,
  signature: fixedBytes(64),
}) as unknown as Codec<ChannelRevocation>

/** What a revoking party signs: channel id, party and number, under their own tag. */
export function channelRevocationDigest(channelId: Uint8Array, p: Party, below: number): Uint8Array {
  const head = new Uint8Array(9)
  head[0] = p
  new DataView(head.buffer).setBigUint64(1, BigInt(below))
  return taggedHash(Domain.ChannelRevocation, concatBytes(channelId, head))
}

/**
 * Why `r` is not party `p`'s revocation of channel `channelId`'s states up to (and with) `seq`
 * under key `key`, or undefined when it is.
 */
export function checkChannelRevocation(
  r: ChannelRevocation,
  channelId: Uint8Array,
  p: Party,
  seq: number,
  key: Uint8Array,
  crypto: CryptoProvider = nobleCrypto,
): string | undefined {
  if (!equalBytes(r.channelId, channelId)) return 'the revocation belongs to another channel'
  if (r.party !== p) return `the revocation is party ${r.party}'s, not party ${p}'s`
  if (r.below <= seq) return `the revocation covers the states below ${r.below}, not state ${seq}`
  if (!crypto.verify(r.signature, channelRevocationDigest(r.channelId, r.party, r.below), key))
    return 'the revocation’s signature does not verify'
  return undefined
}

/** Decodes a revocation from its bytes (throws DecodeError). */
export function decodeChannelRevocation(b: Uint8Array): ChannelRevocation {
  return decode(channelRevocationCodec, b)
}

/** The encoding of a revocation, as the channel SCORE's `challenge` takes it. */
export function encodeChannelRevocation(r: ChannelRevocation): Uint8Array {
  return encode(channelRevocationCodec, r)
}

/** What a party hands a watchtower: its latest co-signed state and the peer's revocations it holds (at most one per party). */
export interface WatchRequest {
  readonly signed: SignedChannelState
  readonly revocations: readonly ChannelRevocation[]
}

/** The encoding of a {@link WatchRequest}: the signed state, then each revocation (a bare signed state is one without). */
export function encodeWatchRequest(w: WatchRequest): Uint8Array {
  return concatBytes(encodeSignedChannelState(w.signed), ...w.revocations.map(encodeChannelRevocation))
}

/** Decodes a {@link WatchRequest} (throws DecodeError, also for more than two revocations or bytes left over). */
export function decodeWatchRequest(b: Uint8Array): WatchRequest {
  const r = new Reader(b)
  const signed = signedChannelStateCodec.read(r)
  const revocations: ChannelRevocation[] = []
  while (r.remaining > 0) {
    if (revocations.length === 2) throw new DecodeError('TRAILING_BYTES', 'a watch request holds at most two revocations')
    revocations.push(channelRevocationCodec.read(r))
  }
  return { signed, revocations }
}

/** The opening state (seq 0): each party holds its deposit, nothing pending. */
export function openingState(channelId: Uint8Array, deposits: readonly [bigint, bigint]): ChannelState {
  return { channelId, seq: 0, balances: [deposits[0], deposits[1]], htlcs: [], final: false }
}

/** The bytes a private message's sender signs: channel id, message number and body, under their own tag. */
export function channelMessageDigest(channelId: Uint8Array, seq: number, from: Party, body: Uint8Array): Uint8Array {
  const head = new Uint8Array(9)
  head[0] = from
  new DataView(head.buffer).setBigUint64(1, BigInt(seq))
  return taggedHash(Domain.ChannelMessage, concatBytes(channelId, head, body))
}

/**
 * What a wallet signs in its hello on a link: the chain's network id, its address, the id of the
 * link's other end (its libp2p peer id as the link authenticates it), and the protocol version.
 * Bound to the other end and the chain, so a hello cannot be taken to a third wallet, or to the
 * same wallet on another chain, to speak in its sender's name there.
 */
export function channelHelloDigest(networkId: number, address: string, to: string, version: number): Uint8Array {
  return taggedHash(Domain.ChannelHello, new TextEncoder().encode(JSON.stringify([networkId, address, to, version])))
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

// ---------------------------------------------------------------------------------------------
// The channel SCORE's ABI (native code at CHANNEL_ADDRESS, exec/channels.ts).

/** Fewest blocks a unilateral close may wait for a challenge. */
export const MIN_CHALLENGE_PERIOD = 2
/** Most blocks a unilateral close may wait for a challenge. */
export const MAX_CHALLENGE_PERIOD = 100_000

const p = (name: string, type: AbiType, optional = false): AbiParam => ({ name, type, optional })
const m = (name: string, params: AbiParam[], opts: { readonly?: boolean; payable?: boolean; returns?: AbiType } = {}): AbiMethod => ({
  name,
  params,
  readonly: opts.readonly ?? false,
  payable: opts.payable ?? false,
  returns: opts.returns,
})

const CHANNEL_METHODS: Record<string, AbiMethod> = Object.assign(Object.create(null), {
  /** A opens with its deposit (the value); returns the channel id. */
  open: m('open', [p('peer', 'Address'), p('openerKey', 'bytes'), p('peerKey', 'bytes'), p('challengePeriod', 'int')], {
    payable: true,
    returns: 'bytes',
  }),
  /** B joins with its deposit (the value, may be 0): the channel is open. */
  join: m('join', [p('id', 'bytes')], { payable: true }),
  /** A takes its deposit back while B has not joined. */
  cancel: m('cancel', [p('id', 'bytes')]),
  /** Anyone submits a final state both signed: paid out at once. */
  closeCooperative: m('closeCooperative', [p('state', 'bytes')]),
  /** A party closes alone with its latest co-signed state (or none: the deposits); the challenge period starts. */
  close: m('close', [p('id', 'bytes'), p('state', 'bytes', true)]),
  /**
   * Anyone shows a newer co-signed state during the challenge period: it replaces the closer's.
   * With the closer's revocation of the closing state too, the close was stale: the closer is
   * penalised and the other party receives the whole channel.
   */
  challenge: m('challenge', [p('state', 'bytes'), p('revocation', 'bytes', true)]),
  /** Anyone shows the preimage of a closed state's conditional payment before it expires. */
  redeem: m('redeem', [p('id', 'bytes'), p('htlcId', 'int'), p('preimage', 'bytes')]),
  /** Anyone pays out a closed channel after its challenge period and its payments' expiries. */
  withdraw: m('withdraw', [p('id', 'bytes')]),
  /** The channel's record. */
  get: m('get', [p('id', 'bytes')], { readonly: true }),
})

/** The channel SCORE's ABI (for `getScoreApi` and typed calls). */
export const CHANNEL_ABI: ScoreAbi = Object.freeze({
  name: 'PaymentChannels',
  methods: Object.freeze(CHANNEL_METHODS),
  events: Object.freeze(Object.create(null)),
})

/** The channel SCORE's event names (docs/channels.md lists their fields). */
export const ChannelEvent = {
  Opened: 'ChannelOpened',
  Joined: 'ChannelJoined',
  Cancelled: 'ChannelCancelled',
  Closing: 'ChannelClosing',
  Challenged: 'ChannelChallenged',
  Redeemed: 'ChannelRedeemed',
  Penalised: 'ChannelPenalised',
  Settled: 'ChannelSettled',
} as const

/** The opener (A) and peer (B) addresses of a channel, by party index. */
export type ChannelParties = readonly [Address, Address]
