/**
 * The libp2p networking layer of the full node. Import this entry (or `@loopchain/node`) rather
 * than the files beside it: it installs the Node 20 shims before any libp2p module loads.
 *
 * @example
 * ```ts
 * import { createNodeHost, protocolName } from '@loopchain/node'
 * const host = await createNodeHost({ chainId: 'devnet', nodeKey, isMember: (id) => members.has(id) })
 * await host.handle(protocolName('devnet', 'status'), async () => new Uint8Array([1]))
 * ```
 */
import './polyfills.js'

export {
  type ConsensusGossipCode,
  type ConsensusGossipContext,
  type ConsensusGossipFault,
  type ConsensusTopic,
  checkConsensusGossip,
} from './consensus-gossip.js'
export { P2PError, type P2PErrorCode, RequestError, type RequestErrorCode } from './errors.js'
export { encodeFrame, FRAME_HEADER_BYTES, FrameKind } from './frames.js'
export {
  type ConnectionInfo,
  createNodeHost,
  DEFAULT_RELAY_LIMITS,
  type GossipHandler,
  type GossipValidator,
  type GossipVerdict,
  IDONTWANT_MIN_BYTES,
  type NodeHost,
  type NodeHostOptions,
  REQUEST_FAULTS_TO_BAN,
  type RelayLimits,
} from './host.js'
export { type NodeLogger, silentLogger } from './logger.js'
export { protocolName, TOPIC_KINDS, type TopicKind, topicName } from './names.js'
export { nodePrivateKey, peerIdFromNodeKey, peerIdFromNodePublicKey } from './peer-key.js'
export { installNodePolyfills } from './polyfills.js'
export type { RedialOptions } from './reconnect.js'
export type { HandleOptions, RequestHandler, RequestOptions } from './request-response.js'
export { peerScoreParams, SCORE_THRESHOLDS, topicScoreParams } from './scoring.js'
