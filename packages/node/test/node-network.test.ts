/**
 * A full node on its real libp2p host, in this process: what happens around the host's lifetime.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  type Address,
  type Block,
  blockCodec,
  bytes,
  commitCodec,
  consensusMessageCodec,
  decode,
  encode,
  encodeFrame,
  FrameKind,
  type Genesis,
  type KeyPair,
  list,
  MAX_TX_BYTES,
  Right,
  signVote,
  toHex,
  transactionCodec,
  type Value,
  VoteType,
} from '@loopchain/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  connectNode,
  createNodeHost,
  FullNode,
  memberPeerIds,
  type NodeHost,
  type NodeLogger,
  nodeRpcMethods,
  peerIdFromNodeKey,
  type RequestError,
} from '../src/index.js'
import { SYNC_SLOW_ANSWER_MS, SYNC_TURN_MS, syncProtocolName, syncRequestCodec, syncResponseCodec } from '../src/node/p2p-network.js'
import { syncProgress } from '../src/node/rpc-methods.js'
import { RESEND_FORWARD_MIN_MS, resendPayload } from '../src/p2p/consensus-gossip.js'
import { releasePortBlock, reservePortBlock } from '../src/testing/ports.js'
import { governanceTx, idle as idleNodes, testGenesis, testKey, testMessage, testTransfer } from './fixtures/test-chain.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

const quiet: NodeLogger = { info() {}, warn() {}, error() {}, debug() {} }

/** Validator `v`'s node on its real libp2p host (node key `nodeKey`, TCP on a reserved port block), started; undone after the test. */
async function validatorOnHost(g: Genesis, v: KeyPair, nodeKey: KeyPair) {
  const port = reservePortBlock()
  cleanups.push(() => releasePortBlock(port))
  const dataDir = mkdtempSync(join(tmpdir(), 'loopchain-node-net-'))
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
  const node = await FullNode.open({ dataDir, genesis: g, validatorSecret: v.secretKey })
  cleanups.push(() => node.stop())
  const host = await connectNode(node, { nodeKey: nodeKey.secretKey, tcpPort: port, wsPort: false, logger: quiet })
  cleanups.push(() => host.stop())
  node.start()
  return { node, host, port }
}

/** A bare libp2p host that plays a peer (no node behind it; it calls everyone a member). */
async function peerHost(chainId: string, nodeKey: KeyPair, tcpPort: number): Promise<NodeHost> {
  const h = await createNodeHost({ chainId, nodeKey: nodeKey.secretKey, isMember: () => true, tcpPort, wsPort: false, logger: quiet })
  cleanups.push(() => h.stop())
  return h
}

