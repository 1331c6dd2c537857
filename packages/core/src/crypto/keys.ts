/**
 * Key pairs. The core never makes randomness: a caller passes 32 random bytes (from
 * `crypto.getRandomValues` in an app) and gets a key pair derived from them.
 */
import { type Address, accountAddress } from './address.js'
import { type CryptoProvider, nobleCrypto } from './provider.js'

/** An ed25519 key pair and its account address. */
export interface KeyPair {
  /** The 32-byte secret seed. Keep it secret. */
  readonly secretKey: Uint8Array
  /** The 32-byte public key. */
  readonly publicKey: Uint8Array
  /** The account address of the public key. */
  readonly address: Address
}

/** The key pair of a 32-byte secret seed. */
export function keyPairFromSecret(secretKey: Uint8Array, crypto: CryptoProvider = nobleCrypto): KeyPair {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) {
    throw new RangeError('an ed25519 secret key is 32 bytes')
  }
  const publicKey = crypto.publicKey(secretKey)
  return { secretKey: secretKey.slice(), publicKey, address: accountAddress(publicKey) }
}
