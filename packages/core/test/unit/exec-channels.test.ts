import { beforeAll, describe, expect, it } from 'vitest'
import {
  accountKey,
  accountStateCodec,
  type BlockExecution,
  CHANNEL_ADDRESS,
  type ChannelState,
  ChannelStatus,
  type ContractEngine,
  channelCall,
  channelIdOf,
  channelKey,
  channelRecordCodec,
  channelRevocationDigest,
  decode,
  encode,
  encodeChannelRevocation,
  encodeSignedChannelState,
  getAccount,
  getScoreApi,
  type Htlc,
  initEngine,
  type KeyPair,
  nobleCrypto,
  type Party,
  preimageKey,
  type SignedChannelState,
  StateOverlay,
  sha256,
  signChannelState,
  type Transaction,
  toHex,
  transactionHash,
  utf8,
  type Value,
} from '../../src/index.js'
import { govGenesis, member, newcomer, outsider, TestChain, v3 } from '../fixtures/exec/governed.js'

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

const alice = member // opens channels (party A)
const bob = newcomer // joins them (party B)
const tower = outsider // a watchtower: submits from its own account
const mallory = v3 // a party of nothing
const PERIOD = 3
const START = 10_000_000_000n // every account's genesis balance

/** A TestChain that keeps each sender's fees, so a test can see what the channel alone did to a balance. */
class Chain {
  private readonly fees = new Map<string, bigint>()
  private constructor(readonly c: TestChain) {}

  static async start(): Promise<Chain> {
    return new Chain(await TestChain.start(engine, govGenesis()))
  }

  get height(): number {
    return this.c.height
  }

  async block(txs: Transaction[] = []): Promise<BlockExecution> {
    const ex = await this.c.block(txs)
    txs.forEach((tx, i) => {
      const from = tx.body.from
      this.fees.set(from, (this.fees.get(from) ?? 0n) + (ex.receipts[i]?.fee ?? 0n))
    })
    return ex
  }

  /** Empty blocks until the chain's height is `h`. */
  async until(h: number): Promise<void> {
    while (this.c.height < h) await this.block()
  }

  call(from: KeyPair, method: string, params: Value, value = 0n): Transaction {
    return this.c.call(from, CHANNEL_ADDRESS, method, params, value)
  }

  open(depositA: bigint, opts: { peer?: KeyPair; peerKey?: Uint8Array; period?: bigint } = {}): { tx: Transaction; id: Uint8Array } {
    const peer = opts.peer ?? bob
    const tx = this.call(
      alice,
      'open',
      {
        peer: peer.address,
        openerKey: alice.publicKey,
        peerKey: opts.peerKey ?? peer.publicKey,
        challengePeriod: opts.period ?? BigInt(PERIOD),
      },
      depositA,
    )
    return { tx, id: channelIdOf(transactionHash(tx.body)) }
  }

  /** Opens and joins a channel over two blocks; returns its id. */
  async channel(depositA: bigint, depositB: bigint): Promise<Uint8Array> {
    const { tx, id } = this.open(depositA)
    expect(TestChain.codes(await this.block([tx]))).toEqual(['OK'])
    expect(TestChain.codes(await this.block([this.call(bob, 'join', { id }, depositB)]))).toEqual(['OK'])
    return id
  }

  /** What the channel did to `k`'s balance: its balance change with its fees put back. */
  async net(k: KeyPair): Promise<bigint> {
    return (await getAccount(this.c.tree, k.address)).balance - START + (this.fees.get(k.address) ?? 0n)
  }

  async channelBalance(): Promise<bigint> {
    return (await getAccount(this.c.tree, CHANNEL_ADDRESS)).balance
  }

  async raw(id: Uint8Array): Promise<string | undefined> {
    const b = await this.c.tree.get(channelKey(id))
    return b === undefined ? undefined : toHex(b)
  }

  async record(id: Uint8Array) {
    const b = await this.c.tree.get(channelKey(id))
    return b === undefined ? undefined : decode(channelRecordCodec, b)
  }

  get(id: Uint8Array): Promise<Value> {
    return this.c.read(CHANNEL_ADDRESS, 'get', { id })
  }
}

