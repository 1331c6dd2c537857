import { describe, expect, it } from 'vitest'
import {
  ChannelDriver,
  type ChannelProposal,
  ChannelProtocolError,
  type ChannelRevocation,
  ChannelSession,
  type ChannelSessionEvent,
  type ChannelSigner,
  type ChannelWire,
  checkChannelRevocation,
  checkSignedChannelState,
  decodeChannelWire,
  encodeChannelWire,
  keyPairFromSecret,
  LAZY_SAVE_MS,
  MAX_IN_FLIGHT,
  MAX_RUN,
  providerSigner,
  type ReceiveResult,
  sha256,
  utf8,
} from '../../src/index.js'

const seed = (n: number) => new Uint8Array(32).fill(n)
const A = keyPairFromSecret(seed(1))
const B = keyPairFromSecret(seed(2))
const H = keyPairFromSecret(seed(3))
const C = keyPairFromSecret(seed(4))
const ctx = { height: 100 }

/** A fresh channel between `k0` and `k1` (each party signs with its `signer` when given). */
function pair(id: number, k0 = A, k1 = B, deposits: [bigint, bigint] = [1000n, 1000n], signer0?: ChannelSigner, signer1?: ChannelSigner) {
  const channelId = new Uint8Array(32).fill(id)
  const keys = [k0.publicKey, k1.publicKey] as const
  const s0 = ChannelSession.create({ me: 0, channelId, keys, deposits, signer: signer0 ?? providerSigner(k0.secretKey) })
  const s1 = ChannelSession.create({ me: 1, channelId, keys, deposits, signer: signer1 ?? providerSigner(k1.secretKey) })
  return { channelId, keys, s0, s1, total: deposits[0] + deposits[1] }
}

/** Delivers `m` (through its encoding, as on a wire) to `to`, then every reply back and forth until quiet. */
async function deliver(
  from: ChannelSession,
  to: ChannelSession,
  m: ChannelWire,
  events: ChannelSessionEvent[] = [],
): Promise<ChannelSessionEvent[]> {
  const queue: [ChannelSession, ChannelSession, ChannelWire][] = [[from, to, m]]
  while (queue.length > 0) {
    const [f, t, msg] = queue.shift() as [ChannelSession, ChannelSession, ChannelWire]
    const r = await t.receive(decodeChannelWire(encodeChannelWire(msg)), ctx)
    events.push(...r.events)
    for (const reply of r.replies) queue.push([t, f, reply])
  }
  return events
}

/**
 * Hands each message on `wire` to its driver as a link does, until the wire stays empty for
 * `idleTicks` turns; with `overlap`, without waiting for one message's handling (and save) before
 * the next. Returns the handlings.
 */
async function pump(
  wire: { to: number; m: ChannelWire }[],
  drivers: readonly ChannelDriver[],
  opts: { overlap: boolean; idleTicks: number },
): Promise<Promise<void>[]> {
  const handling: Promise<void>[] = []
  for (let idle = 0; idle < opts.idleTicks; ) {
    const next = wire.shift()
    if (next === undefined) {
      idle++
      await new Promise((r) => setTimeout(r, 0))
      continue
    }
    idle = 0
    const h = (drivers[next.to] as ChannelDriver).receive(next.m)
    handling.push(h)
    if (!opts.overlap) await h
  }
  return handling
}

