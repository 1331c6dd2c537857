/**
 * Links between two light clients (two browsers) for channel traffic, on the libp2p node of a
 * {@link Libp2pTransport} started with `peerLinks: true`. Each page holds a reservation on a full
 * node's circuit relay; a page dials another by its `/p2p-circuit/webrtc` address, the relay
 * carries the WebRTC handshake, and the link then runs browser to browser (it survives the relay
 * going away). When no direct connection can be made in time (no route between the two, a stalled
 * ICE check), the link falls back to the relayed connection itself and says so (`kind:
 * 'relayed'`). Either way the link is authenticated end to end: libp2p's noise / DTLS handshake
 * binds the remote peer id.
 *
 * Frames are length-prefixed (4 bytes, big-endian) on one stream per link, at most
 * {@link MAX_LINK_FRAME} bytes each; a larger one closes the link.
 */
import type { Connection, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import type { WalletLink, WalletLinks } from './channel-wallet.js'
import type { Libp2pTransport } from './libp2p-transport.js'

/** The circuit relay's protocol: the full nodes a page can reach another page through. */
const RELAY_HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'
/** Other relays tried for a peer not found through the one its address names. */
const MAX_OTHER_RELAYS = 8

/** Largest frame on a link. */
export const MAX_LINK_FRAME = 64 * 1024

/** Options of {@link openPeerLinks}. */
export interface PeerLinkOptions {
  readonly chainId: string
  /** Time for a direct (WebRTC) connection before falling back to the relay. Default 8 s. */
  readonly directTimeoutMs?: number
  /** Try a direct connection at all (false: relayed only, e.g. to test the fallback). Default true. */
  readonly direct?: boolean
  /** The addresses to give out instead of relay reservations (a full node that others dial directly). */
  readonly advertise?: () => string[]
}

/** Peer links on a transport: the wallet's {@link WalletLinks}, plus a way to stop. */
export interface PeerLinks extends WalletLinks {
  /** Stops accepting links and closes the open ones. */
  close(): Promise<void>
}

/** The protocol id of channel links on chain `chainId`. */
export const channelLinkProtocol = (chainId: string): string => `/loopchain/${chainId}/channel/1`

/** Starts serving and dialling links on `transport` (which must have been created with `peerLinks: true`). */
export async function openPeerLinks(transport: Libp2pTransport, o: PeerLinkOptions): Promise<PeerLinks> {
  const node = transport.libp2p
  const protocol = channelLinkProtocol(o.chainId)
  const listeners: ((l: WalletLink) => void)[] = []
  const open = new Set<StreamLink>()
  await node.handle(
    protocol,
    (stream: Stream, connection: Connection) => {
      const link = new StreamLink(stream, connection)
      open.add(link)
      link.onClose(() => open.delete(link))
      for (const cb of listeners) cb(link)
    },
    { runOnLimitedConnection: true, maxInboundStreams: 16 },
  )

  const dialOnce = async (addr: string, limited: boolean, timeoutMs: number): Promise<StreamLink> => {
    const stream = await node.dialProtocol(multiaddr(addr), protocol, {
      signal: AbortSignal.timeout(timeoutMs),
      ...(limited ? { runOnLimitedConnection: true } : {}),
    })
    const connection = node.getConnections().find((c) => c.streams.includes(stream))
    // The peer dialled is the last /p2p/ of the address (after a relay's own, on a circuit).
    const link = new StreamLink(stream, connection, /\/p2p\/([^/]+)$/.exec(addr)?.[1])
    open.add(link)
    link.onClose(() => open.delete(link))
    return link
  }

  const dialAt = async (addr: string): Promise<StreamLink> => {
    const timeoutMs = o.directTimeoutMs ?? 8_000
    if (o.direct !== false && addr.includes('/p2p-circuit/webrtc/')) {
      // STACK.md: a few WebRTC dials stall in ICE; one retry before falling back.
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          const link = await dialOnce(addr, false, timeoutMs)
          if (link.kind === 'direct') return link
          link.close()
        } catch {
          // Fall through to the next attempt, then to the relay.
        }
      }
    }
    return dialOnce(addr.replace('/p2p-circuit/webrtc/', '/p2p-circuit/'), true, timeoutMs)
  }

  /**
   * `addr`, a circuit address, through each other full node this page was configured with and is
   * connected to that runs a relay. Only those: another page could claim to be a relay. A full
   * node's own links (the hub's) run on a libp2p without `peers()` and dial no circuits: none.
   */
  const viaOtherRelays = async (addr: string): Promise<string[]> => {
    const m = /\/p2p\/([^/]+)\/p2p-circuit(\/webrtc)?\/p2p\/([^/]+)$/.exec(addr)
    if (m === null || typeof transport.peers !== 'function') return []
    const [, relay, webrtc = '', peer] = m
    const out: string[] = []
    for (const id of transport.peers()) {
      if (id === relay || id === peer) continue
      const c = node.getConnections().find((x) => x.remotePeer.toString() === id && x.limits === undefined)
      if (c === undefined) continue
      const protocols = await node.peerStore.get(c.remotePeer).then(
        (p) => p.protocols,
        () => [] as string[],
      )
      if (!protocols.includes(RELAY_HOP_PROTOCOL)) continue
      out.push(`${c.remoteAddr.toString().replace(/\/p2p\/[^/]+$/, '')}/p2p/${id}/p2p-circuit${webrtc}/p2p/${peer}`)
      if (out.length >= MAX_OTHER_RELAYS) break
    }
    return out
  }

  return {
    myAddresses() {
      if (o.advertise) return o.advertise()
      // Addresses through a relay reservation that a peer can reach with WebRTC.
      return node
        .getMultiaddrs()
        .map((ma) => ma.toString())
        .filter((a) => a.includes('/p2p-circuit/webrtc/'))
    },
    selfId() {
      return node.peerId.toString()
    },
    onLink(cb) {
      listeners.push(cb)
    },
    async dial(addr: string): Promise<WalletLink> {
      try {
        return await dialAt(addr)
      } catch (e) {
        // A page that reloaded holds a new reservation, perhaps on another full node than the one
        // its address names (which freed the old one when the page left). Each of this page's
        // full nodes is asked in turn; one without a reservation for the peer refuses at once.
        for (const other of await viaOtherRelays(addr)) {
          try {
            return await dialAt(other)
          } catch {
            // Not there either.
          }
        }
        throw e
      }
    },
    async close() {
      await node.unhandle(protocol)
      for (const l of open) l.close()
    },
  }
}

