/**
 * The page's light client and its view of the network. It opens the IndexedDB store first, so
 * what an earlier visit verified (the tip, the validator sets, stored headers) is there at once
 * and offline; libp2p then dials the configured full nodes in the background, syncs, follows new
 * headers on gossip and cross-checks the tip with a second node. Views subscribe to its changes.
 */

import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { blockHash, type LightProtocol, RequestError, type SetInForce, type SignedHeader, to0x, type ValidatorSet } from '@loopchain/core'
import {
  type Conflict,
  type CrossCheckResult,
  createLibp2pTransport,
  type HeaderHandler,
  IndexedDbLightStore,
  type Libp2pTransport,
  LightClient,
  LightClientError,
  type LightRequestOptions,
  type LightTransport,
} from '@loopchain/light-client'
import type { ChainConfig } from './config.js'

/** Where the session stands. */
export type SessionPhase = 'starting' | 'connecting' | 'online' | 'offline' | 'failed'

/** What the views show. */
export interface SessionState {
  readonly phase: SessionPhase
  /** Why the session failed or the last sync did not work. */
  readonly error: string | undefined
  /** Connected full nodes (peer ids). */
  readonly peers: readonly string[]
  /** The verified tip (from the network, or from this browser's store). */
  readonly tip: SignedHeader | undefined
  /** True while the tip shown is the one stored by an earlier visit, not yet confirmed by a node. */
  readonly fromStore: boolean
  /** Headers kept in IndexedDB. */
  readonly storedHeaders: number
  readonly sets: readonly SetInForce[]
  readonly crossCheck: CrossCheckResult | undefined
  readonly conflicts: readonly Conflict[]
  /** Nodes caught sending data that does not verify. */
  readonly faults: readonly { peer: string; message: string }[]
  /** When the verified tip last moved, from this browser's clock (ms). */
  readonly lastHeaderAt: number | undefined
}

// How often the page checks its nodes: redials dropped ones, syncs when offline, and cross-checks.
const TICK_MS = 5_000
// Cross-check the tip with a second node at most this often.
const CROSS_CHECK_MS = 30_000
// Gossip keeps the tip current; a sync this often covers gossip that stopped arriving.
const RESYNC_MS = 30_000
// Requests the page makes while a person waits: a dead node must not hold the answer for long.
const REQUEST_TIMEOUT_MS = 5_000

/**
 * A {@link LightTransport} whose libp2p node arrives later: the client opens on the store at once
 * and is offline (no peers) until {@link DeferredTransport.attach}.
 */
class DeferredTransport implements LightTransport {
  private inner: Libp2pTransport | undefined
  private readonly handlers = new Map<HeaderHandler, () => void>()

  attach(t: Libp2pTransport): void {
    this.inner = t
    for (const h of this.handlers.keys()) this.handlers.set(h, t.subscribeHeaders(h))
  }

  get libp2p(): Libp2pTransport | undefined {
    return this.inner
  }

  peers(): string[] {
    return this.inner?.peers() ?? []
  }

  request(peer: string, protocol: LightProtocol, request: Uint8Array, opts?: LightRequestOptions): Promise<Uint8Array> {
    if (this.inner === undefined) {
      return Promise.reject(new RequestError('STREAM_FAILED', 'not connected to the network yet', { penalize: false, details: { peer } }))
    }
    return this.inner.request(peer, protocol, request, opts)
  }

  subscribeHeaders(handler: HeaderHandler): () => void {
    this.handlers.set(handler, this.inner?.subscribeHeaders(handler) ?? (() => {}))
    return () => {
      this.handlers.get(handler)?.()
      this.handlers.delete(handler)
    }
  }

  async close(): Promise<void> {
    await this.inner?.close()
  }
}

/** The IndexedDB database of a chain: named by its genesis too, so a new devnet with the same chain id starts clean. */
export function storeName(config: ChainConfig): string {
  return `loopchain-light-${config.genesis.chainId}-${config.genesisHash.slice(2, 18)}`
}

