/**
 * Connects a {@link FullNode} to its peers over libp2p: consensus messages on the `proposal` and
 * `vote` topics, client transactions batched on the `tx` topic (one gossip message per batch, not
 * per transaction: gossipsub's per-message cost would cap the network near 2,000 tx/s, see
 * STACK.md; sent by the node that took them to each member it is connected to and not forwarded,
 * see `directTopics` in the host), committed headers with their commits on `header`; the
 * read-only light-client protocols. Only the member nodes the committed state admits (a node key
 * on record with the member-node or validator right; governance changes it) may use the member
 * topics, and a node that loses admission is disconnected at the block that takes it away.
 */
import {
  type Block,
  blockCodec,
  blockHash,
  bytesView,
  type Commit,
  commitCodec,
  decode,
  encode,
  fromHex,
  LoopchainError,
  list,
  MAX_TX_BYTES,
  memoByIdentity,
  signedHeaderCodec,
  struct,
  uvarint,
} from '@loopchain/core'
import {
  type ConsensusGossipContext,
  ConsensusPublisher,
  type ConsensusTopic,
  checkConsensusGossip,
  consensusMessageBytes,
  ResendFilter,
} from '../p2p/consensus-gossip.js'
import { createNodeHost, type GossipValidator, type NodeHost, type NodeHostOptions, type RelayLimits } from '../p2p/host.js'
import type { NodeLogger } from '../p2p/logger.js'
import { peerIdFromNodePublicKey } from '../p2p/peer-key.js'
import { type FullNode, NodeError, type NodeNetwork } from './full-node.js'
import { checkHeaderGossip, type HeaderForwarded, serveLightClients } from './light-server.js'

/** Transactions per gossip batch, and how long a batch may wait to fill. */
const TX_BATCH_MAX = 256
const TX_BATCH_DELAY_MS = 20
/**
 * A batch goes out before it would pass this many bytes: gossipsub neither sends nor takes a
 * message above 4 MiB, and 256 large transactions would pass that.
 */
const TX_BATCH_BYTES = 1024 * 1024
/**
 * A batch's transactions decode as views into the gossip message: each is decoded into a
 * transaction at once (the pool keeps that, never these bytes), so a copy per transaction would
 * only be a buffer outside V8's heap to allocate and sweep (half of a loaded node's such buffers).
 */
const txBatchCodec = list(bytesView(MAX_TX_BYTES), TX_BATCH_MAX)
/** A batch decoded once: the gossip check and the delivery that follows get the same bytes. */
const decodeTxBatch = memoByIdentity((data: Uint8Array) => decode(txBatchCodec, data))

/**
 * Blocks per sync response, and the byte budget that ends a response early: a response holds
 * blocks while they fit, and always its first block, so a client accepts up to the budget plus
 * one block of the chain's largest size and its commit.
 */
const SYNC_BATCH = 64
/**
 * A sync answer slower than this ends the peer's turn once its blocks are in: the next peer is
 * asked, and a peer that keeps every answer just inside the timeout (one block each) cannot keep
 * a lagging node behind. Honest answers of a full batch take well under a second here.
 */
export const SYNC_SLOW_ANSWER_MS = 2_000
/**
 * Longest a peer's turn lasts while its answers are short (fewer blocks than a full batch, the byte
 * budget aside), whatever head it claims: a member whose answers each come just within
 * {@link SYNC_SLOW_ANSWER_MS} with a block or two, claiming each time that it has no more, would
 * otherwise keep its turn, and the node behind a growing chain, for ever. An honest peer answers
 * in full until the tip, however long the catch-up takes.
 */
export const SYNC_TURN_MS = 10_000
const SYNC_RESPONSE_BYTES = 8 * 1024 * 1024
const SYNC_COMMIT_ALLOWANCE = 1024 * 1024
/** Block-sync requests from non-members served at once, over all peers (`BUSY` beyond). */
export const SYNC_NON_MEMBERS = 4
/** Exported for tests that play a peer's side of block sync. */
export const syncRequestCodec = struct('SyncRequest', { from: uvarint, max: uvarint })
/** A batch of committed blocks, with the server's own height so the client knows its target. */
export const syncResponseCodec = struct('SyncResponse', {
  head: uvarint,
  blocks: list(struct('SyncedBlock', { block: blockCodec, commit: commitCodec }), SYNC_BATCH),
})

/** The block-sync protocol of a chain. */
export const syncProtocolName = (chainId: string): string => `/loopchain/${chainId}/sync/1`

