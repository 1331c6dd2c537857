import { generateKeyPairFromSeed, publicKeyFromRaw } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id'
import { P2PError } from './errors.js'

// An institution's node key is a 32-byte ed25519 secret (seed), as in @loopchain/core's keys.
const NODE_KEY_BYTES = 32

/**
 * The libp2p private key of a node, derived from the institution's 32-byte ed25519 node key, so
 * the node's peer id is a function of the key governance already knows.
 *
 * Not `privateKeyFromRaw`: that function reads 64-byte ed25519 keys (seed ‖ public key) and takes a
 * 32-byte input for a secp256k1 key, which would silently give the node a different identity.
 */
export async function nodePrivateKey(nodeKey: Uint8Array): Promise<Ed25519PrivateKey> {
  if (!(nodeKey instanceof Uint8Array) || nodeKey.byteLength !== NODE_KEY_BYTES) {
    throw new P2PError('INVALID_KEY', `the node key must be ${NODE_KEY_BYTES} bytes of ed25519 secret`, {
      penalize: false,
      details: { length: nodeKey?.byteLength },
    })
  }
  return generateKeyPairFromSeed('Ed25519', nodeKey)
}

/** The peer id (base58 string) a node with this 32-byte ed25519 node key has on the network. */
export async function peerIdFromNodeKey(nodeKey: Uint8Array): Promise<string> {
  return peerIdFromPrivateKey(await nodePrivateKey(nodeKey)).toString()
}

/**
 * The same peer id from the node key's 32-byte public half (what a genesis or governance records
 * as a member's `nodeKey`): another institution writes its bootstrap list without the secret.
 */
export function peerIdFromNodePublicKey(publicKey: Uint8Array): string {
  if (!(publicKey instanceof Uint8Array) || publicKey.byteLength !== 32) {
    throw new P2PError('INVALID_KEY', 'a node public key is 32 bytes of ed25519 public key', {
      penalize: false,
      details: { length: publicKey?.byteLength },
    })
  }
  return peerIdFromPublicKey(publicKeyFromRaw(publicKey)).toString()
}
