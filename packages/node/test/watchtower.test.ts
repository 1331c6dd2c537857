/**
 * The watchtower of a validator's node, through a real node on LevelDB: it must challenge a stale
 * close even when the close was committed while the tower was not running (a kill -9 after the
 * block, before its challenge got into one); with the closer's revocation it penalises the closer,
 * without one its newer state replaces the closer's.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type ChannelRevocation,
  type ChannelState,
  ChannelStatus,
  channelCallTransaction,
  channelIdOf,
  channelKey,
  channelRecordCodec,
  channelRevocationDigest,
  decode,
  encodeSignedChannelState,
  encodeWatchRequest,
  type KeyPair,
  type Party,
  type SignedChannelState,
  signChannelState,
  to0x,
  toHex,
  transactionHash,
  type Value,
  type WatchRequest,
} from '@loopchain/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { FullNode, type FullNodeOptions, MempoolError, nativeCrypto } from '../src/index.js'
import { nextBlock, testGenesis, testKey, testTransfer } from './fixtures/test-chain.js'

const NET = 41
const v = testKey('tower validator')
const alice = testKey('tower alice')
const bob = testKey('tower bob')
const g = testGenesis({ chainId: 'tower-test', networkId: NET, validators: [v], funded: alice, params: { blockIntervalMs: 20 } })
const dirs: string[] = []
const nodes: FullNode[] = []
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.stop().catch(() => undefined)
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function start(dir: string, watchtower: FullNodeOptions['watchtower']): Promise<FullNode> {
  const n = await FullNode.open({ dataDir: dir, genesis: g, validatorSecret: v.secretKey, watchtower })
  nodes.push(n)
  n.start()
  return n
}

const call = (key: KeyPair, nonce: number, method: string, params: Value, value = 0n) =>
  channelCallTransaction({ key, networkId: NET, nonce, method, params, value, timestamp: Date.now() * 1000 }, nativeCrypto)

/** Submits `tx` and waits for the block that carries it. */
async function include(n: FullNode, tx: ReturnType<typeof call>): Promise<void> {
  const hash = toHex(transactionHash(tx.body))
  const carried = nextBlock(n, (b) => b.receipts.some((r) => toHex(r.txHash) === hash))
  await n.submit(tx)
  await carried
}

function cosigned(channelId: Uint8Array, seq: number, balances: [bigint, bigint]): SignedChannelState {
  const state: ChannelState = { channelId, seq, balances, htlcs: [], final: false }
  return { state, signatures: [signChannelState(state, alice.secretKey), signChannelState(state, bob.secretKey)] }
}

/** Party `party`'s revocation of the states below `below`, signed with `k` (its own key unless forged). */
function revoked(channelId: Uint8Array, party: Party, below: number, k: KeyPair = party === 0 ? alice : bob): ChannelRevocation {
  return { channelId, party, below, signature: nativeCrypto.sign(channelRevocationDigest(channelId, party, below), k.secretKey) }
}

/** What bob hands the tower: state `seq` co-signed, with alice's revocation of the states below it unless told otherwise. */
const request = (id: Uint8Array, seq: number, balances: [bigint, bigint], revocations = [revoked(id, 0, seq)]) =>
  encodeWatchRequest({ signed: cosigned(id, seq, balances), revocations })

async function record(n: FullNode, id: Uint8Array) {
  const raw = await n.committedState().get(channelKey(id))
  return raw === undefined ? undefined : decode(channelRecordCodec, raw)
}

/** Opens a channel alice → bob (alice deposits `a`, bob `b`), from alice's nonce `nonce`; resolves with its id. */
async function openChannel(n: FullNode, nonce: number, a: bigint, b: bigint, bobNonce: number): Promise<Uint8Array> {
  const open = call(
    alice,
    nonce,
    'open',
    { peer: bob.address, openerKey: alice.publicKey, peerKey: bob.publicKey, challengePeriod: 1_000n },
    a,
  )
  await include(n, open)
  const id = channelIdOf(transactionHash(open.body))
  await include(n, call(bob, bobNonce, 'join', { id }, b))
  return id
}

/** A started validator with its tower (as `watchtower` says) on a fresh directory, bob funded. */
async function funded(watchtower: FullNodeOptions['watchtower'] = true): Promise<{ dir: string; n: FullNode }> {
  const dir = mkdtempSync(join(tmpdir(), 'loopchain-tower-'))
  dirs.push(dir)
  const n = await start(dir, watchtower)
  await include(n, testTransfer(NET, alice, bob.address, 0, 5_000n))
  return { dir, n }
}

