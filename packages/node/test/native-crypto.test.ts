import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { fastSha256, fromHex, jsSha256, jsSha256Binary, nobleCrypto, toHex, useSha256Backend } from '@loopchain/core'
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import stored from '../../core/test/vectors/core.json' with { type: 'json' }
import { type CoreVectors, checkCoreVectors } from '../../core/test/vectors/core-vectors.js'
import {
  installNativeSha256,
  nativeCrypto,
  nativeSha256Binary,
  opensslCrypto,
  type SodiumVerify,
  sodiumVerifier,
  verifiesWithSodium,
} from '../src/index.js'
import { oneOffKey, refusalNeedsOpenSSL, SMALL_ORDER_Y, type SodiumSign, secretKeysCached } from '../src/native-crypto.js'

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

  it('verifies through its scratch memory at every message length, for interleaved keys, leaving the inputs as they were', () => {
    const keys = [1, 2, 3].map((i) => new Uint8Array(32).fill(i))
    const pubs = keys.map((k) => nativeCrypto.publicKey(k))
    // Around the scratch's 1,024 message bytes, and views at an offset inside larger buffers.
    for (const n of [0, 1, 32, 1023, 1024, 1025, 5000]) {
      const msg = Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 255)
      const sigs = keys.map((k) => nativeCrypto.sign(msg, k))
      const before = [msg.slice(), ...sigs.map((x) => x.slice()), ...pubs.map((x) => x.slice())]
      for (let round = 0; round < 2; round++) {
        for (const [i, pub] of pubs.entries()) {
          expect(nativeCrypto.verify(sigs[i] as Uint8Array, msg, pub)).toBe(true)
          // Another key's signature, right after: nothing of the previous call is left to match.
          expect(nativeCrypto.verify(sigs[(i + 1) % 3] as Uint8Array, msg, pub)).toBe(false)
        }
      }
      const framed = new Uint8Array(n + 70)
      framed.set(msg, 3)
      framed.set(sigs[0] as Uint8Array, n + 5)
      expect(nativeCrypto.verify(framed.subarray(n + 5, n + 69), framed.subarray(3, 3 + n), Buffer.from(pubs[0] as Uint8Array))).toBe(true)
      expect([msg, ...sigs, ...pubs]).toEqual(before)
      if (n > 0) {
        const changed = msg.slice()
        changed[n - 1] = (changed[n - 1] as number) ^ 1
        expect(nativeCrypto.verify(sigs[0] as Uint8Array, changed, pubs[0] as Uint8Array)).toBe(false)
      }
    }
  })

  it('refuses malformed inputs without throwing', () => {
    expect(nativeCrypto.verify(new Uint8Array(10), new Uint8Array(1), new Uint8Array(32))).toBe(false)
    expect(nativeCrypto.verify(new Uint8Array(64), new Uint8Array(1), new Uint8Array(31))).toBe(false)
    expect(() => nativeCrypto.sign(new Uint8Array(1), new Uint8Array(31))).toThrow(RangeError)
  })
})

