/**
 * The real {@link LightTransport}: a libp2p node that dials full nodes over WebSockets or
 * WebRTC-direct (browsers and Node alike), speaks the light-client request-response protocols
 * with the same framing as the full node (core `wire/frames.ts`), and follows the chain's `header`
 * gossipsub topic. It listens on nothing: a light client only dials.
 */
import './polyfills.js'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { gossipsub, StrictNoSign, TopicValidatorResult } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { ConnectionGater, PrivateKey, Stream } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { peerIdFromString } from '@libp2p/peer-id'
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import {
  concatBytes,
  exchangeRequest,
  LIGHT_MAX_RESPONSE_BYTES,
  type LightProtocol,
  lightProtocolId,
  RequestError,
  sha256,
  topicName,
  utf8,
} from '@loopchain/core'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { type LightLogger, silentLightLogger } from './events.js'
import type { HeaderHandler, HeaderVerdict, LightRequestOptions, LightTransport } from './transport.js'

/** Which transports to dial with. */
export type LightTransportKind = 'websockets' | 'webrtc-direct'

/** Options of {@link createLibp2pTransport}. */
export interface Libp2pTransportOptions {
  /** The chain; namespaces the protocols and the topic. */
  readonly chainId: string
  /** Full nodes to use, as multiaddrs ending in `/p2p/<peerId>` (`/ws`, `/wss`, or `/webrtc-direct/certhash/…`). */
  readonly bootstrap: readonly string[]
  /**
   * Allow dialling loopback and private addresses, plain `ws://` among them (local devnets and
   * tests). Browsers refuse both by default (libp2p's browser connection gater); public pages
   * should keep refusing plain `ws://` to public hosts, which this still does.
   */
  readonly allowLocal?: boolean
  /** Transports to dial with. Default both. */
  readonly transports?: readonly LightTransportKind[]
  /** Time to connect to one full node. Default 10 s. */
  readonly dialTimeoutMs?: number
  /**
   * Also reach other light clients (browsers) for channel links: WebRTC between peers, signalled
   * through a full node's circuit relay (a reservation is made on the connected nodes), and the
   * relayed connection itself as a fallback (peer-link.ts).
   */
  readonly peerLinks?: boolean
  /** The libp2p identity (so a page's peer id, and so its link address, survives a reload). */
  readonly privateKey?: PrivateKey
  readonly logger?: LightLogger
}

/** A running libp2p light-client transport. */
export interface Libp2pTransport extends LightTransport {
  /** The underlying libp2p node (metrics, extra protocols). */
  readonly libp2p: Libp2p
  /** Dials every configured full node not connected now; resolves with those connected afterwards. */
  connect(): Promise<string[]>
}

// Request round trips on a LAN take milliseconds; 10 s leaves room for a busy node.
const DEFAULT_TIMEOUT_MS = 10_000
// Redials of configured nodes that dropped, at most this often.
const REDIAL_INTERVAL_MS = 5_000

const IP4_PRIVATE = /^(127\.|10\.|192\.168\.|169\.254\.|172\.(1[6-9]|2\d|3[01])\.)/

/** Loopback, link-local or private-range address (or `localhost`). */
export function isLocalAddress(ma: Multiaddr): boolean {
  const first = ma.getComponents()[0]
  if (first === undefined || first.value === undefined) return false
  switch (first.name) {
    case 'ip4':
      return IP4_PRIVATE.test(first.value)
    case 'ip6':
      return first.value === '::1' || /^(f[cd]|fe80)/i.test(first.value)
    case 'dns':
    case 'dns4':
    case 'dns6':
      return first.value === 'localhost'
    default:
      return false
  }
}

/** Plain (unencrypted-at-the-socket) WebSockets: `/ws` without `/tls`. */
function isPlainWebSocket(ma: Multiaddr): boolean {
  const names = ma.getComponents().map((c) => c.name)
  return names.includes('ws') && !names.includes('tls')
}

/** The gater of {@link Libp2pTransportOptions.allowLocal}: local addresses by any transport; public ones not over plain `ws://`. */
export const localDevGater: ConnectionGater = {
  denyDialMultiaddr: (ma) => (isLocalAddress(ma) ? false : isPlainWebSocket(ma)),
}

