/**
 * The read-only protocols a full node serves to light clients (core `wire/light.ts`: tip, headers
 * by range, validator-set changes, state proofs), open to non-members, and the check of headers
 * gossiped on the `header` topic.
 */
import {
  blockHash,
  bytesEqual,
  createLightHandlers,
  decode,
  fromHex,
  LIGHT_MAX_REQUEST_BYTES,
  LIGHT_PROTOCOLS,
  type LightBackend,
  lightProtocolId,
  type SignedHeader,
  signedHeaderCodec,
} from '@loopchain/core'
import type { GossipVerdict, NodeHost } from '../p2p/host.js'
import { genesisResult } from './certificates.js'
import type { FullNode } from './full-node.js'
import type { Watchtower } from './watchtower.js'

/** What the light-client protocols read from a full node: its stored headers, commits, results and state. */
export function fullNodeLightBackend(node: FullNode): LightBackend {
  return {
    get height() {
      return node.height
    },
    async signedHeader(height): Promise<SignedHeader | undefined> {
      const [header, commit] = await Promise.all([node.chain.headerAt(height), node.chain.commitAt(height)])
      return header && commit ? { header, commit } : undefined
    },
    // The first entry is the genesis set, which clients pin themselves.
    setChanges: () => node.validatorSetChanges.slice(1),
    // Height 0 is the genesis state (header 1 carries its result): computed, not stored.
    resultAt: (height) => (height === 0 ? genesisResult(node.options.genesis) : node.chain.resultAt(height)),
    prove: (key, stateRoot) => node.state.prove(key, stateRoot),
    submit: async (tx) => fromHex(await node.submit(tx)),
    ...(node.watchtower ? { watch: (request: Uint8Array) => (node.watchtower as Watchtower).watch(request) } : {}),
  }
}

/**
 * Light-client requests from non-members served at once per protocol, over all peers (`BUSY`
 * beyond): each is a few store reads (a headers answer up to 1 MiB), done in milliseconds, so this
 * is room for many browsers at once; peer ids cost nothing to make, so without it the work of
 * one peer with many ids would have no bound.
 */
export const LIGHT_NON_MEMBERS = 64

/** Serves the light-client protocols of `node` on `host` (non-members allowed; request sizes and concurrency bounded per protocol). */
export async function serveLightClients(host: Pick<NodeHost, 'handle'>, node: FullNode): Promise<void> {
  const handlers = createLightHandlers(fullNodeLightBackend(node))
  const chainId = node.options.genesis.chainId
  for (const p of LIGHT_PROTOCOLS) {
    await host.handle(lightProtocolId(chainId, p), handlers[p], {
      maxRequestBytes: LIGHT_MAX_REQUEST_BYTES[p],
      memberOnly: false,
      maxConcurrentNonMembers: LIGHT_NON_MEMBERS,
    })
  }
}

/**
 * The `header` topic's gossip check: a signed header finalised by the set in force at its height.
 * Headers more than two heights ahead of this node cannot be judged yet and are ignored, not
 * rejected; so are headers below this node's last one, unchecked: they are news to no one (a light
 * client asks for old headers by request), and verifying each would let anyone replay the chain's
 * history to make every node check commits and forward them. Malformed or forged headers are
 * rejected, which penalises the forwarding peer.
 */
export function checkHeaderGossip(node: FullNode, data: Uint8Array, forwarded?: HeaderForwarded): GossipVerdict {
  let sh: SignedHeader
  try {
    sh = decode(signedHeaderCodec, data)
  } catch {
    return 'reject'
  }
  const h = sh.header.height
  if (h < 1) return 'reject'
  if (h < node.height || !node.knowsValidatorsAt(h)) return 'ignore'
  // One header a block is passed on: the commits of any quorum of the same precommits are all
  // valid and all different bytes, and the topic is open to anyone. A header of another block at
  // the same height is checked and, valid, passed on: it is evidence of a fork, which light
  // clients look for (reportConflict), and each needs a quorum's signatures of its own.
  const hash = forwarded === undefined ? undefined : blockHash(sh.header)
  if (forwarded !== undefined && (h < forwarded.height || (h === forwarded.height && bytesEqual(hash as Uint8Array, forwarded.hash))))
    return 'ignore'
  try {
    node.verifySignedHeader(sh)
  } catch {
    return 'reject'
  }
  if (forwarded !== undefined && h > forwarded.height) {
    forwarded.height = h
    forwarded.hash = hash as Uint8Array
  }
  return 'accept'
}

/** The highest height whose header a node has passed on (published, or forwarded as valid), and that header's block. */
export interface HeaderForwarded {
  height: number
  hash: Uint8Array
}