describe('native SHA-256', () => {
  it('equals the JavaScript SHA-256 for on-heap arrays, views at offsets and long inputs, leaving them unchanged', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(40), (data, pad) => {
        const copy = data.slice()
        // The same bytes as a view inside a larger buffer, after `pad` other bytes.
        const outer = new Uint8Array(pad + data.length + 3).fill(0xa5)
        outer.set(data, pad)
        const view = outer.subarray(pad, pad + data.length)
        expect(nativeSha256Binary(data)).toBe(jsSha256Binary(data))
        expect(nativeSha256Binary(view)).toBe(jsSha256Binary(data))
        expect(nativeCrypto.sha256(view)).toEqual(jsSha256(data))
        expect(data).toEqual(copy)
      }),
      { numRuns: 400 },
    )
    // Interleaved short and long inputs: the scratch copy of one must not leak into the next.
    const a = Uint8Array.from({ length: 64 }, (_, i) => i)
    const b = Uint8Array.from({ length: 10 }, (_, i) => 200 + i)
    expect([nativeSha256Binary(a), nativeSha256Binary(b), nativeSha256Binary(a)]).toEqual([
      jsSha256Binary(a),
      jsSha256Binary(b),
      jsSha256Binary(a),
    ])
  })

  it('is installed for the core hashes only after agreeing with the JavaScript one', () => {
    const before = useSha256Backend(undefined)
    try {
      expect(installNativeSha256()).toBe(true)
      expect(useSha256Backend(undefined)).toBe(nativeSha256Binary)
      // One that disagrees on a single length is refused and leaves the JavaScript in place.
      const wrongAt65 = (d: Uint8Array) => (d.length === 65 ? jsSha256Binary(d.subarray(1)) : nativeSha256Binary(d))
      expect(installNativeSha256(wrongAt65)).toBe(false)
      expect(useSha256Backend(undefined)).toBe(undefined)
      expect(fastSha256(Uint8Array.of(1, 2, 3))).toEqual(jsSha256(Uint8Array.of(1, 2, 3)))
    } finally {
      useSha256Backend(before)
    }
  })
})

/** The golden vectors' valid signatures whose R is of small order: the rule accepts them, libsodium does not. */
const SMALL_ORDER_R = ['identity-R', 'torsion-R-valid'].map((name) => {
  const c = (stored as CoreVectors).verify.find((v) => v.name === name)
  if (c === undefined || !c.valid) throw new Error(`no valid vector ${name}`)
  return { name, signature: fromHex(c.signature), message: fromHex(c.message), publicKey: fromHex(c.publicKey) }
})

describe('verification through libsodium first, OpenSSL deciding the refusals where they may differ', () => {
  it('loads libsodium on this machine (unless LOOPCHAIN_CRYPTO=openssl), so the fast path is the one tested', () => {
    expect(verifiesWithSodium()).toBe(process.env.LOOPCHAIN_CRYPTO !== 'openssl')
    expect(sodiumVerifier()).toBeTypeOf('function')
  })

  it('accepts signatures with R of small order as OpenSSL and noble do, though libsodium alone refuses them', () => {
    const sodium = sodiumVerifier() as SodiumVerify
    for (const { name, signature, message, publicKey } of SMALL_ORDER_R) {
      const answers = {
        sodium: sodium(Buffer.from(signature), Buffer.from(message), Buffer.from(publicKey)),
        openssl: opensslCrypto.verify(signature, message, publicKey),
        noble: nobleCrypto.verify(signature, message, publicKey),
        native: nativeCrypto.verify(signature, message, publicKey),
        // Over another message, it is refused.
        nativeOtherMessage: nativeCrypto.verify(signature, Uint8Array.of(...message, 0), publicKey),
      }
      expect({ name, ...answers }).toEqual({ name, sodium: false, openssl: true, noble: true, native: true, nativeOtherMessage: false })
    }
  })

  it('agrees with OpenSSL alone on every golden vector and on random corrupted signatures', () => {
    expect(checkCoreVectors(stored as CoreVectors, opensslCrypto)).toEqual([])
    for (const c of (stored as CoreVectors).verify) {
      const args = [fromHex(c.signature), fromHex(c.message), fromHex(c.publicKey)] as const
      expect({ name: c.name, v: nativeCrypto.verify(...args) }).toEqual({ name: c.name, v: opensslCrypto.verify(...args) })
    }
    fc.assert(
      // Bit 768 flips nothing: a valid signature, short or past the scratch's 1,024 bytes.
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 1100 }), fc.nat(768), (sk, msg, bit) => {
        const pub = opensslCrypto.publicKey(sk)
        const sig = opensslCrypto.sign(msg, sk)
        const all = new Uint8Array([...sig, ...pub])
        if (bit < 768) all[bit >> 3] = (all[bit >> 3] as number) ^ (1 << (bit & 7))
        const [s, k] = [all.subarray(0, 64), all.subarray(64)]
        expect(nativeCrypto.verify(s, msg, k)).toBe(opensslCrypto.verify(s, msg, k))
      }),
      { numRuns: 300 },
    )
  })

  it('answers false, without throwing, for a message whose buffer was transferred away', () => {
    const seed = new Uint8Array(32).fill(4)
    const buffer = new ArrayBuffer(16)
    const message = new Uint8Array(buffer)
    const signature = nativeCrypto.sign(message, seed)
    structuredClone(buffer, { transfer: [buffer] })
    expect(message.length).toBe(0)
    expect(nativeCrypto.verify(signature, message, nativeCrypto.publicKey(seed))).toBe(false)
  })

  it('falls back to OpenSSL alone when the addon does not load or fails its check', () => {
    expect(
      sodiumVerifier(() => {
        throw new Error('no addon')
      }),
    ).toBeUndefined()
    expect(sodiumVerifier(() => ({}))).toBeUndefined()
    expect(sodiumVerifier(() => ({ crypto_sign_verify_detached: () => true }))).toBeUndefined()
    expect(sodiumVerifier(() => ({ crypto_sign_verify_detached: () => false }))).toBeUndefined()
    // A build that takes S + L (libsodium's ED25519_COMPAT) would say yes where OpenSSL says no.
    const real = sodiumVerifier() as SodiumVerify
    const sPlusLAccepted = (s: Uint8Array, m: Uint8Array, k: Uint8Array) => real(s, m, k) || (s[63] as number) >= 0x10
    expect(sodiumVerifier(() => ({ crypto_sign_verify_detached: sPlusLAccepted }))).toBeUndefined()
  })
})

