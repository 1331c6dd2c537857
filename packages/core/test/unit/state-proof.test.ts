import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { sha256, ZERO_HASH } from '../../src/crypto/hash.js'
import { DecodeError } from '../../src/errors.js'
import { StateProofError } from '../../src/state/errors.js'
import { defaultStateHasher } from '../../src/state/hasher.js'
import { MemoryKVStore } from '../../src/state/memory-store.js'
import {
  decodeStateProof,
  encodeStateProof,
  isValidStateProof,
  MAX_PROOF_DEPTH,
  type StateProof,
  stateProofSize,
  verifyStateProof,
} from '../../src/state/proof.js'
import { StateTree } from '../../src/state/state-tree.js'

const enc = (s: string) => new TextEncoder().encode(s)

async function sampleTree(n: number): Promise<StateTree> {
  const t = await StateTree.open(new MemoryKVStore())
  for (let i = 0; i < n; i++) t.put(enc(`key-${i}`), enc(`value-${i}`))
  await t.commitAndWrite()
  return t
}

/** Absent keys whose proofs end at another key's leaf, and ones that end at an empty subtree. */
async function absentProofs(t: StateTree): Promise<{ foreign: Uint8Array[]; empty: Uint8Array[] }> {
  const foreign: Uint8Array[] = []
  const empty: Uint8Array[] = []
  for (let i = 0; i < 400 && (foreign.length < 5 || empty.length < 5); i++) {
    const k = enc(`absent-${i}`)
    const { proof } = await t.prove(k)
    ;(proof.leaf ? foreign : empty).push(k)
  }
  return { foreign, empty }
}

const hash32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
const proofArb: fc.Arbitrary<StateProof> = fc
  .record({
    siblings: fc.array(fc.oneof(fc.constant(ZERO_HASH), hash32), { maxLength: 40 }),
    leaf: fc.option(fc.record({ path: hash32, valueHash: hash32 }), { nil: undefined }),
  })
  .map((p) => (p.leaf === undefined ? { siblings: p.siblings } : p))

describe('state proof codec', () => {
  it('round-trips any proof and predicts its size', () => {
    fc.assert(
      fc.property(proofArb, (p) => {
        const bytes = encodeStateProof(p)
        // An all-zero sibling is the empty hash, so it is encoded as a bitmap bit; the rest survive.
        expect(decodeStateProof(bytes)).toEqual({ ...p, siblings: p.siblings.map((s) => (s.every((x) => x === 0) ? ZERO_HASH : s)) })
        expect(stateProofSize(p)).toBe(bytes.length)
      }),
      { numRuns: 300 },
    )
  })

  it('encodes empty siblings as bits: depth, bitmap, present siblings, leaf tag', () => {
    const s = new Uint8Array(32).fill(0xaa)
    const bytes = encodeStateProof({ siblings: [ZERO_HASH, s, ZERO_HASH] })
    expect([...bytes.subarray(0, 2)]).toEqual([3, 0b0100_0000])
    expect(bytes.length).toBe(1 + 1 + 32 + 1)
    expect(bytes[bytes.length - 1]).toBe(0)
  })

  it('rejects non-canonical encodings with the right DecodeError code', () => {
    const s = new Uint8Array(32).fill(1)
    const cases: [number[], string][] = [
      [[1, 0b0100_0000, 0], 'NON_CANONICAL'], // padding bit set
      [[1, 0b1000_0000, ...new Uint8Array(32), 0], 'NON_CANONICAL'], // zero hash marked present
      [[0x81, 0x02], 'OVERSIZED'], // depth 257
      [[1, 0b1000_0000, ...s, 2], 'INVALID_TAG'],
      [[1, 0b1000_0000, ...s], 'TRUNCATED'],
      [[0, 0, 0], 'TRAILING_BYTES'],
      [[0x80, 0x00], 'NON_CANONICAL'], // redundant varint byte
    ]
    for (const [bytes, code] of cases) {
      expect(() => decodeStateProof(Uint8Array.from(bytes)), JSON.stringify(bytes)).toThrow(expect.objectContaining({ code }))
    }
    expect(decodeStateProof(Uint8Array.of(0, 0))).toEqual({ siblings: [] })
  })

  it('decodes 100,000 arbitrary byte strings with nothing but DecodeError, canonically', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        let p: StateProof
        try {
          p = decodeStateProof(bytes)
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e
          return
        }
        // Whatever decodes is canonical: it re-encodes to the same bytes.
        expect(encodeStateProof(p)).toEqual(bytes)
      }),
      { numRuns: 100_000 },
    )
  })

  it('survives mutations of valid proofs with DecodeError or a re-encodable proof', () => {
    fc.assert(
      fc.property(proofArb, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.nat({ max: 4 }), (p, at, x, cut) => {
        const bytes = encodeStateProof(p)
        const m = bytes.slice(0, bytes.length - (cut === 0 ? 1 : 0))
        if (m.length > 0) m[at % m.length] = (m[at % m.length] as number) ^ x
        try {
          expect(encodeStateProof(decodeStateProof(m))).toEqual(m)
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e
        }
      }),
      { numRuns: 1500 },
    )
  })

  it(`refuses to encode more than ${MAX_PROOF_DEPTH} siblings`, () => {
    expect(() => encodeStateProof({ siblings: new Array(MAX_PROOF_DEPTH + 1).fill(ZERO_HASH) })).toThrow(RangeError)
  })
})

