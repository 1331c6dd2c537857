/**
 * Links between two light clients (here two Node processes' worth of libp2p in this process) for
 * channel traffic: each reserves a slot on a real full node's circuit relay over WebSockets, one
 * dials the other's `/p2p-circuit/webrtc` address, and frames pass both ways over the direct WebRTC
 * connection; the relayed fallback carries frames too. (test/e2e/channels.test.ts does this between
 * two Chromium pages.)
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { utf8 } from '@loopchain/core'
import { connectNode, createNodeHost, DEFAULT_RELAY_LIMITS, FullNode, type NodeHost, reservePortBlock } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createLibp2pTransport,
  type Libp2pTransport,
  openPeerLinks,
  type PeerLinks,
  type WalletLink,
} from '../../packages/light-client/src/index.js'
import { testGenesis, testKey } from '../../packages/node/test/fixtures/test-chain.js'

const BASE = reservePortBlock()
const validator = testKey('peer-link validator')
const genesis = testGenesis({ chainId: 'peer-link', networkId: 31, validators: [validator], funded: testKey('peer-link alice') })
const dir = mkdtempSync(join(tmpdir(), 'loopchain-peerlink-'))
let node: FullNode
let host: NodeHost
let wsAddr: string
const stops: (() => Promise<void>)[] = []

beforeAll(async () => {
  node = await FullNode.open({ dataDir: dir, genesis, validatorSecret: validator.secretKey })
  host = await connectNode(node, { nodeKey: testKey('peer-link node key').secretKey, tcpPort: BASE, wsPort: BASE + 1 })
  wsAddr = host.multiaddrs().find((a) => a.includes('/ws/')) as string
})

afterAll(async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined)
  await host?.stop().catch(() => undefined)
  await node?.stop().catch(() => undefined)
  rmSync(dir, { recursive: true, force: true })
})

async function peer(
  direct = true,
  relayAddr: string | string[] = wsAddr,
  privateKey?: PrivateKey,
): Promise<{ t: Libp2pTransport; links: PeerLinks }> {
  const t = await createLibp2pTransport({
    chainId: genesis.chainId,
    bootstrap: typeof relayAddr === 'string' ? [relayAddr] : relayAddr,
    ...(privateKey ? { privateKey } : {}),
    allowLocal: true,
    transports: ['websockets'],
    peerLinks: true,
  })
  const links = await openPeerLinks(t, { chainId: genesis.chainId, direct, directTimeoutMs: 8_000 })
  stops.push(async () => {
    await links.close()
    await t.close()
  })
  return { t, links }
}

async function addressOf(links: PeerLinks): Promise<string> {
  const until = Date.now() + 15_000
  for (;;) {
    const a = links.myAddresses()[0]
    if (a !== undefined) return a
    if (Date.now() > until) throw new Error('no relay reservation')
    await new Promise((r) => setTimeout(r, 100))
  }
}

function inbox(link: WalletLink): string[] {
  const got: string[] = []
  link.onMessage((f) => got.push(new TextDecoder().decode(f)))
  return got
}

async function until(f: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('peer links through a full node’s relay', () => {
  it('dials a peer over WebRTC signalled through the relay; frames pass both ways in order', async () => {
    const a = await peer()
    const b = await peer()
    const bAddr = await addressOf(b.links)
    expect(bAddr).toMatch(/\/p2p-circuit\/webrtc\/p2p\//)
    let incoming: WalletLink | undefined
    b.links.onLink((l) => {
      incoming = l
    })
    const link = await a.links.dial(bAddr)
    expect(link.kind).toBe('direct')
    expect(link.remotePeer).toBe(b.t.libp2p.peerId.toString())
    // The connection to b is WebRTC (signalled through the relay), not the relay's limited circuit.
    const toB = a.t.libp2p.getConnections().filter((c) => c.remotePeer.toString() === link.remotePeer)
    expect(toB.some((c) => c.remoteAddr.toString().includes('/webrtc') && c.limits === undefined)).toBe(true)
    const fromB = inbox(link)
    for (let i = 0; i < 50; i++) link.send(utf8(`a${i}`))
    await until(() => incoming !== undefined, 'the incoming link')
    const atB = inbox(incoming as WalletLink)
    await until(() => atB.length === 50, 'frames at b')
    expect(atB).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`))
    expect(incoming?.remotePeer).toBe(a.t.libp2p.peerId.toString())
    ;(incoming as WalletLink).send(utf8('pong'))
    await until(() => fromB.length === 1, 'the reply')
    // Round trips, for the record (timings are benchmarked, not asserted).
    const times: number[] = []
    ;(incoming as WalletLink).onMessage((f) => (incoming as WalletLink).send(f))
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now()
      const n = fromB.length
      link.send(utf8('ping'))
      await new Promise<void>((r) => {
        const tick = () => (fromB.length > n ? r() : setImmediate(tick))
        tick()
      })
      times.push(performance.now() - t0)
    }
    times.sort((x, y) => x - y)
    console.log(`peer link round trip (Node, direct WebRTC): p50 ${times[100]?.toFixed(2)} ms, p99 ${times[198]?.toFixed(2)} ms`)
  }, 60_000)

  it('falls back to the relayed connection when no direct one is made, and says so', async () => {
    const a = await peer(false)
    const b = await peer()
    const bAddr = await addressOf(b.links)
    let incoming: WalletLink | undefined
    b.links.onLink((l) => {
      incoming = l
    })
    const link = await a.links.dial(bAddr)
    expect(link.kind).toBe('relayed')
    link.send(utf8('over the relay'))
    await until(() => incoming !== undefined, 'the incoming link')
    const atB = inbox(incoming as WalletLink)
    await until(() => atB.length === 1, 'the frame')
    expect(atB).toEqual(['over the relay'])
    expect(incoming?.kind).toBe('relayed')
  }, 60_000)

  it('bounds what one relayed connection carries: past the data limit the relay closes it, and the node reports its slots', async () => {
    const info = host.relay()
    expect(info?.limits).toEqual(DEFAULT_RELAY_LIMITS)
    // A relay of its own with a small data limit (the default is 4 MiB, 30 min).
    const small = await createNodeHost({
      chainId: genesis.chainId,
      nodeKey: testKey('peer-link small relay').secretKey,
      isMember: () => false,
      tcpPort: BASE + 2,
      wsPort: BASE + 3,
      relay: { dataLimitBytes: 32 * 1024 },
    })
    stops.push(() => small.stop())
    const smallAddr = small.multiaddrs().find((x) => x.includes('/ws/')) as string
    const a = await peer(false, smallAddr)
    const b = await peer(true, smallAddr)
    const bAddr = await addressOf(b.links)
    await until(() => small.relay()?.reservations === 2, 'two slots on the relay')
    let incoming: WalletLink | undefined
    b.links.onLink((l) => {
      incoming = l
    })
    const link = await a.links.dial(bAddr)
    expect(link.kind).toBe('relayed')
    let closed = false
    link.onClose(() => {
      closed = true
    })
    // 16 frames of 4 KiB: 64 KiB, twice the limit. The first few pass; then the relay ends the connection.
    link.send(new Uint8Array(4096).fill(1))
    await until(() => incoming !== undefined, 'the incoming link')
    const atB = inbox(incoming as WalletLink)
    for (let i = 1; i < 16 && !closed; i++) {
      link.send(new Uint8Array(4096).fill(1))
      await new Promise((r) => setTimeout(r, 20))
    }
    await until(() => closed, 'the relay to close the connection')
    expect(atB.length).toBeGreaterThan(0)
    expect(atB.length).toBeLessThan(8) // 32 KiB of 4 KiB frames, less what the handshakes used
    // Nothing relayed between the two is left open.
    expect(a.t.libp2p.getConnections().filter((c) => c.remotePeer.toString() === link.remotePeer)).toHaveLength(0)
  }, 60_000)

  it('finds a peer that came back on another relay (a reloaded page): its old slot was freed, and the dial asks the other relays', async () => {
    const relay = async (n: number) => {
      const h = await createNodeHost({
        chainId: genesis.chainId,
        nodeKey: testKey(`peer-link relay ${n}`).secretKey,
        isMember: () => false,
        tcpPort: BASE + 2 + 2 * n,
        wsPort: BASE + 3 + 2 * n,
      })
      stops.push(() => h.stop())
      return { h, addr: h.multiaddrs().find((x) => x.includes('/ws/')) as string }
    }
    const one = await relay(1)
    const two = await relay(2)
    const a = await peer(true, [one.addr, two.addr])
    // a holds one slot, on whichever relay answered first (one listen address, one reservation).
    await addressOf(a.links)
    const aOnOne = one.h.relay()?.reservations ?? 0
    // b's page, first on relay one only; then reloaded with the same key, on relay two only.
    const key = await generateKeyPair('Ed25519')
    const b1 = await peer(true, one.addr, key)
    const oldAddr = await addressOf(b1.links)
    expect(oldAddr).toContain(`/p2p/${one.h.peerId}/p2p-circuit/`)
    await until(() => one.h.relay()?.reservations === aOnOne + 1, 'b holding a slot on relay one')
    await b1.links.close()
    await b1.t.close()
    await until(() => one.h.relay()?.reservations === aOnOne, 'relay one to free the slot of b, gone')
    const b2 = await peer(true, two.addr, key)
    expect(await addressOf(b2.links)).toContain(`/p2p/${two.h.peerId}/p2p-circuit/`)
    let incoming: WalletLink | undefined
    b2.links.onLink((l) => {
      incoming = l
    })
    // a still knows b only by its old address.
    const link = await a.links.dial(oldAddr)
    expect(link.remotePeer).toBe(b2.t.libp2p.peerId.toString())
    link.send(utf8('found you'))
    await until(() => incoming !== undefined, 'the incoming link')
    const atB = inbox(incoming as WalletLink)
    await until(() => atB.length === 1, 'the frame')
    expect(atB).toEqual(['found you'])
  }, 90_000)
})
