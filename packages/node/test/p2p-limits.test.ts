/**
 * What strangers (peers that are not members, with peer ids they make for free) can take from a
 * full node's libp2p host, over real TCP on loopback: connection places (members keep room),
 * relay slots (freed when their holder leaves), the checking of invalid gossip (three, then a ban),
 * and memory in the peer store (a stranger is forgotten a while after it leaves, and one that comes
 * straight back, as a reloaded page does, still gets its gossip).
 */
import { createHash } from 'node:crypto'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { gossipsub, StrictNoSign } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { pbStream } from '@libp2p/utils'
import { yamux } from '@libp2p/yamux'
import { sha256, utf8 } from '@loopchain/core'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createNodeHost, type NodeHost, type NodeHostOptions, topicName } from '../src/index.js'

const CHAIN = 'limits-test'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const hosts: NodeHost[] = []
const others: Libp2p[] = []
afterEach(async () => {
  for (const s of others.splice(0)) await Promise.resolve(s.stop()).catch(() => undefined)
  for (const h of hosts.splice(0)) await h.stop().catch(() => undefined)
})

/** The node under test, its only member `memberKey`'s host (when given); `tcpAddr` is where to dial it. */
async function node(opts: Partial<NodeHostOptions> = {}, memberKey?: Uint8Array) {
  const memberId = memberKey ? peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', memberKey)).toString() : undefined
  const h = await createNodeHost({
    chainId: CHAIN,
    nodeKey: sha256(utf8(`limits node ${hosts.length}`)),
    wsPort: false,
    isMember: (id) => id === memberId,
    ...opts,
  })
  hosts.push(h)
  return { h, tcpAddr: multiaddr(h.multiaddrs().find((a) => a.includes('/tcp/') && !a.includes('/ws')) as string) }
}

/** A bare libp2p peer (TCP, noise, yamux, identify), not listening; a fresh identity unless `key` is given. */
async function stranger(services: Record<string, unknown> = {}, key?: Awaited<ReturnType<typeof generateKeyPair>>): Promise<Libp2p> {
  const s = (await createLibp2p({
    privateKey: key ?? (await generateKeyPair('Ed25519')),
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ...services },
  })) as unknown as Libp2p
  others.push(s)
  return s
}

/** Dials and waits: true when the node kept the connection (a refusal closes it right after the handshake). */
async function stays(s: Libp2p, addr: ReturnType<typeof multiaddr>): Promise<boolean> {
  await s.dial(addr).catch(() => undefined)
  await sleep(300)
  return s.getConnections().length > 0
}

/** A circuit-relay v2 RESERVE (HopMessage type 0) on `conn`: its answer's status (field 5: 100 OK, 200 refused). */
async function hopReserve(conn: Awaited<ReturnType<Libp2p['dial']>>): Promise<number> {
  const hop = {
    encode: () => Uint8Array.of(0x08, 0x00),
    decode: (buf: Uint8Array | { subarray(): Uint8Array }) => {
      const b = buf instanceof Uint8Array ? buf : buf.subarray()
      let i = 0
      const varint = () => {
        let v = 0
        for (let shift = 0; ; shift += 7) {
          const byte = b[i++] as number
          v += (byte & 0x7f) * 2 ** shift
          if (byte < 0x80) return v
        }
      }
      // The top-level fields: varints (type 0) and length-delimited ones (type 2), skipped but the status.
      while (i < b.length) {
        const tag = varint()
        if ((tag & 7) === 2) {
          const length = varint()
          i += length
        } else if (tag >> 3 === 5) return { status: varint() }
        else varint()
      }
      return { status: -1 }
    },
  }
  const stream = await conn.newStream('/libp2p/circuit/relay/0.2.0/hop')
  const pb = pbStream(stream).pb(hop as never)
  await pb.write({})
  return ((await pb.read()) as { status: number }).status
}

