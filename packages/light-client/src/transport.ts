/**
 * The light client's seam to full nodes: request-response on the light-client protocols and the
 * chain's `header` gossip topic. {@link MemoryTransport} serves answers from in-memory handlers
 * (tests, benchmarks with a synthetic chain); `createLibp2pTransport` is the real one.
 */
import { type LightHandlers, type LightProtocol, LoopchainError, RequestError } from '@loopchain/core'

/** A gossip verdict: deliver and forward, drop and penalise the sender, or just drop. */
export type HeaderVerdict = 'accept' | 'reject' | 'ignore'

/** Receives one gossiped header (an encoded `SignedHeader`) and judges it. */
export type HeaderHandler = (data: Uint8Array, fromPeer: string) => HeaderVerdict | Promise<HeaderVerdict>

/** Options of one request. */
export interface LightRequestOptions {
  /** The whole exchange must finish within this. */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

/** How a light client reaches full nodes. */
export interface LightTransport {
  /** Full nodes that can be asked now, preferred first. */
  peers(): string[]
  /**
   * One request on a light-client protocol; resolves with the response bytes or throws a
   * `RequestError` (`details.remoteCode` carries a server's `LightServeError` code).
   */
  request(peer: string, protocol: LightProtocol, request: Uint8Array, opts?: LightRequestOptions): Promise<Uint8Array>
  /** Delivers each header gossiped on the chain's `header` topic to `handler`; returns the unsubscribe function. */
  subscribeHeaders(handler: HeaderHandler): () => void
  /** Closes connections. */
  close(): Promise<void>
}

/** Answers one request as a full node would (a `LightHandlers` record from the core fits). */
export type MemoryPeer = Pick<LightHandlers, LightProtocol>

/**
 * A {@link LightTransport} to in-memory peers: each peer is a set of light-protocol handlers
 * (core `createLightHandlers` over any `LightBackend`). Errors travel as over the wire: a handler's
 * `LoopchainError` arrives as `RequestError('HANDLER_FAILED')` with its code in
 * `details.remoteCode`; an offline peer fails with `STREAM_FAILED`. `publishHeader` plays gossip.
 */
export class MemoryTransport implements LightTransport {
  private readonly peersById = new Map<string, MemoryPeer>()
  private readonly offline = new Set<string>()
  private readonly handlers = new Set<HeaderHandler>()
  /** Requests made, per protocol (benchmarks and tests count round trips). */
  readonly requests: Record<LightProtocol, number> = { tip: 0, headers: 0, sets: 0, proof: 0, submit: 0, watch: 0 }

  constructor(peers: Record<string, MemoryPeer> = {}) {
    for (const [id, p] of Object.entries(peers)) this.peersById.set(id, p)
  }

  /** Adds or replaces a peer. */
  setPeer(id: string, peer: MemoryPeer): void {
    this.peersById.set(id, peer)
  }

  /** Takes a peer off the network (or back on). */
  setOnline(id: string, online: boolean): void {
    if (online) this.offline.delete(id)
    else this.offline.add(id)
  }

  peers(): string[] {
    return [...this.peersById.keys()].filter((id) => !this.offline.has(id))
  }

  async request(peer: string, protocol: LightProtocol, request: Uint8Array): Promise<Uint8Array> {
    const p = this.peersById.get(peer)
    if (p === undefined || this.offline.has(peer)) {
      throw new RequestError('STREAM_FAILED', `peer ${peer} is not reachable`, { penalize: false, details: { peer, protocol } })
    }
    this.requests[protocol]++
    try {
      // A copy, as bytes off a socket would be: the server must not share arrays with the client.
      return (await p[protocol](request.slice())).slice()
    } catch (err) {
      const typed = err instanceof LoopchainError
      throw new RequestError('HANDLER_FAILED', typed ? err.message : 'the handler failed', {
        penalize: false,
        details: { peer, protocol, remote: true, ...(typed ? { remoteCode: err.code } : {}) },
      })
    }
  }

  subscribeHeaders(handler: HeaderHandler): () => void {
    this.handlers.add(handler)
    return () => this.handlers.delete(handler)
  }

  /** Delivers a gossiped header from `fromPeer` to every subscriber; resolves with their verdicts. */
  async publishHeader(data: Uint8Array, fromPeer: string): Promise<HeaderVerdict[]> {
    return Promise.all([...this.handlers].map((h) => h(data.slice(), fromPeer)))
  }

  async close(): Promise<void> {
    this.handlers.clear()
  }
}