/** Alice (nonce 2) closes channel `id` with the old state 1, which she revoked; the tower's challenge must give bob everything. */
async function staleCloseIsPenalised(n: FullNode, id: Uint8Array): Promise<void> {
  await include(n, call(alice, 2, 'close', { id, state: encodeSignedChannelState(cosigned(id, 1, [550n, 450n])) }))
  await vi.waitFor(async () => expect((await record(n, id))?.outcome).toBeDefined(), { timeout: 15_000 })
  expect(await record(n, id)).toMatchObject({ status: ChannelStatus.Closed, balances: [0n, 1000n] })
}

describe('watchtower', () => {
  it('a challenge the node does not admit (a full pool) is sent again at the next block', async () => {
    const { n } = await funded()
    const id = await openChannel(n, 1, 600n, 400n, 0)
    expect(await n.watchtower?.watch(request(id, 2, [100n, 900n]))).toBe(2)
    // The node refuses the tower's first challenge, the way a full pool refuses it.
    const submit = n.submit.bind(n)
    let refusals = 0
    n.submit = async (tx) => {
      if (!(tx instanceof Uint8Array) && tx.body.from === v.address && refusals++ === 0)
        throw new MempoolError('POOL_FULL', 'the mempool is full; retry later')
      return submit(tx)
    }
    await staleCloseIsPenalised(n, id)
    expect(refusals).toBe(2)
  }, 60_000)

  it('a state handed in while a close of its channel is committed is still defended', async () => {
    const { n } = await funded()
    const id = await openChannel(n, 1, 600n, 400n, 0)
    // The tower's write of the state waits until alice's stale close is in a block: the tower read
    // the channel as open before, and the block came while it had no state of the channel yet.
    const db = (n.watchtower as unknown as { db: { write: (ops: unknown) => Promise<void> } }).db
    const write = db.write.bind(db)
    let release = () => {}
    const gate = new Promise<void>((r) => {
      release = r
    })
    db.write = async (ops) => {
      await gate
      return write(ops)
    }
    const handed = n.watchtower?.watch(request(id, 2, [100n, 900n]))
    const penalised = staleCloseIsPenalised(n, id)
    await vi.waitFor(async () => expect((await record(n, id))?.status).toBe(ChannelStatus.Closing), { timeout: 15_000 })
    release()
    expect(await handed).toBe(2)
    await penalised
  }, 60_000)

  it('two watch requests for one channel at once: the newer state and both revocations are held, in memory and on disk', async () => {
    const { dir, n } = await funded()
    const id = await openChannel(n, 1, 600n, 400n, 0)
    // The newer first: taken together, the older one's write used to land last and replace it.
    const both = await Promise.all([
      n.watchtower?.watch(request(id, 5, [100n, 900n], [revoked(id, 0, 5)])),
      n.watchtower?.watch(request(id, 3, [300n, 700n], [revoked(id, 1, 3)])),
    ])
    expect(both).toEqual([5, 5])
    await n.stop()
    nodes.splice(nodes.indexOf(n), 1)
    const again = await start(dir, true)
    const held = (again.watchtower as unknown as { held: Map<string, WatchRequest> }).held.get(to0x(id))
    expect(held?.signed.state.seq).toBe(5)
    expect(held?.revocations.map((r) => [r.party, r.below])).toEqual([
      [0, 5],
      [1, 3],
    ])
  }, 60_000)

  it('a full tower lets its smallest channel go for a larger one, and refuses one no larger', async () => {
    const { n } = await funded({ maxChannels: 2 })
    const small = await openChannel(n, 1, 1n, 0n, 0)
    const mid = await openChannel(n, 2, 50n, 0n, 1)
    const large = await openChannel(n, 3, 900n, 100n, 2)
    const tiny = await openChannel(n, 4, 1n, 0n, 3)
    const hand = (id: Uint8Array, balances: [bigint, bigint]) => n.watchtower?.watch(encodeSignedChannelState(cosigned(id, 1, balances)))
    await hand(small, [0n, 1n])
    await hand(mid, [25n, 25n])
    expect(n.watchtower?.size).toBe(2)
    await expect(hand(tiny, [0n, 1n])).rejects.toMatchObject({ code: 'FULL' })
    expect(await hand(large, [500n, 500n])).toBe(1)
    expect(n.watchtower?.size).toBe(2)
    // The smallest went: handing it again is refused now (it is the smallest, the tower is full).
    await expect(hand(small, [0n, 1n])).rejects.toMatchObject({ code: 'FULL' })
  }, 60_000)

  it('without the closer’s revocation its challenge replaces the closer’s state and penalises nobody; a revocation handed in later is kept', async () => {
    const { n } = await funded()
    const id = await openChannel(n, 1, 600n, 400n, 0)
    const other = await openChannel(n, 2, 10n, 0n, 1)
    // Refused, nothing held: a forged revocation, bob's own, one that covers no state, another channel's, trailing bytes.
    for (const [bad, code] of [
      [request(id, 2, [100n, 900n], [revoked(id, 0, 2, bob)]), 'BAD_REVOCATION'],
      [request(id, 2, [100n, 900n], [revoked(id, 0, 0)]), 'BAD_REVOCATION'],
      [request(id, 2, [100n, 900n], [revoked(other, 0, 2)]), 'BAD_REVOCATION'],
      [new Uint8Array([...request(id, 2, [100n, 900n]), 1]), 'MALFORMED'],
    ] as const)
      await expect(n.watchtower?.watch(bad)).rejects.toMatchObject({ code })
    expect(n.watchtower?.size).toBe(0)
    // State 3 without a revocation; then state 2 with alice's revocation below 2: the tower keeps 3 and that revocation.
    expect(await n.watchtower?.watch(request(id, 3, [200n, 800n], []))).toBe(3)
    expect(await n.watchtower?.watch(request(id, 2, [100n, 900n]))).toBe(3)
    // Alice closes with state 2 (not revoked below 3): the tower's state 3 replaces it.
    await include(n, call(alice, 3, 'close', { id, state: encodeSignedChannelState(cosigned(id, 2, [100n, 900n])) }))
    await vi.waitFor(async () => expect((await record(n, id))?.seq).toBe(3), { timeout: 15_000 })
    expect(await record(n, id)).toMatchObject({ status: ChannelStatus.Closing, balances: [200n, 800n], outcome: undefined })
    // The same with the other channel and a state alice did revoke: penalised.
    expect(await n.watchtower?.watch(request(other, 2, [4n, 6n]))).toBe(2)
    await include(n, call(alice, 4, 'close', { id: other, state: encodeSignedChannelState(cosigned(other, 1, [8n, 2n])) }))
    await vi.waitFor(async () => expect((await record(n, other))?.outcome).toBeDefined(), { timeout: 15_000 })
    expect(await record(n, other)).toMatchObject({ status: ChannelStatus.Closed, balances: [0n, 10n] })
  }, 60_000)

  it('challenges a stale close committed while it was down once it runs again, and again when its challenge left the pool unused', async () => {
    const first = await funded()
    const dir = first.dir
    let n = first.n
    const open = call(
      alice,
      1,
      'open',
      { peer: bob.address, openerKey: alice.publicKey, peerKey: bob.publicKey, challengePeriod: 1_000n },
      600n,
    )
    await include(n, open)
    const id = channelIdOf(transactionHash(open.body))
    await include(n, call(bob, 0, 'join', { id }, 400n))
    // Bob hands the tower the latest state, then goes away.
    const old = cosigned(id, 1, [550n, 450n])
    expect(await n.watchtower?.watch(request(id, 2, [100n, 900n]))).toBe(2)
    await n.stop()

    // Alice closes with the old state while the node runs without its tower (it was down).
    n = await start(dir, false)
    await include(n, call(alice, 2, 'close', { id, state: encodeSignedChannelState(old) }))
    expect(await record(n, id)).toMatchObject({ status: ChannelStatus.Closing, seq: 1 })
    await n.stop()

    // Back with its tower (not making blocks yet): it looks at the channels it holds and challenges.
    n = await FullNode.open({ dataDir: dir, genesis: g, validatorSecret: v.secretKey })
    nodes.push(n)
    expect(n.watchtower?.challengesSent).toBe(1)
    expect(n.mempool.size).toBe(1)
    // That challenge leaves the pool unused (here: expired); the tower sends it again at the next block.
    await n.mempool.prune((Date.now() + 2 * g.params.txTimestampWindowMs) * 1000)
    expect(n.mempool.size).toBe(0)
    n.start()
    await include(n, testTransfer(NET, alice, bob.address, 3, 1n))
    await vi.waitFor(async () => expect((await record(n, id))?.outcome).toBeDefined(), { timeout: 15_000 })
    expect(n.watchtower?.challengesSent).toBe(2)
    expect(await record(n, id)).toMatchObject({ status: ChannelStatus.Closed, balances: [0n, 1000n] })
  }, 60_000)
})
