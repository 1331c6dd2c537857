/**
 * What strangers (peers that are not members, with peer ids they make for free) can take from a
 * full node's libp2p host, over real TCP on loopback: connection places (members keep room) and
 * the checking of invalid gossip (three, then a ban).
 */
import { createHash } from 'node:crypto'
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { gossipsub, StrictNoSign } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Libp2p } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
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

/** A bare libp2p peer with a fresh identity (TCP, noise, yamux, identify), not listening. */
async function stranger(services: Record<string, unknown> = {}): Promise<Libp2p> {
  const s = (await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
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
})