/** The page's light-client session. Create with {@link Session.start}. */
export class Session {
  private listeners = new Set<(s: SessionState) => void>()
  private current: SessionState
  private lastCrossCheck = 0
  /** The sync running, if one is (see {@link syncNow}). */
  private syncing: Promise<boolean> | undefined
  private lastSync = 0
  private timer: ReturnType<typeof setInterval> | undefined
  private libp2pResolve!: (t: Libp2pTransport) => void
  /** The page's libp2p node, once it started (the channel wallet's links run on it). */
  readonly libp2pReady: Promise<Libp2pTransport> = new Promise((r) => {
    this.libp2pResolve = r
  })

  private constructor(
    readonly config: ChainConfig,
    readonly client: LightClient,
    private readonly transport: DeferredTransport,
    private readonly store: IndexedDbLightStore,
    storedHeaders: number,
  ) {
    this.current = {
      phase: 'connecting',
      error: undefined,
      peers: [],
      tip: client.tip,
      fromStore: client.tip !== undefined,
      storedHeaders,
      sets: client.validatorSets,
      crossCheck: undefined,
      conflicts: [],
      faults: [],
      lastHeaderAt: undefined,
    }
  }

  /** Opens the store and the client (fast, offline), then connects in the background. */
  static async start(config: ChainConfig): Promise<Session> {
    const { genesis } = config
    const name = storeName(config)
    const transport = new DeferredTransport()
    let client: LightClient
    let store = await IndexedDbLightStore.open({ chainId: genesis.chainId, name })
    try {
      client = await LightClient.open({ genesis, store, transport, requestTimeoutMs: REQUEST_TIMEOUT_MS })
    } catch (e) {
      if (!(e instanceof LightClientError && e.code === 'STORE_MISMATCH')) throw e
      // A store that does not verify against the pinned genesis is worthless: start over.
      await store.close()
      await deleteDatabase(name)
      store = await IndexedDbLightStore.open({ chainId: genesis.chainId, name })
      client = await LightClient.open({ genesis, store, transport, requestTimeoutMs: REQUEST_TIMEOUT_MS })
    }
    const session = new Session(config, client, transport, store, await store.headerCount())
    session.wire()
    void session.connect()
    return session
  }

  /** The state now. */
  get state(): SessionState {
    return this.current
  }

  /** Calls `f` now and on every change; returns the function that stops it. */
  subscribe(f: (s: SessionState) => void): () => void {
    this.listeners.add(f)
    f(this.current)
    return () => this.listeners.delete(f)
  }

  /** Full nodes connected now. */
  peers(): string[] {
    return this.transport.peers()
  }

  /** The address a connected peer is reached at (its multiaddr without the peer id), for display. */
  addressOf(peer: string): string | undefined {
    const c = this.transport.libp2p?.libp2p.getConnections().find((x) => x.remotePeer.toString() === peer)
    return c?.remoteAddr.toString().replace(/\/p2p\/[^/]+$/, '')
  }

  /** The validator set voting on the next block (what the network view lists). */
  currentSet(): ValidatorSet {
    const sets = this.client.validatorSets
    return (sets[sets.length - 1] as SetInForce).set
  }

  /**
   * Syncs now (when a person asks, or before a verification); resolves with whether a node
   * answered. A call while a sync runs waits for that one: a verification must not go on before
   * the tip it proves the status against is the network's.
   */
  syncNow(): Promise<boolean> {
    this.syncing ??= this.runSync().finally(() => {
      this.syncing = undefined
    })
    return this.syncing
  }

  private async runSync(): Promise<boolean> {
    try {
      if (this.transport.peers().length === 0) await this.transport.libp2p?.connect()
      await this.client.sync()
      this.lastSync = Date.now()
      this.update({ phase: 'online', error: undefined, fromStore: false })
      return true
    } catch (e) {
      // Connected but unanswered (a chain with no block yet, busy nodes) is still online; a node
      // caught lying is reported as a fault and the next sync tries another.
      this.update({ phase: this.transport.peers().length > 0 ? 'online' : 'offline', error: (e as Error).message })
      return false
    } finally {
      this.update({ peers: this.transport.peers(), storedHeaders: await this.store.headerCount() })
    }
  }

