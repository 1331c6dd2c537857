/**
 * The WebCrypto Ed25519 signer (Node's WebCrypto here; the browser's in the channel e2e test and
 * bench): the same signatures and the same verdicts as the core's noble rule, and a key cache that
 * a reused or rewritten key array cannot fool.
 */
import { keyPairFromSecret, nobleCrypto } from '@loopchain/core'
import { describe, expect, it } from 'vitest'
import { hasWebCryptoEd25519, webCryptoSigner } from '../src/webcrypto-ed25519.js'

const A = keyPairFromSecret(new Uint8Array(32).fill(1))
const B = keyPairFromSecret(new Uint8Array(32).fill(2))
const msg = Uint8Array.of(1, 2, 3, 4)

describe('webCryptoSigner', () => {
  it('signs as noble does and verifies with the same verdicts', async () => {
    expect(await hasWebCryptoEd25519()).toBe(true)
    const s = await webCryptoSigner(A.secretKey)
    const sig = await s.sign(msg)
    expect(sig).toEqual(nobleCrypto.sign(msg, A.secretKey))
    expect(await s.verify(sig, msg, A.publicKey)).toBe(true)
    expect(await s.verify(sig, Uint8Array.of(1, 2, 3, 5), A.publicKey)).toBe(false)
    expect(await s.verify(sig, msg, B.publicKey)).toBe(false)
    expect(await s.verify(sig.subarray(0, 63), msg, A.publicKey)).toBe(false)
    // A small-order public key is refused before WebCrypto sees it, as the core's rule does.
    const smallOrder = new Uint8Array(32)
    smallOrder[0] = 1
    expect(await s.verify(new Uint8Array(64), msg, smallOrder)).toBe(nobleCrypto.verify(new Uint8Array(64), msg, smallOrder))
  })

  it('a key array rewritten in place between calls is read again, not served from the cache', async () => {
    const s = await webCryptoSigner(A.secretKey)
    const sigB = nobleCrypto.sign(msg, B.secretKey)
    const key = A.publicKey.slice()
    expect(await s.verify(sigB, msg, key)).toBe(false)
    key.set(B.publicKey)
    expect(await s.verify(sigB, msg, key)).toBe(true)
    key.set(A.publicKey)
    expect(await s.verify(sigB, msg, key)).toBe(false)
  })
})
