import './polyfills.js'
import { createHash } from 'node:crypto'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { type GossipsubMessage, gossipsub, StrictNoSign, TopicValidatorResult } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import type { Connection, ConnectionGater, Libp2p, PeerId } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { clientKey } from '../rpc/server.js'
import { P2PError } from './errors.js'
import { type NodeLogger, silentLogger } from './logger.js'
import { TOPIC_KINDS, type TopicKind, topicName } from './names.js'
import { nodePrivateKey } from './peer-key.js'
import { Redialer, type RedialOptions } from './reconnect.js'
import { type HandleOptions, handleRequests, type RequestHandler, type RequestOptions, sendRequest } from './request-response.js'
import { peerScoreParams, SCORE_THRESHOLDS } from './scoring.js'

/**
 * A gossip validator's verdict: deliver and forward, drop and penalise the sender, just drop, or
 * deliver here without forwarding (`local`: for what this node cannot check, so it never vouches
 * for it to a peer that can).
 */
export type GossipVerdict = 'accept' | 'reject' | 'ignore' | 'local'

/**
 * Checks one gossip message before it is delivered or forwarded. Return `reject` only for
 * messages that are invalid whatever our local state (bad signature, malformed): it lowers the
 * forwarding peer's score. Messages that are merely stale or early should be `ignore`d.
 *
 * `fromPeer` is the peer that forwarded the message to us, not its author: messages are unsigned
 * at the gossip layer (`StrictNoSign`) and carry their own signatures.
 */
export type GossipValidator = (data: Uint8Array, fromPeer: string) => GossipVerdict | Promise<GossipVerdict>

/** Receives a validated gossip message; `fromPeer` is the forwarding peer (see {@link GossipValidator}). */
export type GossipHandler = (data: Uint8Array, fromPeer: string) => void

/** Configuration of {@link createNodeHost}. */
export interface NodeHostOptions {
  /** Namespaces every topic and protocol (`/loopchain/<chainId>/...`). */
  chainId: string
  /** The institution's 32-byte ed25519 node key; the peer id derives from it. */
  nodeKey: Uint8Array
  /** Address to listen on. Default `127.0.0.1` (use `0.0.0.0` to serve other machines). */
  listenHost?: string
  /** TCP port; 0 picks a free one. Default 0. */
  tcpPort?: number
  /** WebSockets port (browsers connect here); 0 picks a free one, `false` disables. Default 0. */
  wsPort?: number | false
  /**
   * UDP port of a WebRTC-direct listener (browsers and light clients dial it without a TLS
   * certificate: the address carries the listener's certificate hash); 0 picks a free one.
   * Default `false`: none.
   */
  webrtcDirectPort?: number | false
  /** Multiaddrs to announce instead of the listen addresses (public or proxied addresses). */
  announce?: string[]
  /** Peers to stay connected to (validators, bootstrap nodes): full multiaddrs, ideally with `/p2p/<id>`. */
  bootstrap?: string[]
  /** Backoff of the reconnect loop for {@link NodeHostOptions.bootstrap}. */
  redial?: RedialOptions
  /** Whether a peer is a member institution (backed by governance state). Called per stream and message. */
  isMember: (peerId: string) => boolean
  /** Topics only members may publish or subscribe to. Default `tx`, `proposal`, `vote` (light clients read `header`). */
  memberOnlyTopics?: readonly TopicKind[]
  /**
   * Topics whose messages go from their publisher straight to every subscribed peer it is connected
   * to, and no further: a receiver delivers an accepted message to its handlers but does not forward
   * it (nor offer it in gossip). Default `tx`: members' nodes form a full mesh, so forwarding a
   * batch of transactions only makes duplicate copies — each one received, decrypted and hashed
   * before it is dropped. A node that misses a batch gets those transactions in a proposal, where
   * it checks them like any it has not pooled.
   */
  directTopics?: readonly TopicKind[]
  /**
   * Size from which a received gossip message makes this node tell its other mesh peers it has it
   * (gossipsub's IDONTWANT), so they do not forward it a copy. Default {@link IDONTWANT_MIN_BYTES}.
   */
  idontwantMinBytes?: number
  /** Per-topic validators; a topic without one accepts every message that passes admission. */
  validators?: Partial<Record<TopicKind, GossipValidator>>
  /** Circuit-relay server limits, or `false` to run no relay. */
  relay?: RelayLimits | false
  /**
   * Inbound connection attempts accepted per second from one IP address. Default 20: devnets run
   * every node on 127.0.0.1, and a proxy terminating `wss://` makes every browser look like one
   * host; libp2p's own default (5) would refuse them.
   */
  inboundConnectionsPerHostPerSecond?: number
  /** How long a peer disconnected for a graylisted score is refused. Default 10 min. */
  banMs?: number
  /**
   * Connections of peers that are not members (light clients, browsers) held at once: past
   * `maxNonMembers` (default 1,024) in all, or `maxNonMembersPerIp` (default 64) from one IP
   * address (an IPv6 /64), each of a peer's several connections counted, a non-member's
   * connection is refused. libp2p refuses every inbound connection past
   * its own maximum, which is set above these with room for the members: strangers with free peer
   * ids cannot take the places members dial into. Behind a proxy or a NAT that makes many
   * browsers one address, raise the per-IP cap.
   */
  connections?: { maxNonMembers?: number; maxNonMembersPerIp?: number }
  /**
   * How long a non-member that disconnected stays in the peer store before it is dropped (checked
   * on each gossipsub heartbeat). Default 1 min.
   */
  forgetStrangersAfterMs?: number
  /** The clock the relay's budget per slot reads (ms). Default `Date.now`; tests pass their own. */
  relayClock?: () => number
  /** Where log lines go. Default: nowhere. */
  logger?: NodeLogger
}