const codes = TestChain.codes
const events = (ex: BlockExecution) => ex.receipts.map((r) => r.logs.map((l) => l.event))

function state(channelId: Uint8Array, seq: number, balances: [bigint, bigint], htlcs: Htlc[] = [], final = false): ChannelState {
  return { channelId, seq, balances, htlcs, final }
}

function cosign(s: ChannelState, a: KeyPair = alice, b: KeyPair = bob): SignedChannelState {
  return { state: s, signatures: [signChannelState(s, a.secretKey), signChannelState(s, b.secretKey)] }
}

const enc = (s: ChannelState, a?: KeyPair, b?: KeyPair) => encodeSignedChannelState(cosign(s, a, b))

/** Party `party`'s revocation of channel `channelId`'s states below `below`, signed with `k` (its own key unless forged). */
function revocation(channelId: Uint8Array, party: Party, below: number, k: KeyPair = party === 0 ? alice : bob): Uint8Array {
  const signature = nobleCrypto.sign(channelRevocationDigest(channelId, party, below), k.secretKey)
  return encodeChannelRevocation({ channelId, party, below, signature })
}

describe('channel SCORE: open and join', () => {
  it('A opens with its deposit, B joins with its own: the deposits sit in the channel account and get shows the record', async () => {
    const ch = await Chain.start()
    const { tx, id } = ch.open(600n)
    let ex = await ch.block([tx])
    expect(codes(ex)).toEqual(['OK'])
    const opened = ex.receipts[0]?.logs[0]
    expect(opened?.event).toBe('ChannelOpened')
    expect(toHex(opened?.indexed[0] as Uint8Array)).toBe(toHex(id))
    expect(opened?.indexed.slice(1)).toEqual([alice.address, bob.address])
    expect(opened?.data).toEqual([600n, BigInt(PERIOD)])
    expect(await ch.get(id)).toMatchObject({ status: 'opening', deposits: [600n, 0n], parties: [alice.address, bob.address] })
    expect(await ch.channelBalance()).toBe(600n)

    ex = await ch.block([ch.call(bob, 'join', { id }, 400n)])
    expect(codes(ex)).toEqual(['OK'])
    expect(events(ex)).toEqual([['ChannelJoined']])
    expect(ex.receipts[0]?.logs[0]?.data).toEqual([400n])
    expect(await ch.channelBalance()).toBe(1000n)
    expect(await ch.net(alice)).toBe(-600n)
    expect(await ch.net(bob)).toBe(-400n)
    const got = (await ch.get(id)) as Record<string, Value>
    expect(got).toMatchObject({
      status: 'open',
      deposits: [600n, 400n],
      balances: [600n, 400n],
      challengePeriod: BigInt(PERIOD),
      openedAt: 1n,
      seq: 0n,
      closer: null,
      deadline: null,
      outcome: null,
      htlcs: [],
    })
    expect((got.keys as Uint8Array[]).map(toHex)).toEqual([toHex(alice.publicKey), toHex(bob.publicKey)])
  })

  it('B may join with nothing; the opener may cancel before anyone joins and gets the deposit back', async () => {
    const ch = await Chain.start()
    const zero = await ch.channel(300n, 0n)
    expect(await ch.get(zero)).toMatchObject({ status: 'open', deposits: [300n, 0n] })
    const { tx, id } = ch.open(500n)
    await ch.block([tx])
    const ex = await ch.block([ch.call(alice, 'cancel', { id }), ch.call(bob, 'join', { id }, 10n)])
    expect(codes(ex)).toEqual(['OK', 'WRONG_STATUS'])
    expect(events(ex)[0]).toEqual(['ChannelCancelled'])
    expect(await ch.get(id)).toMatchObject({ status: 'closed', outcome: 'cancelled', balances: [500n, 0n], closedAt: 4n })
    expect(await ch.net(alice)).toBe(-300n)
    expect(await ch.net(bob)).toBe(0n)
    expect(await ch.channelBalance()).toBe(300n)
  })

  it('lc_getScoreApi answers at the channel address with the fixed ABI, and get answers in a read-only query', async () => {
    const ch = await Chain.start()
    const api = (await getScoreApi(ch.c.tree, engine, CHANNEL_ADDRESS)) as { name: string; payable: boolean; readonly: boolean }[]
    expect(api.map((m) => m.name).sort()).toEqual(
      ['cancel', 'challenge', 'close', 'closeCooperative', 'get', 'join', 'open', 'redeem', 'withdraw'].sort(),
    )
    expect(api.filter((m) => m.payable).map((m) => m.name)).toEqual(['open', 'join'])
    expect(api.filter((m) => m.readonly).map((m) => m.name)).toEqual(['get'])
    expect(await getScoreApi(ch.c.tree, engine, CHANNEL_ADDRESS, 1)).toBeUndefined()
    expect(await ch.get(new Uint8Array(32))).toBeNull()
    const q = await ch.c.query(CHANNEL_ADDRESS, 'cancel', { id: new Uint8Array(32) })
    expect(q).toMatchObject({ ok: false, failure: { code: 'READONLY_VIOLATION' } })
  })
})