describe('what strangers can take from a full node', () => {
  it('connections: past the non-members’ caps, in all or from one address, a stranger is refused, and a member still gets in', async () => {
    const memberKey = sha256(utf8('limits member'))
    // The cap of all non-members (all strangers here come from 127.0.0.1, so the per-IP one is set above it).
    const total = await node({ connections: { maxNonMembers: 2, maxNonMembersPerIp: 10 } }, memberKey)
    expect(await stays(await stranger(), total.tcpAddr)).toBe(true)
    expect(await stays(await stranger(), total.tcpAddr)).toBe(true)
    expect(await stays(await stranger(), total.tcpAddr)).toBe(false)
    const member = await createNodeHost({
      chainId: CHAIN,
      nodeKey: memberKey,
      wsPort: false,
      relay: false,
      isMember: () => true,
    })
    hosts.push(member)
    await member.dial(total.tcpAddr.toString())
    await sleep(300)
    expect(member.connections().map((c) => c.peerId)).toEqual([total.h.peerId])
    expect(total.h.connections()).toHaveLength(3)
    await member.stop()
    // The cap of one address.
    const perIp = await node({ connections: { maxNonMembers: 10, maxNonMembersPerIp: 2 }, tcpPort: 0 })
    expect(await stays(await stranger(), perIp.tcpAddr)).toBe(true)
    expect(await stays(await stranger(), perIp.tcpAddr)).toBe(true)
    const third = await stranger()
    expect(await stays(third, perIp.tcpAddr)).toBe(false)
    // One peer id opening connection after connection counts each of them.
    const greedy = others[others.length - 3] as Libp2p
    await greedy.dial(perIp.tcpAddr, { force: true }).catch(() => undefined)
    await sleep(300)
    expect(perIp.h.connections()).toHaveLength(2)
    // A place freed is a place again.
    await (others[others.length - 2] as Libp2p).stop()
    await vi.waitFor(() => expect(perIp.h.connections()).toHaveLength(1))
    expect(await stays(third, perIp.tcpAddr)).toBe(true)
  }, 30_000)

  it('invalid gossip: a stranger’s messages are checked three times, then it is banned; a topic the node does not take is not checked', async () => {
    let checked = 0
    const reject = () => {
      checked++
      return 'reject' as const
    }
    const { h, tcpAddr } = await node({ relay: false, validators: { header: reject, tx: reject } })
    h.subscribe('header', () => undefined)
    const publisher = async (kind: 'header' | 'tx') => {
      const s = await stranger({
        pubsub: gossipsub({
          globalSignaturePolicy: StrictNoSign,
          emitSelf: false,
          allowPublishToZeroTopicPeers: true,
          msgIdFn: (m) => createHash('sha256').update(m.topic).update(Uint8Array.of(0)).update(m.data).digest(),
        }),
      })
      const ps = (s.services as unknown as { pubsub: ReturnType<ReturnType<typeof gossipsub>> }).pubsub
      const topic = topicName(CHAIN, kind)
      ps.subscribe(topic)
      await s.dial(tcpAddr)
      await vi.waitFor(() => expect(ps.getSubscribers(topic).map(String)).toContain(h.peerId), { timeout: 5_000 })
      for (let i = 0; i < 200 && s.getConnections().length > 0; i++)
        await ps.publish(topic, utf8(`forged ${kind} ${i}`)).catch(() => undefined)
      return s
    }
    const s = await publisher('header')
    await vi.waitFor(() => expect(h.isBanned(s.peerId.toString())).toBe(true))
    await sleep(500)
    expect(checked).toBe(3)
    // A topic the node does not take (it subscribed to nothing else): a stranger that believes
    // otherwise (gossipsub sends to the peers it thinks subscribed) has nothing checked.
    checked = 0
    const { h: quiet, tcpAddr: quietAddr } = await node({ relay: false, validators: { header: reject }, tcpPort: 0 })
    const t = await stranger({
      pubsub: gossipsub({ globalSignaturePolicy: StrictNoSign, emitSelf: false, allowPublishToZeroTopicPeers: true }),
    })
    const ps = (t.services as unknown as { pubsub: { topics: Map<string, Set<string>> } & ReturnType<ReturnType<typeof gossipsub>> }).pubsub
    const header = topicName(CHAIN, 'header')
    ps.subscribe(header)
    await t.dial(quietAddr)
    await sleep(500)
    ps.topics.set(header, new Set([quiet.peerId]))
    for (let i = 0; i < 50; i++) await ps.publish(header, utf8(`unasked ${i}`)).catch(() => undefined)
    await sleep(500)
    expect(checked).toBe(0)
    expect(quiet.isBanned(t.peerId.toString())).toBe(false)
  }, 30_000)

  it('relay slots: a stranger that reserves one and leaves frees it, so slots cannot be taken by reserving and leaving', async () => {
    const { h, tcpAddr } = await node({ relay: { maxReservations: 2 } })
    const reserve = async (leave: boolean) => {
      const s = await stranger()
      const conn = await s.dial(tcpAddr)
      const status = await hopReserve(conn)
      if (leave) await s.stop()
      return status
    }
    for (let i = 0; i < 5; i++) expect(await reserve(true)).toBe(100)
    await vi.waitFor(() => expect(h.relay()?.reservations).toBe(0))
    // Slots held by peers still connected stay theirs.
    expect(await reserve(false)).toBe(100)
    expect(await reserve(false)).toBe(100)
    expect(await reserve(false)).toBe(200)
    expect(h.relay()?.reservations).toBe(2)
  }, 30_000)

  it('relay slots: a slot refreshed and then freed leaves no timer behind to delete the slot its holder takes on coming back', async () => {
    const ttl = 3_000
    const { h, tcpAddr } = await node({ relay: { reservationTtlMs: ttl } })
    const key = await generateKeyPair('Ed25519')
    const first = await stranger({}, key)
    const conn = await first.dial(tcpAddr)
    expect(await hopReserve(conn)).toBe(100)
    // Refreshed (reserved again): the library sets a new timer, which a plain clear would not stop.
    expect(await hopReserve(conn)).toBe(100)
    const refreshedAt = Date.now()
    await first.stop()
    await vi.waitFor(() => expect(h.relay()?.reservations).toBe(0))
    await sleep(1_000)
    const back = await stranger({}, key)
    expect(await hopReserve(await back.dial(tcpAddr))).toBe(100)
    // Past the refreshed timer's end, before the new slot's own.
    await sleep(refreshedAt + ttl + 400 - Date.now())
    expect(h.relay()?.reservations).toBe(1)
  }, 30_000)

  it('relay slots: a slot its holder refreshes twice lives on past the first refresh’s deadline', async () => {
    const ttl = 2_000
    const { h, tcpAddr } = await node({ relay: { reservationTtlMs: ttl } })
    const conn = await (await stranger()).dial(tcpAddr)
    expect(await hopReserve(conn)).toBe(100)
    await sleep(300)
    expect(await hopReserve(conn)).toBe(100)
    const firstRefresh = Date.now()
    await sleep(600)
    expect(await hopReserve(conn)).toBe(100)
    // Past the first refresh's deadline, within the second's.
    await sleep(firstRefresh + ttl + 300 - Date.now())
    expect(h.relay()?.reservations).toBe(1)
  }, 30_000)

  it('relay slots: connections relayed from one address to holders at another are bounded in a window, whatever the peer ids; other pairs of addresses have their own budget', async () => {
    let now = 1_000_000
    const windowMs = 60_000
    const { h, tcpAddr } = await node({ relay: { connectionsPerSlot: 2, connectionsPerSlotWindowMs: windowMs }, relayClock: () => now })
    const relayAddr = tcpAddr.toString() // ends in /p2p/<the node>
    // Pages on loopback addresses of their own (127.0.0.0/8 is all local on Linux): slot holders,
    // reserving through circuit-relay v2 as browsers do, and diallers that reach them through it.
    const page = async (from: string, holdsSlot: boolean) => {
      const p = (await createLibp2p({
        addresses: { listen: holdsSlot ? [`${relayAddr}/p2p-circuit`] : [] },
        // The transport passes its dial options on to `net.connect`, whose `localAddress` its type omits.
        transports: [tcp({ dialOpts: { localAddress: from } as never }), circuitRelayTransport()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        services: { identify: identify() },
      })) as unknown as Libp2p
      others.push(p)
      return p
    }
    const [a, aToo, b] = [await page('127.0.0.2', true), await page('127.0.0.2', true), await page('127.0.0.3', true)]
    await vi.waitFor(() => expect(h.relay()?.reservations).toBe(3), { timeout: 10_000 })
    const dialler = await page('127.0.0.4', false)
    /** 'relayed', or why the dial failed. */
    const through = async (to: Libp2p, from = dialler): Promise<string> => {
      try {
        const conn = await from.dial(multiaddr(`${relayAddr}/p2p-circuit/p2p/${to.peerId.toString()}`))
        const how = conn.remoteAddr.toString().includes('/p2p-circuit') ? 'relayed' : `direct: ${conn.remoteAddr.toString()}`
        await conn.close()
        return how
      } catch (e) {
        return String(e)
      }
    }
    expect(await through(a)).toBe('relayed')
    now += windowMs / 2
    expect(await through(a)).toBe('relayed')
    expect(await through(a)).toMatch(/PERMISSION_DENIED/)
    expect(h.relay()?.refusedConnections).toBe(1)
    // Fresh peer ids cost nothing: another holder at a's address, or another dialler at this
    // one's, spends the same budget.
    expect(await through(aToo)).toMatch(/PERMISSION_DENIED/)
    expect(await through(a, await page('127.0.0.4', false))).toMatch(/PERMISSION_DENIED/)
    expect(h.relay()?.refusedConnections).toBe(3)
    // Holders at another address, and diallers at another address, have budgets of their own.
    expect(await through(b)).toBe('relayed')
    expect(await through(a, await page('127.0.0.5', false))).toBe('relayed')
    // Once the window has passed the first connection (not the refusals), one more gets through.
    now += windowMs / 2 + 1
    expect(await through(aToo)).toBe('relayed')
    expect(await through(a)).toMatch(/PERMISSION_DENIED/)
    expect(h.relay()?.refusedConnections).toBe(4)
  }, 30_000)

  it('the peer store: a stranger that left is forgotten a while later, one still connected and a member are not', async () => {
    const memberKey = sha256(utf8('limits member 2'))
    const { h, tcpAddr } = await node({ relay: false, forgetStrangersAfterMs: 1_500 }, memberKey)
    const store = h.libp2p.peerStore
    const gone = await stranger()
    const staying = await stranger()
    await gone.dial(tcpAddr)
    await staying.dial(tcpAddr)
    await vi.waitFor(async () => expect(await store.has(gone.peerId)).toBe(true))
    await gone.stop()
    await vi.waitFor(() => expect(h.connections()).toHaveLength(1))
    // Kept for a while after it left (the registrar reads it on the disconnect)...
    await sleep(500)
    expect(await store.has(gone.peerId)).toBe(true)
    // ...then forgotten, on a heartbeat after the delay.
    await vi.waitFor(async () => expect(await store.has(gone.peerId)).toBe(false), { timeout: 5_000 })
    expect(await store.has(staying.peerId)).toBe(true)
    const memberId = peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', memberKey))
    const member = await createNodeHost({ chainId: CHAIN, nodeKey: memberKey, wsPort: false, relay: false, isMember: () => true })
    hosts.push(member)
    await member.dial(tcpAddr.toString())
    await vi.waitFor(async () => expect(await store.has(memberId)).toBe(true))
    await member.stop()
    await vi.waitFor(() => expect(h.connections()).toHaveLength(1))
    await sleep(3_000)
    expect(await store.has(memberId)).toBe(true)
    expect(await store.has(staying.peerId)).toBe(true)
  }, 30_000)

  it('a stranger that leaves and comes straight back with the same peer id (a reloaded page) is not forgotten, and gets the gossip it subscribes to', async () => {
    const { h, tcpAddr } = await node({ relay: false, forgetStrangersAfterMs: 1_000 })
    const key = await generateKeyPair('Ed25519')
    const header = topicName(CHAIN, 'header')
    const page = async () => {
      const s = await stranger({ pubsub: gossipsub({ globalSignaturePolicy: StrictNoSign, emitSelf: false }) }, key)
      const ps = (s.services as unknown as { pubsub: ReturnType<ReturnType<typeof gossipsub>> }).pubsub
      const got: string[] = []
      ps.addEventListener('message', (evt) => got.push(new TextDecoder().decode(evt.detail.data)))
      ps.subscribe(header)
      await s.dial(tcpAddr)
      return { s, got }
    }
    // Each header distinct: the same bytes twice are one message to gossipsub.
    let n = 0
    const publishUntil = async (got: string[]) => {
      await vi.waitFor(
        async () => {
          const data = `header ${n++}`
          await h.publish('header', utf8(data))
          await sleep(100)
          expect(got).toContain(data)
        },
        { timeout: 5_000, interval: 200 },
      )
    }
    const first = await page()
    await publishUntil(first.got)
    await first.s.stop()
    // Back at once, and the node's heartbeats run well past the delay.
    const second = await page()
    await sleep(3_000)
    expect(await h.libp2p.peerStore.has(second.s.peerId)).toBe(true)
    await publishUntil(second.got)
  }, 30_000)
})