  private wire(): void {
    const c = this.client
    c.on('header', (tip) => {
      void this.store.headerCount().then((n) => this.update({ storedHeaders: n }))
      this.update({ tip, sets: c.validatorSets, lastHeaderAt: Date.now(), fromStore: false })
    })
    c.on('conflict', () => this.update({ conflicts: [...c.conflicts] }))
    c.on('fault', ({ peer, error }) => this.update({ faults: [...this.current.faults.slice(-9), { peer, message: error.message }] }))
  }

  private async connect(): Promise<void> {
    try {
      const t = await createLibp2pTransport({
        chainId: this.config.genesis.chainId,
        bootstrap: this.config.bootstrap,
        allowLocal: this.config.allowLocal,
        transports: ['websockets'],
        dialTimeoutMs: REQUEST_TIMEOUT_MS,
        // Channel links to other pages: a relay reservation on the nodes, WebRTC between pages.
        peerLinks: true,
        privateKey: await pagePeerKey(),
      })
      this.transport.attach(t)
      this.libp2pResolve(t)
      const onPeers = () => this.update({ peers: this.transport.peers() })
      t.libp2p.addEventListener('peer:connect', onPeers)
      t.libp2p.addEventListener('peer:disconnect', onPeers)
      this.client.follow()
    } catch (e) {
      this.update({ phase: 'failed', error: `cannot start libp2p: ${(e as Error).message}` })
      return
    }
    await this.syncNow()
    await this.maybeCrossCheck()
    this.timer = setInterval(() => void this.tick(), TICK_MS)
  }

  private async tick(): Promise<void> {
    const peers = this.transport.peers()
    // Verifications store the headers they fetch: keep the count current.
    this.update({ peers, storedHeaders: await this.store.headerCount() })
    if (peers.length === 0) {
      this.update({ phase: 'offline' })
      // libp2p redials configured nodes when asked for peers; sync once one is back.
      return
    }
    if (this.current.phase !== 'online' || Date.now() - this.lastSync > RESYNC_MS) await this.syncNow()
    await this.maybeCrossCheck()
  }

  private async maybeCrossCheck(): Promise<void> {
    if (this.client.tip === undefined || Date.now() - this.lastCrossCheck < CROSS_CHECK_MS || this.transport.peers().length < 2) return
    this.lastCrossCheck = Date.now()
    try {
      const r = await this.client.crossCheck()
      this.update({ crossCheck: r, conflicts: [...this.client.conflicts] })
    } catch (e) {
      this.update({ error: (e as Error).message })
    }
  }

  private update(patch: Partial<SessionState>): void {
    this.current = { ...this.current, ...patch }
    for (const f of this.listeners) f(this.current)
  }

  /** Stops the timers and closes the client (tests, page unload). */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    await this.client.close()
  }
}

function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.deleteDatabase(name)
    r.onsuccess = () => resolve()
    r.onerror = () => reject(r.error)
    r.onblocked = () => resolve()
  })
}

/** Short hex of a header's hash, for display. */
export function headerHashHex(sh: SignedHeader): string {
  return to0x(blockHash(sh.header))
}

const PEER_KEY = 'loopchain-web/libp2p-key'

/**
 * The page's libp2p identity, kept in localStorage: the peer id is part of the address other
 * pages dial for channel links, so it must survive a reload.
 */
async function pagePeerKey(): Promise<PrivateKey> {
  const saved = localStorage.getItem(PEER_KEY)
  if (saved !== null) {
    try {
      return privateKeyFromProtobuf(Uint8Array.from(atob(saved), (c) => c.charCodeAt(0)))
    } catch {
      // A damaged key: make a new one (peers learn the new address on the next link).
    }
  }
  const key = await generateKeyPair('Ed25519')
  try {
    localStorage.setItem(PEER_KEY, btoa(String.fromCharCode(...privateKeyToProtobuf(key))))
  } catch {
    // Storage disabled: the identity lasts as long as the page.
  }
  return key
}
