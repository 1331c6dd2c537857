import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { toHex } from '../../src/codec/hex.js'
import { sha256 } from '../../src/crypto/hash.js'
import { binaryStringToBytes, bytesToBinaryString } from '../../src/state/binary.js'
import { fastSha256, fastSha256Binary, jsSha256, jsSha256Binary, useSha256Backend } from '../../src/state/sha256.js'
import { decodeNode, encodeBranch, encodeLeaf, encodeLeafGeneric, Leaf, Slab, Stub } from '../../src/state/tree-node.js'

const ascii = (s: string) => new TextEncoder().encode(s)
const hex = toHex

describe('fastSha256', () => {
  it('matches the FIPS 180-4 examples', () => {
    expect(hex(fastSha256(ascii('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(hex(fastSha256(new Uint8Array(0)))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
    expect(hex(fastSha256(ascii('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')))).toBe(
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    )
  })

  it('agrees with @noble/hashes on every length from 0 to 300 bytes, across padding boundaries', () => {
    for (let len = 0; len <= 300; len++) {
      const data = Uint8Array.from({ length: len }, (_, i) => (i * 131 + len * 7) & 0xff)
      expect(hex(fastSha256(data)), `length ${len}`).toBe(hex(nobleSha256(data)))
    }
  })

  it('agrees with @noble/hashes on a 1 MB input (blocks are hashed with it too)', () => {
    const data = Uint8Array.from({ length: 1 << 20 }, (_, i) => (i * 2654435761) >>> 24)
    expect(fastSha256(data)).toEqual(nobleSha256(data))
    expect(sha256(data)).toEqual(nobleSha256(data))
  })

  it('agrees with @noble/hashes on random inputs and leaves its input untouched', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1000 }), (data) => {
        const copy = data.slice()
        expect(fastSha256(data)).toEqual(nobleSha256(data))
        expect(binaryStringToBytes(fastSha256Binary(data))).toEqual(nobleSha256(data))
        expect(data).toEqual(copy)
      }),
      { numRuns: 500 },
    )
  })
})

describe('the SHA-256 backend', () => {
  it('routes every protocol hash through an installed backend and back to JavaScript when removed', () => {
    const calls: number[] = []
    // A deliberately wrong backend: if any path bypassed it, the outputs would still be SHA-256.
    const marker = String.fromCharCode(...Array.from({ length: 32 }, (_, i) => i))
    const previous = useSha256Backend((data) => {
      calls.push(data.length)
      return marker
    })
    try {
      const data = ascii('abc')
      expect(fastSha256Binary(data)).toBe(marker)
      expect(fastSha256(data)).toEqual(Uint8Array.from({ length: 32 }, (_, i) => i))
      expect(sha256(data)).toEqual(Uint8Array.from({ length: 32 }, (_, i) => i))
      expect(calls).toEqual([3, 3, 3])
      // The JavaScript reference is unaffected, so a backend can be checked against it.
      expect(hex(jsSha256(data))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
      expect(binaryStringToBytes(jsSha256Binary(data))).toEqual(jsSha256(data))
    } finally {
      expect(useSha256Backend(previous)).not.toBe(previous)
    }
    expect(hex(fastSha256(ascii('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(calls).toHaveLength(3)
  })
})

describe('state node records', () => {
  it('encodes leaves exactly as the generic codec does, through a slab or not', () => {
    const slab = new Slab()
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        (path, key, value) => {
          const expected = encodeLeafGeneric(path, key, value)
          const p = bytesToBinaryString(path)
          expect(encodeLeaf(p, key, value)).toEqual(expected)
          expect(encodeLeaf(p, key, value, slab)).toEqual(expected)
          const node = decodeNode(bytesToBinaryString(sha256(expected)), 5, expected)
          expect(node).toBeInstanceOf(Leaf)
          expect(node.version).toBe(5)
          expect(binaryStringToBytes((node as Leaf).value)).toEqual(value)
          expect(binaryStringToBytes((node as Leaf).path)).toEqual(path)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('never hands out overlapping slab views', () => {
    const slab = new Slab()
    const views = [65, 1, 70_000, 65, 30_000, 40_000].map((n, i) => slab.alloc(n).fill(i + 1))
    expect(views.map((v, i) => v.every((x) => x === i + 1))).toEqual([true, true, true, true, true, true])
  })

  it('rejects records with an unknown tag or trailing bytes as CORRUPT_NODE', () => {
    const one = '\x01'.repeat(32)
    // A child written at version 300 (a two-byte uvarint) and an empty one (version 0).
    const branch = encodeBranch(new Stub(one, 300), null)
    expect(branch).toEqual(Uint8Array.from([1, ...new Array(32).fill(1), ...new Array(32).fill(0), 0xac, 0x02, 0]))
    expect(encodeBranch(new Stub(one, 300), null, new Slab())).toEqual(branch)
    expect(() => decodeNode(one, 9, new Uint8Array([...branch, 0]))).toThrow(expect.objectContaining({ code: 'CORRUPT_NODE' }))
    expect(() => decodeNode(one, 9, Uint8Array.of(9))).toThrow(expect.objectContaining({ code: 'CORRUPT_NODE' }))
    expect(() => decodeNode(one, 9, branch.subarray(0, 40))).toThrow(expect.objectContaining({ code: 'CORRUPT_NODE' }))
    // A record cut before its children's versions is as corrupt as one cut in a hash.
    expect(() => decodeNode(one, 9, branch.subarray(0, 65))).toThrow(expect.objectContaining({ code: 'CORRUPT_NODE' }))
    const node = decodeNode(one, 9, branch)
    // An all-zero child hash is the empty subtree, not a stub to load; the stub keeps its version.
    expect(node).toMatchObject({ kind: 1, version: 9, right: null, left: { kind: 2, hash: one, version: 300 } })
  })
})