/** Starts a libp2p light-client transport and connects to the configured full nodes it can reach. */
export async function createLibp2pTransport(options: Libp2pTransportOptions): Promise<Libp2pTransport> {
  const log = options.logger ?? silentLightLogger
  const kinds = options.transports ?? ['websockets', 'webrtc-direct']
  const topic = topicName(options.chainId, 'header')
  const dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_TIMEOUT_MS
  const node = await createLibp2p({
    ...(options.privateKey ? { privateKey: options.privateKey } : {}),
    // With peer links: a relay reservation on the full nodes, and WebRTC connections from other peers.
    addresses: { listen: options.peerLinks ? ['/p2p-circuit', '/webrtc'] : [] },
    transports: [
      ...(kinds.includes('websockets') ? [webSockets()] : []),
      ...(kinds.includes('webrtc-direct') ? [webRTCDirect()] : []),
      ...(options.peerLinks ? [webRTC(), circuitRelayTransport()] : []),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(options.allowLocal ? { connectionGater: localDevGater } : {}),
    services: {
      identify: identify(),
      pubsub: gossipsub({
        // The same message ids as the full nodes (host.ts): sha256(topic ‖ 0 ‖ data). Headers carry
        // their own commit signatures, so gossip-level signing would add nothing.
        globalSignaturePolicy: StrictNoSign,
        msgIdFn: (msg) => sha256(concatBytes(utf8(msg.topic), new Uint8Array([0]), msg.data)),
        allowedTopics: [topic],
        emitSelf: false,
        fallbackToFloodsub: false,
        doPX: false,
      }),
    },
  })
  const pubsub = node.services.pubsub

  // Configured nodes: their peer ids, in the configured order (the preference order).
  const configured = options.bootstrap.map((a) => {
    const ma = multiaddr(a)
    const id = ma.getComponents().findLast((c) => c.name === 'p2p')?.value
    if (id === undefined) throw new RangeError(`a full node's multiaddr must end in /p2p/<peerId>: ${a}`)
    return { ma, id }
  })
  const connected = () => new Set(node.getConnections().map((c) => c.remotePeer.toString()))

  const connect = async (): Promise<string[]> => {
    const open = connected()
    await Promise.all(
      configured
        .filter((c) => !open.has(c.id))
        .map(async (c) => {
          try {
            await node.dial(c.ma, { signal: AbortSignal.timeout(dialTimeoutMs) })
          } catch (err) {
            log.debug('could not reach a full node', { addr: c.ma.toString(), error: String(err) })
          }
        }),
    )
    const now = connected()
    return [...new Set(configured.map((c) => c.id))].filter((id) => now.has(id))
  }

  let lastRedial = 0
  let redialing = false
  const handlers = new Set<HeaderHandler>()
  let subscribed = false
  let stopped = false

  pubsub.topicValidators.set(topic, async (peer, msg) => {
    const from = peer.toString()
    const verdicts: HeaderVerdict[] = []
    for (const h of handlers) {
      try {
        verdicts.push(await h(msg.data, from))
      } catch (err) {
        log.warn('a header handler threw', { error: String(err) })
        verdicts.push('ignore')
      }
    }
    if (verdicts.includes('reject')) return TopicValidatorResult.Reject
    return verdicts.includes('accept') ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
  })

  await connect()

  return {
    libp2p: node as unknown as Libp2p,
    connect,
    peers() {
      const now = connected()
      const up = [...new Set(configured.map((c) => c.id))].filter((id) => now.has(id))
      // Configured nodes that dropped are redialled in the background, at most every few seconds.
      const t = Date.now()
      if (!stopped && !redialing && up.length < configured.length && t - lastRedial > REDIAL_INTERVAL_MS) {
        lastRedial = t
        redialing = true
        void connect().finally(() => {
          redialing = false
        })
      }
      return up
    },
    async request(peer: string, protocol: LightProtocol, bytes: Uint8Array, opts: LightRequestOptions = {}): Promise<Uint8Array> {
      if (stopped) throw new RequestError('STREAM_FAILED', 'the transport is closed', { penalize: false })
      const id = lightProtocolId(options.chainId, protocol)
      const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
      const timeout = AbortSignal.timeout(timeoutMs)
      const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout
      const details = { peer, protocol: id }
      const timedOut = () =>
        new RequestError('TIMEOUT', `no response from ${peer} on ${id} within ${timeoutMs} ms`, { penalize: false, details })
      let stream: Stream
      try {
        stream = await node.dialProtocol(peerIdFromString(peer), id, { signal })
      } catch (err) {
        if (timeout.aborted) throw timedOut()
        const unsupported = err instanceof Error && err.name === 'UnsupportedProtocolError'
        throw new RequestError(unsupported ? 'NO_HANDLER' : 'STREAM_FAILED', `could not open ${id} to ${peer}: ${String(err)}`, {
          penalize: false,
          details,
          cause: err,
        })
      }
      const onAbort = () => stream.abort(timedOut())
      signal.addEventListener('abort', onAbort, { once: true })
      let ok = false
      try {
        const payload = await exchangeRequest(stream, bytes, LIGHT_MAX_RESPONSE_BYTES[protocol], details)
        ok = true
        return payload
      } catch (err) {
        if (timeout.aborted) throw timedOut()
        if (err instanceof RequestError) throw err
        throw new RequestError('STREAM_FAILED', `${id} stream to ${peer} failed: ${String(err)}`, { penalize: false, details, cause: err })
      } finally {
        signal.removeEventListener('abort', onAbort)
        if (!ok) stream.abort(new RequestError('STREAM_FAILED', 'request abandoned', { penalize: false }))
      }
    },
    subscribeHeaders(handler: HeaderHandler): () => void {
      handlers.add(handler)
      if (!subscribed) {
        pubsub.subscribe(topic)
        subscribed = true
      }
      return () => {
        handlers.delete(handler)
        if (handlers.size === 0 && subscribed && !stopped) {
          pubsub.unsubscribe(topic)
          subscribed = false
        }
      }
    },
    async close() {
      if (stopped) return
      stopped = true
      handlers.clear()
      await node.stop()
    },
  }
}