/** One link: a stream with length-prefixed frames. */
class StreamLink implements WalletLink {
  readonly remotePeer: string
  readonly kind: 'direct' | 'relayed'
  private readonly messageCbs: ((f: Uint8Array) => void)[] = []
  private readonly closeCbs: (() => void)[] = []
  private early: Uint8Array[] = []
  private buf: Uint8Array = new Uint8Array(0)
  private closed = false

  constructor(
    private readonly stream: Stream,
    connection: Connection | undefined,
    dialled?: string,
  ) {
    this.remotePeer = connection?.remotePeer.toString() ?? dialled ?? 'unknown'
    // A relayed connection carries the relay's limits and a circuit address; a WebRTC one made
    // through the relay keeps the circuit in its address but runs peer to peer (…/p2p-circuit/webrtc/…).
    const addr = connection?.remoteAddr.toString() ?? ''
    const viaRelay = addr.includes('/p2p-circuit') && !addr.includes('/webrtc')
    this.kind = connection === undefined || connection.limits !== undefined || viaRelay ? 'relayed' : 'direct'
    stream.addEventListener('message', (evt) => {
      const d = evt.data
      this.take(d instanceof Uint8Array ? d : d.subarray())
    })
    stream.addEventListener('close', () => this.finish())
  }

  private take(chunk: Uint8Array): void {
    let b = this.buf.length === 0 ? chunk : concat(this.buf, chunk)
    for (;;) {
      if (b.length < 4) break
      const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, false)
      if (n > MAX_LINK_FRAME) {
        this.close()
        return
      }
      if (b.length < 4 + n) break
      const frame = b.slice(4, 4 + n)
      b = b.subarray(4 + n)
      if (this.messageCbs.length === 0) this.early.push(frame)
      for (const cb of this.messageCbs) cb(frame)
    }
    this.buf = b.length === 0 ? new Uint8Array(0) : b.slice()
  }

  send(frame: Uint8Array): void {
    if (this.closed) throw new Error('the link is closed')
    if (frame.length > MAX_LINK_FRAME) throw new RangeError(`a link frame holds at most ${MAX_LINK_FRAME} bytes`)
    // Frames sent in one turn of the event loop leave in one stream write: a data channel's send
    // costs far more than a copy, and pipelined payments send dozens of frames at once.
    this.outbox.push(frame)
    this.outboxBytes += 4 + frame.length
    if (this.outbox.length === 1) queueMicrotask(() => this.drainOutbox())
  }

  private outbox: Uint8Array[] = []
  private outboxBytes = 0

  private drainOutbox(): void {
    const frames = this.outbox
    const out = new Uint8Array(this.outboxBytes)
    this.outbox = []
    this.outboxBytes = 0
    if (this.closed) return
    const view = new DataView(out.buffer)
    let at = 0
    for (const f of frames) {
      view.setUint32(at, f.length, false)
      out.set(f, at + 4)
      at += 4 + f.length
    }
    // The stream queues what it cannot send yet (send returns false as backpressure); frames stay in order.
    this.stream.send(out)
  }

  onMessage(cb: (frame: Uint8Array) => void): void {
    this.messageCbs.push(cb)
    for (const f of this.early.splice(0)) cb(f)
  }

  onClose(cb: () => void): void {
    if (this.closed) cb()
    else this.closeCbs.push(cb)
  }

  close(): void {
    if (this.closed) return
    this.stream.abort(new Error('link closed'))
    this.finish()
  }

  private finish(): void {
    if (this.closed) return
    this.closed = true
    for (const cb of this.closeCbs.splice(0)) cb()
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