/**
 * What a full node's circuit relay gives the light clients that use it. Browsers hold a slot
 * (a reservation) to be dialled through, for WebRTC signalling and, when no direct connection can
 * be made, for the channel link itself (`peer-link.ts`, which redials when a relayed connection
 * ends). Anyone may reserve, so every relayed connection is bounded in data and time: the relay is
 * not a free tunnel.
 */
export interface RelayLimits {
  /** Slots held at once over all peers. Default 1024. */
  maxReservations?: number
  /** How long a slot lasts before its holder must renew it (libp2p renews it). Default 2 h. */
  reservationTtlMs?: number
  /** Bytes one relayed connection may carry (both ways together) before the relay closes it. Default 4 MiB. */
  dataLimitBytes?: number
  /** How long one relayed connection may stay open before the relay closes it. Default 30 min. */
  durationLimitMs?: number
  /**
   * Relayed connections the relay starts from one address to slot holders at one address (an IP,
   * or an IPv6 /64) within {@link RelayLimits.connectionsPerSlotWindowMs}; past it, it refuses
   * them (`PERMISSION_DENIED`) until the oldest ages out. Each relayed connection starts with
   * fresh data and time limits, so without this one slot could carry any amount over time.
   * Counted by addresses, not peer ids, which cost nothing to change: a party holding both ends
   * gets no fresh budget from new ids or new slots, and pages behind one NAT or proxy share theirs.
   * An attempt is counted once the slot is found held, even if the holder then cannot be reached.
   * Default 30 (a page uses one to signal for a direct WebRTC link, two when the link falls back
   * to the relay, and a relayed link ends at its data or time limit).
   */
  connectionsPerSlot?: number
  /** The window of {@link RelayLimits.connectionsPerSlot}. Default 1 h. */
  connectionsPerSlotWindowMs?: number
}

/** The defaults of {@link NodeHostOptions.connections}. */
export const DEFAULT_CONNECTION_LIMITS = { maxNonMembers: 1024, maxNonMembersPerIp: 64 } as const
/** Inbound connections libp2p accepts beyond the non-members' cap: the members' (and observers') room. */
const MEMBER_CONNECTION_ROOM = 256

/** The defaults of {@link RelayLimits}. */
export const DEFAULT_RELAY_LIMITS: Required<RelayLimits> = {
  // Browsers each hold one slot; the library default (15) is for public DHT nodes. Bounded, so a
  // flood of light clients cannot exhaust the node.
  maxReservations: 1024,
  reservationTtlMs: 2 * 60 * 60_000,
  // Signalling takes a few KiB; a relayed channel link, ~1 KiB per payment, so thousands fit.
  // (The library's default, 128 KiB and 2 min, would end a relayed channel link within minutes.)
  dataLimitBytes: 4 * 1024 * 1024,
  durationLimitMs: 30 * 60_000,
  // At most 30 × 4 MiB = 120 MiB an hour from one address to slots at another.
  connectionsPerSlot: 30,
  connectionsPerSlotWindowMs: 60 * 60_000,
}

/** One open connection, for status pages and tests. */
export interface ConnectionInfo {
  /** The remote peer. */
  peerId: string
  /** The remote address (shows the transport: `/tcp/…`, `/ws`, `/p2p-circuit`). */
  remoteAddr: string
  /** True for relayed connections with data/duration limits. */
  limited: boolean
}