describe('channel SCORE: cooperative close', () => {
  it('anyone submits a final co-signed state: both are paid at once and the channel account ends at 0', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    const ex = await ch.block([ch.call(tower, 'closeCooperative', { state: enc(state(id, 5, [250n, 750n], [], true)) })])
    expect(codes(ex)).toEqual(['OK'])
    expect(ex.receipts[0]?.logs.map((l) => [l.event, l.data])).toEqual([['ChannelSettled', [250n, 750n, 'cooperative']]])
    expect(await ch.net(alice)).toBe(250n - 600n)
    expect(await ch.net(bob)).toBe(750n - 400n)
    expect(await ch.net(tower)).toBe(0n)
    expect(await ch.channelBalance()).toBe(0n)
    expect(await ch.get(id)).toMatchObject({ status: 'closed', outcome: 'cooperative', seq: 5n, balances: [250n, 750n] })
    const again = await ch.block([ch.call(tower, 'closeCooperative', { state: enc(state(id, 6, [0n, 1000n], [], true)) })])
    expect(codes(again)).toEqual(['WRONG_STATUS'])
    expect(await ch.net(bob)).toBe(350n)
  })

  it('a final state also ends a pending unilateral close, but not one older than the closer’s', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    await ch.block([ch.call(alice, 'close', { id, state: enc(state(id, 4, [500n, 500n])) })])
    const ex = await ch.block([
      ch.call(tower, 'closeCooperative', { state: enc(state(id, 3, [900n, 100n], [], true)) }),
      ch.call(tower, 'closeCooperative', { state: enc(state(id, 5, [450n, 550n], [], true)) }),
    ])
    expect(codes(ex)).toEqual(['STALE_STATE', 'OK'])
    expect(await ch.net(alice)).toBe(450n - 600n)
    expect(await ch.net(bob)).toBe(550n - 400n)
    expect(await ch.channelBalance()).toBe(0n)
  })
})

