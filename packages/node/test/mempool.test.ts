import {
  type Address,
  callDataCodec,
  checkTransaction,
  contractAddress,
  DEFAULT_PARAMS,
  decodeTransaction,
  encode,
  keyPairFromSecret,
  LoopchainError,
  sha256,
  signTransaction,
  type Transaction,
  TxKind,
  toHex,
  transactionCodec,
  transactionHash,
  utf8,
} from '@loopchain/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { LIMITED_STEP_BOUND, Mempool, nativeCrypto, rememberingCrypto } from '../src/index.js'

const NOW = 1_767_225_600_000_000
const key = (s: string) => keyPairFromSecret(sha256(utf8(s)))
const [a, b, c] = [key('pool a'), key('pool b'), key('pool c')]
const check = { networkId: 5, timestampWindow: 300_000_000, maxStepLimit: DEFAULT_PARAMS.maxStepLimit }

function tx(from: ReturnType<typeof key>, nonce: number, timestamp = NOW + nonce): Transaction {
  return signTransaction(
    {
      version: 1,
      networkId: 5,
      from: from.address,
      to: c.address,
      value: 1n,
      stepLimit: 10_000,
      timestamp,
      nonce,
      kind: TxKind.Transfer,
      data: new Uint8Array(0),
    },
    from,
  )
}

function pool(nonces: Record<string, number> = {}, opts: Partial<ConstructorParameters<typeof Mempool>[0]> = {}) {
  return new Mempool({ check, crypto: nativeCrypto, accountNonce: async (s: Address) => nonces[s] ?? 0, ...opts })
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    if (e instanceof LoopchainError) return e.code
    throw e
  }
  return 'OK'
}

/** Native crypto that counts its verifications (`verified()`; `reset()` starts again from 0). */
function countingCrypto() {
  let n = 0
  const counting = {
    ...nativeCrypto,
    verify: (...args: Parameters<typeof nativeCrypto.verify>) => {
      n++
      return nativeCrypto.verify(...args)
    },
  }
  const reset = () => {
    n = 0
  }
  return { counting, verified: () => n, reset }
}

