import type { PeerScoreParams, PeerScoreThresholds, TopicScoreParams } from '@libp2p/gossipsub/score'

/**
 * Gossipsub peer-score thresholds. A peer below `graylistThreshold` has all its gossip ignored by
 * gossipsub; the host also disconnects it and refuses it for a while (see `banMs`).
 */
export const SCORE_THRESHOLDS: PeerScoreThresholds = {
  // Below this we neither gossip IHAVE to the peer nor accept its IHAVE.
  gossipThreshold: -10,
  // Below this we do not flood-publish our own messages to the peer.
  publishThreshold: -50,
  // Below this every RPC from the peer is dropped unread (and the host hangs up on it).
  graylistThreshold: -80,
  // Peer exchange is off; keep PX acceptance out of reach.
  acceptPXThreshold: 100,
  opportunisticGraftThreshold: 5,
}

/**
 * Per-topic score parameters. Invalid messages (validator said reject) cost
 * `invalidMessageDeliveries² × 20`: one invalid message puts a peer at -20 (under the gossip
 * threshold), two at -80, three at -180 (graylisted). The counter decays by 1% a second, so a
 * peer that misbehaved stays penalised for minutes, not forever.
 *
 * The mesh-delivery-rate penalties (P3, P3b) are off: a permissioned chain's topics are quiet
 * between blocks, and those penalties would punish honest validators for silence.
 */
export function topicScoreParams(): TopicScoreParams {
  return {
    topicWeight: 1,
    // A small reward for staying in the mesh (at most +1 after 100 s).
    timeInMeshWeight: 0.01,
    timeInMeshQuantum: 1000,
    timeInMeshCap: 100,
    // A small reward for being first with valid messages (at most +5).
    firstMessageDeliveriesWeight: 0.5,
    firstMessageDeliveriesDecay: 0.9,
    firstMessageDeliveriesCap: 10,
    meshMessageDeliveriesWeight: 0,
    meshMessageDeliveriesDecay: 0.5,
    meshMessageDeliveriesCap: 100,
    meshMessageDeliveriesThreshold: 1,
    meshMessageDeliveriesWindow: 10,
    meshMessageDeliveriesActivation: 5000,
    meshFailurePenaltyWeight: 0,
    meshFailurePenaltyDecay: 0.5,
    invalidMessageDeliveriesWeight: -20,
    invalidMessageDeliveriesDecay: 0.99,
  }
}

/** Peer-score parameters covering the given topics (a topic without parameters is not scored at all). */
export function peerScoreParams(topics: readonly string[]): Partial<PeerScoreParams> {
  return {
    topics: Object.fromEntries(topics.map((t) => [t, topicScoreParams()])),
    // Positive topic scores are capped so good behaviour cannot bank credit against later abuse.
    topicScoreCap: 10,
    appSpecificScore: () => 0,
    appSpecificWeight: 1,
    // Sybil defence for validators is membership, not IP diversity, and devnets run many nodes on
    // one address: no IP-colocation penalty.
    IPColocationFactorWeight: 0,
    decayInterval: 1000,
    decayToZero: 0.01,
    // Remember a disconnected peer's score for an hour, so reconnecting does not launder it.
    retainScore: 3_600_000,
  }
}
