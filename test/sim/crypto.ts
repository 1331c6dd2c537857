/**
 * Crypto providers for the simulator. `fakeCrypto` is a cheap stand-in for the bulk of the seeded
 * runs: a "signature" is the signed 32-byte digest followed by the signer's public key, so it
 * binds message and signer (a bit-flip makes it fail) but is trivially forgeable — the simulator's
 * Byzantine nodes never forge. Runs with real ed25519 use `nativeCrypto` (OpenSSL) or the core's
 * pure-JS `nobleCrypto`.
 */
import { type CryptoProvider, nobleCrypto, sha256 } from '@loopchain/core'
import { nativeCrypto } from '@loopchain/node'

/** Cheap, forgeable signatures for fast simulation (never outside tests). */
export const fakeCrypto: CryptoProvider = {
  name: 'fake',
  sha256,
  publicKey(secretKey) {
    const pk = new Uint8Array(32)
    for (let i = 0; i < 32; i++) pk[i] = (secretKey[31 - i] as number) ^ 0x5a
    return pk
  },
  sign(message, secretKey) {
    const sig = new Uint8Array(64)
    sig.set(message.subarray(0, 32), 0)
    sig.set(fakeCrypto.publicKey(secretKey), 32)
    return sig
  },
  verify(signature, message, publicKey) {
    if (signature.length !== 64 || message.length !== 32 || publicKey.length !== 32) return false
    for (let i = 0; i < 32; i++) if (signature[i] !== message[i] || signature[32 + i] !== publicKey[i]) return false
    return true
  },
}

/** Which signatures a simulation uses. */
export type SimCrypto = 'fake' | 'native' | 'noble'

/** The provider of a {@link SimCrypto} choice. */
export function simCrypto(kind: SimCrypto): CryptoProvider {
  return kind === 'fake' ? fakeCrypto : kind === 'native' ? nativeCrypto : nobleCrypto
}