describe('channel SCORE: unilateral close, challenge and withdraw', () => {
  it('a close with a state its closer revoked is challenged with a newer state and that revocation: the honest party gets the whole channel', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    const old = enc(state(id, 1, [550n, 450n]))
    const newer = enc(state(id, 2, [100n, 900n]))
    let ex = await ch.block([ch.call(alice, 'close', { id, state: old })])
    expect(codes(ex)).toEqual(['OK'])
    const deadline = ch.height + PERIOD
    expect(ex.receipts[0]?.logs.map((l) => [l.event, l.indexed[1], l.data])).toEqual([
      ['ChannelClosing', alice.address, [1n, BigInt(deadline)]],
    ])
    expect(await ch.get(id)).toMatchObject({ status: 'closing', closer: alice.address, seq: 1n, deadline: BigInt(deadline) })
    await ch.until(deadline - 1)
    ex = await ch.block([ch.call(tower, 'challenge', { state: newer, revocation: revocation(id, 0, 2) })])
    expect(ch.height).toBe(deadline)
    expect(codes(ex)).toEqual(['OK'])
    expect(ex.receipts[0]?.logs.map((l) => [l.event, l.indexed[1], l.data])).toEqual([
      ['ChannelPenalised', alice.address, [bob.address, 1000n]],
    ])
    expect(await ch.net(alice)).toBe(-600n)
    expect(await ch.net(bob)).toBe(600n)
    expect(await ch.channelBalance()).toBe(0n)
    expect(await ch.get(id)).toMatchObject({ status: 'closed', outcome: 'penalised', balances: [0n, 1000n] })
    expect(codes(await ch.block([ch.call(bob, 'withdraw', { id })]))).toEqual(['WRONG_STATUS'])
  })

  it('a close without a state closes on the deposits; the closer’s revocation of state 0 penalises it too', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    await ch.block([ch.call(bob, 'close', { id })])
    expect(await ch.get(id)).toMatchObject({ status: 'closing', seq: 0n, balances: [600n, 400n], closer: bob.address })
    const ex = await ch.block([ch.call(alice, 'challenge', { state: enc(state(id, 1, [700n, 300n])), revocation: revocation(id, 1, 1) })])
    expect(codes(ex)).toEqual(['OK'])
    expect(await ch.net(alice)).toBe(400n)
    expect(await ch.net(bob)).toBe(-400n)
  })

  it('a newer state without the closer’s revocation replaces the closer’s, penalising nobody; the newest shown is paid out', async () => {
    // Bob proposed state 2 and alice refused it, keeping his signature; bob closes with state 1,
    // the latest he holds co-signed. Alice completes state 2 and shows it: it wins, bob keeps his share.
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    await ch.block([ch.call(bob, 'close', { id, state: enc(state(id, 1, [500n, 500n])) })])
    const deadline = ch.height + PERIOD
    let ex = await ch.block([ch.call(alice, 'challenge', { state: enc(state(id, 2, [520n, 480n])) })])
    expect(codes(ex)).toEqual(['OK'])
    expect(ex.receipts[0]?.logs.map((l) => [l.event, l.indexed[1], l.data])).toEqual([['ChannelChallenged', alice.address, [2n]]])
    expect(await ch.get(id)).toMatchObject({
      status: 'closing',
      closer: bob.address,
      seq: 2n,
      balances: [520n, 480n],
      deadline: BigInt(deadline),
    })
    expect(await ch.channelBalance()).toBe(1000n)
    // A newer one again replaces it; one not newer than the recorded state changes nothing.
    ex = await ch.block([
      ch.call(tower, 'challenge', { state: enc(state(id, 3, [540n, 460n])) }),
      ch.call(tower, 'challenge', { state: enc(state(id, 3, [1000n, 0n])) }),
    ])
    expect(codes(ex)).toEqual(['OK', 'STALE_STATE'])
    await ch.until(deadline)
    ex = await ch.block([ch.call(tower, 'withdraw', { id })])
    expect(ex.receipts[0]?.logs.map((l) => [l.event, l.data])).toEqual([['ChannelSettled', [540n, 460n, 'unilateral']]])
    expect(await ch.net(alice)).toBe(540n - 600n)
    expect(await ch.net(bob)).toBe(460n - 400n)
    expect(await ch.channelBalance()).toBe(0n)
  })

  it('a revocation that is not the closer’s of its state, or a final state, is refused and changes nothing', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    const other = await ch.channel(50n, 50n)
    await ch.block([ch.call(alice, 'close', { id, state: enc(state(id, 3, [550n, 450n])) })])
    const before = await ch.raw(id)
    const newer = enc(state(id, 4, [100n, 900n]))
    const ex = await ch.block([
      ch.call(tower, 'challenge', { state: newer, revocation: revocation(id, 1, 4) }), // bob's, not the closer's
      ch.call(tower, 'challenge', { state: newer, revocation: revocation(id, 0, 3) }), // covers state 2 and below, not 3
      ch.call(tower, 'challenge', { state: newer, revocation: revocation(id, 0, 4, bob) }), // forged: signed by bob
      ch.call(tower, 'challenge', { state: newer, revocation: revocation(other, 0, 4) }), // another channel's
      ch.call(tower, 'challenge', { state: newer, revocation: new Uint8Array(7) }), // does not decode
      ch.call(tower, 'challenge', { state: enc(state(id, 4, [100n, 900n], [], true)), revocation: revocation(id, 0, 4) }),
    ])
    expect(codes(ex)).toEqual(['BAD_REVOCATION', 'BAD_REVOCATION', 'BAD_REVOCATION', 'BAD_REVOCATION', 'BAD_REVOCATION', 'BAD_STATE'])
    expect(ex.receipts.map((r) => r.failure?.message)).toEqual([
      "the revocation is party 1's, not party 0's",
      'the revocation covers the states below 3, not state 3',
      'the revocation’s signature does not verify',
      'the revocation belongs to another channel',
      expect.stringContaining('the revocation does not decode'),
      'a final state settles at once (closeCooperative), not by a challenge',
    ])
    expect(await ch.raw(id)).toBe(before)
    expect(await ch.channelBalance()).toBe(1100n)
  })

  it('a payment redeemed under the closer’s state stays redeemed when a newer state holding it replaces that state', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    const p = sha256(utf8('a preimage'))
    const h: Htlc = { id: 1, from: 0, amount: 200n, hashLock: sha256(p), expiry: ch.height + 50 }
    const other: Htlc = { id: 2, from: 1, amount: 50n, hashLock: sha256(utf8('never shown')), expiry: ch.height + 50 }
    await ch.block([ch.call(bob, 'close', { id, state: enc(state(id, 1, [400n, 400n], [h])) })])
    expect(codes(await ch.block([ch.call(tower, 'redeem', { id, htlcId: 1n, preimage: p })]))).toEqual(['OK'])
    expect(codes(await ch.block([ch.call(alice, 'challenge', { state: enc(state(id, 2, [390n, 360n], [h, other])) })]))).toEqual(['OK'])
    // Bob's 360 plus the 200 already redeemed; payment 2 still pending.
    expect(await ch.get(id)).toMatchObject({
      seq: 2n,
      balances: [390n, 560n],
      htlcs: [
        { id: 1n, redeemed: true },
        { id: 2n, redeemed: false },
      ],
    })
    // Then a newer state whose payment 1 is another one (ids are reused once a payment is gone): not redeemed, nothing credited.
    const reused: Htlc = { ...h, hashLock: sha256(utf8('another lock')) }
    const ex = await ch.block([
      ch.call(tower, 'redeem', { id, htlcId: 1n, preimage: p }),
      ch.call(alice, 'challenge', { state: enc(state(id, 3, [400n, 400n], [reused])) }),
    ])
    expect(codes(ex)).toEqual(['ALREADY_REDEEMED', 'OK'])
    expect(await ch.get(id)).toMatchObject({ seq: 3n, balances: [400n, 400n], htlcs: [{ id: 1n, redeemed: false }] })
  })

  it('a challenge with an older or equal state is STALE_STATE and changes nothing', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    await ch.block([ch.call(alice, 'close', { id, state: enc(state(id, 2, [100n, 900n])) })])
    const before = await ch.raw(id)
    const ex = await ch.block([
      ch.call(tower, 'challenge', { state: enc(state(id, 1, [550n, 450n])) }),
      ch.call(tower, 'challenge', { state: enc(state(id, 2, [600n, 400n])) }),
    ])
    expect(codes(ex)).toEqual(['STALE_STATE', 'STALE_STATE'])
    expect(await ch.raw(id)).toBe(before)
    expect(await ch.channelBalance()).toBe(1000n)
    expect(await ch.net(tower)).toBe(0n)
  })

  it('withdraw is TOO_EARLY until the challenge period ends, a challenge after it is refused, then withdraw pays the closer’s state', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    await ch.block([ch.call(bob, 'close', { id, state: enc(state(id, 7, [320n, 680n])) })])
    const deadline = ch.height + PERIOD
    while (ch.height < deadline) expect(codes(await ch.block([ch.call(tower, 'withdraw', { id })]))).toEqual(['TOO_EARLY'])
    expect(await ch.channelBalance()).toBe(1000n)
    const ex = await ch.block([ch.call(tower, 'challenge', { state: enc(state(id, 8, [1000n, 0n])) }), ch.call(tower, 'withdraw', { id })])
    expect(codes(ex)).toEqual(['CHALLENGE_PERIOD_OVER', 'OK'])
    expect(ex.receipts[1]?.logs.map((l) => [l.event, l.data])).toEqual([['ChannelSettled', [320n, 680n, 'unilateral']]])
    expect(await ch.net(alice)).toBe(320n - 600n)
    expect(await ch.net(bob)).toBe(680n - 400n)
    expect(await ch.channelBalance()).toBe(0n)
    expect(await ch.get(id)).toMatchObject({ status: 'closed', outcome: 'unilateral', closedAt: BigInt(deadline + 1) })
  })
})

