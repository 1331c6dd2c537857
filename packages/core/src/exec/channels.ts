/**
 * The payment channel system SCORE: native TypeScript inside the executor, at the fixed address
 * {@link CHANNEL_ADDRESS}, next to governance and the certificate registry. Two parties lock
 * deposits here, exchange co-signed numbered states off chain (channel/state.ts), and come back to
 * settle: at once on a final state both signed, or alone with their latest state and a challenge
 * period in which anyone (a watchtower) may show a newer co-signed state, which replaces the
 * closer's; shown with the closer's own revocation of the state it closed with, the close was
 * stale and the whole channel goes to the honest party (see {@link ChannelRevocation}). See the
 * docs/channels.md, "On chain".
 *
 * One record per channel under `h ‖ id` (layout.ts), so a light client can prove a channel's status
 * against a verified header. The deposits sit in the {@link CHANNEL_ADDRESS} account; a call's value
 * moves there and payouts move out within the calling transaction, so a failed call moves nothing.
 *
 * Everything here is a pure function of the state and the call: heights come from the block, never
 * a clock, and the only cryptography is signature verification by the given provider.
 */

import {
  CHANNEL_ABI,
  ChannelEvent,
  type ChannelRevocation,
  type ChannelState,
  channelIdOf,
  checkChannelRevocation,
  checkSignedChannelState,
  decodeChannelRevocation,
  decodeSignedChannelState,
  MAX_CHALLENGE_PERIOD,
  MAX_CHANNEL_AMOUNT,
  MIN_CHALLENGE_PERIOD,
  openingState,
  type Party,
  type SignedChannelState,
} from '../channel/state.js'
import { decode, encode } from '../codec/codec.js'
import { bytesEqual, to0x } from '../codec/hex.js'
import type { Value } from '../codec/value.js'
import { type Address, accountAddress } from '../crypto/address.js'
import { sha256 } from '../crypto/hash.js'
import { type CryptoProvider, isAcceptablePublicKey, nobleCrypto } from '../crypto/provider.js'
import { DecodeError } from '../errors.js'
import type { EventLog } from '../ledger/receipt.js'
import { type AbiMethod, checkParams } from '../score/abi.js'
import type { StateOverlay } from '../score/overlay.js'
import {
  accountKey,
  accountStateCodec,
  CHANNEL_ADDRESS,
  ChannelOutcome,
  type ChannelRecord,
  ChannelStatus,
  channelKey,
  channelRecordCodec,
  EMPTY_ACCOUNT,
  preimageKey,
} from './layout.js'

/**
 * Steps a channel call costs beyond the transaction's base: native code, priced like the
 * certificate registry; the dearest call verifies two ed25519 signatures, which this covers.
 */
export const CHANNEL_STEPS = 20_000

/** The outcome of a channel call: a result and its logs, or a typed failure (nothing written). */
export type ChannelCallResult =
  | { readonly ok: true; readonly result: Value; readonly logs: readonly EventLog[] }
  | { readonly ok: false; readonly failure: { readonly code: string; readonly message: string } }

/** What a channel call is made with. */
export interface ChannelCall {
  readonly from: Address
  readonly method: string
  readonly params: Value
  /** Moves from `from` to the {@link CHANNEL_ADDRESS} account (payable methods only). */
  readonly value: bigint
  readonly height: number
  /** The calling transaction's hash (an opened channel's id derives from it). */
  readonly txHash: Uint8Array
  /** A read-only query: writing methods are refused (`READONLY_VIOLATION`). */
  readonly query: boolean
  /** Verifies the states' signatures; {@link nobleCrypto} when absent (every provider agrees). */
  readonly crypto?: CryptoProvider
}

/** A status's name as `get` and the JSON-RPC give it (by {@link ChannelStatus}). */
export const CHANNEL_STATUS_NAMES = ['opening', 'open', 'closing', 'closed'] as const
/** An outcome's name as `get` and the `ChannelSettled` log give it (by {@link ChannelOutcome}). */
export const CHANNEL_OUTCOME_NAMES = ['cancelled', 'cooperative', 'penalised', 'unilateral'] as const

