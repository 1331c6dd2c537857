import { ed25519 } from '@noble/curves/ed25519.js'
import { describe, expect, it } from 'vitest'
import { fromHex, nobleCrypto } from '../../src/index.js'
import stored from '../vectors/core.json' with { type: 'json' }
import { type CoreVectors, checkCoreVectors } from '../vectors/core-vectors.js'

describe('golden vectors (Node)', () => {
  it('every stored encoding, hash and signature is reproduced, and every encoding round-trips', () => {
    expect(checkCoreVectors(stored as CoreVectors, nobleCrypto)).toEqual([])
  })

  it('the checker notices a single changed byte', () => {
    const tampered = structuredClone(stored) as CoreVectors
    const hex = tampered.block1.hex
    tampered.block1.hex = `${hex.slice(0, 20)}${hex[20] === '0' ? '1' : '0'}${hex.slice(21)}`
    expect(checkCoreVectors(tampered, nobleCrypto).some((f) => f.startsWith('block1'))).toBe(true)
  })

  it('the verification rule differs from a cofactored verifier exactly where the vectors say', () => {
    // These cases are why the core states its own rule: noble's cofactored verify accepts them.
    const mixed = (stored as CoreVectors).verify.filter((c) => c.name.startsWith('mixed-order') && !c.valid)
    expect(mixed.length).toBeGreaterThan(0)
    for (const c of mixed) {
      expect(ed25519.verify(fromHex(c.signature), fromHex(c.message), fromHex(c.publicKey), { zip215: false })).toBe(true)
      expect(nobleCrypto.verify(fromHex(c.signature), fromHex(c.message), fromHex(c.publicKey))).toBe(false)
    }
  })
})