describe('full node on its libp2p host', () => {
  it('a stopped host lets go of its node: nothing goes out through it after, not even a batch that was waiting, and nothing is rejected unhandled', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (e: unknown) => unhandled.push(e)
    process.on('unhandledRejection', onUnhandled)
    cleanups.push(() => void process.off('unhandledRejection', onUnhandled))
    const logged: { message: string; fields?: Record<string, unknown> }[] = []
    const logger: NodeLogger = {
      info: () => {},
      warn: () => {},
      error: () => {},
      debug: (message, fields) => logged.push({ message, ...(fields ? { fields } : {}) }),
    }
    const validator = testKey('stopping host validator')
    const alice = testKey('stopping host alice')
    const genesis = testGenesis({ chainId: 'stopping-host', networkId: 31, validators: [validator], funded: alice })
    const dataDir = mkdtempSync(join(tmpdir(), 'loopchain-node-net-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const node = await FullNode.open({ dataDir, genesis, validatorSecret: validator.secretKey })
    cleanups.push(() => node.stop())
    const port = reservePortBlock()
    cleanups.push(() => releasePortBlock(port))
    // What the host attached to the node is let go when it stops (its admission listener here).
    let released = 0
    const listen = node.onAdmissionChange.bind(node)
    vi.spyOn(node, 'onAdmissionChange').mockImplementation((f) => {
      const off = listen(f)
      return () => {
        released++
        off()
      }
    })
    const host = await connectNode(node, { nodeKey: testKey('stopping host key').secretKey, tcpPort: port, wsPort: false, logger })
    const published: string[] = []
    const publish = host.publish.bind(host)
    vi.spyOn(host, 'publish').mockImplementation((topic, data) => {
      published.push(topic)
      return publish(topic, data)
    })
    // Pooled, and waiting in the transaction batch (sent 20 ms later) when the host stops.
    await node.submit(testTransfer(31, alice, validator.address, 0, 1n))
    expect(released).toBe(0)
    await host.stop()
    expect(released).toBe(1)
    // Another after: pooled, and passed on to no one.
    await node.submit(testTransfer(31, alice, validator.address, 1, 1n))
    expect(node.mempool.size).toBe(2)
    await new Promise((r) => setTimeout(r, 300))
    expect(published).toEqual([])
    expect(logged.filter((l) => l.message === 'gossip: publish failed')).toEqual([])
    expect(unhandled).toEqual([])
  })
})

describe('block sync against a member that answers wrongly', () => {
  /**
   * A validator with a few blocks, a member host M whose sync answers come from `answer`, and a
   * fresh observer B connected to both. Returns B, M's request count and the ids.
   */
  async function scene(
    answer: (from: number, honest: FullNode) => Promise<Uint8Array>,
    opts: { txs?: number; dialHonest?: boolean; logger?: (b: FullNode) => NodeLogger } = {},
  ) {
    const v = testKey('sync validator')
    const alice = testKey('sync alice')
    const [keyA, keyM, keyB] = ['sync node A', 'sync node M', 'sync node B'].map((l) => testKey(l))
    const base = testGenesis({ chainId: 'sync-liars', networkId: 32, validators: [v], funded: alice, params: { blockIntervalMs: 20 } })
    const g: Genesis = {
      ...base,
      members: [
        { ...(base.members[0] as Genesis['members'][number]), nodeKey: keyA?.publicKey },
        { id: 'bank-m', name: 'Bank M', address: (keyM as typeof v).address, nodeKey: keyM?.publicKey, rights: Right.MemberNode },
        { id: 'bank-b', name: 'Bank B', address: (keyB as typeof v).address, nodeKey: keyB?.publicKey, rights: Right.MemberNode },
      ],
    }
    const { node: a, host: hostA, port } = await validatorOnHost(g, v, keyA as typeof v)
    const dirB = mkdtempSync(join(tmpdir(), 'loopchain-sync-'))
    cleanups.push(() => rmSync(dirB, { recursive: true, force: true }))
    const txs = opts.txs ?? 3
    for (let nonce = 0; nonce < txs; nonce++) {
      await a.submit(testTransfer(32, alice, v.address, nonce, 1n))
      await vi.waitFor(() => expect(a.mempool.size).toBe(0), { timeout: 10_000 })
    }
    await vi.waitFor(() => expect(a.height).toBeGreaterThanOrEqual(txs + 1), { timeout: 10_000 })

    let asked = 0
    const hostM = await createNodeHost({
      chainId: g.chainId,
      nodeKey: (keyM as typeof v).secretKey,
      isMember: () => true,
      tcpPort: port + 1,
      wsPort: false,
      logger: quiet,
    })
    cleanups.push(() => hostM.stop())
    await hostM.handle(
      syncProtocolName(g.chainId),
      (req) => {
        asked++
        return answer(decode(syncRequestCodec, req).from, a)
      },
      { maxRequestBytes: 64, memberOnly: false },
    )

    const b = await FullNode.open({ dataDir: dirB, genesis: g })
    cleanups.push(() => b.stop())
    const hostB = await connectNode(b, {
      nodeKey: (keyB as typeof v).secretKey,
      tcpPort: port + 2,
      wsPort: false,
      bootstrap: [hostM.multiaddrs()[0] as string, ...(opts.dialHonest === false ? [] : [hostA.multiaddrs()[0] as string])],
      logger: opts.logger?.(b) ?? quiet,
    })
    cleanups.push(() => hostB.stop())
    return { a, b, hostB, liar: hostM.peerId, asked: () => asked, honestAddr: hostA.multiaddrs()[0] as string }
  }

  const response = (blocks: { block: unknown; commit: unknown }[], head = 1_000_000) => encode(syncResponseCodec, { head, blocks } as never)

  it('a member answering with blocks that do not start where asked is banned, and the node syncs from another', async () => {
    // Always block 2, whatever was asked: the old loop asked again and again (thousands a second).
    const s = await scene(async (_from, honest) => response([(await honest.committedBlock(2)) as never]))
    await vi.waitFor(() => expect(s.b.height).toBe(s.a.height), { timeout: 15_000 })
    await vi.waitFor(() => expect(s.hostB.isBanned(s.liar)).toBe(true), { timeout: 15_000 })
    expect(s.asked()).toBeLessThanOrEqual(2)
  }, 40_000)

  it('a head a member claims but never serves leaves the node reading as caught up once the sync ends', async () => {
    // Honest blocks, a head of 1,000,000. What lc_getNetworkInfo shows, read at each progress line.
    const seen: { logged: unknown; shown: unknown }[] = []
    const s = await scene(
      async (from, honest) => {
        const c = await honest.committedBlock(from)
        return response(c ? [c as never] : [])
      },
      {
        logger: (b) => ({
          ...quiet,
          info: (msg, fields) => {
            if (msg === 'sync: progress') seen.push({ logged: fields, shown: syncProgress(b) })
          },
        }),
      },
    )
    // Just connected, before its first sync round (1.5 s on): it cannot know yet how far behind it is.
    expect(syncProgress(s.b)).toEqual({ height: 0, target: 0, syncing: true, blocksPerSecond: 0, secondsLeft: null })
    await vi.waitFor(() => expect(s.b.height).toBe(s.a.height), { timeout: 15_000 })
    await vi.waitFor(() => expect(s.b.syncTarget).toBe(s.b.height), { timeout: 15_000 })
    // While it synced: the claimed head as the target, the rate the log gave, the time left at it.
    expect(seen.length).toBeGreaterThan(0)
    for (const { logged, shown } of seen) {
      const { height, blocksPerSecond } = logged as { height: number; blocksPerSecond: number }
      expect(blocksPerSecond).toBeGreaterThan(0)
      expect(shown).toEqual({
        height,
        target: 1_000_000,
        syncing: true,
        blocksPerSecond,
        secondsLeft: Math.ceil((1_000_000 - height) / blocksPerSecond),
      })
    }
    // Once it ended: caught up, no rate.
    expect(syncProgress(s.b)).toEqual({ height: s.b.height, target: s.b.height, syncing: false, blocksPerSecond: 0, secondsLeft: null })
    expect(s.b.metrics()).toContain('loopchain_sync_blocks_per_second 0')
  }, 40_000)

  it.each([
    ['claims a far head', () => 1_000_000],
    ['claims each block it sends is its head', (from: number) => from],
  ])(
    'a member that answers each request slowly with one block (and %s) loses its turn, and the node syncs from another',
    async (_what, head) => {
      // One honest block per answer, each just slower than SYNC_SLOW_ANSWER_MS: nothing to ban, but
      // the old loop kept asking it, one block at a time, until the node had every block (with the
      // head it claims, for ever).
      const s = await scene(
        async (from, honest) => {
          await new Promise((r) => setTimeout(r, SYNC_SLOW_ANSWER_MS + 300))
          const c = await honest.committedBlock(from)
          return response(c ? [c as never] : [], head(from))
        },
        { txs: 8, dialHonest: false },
      )
      // The slow member is the only peer at first; the honest one is dialled once it is being asked.
      await vi.waitFor(() => expect(s.asked()).toBeGreaterThanOrEqual(1), { timeout: 15_000 })
      await s.hostB.dial(s.honestAddr)
      // Started, as a running node is: an idle node polls its peers for blocks (every 5 s).
      s.b.start()
      await vi.waitFor(() => expect(s.b.height).toBe(s.a.height), { timeout: 30_000 })
      expect(s.a.height).toBeGreaterThanOrEqual(9)
      expect(s.asked()).toBeLessThanOrEqual(4)
      expect(s.hostB.isBanned(s.liar)).toBe(false)
    },
    60_000,
  )

  it.each([
    ['claims a far head', () => 1_000_000],
    // Each answer then looks whole: it sends all it claims to have.
    ['claims each block it sends is its head', (from: number) => from],
  ])(
    'a member that answers each request with one block just within the slow limit (and %s) loses its turn after SYNC_TURN_MS, and the node syncs from another',
    async (_what, head) => {
      const perAnswer = SYNC_SLOW_ANSWER_MS - 500
      // Twenty blocks: at one an answer it would take the member 30 s to serve them.
      const s = await scene(
        async (from, honest) => {
          await new Promise((r) => setTimeout(r, perAnswer))
          const c = await honest.committedBlock(from)
          return response(c ? [c as never] : [], head(from))
        },
        { txs: 20, dialHonest: false },
      )
      await vi.waitFor(() => expect(s.asked()).toBeGreaterThanOrEqual(1), { timeout: 15_000 })
      await s.hostB.dial(s.honestAddr)
      s.b.start()
      await vi.waitFor(() => expect(s.b.height).toBe(s.a.height), { timeout: SYNC_TURN_MS + 10_000 })
      expect(s.a.height).toBeGreaterThanOrEqual(20)
      expect(s.asked()).toBeLessThanOrEqual(Math.ceil(SYNC_TURN_MS / perAnswer) + 2)
      expect(s.hostB.isBanned(s.liar)).toBe(false)
    },
    60_000,
  )

  it('a member answering with a block whose commit does not verify is banned, and the node syncs from another', async () => {
    const s = await scene(async (from, honest) => {
      const c = await honest.committedBlock(from)
      if (!c) throw new Error(`no block ${from}`)
      return response([{ block: c.block, commit: { ...c.commit, signatures: [] } }])
    })
    await vi.waitFor(() => expect(s.b.height).toBe(s.a.height), { timeout: 15_000 })
    await vi.waitFor(() => expect(s.hostB.isBanned(s.liar)).toBe(true), { timeout: 15_000 })
    expect(s.asked()).toBeLessThanOrEqual(2)
  }, 40_000)
})

describe('admission follows governance', () => {
  const propose = (v: KeyPair, nonce: number, action: Value) => governanceTx(33, v, nonce, 'propose', { action })

  it('a node key governance registers may use the members’ topics; when its right is taken away it is disconnected', async () => {
    const v = testKey('admission validator')
    const keyA = testKey('admission node A')
    const keyO = testKey('admission node O')
    const bankO = testKey('admission bank O')
    const base = testGenesis({ chainId: 'admission-gov', networkId: 33, validators: [v], funded: v, params: { blockIntervalMs: 20 } })
    const g: Genesis = { ...base, members: [{ ...(base.members[0] as Genesis['members'][number]), nodeKey: keyA.publicKey }] }
    const { node: a, host: hostA, port } = await validatorOnHost(g, v, keyA)
    const o = await peerHost(g.chainId, keyO, port + 1)
    const addrA = hostA.multiaddrs()[0] as string
    const connected = () => hostA.connections().some((c) => c.peerId === o.peerId)
    expect(memberPeerIds(a)).toEqual(new Set([hostA.peerId]))

    // Not a member yet: subscribing to the transaction topic gets O disconnected.
    o.subscribe('tx', () => {})
    await o.dial(addrA)
    await vi.waitFor(() => expect(connected()).toBe(false), { timeout: 10_000 })

    // Governance registers O's node key with the member-node right: A admits it from the next block.
    await a.submit(
      propose(v, 0, { type: 'addMember', address: bankO.address, id: 'bank-o', rights: BigInt(Right.MemberNode), nodeKey: keyO.publicKey }),
    )
    await vi.waitFor(() => expect(a.admittedNodeKeys.has(toHex(keyO.publicKey))).toBe(true), { timeout: 10_000 })
    expect(memberPeerIds(a).has(o.peerId)).toBe(true)
    await o.dial(addrA)
    await vi.waitFor(() => expect(hostA.subscribers('tx')).toContain(o.peerId), { timeout: 10_000 })
    await new Promise((r) => setTimeout(r, 500))
    expect(connected()).toBe(true)

    // The member-node right taken away: O is disconnected at once, not at its next message.
    await a.submit(propose(v, 1, { type: 'setRights', address: bankO.address, rights: BigInt(Right.Observer) }))
    await vi.waitFor(() => expect(connected()).toBe(false), { timeout: 10_000 })
    expect(a.admittedNodeKeys.has(toHex(keyO.publicKey))).toBe(false)
    expect(memberPeerIds(a)).toEqual(new Set([hostA.peerId]))
  })

  it('a node its own state does not admit follows the chain by headers and block sync, and joins the members’ topics once admitted', async () => {
    const v = testKey('follow validator')
    const keyA = testKey('follow node A')
    const keyB = testKey('follow node B')
    const bankB = testKey('follow bank B')
    const base = testGenesis({ chainId: 'admission-follow', networkId: 33, validators: [v], funded: v, params: { blockIntervalMs: 20 } })
    const g: Genesis = { ...base, members: [{ ...(base.members[0] as Genesis['members'][number]), nodeKey: keyA.publicKey }] }
    const { node: a, host: hostA, port } = await validatorOnHost(g, v, keyA)
    const dirB = mkdtempSync(join(tmpdir(), 'loopchain-follow-'))
    cleanups.push(() => rmSync(dirB, { recursive: true, force: true }))
    // An idle poll far off: B must follow by the headers it hears.
    const b = await FullNode.open({ dataDir: dirB, genesis: g, idleSyncMs: 60_000 })
    cleanups.push(() => b.stop())
    const hostB = await connectNode(b, {
      nodeKey: keyB.secretKey,
      tcpPort: port + 1,
      wsPort: false,
      bootstrap: [hostA.multiaddrs()[0] as string],
      logger: quiet,
    })
    cleanups.push(() => hostB.stop())
    b.start()
    await vi.waitFor(() => expect(hostA.subscribers('header')).toContain(hostB.peerId), { timeout: 10_000 })
    await new Promise((r) => setTimeout(r, 2_000)) // past B's start-up sync
    // Not admitted, B did not subscribe to the members' topics, so A keeps it connected; it follows A's blocks.
    expect(hostA.subscribers('vote')).not.toContain(hostB.peerId)
    expect(hostA.connections().some((c) => c.peerId === hostB.peerId)).toBe(true)
    for (let nonce = 0; nonce < 2; nonce++) await a.submit(testTransfer(33, v, bankB.address, nonce, 1n))
    await vi.waitFor(() => expect(b.height).toBeGreaterThanOrEqual(2), { timeout: 10_000 })
    // Governance admits B's node key: B reaches that block, admits itself, and subscribes.
    await a.submit(
      propose(v, 2, { type: 'addMember', address: bankB.address, id: 'bank-b', rights: BigInt(Right.MemberNode), nodeKey: keyB.publicKey }),
    )
    await vi.waitFor(() => expect(b.admittedNodeKeys.has(toHex(keyB.publicKey))).toBe(true), { timeout: 10_000 })
    await vi.waitFor(() => expect(hostA.subscribers('vote')).toContain(hostB.peerId), { timeout: 10_000 })
    expect(hostA.connections().some((c) => c.peerId === hostB.peerId)).toBe(true)
  })

  it('a validator whose node key the state does not admit says so in a warning at start', async () => {
    const v = testKey('unadmitted validator')
    const g = testGenesis({ chainId: 'admission-warn', networkId: 33, validators: [v], funded: v })
    const dataDir = mkdtempSync(join(tmpdir(), 'loopchain-admission-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const warned: string[] = []
    const a = await FullNode.open({ dataDir, genesis: g, validatorSecret: v.secretKey })
    cleanups.push(() => a.stop())
    const port = reservePortBlock()
    cleanups.push(() => releasePortBlock(port))
    // The genesis records no node key for this validator's institution: whatever key the node runs with is not admitted.
    const host = await connectNode(a, {
      nodeKey: testKey('unadmitted node').secretKey,
      tcpPort: port,
      wsPort: false,
      logger: { ...quiet, warn: (m) => void warned.push(m) },
    })
    cleanups.push(() => host.stop())
    expect(warned.filter((m) => m.includes('node key is not admitted'))).toHaveLength(1)
  })

  it('a validator without an admitted node is named in a warning, lc_getNetworkInfo and /metrics until governance records its key', async () => {
    const v = testKey('keyless validator')
    const g = testGenesis({ chainId: 'keyless-validator', networkId: 33, validators: [v], funded: v, params: { blockIntervalMs: 20 } })
    const dataDir = mkdtempSync(join(tmpdir(), 'loopchain-admission-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const warned: { msg: string; fields: Record<string, unknown> | undefined }[] = []
    const a = await FullNode.open({
      dataDir,
      genesis: g,
      validatorSecret: v.secretKey,
      logger: { ...quiet, warn: (msg, fields) => void warned.push({ msg, fields }) },
    })
    cleanups.push(() => a.stop())
    const notAdmitted = () => warned.filter((w) => w.msg.startsWith('validators whose node the chain does not admit'))
    expect(notAdmitted()).toEqual([{ msg: expect.any(String), fields: { validators: [v.address], power: 1, totalPower: 1 } }])
    expect(a.validatorsNotAdmitted).toEqual([v.address])
    expect(a.metrics()).toMatch(/^loopchain_validators_not_admitted 1$/m)
    const getInfo = nodeRpcMethods(a).find((m) => m.name === 'lc_getNetworkInfo')
    if (getInfo === undefined) throw new Error('no lc_getNetworkInfo')
    const info = (await getInfo.handler({}, { client: 'test' })) as { validatorsNotAdmitted: string[] }
    expect(info.validatorsNotAdmitted).toEqual([v.address])
    a.start()
    await a.submit(propose(v, 0, { type: 'setNodeKey', address: v.address, nodeKey: testKey('keyless node').publicKey }))
    await vi.waitFor(() => expect(a.validatorsNotAdmitted).toEqual([]), { timeout: 10_000 })
    expect(a.metrics()).toMatch(/^loopchain_validators_not_admitted 0$/m)
    expect(notAdmitted()).toHaveLength(1) // nothing new to warn about
  })

  it('a restarted node reads the admitted node keys from its state, not from the genesis', async () => {
    const v = testKey('admission restart validator')
    const keyO = testKey('admission restart node O')
    const g = testGenesis({ chainId: 'admission-restart', networkId: 33, validators: [v], funded: v, params: { blockIntervalMs: 20 } })
    const dataDir = mkdtempSync(join(tmpdir(), 'loopchain-admission-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const a = await FullNode.open({ dataDir, genesis: g, validatorSecret: v.secretKey })
    a.start()
    await a.submit(propose(v, 0, { type: 'setNodeKey', address: v.address, nodeKey: keyO.publicKey }))
    await vi.waitFor(() => expect([...a.admittedNodeKeys]).toEqual([toHex(keyO.publicKey)]), { timeout: 10_000 })
    await a.stop()
    const again = await FullNode.open({ dataDir, genesis: g, validatorSecret: v.secretKey })
    cleanups.push(() => again.stop())
    expect([...again.admittedNodeKeys]).toEqual([toHex(keyO.publicKey)])
  })
})

describe('serving non-members', () => {
  it('a protocol serves at most maxConcurrentNonMembers non-member requests at once (BUSY after), and members are not counted', async () => {
    const port = reservePortBlock()
    cleanups.push(() => releasePortBlock(port))
    const [keyS, keyM, keyN] = ['busy server', 'busy member', 'busy outsider'].map((l) => testKey(l).secretKey)
    const make = async (nodeKey: Uint8Array | undefined, i: number, isMember: (id: string) => boolean) => {
      const h = await createNodeHost({
        chainId: 'busy',
        nodeKey: nodeKey as Uint8Array,
        isMember,
        tcpPort: port + i,
        wsPort: false,
        relay: false,
        logger: quiet,
      })
      cleanups.push(() => h.stop())
      return h
    }
    const m = await make(keyM, 1, () => true)
    const n = await make(keyN, 2, () => true)
    const s = await make(keyS, 0, (id) => id === m.peerId)
    // Each request waits until the test lets it go, so the exchanges overlap.
    const waiting: (() => void)[] = []
    const protocol = '/loopchain/busy/test/1'
    await s.handle(protocol, (req) => new Promise((resolve) => waiting.push(() => resolve(req))), { maxConcurrentNonMembers: 2 })
    const addr = s.multiaddrs()[0] as string
    await m.dial(addr)
    await n.dial(addr)
    const ask = (h: NodeHost, byte: number) =>
      h.request(s.peerId, protocol, Uint8Array.of(byte), { timeoutMs: 10_000 }).then(
        (r) => ({ ok: r[0] }),
        (e: RequestError) => ({ code: e.code }),
      )
    const first = [ask(n, 1), ask(n, 2)]
    await vi.waitFor(() => expect(waiting).toHaveLength(2))
    // A third from the non-member is refused at once; a member's request is served alongside.
    expect(await ask(n, 3)).toEqual({ code: 'BUSY' })
    const member = ask(m, 4)
    await vi.waitFor(() => expect(waiting).toHaveLength(3))
    for (const go of waiting.splice(0)) go()
    expect(await Promise.all([...first, member])).toEqual([{ ok: 1 }, { ok: 2 }, { ok: 4 }])
    // The places are free again.
    const again = ask(n, 5)
    await vi.waitFor(() => expect(waiting).toHaveLength(1))
    for (const go of waiting.splice(0)) go()
    expect(await again).toEqual({ ok: 5 })
  })
})

describe('a non-member that does not read its response', () => {
  it('holds neither a place nor its answer for long: others are served meanwhile, and it is cut off (unblamed: a slow link is no fault)', async () => {
    const port = reservePortBlock()
    cleanups.push(() => releasePortBlock(port))
    const logged: { msg: string; fields: Record<string, unknown> | undefined }[] = []
    const make = async (label: string, i: number, logger: NodeLogger = quiet) => {
      const h = await createNodeHost({
        chainId: 'slow-reader',
        nodeKey: testKey(label).secretKey,
        isMember: () => false,
        tcpPort: port + i,
        wsPort: false,
        relay: false,
        logger,
      })
      cleanups.push(() => h.stop())
      return h
    }
    const s = await make('slow reader server', 0, { ...quiet, debug: (msg, fields) => void logged.push({ msg, fields }) })
    const attacker = await make('slow reader attacker', 1)
    const honest = await make('slow reader honest', 2)
    // One place for non-members; a request of byte 1 gets 1 MiB, more than a stream's send window.
    const answer = (req: Uint8Array) => (req[0] === 1 ? new Uint8Array(1 << 20).fill(7) : req)
    const limits = { maxConcurrentNonMembers: 1, sendGraceMs: 300, minReadBytesPerSecond: 1 << 20 }
    const free = '/loopchain/slow-reader/test/1'
    const tight = '/loopchain/slow-reader-tight/test/1'
    let served = 0
    const handler = (req: Uint8Array) => {
      served++
      return answer(req)
    }
    await s.handle(free, handler, limits)
    // Here the unsent bytes one big answer holds are all that non-members may hold.
    await s.handle(tight, handler, { ...limits, maxNonMemberUnsentBytes: 1 << 20 })
    const addr = s.multiaddrs()[0] as string
    await attacker.dial(addr)
    await honest.dial(addr)
    const stall = async (protocol: string) => {
      const stream = await attacker.libp2p.dialProtocol(peerIdFromString(s.peerId), protocol)
      stream.pause() // reads nothing: no window updates, so the answer cannot be sent
      stream.send(encodeFrame(FrameKind.Request, Uint8Array.of(1)))
      await stream.close().catch(() => undefined)
      return stream
    }
    const ask = (protocol: string, byte: number) =>
      honest.request(s.peerId, protocol, Uint8Array.of(byte), { timeoutMs: 5_000 }).then(
        (r) => ({ ok: r[0] }),
        (e: RequestError) => ({ code: e.code }),
      )
    const cutOff = () =>
      logged.filter((l) => l.msg === 'a requester did not read its response in time' && l.fields?.peer === attacker.peerId)

    await stall(free)
    await vi.waitFor(() => expect(served).toBe(1))
    // The handler is done: its place is free although the answer is still unsent.
    expect(await ask(free, 2)).toEqual({ ok: 2 })
    await vi.waitFor(() => expect(cutOff()).toHaveLength(1), { timeout: 10_000 })
    expect(cutOff()[0]?.fields).toMatchObject({ protocol: free, bytes: (1 << 20) + 5 })
    expect(s.isBanned(attacker.peerId)).toBe(false)

    await stall(tight)
    await vi.waitFor(() => expect(served).toBe(3))
    // Its unsent answer fills what non-members may hold: BUSY until it is cut off.
    expect(await ask(tight, 3)).toEqual({ code: 'BUSY' })
    await vi.waitFor(() => expect(cutOff()).toHaveLength(2), { timeout: 10_000 })
    expect(await ask(tight, 4)).toEqual({ ok: 4 })
  })
})

describe('a member re-sending one consensus message under new counters', () => {
  it('has a copy delivered once a second at most: re-sends of a message accepted less than a second ago are dropped', async () => {
    const [v0, v1] = [testKey('resend validator 0'), testKey('resend validator 1')]
    const alice = testKey('resend alice')
    const keyA = testKey('resend node A')
    const keyM = testKey('resend node M')
    const base = testGenesis({ chainId: 'resend-flood', networkId: 36, validators: [v0, v1], funded: alice })
    const g: Genesis = {
      ...base,
      members: [
        ...base.members.map((m) => (m.address === v0.address ? { ...m, nodeKey: keyA.publicKey } : m)),
        { id: 'bank-m', name: 'Bank M', address: keyM.address, nodeKey: keyM.publicKey, rights: Right.MemberNode },
      ],
    }
    const { node: a, host: hostA, port } = await validatorOnHost(g, v0, keyA)
    const delivered = vi.spyOn(a, 'receiveConsensus')
    const m = await peerHost(g.chainId, keyM, port + 1)
    m.subscribe('vote', () => {})
    await m.dial(hostA.multiaddrs()[0] as string)
    await vi.waitFor(() => expect(hostA.subscribers('vote')).toContain(m.peerId), { timeout: 10_000 })
    // The other validator's valid vote (it runs no node here, so height 1 cannot end).
    const vote = encode(consensusMessageCodec, {
      kind: 'vote',
      vote: signVote(
        { type: VoteType.Prevote, height: 1, round: 0, blockHash: new Uint8Array(32), networkId: 36, validator: v1.address },
        v1.secretKey,
      ),
    })
    await m.publish('vote', resendPayload(vote, 1))
    await vi.waitFor(() => expect(delivered).toHaveBeenCalledTimes(1), { timeout: 10_000 })
    const first = Date.now()
    // More copies at once: each is new to gossip, and all are dropped.
    for (let i = 2; i < 6; i++) await m.publish('vote', resendPayload(vote, i))
    await new Promise((r) => setTimeout(r, 400))
    expect(delivered).toHaveBeenCalledTimes(1)
    expect(hostA.isBanned(m.peerId)).toBe(false)
    // A second on, a re-send is news again (a node that missed the message gets it).
    await new Promise((r) => setTimeout(r, Math.max(0, first + RESEND_FORWARD_MIN_MS + 100 - Date.now())))
    await m.publish('vote', resendPayload(vote, 6))
    await vi.waitFor(() => expect(delivered).toHaveBeenCalledTimes(2), { timeout: 10_000 })
  })
})

describe('a member gossiping transactions that cannot be valid', () => {
  it('is banned at the tenth in a minute: disconnected and refused, while one bad transaction only gets it reported', async () => {
    const v = testKey('bad tx validator')
    const alice = testKey('bad tx alice')
    const keyA = testKey('bad tx node A')
    const keyM = testKey('bad tx node M')
    const base = testGenesis({ chainId: 'bad-tx', networkId: 34, validators: [v], funded: alice })
    const g: Genesis = {
      ...base,
      members: [
        { ...(base.members[0] as Genesis['members'][number]), nodeKey: keyA.publicKey },
        { id: 'bank-m', name: 'Bank M', address: keyM.address, nodeKey: keyM.publicKey, rights: Right.MemberNode },
      ],
    }
    const { node: a, host: hostA, port } = await validatorOnHost(g, v, keyA)
    const m = await peerHost(g.chainId, keyM, port + 1)
    m.subscribe('tx', () => {})
    await m.dial(hostA.multiaddrs()[0] as string)
    await vi.waitFor(() => expect(hostA.subscribers('tx')).toContain(m.peerId), { timeout: 10_000 })
    // A transfer whose signature is another message's: the same bytes fail whatever the clock.
    const forged = (nonce: number) => {
      const tx = testTransfer(34, alice, v.address, nonce, 1n)
      const other = testTransfer(34, alice, v.address, nonce, 2n)
      return encode(transactionCodec, { ...tx, signature: other.signature })
    }
    const batch = (txs: Uint8Array[]) => encode(list(bytes(MAX_TX_BYTES), 256), txs)
    // One: reported, not banned.
    await m.publish('tx', batch([forged(0)]))
    await new Promise((r) => setTimeout(r, 1_000))
    expect(hostA.isBanned(m.peerId)).toBe(false)
    expect(hostA.connections().some((c) => c.peerId === m.peerId)).toBe(true)
    // Nine more in one batch: the tenth in a minute bans it.
    await m.publish('tx', batch(Array.from({ length: 9 }, (_, i) => forged(i + 1))))
    await vi.waitFor(() => expect(hostA.isBanned(m.peerId)).toBe(true), { timeout: 10_000 })
    await vi.waitFor(() => expect(hostA.connections().some((c) => c.peerId === m.peerId)).toBe(false), { timeout: 10_000 })
    expect(a.mempool.size).toBe(0)
  })
})

describe('block sync answers', () => {
  it('end when the next block would pass the 8 MiB budget (always holding one), and the next request goes on from there', async () => {
    const v = testKey('budget validator')
    const alice = testKey('budget alice')
    const keyA = testKey('budget node A')
    const base = testGenesis({ chainId: 'sync-budget', networkId: 35, validators: [v], funded: alice, params: { blockIntervalMs: 20 } })
    const g: Genesis = { ...base, members: [{ ...(base.members[0] as Genesis['members'][number]), nodeKey: keyA.publicKey }] }
    const { node: a, host: hostA, port } = await validatorOnHost(g, v, keyA)
    // Twenty-four messages of 480 KB: blocks of up to 3.5 MiB each (MAX_PROPOSED_BLOCK_BYTES), ~11 MB in all.
    const data = new Uint8Array(480_000).fill(9)
    for (let nonce = 0; nonce < 12; nonce++) {
      for (const from of [alice, v]) {
        await a.submit(testMessage(35, from, from.address, nonce, data))
      }
    }
    await vi.waitFor(() => expect(a.mempool.size).toBe(0), { timeout: 30_000 })
    await idleNodes([a])
    const head = a.height
    const p = await peerHost(g.chainId, testKey('budget peer'), port + 1)
    await p.dial(hostA.multiaddrs()[0] as string)
    const ask = async (from: number) => {
      const raw = await p.request(hostA.peerId, syncProtocolName(g.chainId), encode(syncRequestCodec, { from, max: 64 }), {
        timeoutMs: 20_000,
        maxResponseBytes: 64 * 1024 * 1024,
      })
      return { raw, got: decode(syncResponseCodec, raw) }
    }
    const first = await ask(1)
    expect(first.got.head).toBe(head)
    const sizes = first.got.blocks.map((b) => encode(blockCodec, b.block).length + encode(commitCodec, b.commit).length)
    const last = first.got.blocks.at(-1)?.block.header.height as number
    // Cut short of the head, within the budget, and the next block would not have fitted.
    expect(last).toBeLessThan(head)
    expect(sizes.reduce((x, y) => x + y, 0)).toBeLessThanOrEqual(8 * 1024 * 1024)
    const next = await ask(last + 1)
    expect(next.got.blocks[0]?.block.header.height).toBe(last + 1)
    const nextSize = encode(blockCodec, next.got.blocks[0]?.block as Block).length
    expect(sizes.reduce((x, y) => x + y, 0) + nextSize).toBeGreaterThan(8 * 1024 * 1024)
    // All of it arrives over a few answers, in order.
    const heights: number[] = first.got.blocks.map((b) => b.block.header.height)
    for (let from = last + 1; from <= head; ) {
      const { got } = await ask(from)
      heights.push(...got.blocks.map((b) => b.block.header.height))
      from = (got.blocks.at(-1)?.block.header.height as number) + 1
    }
    expect(heights).toEqual(Array.from({ length: head }, (_, i) => i + 1))
  })
})

describe('an idle node’s block-sync polls', () => {
  it('ask one member peer each, in turn, instead of every peer each time', async () => {
    const v = testKey('poll validator')
    const keys = ['poll M1', 'poll M2', 'poll M3'].map((l) => testKey(l))
    const base = testGenesis({ chainId: 'idle-polls', networkId: 36, validators: [v], funded: testKey('poll alice') })
    const g: Genesis = {
      ...base,
      members: [
        ...base.members,
        ...keys.map((k, i) => ({
          id: `bank-m${i}`,
          name: `Bank M${i}`,
          address: k.address,
          nodeKey: k.publicKey,
          rights: Right.MemberNode,
        })),
      ],
    }
    const port = reservePortBlock()
    cleanups.push(() => releasePortBlock(port))
    // Three members with nothing new: each answers "my head is 0" and notes who asked when.
    const asks: { peer: string; at: number }[] = []
    const hosts: NodeHost[] = []
    for (const [i, k] of keys.entries()) {
      const h = await peerHost(g.chainId, k, port + i)
      await h.handle(
        syncProtocolName(g.chainId),
        () => {
          asks.push({ peer: h.peerId, at: Date.now() })
          return encode(syncResponseCodec, { head: 0, blocks: [] })
        },
        { maxRequestBytes: 64, memberOnly: false },
      )
      hosts.push(h)
    }
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-polls-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const b = await FullNode.open({ dataDir: dir, genesis: g, idleSyncMs: 200 })
    cleanups.push(() => b.stop())
    const hostB = await connectNode(b, {
      nodeKey: testKey('poll node B').secretKey,
      tcpPort: port + 3,
      wsPort: false,
      bootstrap: hosts.map((h) => h.multiaddrs()[0] as string),
      logger: quiet,
    })
    cleanups.push(() => hostB.stop())
    b.start()
    // Past the start-up round (at 1.5 s, every peer), nine polls.
    await vi.waitFor(() => expect(asks.length).toBeGreaterThanOrEqual(21), { timeout: 30_000 })
    const last = asks.slice(12, 21)
    // In turn: each peer three times in nine, never the same one twice running.
    for (const h of hosts) expect(last.filter((a) => a.peer === h.peerId)).toHaveLength(3)
    for (let i = 1; i < last.length; i++) expect(last[i]?.peer).not.toBe(last[i - 1]?.peer)
    // One request per 200 ms poll: nine take eight intervals. (Every peer per poll: three polls, ~400 ms.)
    expect((last[8]?.at as number) - (last[0]?.at as number)).toBeGreaterThanOrEqual(1_200)
  }, 60_000)
})

describe('after a quorum loss', () => {
  it('two of four validators stopped and restarted: the chain goes on within seconds, not after gossip forgets the stalled round', async () => {
    const vs = [0, 1, 2, 3].map((i) => testKey(`quorum validator ${i}`))
    const nodeKeys = [0, 1, 2, 3].map((i) => testKey(`quorum node ${i}`))
    const alice = testKey('quorum alice')
    const base = testGenesis({ chainId: 'quorum-loss', networkId: 37, validators: vs, funded: alice, params: { blockIntervalMs: 20 } })
    const g: Genesis = { ...base, members: base.members.map((m, i) => ({ ...m, nodeKey: nodeKeys[i]?.publicKey })) }
    const ports = vs.map(() => reservePortBlock())
    cleanups.push(() => {
      for (const p of ports) releasePortBlock(p)
    })
    const peerIds = await Promise.all(nodeKeys.map((k) => peerIdFromNodeKey(k.secretKey)))
    const dirs = vs.map(() => mkdtempSync(join(tmpdir(), 'loopchain-quorum-')))
    cleanups.push(() => {
      for (const d of dirs) rmSync(d, { recursive: true, force: true })
    })
    const running: ({ node: FullNode; host: NodeHost } | undefined)[] = []
    const start = async (i: number) => {
      const node = await FullNode.open({ dataDir: dirs[i] as string, genesis: g, validatorSecret: vs[i]?.secretKey })
      const host = await connectNode(node, {
        nodeKey: nodeKeys[i]?.secretKey as Uint8Array,
        tcpPort: ports[i],
        wsPort: false,
        bootstrap: ports.flatMap((p, j) => (j === i ? [] : [`/ip4/127.0.0.1/tcp/${p}/p2p/${peerIds[j]}`])),
        logger: quiet,
      })
      node.start()
      running[i] = { node, host }
    }
    const stop = async (i: number) => {
      await running[i]?.host.stop()
      await running[i]?.node.stop()
      running[i] = undefined
    }
    cleanups.push(async () => {
      for (const i of [0, 1, 2, 3]) await stop(i)
    })
    for (const i of [0, 1, 2, 3]) await start(i)
    const zero = () => running[0]?.node as FullNode
    await zero().submit(testTransfer(37, alice, vs[1]?.address as Address, 0, 1n))
    await vi.waitFor(() => expect(running.every((r) => (r?.node.height ?? 0) >= 2)).toBe(true), { timeout: 30_000 })
    await idleNodes(running.map((r) => r?.node as FullNode))

    // Two of four down: no quorum. A transaction only nodes 0 and 3 hold starts a height they
    // cannot finish; they propose and vote once, then stall and re-send those messages.
    await stop(1)
    await stop(2)
    const hash = await zero().submit(testTransfer(37, alice, vs[1]?.address as Address, 1, 1n))
    await new Promise((r) => setTimeout(r, 3_000))
    expect(zero().mempool.has(hash)).toBe(true) // not committed
    // Over real sockets the node tells whose node it has lost, and whom it hears: not stalled yet
    // (3 s is less than three rounds of the default timeouts).
    const inSetOrder = (is: number[]) => g.validators.validators.map((v) => v.address).filter((a) => is.some((i) => vs[i]?.address === a))
    await vi.waitFor(() =>
      expect(zero().consensusProgress()).toMatchObject({
        height: zero().height + 1,
        stalled: false,
        heard: inSetOrder([0, 3]),
        silent: inSetOrder([1, 2]),
        notConnected: inSetOrder([1, 2]),
        notConnectedMembers: inSetOrder([1, 2]).map((a) => g.members.find((m) => m.address === a)?.id),
      }),
    )

    // Back up, with empty pools: they learn of the stalled height only from the re-sent messages,
    // which gossip dropped as already seen for two minutes before they were marked as re-sends.
    await start(1)
    await start(2)
    await vi.waitFor(() => expect(zero().mempool.has(hash)).toBe(false), { timeout: 40_000, interval: 200 })
    expect((await zero().account(alice.address)).nonce).toBe(2) // it left the pool by being committed
  }, 90_000)
})