describe('verifyStateProof', () => {
  it('accepts honest proofs and rejects every single-byte corruption of them', async () => {
    const t = await sampleTree(60)
    const { foreign, empty } = await absentProofs(t)
    expect(foreign.length).toBeGreaterThan(0)
    expect(empty.length).toBeGreaterThan(0)
    const keys = [enc('key-3'), enc('key-41'), ...foreign.slice(0, 3), ...empty.slice(0, 3)]
    for (const k of keys) {
      const { value, proof } = await t.prove(k)
      const bytes = encodeStateProof(proof)
      verifyStateProof(t.root, k, value, bytes)
      for (let i = 0; i < bytes.length; i++) {
        for (const x of [0x01, 0x80, 0xff]) {
          const bad = bytes.slice()
          bad[i] = (bad[i] as number) ^ x
          expect(isValidStateProof(t.root, k, value, bad), `byte ${i} ^ ${x}`).toBe(false)
        }
      }
    }
  })

  it('rejects a dropped or added sibling, a wrong value, a wrong root and a wrong key', async () => {
    const t = await sampleTree(60)
    const k = enc('key-7')
    const { value, proof } = await t.prove(k)
    expect(value).toEqual(enc('value-7'))
    expect(proof.siblings.length).toBeGreaterThan(2)
    const fails = (root: Uint8Array, key: Uint8Array, v: Uint8Array | undefined, p: StateProof) => {
      expect(() => verifyStateProof(root, key, v, p)).toThrow(StateProofError)
    }
    fails(t.root, k, value, { siblings: proof.siblings.slice(1) })
    fails(t.root, k, value, { siblings: proof.siblings.slice(0, -1) })
    fails(t.root, k, value, { siblings: [...proof.siblings, ZERO_HASH] })
    fails(t.root, k, enc('value-8'), proof)
    fails(t.root, k, new Uint8Array(0), proof)
    fails(ZERO_HASH, k, value, proof)
    fails((await sampleTree(61)).root, k, value, proof)
    fails(t.root, enc('key-8'), value, proof)
    expect(() => verifyStateProof(t.root, k, enc('value-8'), proof)).toThrow(
      expect.objectContaining({ code: 'ROOT_MISMATCH', penalize: true }),
    )
  })

  it('rejects claims that a present key is absent, however the absence proof is dressed', async () => {
    const t = await sampleTree(60)
    const k = enc('key-11')
    const { value, proof } = await t.prove(k)
    const vh = sha256(value as Uint8Array)
    const path = defaultStateHasher.keyPath(k)
    // Absence with the inclusion siblings (empty end), and with the key's own leaf as "foreign".
    expect(isValidStateProof(t.root, k, undefined, proof)).toBe(false)
    expect(() => verifyStateProof(t.root, k, undefined, { siblings: proof.siblings, leaf: { path, valueHash: vh } })).toThrow(
      expect.objectContaining({ code: 'INVALID_PROOF' }),
    )
    // A foreign leaf from elsewhere in the tree does not fit this path.
    const other = await t.prove(enc('key-12'))
    const otherPath = defaultStateHasher.keyPath(enc('key-12'))
    const forged: StateProof = { siblings: proof.siblings, leaf: { path: otherPath, valueHash: vh } }
    expect(isValidStateProof(t.root, k, undefined, forged)).toBe(false)
    expect(other.value).toEqual(enc('value-12'))
  })

  it('rejects a value claimed with a foreign-leaf absence proof, and a foreign leaf off the path', async () => {
    const t = await sampleTree(60)
    const { foreign } = await absentProofs(t)
    const k = foreign[0] as Uint8Array
    const { proof } = await t.prove(k)
    const leaf = proof.leaf as NonNullable<StateProof['leaf']>
    expect(() => verifyStateProof(t.root, k, enc('x'), proof)).toThrow(expect.objectContaining({ code: 'INVALID_PROOF' }))
    if (proof.siblings.length > 0) {
      const flipped = leaf.path.slice()
      flipped[0] = (flipped[0] as number) ^ 0x80
      expect(() => verifyStateProof(t.root, k, undefined, { siblings: proof.siblings, leaf: { ...leaf, path: flipped } })).toThrow(
        expect.objectContaining({ code: 'INVALID_PROOF' }),
      )
    }
    const wrongValue = { siblings: proof.siblings, leaf: { ...leaf, valueHash: new Uint8Array(32) } }
    expect(() => verifyStateProof(t.root, k, undefined, wrongValue)).toThrow(expect.objectContaining({ code: 'ROOT_MISMATCH' }))
  })

  it('reports undecodable bytes as a penalisable MALFORMED StateProofError', async () => {
    const t = await sampleTree(4)
    const err = (() => {
      try {
        verifyStateProof(t.root, enc('key-1'), enc('value-1'), Uint8Array.of(1, 0x7f))
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(err).toBeInstanceOf(StateProofError)
    expect(err).toMatchObject({ code: 'MALFORMED', penalize: true })
    expect((err as Error).cause).toBeInstanceOf(DecodeError)
  })

  it('only ever throws StateProofError for arbitrary proof bytes', async () => {
    const t = await sampleTree(30)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.option(fc.uint8Array({ maxLength: 8 }), { nil: undefined }), (bytes, v) => {
        try {
          verifyStateProof(t.root, enc('key-1'), v, bytes)
        } catch (e) {
          if (!(e instanceof StateProofError)) throw e
        }
      }),
      { numRuns: 5000 },
    )
  })

  it('proofs at 2,000 keys carry about log2(n) + 1.3 siblings', async () => {
    const t = await sampleTree(2000)
    let total = 0
    for (let i = 0; i < 200; i++) total += (await t.prove(enc(`key-${i}`))).proof.siblings.length
    const avg = total / 200
    // Expected depth of a compacted leaf is about log2(n) + 1.3 ≈ 12.3 at n = 2,000.
    expect(avg).toBeGreaterThan(10)
    expect(avg).toBeLessThan(15)
  })
})
