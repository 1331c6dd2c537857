import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MerkleProofError, merkleLeaf, merkleProof, merkleRoot, utf8, verifyMerkleProof, ZERO_HASH } from '../../src/index.js'

const arbItems = fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 70 })

describe('Merkle lists', () => {
  it('every item of every list proves against the root', () => {
    fc.assert(
      fc.property(arbItems, (items) => {
        const root = merkleRoot(items)
        const leaves = items.map(merkleLeaf)
        items.forEach((item, i) => {
          verifyMerkleProof(root, item, merkleProof(leaves, i))
        })
      }),
      { numRuns: 150 },
    )
  })

  it('a tampered proof, item, index or root fails', () => {
    fc.assert(
      fc.property(arbItems, fc.nat(), fc.nat(), (items, pick, flip) => {
        const i = pick % items.length
        const root = merkleRoot(items)
        const leaves = items.map(merkleLeaf)
        const proof = merkleProof(leaves, i)
        const item = items[i] as Uint8Array
        expect(() => verifyMerkleProof(root, Uint8Array.of(...item, 0), proof)).toThrow(MerkleProofError)
        const badRoot = root.slice()
        badRoot[flip % 32] = (badRoot[flip % 32] as number) ^ 1
        expect(() => verifyMerkleProof(badRoot, item, proof)).toThrow(MerkleProofError)
        if (proof.siblings.length > 0) {
          const s = proof.siblings.map((x) => x.slice())
          const k = flip % s.length
          ;(s[k] as Uint8Array)[0] = ((s[k] as Uint8Array)[0] as number) ^ 0x80
          expect(() => verifyMerkleProof(root, item, { ...proof, siblings: s })).toThrow(MerkleProofError)
          expect(() => verifyMerkleProof(root, item, { ...proof, siblings: proof.siblings.slice(1) })).toThrow(MerkleProofError)
        }
        if (items.length > 1) {
          const j = (i + 1) % items.length
          // Another position with the same siblings proves only if the items happen to be equal there.
          if (merkleLeaf(items[j] as Uint8Array).toString() !== merkleLeaf(item).toString()) {
            expect(() => verifyMerkleProof(root, item, { ...proof, index: j })).toThrow(MerkleProofError)
          }
        }
        expect(() => verifyMerkleProof(root, item, { ...proof, size: items.length + 1, index: items.length })).toThrow(MerkleProofError)
      }),
      { numRuns: 150 },
    )
  })

  it('the empty list has the zero root, and a leaf cannot pose as an inner node', () => {
    expect(merkleRoot([])).toEqual(ZERO_HASH)
    const items = [utf8('a'), utf8('b')]
    const root = merkleRoot(items)
    // The concatenated children of the root, offered as a single item, must not prove.
    const forged = Uint8Array.of(...merkleLeaf(items[0] as Uint8Array), ...merkleLeaf(items[1] as Uint8Array))
    expect(() => verifyMerkleProof(root, forged, { index: 0, size: 1, siblings: [] })).toThrow(MerkleProofError)
  })
})