describe('channel SCORE: conditional payments', () => {
  it('redeem takes the right preimage before expiry only; withdraw waits for pending expiries and returns what was not redeemed', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    const p1 = sha256(utf8('preimage one'))
    const p2 = sha256(utf8('preimage two'))
    const closeAt = ch.height + 1
    const deadline = closeAt + PERIOD
    const h1: Htlc = { id: 1, from: 0, amount: 200n, hashLock: sha256(p1), expiry: deadline + 10 }
    const h2: Htlc = { id: 4, from: 1, amount: 100n, hashLock: sha256(p2), expiry: deadline + 1 }
    await ch.block([ch.call(bob, 'close', { id, state: enc(state(id, 3, [300n, 400n], [h1, h2])) })])
    expect(ch.height).toBe(closeAt)

    let ex = await ch.block([
      ch.call(tower, 'redeem', { id, htlcId: 1n, preimage: p2 }),
      ch.call(tower, 'redeem', { id, htlcId: 1n, preimage: new Uint8Array(5) }),
      ch.call(tower, 'redeem', { id, htlcId: 9n, preimage: p1 }),
      ch.call(tower, 'redeem', { id, htlcId: 1n, preimage: p1 }),
      ch.call(tower, 'redeem', { id, htlcId: 1n, preimage: p1 }),
    ])
    expect(codes(ex)).toEqual(['BAD_PREIMAGE', 'BAD_PREIMAGE', 'UNKNOWN_HTLC', 'OK', 'ALREADY_REDEEMED'])
    const redeemed = ex.receipts[3]?.logs[0]
    expect(redeemed?.event).toBe('ChannelRedeemed')
    expect(redeemed?.indexed[1]).toBe(1n)
    expect(toHex(redeemed?.data[0] as Uint8Array)).toBe(toHex(p1))
    // The preimage is in the state under its lock, where the hop before proves it; the refused
    // tries wrote nothing there.
    const preimageAt = async (lock: Uint8Array) => {
      const b = await ch.c.tree.get(preimageKey(lock))
      return b === undefined ? undefined : toHex(b)
    }
    expect(await preimageAt(h1.hashLock)).toBe(toHex(p1))
    expect(await preimageAt(h2.hashLock)).toBeUndefined()
    // Moved to B's side of the record; paid only at withdraw.
    expect(await ch.get(id)).toMatchObject({
      balances: [300n, 600n],
      htlcs: [
        { id: 1n, redeemed: true },
        { id: 4n, redeemed: false },
      ],
    })
    expect(await ch.channelBalance()).toBe(1000n)

    await ch.until(deadline)
    ex = await ch.block([ch.call(tower, 'withdraw', { id })]) // deadline + 1: h2 may still be redeemed
    expect(codes(ex)).toEqual(['TOO_EARLY'])
    expect(ex.receipts[0]?.failure?.message).toContain('conditional payment 4')
    ex = await ch.block([ch.call(tower, 'redeem', { id, htlcId: 4n, preimage: p2 }), ch.call(tower, 'withdraw', { id })])
    expect(codes(ex)).toEqual(['HTLC_EXPIRED', 'OK'])
    // A: 300; B: 400 + 200 redeemed from A + its own 100 back.
    expect(ex.receipts[1]?.logs[0]?.data).toEqual([300n, 700n, 'unilateral'])
    expect(await ch.net(alice)).toBe(300n - 600n)
    expect(await ch.net(bob)).toBe(700n - 400n)
    expect(await ch.channelBalance()).toBe(0n)
  })
})