/** The record of channel `id`, or undefined. */
export function readChannelRecord(state: StateOverlay, id: Uint8Array): ChannelRecord | undefined {
  const raw = state.get(channelKey(id))
  return raw === undefined ? undefined : decode(channelRecordCodec, raw)
}

/** A record as the channel SCORE's `get` returns it. */
export function channelRecordToValue(id: Uint8Array, r: ChannelRecord): Value {
  const opt = (n: number | undefined): Value => (n === undefined ? null : BigInt(n))
  return {
    id,
    status: CHANNEL_STATUS_NAMES[r.status],
    parties: [r.parties[0], r.parties[1]],
    keys: [r.keys[0], r.keys[1]],
    deposits: [r.deposits[0], r.deposits[1]],
    challengePeriod: BigInt(r.challengePeriod),
    openedAt: BigInt(r.openedAt),
    closer: r.closer === undefined ? null : r.parties[r.closer],
    seq: BigInt(r.seq),
    balances: [r.balances[0], r.balances[1]],
    htlcs: r.htlcs.map(({ htlc, redeemed }) => ({
      id: BigInt(htlc.id),
      from: BigInt(htlc.from),
      amount: htlc.amount,
      hashLock: htlc.hashLock,
      expiry: BigInt(htlc.expiry),
      redeemed,
    })),
    deadline: opt(r.deadline),
    closedAt: opt(r.closedAt),
    outcome: r.outcome === undefined ? null : CHANNEL_OUTCOME_NAMES[r.outcome],
  }
}

/** A typed refusal, thrown inside a call and turned into its failure (the call's writes are dropped). */
class Refusal {
  constructor(
    readonly code: string,
    readonly message: string,
  ) {}
}

function refuse(code: string, message: string): never {
  throw new Refusal(code, message.slice(0, 256))
}

const short = (id: Uint8Array) => `${to0x(id).slice(0, 18)}…`

function log(event: string, indexed: Value[], data: Value[] = []): EventLog {
  return { score: CHANNEL_ADDRESS, event, indexed, data }
}

/**
 * Runs a channel method. Writes (the record, the value in, payouts out) go into `state` only on
 * success; a failure writes nothing: `UNKNOWN_METHOD`, `NOT_PAYABLE`, `READONLY_VIOLATION`,
 * `INVALID_ARGUMENT`, `INSUFFICIENT_BALANCE`, `UNKNOWN_CHANNEL`, `CHANNEL_EXISTS`, `NOT_A_PARTY`,
 * `WRONG_STATUS`, `BAD_STATE` (does not decode, or fails {@link checkSignedChannelState}: the reason
 * is in the message), `BAD_REVOCATION` (does not decode, or is not the closer's revocation of the
 * closing state), `STALE_STATE`, `CHALLENGE_PERIOD_OVER`, `TOO_EARLY`, `UNKNOWN_HTLC`,
 * `ALREADY_REDEEMED`, `HTLC_EXPIRED`, `BAD_PREIMAGE`.
 */
export function channelCall(state: StateOverlay, call: ChannelCall): ChannelCallResult {
  const fail = (code: string, message: string): ChannelCallResult => ({ ok: false, failure: { code, message: message.slice(0, 256) } })
  const methods = CHANNEL_ABI.methods
  const method = Object.hasOwn(methods, call.method) ? methods[call.method] : undefined
  if (method === undefined) return fail('UNKNOWN_METHOD', `PaymentChannels has no method ${JSON.stringify(call.method).slice(0, 70)}`)
  if (call.value !== 0n && !method.payable) return fail('NOT_PAYABLE', `PaymentChannels.${method.name} does not accept a value`)
  if (call.value < 0n) return fail('INVALID_ARGUMENT', 'a value cannot be negative')
  if (!method.readonly && call.query)
    return fail('READONLY_VIOLATION', `PaymentChannels.${method.name} writes state and cannot run in a query`)
  const bad = checkParams(method as AbiMethod, call.params)
  if (bad !== undefined) return fail('INVALID_ARGUMENT', bad)
  const args = (call.params ?? {}) as { [key: string]: Value }
  const o = state.child()
  try {
    if (call.value > 0n) {
      if (readBalance(o, call.from) < call.value) refuse('INSUFFICIENT_BALANCE', `${call.from} holds less than ${call.value}`)
      move(o, call.from, CHANNEL_ADDRESS, call.value)
    }
    const out = run(o, method.name, args, call)
    o.commit()
    return { ok: true, result: out.result, logs: out.logs }
  } catch (e) {
    o.discard()
    if (e instanceof Refusal) return fail(e.code, e.message)
    throw e
  }
}