/** Options of {@link connectNode}. */
export interface NodeNetworkOptions {
  /** The institution's 32-byte node key (the libp2p identity). */
  readonly nodeKey: Uint8Array
  readonly listenHost?: string
  readonly tcpPort?: number
  readonly wsPort?: number | false
  /** UDP port of a WebRTC-direct listener for light clients (0: any free one). Default none. */
  readonly webrtcDirectPort?: number | false
  /** Peers to stay connected to. */
  readonly bootstrap?: string[]
  /** Multiaddrs to announce instead of the listen addresses (a public name, a TLS proxy's `/wss`). */
  readonly announce?: string[]
  /** The circuit relay's limits for light clients (defaults: `DEFAULT_RELAY_LIMITS`), or `false` for no relay. */
  readonly relay?: RelayLimits | false
  /** Caps on non-members' connections (see `NodeHostOptions.connections`). */
  readonly connections?: NodeHostOptions['connections']
  readonly logger?: NodeLogger
}

const peerIds = new Map<string, string>()
/** The libp2p peer id of a node key (hex), remembered. */
function peerIdOfNodeKey(hex: string): string {
  let id = peerIds.get(hex)
  if (id === undefined) {
    if (peerIds.size >= 4096) peerIds.clear()
    id = peerIdFromNodePublicKey(fromHex(hex))
    peerIds.set(hex, id)
  }
  return id
}

// The node replaces its admitted set when governance changes it, so one peer-id set per set object.
const peerIdsOfKeys = memoByIdentity((keys: ReadonlySet<string>): ReadonlySet<string> => new Set([...keys].map(peerIdOfNodeKey)))

/** The peer ids of the member nodes the node's committed state admits (`FullNode.admittedNodeKeys`). */
export function memberPeerIds(node: FullNode): ReadonlySet<string> {
  return peerIdsOfKeys(node.admittedNodeKeys)
}