const Point = ed25519.Point
const L = Point.Fn.ORDER
const P = 2n ** 255n - 19n
const modL = (x: bigint) => ((x % L) + L) % L
const leToBig = (b: Uint8Array) => b.reduceRight((x, byte) => x * 256n + BigInt(byte), 0n)
const bigToLe = (x: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((x >> BigInt(8 * i)) & 255n))
const TORSION = ED25519_TORSION_SUBGROUP.map((h) => Point.fromHex(h))
/** An encoding with the sign bit set or clear. */
const withSign = (e: Uint8Array, sign: boolean) => {
  const out = Uint8Array.from(e)
  out[31] = ((out[31] as number) & 0x7f) | (sign ? 0x80 : 0)
  return out
}

/**
 * A valid signature (cofactorless) under A = aB + T (T of small order, the identity included) with
 * R = rB + T' (r = 0: R of small order). It holds when T' = −hT; h depends on R and the message,
 * so each T' fits with a chance of one in T's order, and a counter appended to the message moves
 * on until one does.
 */
function torsionSignature(a: bigint, t: number, r: bigint, base: Uint8Array) {
  const A = Point.BASE.multiply(a).add(TORSION[t] as InstanceType<typeof Point>)
  const publicKey = A.toBytes()
  for (let c = 0; ; c++) {
    const message = Uint8Array.from([...base, c & 255, c >> 8])
    for (const T of TORSION) {
      const R = r === 0n ? T : Point.BASE.multiply(r).add(T)
      const Rb = R.toBytes()
      const h = modL(leToBig(createHash('sha512').update(Rb).update(publicKey).update(message).digest()))
      const s = modL(r + h * a)
      if (h === 0n || s === 0n || !A.multiply(h).add(R).equals(Point.BASE.multiply(s))) continue
      return { signature: Uint8Array.from([...Rb, ...bigToLe(s)]), message, publicKey, rHasTorsion: !T.is0() }
    }
  }
}