interface Done {
  readonly result: Value
  readonly logs: EventLog[]
}

function run(o: StateOverlay, name: string, args: { [key: string]: Value }, call: ChannelCall): Done {
  const crypto = call.crypto ?? nobleCrypto
  switch (name) {
    case 'open':
      return open(o, args, call)
    case 'join': {
      const id = channelId(args.id)
      const rec = need(o, id)
      if (call.from !== rec.parties[1]) refuse('NOT_A_PARTY', `only the peer ${rec.parties[1]} may join channel ${short(id)}`)
      expectStatus(rec, id, ChannelStatus.Opening)
      if (rec.deposits[0] + call.value > MAX_CHANNEL_AMOUNT) refuse('INVALID_ARGUMENT', 'the deposits exceed the largest channel amount')
      const deposits = [rec.deposits[0], call.value] as const
      write(o, id, { ...rec, status: ChannelStatus.Open, deposits, balances: deposits })
      return { result: null, logs: [log(ChannelEvent.Joined, [id, call.from], [call.value])] }
    }
    case 'cancel': {
      const id = channelId(args.id)
      const rec = need(o, id)
      if (call.from !== rec.parties[0]) refuse('NOT_A_PARTY', `only the opener ${rec.parties[0]} may cancel channel ${short(id)}`)
      expectStatus(rec, id, ChannelStatus.Opening)
      pay(o, rec.parties[0], rec.deposits[0])
      settle(o, id, rec, [rec.deposits[0], 0n], ChannelOutcome.Cancelled, call.height)
      return { result: null, logs: [log(ChannelEvent.Cancelled, [id, call.from], [rec.deposits[0]])] }
    }
    case 'closeCooperative': {
      const signed = decodeState(args.state as Uint8Array)
      const id = signed.state.channelId
      const rec = need(o, id)
      if (rec.status !== ChannelStatus.Open && rec.status !== ChannelStatus.Closing)
        refuse('WRONG_STATUS', `channel ${short(id)} is ${CHANNEL_STATUS_NAMES[rec.status]}, not open or closing`)
      verify(signed, id, rec, crypto)
      if (!signed.state.final) refuse('BAD_STATE', 'a cooperative close needs a final state')
      if (rec.status === ChannelStatus.Closing && signed.state.seq <= rec.seq)
        refuse('STALE_STATE', `state ${signed.state.seq} is not newer than the recorded state ${rec.seq}`)
      const [a, b] = signed.state.balances
      pay(o, rec.parties[0], a)
      pay(o, rec.parties[1], b)
      settle(o, id, { ...rec, seq: signed.state.seq }, [a, b], ChannelOutcome.Cooperative, call.height)
      return { result: null, logs: [log(ChannelEvent.Settled, [id], [a, b, 'cooperative'])] }
    }
    case 'close': {
      const id = channelId(args.id)
      const rec = need(o, id)
      const closer = partyOf(rec, call.from)
      if (closer === undefined) refuse('NOT_A_PARTY', `${call.from} is not a party of channel ${short(id)}`)
      expectStatus(rec, id, ChannelStatus.Open)
      let s: ChannelState = openingState(id, rec.deposits)
      if (args.state !== undefined && args.state !== null) {
        const signed = decodeState(args.state as Uint8Array)
        verify(signed, id, rec, crypto)
        if (signed.state.final) refuse('BAD_STATE', 'a final state closes cooperatively (closeCooperative), not alone')
        s = signed.state
      }
      const deadline = call.height + rec.challengePeriod
      write(o, id, {
        ...rec,
        status: ChannelStatus.Closing,
        closer,
        seq: s.seq,
        balances: s.balances,
        htlcs: s.htlcs.map((htlc) => ({ htlc, redeemed: false })),
        deadline,
      })
      return { result: null, logs: [log(ChannelEvent.Closing, [id, call.from], [BigInt(s.seq), BigInt(deadline)])] }
    }
    case 'challenge': {
      const signed = decodeState(args.state as Uint8Array)
      const id = signed.state.channelId
      const rec = need(o, id)
      expectStatus(rec, id, ChannelStatus.Closing)
      const deadline = rec.deadline ?? 0
      if (call.height > deadline)
        refuse('CHALLENGE_PERIOD_OVER', `the challenge period of channel ${short(id)} ended at height ${deadline}`)
      verify(signed, id, rec, crypto)
      if (signed.state.final) refuse('BAD_STATE', 'a final state settles at once (closeCooperative), not by a challenge')
      if (signed.state.seq <= rec.seq) refuse('STALE_STATE', `state ${signed.state.seq} is not newer than the closer's state ${rec.seq}`)
      const cheater = rec.closer ?? 0
      if (args.revocation === undefined || args.revocation === null) {
        // Newer, but the closer never revoked its state (it may hold nothing newer: its peer can
        // keep a proposal it refused). The newer state wins; nobody is penalised.
        write(o, id, { ...rec, ...replacement(rec, signed.state) })
        return { result: null, logs: [log(ChannelEvent.Challenged, [id, call.from], [BigInt(signed.state.seq)])] }
      }
      const why = checkChannelRevocation(decodeRevocation(args.revocation as Uint8Array), id, cheater, rec.seq, rec.keys[cheater], crypto)
      if (why !== undefined) refuse('BAD_REVOCATION', why)
      const beneficiary: Party = cheater === 0 ? 1 : 0
      const amount = rec.deposits[0] + rec.deposits[1]
      pay(o, rec.parties[beneficiary], amount)
      const balances: readonly [bigint, bigint] = beneficiary === 0 ? [amount, 0n] : [0n, amount]
      settle(o, id, rec, balances, ChannelOutcome.Penalised, call.height)
      return {
        result: null,
        logs: [log(ChannelEvent.Penalised, [id, rec.parties[cheater]], [rec.parties[beneficiary], amount])],
      }
    }
    case 'redeem': {
      const id = channelId(args.id)
      const preimage = args.preimage as Uint8Array
      const htlcId = args.htlcId as bigint
      const rec = need(o, id)
      expectStatus(rec, id, ChannelStatus.Closing)
      const at = rec.htlcs.findIndex((h) => BigInt(h.htlc.id) === htlcId)
      const entry = rec.htlcs[at]
      if (entry === undefined) refuse('UNKNOWN_HTLC', `the recorded state of channel ${short(id)} holds no conditional payment ${htlcId}`)
      const h = entry.htlc
      if (entry.redeemed) refuse('ALREADY_REDEEMED', `conditional payment ${h.id} was already redeemed`)
      if (call.height > h.expiry) refuse('HTLC_EXPIRED', `conditional payment ${h.id} expired at height ${h.expiry}`)
      if (preimage.length !== 32 || !bytesEqual(sha256(preimage), h.hashLock))
        refuse('BAD_PREIMAGE', `the preimage does not hash to the lock of conditional payment ${h.id}`)
      const to: Party = h.from === 0 ? 1 : 0
      const balances: [bigint, bigint] = [rec.balances[0], rec.balances[1]]
      balances[to] += h.amount
      const htlcs = rec.htlcs.map((x, i) => (i === at ? { htlc: x.htlc, redeemed: true } : x))
      write(o, id, { ...rec, balances, htlcs })
      // Where the hop before can prove it (its payment has the same lock), whichever channel it was.
      o.set(preimageKey(h.hashLock), preimage.slice())
      return { result: null, logs: [log(ChannelEvent.Redeemed, [id, BigInt(h.id)], [preimage, h.amount])] }
    }
    case 'withdraw': {
      const id = channelId(args.id)
      const rec = need(o, id)
      expectStatus(rec, id, ChannelStatus.Closing)
      const deadline = rec.deadline ?? 0
      if (call.height <= deadline) refuse('TOO_EARLY', `the challenge period of channel ${short(id)} runs until height ${deadline}`)
      const balances: [bigint, bigint] = [rec.balances[0], rec.balances[1]]
      for (const { htlc, redeemed } of rec.htlcs) {
        if (redeemed) continue
        if (call.height <= htlc.expiry) refuse('TOO_EARLY', `conditional payment ${htlc.id} may be redeemed until height ${htlc.expiry}`)
        balances[htlc.from] += htlc.amount
      }
      pay(o, rec.parties[0], balances[0])
      pay(o, rec.parties[1], balances[1])
      settle(o, id, rec, balances, ChannelOutcome.Unilateral, call.height)
      return { result: null, logs: [log(ChannelEvent.Settled, [id], [balances[0], balances[1], 'unilateral'])] }
    }
    case 'get': {
      const id = args.id as Uint8Array
      const rec = id.length === 32 ? readChannelRecord(o, id) : undefined
      return { result: rec === undefined ? null : channelRecordToValue(id, rec), logs: [] }
    }
    default:
      return refuse('UNKNOWN_METHOD', `PaymentChannels has no method ${name}`)
  }
}