/** A running libp2p host of a full node. Create with {@link createNodeHost}. */
export interface NodeHost {
  /** This node's peer id. */
  readonly peerId: string
  /** The chain this host serves. */
  readonly chainId: string
  /** The underlying libp2p node, for what this interface does not cover (metrics, extra transports). */
  readonly libp2p: Libp2p
  /** The addresses peers can dial, each ending in `/p2p/<peerId>`. */
  multiaddrs(): string[]
  /** Subscribes to a topic; returns the function that removes this handler (and unsubscribes after the last). */
  subscribe(kind: TopicKind, handler: GossipHandler): () => void
  /** Publishes to a topic; resolves with the number of peers it was sent to (0 is not an error). */
  publish(kind: TopicKind, data: Uint8Array): Promise<number>
  /** Serves a request-response protocol (a full id, see `protocolName`). */
  handle(protocol: string, handler: RequestHandler, opts?: HandleOptions): Promise<void>
  /** Stops serving a protocol. */
  unhandle(protocol: string): Promise<void>
  /** Sends one request and returns the response, or throws a `RequestError`. */
  request(peerId: string, protocol: string, data: Uint8Array, opts?: RequestOptions): Promise<Uint8Array>
  /** Dials a multiaddr once (no redial); resolves with the remote peer id. */
  dial(addr: string): Promise<string>
  /** The gossipsub score of a peer (0 when unknown). */
  peerScore(peerId: string): number
  /** Peers currently in the gossip mesh of a topic. */
  meshPeers(kind: TopicKind): string[]
  /** Peers known to be subscribed to a topic. */
  subscribers(kind: TopicKind): string[]
  /** Open connections. */
  connections(): ConnectionInfo[]
  /**
   * The circuit relay's slots in use, its limits, and the relayed connection attempts it refused
   * since the host started past {@link RelayLimits.connectionsPerSlot}; `undefined` when the host
   * runs no relay.
   */
  relay(): { reservations: number; limits: Required<RelayLimits>; refusedConnections: number } | undefined
  /**
   * Re-checks admission after a membership change: disconnects every non-member subscribed to a
   * member-only topic. (Streams and messages are checked as they arrive; this covers peers that
   * subscribed while they were still members.) Returns the peers disconnected.
   */
  enforceAdmission(): string[]
  /** Whether a peer is currently refused for a graylisted score or a provably bad answer. */
  isBanned(peerId: string): boolean
  /**
   * Disconnects a peer and refuses it for the ban period: for what gossip scoring does not see, a
   * request-response answer that cannot be honest (a synced block whose commit does not verify).
   */
  ban(peerId: string, reason: string): void
  /** Peers currently refused (graylisted or banned), with the time left on each ban. */
  bannedPeers(): { peerId: string; remainingMs: number }[]
  /** Runs `f` when the host stops, before libp2p does (what was attached to it lets go). */
  onStop(f: () => void): void
  /** Stops redialling, closes every connection and the listeners. */
  stop(): Promise<void>
}

/** The relay server's slots, as circuit-relay-v2's server keeps them (not in its public interface). */
interface RelaySlots {
  get(peer: PeerId): { signal: AbortSignal & { clear?: () => void } } | undefined
  removeReservation(peer: PeerId): void
}

/** The parts of gossipsub's implementation we use that its public interface type does not declare. */
interface ScoredGossipSub {
  getScore(peerId: string): number
  getMeshPeers(topic: string): string[]
  /** Each topic's mesh (peer ids): public in gossipsub's class, not in its interface. */
  readonly mesh: Map<string, Set<string>>
}

// A banned peer's score decays slowly (1%/s); ten minutes brings a -180 peer back near -0.5.
const DEFAULT_BAN_MS = 10 * 60_000
/**
 * See {@link NodeHostOptions.idontwantMinBytes}. Lower is not better here: a node checks a proposal
 * synchronously before gossipsub forwards it, so a peer's IDONTWANT, sent as that peer got the same
 * proposal at the same moment, is read only after this node has forwarded its copy; the IDONTWANTs
 * then cost on top of the copies. In the bench's `mesh4` figures (`npm run bench -- gossip`: four
 * hosts, a 60 KB proposal, a 5 ms busy check before forwarding) 16 KiB cost 14–23% more than this.
 */
export const IDONTWANT_MIN_BYTES = 64 * 1024
/**
 * Requests that were the requester's fault (malformed, oversized, refused as invalid) before a
 * non-member peer is banned, like three invalid gossip messages graylist it. The count decays by
 * 1% a second, as gossip's does, and a ban comes once it passes 2: three faults within a few
 * seconds, or one a minute kept up for a while (a fault every 69 s or more never gets there).
 */
export const REQUEST_FAULTS_TO_BAN = 3
const REQUEST_FAULT_DECAY_PER_S = 0.99
const MAX_FAULTY_PEERS_TRACKED = 10_000
/** Bans held at once; past this the oldest are lifted early (each heartbeat drops expired ones). */
const MAX_BANS_TRACKED = 100_000