/** Starts a libp2p host for `node` and attaches it; returns the host. */
export async function connectNode(node: FullNode, opts: NodeNetworkOptions): Promise<NodeHost> {
  const isMember = (peerId: string) => memberPeerIds(node).has(peerId)
  const g = node.options.genesis
  // The set in force at a height is known up to two heights past the tip (a change in block K
  // applies from K + 2); beyond, the consensus machine judges membership itself.
  const gossipContext: ConsensusGossipContext = {
    networkId: g.networkId,
    validatorsAt: (height) => (node.knowsValidatorsAt(height) ? node.validatorsAt(height) : undefined),
    get committedHeight() {
      return node.height
    },
    // Verified once, here, and remembered for the node's consensus machine.
    signaturesValid: (m) => node.consensusSignaturesValid(m),
    blockMatches: (m) => node.consensusBlockMatches(m),
  }
  const resends = new ResendFilter()
  const headersForwarded: HeaderForwarded = { height: 0, hash: new Uint8Array(32) }
  const consensusCheck =
    (topic: ConsensusTopic): GossipValidator =>
    (data, from) => {
      if (resends.repeats(data)) return 'ignore'
      const fault = checkConsensusGossip(data, topic, gossipContext)
      if (fault !== undefined) {
        if (fault.action === 'reject')
          opts.logger?.debug('dropped a consensus message', { topic, peer: from, code: fault.code, reason: fault.message })
        return fault.action
      }
      resends.accept(data)
      return 'accept'
    }
  const host = await createNodeHost({
    chainId: node.options.genesis.chainId,
    nodeKey: opts.nodeKey,
    ...(opts.listenHost ? { listenHost: opts.listenHost } : {}),
    tcpPort: opts.tcpPort ?? 0,
    wsPort: opts.wsPort ?? 0,
    ...(opts.webrtcDirectPort !== undefined ? { webrtcDirectPort: opts.webrtcDirectPort } : {}),
    bootstrap: opts.bootstrap ?? [],
    ...(opts.announce !== undefined ? { announce: opts.announce } : {}),
    ...(opts.relay !== undefined ? { relay: opts.relay } : {}),
    ...(opts.connections !== undefined ? { connections: opts.connections } : {}),
    isMember,
    validators: {
      proposal: consensusCheck('proposal'),
      vote: consensusCheck('vote'),
      tx: (data) => {
        try {
          decodeTxBatch(data)
          return 'accept'
        } catch {
          return 'reject'
        }
      },
      header: (data) => checkHeaderGossip(node, data, headersForwarded),
    },
    ...(opts.logger ? { logger: opts.logger } : {}),
  })
  // Governance added or removed a member's node: its streams and messages are judged by the new
  // set as they arrive, and a node no longer admitted is disconnected from the members' topics now.
  const offAdmission = node.onAdmissionChange(() => {
    try {
      const gone = host.enforceAdmission()
      opts.logger?.info('admission: member nodes changed', { members: node.admittedNodeKeys.size, disconnected: gone })
      followChain()
    } catch (e) {
      opts.logger?.debug('admission: could not re-check the peers (host stopped?)', { error: String(e) })
    }
  })

  // Block sync: serve committed blocks with their certificates, and fetch them when behind.
  const syncProtocol = syncProtocolName(node.options.genesis.chainId)
  await host.handle(
    syncProtocol,
    async (req) => {
      const { from, max } = decode(syncRequestCodec, req)
      const out: { block: Block; commit: Commit }[] = []
      let size = 0
      for (let h = from; h <= node.height && out.length < Math.min(max, SYNC_BATCH); h++) {
        const b = await node.committedBlock(h)
        if (!b) break
        const bytes = encode(blockCodec, b.block).length + encode(commitCodec, b.commit).length
        if (out.length > 0 && size + bytes > SYNC_RESPONSE_BYTES) break
        out.push(b)
        size += bytes
      }
      return encode(syncResponseCodec, { head: node.height, blocks: out })
    },
    // Open to non-members (an auditor's node, a member's node before governance admits it), but
    // each answer reads and encodes up to a few MiB: non-members share SYNC_NON_MEMBERS places at
    // once, and a connection has at most two sync streams open (a member's sync loop asks one range
    // at a time; the second leaves room for a stream still closing).
    { maxRequestBytes: 64, memberOnly: false, maxConcurrentNonMembers: SYNC_NON_MEMBERS, maxInboundStreams: 2 },
  )
  // Light clients: headers, validator-set changes and state proofs, read-only (core wire/light.ts).
  await serveLightClients(host, node)
  let syncing = false
  // Asked while a round runs: that round may have passed the new blocks' peers already, so one more follows it.
  let syncAgain: { peer: string | undefined; poll: boolean } | undefined
  // An idle node's polls take the member peers in turn: one request per poll, not one per peer
  // (with N members, N² requests over the network every poll).
  let pollTurn = 0
  const maxSyncResponse = SYNC_RESPONSE_BYTES + node.options.genesis.params.maxBlockBytes + SYNC_COMMIT_ALLOWANCE
  /** Whether the last round ended with every peer asked and the node still behind, each too slow. */
  let leftBehind = false
  /**
   * Fetches committed blocks from member peers until none has more. Each block is verified
   * (commit certificate against the validator set in force, structure, certificates) before it is
   * stored. A peer whose answer cannot be honest (a block that does not verify, blocks that do not
   * start where asked) is banned and the next peer asked; an answer that moves nothing (a stale
   * or gapped block) ends that peer's turn, so no peer can keep the loop spinning.
   */
  const sync = async (preferred: string | undefined, poll = false): Promise<void> => {
    if (syncing) {
      // A queued round with a cause (a message from ahead, a header) is not downgraded to a poll.
      if (!poll || syncAgain === undefined) syncAgain = { peer: preferred, poll }
      return
    }
    syncing = true
    let asked = false
    try {
      let peers = [...new Set([...(preferred ? [preferred] : []), ...host.connections().map((c) => c.peerId)])].filter(isMember)
      if (poll && preferred === undefined && peers.length > 1) {
        peers.sort()
        peers = [peers[pollTurn++ % peers.length] as string]
      }
      const started = Date.now()
      const startHeight = node.height
      const tried = new Set(peers)
      if (peers.length > 0) asked = true
      leftBehind = false
      for (let i = 0; i < peers.length; i++) {
        const peer = peers[i] as string
        const turn = Date.now()
        // Whether this turn ended early (slow, or long and short of full answers), and whether the
        // node was then still behind the head the peer claims.
        let endedEarly = false
        let endedBehind = false
        for (;;) {
          if (node.failure !== undefined) return
          const from = node.height + 1
          let got: { head: number; blocks: { block: Block; commit: Commit }[] }
          let answerBytes: number
          const asked = Date.now()
          try {
            const raw = await host.request(peer, syncProtocol, encode(syncRequestCodec, { from, max: SYNC_BATCH }), {
              timeoutMs: 10_000,
              maxResponseBytes: maxSyncResponse,
            })
            answerBytes = raw.length
            got = decode(syncResponseCodec, raw)
          } catch (e) {
            opts.logger?.warn('sync: request failed', { peer, error: String(e) })
            break
          }
          const first = got.blocks[0]
          if (first === undefined) break
          if (first.block.header.height !== from) {
            opts.logger?.warn('sync: a peer answered with blocks that do not start where asked', {
              peer,
              asked: from,
              got: first.block.header.height,
            })
            host.ban(peer, `sync answer starts at ${first.block.header.height}, not ${from}`)
            break
          }
          try {
            for (const { block, commit } of got.blocks) await node.importBlock(block, commit)
          } catch (e) {
            // A node that halted writing the block has said so itself; the peer is not at fault.
            if (node.failure !== undefined) return
            opts.logger?.warn('sync: a peer sent a block that does not verify', { peer, error: String(e) })
            // A result this node computed differently is this node's problem; a bad certificate is the peer's.
            if (e instanceof LoopchainError && e.penalize && !(e instanceof NodeError))
              host.ban(peer, `sync block does not verify: ${e.code}`)
            break
          }
          if (node.height < from) break // nothing imported (the node is stopping): no point asking again
          node.syncTarget = Math.max(node.syncTarget, got.head)
          const seconds = Math.max(0.001, (Date.now() - started) / 1000)
          node.syncRate = Math.round((node.height - startHeight) / seconds)
          opts.logger?.info('sync: progress', {
            height: node.height,
            target: Math.max(got.head, node.height),
            blocksPerSecond: node.syncRate,
            peer,
          })
          // Whatever head it claims: a peer that says it has nothing more would otherwise be asked
          // again and again, slowly, and never give its turn to the others.
          if (Date.now() - asked > SYNC_SLOW_ANSWER_MS) {
            opts.logger?.info('sync: a slow answer; asking the next peer', { peer, ms: Date.now() - asked })
            endedEarly = true
            endedBehind = node.height < got.head
            break
          }
          // Past SYNC_TURN_MS, an answer short of a full batch that the byte budget did not end ends
          // the turn, whatever head the peer claims: one that said each block it sent was its last,
          // and sent one a request just inside the slow limit, kept the node behind a faster chain
          // for ever. An honest peer answers in full until the tip, and at the tip the next peer
          // asked has nothing more either.
          const partial = got.blocks.length < SYNC_BATCH && answerBytes < SYNC_RESPONSE_BYTES / 2
          if (partial && Date.now() - turn > SYNC_TURN_MS) {
            opts.logger?.info('sync: a turn that has not caught up; asking the next peer', {
              peer,
              ms: Date.now() - turn,
              height: node.height,
              head: got.head,
            })
            endedEarly = true
            endedBehind = node.height < got.head
            break
          }
        }
        // The last peer of the round let the node down (a poll asks one): every other member
        // connected now gets a turn, not the same peer again at the next poll; whatever head the
        // peer claimed, which may be a lie that it has nothing more.
        if (endedEarly && i === peers.length - 1) {
          for (const c of host.connections())
            if (isMember(c.peerId) && !tried.has(c.peerId)) {
              tried.add(c.peerId)
              peers.push(c.peerId)
            }
          // No one else to ask, the node behind the head claimed: it stays syncing until the next poll.
          if (i === peers.length - 1 && endedBehind) leftBehind = true
        }
      }
    } finally {
      syncing = false
      const again = syncAgain
      syncAgain = undefined
      if (again !== undefined && node.failure === undefined) void sync(again.peer, again.poll)
      // Every peer was asked until it had nothing more: a head some peer claimed and nobody served
      // (a peer that lied, or blocks no one holds) must not leave the node reading as syncing. A
      // round whose peers each left the node behind, slowly, is not that: it reads as syncing still.
      else if (!leftBehind) node.syncTarget = node.height
      if (node.syncTarget <= node.height) node.syncRate = 0
      if (asked) node.syncChecked = true
    }
  }

  /** Gossip is best effort: a publish that fails (the host stopping, no route yet) is logged, never thrown. */
  const publish = (kind: Parameters<NodeHost['publish']>[0], data: Uint8Array) => {
    host.publish(kind, data).catch((e: unknown) => opts.logger?.debug('gossip: publish failed', { topic: kind, error: String(e) }))
  }
  const consensusOut = new ConsensusPublisher(publish)
  /** Per peer: gossiped transactions that cannot be valid, counted over a minute. */
  const txFaults = new Map<string, { since: number; count: number }>()
  let batch: Uint8Array[] = []
  let batchBytes = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    if (batch.length === 0) return
    const out = encode(txBatchCodec, batch)
    batch = []
    batchBytes = 0
    publish('tx', out)
  }
  const network: NodeNetwork = {
    publishConsensus: (data) => consensusOut.send(data),
    publishHeader: (data) => {
      // Its own header is the one of its block this node passes on.
      if (node.height > headersForwarded.height) {
        headersForwarded.height = node.height
        headersForwarded.hash = blockHash(node.head)
      }
      publish('header', data)
    },
    requestSync: (peer, _height, poll) => void sync(peer, poll),
    memberConnections: () => new Set(host.connections().flatMap((c) => (isMember(c.peerId) ? [c.peerId] : []))).size,
    connectedToNode: (hex) => {
      const id = peerIdOfNodeKey(hex)
      return id === host.peerId || host.connections().some((c) => c.peerId === id)
    },
    reportPeer: (peer, code) => {
      // A few can be a peer's bug; a stream of them is an attack: banned at the tenth in a minute.
      const now = Date.now()
      const f = txFaults.get(peer)
      const fault = f && now - f.since < 60_000 ? { since: f.since, count: f.count + 1 } : { since: now, count: 1 }
      txFaults.set(peer, fault)
      if (fault.count === 1) opts.logger?.warn('a peer gossiped a transaction that cannot be valid', { peer, code })
      if (fault.count >= 10) {
        txFaults.delete(peer)
        host.ban(peer, `gossiped ${fault.count} transactions that cannot be valid (${code})`)
      }
    },
    publishTransaction: (data) => {
      if (batchBytes + data.length > TX_BATCH_BYTES) flush()
      batch.push(data)
      batchBytes += data.length
      if (batch.length >= TX_BATCH_MAX) flush()
      else if (timer === undefined) timer = setTimeout(flush, TX_BATCH_DELAY_MS)
    },
  }
  node.attachNetwork(network)
  /**
   * The members' topics are for the nodes the state admits, and a peer that subscribes to them
   * unadmitted is hung up on. So this node subscribes to them while its own state admits it; until
   * then (a new member's node syncing up to the block that admits it, the node of an institution
   * without the member-node right) it follows the chain by block sync, prompted by the headers
   * every node announces, and subscribes once the state admits it (or leaves when it no longer does).
   */
  let memberTopics: (() => void)[] = []
  let headers: (() => void) | undefined
  const followChain = () => {
    const admitted = isMember(host.peerId)
    if (admitted && memberTopics.length === 0) {
      // Admitted by a block it synced (a new member's node catching up): say so, after the warning below.
      if (headers !== undefined)
        opts.logger?.info('admission: the state admits this node now; it joins the members’ topics', {
          peerId: host.peerId,
          height: node.height,
        })
      headers?.()
      headers = undefined
      memberTopics = [
        host.subscribe('proposal', (data, from) => node.receiveConsensus(consensusMessageBytes(data), from)),
        host.subscribe('vote', (data, from) => node.receiveConsensus(consensusMessageBytes(data), from)),
        host.subscribe('tx', (data, from) => node.submitFromPeer(decodeTxBatch(data), from)),
      ]
    } else if (!admitted && headers === undefined) {
      for (const off of memberTopics) off()
      memberTopics = []
      if (node.options.validatorSecret !== undefined)
        // Most likely a config whose nodeKey is not the one governance recorded for this institution.
        opts.logger?.warn(
          'admission: this validator’s node key is not admitted by the state at this node’s height, so the other nodes refuse its votes; check the config’s nodeKey against the member record (Governance.getMember). A node behind the chain may be admitted in a later block: it says so once it has synced that far',
          { peerId: host.peerId, height: node.height },
        )
      else
        opts.logger?.info('admission: this node is not an admitted member node in its state; it follows the chain by block sync', {
          peerId: host.peerId,
        })
      // Checked by the topic's validator (a header this node can verify, so at most one a block):
      // one past the tip asks for blocks.
      headers = host.subscribe('header', (data, from) => {
        if (decode(signedHeaderCodec, data).header.height > node.height) void sync(from)
      })
    }
  }
  followChain()
  // Until a sync round has asked a peer, this node does not know the chain's height.
  if ((opts.bootstrap?.length ?? 0) > 0) node.syncChecked = false
  // Catch up once the bootstrap peers are connected, before this node's votes matter.
  const firstSync = setTimeout(() => void sync(undefined), 1500)
  firstSync.unref?.()
  host.onStop(() => {
    // Nothing more goes through this host: no gossip, no sync, no timers.
    node.detachNetwork(network)
    offAdmission()
    clearTimeout(firstSync)
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    batch = []
    batchBytes = 0
  })
  return host
}