function open(o: StateOverlay, args: { [key: string]: Value }, call: ChannelCall): Done {
  const peer = args.peer as Address
  const openerKey = args.openerKey as Uint8Array
  const peerKey = args.peerKey as Uint8Array
  const period = args.challengePeriod as bigint
  if (call.value === 0n) refuse('INVALID_ARGUMENT', 'open locks a deposit: send a value')
  if (call.value > MAX_CHANNEL_AMOUNT) refuse('INVALID_ARGUMENT', 'the deposit exceeds the largest channel amount')
  if (peer === call.from) refuse('INVALID_ARGUMENT', 'a channel needs two different parties')
  if (!isAcceptablePublicKey(openerKey)) refuse('INVALID_ARGUMENT', 'openerKey is not an acceptable ed25519 public key')
  if (!isAcceptablePublicKey(peerKey)) refuse('INVALID_ARGUMENT', 'peerKey is not an acceptable ed25519 public key')
  if (accountAddress(openerKey) !== call.from) refuse('INVALID_ARGUMENT', `openerKey is not the key of the sender ${call.from}`)
  if (accountAddress(peerKey) !== peer) refuse('INVALID_ARGUMENT', `peerKey is not the key of the peer ${peer}`)
  if (period < BigInt(MIN_CHALLENGE_PERIOD) || period > BigInt(MAX_CHALLENGE_PERIOD))
    refuse('INVALID_ARGUMENT', `challengePeriod must be from ${MIN_CHALLENGE_PERIOD} to ${MAX_CHALLENGE_PERIOD} blocks`)
  const id = channelIdOf(call.txHash)
  // A transaction hash is unique, so is the id; refuse rather than overwrite should that ever fail.
  if (readChannelRecord(o, id) !== undefined) refuse('CHANNEL_EXISTS', `channel ${short(id)} is already recorded`)
  const deposits = [call.value, 0n] as const
  write(o, id, {
    status: ChannelStatus.Opening,
    parties: [call.from, peer],
    keys: [openerKey, peerKey],
    deposits,
    challengePeriod: Number(period),
    openedAt: call.height,
    closer: undefined,
    seq: 0,
    balances: deposits,
    htlcs: [],
    deadline: undefined,
    closedAt: undefined,
    outcome: undefined,
  })
  return { result: id, logs: [log(ChannelEvent.Opened, [id, call.from, peer], [call.value, period])] }
}

