import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fromHex, isAcceptableKeyEncoding, isAcceptablePublicKey, toHex } from '../../src/index.js'

/** Whether the 32 bytes decode to a curve point at all (non-canonical encodings allowed). */
function decodes(key: Uint8Array): boolean {
  try {
    ed25519.Point.fromBytes(key, true)
    return true
  } catch {
    return false
  }
}

/** y + k (little-endian, 255 bits) with the sign bit of `key` kept: non-canonical twins of small y. */
function plus(key: Uint8Array, k: bigint): Uint8Array {
  let y = 0n
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? (key[i] as number) & 0x7f : (key[i] as number))
  y += k
  const out = new Uint8Array(32)
  for (let i = 0; i < 32; i++) out[i] = Number((y >> BigInt(8 * i)) & 0xffn)
  out[31] = (out[31] as number) | ((key[31] as number) & 0x80)
  return out
}

const P = 2n ** 255n - 19n

describe('the public-key byte rule', () => {
  it('is the acceptance rule for every key that decodes, on hostile encodings', () => {
    const cases: Uint8Array[] = []
    for (const hex of ED25519_TORSION_SUBGROUP) {
      const k = fromHex(hex)
      cases.push(k, plus(k, P)) // the small-order point, and its non-canonical twin where y + p < 2^255
      const flipped = k.slice()
      flipped[31] = (flipped[31] as number) ^ 0x80
      cases.push(flipped)
    }
    for (let k = 0n; k < 19n; k++) cases.push(plus(new Uint8Array(32), P + k), plus(fromHex(`${'00'.repeat(31)}80`), P + k))
    for (const k of [0n, 1n, 2n, 3n, 18n, 19n, 20n]) cases.push(plus(new Uint8Array(32), P - 1n - k))
    cases.push(ed25519.Point.BASE.toBytes(), fromHex('ff'.repeat(32)), fromHex(`${'ff'.repeat(31)}7f`))
    for (const key of cases) {
      const expected = isAcceptablePublicKey(key)
      expect({ key: toHex(key), ok: isAcceptableKeyEncoding(key) && decodes(key) }).toEqual({ key: toHex(key), ok: expected })
    }
    // Every small-order encoding (canonical or not, either sign) is refused by the bytes alone.
    for (const key of cases)
      if (decodes(key) && ed25519.Point.fromBytes(key, true).isSmallOrder()) expect(isAcceptableKeyEncoding(key)).toBe(false)
  })

  it('is the acceptance rule on random bytes and on real keys, some with torsion added', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.nat(7), (bytes, t) => {
        expect(isAcceptableKeyEncoding(bytes) && decodes(bytes)).toBe(isAcceptablePublicKey(bytes))
        const real = ed25519.getPublicKey(bytes)
        const mixed = ed25519.Point.fromBytes(real)
          .add(ed25519.Point.fromHex(ED25519_TORSION_SUBGROUP[t] as string))
          .toBytes()
        expect(isAcceptableKeyEncoding(real)).toBe(true)
        expect(isAcceptableKeyEncoding(mixed)).toBe(isAcceptablePublicKey(mixed))
      }),
      { numRuns: 300 },
    )
  })

  it('refuses what is not 32 bytes', () => {
    expect(isAcceptableKeyEncoding(new Uint8Array(31))).toBe(false)
    expect(isAcceptableKeyEncoding(new Uint8Array(33))).toBe(false)
    expect(isAcceptableKeyEncoding([1, 2] as unknown as Uint8Array)).toBe(false)
  })
})