describe('channel session', () => {
  it('100 payments each way, pipelined, every state co-signed and accepted by the chain check', async () => {
    const { s0, s1, channelId, keys, total } = pair(1)
    const updates0: ChannelWire[] = []
    const updates1: ChannelWire[] = []
    // Fifty at a time in flight, delivered in order; acks flow back.
    for (let batch = 0; batch < 2; batch++) {
      updates0.length = 0
      for (let i = 0; i < 50; i++) updates0.push(await s0.pay(3n, ctx))
      expect(s0.inFlight).toHaveLength(50)
      for (const u of updates0) await deliver(s0, s1, u)
      expect(s0.inFlight).toHaveLength(0)
      updates1.length = 0
      for (let i = 0; i < 50; i++) updates1.push(await s1.pay(2n, ctx))
      for (const u of updates1) await deliver(s1, s0, u)
    }
    expect(s0.latest.state.seq).toBe(200)
    expect(s1.latest).toEqual(s0.latest)
    expect(s0.balances).toEqual({ mine: 1000n - 300n + 200n, theirs: 1000n + 300n - 200n })
    expect(checkSignedChannelState(s0.latest, channelId, total, keys)).toBeUndefined()
  })

  it('refuses more than the in-flight window, a payment above the balance, and a zero payment, changing nothing', async () => {
    const { s0 } = pair(2, A, B, [10n, 0n])
    await expect(s0.pay(11n, ctx)).rejects.toMatchObject({ code: 'INSUFFICIENT_BALANCE' })
    await expect(s0.pay(0n, ctx)).rejects.toMatchObject({ code: 'BAD_TRANSITION' })
    expect(s0.inFlight).toHaveLength(0)
    const { s0: big } = pair(3, A, B, [10_000n, 0n])
    for (let i = 0; i < MAX_IN_FLIGHT; i++) await big.pay(1n, ctx)
    await expect(big.pay(1n, ctx)).rejects.toMatchObject({ code: 'TOO_MANY_IN_FLIGHT' })
  })

  it('rejects forged, replayed, reordered and foreign updates and messages; each leaves the snapshot unchanged', async () => {
    const { s0, s1 } = pair(4)
    const other = pair(5)
    const u1 = await s0.pay(10n, ctx)
    await deliver(s0, s1, u1)
    const before = s1.snapshot()
    const refuse = async (m: ChannelWire, code: string) => {
      const err = await s1.receive(m, ctx).catch((e) => e)
      expect(err).toBeInstanceOf(ChannelProtocolError)
      expect(err.code).toBe(code)
      expect(s1.snapshot()).toEqual(before)
    }
    const u2 = (await s0.pay(5n, ctx)) as Extract<ChannelWire, { t: 'update' }>
    // Forged: signature bits flipped.
    await refuse({ ...u2, signature: u2.signature.map((b, i) => (i === 3 ? b ^ 1 : b)) }, 'BAD_SIGNATURE')
    // The signature of a payment of 5 presented as a payment of 50 (the payer's signature does not cover it).
    await refuse({ ...u2, change: { kind: 'pay', amount: 50n } }, 'BAD_SIGNATURE')
    // Replayed: the first update again with another signature (a stale number).
    await refuse({ ...(u1 as Extract<ChannelWire, { t: 'update' }>), signature: new Uint8Array(64) }, 'STALE_UPDATE')
    // Skipping ahead.
    await refuse({ ...u2, seq: 3 }, 'OUT_OF_ORDER')
    // Another channel's id.
    await refuse({ ...u2, channelId: other.channelId }, 'WRONG_CHANNEL')
    // The exact same update twice: the second is acknowledged again, not applied twice.
    await deliver(s0, s1, u2)
    expect(s1.balances.mine).toBe(1015n)
    const again = await s1.receive(u2, ctx)
    expect(again.replies.map((r) => r.t)).toEqual(['ack'])
    expect(s1.balances.mine).toBe(1015n)

    // Messages: good, replayed, replayed into another channel, forged.
    const msg = await s0.message(utf8('hello B'))
    const ev = await deliver(s0, s1, msg)
    expect(ev).toEqual([{ type: 'message', seq: 1, body: utf8('hello B') }])
    const snap = s1.snapshot()
    await expect(s1.receive(msg, ctx)).rejects.toMatchObject({ code: 'REPLAYED_MESSAGE' })
    // The same message (same signer, seq and body) into another channel of the same two keys.
    const otherWithSameKeys = pair(6)
    await expect(
      otherWithSameKeys.s1.receive({ ...(msg as Extract<ChannelWire, { t: 'msg' }>), channelId: otherWithSameKeys.channelId }, ctx),
    ).rejects.toMatchObject({
      code: 'BAD_SIGNATURE',
    })
    const m2 = (await s0.message(utf8('second'))) as Extract<ChannelWire, { t: 'msg' }>
    await expect(s1.receive({ ...m2, body: utf8('SECOND') }, ctx)).rejects.toMatchObject({ code: 'BAD_SIGNATURE' })
    expect(s1.snapshot()).toEqual(snap)
    // Malformed bytes.
    expect(() => decodeChannelWire(Uint8Array.of(9, 1, 2))).toThrow(ChannelProtocolError)
  })

  it('concurrent proposals: party 0 wins, party 1 is told what was dropped', async () => {
    const { s0, s1 } = pair(7)
    const u0 = await s0.pay(7n, ctx)
    const u1 = await s1.pay(9n, ctx)
    // Party 0 refuses party 1's proposal of the same number.
    await expect(s0.receive(u1, ctx)).rejects.toMatchObject({ code: 'CONFLICT' })
    const ev = await deliver(s0, s1, u0)
    expect(ev.find((e) => e.type === 'dropped')).toEqual({ type: 'dropped', changes: [{ kind: 'pay', amount: 9n }] })
    expect(s0.latest).toEqual(s1.latest)
    expect(s1.balances.mine).toBe(1007n)
    // Party 1 proposes again.
    await deliver(s1, s0, await s1.pay(9n, ctx))
    expect(s0.balances.mine).toBe(1002n)
  })

  it('a two-hop hash-locked payment A → hub → C, forwarded on the event and settled back with the preimage', async () => {
    const ah = pair(8, A, H)
    const hc = pair(9, H, C)
    const preimage = new Uint8Array(32).fill(42)
    const lock = hc.s1.rememberPreimage(preimage)
    expect(lock).toEqual(sha256(preimage))
    // A offers 50 to the hub, to be forwarded to C.
    const evAH = await deliver(ah.s0, ah.s1, await ah.s0.addHtlc({ amount: 50n, hashLock: lock, expiry: 200, next: C.address }, ctx))
    const fwd = evAH.find((e) => e.type === 'forward')
    expect(fwd).toMatchObject({ type: 'forward', next: C.address })
    // The hub offers the same lock to C with an earlier expiry.
    const evHC = await deliver(hc.s0, hc.s1, await hc.s0.addHtlc({ amount: 50n, hashLock: lock, expiry: 150 }, ctx))
    const incoming = evHC.find((e) => e.type === 'received')
    expect(incoming).toMatchObject({ change: { kind: 'add' } })
    // C settles with the preimage; the hub learns it and settles with A.
    const evSettle = await deliver(hc.s1, hc.s0, await hc.s1.settleHtlc(1, hc.s1.preimageOf(lock) as Uint8Array, ctx))
    const learned = evSettle.find((e) => e.type === 'received' && e.change.kind === 'settle')
    expect(learned).toBeDefined()
    const pre = (learned as { change: { preimage: Uint8Array } }).change.preimage
    await deliver(ah.s1, ah.s0, await ah.s1.settleHtlc(1, pre, ctx))
    expect(ah.s0.balances).toEqual({ mine: 950n, theirs: 1050n })
    expect(hc.s1.balances).toEqual({ mine: 1050n, theirs: 950n })
    expect(ah.s0.latest.state.htlcs).toHaveLength(0)

    // A wrong preimage, and a fail that returns the amount.
    await deliver(ah.s0, ah.s1, await ah.s0.addHtlc({ amount: 5n, hashLock: sha256(new Uint8Array(32)), expiry: 200 }, ctx))
    expect(ah.s1.latest.state.htlcs.map((h) => h.id)).toEqual([1])
    await expect(ah.s1.settleHtlc(1, new Uint8Array(32).fill(1), ctx)).rejects.toMatchObject({ code: 'BAD_PREIMAGE' })
    await expect(ah.s0.settleHtlc(1, new Uint8Array(32), ctx)).rejects.toMatchObject({ code: 'BAD_TRANSITION' })
    await deliver(ah.s1, ah.s0, await ah.s1.failHtlc(1, ctx))
    expect(ah.s0.balances.mine).toBe(950n)
    // Nor may a payment expire too soon.
    await expect(ah.s0.addHtlc({ amount: 1n, hashLock: lock, expiry: 101 }, ctx)).rejects.toMatchObject({ code: 'BAD_TRANSITION' })
    // One pending payment of mine per lock, proposed or co-signed (a second would pay the invoice
    // twice); the peer's payment with the same lock does not count, and once mine is gone the lock is free.
    const other = sha256(utf8('another invoice'))
    const first = await ah.s0.addHtlc({ amount: 2n, hashLock: other, expiry: 200 }, ctx)
    await expect(ah.s0.addHtlc({ amount: 2n, hashLock: other, expiry: 200 }, ctx)).rejects.toMatchObject({ code: 'DUPLICATE_LOCK' })
    await deliver(ah.s0, ah.s1, first)
    await expect(ah.s0.addHtlc({ amount: 2n, hashLock: other, expiry: 200 }, ctx)).rejects.toMatchObject({ code: 'DUPLICATE_LOCK' })
    await deliver(ah.s1, ah.s0, await ah.s1.addHtlc({ amount: 3n, hashLock: other, expiry: 200 }, ctx))
    const mine = ah.s0.latest.state.htlcs.find((h) => h.from === 0) as { id: number }
    await deliver(ah.s1, ah.s0, await ah.s1.failHtlc(mine.id, ctx))
    await deliver(ah.s0, ah.s1, await ah.s0.addHtlc({ amount: 2n, hashLock: other, expiry: 200 }, ctx))
    expect(ah.s0.latest.state.htlcs.filter((h) => h.from === 0)).toHaveLength(1)
  })

  it('forgets a preimage when asked, unless a payment locked with it is pending or proposed', async () => {
    const { s0, s1 } = pair(41)
    const preimage = new Uint8Array(32).fill(5)
    const lock = s1.rememberPreimage(preimage)
    await deliver(s0, s1, await s0.addHtlc({ amount: 4n, hashLock: lock, expiry: 200 }, ctx))
    // Pending: kept.
    expect(s1.forgetPreimage(lock)).toBe(false)
    const paid = s1.latest.state.htlcs[0] as { id: number }
    const settle = await s1.settleHtlc(paid.id, preimage, ctx)
    // Settled but not countersigned yet (a close with the state before redeems with it): kept.
    expect(s1.forgetPreimage(lock)).toBe(false)
    expect(s1.preimageOf(lock)).toEqual(preimage)
    await deliver(s1, s0, settle)
    expect(s1.latest.state.htlcs).toHaveLength(0)
    expect(s1.forgetPreimage(lock)).toBe(true)
    expect(s1.preimageOf(lock)).toBeUndefined()
    expect(Object.keys(s1.snapshot().preimages)).toHaveLength(0)
    expect(s1.forgetPreimage(lock)).toBe(false)
  })

  it('saves proposals in flight as bytes and restores them exactly: every kind of change, re-sent on hello as first sent', async () => {
    const { s0, s1 } = pair(40)
    const preimage = new Uint8Array(32).fill(9)
    const lock = s1.rememberPreimage(preimage)
    await deliver(s1, s0, await s1.addHtlc({ amount: 20n, hashLock: lock, expiry: 200 }, ctx))
    // In flight from s0: a payment with a memo, a forwarded hash-locked payment, a settle and a plain payment.
    const sent = [
      await s0.pay(3n, ctx, 'rent'),
      await s0.addHtlc({ amount: 7n, hashLock: sha256(new Uint8Array(32)), expiry: 300, next: C.address }, ctx),
      await s0.failHtlc(1, ctx),
      await s0.pay(1n, ctx),
    ]
    const snap = s0.snapshot()
    expect(snap.version).toBe(2)
    expect(snap.inFlight).toBeInstanceOf(Uint8Array)
    // One byte string that survives a structured clone (what IndexedDB keeps).
    const r0 = ChannelSession.restore(structuredClone(snap), providerSigner(A.secretKey))
    expect(r0.inFlight).toEqual(s0.inFlight)
    expect(r0.snapshot()).toEqual(snap)
    const [revoke, ...resent] = (await r0.receive(s1.hello(), ctx)).replies
    // First my revocation of the states below the one I acknowledged last (the peer may have missed it), then the proposals.
    expect(revoke).toMatchObject({ t: 'revoke', below: 1 })
    expect(resent.map(encodeChannelWire)).toEqual(sent.map(encodeChannelWire))
    // The peer takes them as if they had come the first time.
    for (const m of resent) await deliver(r0, s1, m)
    expect(r0.latest.state.seq).toBe(5)
    expect(r0.latest).toEqual(s1.latest)
  })

  it('a snapshot taken earlier stays as it was while the session goes on (it shares what the session never changes)', async () => {
    const { s0, s1 } = pair(41)
    const first = await s0.pay(1n, ctx)
    const snap = s0.snapshot()
    const copy = structuredClone(snap)
    await deliver(s0, s1, first)
    for (let i = 0; i < 3; i++) await deliver(s0, s1, await s0.pay(2n, ctx))
    s0.rememberPreimage(new Uint8Array(32).fill(5))
    expect(s0.latest.state.seq).toBe(4)
    expect(snap).toEqual(copy)
  })

  it('restores a version 1 snapshot (proposals in flight as objects), and refuses an unknown version or damaged proposals as MALFORMED', async () => {
    const { s0, s1 } = pair(42)
    await deliver(s0, s1, await s0.pay(10n, ctx))
    const u = await s0.pay(5n, ctx)
    const { inFlight: _, ...rest } = s0.snapshot()
    const v1 = structuredClone({ ...rest, version: 1 as const, inFlight: s0.inFlight })
    const r0 = ChannelSession.restore(v1, providerSigner(A.secretKey))
    expect(r0.inFlight).toEqual(s0.inFlight)
    expect(r0.snapshot()).toEqual(s0.snapshot())
    expect((await r0.receive(s1.hello(), ctx)).replies.map(encodeChannelWire)).toEqual([
      encodeChannelWire({
        t: 'revoke',
        channelId: s0.channelId,
        below: 1,
        signature: (r0.snapshot().myRevocation as ChannelRevocation).signature,
      }),
      encodeChannelWire(u),
    ])

    const good = s0.snapshot()
    for (const bad of [
      { ...good, version: 3 },
      { ...good, inFlight: good.inFlight.subarray(0, good.inFlight.length - 1) },
    ])
      expect(() => ChannelSession.restore(bad as typeof good, providerSigner(A.secretKey))).toThrow(
        expect.objectContaining({ code: 'MALFORMED' }),
      )
  })

  it('restores from a snapshot mid-stream, and a crash between persisting and sending converges after hello/sync', async () => {
    const { s0, s1, channelId, keys, total } = pair(10)
    for (let i = 0; i < 5; i++) await deliver(s0, s1, await s0.pay(1n, ctx))
    // s1 persists, then "crashes" before its ack leaves: s0 still has the proposal in flight.
    const u = await s0.pay(4n, ctx)
    await s1.receive(u, ctx)
    const persisted = s1.snapshot()
    const s1b = ChannelSession.restore(persisted, providerSigner(B.secretKey))
    // Reconnect: both say hello.
    await deliver(s1b, s0, s1b.hello())
    await deliver(s0, s1b, s0.hello())
    expect(s0.inFlight).toHaveLength(0)
    expect(s0.latest).toEqual(s1b.latest)
    expect(s0.latest.state.seq).toBe(6)
    expect(checkSignedChannelState(s1b.latest, channelId, total, keys)).toBeUndefined()
    // And payments continue.
    await deliver(s1b, s0, await s1b.pay(1n, ctx))
    expect(s0.latest.state.seq).toBe(7)
  })

  it('agrees a final state for a cooperative close; nothing follows it', async () => {
    const { s0, s1, channelId, keys, total } = pair(11)
    await deliver(s0, s1, await s0.pay(100n, ctx))
    const ev = await deliver(s1, s0, await s1.proposeClose(ctx))
    const agreed = ev.find((e) => e.type === 'closeAgreed')
    expect(agreed).toBeDefined()
    expect(s0.latest.state.final).toBe(true)
    expect(checkSignedChannelState(s0.latest, channelId, total, keys)).toBeUndefined()
    await expect(s0.pay(1n, ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
  })

  it('each party revokes the states below its latest co-signed one, never that one; a forged or foreign revocation is refused', async () => {
    const { s0, s1, channelId, keys } = pair(13)
    for (let i = 0; i < 3; i++) await deliver(s0, s1, await s0.pay(5n, ctx))
    await deliver(s1, s0, await s1.pay(2n, ctx))
    expect(s0.latest.state.seq).toBe(4)
    // Each holds the other's revocation of everything below 4: a close by the other with state 3 is stale, one with 4 is not.
    for (const [s, peer] of [
      [s0, 1],
      [s1, 0],
    ] as const) {
      const r = s.peerRevocation as ChannelRevocation
      expect(r.below).toBe(4)
      expect(checkChannelRevocation(r, channelId, peer, 3, keys[peer])).toBeUndefined()
      expect(checkChannelRevocation(r, channelId, peer, 4, keys[peer])).toBe('the revocation covers the states below 4, not state 4')
    }
    // A revocation the peer did not sign, or one for another channel, is refused and changes nothing.
    const before = s0.snapshot()
    const good = s0.peerRevocation as ChannelRevocation
    const forged = { t: 'revoke', channelId, below: 9, signature: good.signature } as const
    await expect(s0.receive(forged, ctx)).rejects.toMatchObject({ code: 'BAD_SIGNATURE' })
    await expect(s0.receive({ ...forged, channelId: new Uint8Array(32).fill(99) }, ctx)).rejects.toMatchObject({ code: 'WRONG_CHANNEL' })
    expect(s0.snapshot()).toEqual(before)
    // One older than held (re-sent after a reconnect) changes nothing either.
    expect(await s0.receive({ t: 'revoke', channelId, below: 2, signature: good.signature }, ctx)).toEqual({
      replies: [],
      persist: false,
      events: [],
    })
    // It survives a snapshot and a restore.
    expect(ChannelSession.restore(structuredClone(s0.snapshot()), providerSigner(A.secretKey)).peerRevocation).toEqual(good)
  })

  it('once settling on chain, a party signs nothing: no acknowledgement, revocation, countersignature or proposal, nothing sent again', async () => {
    const { s0, s1, channelId } = pair(16)
    await deliver(s0, s1, await s0.pay(10n, ctx))
    // s0 has a proposal in flight when it decides to close alone with state 1.
    const inFlight = await s0.pay(20n, ctx)
    await s0.endOffChain()
    expect(s0.onChain).toBe(true)
    const before = s0.snapshot()
    // The peer acknowledges it now: taken, it would bring s0's revocation of state 1, the one it closes with.
    const ack = (await s1.receive(inFlight, ctx)).replies[0] as ChannelWire
    expect(ack.t).toBe('ack')
    await expect(s0.receive(ack, ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
    await expect(s0.receive({ t: 'sync', signed: s1.latest }, ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
    await expect(s0.receive(await s1.pay(1n, ctx), ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
    await expect(s0.pay(1n, ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
    // A hello gets nothing back: no proposal sent again, no revocation.
    expect(await s0.receive({ t: 'hello', channelId, seq: 1 }, ctx)).toEqual({ replies: [], persist: false, events: [] })
    expect(s0.snapshot()).toEqual(before)
    expect(s0.snapshot().myRevocation?.below).toBe(1)
    // And so once restored.
    const r0 = ChannelSession.restore(structuredClone(s0.snapshot()), providerSigner(A.secretKey))
    expect(r0.onChain).toBe(true)
    await expect(r0.receive(ack, ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
  })

  it('a party that proposed a final state signs no other state, even when the close is refused or the peer proposed at once', async () => {
    const { s0, s1 } = pair(14)
    await deliver(s0, s1, await s0.pay(100n, ctx))
    // Both propose state 2 at once: party 1 a close, party 0 a payment.
    const close = await s1.proposeClose(ctx)
    const pay = await s0.pay(7n, ctx)
    expect(s1.closing).toBe(true)
    // Party 1 does not sign party 0's state (it would let party 0 hold a final state 2 and a later state);
    // party 0 refuses the close as a conflict (party 0's proposal stands).
    await expect(s1.receive(pay, ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
    await expect(s0.receive(close, ctx)).rejects.toMatchObject({ code: 'CONFLICT' })
    // After the refusal party 1 still proposes nothing and acknowledges nothing, also once restored.
    const refusal = (u: ChannelWire, code: string): ChannelWire => {
      const { channelId, seq, signature } = u as Ack
      return { t: 'reject', channelId, seq, signature, code, reason: 'test' }
    }
    await s1.receive(refusal(close, 'CONFLICT'), ctx)
    expect(s1.inFlight).toHaveLength(0)
    const r1 = ChannelSession.restore(structuredClone(s1.snapshot()), providerSigner(B.secretKey))
    let offered = pay
    for (const s of [s1, r1]) {
      expect(s.closing).toBe(true)
      await expect(s.pay(1n, ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
      await expect(s.proposeClose(ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
      await s0.receive(refusal(offered, 'CHANNEL_CLOSED'), ctx)
      expect(s0.inFlight).toHaveLength(0)
      offered = await s0.pay(3n, ctx)
      await expect(s.receive(offered, ctx)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
      expect(s.latest.state.seq).toBe(1)
    }
  })
})

describe('channel driver', () => {
  it('a proposal built on an update whose acknowledgement waits for a save leaves after that acknowledgement, and not at all once the channel goes on chain meanwhile', async () => {
    for (const onChain of [false, true]) {
      const { s0, s1 } = pair(onChain ? 24 : 23)
      const sent: string[] = []
      // The first save waits to be released; the later ones do not.
      let release = () => {}
      let slow = true
      const d1 = new ChannelDriver(s1, {
        send: (m) => sent.push(m.t === 'update' ? `update ${m.seq}` : `${m.t} ${'seq' in m ? m.seq : ''}`),
        save: () =>
          slow
            ? new Promise<void>((r) => {
                release = () => {
                  slow = false
                  r()
                }
              })
            : Promise.resolve(),
        height: () => 100,
      })
      // Party 0's payment arrives; its save is slow. Party 1 pays back meanwhile, on the state it just countersigned.
      const handled = d1.receive(await s0.pay(5n, ctx))
      await new Promise((r) => setTimeout(r, 5))
      const back = d1.pay(1n)
      back.catch(() => undefined)
      await new Promise((r) => setTimeout(r, 5))
      expect(sent).toEqual([])
      const ended = onChain ? d1.endOffChain() : undefined
      release()
      await handled
      await ended
      await new Promise((r) => setTimeout(r, 5))
      if (onChain) {
        // Its payer was told it failed: it never leaves.
        await expect(back).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
        expect(sent.filter((x) => x.startsWith('update'))).toEqual([])
      } else {
        expect(sent).toContain('update 2')
        expect(sent.indexOf('update 2')).toBeGreaterThan(sent.indexOf('ack 1'))
        expect(sent[0]).toBe('ack 1')
      }
    }
  })

  it('what a hello brings back leaves only after the save of the state it follows', async () => {
    const { s0, s1, channelId } = pair(17)
    const log: string[] = []
    let release = () => {}
    const d1 = new ChannelDriver(s1, {
      send: (m) => log.push(`send ${m.t}`),
      save: async () => {
        log.push('save started')
        await new Promise<void>((r) => {
          release = r
        })
        log.push('saved')
      },
      height: () => 100,
    })
    // An update arrives: its save is slow. A hello comes meanwhile: the revocation it would send
    // again is of the state being saved.
    const handled = d1.receive(await s0.pay(5n, ctx))
    await new Promise((r) => setTimeout(r, 5))
    const hello = d1.receive({ t: 'hello', channelId, seq: 0 })
    await new Promise((r) => setTimeout(r, 5))
    expect(log).toEqual(['save started'])
    release()
    await new Promise((r) => setTimeout(r, 5))
    release()
    await Promise.all([handled, hello])
    expect(log.filter((x) => x.startsWith('send'))).toEqual(['send ack', 'send revoke', 'send sync', 'send revoke'])
    expect(log.indexOf('send ack')).toBeGreaterThan(log.indexOf('saved'))
  })

  it('after a failed save nothing that waited for it leaves until a save succeeds', async () => {
    const { s0, s1, channelId } = pair(19)
    const log: string[] = []
    let fail = true
    const d1 = new ChannelDriver(s1, {
      send: (m) => log.push(`send ${m.t}`),
      save: async () => {
        if (fail) {
          fail = false
          log.push('save failed')
          throw new Error('disk full')
        }
        log.push('saved')
      },
      height: () => 100,
    })
    await expect(d1.receive(await s0.pay(5n, ctx))).rejects.toThrow('disk full')
    // A hello now: its revocation follows state 1, which is not on disk. It waits, with the ack, for the next save.
    await d1.receive({ t: 'hello', channelId, seq: 0 })
    expect(log).toEqual(['save failed', 'saved', 'send ack', 'send revoke', 'send sync', 'send revoke'])
  })

  it('a preimage remembered through the driver is on disk when it resolves', async () => {
    const { s0 } = pair(18)
    const saves: boolean[] = []
    const d0 = new ChannelDriver(s0, {
      send: () => {},
      save: async (snap, durable) => {
        saves.push(durable)
        expect(Object.keys(snap.preimages)).toHaveLength(1)
      },
      height: () => 100,
    })
    const preimage = new Uint8Array(32).fill(7)
    expect(await d0.rememberPreimage(preimage)).toEqual(sha256(preimage))
    expect(saves).toEqual([true])
    expect(s0.preimageOf(sha256(preimage))).toEqual(preimage)
  })

  it('a final state leaves only once saved on disk with the mark that nothing else is signed', async () => {
    const { s0 } = pair(15)
    const log: string[] = []
    const d0 = new ChannelDriver(s0, {
      send: (m) => log.push(`send ${m.t}`),
      save: async (snap, durable) => {
        await new Promise((r) => setTimeout(r, 5))
        log.push(`save closing=${snap.closing === true} durable=${durable} inFlight=${snap.inFlight.length > 0}`)
      },
      height: () => 100,
    })
    void d0.proposeClose().catch(() => undefined)
    await new Promise((r) => setTimeout(r, 30))
    expect(log).toEqual(['save closing=true durable=true inFlight=true', 'send update'])
    d0.abandon('test over')
  })

  it('saves before it acknowledges, groups saves under load, and resolves payments once countersigned', async () => {
    const { s0, s1 } = pair(12)
    const saved: { who: number; seq: number }[] = []
    const wire: { to: number; m: ChannelWire }[] = []
    // A slow store (like IndexedDB, a save completes in a later task), so several states arrive during one save.
    const slowSave = (who: number) => async (snap: { latest: { state: { seq: number } } }) => {
      await new Promise((r) => setTimeout(r, 5))
      saved.push({ who, seq: snap.latest.state.seq })
    }
    const d0 = new ChannelDriver(s0, { send: (m) => wire.push({ to: 1, m }), save: slowSave(0), height: () => 100 })
    const d1 = new ChannelDriver(s1, {
      send: (m) => {
        // Every ack leaves only after a save that covers its state.
        if (m.t === 'ack') expect(saved.filter((x) => x.who === 1).some((x) => x.seq >= m.seq)).toBe(true)
        wire.push({ to: 0, m })
      },
      save: slowSave(1),
      height: () => 100,
    })
    const pays = Array.from({ length: 30 }, () => d0.pay(1n))
    // Pump the wire as a link does: each message handed over as it arrives, without waiting for the last one's save.
    const handling = await pump(wire, [d0, d1], { overlap: true, idleTicks: 20 })
    await Promise.all([...pays, ...handling])
    expect(s0.latest.state.seq).toBe(30)
    expect(s1.latest).toEqual(s0.latest)
    // Fewer saves than states on the receiving side: the group commit batched them.
    expect(saved.filter((x) => x.who === 1).length).toBeLessThan(30)
    expect(saved.filter((x) => x.who === 1).at(-1)?.seq).toBe(30)
  })

  it('answers a refused update with a reject, and the payer’s promise rejects', async () => {
    const { s0, s1 } = pair(13)
    const wire: { to: number; m: ChannelWire }[] = []
    const d0 = new ChannelDriver(s0, { send: (m) => wire.push({ to: 1, m }), save: async () => {}, height: () => 100 })
    const refused: string[] = []
    const d1 = new ChannelDriver(s1, {
      send: (m) => wire.push({ to: 0, m }),
      save: async () => {},
      height: () => 100,
      onRefused: (e) => refused.push(e.code),
    })
    const p = d0.pay(5n)
    await new Promise((r) => setTimeout(r, 0))
    const u = wire.shift()?.m as Extract<ChannelWire, { t: 'update' }>
    // The payee finds that the signature does not sign the state this change makes (it claims 6, not 5).
    await d1.receive({ ...u, change: { kind: 'pay', amount: 6n } })
    expect(refused).toEqual(['BAD_SIGNATURE'])
    const reject = wire.shift()?.m
    expect(reject?.t).toBe('reject')
    // A refusal names the proposal by its signature: one of another proposal under that number changes nothing.
    await d0.receive({ ...(reject as Extract<ChannelWire, { t: 'reject' }>), signature: new Uint8Array(64) })
    expect(s0.inFlight).toHaveLength(1)
    await d0.receive(reject as ChannelWire)
    await expect(p).rejects.toMatchObject({ code: 'CONFLICT' })
    expect(s0.inFlight).toHaveLength(0)
  })
})

/** A signer that takes its time, as WebCrypto's promises do; `started` resolves at its first signature. */
function slowSigner(secretKey: Uint8Array): { slow: ChannelSigner; started: Promise<void> } {
  const inner = providerSigner(secretKey)
  let signing!: () => void
  const started = new Promise<void>((r) => {
    signing = r
  })
  const slow: ChannelSigner = {
    name: 'slow',
    sign: async (m) => {
      signing()
      await new Promise((r) => setTimeout(r, 20))
      return inner.sign(m)
    },
    verify: (sig, m, k) => inner.verify(sig, m, k),
  }
  return { slow, started }
}

/** A signer that counts its verifications. */
function counting(secretKey: Uint8Array): ChannelSigner & { verified: number } {
  const inner = providerSigner(secretKey)
  const c = {
    name: 'counting',
    verified: 0,
    sign: (m: Uint8Array) => inner.sign(m),
    verify: (sig: Uint8Array, m: Uint8Array, k: Uint8Array) => {
      c.verified++
      return inner.verify(sig, m, k)
    },
  }
  return c
}

type Update = Extract<ChannelWire, { t: 'update' }>
/** The updates of proposals that were all accepted. */
const wires = (out: readonly ChannelProposal[]): Update[] =>
  out.map((o) => {
    if (o.error !== undefined) throw o.error
    return o.wire as Update
  })
type Ack = Extract<ChannelWire, { t: 'ack' }>
const settle = <T>(ps: Promise<T>[]) =>
  Promise.all(
    ps.map((p) =>
      p.then(
        (value) => ({ value }),
        (e: ChannelProtocolError) => ({ code: e.code }),
      ),
    ),
  )

describe('channel session bursts', () => {
  it('a give-back made for a payment by its lock is refused once another payment took its id, also when made later than asked', async () => {
    const { s0, s1 } = pair(21, A, B, [100n, 0n])
    const first = sha256(utf8('first'))
    const second = sha256(utf8('second'))
    await deliver(s0, s1, await s0.addHtlc({ amount: 5n, hashLock: first, expiry: 200 }, ctx))
    // Asked for while payment 1 is the first one; made (proposeMany) after it left and the second took id 1.
    const late = s1.failMaker(1, first)
    await deliver(s1, s0, await s1.failHtlc(1, ctx))
    await deliver(s0, s1, await s0.addHtlc({ amount: 7n, hashLock: second, expiry: 200 }, ctx))
    expect(s1.latest.state.htlcs.map((h) => h.id)).toEqual([1])
    const [refused] = await s1.proposeMany([late], ctx)
    expect(refused?.error?.code).toBe('NOT_PENDING')
    expect(s1.inFlight).toHaveLength(0)
    // Made for the payment the id holds, it gives that one back.
    const [ok] = await s1.proposeMany([s1.failMaker(1, second)], ctx)
    expect(ok?.error).toBeUndefined()
    await deliver(s1, s0, (ok as { wire: Update }).wire)
    expect(s0.latest.state.htlcs).toEqual([])
    expect(s0.balances.mine).toBe(100n)
  })

  it('proposes several changes at once: each builds on the last accepted, a refused one changes nothing', async () => {
    const { s0, s1 } = pair(20, A, B, [100n, 0n])
    const out = await s0.proposeMany(
      [
        () => ({ kind: 'pay', amount: 5n }),
        () => ({ kind: 'pay', amount: 1000n }),
        () => ({ kind: 'pay', amount: 0n }),
        () => ({ kind: 'pay', amount: 7n }),
        s0.htlcMaker({ amount: 3n, hashLock: sha256(utf8('x')), expiry: 200 }),
      ],
      ctx,
    )
    expect(out.map((o) => (o.error === undefined ? (o.wire as Update).seq : o.error.code))).toEqual([
      1,
      'INSUFFICIENT_BALANCE',
      'BAD_TRANSITION',
      2,
      3,
    ])
    expect(s0.inFlight.map((f) => f.state.balances[0])).toEqual([95n, 88n, 85n])
    for (const o of out) if (o.error === undefined) await deliver(s0, s1, o.wire)
    expect(s1.latest).toEqual(s0.latest)
    expect(s1.latest.state.htlcs.map((h) => h.id)).toEqual([1])
    // The window counts what the batch itself adds.
    const { s0: rich } = pair(21, A, B, [10_000n, 0n])
    const many = await rich.proposeMany(
      Array.from({ length: MAX_IN_FLIGHT + 1 }, () => () => ({ kind: 'pay', amount: 1n }) as const),
      ctx,
    )
    expect(many.filter((o) => o.error === undefined)).toHaveLength(MAX_IN_FLIGHT)
    expect(many.at(-1)?.error?.code).toBe('TOO_MANY_IN_FLIGHT')
  })

  it('a run of updates received back to back ends exactly where one at a time does, signatures included', async () => {
    const run = pair(22)
    const one = pair(22)
    const updates = wires(
      await run.s0.proposeMany(
        Array.from({ length: 12 }, (_, i) => () => ({ kind: 'pay', amount: BigInt(i + 1) }) as const),
        ctx,
      ),
    )
    await one.s0.proposeMany(
      Array.from({ length: 12 }, (_, i) => () => ({ kind: 'pay', amount: BigInt(i + 1) }) as const),
      ctx,
    )
    // Back to back (not awaited): the session takes them as runs.
    const results = await Promise.all(updates.map((u) => run.s1.receive(u, ctx)))
    const alone = []
    for (const u of updates) alone.push(await one.s1.receive(u, ctx))
    // The same acknowledgements and events; one revocation for the run where one at a time revokes
    // at each step, ending with the same one.
    const acks = (rs: ReceiveResult[]) => rs.map((r) => ({ ...r, replies: r.replies.filter((w) => w.t === 'ack') }))
    const revokes = (rs: ReceiveResult[]) => rs.flatMap((r) => r.replies.filter((w) => w.t === 'revoke'))
    expect(acks(results)).toEqual(acks(alone))
    expect(revokes(results)).toEqual(revokes(alone).slice(-1))
    expect(revokes(alone)).toHaveLength(12)
    expect(results.map((r) => (r.replies[0] as Ack).seq)).toEqual(updates.map((u) => u.seq))
    expect(run.s1.snapshot()).toEqual(one.s1.snapshot())
    expect(checkSignedChannelState(run.s1.latest, run.channelId, run.total, run.keys)).toBeUndefined()
  })

  it('a run of updates is checked through its last signature; a bad last one is found one at a time, a superseded one is never kept', async () => {
    const signer = counting(B.secretKey)
    const { s0, s1, channelId, keys } = pair(23, A, B, [1000n, 0n], undefined, signer)
    const propose = async (n: number) =>
      wires(
        await s0.proposeMany(
          Array.from({ length: n }, () => () => ({ kind: 'pay', amount: 2n }) as const),
          ctx,
        ),
      )
    const confirm = async (acks: ChannelWire[]) => {
      for (const a of acks) await s0.receive(a, ctx)
    }

    // Eight good updates: one verification, eight countersignatures, the newest state co-signed.
    let updates = await propose(8)
    signer.verified = 0
    const ok = await Promise.all(updates.map((u) => s1.receive(u, ctx)))
    expect(signer.verified).toBe(1)
    expect(ok.map((r) => (r.replies[0] as Ack).seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    expect(checkSignedChannelState(s1.latest, channelId, 1000n, keys)).toBeUndefined()
    await confirm(ok.map((r) => r.replies[0] as Ack))
    expect(s0.latest).toEqual(s1.latest)

    // A forged last one: the run is retaken one at a time; the seven before it stand, it is refused.
    updates = await propose(8)
    const forged = updates.map((u, i) => (i === 7 ? { ...u, signature: new Uint8Array(64).fill(9) } : u))
    const out = await settle(forged.map((u) => s1.receive(u, ctx)))
    expect(out.map((o) => ('code' in o ? o.code : 'ok'))).toEqual([...Array(7).fill('ok'), 'BAD_SIGNATURE'])
    expect(s1.latest.state.seq).toBe(15)
    expect(checkSignedChannelState(s1.latest, channelId, 1000n, keys)).toBeUndefined()
    // The genuine update goes on from there.
    const r = await s1.receive(updates[7] as Update, ctx)
    expect((r.replies[0] as Ack).seq).toBe(16)
    await confirm([...out.slice(0, 7).map((o) => ('value' in o ? o.value.replies[0] : undefined) as Ack), r.replies[0] as Ack])

    // A forged one inside the run is superseded by the good last one in the same step: the kept
    // state carries the proposer's genuine last signature, and every state was countersigned.
    updates = await propose(5)
    const inner = updates.map((u, i) => (i === 2 ? { ...u, signature: new Uint8Array(64).fill(4) } : u))
    const acks = (await Promise.all(inner.map((u) => s1.receive(u, ctx)))).map((x) => x.replies[0] as Ack)
    expect(acks.map((a) => a.seq)).toEqual([17, 18, 19, 20, 21])
    expect(s1.latest.state.seq).toBe(21)
    expect(s1.latest.signatures[0]).toEqual((updates[4] as Update).signature)
    expect(checkSignedChannelState(s1.latest, channelId, 1000n, keys)).toBeUndefined()
    await confirm(acks)
    expect(s0.latest).toEqual(s1.latest)
  })

  it('a run of acknowledgements is checked through its last countersignature; a bad last one is found one at a time', async () => {
    const signer = counting(A.secretKey)
    const { s0, s1, channelId, keys } = pair(24, A, B, [1000n, 0n], signer)
    const propose = async (n: number) =>
      wires(
        await s0.proposeMany(
          Array.from({ length: n }, () => () => ({ kind: 'pay', amount: 1n }) as const),
          ctx,
        ),
      )
    const acksFor = async (us: Update[]) => (await Promise.all(us.map((u) => s1.receive(u, ctx)))).map((r) => r.replies[0] as Ack)

    // Ten good acks: one verification, every proposal confirmed, the newest state co-signed.
    let acks = await acksFor(await propose(10))
    signer.verified = 0
    const events = (await Promise.all(acks.map((a) => s0.receive(a, ctx)))).flatMap((r) => r.events)
    expect(signer.verified).toBe(1)
    expect(events.filter((e) => e.type === 'confirmed').map((e) => (e as { seq: number }).seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(s0.inFlight).toHaveLength(0)
    expect(checkSignedChannelState(s0.latest, channelId, 1000n, keys)).toBeUndefined()

    // A forged last one: the run is retaken one at a time; the nine before it stand, it is refused.
    acks = await acksFor(await propose(10))
    const bad = acks.map((a, i) => (i === 9 ? { ...a, signature: new Uint8Array(64).fill(3) } : a))
    const out = await settle(bad.map((a) => s0.receive(a, ctx)))
    expect(out.map((o) => ('code' in o ? o.code : 'ok'))).toEqual([...Array(9).fill('ok'), 'BAD_SIGNATURE'])
    expect(s0.latest.state.seq).toBe(19)
    expect(s0.inFlight.map((f) => f.state.seq)).toEqual([20])
    expect(checkSignedChannelState(s0.latest, channelId, 1000n, keys)).toBeUndefined()
    // The genuine one still confirms it.
    await s0.receive(acks[9] as Ack, ctx)
    expect(s0.latest.state.seq).toBe(20)

    // A forged one inside the run is superseded by the good last one: never kept, so never checked.
    acks = await acksFor(await propose(5))
    const inner = acks.map((a, i) => (i === 2 ? { ...a, signature: new Uint8Array(64).fill(4) } : a))
    await Promise.all(inner.map((a) => s0.receive(a, ctx)))
    expect(s0.latest.state.seq).toBe(25)
    expect(s0.latest.signatures[1]).toEqual((acks[4] as Ack).signature)
    expect(checkSignedChannelState(s0.latest, channelId, 1000n, keys)).toBeUndefined()
  })

  it('a preimage remembered while an update or a refused message is being checked is kept', async () => {
    // A signer that takes its time, as WebCrypto's promises do.
    const inner = providerSigner(B.secretKey)
    const slow: ChannelSigner = {
      name: 'slow',
      sign: (m) => inner.sign(m),
      verify: async (sig, m, k) => {
        await new Promise((r) => setTimeout(r, 5))
        return inner.verify(sig, m, k)
      },
    }
    const { s0 } = pair(31)
    const s1 = ChannelSession.create({
      me: 1,
      channelId: s0.channelId,
      keys: [A.publicKey, B.publicKey],
      deposits: [1000n, 1000n],
      signer: slow,
    })
    const u = await s0.pay(3n, ctx)
    const accepted = s1.receive(u, ctx)
    await new Promise((r) => setTimeout(r, 1))
    const lock1 = s1.rememberPreimage(utf8('one'))
    await accepted
    expect(s1.latest.state.seq).toBe(1)
    const refused = s1.receive({ ...(u as Update), seq: 2, signature: new Uint8Array(64) }, ctx)
    await new Promise((r) => setTimeout(r, 1))
    const lock2 = s1.rememberPreimage(utf8('two'))
    await expect(refused).rejects.toMatchObject({ code: 'BAD_SIGNATURE' })
    expect(s1.preimageOf(lock1)).toEqual(utf8('one'))
    expect(s1.preimageOf(lock2)).toEqual(utf8('two'))
    expect(Object.keys(s1.snapshot().preimages)).toHaveLength(2)
  })

  it('runs are at most MAX_RUN long and keep their place among other messages', async () => {
    const signer = counting(A.secretKey)
    const { s0, s1 } = pair(25, A, B, [10_000n, 0n], signer)
    const n = MAX_RUN * 2 + 3
    const us = wires(
      await s0.proposeMany(
        Array.from({ length: n }, () => () => ({ kind: 'pay', amount: 1n }) as const),
        ctx,
      ),
    )
    const acks = (await Promise.all(us.map((u) => s1.receive(u, ctx)))).map((r) => r.replies[0] as Ack)
    const msg = await s1.message(utf8('hello'))
    signer.verified = 0
    // Acks, a message in the middle, more acks: three runs of acks around the message (its own check).
    const half = MAX_RUN + 10
    const got = await Promise.all([
      ...acks.slice(0, half).map((a) => s0.receive(a, ctx)),
      s0.receive(msg, ctx),
      ...acks.slice(half).map((a) => s0.receive(a, ctx)),
    ])
    // Runs of MAX_RUN and 10 before the message, and of the other 57 after it: one verification
    // each, and one for the message.
    expect(signer.verified).toBe(4)
    expect(got[half]?.events).toEqual([{ type: 'message', seq: 1, body: utf8('hello') }])
    expect(s0.latest.state.seq).toBe(n)
  })
})

describe('channel driver bursts', () => {
  it('makes queued payments in batches of MAX_RUN, sent in order, each batch signed before any of it leaves', async () => {
    const { s0 } = pair(26, A, B, [10_000n, 0n])
    const sent: { seq: number; inFlight: number }[] = []
    const d0 = new ChannelDriver(s0, {
      send: (m) => sent.push({ seq: (m as Update).seq, inFlight: s0.inFlight.length }),
      save: async () => {},
      height: () => 100,
    })
    const n = MAX_RUN + 36
    const pays = Array.from({ length: n }, () => d0.pay(1n))
    await new Promise((r) => setTimeout(r, 20))
    expect(sent.map((x) => x.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1))
    // One at a time, the first would leave with 1 in flight; a batch leaves with all of it in flight.
    expect(sent.map((x) => x.inFlight)).toEqual([...Array(MAX_RUN).fill(MAX_RUN), ...Array(36).fill(n)])
    d0.abandon('test over')
    expect((await settle(pays)).every((o) => 'code' in o && o.code === 'CHANNEL_CLOSED')).toBe(true)
  })

  it('after a restore, proposals wait for the peer’s hello: a proposal lost with the crash comes back by sync, its number is never signed twice', async () => {
    const { s0, s1 } = pair(28, A, B, [1000n, 1000n])
    await deliver(s0, s1, await s0.pay(10n, ctx))
    // Saved here; then a payment of 5 leaves, the peer countersigns it, and the page dies before saving again.
    const saved = s0.snapshot()
    await s1.receive(await s0.pay(5n, ctx), ctx)
    expect(s1.latest.state.seq).toBe(2)

    const r0 = ChannelSession.restore(saved, providerSigner(A.secretKey))
    expect(r0.restored).toBe(true)
    const wire: { to: 0 | 1; m: ChannelWire }[] = []
    const sentByMe: ChannelWire[] = []
    const d0 = new ChannelDriver(r0, {
      send: (m) => {
        sentByMe.push(m)
        wire.push({ to: 1, m })
      },
      save: async () => {},
      height: () => 100,
    })
    const d1 = new ChannelDriver(s1, { send: (m) => wire.push({ to: 0, m }), save: async () => {}, height: () => 100 })
    const paid = d0.pay(7n)
    await new Promise((r) => setTimeout(r, 10))
    // Nothing proposed yet: state 2 would be signed a second time, with another change.
    expect(sentByMe).toEqual([])
    // The link comes up: both say hello; the peer, ahead, sends state 2 back, then the payment goes as state 3.
    d0.hello()
    d1.hello()
    await pump(wire, [d0, d1], { overlap: false, idleTicks: 5 })
    await paid
    const updates = sentByMe.filter((m) => m.t === 'update') as Update[]
    expect(updates.map((u) => u.seq)).toEqual([3])
    expect(r0.latest).toEqual(s1.latest)
    expect(r0.latest.state.balances).toEqual([1000n - 10n - 5n - 7n, 1000n + 10n + 5n + 7n])
    // A session that was never restored proposes at once.
    const { s0: fresh } = pair(29)
    const out: ChannelWire[] = []
    const df = new ChannelDriver(fresh, { send: (m) => out.push(m), save: async () => {}, height: () => 100 })
    void df.pay(1n).catch(() => undefined)
    await new Promise((r) => setTimeout(r, 10))
    expect(out.map((m) => m.t)).toEqual(['update'])
    df.abandon('test over')
  })

  it('a save that an acknowledgement, a revocation or a message waits for is durable; one that only records the peer’s revocation is not', async () => {
    const { s0, s1 } = pair(30)
    const saves: { who: number; durable: boolean; seq: number }[] = []
    const wire: { to: 0 | 1; m: ChannelWire }[] = []
    const io = (who: 0 | 1) => ({
      send: (m: ChannelWire) => wire.push({ to: who === 0 ? 1 : 0, m }),
      save: async (snap: { latest: { state: { seq: number } } }, durable: boolean) => {
        saves.push({ who, durable, seq: snap.latest.state.seq })
      },
      height: () => 100,
      later: (f: () => void, ms: number) => void setTimeout(f, ms),
    })
    const d = [new ChannelDriver(s0, io(0)), new ChannelDriver(s1, io(1))] as const
    const pump = async () => {
      for (let next = wire.shift(); next !== undefined; next = wire.shift()) await d[next.to].receive(next.m)
    }
    const paid = d[0].pay(4n)
    await new Promise((r) => setTimeout(r, 0))
    await pump()
    await paid
    const later = async () => {
      await new Promise((r) => setTimeout(r, LAZY_SAVE_MS + 30))
      await pump()
    }
    // The payee saved before its acknowledgement (and revocation); the payer's save is put off.
    expect(saves).toEqual([{ who: 1, durable: true, seq: 1 }])
    expect(s0.peerRevocation?.below).toBe(1)
    expect(s1.peerRevocation).toBeUndefined()
    // A moment later the payer saves, durably, and only then sends its own revocation.
    await later()
    expect(saves[1]).toEqual({ who: 0, durable: true, seq: 1 })
    expect(s1.peerRevocation?.below).toBe(1)
    // The payee records it in a save nobody waits for, not durable.
    await later()
    expect(saves.slice(2)).toEqual([{ who: 1, durable: false, seq: 1 }])
    // Payments back to back: one durable save of the payer's covers them all, and its revocation of the last.
    saves.length = 0
    const two = [d[0].pay(1n), d[0].pay(1n)]
    await new Promise((r) => setTimeout(r, 0))
    await pump()
    await Promise.all(two)
    await later()
    await later()
    expect(saves.filter((x) => x.who === 0)).toEqual([{ who: 0, durable: true, seq: 3 }])
    expect(s1.peerRevocation?.below).toBe(3)
    saves.length = 0
    await d[0].message(utf8('hi'))
    expect(saves).toEqual([{ who: 0, durable: true, seq: 3 }])
  })

  it('abandon rejects payments still queued, and none of them is signed or sent', async () => {
    const { s0 } = pair(27)
    const sent: ChannelWire[] = []
    const d0 = new ChannelDriver(s0, { send: (m) => sent.push(m), save: async () => {}, height: () => 100 })
    const p = d0.pay(1n)
    d0.abandon('page closing')
    await expect(p).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
    await new Promise((r) => setTimeout(r, 0))
    expect(sent).toEqual([])
    expect(s0.inFlight).toHaveLength(0)
  })

  it('abandon while a batch is being signed: its payments reject, nothing leaves, and later payments reject at once', async () => {
    const { slow, started } = slowSigner(A.secretKey)
    const { s0 } = pair(43, A, B, [1000n, 1000n], slow)
    const sent: ChannelWire[] = []
    const d0 = new ChannelDriver(s0, { send: (m) => sent.push(m), save: async () => {}, height: () => 100 })
    const paid = settle([d0.pay(1n), d0.pay(2n), d0.pay(3n)])
    await started
    d0.abandon('page closing')
    expect((await paid).map((o) => ('code' in o ? o.code : 'ok'))).toEqual(['CHANNEL_CLOSED', 'CHANNEL_CLOSED', 'CHANNEL_CLOSED'])
    await new Promise((r) => setTimeout(r, 30))
    expect(sent).toEqual([])
    // Signed before the abandon, so kept in flight: a new driver on this session sends them on the next hello.
    expect(s0.inFlight).toHaveLength(3)
    await expect(d0.pay(4n)).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
    await expect(d0.message(utf8('hi'))).rejects.toMatchObject({ code: 'CHANNEL_CLOSED' })
  })

  it('settling on chain while a batch is being signed: its payments reject and none of it leaves', async () => {
    const { slow, started } = slowSigner(A.secretKey)
    const { s0 } = pair(44, A, B, [1000n, 1000n], slow)
    const sent: ChannelWire[] = []
    const d0 = new ChannelDriver(s0, { send: (m) => sent.push(m), save: async () => {}, height: () => 100 })
    const paid = settle([d0.pay(1n), d0.pay(2n)])
    await started
    // The wallet saw the channel closing on chain: an update signed now must not reach the peer,
    // whose acknowledgement would bring back a revocation of the state this party closes with.
    await d0.endOffChain()
    expect((await paid).map((o) => ('code' in o ? o.code : 'ok'))).toEqual(['CHANNEL_CLOSED', 'CHANNEL_CLOSED'])
    await new Promise((r) => setTimeout(r, 50))
    expect(sent.filter((m) => m.t === 'update')).toEqual([])
  })
})