function channelId(v: Value | undefined): Uint8Array {
  const id = v as Uint8Array
  if (id.length !== 32) refuse('INVALID_ARGUMENT', 'a channel id is 32 bytes')
  return id
}

function need(o: StateOverlay, id: Uint8Array): ChannelRecord {
  return readChannelRecord(o, id) ?? refuse('UNKNOWN_CHANNEL', `no channel ${short(id)}`)
}

function expectStatus(rec: ChannelRecord, id: Uint8Array, status: ChannelStatus): void {
  if (rec.status !== status)
    refuse('WRONG_STATUS', `channel ${short(id)} is ${CHANNEL_STATUS_NAMES[rec.status]}, not ${CHANNEL_STATUS_NAMES[status]}`)
}

function partyOf(rec: ChannelRecord, a: Address): Party | undefined {
  return a === rec.parties[0] ? 0 : a === rec.parties[1] ? 1 : undefined
}

/** `bytes` decoded by `decodeFn`, or a `code` refusal saying that `what` does not decode. */
function decodeArg<T>(bytes: Uint8Array, decodeFn: (b: Uint8Array) => T, code: 'BAD_STATE' | 'BAD_REVOCATION', what: string): T {
  try {
    return decodeFn(bytes)
  } catch (e) {
    if (e instanceof DecodeError) refuse(code, `${what} does not decode: ${e.message}`)
    throw e
  }
}

