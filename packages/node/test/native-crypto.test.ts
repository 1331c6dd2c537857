import { fromHex, nobleCrypto } from '@loopchain/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import stored from '../../core/test/vectors/core.json' with { type: 'json' }
import { type CoreVectors, checkCoreVectors } from '../../core/test/vectors/core-vectors.js'
import { nativeCrypto } from '../src/index.js'

describe('native crypto provider', () => {
  it('reproduces every golden vector, including the hostile verification cases', () => {
    expect(checkCoreVectors(stored as CoreVectors, nativeCrypto)).toEqual([])
  })

  it('agrees with the noble provider on every verification vector', () => {
    for (const c of (stored as CoreVectors).verify) {
      const args = [fromHex(c.signature), fromHex(c.message), fromHex(c.publicKey)] as const
      expect({ name: c.name, native: nativeCrypto.verify(...args) }).toEqual({ name: c.name, native: nobleCrypto.verify(...args) })
    }
  })

  it('signs identically and agrees on random keys, messages and corrupted signatures', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 200 }), fc.nat(511), (sk, msg, bit) => {
        const pub = nativeCrypto.publicKey(sk)
        expect(pub).toEqual(nobleCrypto.publicKey(sk))
        const sig = nativeCrypto.sign(msg, sk)
        expect(sig).toEqual(nobleCrypto.sign(msg, sk))
        expect(nativeCrypto.verify(sig, msg, pub)).toBe(true)
        const bad = sig.slice()
        bad[bit >> 3] = (bad[bit >> 3] as number) ^ (1 << (bit & 7))
        expect(nativeCrypto.verify(bad, msg, pub)).toBe(nobleCrypto.verify(bad, msg, pub))
        expect(nativeCrypto.sha256(msg)).toEqual(nobleCrypto.sha256(msg))
      }),
      { numRuns: 200 },
    )
  })

  it('refuses malformed inputs without throwing', () => {
    expect(nativeCrypto.verify(new Uint8Array(10), new Uint8Array(1), new Uint8Array(32))).toBe(false)
    expect(nativeCrypto.verify(new Uint8Array(64), new Uint8Array(1), new Uint8Array(31))).toBe(false)
    expect(() => nativeCrypto.sign(new Uint8Array(1), new Uint8Array(31))).toThrow(RangeError)
  })
})