/** Deletes the `n` oldest entries of `map` (a Map iterates in insertion order). */
function dropOldest(map: Map<string, unknown>, n: number): void {
  for (const k of map.keys()) {
    if (n-- <= 0) return
    map.delete(k)
  }
}

/**
 * Starts the libp2p host of a full node: TCP and WebSockets listeners, noise, yamux, identify,
 * ping, gossipsub with validation and peer scoring, a circuit-relay server for browsers, member
 * admission, and a reconnect loop to the configured peers.
 *
 * Admission is checked per protocol and per message, not by the connection gater: light clients
 * (browsers) must connect to read headers and use read-only protocols, so connections cannot be
 * refused by membership. Member-only request protocols answer non-members with `NOT_MEMBER`;
 * member-only topics reject (and so penalise) messages forwarded by non-members, and a non-member
 * that subscribes to one is disconnected, so members' transactions and votes are not streamed
 * to it. The gater refuses peers banned (for a graylisted score, or three faulty requests or
 * invalid gossip messages of a non-member), and non-members past their connection caps.
 */
export async function createNodeHost(options: NodeHostOptions): Promise<NodeHost> {
  const log = options.logger ?? silentLogger
  const { chainId, isMember } = options
  const host = options.listenHost ?? '127.0.0.1'
  const ip = host.includes(':') ? 'ip6' : 'ip4'
  const banMs = options.banMs ?? DEFAULT_BAN_MS
  const privateKey = await nodePrivateKey(options.nodeKey)
  // Named here, before anything listens: libp2p's own error would not say which list held the address.
  for (const [list, addrs] of [
    ['bootstrap', options.bootstrap ?? []],
    ['announce', options.announce ?? []],
  ] as const) {
    for (const a of addrs) {
      try {
        multiaddr(a)
      } catch (e) {
        throw new P2PError('INVALID_ADDRESS', `the ${list} address ${a} is not a multiaddr: ${(e as Error).message}`, {
          penalize: false,
          details: { list, address: a },
        })
      }
    }
  }

  const topics = new Map<string, TopicKind>(TOPIC_KINDS.map((k) => [topicName(chainId, k), k]))
  const memberOnly = new Set<TopicKind>(options.memberOnlyTopics ?? ['tx', 'proposal', 'vote'])

  const bans = new Map<string, number>()
  /** Decaying counts of faulty requests per peer (see {@link REQUEST_FAULTS_TO_BAN}). */
  const requestFaults = new Map<string, { count: number; at: number }>()
  /** A faulty request or invalid gossip message of `peer` (see {@link REQUEST_FAULTS_TO_BAN}). */
  const onFault = (peer: string, code: string) => {
    // A member institution's node is not cut off for its requests: a ban would drop its votes
    // too, and a member on another software version could fail to decode honestly. Logged.
    if (isMember(peer)) {
      log.warn('a member peer sent a faulty request', { peer, code })
      return
    }
    const now = Date.now()
    const decayed = (x: { count: number; at: number }) => x.count * REQUEST_FAULT_DECAY_PER_S ** ((now - x.at) / 1000)
    const f = requestFaults.get(peer)
    const count = (f ? decayed(f) : 0) + 1
    // Decay leaves three quick faults a little under 3: the one that takes the count past the one before the limit bans.
    if (count > REQUEST_FAULTS_TO_BAN - 1) {
      requestFaults.delete(peer)
      ban(peer, `${Math.round(count)} faulty requests, the last ${code}`)
      return
    }
    if (f) requestFaults.delete(peer)
    else if (requestFaults.size >= MAX_FAULTY_PEERS_TRACKED) {
      for (const [p, x] of requestFaults) if (decayed(x) < 0.5) requestFaults.delete(p)
      // Still full of fresh ones: the oldest tenth goes.
      if (requestFaults.size >= MAX_FAULTY_PEERS_TRACKED) dropOldest(requestFaults, MAX_FAULTY_PEERS_TRACKED / 10)
    }
    requestFaults.set(peer, { count, at: now })
  }
  const ban = (peer: string, reason: string) => {
    bans.set(peer, Date.now() + banMs)
    hangUp(peer, reason)
  }
  /** Drops expired bans (a peer id costs nothing to make: banned ones must not pile up). */
  const pruneBans = () => {
    const now = Date.now()
    for (const [p, until] of bans) if (until <= now) bans.delete(p)
    dropOldest(bans, bans.size - MAX_BANS_TRACKED)
  }
  const banRemainingMs = (peerId: string): number => {
    const until = bans.get(peerId)
    if (until === undefined) return 0
    const left = until - Date.now()
    if (left <= 0) bans.delete(peerId)
    return Math.max(0, left)
  }
  const isBannedId = (peerId: PeerId) => banRemainingMs(peerId.toString()) > 0
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.connections }
  /**
   * Whom a connection counts against: its IP address, an IPv6 one by its /64 (as the JSON-RPC
   * limits count clients: one site holds a whole /64).
   */
  const sourceOf = (addr: { toString(): string }): string => {
    const parts = String(addr).split('/')
    return parts[1] === 'ip6' ? clientKey(parts[2] ?? '') : (parts[2] ?? String(addr))
  }
  /**
   * Non-members' open connections and where each came from, kept as connections open and close
   * (the gater asks on every inbound connection: counting all connections each time would cost
   * the consensus thread a pass over them). A peer's membership is read when its connection opens.
   */
  const strangers = new Map<Connection, string>()
  const strangersFrom = new Map<string, number>()
  const countOpen = (conn: Connection) => {
    // A connection closed before libp2p announced it (the peer hung up at once) never announces
    // its close: counted, it would hold its place for good.
    if (conn.status !== 'open' || isMember(conn.remotePeer.toString())) return
    const source = sourceOf(conn.remoteAddr)
    strangers.set(conn, source)
    strangersFrom.set(source, (strangersFrom.get(source) ?? 0) + 1)
  }
  const countClose = (conn: Connection) => {
    const source = strangers.get(conn)
    if (source === undefined) return
    strangers.delete(conn)
    const left = (strangersFrom.get(source) ?? 1) - 1
    if (left > 0) strangersFrom.set(source, left)
    else strangersFrom.delete(source)
  }
  /**
   * A non-member's connection past the non-members' caps (see {@link NodeHostOptions.connections}),
   * its own other connections counted too: a peer id may hold several. Members are never refused here.
   */
  const overNonMemberCaps = (peer: string, remoteAddr: { toString(): string }): string | undefined => {
    if (isMember(peer)) return undefined
    const source = sourceOf(remoteAddr)
    const fromSource = strangersFrom.get(source) ?? 0
    if (strangers.size >= limits.maxNonMembers) return `${strangers.size} connections of non-members held already`
    if (fromSource >= limits.maxNonMembersPerIp) return `${fromSource} connections of non-members from ${source} held already`
    return undefined
  }
  const relay = options.relay === false ? undefined : { ...DEFAULT_RELAY_LIMITS, ...options.relay }
  /**
   * When the relay started its recent connections from each address to each address of slot
   * holders (oldest first), the pairs last used kept last; forgotten beyond four times the slots,
   * the least recently used first.
   */
  const slotConnects = new Map<string, number[]>()
  let relayRefused = 0
  const relayClock = options.relayClock ?? Date.now
  /** The address (IP, IPv6 /64) of a peer's direct connection to this node, or its id without one. */
  const addressOf = (peer: PeerId): string => {
    const direct = libp2p.getConnections(peer).find((c) => c.limits === undefined)
    return direct === undefined ? peer.toString() : sourceOf(direct.remoteAddr)
  }
  /**
   * Whether the relay must refuse to connect `source` to `destination` now (see
   * {@link RelayLimits.connectionsPerSlot}); a connection it allows is counted. The relay takes
   * no request over a relayed connection, and a slot's holder reserved over a direct one.
   */
  const relayBudgetSpent = (source: PeerId, destination: PeerId): boolean => {
    if (relay === undefined) return false
    const from = addressOf(source)
    const to = addressOf(destination)
    const id = `${from} ${to}`
    const now = relayClock()
    const since = now - relay.connectionsPerSlotWindowMs
    const times = (slotConnects.get(id) ?? []).filter((t) => t > since)
    slotConnects.delete(id)
    slotConnects.set(id, times)
    if (times.length >= relay.connectionsPerSlot) {
      relayRefused++
      log.debug('relay: refused a connection to a slot past its budget', {
        source: source.toString(),
        from,
        destination: destination.toString(),
        to,
        connections: times.length,
        windowMs: relay.connectionsPerSlotWindowMs,
      })
      return true
    }
    times.push(now)
    for (const oldest of slotConnects.keys()) {
      if (slotConnects.size <= relay.maxReservations * 4) break
      slotConnects.delete(oldest)
    }
    return false
  }
  const gater: ConnectionGater = {
    denyDialPeer: isBannedId,
    denyOutboundRelayedConnection: relayBudgetSpent,
    denyInboundEncryptedConnection: (peerId, maConn) => {
      if (isBannedId(peerId)) return true
      const over = overNonMemberCaps(peerId.toString(), maConn.remoteAddr)
      if (over !== undefined) log.debug('refused a connection', { peer: peerId.toString(), reason: over })
      return over !== undefined
    },
    denyOutboundEncryptedConnection: isBannedId,
  }

  const listen = [`/${ip}/${host}/tcp/${options.tcpPort ?? 0}`]
  if (options.wsPort !== false) listen.push(`/${ip}/${host}/tcp/${options.wsPort ?? 0}/ws`)
  const webrtcDirect = options.webrtcDirectPort !== undefined && options.webrtcDirectPort !== false
  if (webrtcDirect) listen.push(`/${ip}/${host}/udp/${options.webrtcDirectPort}/webrtc-direct`)

  const libp2p = await createLibp2p({
    privateKey,
    addresses: { listen, ...(options.announce ? { announce: options.announce } : {}) },
    transports: [tcp(), webSockets(), ...(webrtcDirect ? [webRTCDirect()] : [])],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: gater,
    connectionManager: {
      inboundConnectionThreshold: options.inboundConnectionsPerHostPerSecond ?? 20,
      maxConnections: limits.maxNonMembers + MEMBER_CONNECTION_ROOM,
    },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        // Our messages carry their own signatures; gossipsub signing would cost ~4x throughput (STACK.md).
        globalSignaturePolicy: StrictNoSign,
        // Without author and sequence number, identity is content: the same bytes on the same topic are one message.
        msgIdFn: (msg) =>
          createHash('sha256')
            .update(msg.topic)
            .update(new Uint8Array([0]))
            .update(msg.data)
            .digest(),
        emitSelf: false,
        allowedTopics: [...topics.keys()],
        // A lone validator (devnet of one) or a node whose peers are still connecting must not fail to publish.
        allowPublishToZeroTopicPeers: true,
        // Re-publishing a vote or transaction we already sent is harmless.
        ignoreDuplicatePublishError: true,
        // IDONTWANT saves a peer a duplicate copy we would otherwise forward to it, when it arrives
        // before that peer forwards; see IDONTWANT_MIN_BYTES for why it starts at 64 KiB.
        idontwantMinDataSize: options.idontwantMinBytes ?? IDONTWANT_MIN_BYTES,
        fallbackToFloodsub: false,
        doPX: false,
        scoreParams: peerScoreParams([...topics.keys()]),
        scoreThresholds: SCORE_THRESHOLDS,
      }),
      ...(relay
        ? {
            relay: circuitRelayServer({
              reservations: {
                maxReservations: relay.maxReservations,
                reservationTtl: relay.reservationTtlMs,
                applyDefaultLimit: true,
                defaultDataLimit: BigInt(relay.dataLimitBytes),
                defaultDurationLimit: relay.durationLimitMs,
              },
            }),
          }
        : {}),
    },
  })

  libp2p.addEventListener('connection:open', (evt) => countOpen(evt.detail))
  libp2p.addEventListener('connection:close', (evt) => countClose(evt.detail))
  const pubsub = libp2p.services.pubsub
  const scored = pubsub as unknown as ScoredGossipSub
  const peerIdStr = libp2p.peerId.toString()

  const handlers = new Map<string, Set<GossipHandler>>()
  const deliver = (topic: string, data: Uint8Array, from: string) => {
    const set = handlers.get(topic)
    if (set === undefined) return
    for (const h of set) {
      try {
        h(data, from)
      } catch (err) {
        log.error('gossip handler threw', { topic, error: err instanceof Error ? err.message : String(err) })
      }
    }
  }
  const direct = new Set<TopicKind>(options.directTopics ?? ['tx'])
  for (const [topic, kind] of topics) {
    const validate = options.validators?.[kind]
    pubsub.topicValidators.set(topic, async (peer, msg) => {
      const from = peer.toString()
      // Gossipsub validates before it asks whether this node takes the topic at all (members do
      // not take headers): what it does not take costs no check. Nor does anything more from a
      // peer already banned for its faults (gossipsub's scores would take up to a heartbeat).
      if (!handlers.has(topic) || bans.has(from)) return TopicValidatorResult.Ignore
      let verdict: GossipVerdict
      if (memberOnly.has(kind) && !isMember(from)) {
        log.debug('rejected member-only gossip from a non-member', { topic, peer: from })
        verdict = 'reject'
      } else if (validate === undefined) {
        verdict = 'accept'
      } else {
        try {
          verdict = await validate(msg.data, from)
        } catch (err) {
          // A throwing validator is our bug, not the peer's fault: drop without penalty.
          log.error('gossip validator threw', { topic, error: err instanceof Error ? err.message : String(err) })
          verdict = 'ignore'
        }
      }
      if (verdict === 'reject') {
        log.warn('rejected a gossip message', { topic, peer: from })
        // Counted as it happens, like faulty requests: a non-member is banned at its third.
        if (!isMember(from)) onFault(from, `invalid ${kind} gossip`)
      }
      if ((verdict === 'accept' && direct.has(kind)) || verdict === 'local') {
        // Delivered here; gossipsub is told to drop it (no penalty, counted in its metrics as
        // ignored), so it is neither forwarded nor offered in IHAVE gossip.
        deliver(topic, msg.data, from)
        return TopicValidatorResult.Ignore
      }
      return verdict === 'accept'
        ? TopicValidatorResult.Accept
        : verdict === 'reject'
          ? TopicValidatorResult.Reject
          : TopicValidatorResult.Ignore
    })
  }

  const hangUp = (peer: string, reason: string) => {
    void libp2p.hangUp(peerIdFromString(peer)).catch((err: unknown) => log.debug('hang-up failed', { peer, error: String(err) }))
    log.warn('disconnected a peer', { peer, reason })
  }

  // Gossipsub already ignores a graylisted peer's RPCs; we also disconnect and refuse it for a while so it
  // stops costing us a connection. Checked on each heartbeat, when gossipsub refreshes its score cache.
  const enforceScores = () => {
    pruneBans()
    forgetDeparted()
    // And should a close still go unannounced, the next heartbeat forgets it.
    for (const conn of strangers.keys()) if (conn.status !== 'open') countClose(conn)
    for (const conn of libp2p.getConnections()) {
      const peer = conn.remotePeer.toString()
      if (bans.has(peer)) continue
      const score = scored.getScore(peer)
      if (score < SCORE_THRESHOLDS.graylistThreshold) {
        bans.set(peer, Date.now() + banMs)
        hangUp(peer, `gossip score ${score.toFixed(1)} below ${SCORE_THRESHOLDS.graylistThreshold}`)
      }
    }
  }
  pubsub.addEventListener('gossipsub:heartbeat', enforceScores)

  // A non-member has no business receiving members' transactions and votes.
  pubsub.addEventListener('subscription-change', (evt) => {
    const peer = evt.detail.peerId.toString()
    const wants = evt.detail.subscriptions.filter((s) => s.subscribe && memberOnly.has(topics.get(s.topic) as TopicKind))
    // "In this node's state": a node still syncing sees members added later in the chain as strangers.
    if (wants.length > 0 && !isMember(peer))
      hangUp(peer, `not a member in this node's state, and subscribed to ${wants.map((s) => s.topic).join(', ')}`)
  })

  // Subscribing is not the only way into a mesh: gossipsub grafts any peer that sends a GRAFT (with
  // a score of at least 0) without asking whether it subscribed, and forwards the topic's messages
  // to it. A non-member grafted onto a member topic is taken out at once, before anything is
  // forwarded (the event comes right after gossipsub adds it), and disconnected.
  pubsub.addEventListener('gossipsub:graft', (evt) => {
    const { peerId, topic } = evt.detail
    if (!memberOnly.has(topics.get(topic) as TopicKind) || isMember(peerId)) return
    scored.mesh.get(topic)?.delete(peerId)
    hangUp(peerId, `non-member grafted onto ${topic}`)
  })

  pubsub.addEventListener('gossipsub:message', (evt: CustomEvent<GossipsubMessage>) => {
    const { msg, propagationSource } = evt.detail
    deliver(msg.topic, msg.data, propagationSource.toString())
  })

  // A peer gone: its relay slot is freed at once. The library keeps a slot until its time runs out
  // (two hours), so reserving and leaving would take every slot, and a slot whose holder has no
  // connection is of no use: the relay refuses to connect anyone to it.
  // (A page that reloads may then reserve on another node: peer-link.ts looks for it there.)
  // A non-member that left is dropped from the peer store, which is kept in memory and drops old
  // entries only when they are read, so an entry per stranger would pile up. Not at once: on a
  // disconnect libp2p's registrar reads the entry to tell gossipsub and the other protocols that
  // the peer went, and a page that reloads is back within a second.
  let stopped = false
  const departed = new Map<string, { peer: PeerId; at: number }>()
  const forgetAfterMs = options.forgetStrangersAfterMs ?? 60_000
  const onDisconnect = (evt: CustomEvent<PeerId>) => {
    const peer = evt.detail
    const store = (libp2p.services as { relay?: { reservationStore?: RelaySlots } }).relay?.reservationStore
    const slot = store?.get(peer)
    if (slot !== undefined) {
      // Its timer stopped, so that it cannot delete the slot this peer takes when it comes back (a
      // slot refreshed before kept a timer past this until .patches/retimeable-signal).
      slot.signal.clear?.()
      store?.removeReservation(peer)
    }
    const id = peer.toString()
    if (isMember(id)) return
    departed.delete(id) // re-inserted last: the map stays in the order of leaving
    departed.set(id, { peer, at: Date.now() })
  }
  const onConnect = (evt: CustomEvent<PeerId>) => {
    departed.delete(evt.detail.toString())
  }
  function forgetDeparted() {
    const leftBefore = Date.now() - forgetAfterMs
    for (const [id, { peer, at }] of departed) {
      if (at > leftBefore) break
      departed.delete(id)
      if (stopped || isMember(id) || libp2p.getConnections(peer).length > 0) continue
      libp2p.peerStore.delete(peer).catch((err: unknown) => log.debug('peer store: delete failed', { error: String(err) }))
    }
  }
  libp2p.addEventListener('peer:disconnect', onDisconnect)
  libp2p.addEventListener('peer:connect', onConnect)

  const redialer = new Redialer(libp2p, options.bootstrap ?? [], options.redial ?? {}, log, banRemainingMs)
  redialer.start()
  const stopHooks: (() => void)[] = []
  const live = () => {
    if (stopped) throw new P2PError('NOT_STARTED', 'the node host has been stopped', { penalize: false })
  }
  log.info('p2p host listening', { peerId: peerIdStr, addrs: libp2p.getMultiaddrs().map(String) })

  return {
    peerId: peerIdStr,
    chainId,
    libp2p: libp2p as unknown as Libp2p,
    multiaddrs: () => libp2p.getMultiaddrs().map(String),
    subscribe(kind, handler) {
      live()
      const topic = topicName(chainId, kind)
      let set = handlers.get(topic)
      if (set === undefined) {
        set = new Set()
        handlers.set(topic, set)
        pubsub.subscribe(topic)
      }
      set.add(handler)
      return () => {
        const s = handlers.get(topic)
        if (s === undefined || !s.delete(handler) || s.size > 0) return
        handlers.delete(topic)
        if (!stopped) pubsub.unsubscribe(topic)
      }
    },
    async publish(kind, data) {
      live()
      const res = await pubsub.publish(topicName(chainId, kind), data)
      return res.recipients.length
    },
    async handle(protocol, handler, opts = {}) {
      live()
      await handleRequests(libp2p as unknown as Libp2p, protocol, handler, opts, isMember, log, onFault)
    },
    async unhandle(protocol) {
      await libp2p.unhandle(protocol)
    },
    async request(peerId, protocol, data, opts) {
      live()
      return sendRequest(libp2p as unknown as Libp2p, peerId, protocol, data, opts)
    },
    async dial(addr) {
      live()
      const conn = await libp2p.dial(multiaddr(addr))
      return conn.remotePeer.toString()
    },
    peerScore: (peerId) => scored.getScore(peerId),
    meshPeers: (kind) => scored.getMeshPeers(topicName(chainId, kind)),
    subscribers: (kind) => pubsub.getSubscribers(topicName(chainId, kind)).map(String),
    connections: () =>
      libp2p
        .getConnections()
        .map((c) => ({ peerId: c.remotePeer.toString(), remoteAddr: c.remoteAddr.toString(), limited: c.limits !== undefined })),
    relay() {
      const service = (libp2p.services as { relay?: { reservations: { size: number } } }).relay
      return relay && service ? { reservations: service.reservations.size, limits: relay, refusedConnections: relayRefused } : undefined
    },
    enforceAdmission() {
      const out = new Set<string>()
      for (const kind of memberOnly) {
        const topic = topicName(chainId, kind)
        // Subscribers, and mesh peers (a peer can be grafted without subscribing).
        for (const id of new Set([...pubsub.getSubscribers(topic).map(String), ...scored.getMeshPeers(topic)])) {
          if (!isMember(id) && !out.has(id)) {
            out.add(id)
            scored.mesh.get(topic)?.delete(id)
            hangUp(id, `no longer a member, in ${kind}`)
          }
        }
      }
      return [...out]
    },
    isBanned: (peerId) => banRemainingMs(peerId) > 0,
    ban,
    bannedPeers: () => [...bans.keys()].map((peerId) => ({ peerId, remainingMs: banRemainingMs(peerId) })).filter((b) => b.remainingMs > 0),
    onStop(f) {
      stopHooks.push(f)
    },
    async stop() {
      if (stopped) return
      stopped = true
      for (const f of stopHooks.splice(0)) {
        try {
          f()
        } catch (e) {
          log.warn('p2p host: a stop hook failed', { error: String(e) })
        }
      }
      redialer.stop()
      pubsub.removeEventListener('gossipsub:heartbeat', enforceScores)
      libp2p.removeEventListener('peer:disconnect', onDisconnect)
      libp2p.removeEventListener('peer:connect', onConnect)
      await libp2p.stop()
      log.info('p2p host stopped', { peerId: peerIdStr })
    },
  }
}
