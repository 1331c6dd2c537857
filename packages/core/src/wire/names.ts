/**
 * Names on the wire: gossip topics and request-response protocol ids, namespaced by chain id.
 */
import { P2PError } from './errors.js'

/** The gossip topics of a chain. */
export type TopicKind = 'tx' | 'proposal' | 'vote' | 'header'

/** Every topic kind, in a fixed order (score parameters are built for each). */
export const TOPIC_KINDS: readonly TopicKind[] = ['tx', 'proposal', 'vote', 'header']

// Chain ids and protocol names become path segments of libp2p protocol ids and topic strings, so
// a '/' or a space would make two different names collide or break multistream negotiation.
const SEGMENT = /^[A-Za-z0-9._-]{1,64}$/

function checkSegment(what: string, value: string): string {
  if (!SEGMENT.test(value)) {
    throw new P2PError('INVALID_NAME', `${what} must match ${SEGMENT.source}, got ${JSON.stringify(value)}`, {
      penalize: false,
      details: { [what]: value },
    })
  }
  return value
}

/**
 * The gossipsub topic of one message kind on one chain: `/loopchain/<chainId>/<kind>/1`.
 * Namespacing by chain id keeps two chains on shared peers from mixing their messages.
 */
export function topicName(chainId: string, kind: TopicKind): string {
  if (!TOPIC_KINDS.includes(kind)) throw new P2PError('INVALID_NAME', `unknown topic kind ${JSON.stringify(kind)}`, { penalize: false })
  return `/loopchain/${checkSegment('chainId', chainId)}/${kind}/1`
}

/** The libp2p protocol id of a request-response protocol on one chain: `/loopchain/<chainId>/<name>/1`. */
export function protocolName(chainId: string, name: string): string {
  return `/loopchain/${checkSegment('chainId', chainId)}/${checkSegment('name', name)}/1`
}