describe('channel SCORE: refusals change nothing', () => {
  it('forged, foreign, unbalanced, non-final and undecodable states, strangers, double joins and stray values are typed failures', async () => {
    const ch = await Chain.start()
    const id = await ch.channel(600n, 400n)
    const other = await ch.channel(50n, 50n)
    const forged: SignedChannelState = {
      state: state(id, 1, [0n, 1000n], [], true),
      signatures: [signChannelState(state(id, 1, [0n, 1000n], [], true), mallory.secretKey), new Uint8Array(64)],
    }
    const forgedB = cosign(state(id, 1, [0n, 1000n], [], true), alice, mallory)
    const foreign = enc(state(other, 1, [50n, 50n]))
    const good = enc(state(id, 1, [500n, 500n]))
    const garbage = new Uint8Array([1, 2, 3])
    const before = { id: await ch.raw(id), other: await ch.raw(other), account: await ch.channelBalance() }
    const parties = [alice, bob, tower, mallory]
    const nets = await Promise.all(parties.map((k) => ch.net(k)))
    const txs: [string, Transaction][] = [
      ['BAD_STATE', ch.call(tower, 'closeCooperative', { state: encodeSignedChannelState(forged) })],
      ['BAD_STATE', ch.call(tower, 'closeCooperative', { state: encodeSignedChannelState(forgedB) })],
      ['BAD_STATE', ch.call(alice, 'close', { id, state: foreign })],
      ['BAD_STATE', ch.call(tower, 'closeCooperative', { state: enc(state(id, 2, [600n, 401n], [], true)) })],
      ['BAD_STATE', ch.call(tower, 'closeCooperative', { state: good })],
      ['BAD_STATE', ch.call(alice, 'close', { id, state: enc(state(id, 2, [600n, 400n], [], true)) })],
      ['BAD_STATE', ch.call(tower, 'closeCooperative', { state: garbage })],
      ['BAD_STATE', ch.call(alice, 'close', { id, state: garbage })],
      ['NOT_A_PARTY', ch.call(mallory, 'close', { id, state: good })],
      ['NOT_A_PARTY', ch.call(alice, 'join', { id }, 5n)],
      ['WRONG_STATUS', ch.call(bob, 'join', { id }, 5n)],
      ['WRONG_STATUS', ch.call(alice, 'cancel', { id })],
      ['WRONG_STATUS', ch.call(tower, 'challenge', { state: good })],
      ['WRONG_STATUS', ch.call(tower, 'redeem', { id, htlcId: 1n, preimage: new Uint8Array(32) })],
      ['WRONG_STATUS', ch.call(tower, 'withdraw', { id })],
      ['NOT_PAYABLE', ch.call(alice, 'close', { id, state: good }, 7n)],
      ['NOT_PAYABLE', ch.call(tower, 'withdraw', { id }, 1n)],
      ['NOT_PAYABLE', ch.call(tower, 'get', { id }, 1n)],
      ['UNKNOWN_METHOD', ch.call(tower, 'steal', { id }, 0n)],
      ['UNKNOWN_CHANNEL', ch.call(bob, 'join', { id: new Uint8Array(32) }, 5n)],
      ['INVALID_ARGUMENT', ch.call(bob, 'join', { id: new Uint8Array(31) }, 5n)],
      ['INVALID_ARGUMENT', ch.call(bob, 'join', { id, extra: 1n }, 5n)],
      ['INVALID_ARGUMENT', ch.call(tower, 'close', { id: 'not bytes' })],
    ]
    const ex = await ch.block(txs.map(([, tx]) => tx))
    expect(codes(ex)).toEqual(txs.map(([code]) => code))
    expect(ex.receipts.every((r) => r.logs.length === 0)).toBe(true)
    const msg = (i: number) => ex.receipts[i]?.failure?.message
    expect(msg(0)).toBe("party A's signature does not verify")
    expect(msg(1)).toBe("party B's signature does not verify")
    expect(msg(2)).toBe('the state belongs to another channel')
    expect(msg(3)).toBe('the state holds 1001, the channel 1000')
    expect(msg(4)).toBe('a cooperative close needs a final state')
    expect(msg(6)).toMatch(/^the state does not decode/)
    expect(await ch.raw(id)).toBe(before.id)
    expect(await ch.raw(other)).toBe(before.other)
    expect(await ch.channelBalance()).toBe(before.account)
    expect(await Promise.all(parties.map((k) => ch.net(k)))).toEqual(nets)
  })

  it('open refuses a missing deposit, itself as peer, keys that are not the parties’, a bad key and a challenge period out of range', async () => {
    const ch = await Chain.start()
    const badKey = new Uint8Array(32) // the identity point's encoding is of small order
    badKey[0] = 1
    const attempts = [
      ch.open(0n),
      ch.open(10n, { peer: alice }),
      ch.open(10n, { peerKey: mallory.publicKey }),
      ch.open(10n, { peerKey: badKey }),
      ch.open(10n, { period: 1n }),
      ch.open(10n, { period: 100_001n }),
    ]
    const ex = await ch.block(attempts.map((a) => a.tx))
    expect(codes(ex)).toEqual(Array(attempts.length).fill('INVALID_ARGUMENT'))
    for (const a of attempts) expect(await ch.raw(a.id)).toBeUndefined()
    expect(await ch.channelBalance()).toBe(0n)
    expect(await ch.net(alice)).toBe(0n)
    // The opener's key must be the sender's own.
    const stolen = ch.call(
      mallory,
      'open',
      { peer: bob.address, openerKey: alice.publicKey, peerKey: bob.publicKey, challengePeriod: 5n },
      10n,
    )
    expect(codes(await ch.block([stolen]))).toEqual(['INVALID_ARGUMENT'])
    expect(await ch.net(mallory)).toBe(0n)
  })
})