const decodeRevocation = (bytes: Uint8Array): ChannelRevocation =>
  decodeArg(bytes, decodeChannelRevocation, 'BAD_REVOCATION', 'the revocation')
const decodeState = (bytes: Uint8Array): SignedChannelState => decodeArg(bytes, decodeSignedChannelState, 'BAD_STATE', 'the state')

/**
 * What a newer state puts in a closing record: its seq, balances and conditional payments. A
 * payment the recorded state held and someone already redeemed (its preimage is public now) stays
 * redeemed if the newer state holds the same one, so nobody must redeem it twice.
 */
function replacement(rec: ChannelRecord, s: ChannelState): Pick<ChannelRecord, 'seq' | 'balances' | 'htlcs'> {
  const balances: [bigint, bigint] = [s.balances[0], s.balances[1]]
  const htlcs = s.htlcs.map((htlc) => {
    const redeemed = rec.htlcs.some(
      (r) =>
        r.redeemed &&
        r.htlc.id === htlc.id &&
        r.htlc.from === htlc.from &&
        r.htlc.amount === htlc.amount &&
        bytesEqual(r.htlc.hashLock, htlc.hashLock),
    )
    if (redeemed) balances[htlc.from === 0 ? 1 : 0] += htlc.amount
    return { htlc, redeemed }
  })
  return { seq: s.seq, balances, htlcs }
}

function verify(signed: SignedChannelState, id: Uint8Array, rec: ChannelRecord, crypto: CryptoProvider): void {
  const why = checkSignedChannelState(signed, id, rec.deposits[0] + rec.deposits[1], rec.keys, crypto)
  if (why !== undefined) refuse('BAD_STATE', why)
}

function write(o: StateOverlay, id: Uint8Array, rec: ChannelRecord): void {
  o.set(channelKey(id), encode(channelRecordCodec, rec))
}

function settle(
  o: StateOverlay,
  id: Uint8Array,
  rec: ChannelRecord,
  paid: readonly [bigint, bigint],
  outcome: ChannelOutcome,
  height: number,
): void {
  write(o, id, { ...rec, status: ChannelStatus.Closed, balances: paid, closedAt: height, outcome })
}

function readBalance(o: StateOverlay, a: Address): bigint {
  const raw = o.get(accountKey(a))
  return (raw === undefined ? EMPTY_ACCOUNT : decode(accountStateCodec, raw)).balance
}

function move(o: StateOverlay, from: Address, to: Address, amount: bigint): void {
  if (amount === 0n || from === to) return
  for (const [a, delta] of [
    [from, -amount],
    [to, amount],
  ] as const) {
    const raw = o.get(accountKey(a))
    const acc = raw === undefined ? EMPTY_ACCOUNT : decode(accountStateCodec, raw)
    o.set(accountKey(a), encode(accountStateCodec, { ...acc, balance: acc.balance + delta }))
  }
}

/** Pays `amount` out of the channel account; the deposits always cover it, so a shortfall is refused rather than minted. */
function pay(o: StateOverlay, to: Address, amount: bigint): void {
  if (readBalance(o, CHANNEL_ADDRESS) < amount) refuse('CHANNEL_FUNDS_MISSING', `the channel account cannot pay ${amount}`)
  move(o, CHANNEL_ADDRESS, to, amount)
}