describe("libsodium's refusals: which are asked again of OpenSSL", () => {
  it('knows the y of every point of small order, as noble lists them', () => {
    const ys = new Set(TORSION.map((p) => toHex(withSign(p.toBytes(), false))))
    expect([...ys].sort()).toEqual(SMALL_ORDER_Y.map(toHex).sort())
  })

  it('asks again for an R or key that might be of small order, with either sign bit, or that is not canonical', () => {
    const ordinary = nativeCrypto.publicKey(new Uint8Array(32).fill(9))
    const unusual = [
      ...TORSION.flatMap((p) => [withSign(p.toBytes(), false), withSign(p.toBytes(), true)]),
      // y from p to 2^255 − 1: not canonical (y = p and p + 1 encode the small-order y 0 and 1).
      ...[P, P + 1n, P + 5n, 2n ** 255n - 1n].flatMap((y) => [withSign(bigToLe(y), false), withSign(bigToLe(y), true)]),
    ]
    for (const e of unusual) {
      expect({ e: toHex(e), r: refusalNeedsOpenSSL(Uint8Array.from([...e, ...new Uint8Array(32)]), ordinary) }).toEqual({
        e: toHex(e),
        r: true,
      })
      expect({ e: toHex(e), k: refusalNeedsOpenSSL(new Uint8Array(64).fill(3), e) }).toEqual({ e: toHex(e), k: true })
    }
    // Near misses: one byte off a listed y, and y = p − 2 (canonical, not of small order).
    const offByOne = withSign(TORSION[1]?.toBytes() as Uint8Array, false)
    offByOne[7] = (offByOne[7] as number) ^ 1
    for (const e of [offByOne, bigToLe(P - 2n), bigToLe(2n)]) {
      expect({ e: toHex(e), r: refusalNeedsOpenSSL(Uint8Array.from([...e, ...new Uint8Array(32)]), ordinary) }).toEqual({
        e: toHex(e),
        r: false,
      })
    }
    // Real signatures' R: ordinary points, decided by libsodium alone when it refuses.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 64 }), (sk, msg) => {
        expect(refusalNeedsOpenSSL(nativeCrypto.sign(msg, sk), nativeCrypto.publicKey(sk))).toBe(false)
      }),
      { numRuns: 200 },
    )
  })

  it('agrees with OpenSSL alone for keys of mixed order and R with a torsion part, valid and corrupted', () => {
    let withTorsionR = 0
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: L - 1n }),
        fc.integer({ min: 1, max: 7 }),
        fc.bigInt({ min: 1n, max: L - 1n }),
        fc.uint8Array({ maxLength: 80 }),
        fc.nat(767),
        (a, t, r, base, bit) => {
          const { signature, message, publicKey, rHasTorsion } = torsionSignature(a, t, r, base)
          if (rHasTorsion) withTorsionR++
          expect([opensslCrypto.verify(signature, message, publicKey), nativeCrypto.verify(signature, message, publicKey)]).toEqual([
            true,
            true,
          ])
          const all = Uint8Array.from([...signature, ...publicKey])
          all[bit >> 3] = (all[bit >> 3] as number) ^ (1 << (bit & 7))
          const [s, k] = [all.subarray(0, 64), all.subarray(64)]
          expect(nativeCrypto.verify(s, message, k)).toBe(opensslCrypto.verify(s, message, k))
        },
      ),
      { numRuns: 60 },
    )
    expect(withTorsionR).toBeGreaterThan(20)
  })

  it('accepts valid signatures whose R is of small order, each of them, which libsodium alone refuses', () => {
    const sodium = sodiumVerifier() as SodiumVerify
    const rs = new Set<string>()
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: L - 1n }), fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 40 }), (a, t, base) => {
        const { signature, message, publicKey } = torsionSignature(a, t, 0n, base)
        rs.add(toHex(signature.subarray(0, 32)))
        const answers = {
          sodium: sodium(Buffer.from(signature), Buffer.from(message), Buffer.from(publicKey)),
          openssl: opensslCrypto.verify(signature, message, publicKey),
          noble: nobleCrypto.verify(signature, message, publicKey),
          native: nativeCrypto.verify(signature, message, publicKey),
        }
        expect(answers).toEqual({ sodium: false, openssl: true, noble: true, native: true })
      }),
      { numRuns: 150 },
    )
    // R took most of the eight small-order points (the identity whenever the key has no torsion part).
    expect(rs.size).toBeGreaterThanOrEqual(6)
  })

  it("gives the rule's answer for R of small order, either sign bit, under any S", () => {
    const seed = new Uint8Array(32).fill(11)
    const publicKey = nativeCrypto.publicKey(seed)
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.boolean(),
        fc.bigInt({ min: 0n, max: L - 1n }),
        fc.uint8Array({ maxLength: 40 }),
        (t, sign, sc, msg) => {
          const R = withSign((TORSION[t] as InstanceType<typeof Point>).toBytes(), sign)
          const signature = Uint8Array.from([...R, ...bigToLe(sc)])
          expect(nativeCrypto.verify(signature, msg, publicKey)).toBe(opensslCrypto.verify(signature, msg, publicKey))
          expect(nativeCrypto.verify(signature, msg, publicKey)).toBe(nobleCrypto.verify(signature, msg, publicKey))
        },
      ),
      { numRuns: 100 },
    )
  })
})