describe('channel SCORE: channelCall on its own', () => {
  it('writes nothing into the given overlay when it refuses, even after the value moved in', () => {
    const balances = new Map([[toHex(accountKey(alice.address)), encode(accountStateCodec, { balance: 50n, nonce: 0 })]])
    const root = new StateOverlay((k) => balances.get(toHex(k)))
    const txHash = sha256(utf8('open'))
    const base = { from: alice.address, height: 1, txHash, query: false }
    const params = { peer: bob.address, openerKey: alice.publicKey, peerKey: bob.publicKey, challengePeriod: 2n }
    // More than the sender holds; then a period out of range, refused after the deposit moved.
    expect(channelCall(root, { ...base, method: 'open', params, value: 51n })).toMatchObject({
      ok: false,
      failure: { code: 'INSUFFICIENT_BALANCE' },
    })
    expect(channelCall(root, { ...base, method: 'open', params: { ...params, challengePeriod: 0n }, value: 5n })).toMatchObject({
      ok: false,
      failure: { code: 'INVALID_ARGUMENT' },
    })
    expect(root.changes()).toEqual([])
    const r = channelCall(root, { ...base, method: 'open', params, value: 5n })
    expect(r.ok && toHex(r.result as Uint8Array)).toBe(toHex(channelIdOf(txHash)))
    expect(root.changes()).toHaveLength(3) // the sender, the channel account and the record
  })
})

describe('channel SCORE: determinism', () => {
  it('the same blocks give the same receipts and state roots on two chains', async () => {
    const [a, b] = [await Chain.start(), await Chain.start()]
    const { tx, id } = a.open(600n)
    const blocks: Transaction[][] = [
      [tx],
      [a.call(bob, 'join', { id }, 400n), a.call(bob, 'join', { id }, 1n)],
      [a.call(alice, 'close', { id, state: enc(state(id, 1, [550n, 450n])) })],
      [a.call(tower, 'challenge', { state: enc(state(id, 2, [100n, 900n])), revocation: revocation(id, 0, 2) })],
    ]
    for (const txs of blocks) {
      const [ea, eb] = [await a.block(txs), await b.block(txs)]
      expect(toHex(ea.result.stateRoot)).toBe(toHex(eb.result.stateRoot))
      expect(ea.receipts).toEqual(eb.receipts)
    }
    expect((await a.record(id))?.status).toBe(ChannelStatus.Closed)
    expect(await b.net(bob)).toBe(600n)
  })
})