describe('mempool', () => {
  it("says a block would carry something only when a sender's next nonce is pooled, not for transactions behind a gap", async () => {
    const nonces: Record<string, number> = { [a.address]: 0 }
    const p = pool(nonces)
    expect(p.hasReady).toBe(false)
    expect(await code(p.add(tx(a, 1), NOW))).toBe('OK') // nonce 0 is missing: stuck
    expect(p.size).toBe(1)
    expect(p.hasReady).toBe(false)
    expect(await p.select(10, 1 << 20, NOW)).toHaveLength(0)
    expect(await code(p.add(tx(a, 0), NOW))).toBe('OK')
    expect(p.hasReady).toBe(true)
    expect(await p.select(10, 1 << 20, NOW)).toHaveLength(2)
    // A block used nonce 0 only: nonce 1 is next and still pooled.
    nonces[a.address] = 1
    await p.prune(NOW)
    expect(p.hasReady).toBe(true)
    nonces[a.address] = 2
    await p.prune(NOW)
    expect([p.size, p.hasReady]).toEqual([0, false])
  })

  it('pools a valid transaction and refuses a replay, a used nonce and a far nonce', async () => {
    const p = pool({ [a.address]: 3 })
    expect(await code(p.add(tx(a, 3), NOW))).toBe('OK')
    expect(await code(p.add(tx(a, 3), NOW))).toBe('DUPLICATE')
    expect(await code(p.add(tx(a, 3, NOW + 99), NOW))).toBe('NONCE_POOLED') // same nonce, other body
    expect(await code(p.add(tx(a, 2), NOW))).toBe('NONCE_TOO_LOW')
    expect(await code(p.add(tx(a, 3 + 65), NOW))).toBe('NONCE_TOO_FAR')
    expect(p.size).toBe(1)
  })

  it('refuses a used or far nonce without verifying, and does not verify again what a proposal check remembered', async () => {
    const { counting, verified } = countingCrypto()
    // As in the node: proposal checks remember valid signatures; the pool reads the same memory
    // without adding to it.
    const shared = rememberingCrypto(counting)
    const p = pool({ [a.address]: 3 }, { crypto: shared.recallOnly })
    // A used nonce (gossip bringing a committed transaction again) and a far one cost no verification.
    expect(await code(p.add(tx(a, 2), NOW))).toBe('NONCE_TOO_LOW')
    expect(await code(p.add(tx(a, 3 + 65), NOW))).toBe('NONCE_TOO_FAR')
    expect(verified()).toBe(0)
    const pooledFirst = tx(a, 3)
    expect(await code(p.add(pooledFirst, NOW))).toBe('OK')
    expect(verified()).toBe(1)
    // What the pool verified is not remembered (the pool itself stands for it).
    expect(shared.verify(pooledFirst.signature, transactionHash(pooledFirst.body), pooledFirst.publicKey)).toBe(true)
    expect(verified()).toBe(2)
    // Verified in a proposal check first, then brought by gossip: pooled without a second verification.
    const inProposal = tx(b, 0)
    checkTransaction(inProposal, { ...check, now: NOW }, shared)
    expect(verified()).toBe(3)
    expect(await code(p.add(inProposal, NOW))).toBe('OK')
    expect(verified()).toBe(3)
    // The same body under another signature is verified, and refused.
    const forged = { ...inProposal, signature: inProposal.signature.map((x, i) => (i === 3 ? x ^ 1 : x)) }
    expect(await code(pool({}, { crypto: shared.recallOnly }).add(forged, NOW))).toBe('BAD_SIGNATURE')
    expect(verified()).toBe(4)
    expect(p.size).toBe(2)
    // What is remembered is the exact (signature, key, message): another message is verified.
    const h = transactionHash(inProposal.body)
    expect(shared.verify(inProposal.signature, h, inProposal.publicKey)).toBe(true)
    expect(verified()).toBe(4)
    const other = h.slice()
    other[31] = (other[31] as number) ^ 1
    expect(shared.verify(inProposal.signature, other, inProposal.publicKey)).toBe(false)
    expect(verified()).toBe(5)
    // Malformed lengths never match a remembered entry, even when their bytes would line up with one.
    expect(shared.verify(inProposal.signature, h, inProposal.publicKey)).toBe(true)
    const shortSig = inProposal.signature.subarray(0, 63)
    expect(shared.verify(shortSig, h, Uint8Array.of(...inProposal.publicKey, 0))).toBe(false)
    const longSig = Uint8Array.of(...inProposal.signature, ...inProposal.publicKey.subarray(0, 1))
    expect(shared.verify(longSig, h, inProposal.publicKey.subarray(1))).toBe(false)
    expect(verified()).toBe(7)
  })

  it('hands out its own object for an exact copy of a pooled transaction, and nothing for a look-alike', async () => {
    const p = pool({ [a.address]: 3 })
    const t = tx(a, 3)
    expect(await code(p.add(t, NOW))).toBe('OK')
    const h = transactionHash(t.body)
    const copy = decodeTransaction(encode(transactionCodec, t))
    expect(copy).not.toBe(t)
    expect(p.pooled(copy, h)).toBe(t)
    expect(p.holds(copy, h)).toBe(true)
    // The same body under another signature, or another key, is not the pooled transaction.
    const otherSig = { ...copy, signature: copy.signature.map((x, i) => (i === 0 ? x ^ 1 : x)) }
    expect(p.pooled(otherSig, h)).toBeUndefined()
    expect(p.holds(otherSig, h)).toBe(false)
    expect(p.pooled({ ...copy, publicKey: b.publicKey }, h)).toBeUndefined()
    // Not pooled at all.
    const t4 = tx(a, 4)
    expect(p.pooled(t4, transactionHash(t4.body))).toBeUndefined()
    // The same from a block's bytes, not decoded: the body's hash, then the key's and signature's bytes.
    const tail = (x: Transaction) => Uint8Array.of(...x.publicKey, ...x.signature)
    expect(p.known(h, tail(copy))).toBe(t)
    expect(p.known(h, tail(otherSig))).toBeUndefined()
    expect(p.known(h, tail({ ...copy, publicKey: b.publicKey }))).toBeUndefined()
    expect(p.known(h, tail(copy).subarray(0, 95))).toBeUndefined()
    expect(p.known(transactionHash(t4.body), tail(t4))).toBeUndefined()
  })

  it('refuses bad signatures, oversized and malformed bytes, and stale timestamps before pooling', async () => {
    const p = pool()
    const t = tx(a, 0)
    const forged = { ...t, signature: t.signature.map((x, i) => (i === 3 ? x ^ 1 : x)) }
    expect(await code(p.add(forged, NOW))).toBe('BAD_SIGNATURE')
    expect(await code(p.add(new Uint8Array(600 * 1024), NOW))).toBe('TOO_LARGE')
    expect(await code(p.add(encode(transactionCodec, t).subarray(1), NOW))).toBe('MALFORMED')
    expect(await code(p.add(t, NOW + 10 * check.timestampWindow))).toBe('TIMESTAMP_TOO_OLD')
    expect(p.size).toBe(0)
  })

  it('refuses after the nonce read, before the signature, what became a duplicate or found the pool full while it waited', async () => {
    const { counting, verified, reset } = countingCrypto()
    // Nonces come from an asynchronous read: all three wait at once, and the first two fill the pool.
    const full = pool({}, { crypto: counting, maxTransactions: 2 })
    expect(await Promise.all([a, b, key('pool d')].map((k) => code(full.add(tx(k, 0), NOW))))).toEqual(['OK', 'OK', 'POOL_FULL'])
    expect(verified()).toBe(2)
    reset()
    const twice = pool({}, { crypto: counting })
    const same = tx(a, 0)
    expect(await Promise.all([code(twice.add(same, NOW)), code(twice.add(encode(transactionCodec, same), NOW))])).toEqual([
      'OK',
      'DUPLICATE',
    ])
    expect(verified()).toBe(1)
  })

  it('enforces permission, per-sender and total limits', async () => {
    // A sender mayTransact says no to is limited: one transaction waiting, and few such in the pool.
    const limits = pool({}, { mayTransact: (s) => s === c.address, maxLimited: 2 })
    expect(await code(limits.add(tx(a, 0), NOW))).toBe('OK')
    expect(await code(limits.add(tx(a, 1), NOW))).toBe('NOT_PERMITTED')
    expect(await code(limits.add(tx(b, 0), NOW))).toBe('OK')
    expect(await code(limits.add(tx(key('pool d'), 0), NOW))).toBe('POOL_FULL')
    expect(await code(limits.add(tx(c, 0), NOW))).toBe('OK') // free: not counted among the limited
    // Once one leaves (its block came), another limited sender fits again.
    expect(await limits.prune(NOW, [tx(a, 0)])).toBe(1)
    expect(await code(limits.add(tx(key('pool d'), 0), NOW))).toBe('OK')
    // A limited sender sends its next nonce only: one behind a gap would hold its place for nothing.
    const e = key('pool e')
    expect(await code(limits.prune(NOW, [tx(b, 0)]).then(() => limits.add(tx(e, 1), NOW)))).toBe('NOT_PERMITTED')
    expect(await code(limits.add(tx(e, 0), NOW))).toBe('OK')
    // A limited sender's transaction uses at most LIMITED_STEP_BOUND steps: a call declaring more
    // is refused (two declaring the largest limit would fill a block's step budget).
    const callOf = (k: ReturnType<typeof key>, stepLimit: number) =>
      signTransaction(
        {
          ...tx(k, 0).body,
          kind: TxKind.Call,
          to: contractAddress(new Uint8Array(32)),
          data: encode(callDataCodec, { method: 'join', params: {} }),
          stepLimit,
        },
        k,
      )
    const f = key('pool f')
    expect(await code(limits.prune(NOW, [tx(e, 0)]).then(() => limits.add(callOf(f, LIMITED_STEP_BOUND + 1), NOW)))).toBe('NOT_PERMITTED')
    expect(await code(limits.add(callOf(f, LIMITED_STEP_BOUND), NOW))).toBe('OK')
    // A transfer counts what it uses, whatever limit it declares.
    expect(
      await code(
        limits
          .prune(NOW, [callOf(f, LIMITED_STEP_BOUND)])
          .then(() => limits.add(signTransaction({ ...tx(f, 0).body, stepLimit: 5_000_000 }, f), NOW)),
      ),
    ).toBe('OK')
    // And limited senders' transactions together take at most maxLimitedBytes of the pool.
    const one = encode(transactionCodec, tx(a, 0)).length
    const byBytes = pool({}, { mayTransact: (s) => s === c.address, maxLimitedBytes: 2 * one })
    expect(await code(byBytes.add(tx(a, 0), NOW))).toBe('OK')
    expect(await code(byBytes.add(tx(b, 0), NOW))).toBe('OK')
    expect(await code(byBytes.add(tx(e, 0), NOW))).toBe('POOL_FULL')
    expect(await code(byBytes.add(tx(c, 0), NOW))).toBe('OK')
    expect(await byBytes.prune(NOW, [tx(a, 0)])).toBe(1)
    expect(await code(byBytes.add(tx(e, 0), NOW))).toBe('OK')
    const small = pool({}, { maxPerSender: 2, maxTransactions: 3 })
    await small.add(tx(a, 0), NOW)
    await small.add(tx(a, 1), NOW)
    expect(await code(small.add(tx(a, 2), NOW))).toBe('SENDER_LIMIT')
    await small.add(tx(b, 0), NOW)
    expect(await code(small.add(tx(b, 1), NOW))).toBe('POOL_FULL')
    const bytes = encode(transactionCodec, tx(a, 0)).length
    const tight = pool({}, { maxBytes: bytes })
    await tight.add(tx(a, 0), NOW)
    expect(await code(tight.add(tx(b, 0), NOW))).toBe('POOL_FULL')
  })

  it('a full pool makes room by fair share: a newcomer takes the last places of the sender holding the most, down to a tie', async () => {
    const evictedSeen: string[] = []
    const p = pool({}, { maxTransactions: 10, onEvict: (h) => evictedSeen.push(h) })
    const hex = (t: Transaction) => toHex(transactionHash(t.body))
    const flood = Array.from({ length: 10 }, (_, n) => tx(a, n))
    for (const t of flood) expect(await code(p.add(t, NOW))).toBe('OK')
    // b holds none: it takes a's last place (nonce 9, so a keeps 0..8 with no gap).
    expect(await code(p.add(tx(b, 0), NOW))).toBe('OK')
    expect([p.size, p.pendingFrom(a.address), p.pendingFrom(b.address), p.evicted]).toEqual([10, 9, 1, 1])
    expect(evictedSeen).toEqual([hex(flood[9] as Transaction)])
    expect(p.wasEvicted(hex(flood[9] as Transaction))).toBe(true)
    expect(p.has(hex(flood[9] as Transaction))).toBe(false)
    // b goes on taking a's tail while a holds two more than b: 8/2, 7/3, 6/4, 5/5.
    for (let n = 1; n <= 4; n++) expect(await code(p.add(tx(b, n), NOW))).toBe('OK')
    expect([p.pendingFrom(a.address), p.pendingFrom(b.address), p.evicted]).toEqual([5, 5, 5])
    // Now neither displaces the other.
    expect(await code(p.add(tx(b, 5), NOW))).toBe('POOL_FULL')
    expect(await code(p.add(tx(a, 10), NOW))).toBe('POOL_FULL')
    expect(evictedSeen).toEqual([9, 8, 7, 6, 5].map((n) => hex(flood[n] as Transaction)))
    // a's remaining transactions are 0..4, all still proposed in nonce order, and b's 0..4 too.
    const chosen = await p.select(100, 1 << 20, NOW)
    expect(chosen.filter((t) => t.body.from === a.address).map((t) => t.body.nonce)).toEqual([0, 1, 2, 3, 4])
    expect(chosen.filter((t) => t.body.from === b.address).map((t) => t.body.nonce)).toEqual([0, 1, 2, 3, 4])
    // Once a block takes some, a's evicted tail comes back in, and is no longer reported evicted.
    // A later nonce first would wait behind the gap for nothing: refused, naming the one to send.
    await p.prune(NOW, [...flood.slice(0, 5)])
    const [tooFar] = await Promise.allSettled([p.add(tx(a, 11), NOW)])
    expect(tooFar).toMatchObject({ status: 'rejected', reason: { code: 'NONCE_TOO_FAR', details: { next: 5 } } })
    expect(await code(p.add(flood[5] as Transaction, NOW))).toBe('OK')
    expect(p.wasEvicted(hex(flood[5] as Transaction))).toBe(false)
    expect(p.wasEvicted(hex(flood[6] as Transaction))).toBe(true)
    expect(await code(p.add(flood[7] as Transaction, NOW))).toBe('NONCE_TOO_FAR')
    expect(await code(p.add(flood[6] as Transaction, NOW))).toBe('OK')
    expect(await code(p.add(flood[7] as Transaction, NOW))).toBe('OK')
    // When a block from another node's pool takes the evicted nonces, the ones after are welcome.
    const qs = Array.from({ length: 8 }, (_, n) => tx(a, n))
    for (const moved of [3, 4]) {
      const nonces: Record<string, number> = {}
      const q = pool(nonces, { maxTransactions: 4 })
      for (let n = 0; n < 4; n++) await q.add(qs[n] as Transaction, NOW)
      await q.add(tx(b, 0), NOW) // evicts a's nonce 3
      await q.add(tx(b, 1), NOW) // evicts a's nonce 2
      expect([q.pendingFrom(a.address), q.evicted]).toEqual([2, 2])
      nonces[a.address] = moved
      await q.prune(NOW)
      if (moved === 3) {
        // Nonce 2 is on chain, 3 is not: 4 still waits for 3.
        expect(await code(q.add(qs[4] as Transaction, NOW))).toBe('NONCE_TOO_FAR')
        expect(await code(q.add(qs[3] as Transaction, NOW))).toBe('OK')
      }
      expect(await code(q.add(qs[4] as Transaction, NOW))).toBe('OK')
      expect(await code(q.add(qs[5] as Transaction, NOW))).toBe(moved === 3 ? 'POOL_FULL' : 'OK')
    }
  })

  it('an account without funds takes free places only: it never evicts', async () => {
    const { counting, verified, reset } = countingCrypto()
    const p = pool({}, { crypto: counting, mayTransact: (s) => s !== b.address, maxTransactions: 3 })
    for (let n = 0; n < 3; n++) await p.add(tx(a, n), NOW)
    reset()
    expect(await code(p.add(tx(b, 0), NOW))).toBe('POOL_FULL')
    expect([p.pendingFrom(a.address), p.evicted]).toEqual([3, 0])
    // Its permission was at hand: refused before the signature.
    expect(verified()).toBe(0)
    // When the permission is a read (as a node's is for an account it has not seen funded), a
    // full pool waits for it, once, and still refuses before the signature.
    let asked = 0
    const reads = pool(
      {},
      {
        crypto: counting,
        mayTransact: async (s) => {
          asked++
          return s !== b.address
        },
        maxTransactions: 3,
      },
    )
    for (let n = 0; n < 3; n++) await reads.add(tx(a, n), NOW)
    reset()
    asked = 0
    expect(await code(reads.add(tx(b, 0), NOW))).toBe('POOL_FULL')
    expect([reads.pendingFrom(a.address), reads.evicted, verified(), asked]).toEqual([3, 0, 0, 1])
    // A funded sender's permission is read once too, before the signature, and it evicts.
    expect(await code(reads.add(tx(c, 0), NOW))).toBe('OK')
    expect([reads.pendingFrom(a.address), reads.evicted, verified(), asked]).toEqual([2, 1, 1, 2])
    // A funded newcomer does.
    expect(await code(p.add(tx(c, 0), NOW))).toBe('OK')
    expect([p.pendingFrom(a.address), p.evicted]).toEqual([2, 1])
  })

  it('a sender whose last transaction is evicted while its next one waits for its permission gets NONCE_TOO_FAR, not a gap', async () => {
    // mayTransact answers later for a's nonce 3: meanwhile b evicts a's nonce 2.
    let release: (ok: boolean) => void = () => undefined
    const gate = new Promise<boolean>((r) => {
      release = r
    })
    let calls = 0
    const p = pool({}, { maxTransactions: 4, mayTransact: (s) => (s === a.address && ++calls === 4 ? gate : true) })
    for (let n = 0; n < 3; n++) await p.add(tx(a, n), NOW)
    const late = code(p.add(tx(a, 3), NOW))
    await new Promise((r) => setTimeout(r, 10))
    expect(await code(p.add(tx(c, 0), NOW))).toBe('OK') // the last free place
    expect(await code(p.add(tx(b, 0), NOW))).toBe('OK') // a's nonce 2 out
    expect(p.pendingFrom(a.address)).toBe(2)
    release(true)
    expect(await late).toBe('NONCE_TOO_FAR')
    // Nothing of a's is stuck behind a gap: everything pooled can be proposed.
    expect((await p.select(100, 1 << 20, NOW)).length).toBe(p.size)
  })

  it('keeps its count of each sender right when transactions expire, so eviction takes from the sender that really holds the most', async () => {
    const window = check.timestampWindow
    const p = pool({}, { maxTransactions: 5 })
    // a's nonces 2..4 are dated early: they expire at a later prune, leaving a with two.
    for (let n = 0; n < 5; n++) await p.add(tx(a, n, n < 2 ? NOW + n : NOW - window + 10), NOW)
    expect(await p.prune(NOW + 20)).toBe(3)
    for (let n = 0; n < 3; n++) await p.add(tx(c, n), NOW + 20)
    // Full: a holds 2, c holds 3. b takes c's last place, not a's.
    expect(await code(p.add(tx(b, 0), NOW + 20))).toBe('OK')
    expect([p.pendingFrom(a.address), p.pendingFrom(c.address), p.pendingFrom(b.address)]).toEqual([2, 2, 1])
  })

  it('remembers the last evicted hashes and senders only, up to its bound', async () => {
    const hex = (t: Transaction) => toHex(transactionHash(t.body))
    const d = key('pool d')
    const q = pool({}, { maxTransactions: 6, evictedRemembered: 2 })
    const cs = Array.from({ length: 6 }, (_, n) => tx(c, n))
    for (const t of cs) await q.add(t, NOW)
    for (const k of [a, b, d]) await q.add(tx(k, 0), NOW)
    expect(q.evicted).toBe(3)
    // c's nonces 5, 4, 3 went in that order: the first is forgotten, the last two remembered.
    expect([5, 4, 3].map((n) => q.wasEvicted(hex(cs[n] as Transaction)))).toEqual([false, true, true])
    // With room for one sender's evicted nonces, the older sender's are forgotten: its later
    // nonce is taken (and waits behind its gap), while the newer one's is still refused.
    const e = key('pool e')
    const r = pool({}, { maxTransactions: 5, evictedRemembered: 1 })
    for (let n = 0; n < 3; n++) await r.add(tx(c, n), NOW)
    for (let n = 0; n < 2; n++) await r.add(tx(e, n), NOW)
    await r.add(tx(a, 0), NOW) // c's nonce 2 out: c and e hold 2 each
    await r.add(tx(b, 0), NOW) // e's nonce 1 out
    expect([r.pendingFrom(c.address), r.pendingFrom(e.address), r.evicted]).toEqual([2, 1, 2])
    await r.prune(NOW, [tx(a, 0), tx(b, 0)])
    expect(await code(r.add(tx(e, 2), NOW))).toBe('NONCE_TOO_FAR')
    expect(await code(r.add(tx(c, 3), NOW))).toBe('OK')
  })

  it('takes any per-sender limit an operator sets, however high', async () => {
    const p = pool({}, { maxPerSender: 2 ** 40, maxTransactions: 3 })
    for (let n = 0; n < 3; n++) expect(await code(p.add(tx(a, n), NOW))).toBe('OK')
    expect(await code(p.add(tx(b, 0), NOW))).toBe('OK')
    expect([p.pendingFrom(a.address), p.pendingFrom(b.address)]).toEqual([2, 1])
  })

  it('evicts only for a transaction that passes every check, and refuses before the signature when no room can be made', async () => {
    const { counting, verified, reset } = countingCrypto()
    const p = pool({}, { crypto: counting, maxTransactions: 4 })
    for (let n = 0; n < 4; n++) await p.add(tx(a, n), NOW)
    reset()
    const t = tx(b, 0)
    const forged = { ...t, signature: t.signature.map((x, i) => (i === 3 ? x ^ 1 : x)) }
    expect(await code(p.add(forged, NOW))).toBe('BAD_SIGNATURE')
    expect(await code(p.add(tx(b, 70), NOW))).toBe('NONCE_TOO_FAR')
    expect([p.size, p.pendingFrom(a.address), p.evicted]).toEqual([4, 4, 0])
    // An evenly shared pool: a newcomer is refused without a verification.
    const even = pool({}, { crypto: counting, maxTransactions: 2 })
    await even.add(tx(a, 0), NOW)
    await even.add(tx(b, 0), NOW)
    reset()
    expect(await code(even.add(tx(key('pool d'), 0), NOW))).toBe('POOL_FULL')
    expect(verified()).toBe(0)
  })

  /** A call's payload of about `n` bytes. */
  const callData = (n: number) => encode(callDataCodec, { method: 'join', params: { note: 'x'.repeat(n) } })

  it('makes room for bytes too, taking as many of the top sender’s last transactions as the newcomer needs', async () => {
    const one = encode(transactionCodec, tx(a, 0)).length
    const big = signTransaction({ ...tx(b, 0).body, kind: TxKind.Call, to: contractAddress(new Uint8Array(32)), data: callData(one) }, b)
    const bigBytes = encode(transactionCodec, big).length
    expect(bigBytes).toBeGreaterThan(2 * one)
    const p = pool({}, { maxBytes: 4 * one })
    for (let n = 0; n < 4; n++) await p.add(tx(a, n), NOW)
    expect(await code(p.add(big, NOW))).toBe('OK')
    // Three of a's four places: a keeps one, as many as b now has.
    expect([p.pendingFrom(a.address), p.pendingFrom(b.address), p.evicted]).toEqual([1, 1, 3])
    expect(p.bytes).toBe(one + bigBytes)
    // One that needs all four of a's places gets none: a keeps as many as b would have, one.
    const q = pool({}, { maxBytes: 4 * one })
    for (let n = 0; n < 4; n++) await q.add(tx(a, n), NOW)
    const huge = signTransaction({ ...big.body, data: callData(3 * one - (bigBytes - one) + 8) }, b)
    const hugeBytes = encode(transactionCodec, huge).length
    expect(hugeBytes).toBeGreaterThan(3 * one)
    expect(hugeBytes).toBeLessThanOrEqual(4 * one)
    expect(await code(q.add(huge, NOW))).toBe('POOL_FULL')
    expect([q.pendingFrom(a.address), q.evicted]).toEqual([4, 0])
  })

  it('under any mix of senders, a refused newcomer finds no sender with two more than its own, and no sender is left with a gap', async () => {
    const senders = [a, b, key('pool d'), key('pool e')]
    const signed = senders.map((k) => Array.from({ length: 12 }, (_, n) => tx(k, n)))
    let evictions = 0
    await fc.assert(
      fc.asyncProperty(
        // A step: a sender sends a run of transactions (a flood, at times), or a block takes three.
        fc.array(
          fc.oneof(fc.record({ add: fc.nat({ max: 3 }), times: fc.integer({ min: 1, max: 8 }) }), fc.constant({ block: true as const })),
          { maxLength: 30 },
        ),
        fc.integer({ min: 2, max: 9 }),
        async (steps, max) => {
          const nonces: Record<string, number> = {}
          const p = pool(nonces, { maxTransactions: max })
          for (const step of steps) {
            if ('block' in step) {
              const txs = await p.select(3, 1 << 20, NOW)
              for (const t of txs) nonces[t.body.from] = t.body.nonce + 1
              await p.prune(NOW, txs)
              continue
            }
            const k = senders[step.add] as ReturnType<typeof key>
            for (let i = 0; i < step.times; i++) {
              // A sender sends its next nonce after those it has pooled (what a wallet does).
              const own = p.pendingFrom(k.address)
              const nonce = (nonces[k.address] ?? 0) + own
              if (nonce >= 12) break
              const result = await code(p.add(signed[step.add]?.[nonce] as Transaction, NOW))
              if (result === 'POOL_FULL') for (const o of senders) expect(p.pendingFrom(o.address)).toBeLessThanOrEqual(own + 1)
              else expect(result).toBe('OK')
              expect(p.size).toBeLessThanOrEqual(max)
            }
          }
          // Every sender's pooled transactions run from its next nonce without a gap.
          const all = await p.select(1000, 1 << 30, NOW)
          expect(all.length).toBe(p.size)
          evictions += p.evicted
        },
      ),
      { numRuns: 150 },
    )
    // The runs did exercise eviction: 25 to 52 evictions in 60 runs over 20 tries, so about 95 in
    // 150, and 20 is far below anything a working pool gives.
    expect(evictions).toBeGreaterThan(20)
  })

  it('proposes each sender in nonce order, merges senders by (timestamp, hash), and stops at a gap', async () => {
    const p = pool({}, { accountNonce: (s: Address) => (s === a.address ? 0 : Promise.resolve(0)) })
    await p.add(tx(a, 1, NOW + 1), NOW)
    await p.add(tx(a, 0, NOW + 5), NOW)
    await p.add(tx(b, 0, NOW + 2), NOW)
    await p.add(tx(b, 1, NOW + 3), NOW)
    await p.add(tx(b, 3, NOW + 0), NOW) // nonce 2 is missing: waits
    const order = (await p.select(100, 1 << 20, NOW)).map((t) => `${t.body.from === a.address ? 'a' : 'b'}${t.body.nonce}`)
    expect(order).toEqual(['b0', 'b1', 'a0', 'a1'])
    expect(await p.select(2, 1 << 20, NOW)).toHaveLength(2)
  })

  it('keeps a proposal within the steps a block may declare; a transaction that does not fit stops its sender', async () => {
    const p = pool()
    await p.add(tx(a, 0, NOW), NOW)
    await p.add(tx(a, 1, NOW + 1), NOW)
    await p.add(tx(b, 0, NOW + 2), NOW)
    const picked = async (maxSteps: number) =>
      (await p.select(100, 1 << 20, NOW, maxSteps)).map((t) => `${t.body.from === a.address ? 'a' : 'b'}${t.body.nonce}`)
    // Each declares 10,000 steps, and as a transfer uses 1,000: that is what counts.
    expect(await picked(3_000)).toEqual(['a0', 'a1', 'b0'])
    expect(await picked(2_999)).toEqual(['a0', 'a1'])
    expect(await picked(2_000)).toEqual(['a0', 'a1'])
    expect(await picked(999)).toEqual([])
  })

  it("selects only transactions inside the window at the block's timestamp; one outside stops its sender like a gap", async () => {
    const w = check.timestampWindow
    const p = pool()
    await p.add(tx(a, 0, NOW), NOW)
    await p.add(tx(a, 1, NOW - w + 10), NOW) // leaves the window 10 µs after NOW
    await p.add(tx(a, 2, NOW), NOW)
    await p.add(tx(b, 0, NOW + w), NOW) // at the window's future edge
    await p.add(tx(c, 0, NOW - w + 5), NOW) // a sender whose first transaction leaves the window
    const picked = async (at: number) =>
      (await p.select(100, 1 << 20, at)).map(
        (t) => `${t.body.from === a.address ? 'a' : t.body.from === b.address ? 'b' : 'c'}${t.body.nonce}`,
      )
    expect((await picked(NOW)).sort()).toEqual(['a0', 'a1', 'a2', 'b0', 'c0'])
    // 20 µs later a1 and c0 are too old: a2 waits behind a1, and c has nothing.
    expect((await picked(NOW + 20)).sort()).toEqual(['a0', 'b0'])
    // A block timestamped earlier than b0's window allows leaves it out.
    expect((await picked(NOW - 1)).sort()).toEqual(['a0', 'a1', 'a2', 'c0'])
    expect(p.size).toBe(5)
  })

  it('a transaction whose nonce a block used while it waited for its permission is refused, not pooled', async () => {
    const nonces: Record<string, number> = { [a.address]: 0 }
    // The permission is read from the state (a promise); meanwhile a block with a's nonce 0 commits.
    const p = pool(nonces, {
      accountNonce: (s: Address) => nonces[s] ?? 0,
      mayTransact: async () => {
        nonces[a.address] = 1
        return true
      },
    })
    expect(await code(p.add(tx(a, 0), NOW))).toBe('NONCE_TOO_LOW')
    expect([p.size, p.hasReady]).toEqual([0, false])
    expect(await code(p.add(tx(a, 1), NOW))).toBe('OK')
  })

  it('a transaction whose block committed, and was pruned, while its uncached nonce was read is refused, not pooled', async () => {
    let chainNonce = 0
    let release = () => {}
    const gate = new Promise<void>((r) => {
      release = r
    })
    let first = true
    // Like the node's read of a sender it has not cached: a store read, the first one slow.
    const p = pool(
      {},
      {
        accountNonce: async () => {
          const n = chainNonce
          if (first) {
            first = false
            await gate
          }
          return n
        },
      },
    )
    const t = tx(a, 0)
    const adding = code(p.add(t, NOW))
    await new Promise((r) => setTimeout(r, 10))
    // The block holding t commits and its prune runs, all while t's nonce is being read.
    chainNonce = 1
    expect(await p.prune(NOW, [t])).toBe(0)
    release()
    expect(await adding).toBe('NONCE_TOO_LOW')
    expect([p.size, p.hasReady]).toEqual([0, false])
  })

  it('refuses what cannot be a transaction of this chain before reading the state (nonce, permission)', async () => {
    let reads = 0
    const p = pool(
      {},
      {
        accountNonce: async () => {
          reads++
          return 0
        },
        mayTransact: async () => {
          reads++
          return true
        },
      },
    )
    const forged = { ...tx(a, 0), publicKey: b.publicKey }
    expect(await code(p.add(forged, NOW))).toBe('SENDER_MISMATCH')
    expect(await code(p.add(tx(a, 0, NOW - check.timestampWindow - 1), NOW))).toBe('TIMESTAMP_TOO_OLD')
    expect(await code(p.add(signTransaction({ ...tx(a, 0).body, networkId: 6 }, a), NOW))).toBe('WRONG_NETWORK')
    expect(reads).toBe(0)
    // A bad signature is known only after the nonce: that read it costs.
    expect(await code(p.add({ ...tx(a, 0), signature: new Uint8Array(64) }, NOW))).toBe('BAD_SIGNATURE')
    expect(reads).toBe(1)
  })

  it('senders without funds take at most a sixteenth of a block: of its transactions, and of its steps', async () => {
    const funded = Array.from({ length: 40 }, (_, i) => key(`funded ${i}`))
    const free = Array.from({ length: 40 }, (_, i) => key(`free ${i}`))
    const isFunded = new Set(funded.map((k) => k.address))
    // The free keys send calls declaring the most steps they may, dated back to go first.
    const call = (k: ReturnType<typeof key>) =>
      signTransaction(
        {
          ...tx(k, 0, NOW - 1_000).body,
          kind: TxKind.Call,
          to: contractAddress(new Uint8Array(32)),
          data: encode(callDataCodec, { method: 'join', params: {} }),
          stepLimit: LIMITED_STEP_BOUND,
        },
        k,
      )
    const p = pool({}, { mayTransact: (s) => isFunded.has(s) })
    for (const k of free) expect(await code(p.add(call(k), NOW))).toBe('OK')
    for (const k of funded) expect(await code(p.add(tx(k, 0), NOW))).toBe('OK')
    const freeIn = (txs: Transaction[]) => txs.filter((t) => !isFunded.has(t.body.from)).length
    const byCount = await p.select(32, 1 << 20, NOW)
    expect(byCount).toHaveLength(32)
    expect(freeIn(byCount)).toBe(2)
    // By steps: a sixteenth of the budget is three of their calls; the funded transfers all fit.
    const bySteps = await p.select(1_000, 1 << 20, NOW, 16 * 3 * LIMITED_STEP_BOUND)
    expect(freeIn(bySteps)).toBe(3)
    expect(bySteps).toHaveLength(43)
    // Alone in the pool, they still get their share, no more (at least one).
    const onlyFree = pool({}, { mayTransact: () => false })
    for (const k of free) await onlyFree.add(call(k), NOW)
    expect(await onlyFree.select(320, 1 << 20, NOW)).toHaveLength(20)
    expect(await onlyFree.select(4, 1 << 20, NOW)).toHaveLength(1)
  })

  it('holds senders without funds to a sixteenth of a small pool by default, so a funded sender still finds room', async () => {
    const p = pool({}, { maxTransactions: 64, mayTransact: (s) => s === a.address })
    for (let i = 0; i < 4; i++) expect(await code(p.add(tx(key(`free ${i}`), 0), NOW))).toBe('OK')
    expect(await code(p.add(tx(key('free 4'), 0), NOW))).toBe('POOL_FULL')
    expect(await code(p.add(tx(a, 0), NOW))).toBe('OK')
  })

  it('selection depends only on the pool, not on arrival order', async () => {
    const txs = [tx(a, 0, NOW + 7), tx(a, 1, NOW + 1), tx(b, 0, NOW + 7), tx(b, 1, NOW + 2), tx(c, 0, NOW + 3)]
    const reference = (await fillThenSelect(txs)).join()
    await fc.assert(
      fc.asyncProperty(fc.shuffledSubarray(txs, { minLength: txs.length, maxLength: txs.length }), async (order) => {
        expect((await fillThenSelect(order)).join()).toBe(reference)
      }),
      { numRuns: 30 },
    )
  })

  it('prunes transactions whose nonce was used by a committed block, and expired ones', async () => {
    const nonces: Record<string, number> = {}
    // The node answers cached nonces directly and reads the others: a's comes directly, b's is read.
    const p = pool(nonces, { accountNonce: (s: Address) => (s === a.address ? (nonces[s] ?? 0) : Promise.resolve(nonces[s] ?? 0)) })
    await p.add(tx(a, 0), NOW)
    await p.add(tx(a, 1), NOW)
    await p.add(tx(b, 0, NOW - check.timestampWindow + 10), NOW)
    nonces[a.address] = 1
    expect(await p.prune(NOW)).toBe(1)
    expect(await p.prune(NOW + 20)).toBe(1)
    expect(p.size).toBe(1)
    expect((await p.select(10, 1 << 20, NOW)).map((t) => t.body.nonce)).toEqual([1])
  })

  it("drops a committed block's own transactions even when their sender's nonce did not move", async () => {
    const p = pool()
    const t = tx(a, 0)
    await p.add(t, NOW)
    await p.add(tx(b, 0), NOW)
    // The block failed it without using the nonce (say, a proposer's BAD_NONCE): it must not come back in every block.
    expect(await p.prune(NOW, [decodeTransaction(encode(transactionCodec, t)), tx(c, 9)])).toBe(1)
    expect(p.has(toHex(transactionHash(t.body)))).toBe(false)
    expect((await p.select(10, 1 << 20, NOW)).map((x) => x.body.from)).toEqual([b.address])
    expect(p.pendingFrom(a.address)).toBe(0)
  })
})

async function fillThenSelect(txs: Transaction[]): Promise<string[]> {
  const p = pool()
  for (const t of txs) await p.add(t, NOW)
  return (await p.select(100, 1 << 20, NOW)).map((t) => `${t.body.from}:${t.body.nonce}`)
}