describe('one-off keys (a block’s certificate key)', () => {
  const sodium = createRequire(import.meta.url)('sodium-native') as SodiumSign
  const paths: [string, SodiumSign | null][] = [
    ['libsodium', sodium],
    ['OpenSSL', null],
  ]
  it.each(paths)('through %s: signs and derives the public key exactly as the native and noble providers do', (_, lib) => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, message) => {
        const key = oneOffKey(seed, lib)
        expect(toHex(key.publicKey)).toBe(toHex(nobleCrypto.publicKey(seed)))
        const sig = key.crypto.sign(message, seed)
        expect(toHex(sig)).toBe(toHex(nobleCrypto.sign(message, seed)))
        expect(nativeCrypto.verify(sig, message, key.publicKey)).toBe(true)
        key.destroy()
      }),
      { numRuns: 40 },
    )
  })
  it('through libsodium: destroy zeroes the 64 bytes the key lived in, and the copy of the seed is zeroed at once', () => {
    const held: Buffer[] = []
    const spy: SodiumSign = {
      crypto_sign_seed_keypair(pk, sk, seed) {
        held.push(sk, seed)
        sodium.crypto_sign_seed_keypair(pk, sk, seed)
      },
      crypto_sign_detached: (sig, m, sk) => sodium.crypto_sign_detached(sig, m, sk),
    }
    const seed = Uint8Array.from({ length: 32 }, (_, i) => 255 - i)
    const key = oneOffKey(seed, spy)
    const [sk, seedCopy] = held as [Buffer, Buffer]
    expect(seedCopy.every((b) => b === 0)).toBe(true)
    expect(sk.some((b) => b !== 0)).toBe(true)
    expect(nativeCrypto.verify(key.crypto.sign(new Uint8Array(8), seed), new Uint8Array(8), key.publicKey)).toBe(true)
    key.destroy()
    expect(sk.every((b) => b === 0)).toBe(true)
    expect(Array.from(seed)).toEqual(Array.from({ length: 32 }, (_, i) => 255 - i))
  })
  it.each(paths)('through %s: stays out of the key cache, signs with no other secret, and nothing after destroy', (name, lib) => {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + name.length)
    // Loading libsodium checks it against OpenSSL once, with a fixed test key of its own: done first.
    verifiesWithSodium()
    const cached = secretKeysCached()
    const key = oneOffKey(seed, lib)
    key.crypto.sign(new Uint8Array(32), seed)
    expect(toHex(key.crypto.publicKey(Uint8Array.from(seed)))).toBe(toHex(key.publicKey))
    expect(secretKeysCached()).toBe(cached)
    expect(() => key.crypto.sign(new Uint8Array(32), new Uint8Array(32))).toThrow(/own secret/)
    key.destroy()
    expect(() => key.crypto.sign(new Uint8Array(32), seed)).toThrow(/destroyed/)
    // The provider's own path, for contrast, keeps every key it signs with.
    nativeCrypto.sign(new Uint8Array(32), seed)
    expect(secretKeysCached()).toBe(cached + 1)
  })
})
