/**
 * Every decoder against arbitrary and mutated bytes. The property: a decoder either throws a
 * DecodeError or returns a value whose encoding is exactly the input (anything it accepts is
 * canonical). Nothing else may escape: no RangeError, no TypeError, no hang.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  blockCodec,
  blockHeaderCodec,
  blockResultCodec,
  type Codec,
  callDataCodec,
  certificateCodec,
  commitCodec,
  compactCertificateCodec,
  DecodeError,
  decode,
  deployDataCodec,
  encode,
  eventLogCodec,
  fromHex,
  genesisCodec,
  merkleProofCodec,
  receiptCodec,
  signedVoteCodec,
  toHex,
  transactionCodec,
  validatorSetCodec,
  value,
} from '../../src/index.js'
import vectors from '../vectors/core.json' with { type: 'json' }

const DECODERS: [string, Codec<any>][] = [
  ['transaction', transactionCodec],
  ['block', blockCodec],
  ['header', blockHeaderCodec],
  ['block result', blockResultCodec],
  ['receipt', receiptCodec],
  ['event log', eventLogCodec],
  ['commit', commitCodec],
  ['signed vote', signedVoteCodec],
  ['validator set', validatorSetCodec],
  ['genesis', genesisCodec],
  ['value', value],
  ['call data', callDataCodec],
  ['deploy data', deployDataCodec],
  ['merkle proof', merkleProofCodec],
  ['certificate', certificateCodec],
  ['compact certificate', compactCertificateCodec],
]

/** Arbitrary-bytes cases per decoder in the default run (the issue asks for at least 100,000). */
const RANDOM_RUNS = 100_000
/** Mutations of valid encodings per decoder: these reach deep into the structure. */
const MUTATION_RUNS = 5_000

function acceptsOnlyCanonical(codec: Codec<any>, input: Uint8Array): void {
  let v: unknown
  try {
    v = decode(codec, input)
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e
    return
  }
  expect(toHex(encode(codec, v))).toBe(toHex(input))
}

/** Valid encodings of each structure, from the golden vectors. */
const SEEDS: Record<string, string[]> = {
  transaction: vectors.transactions.map((t) => t.hex),
  block: [vectors.block1.hex, vectors.block2.hex],
  header: [vectors.header0.hex],
  receipt: [vectors.receipt.hex],
  commit: [vectors.commit1.hex],
  'signed vote': [vectors.vote.hex],
  'validator set': [vectors.validatorSet.hex],
  genesis: [vectors.genesis.hex],
  value: vectors.values.map((v) => v.hex),
  'merkle proof': vectors.merkle.filter((m) => m.size > 0).map((m) => m.proofOfLast),
  certificate: [vectors.certificate.hex],
}

const mutation = (seed: Uint8Array) =>
  fc.oneof(
    // flip bytes
    fc.array(fc.tuple(fc.nat(seed.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }).map((flips) => {
      const b = seed.slice()
      for (const [i, x] of flips) b[i] = (b[i] as number) ^ x
      return b
    }),
    // truncate
    fc.nat(seed.length - 1).map((n) => seed.slice(0, n)),
    // extend
    fc.uint8Array({ minLength: 1, maxLength: 8 }).map((tail) => Uint8Array.of(...seed, ...tail)),
    // splice random bytes in
    fc
      .tuple(fc.nat(seed.length), fc.uint8Array({ minLength: 1, maxLength: 16 }))
      .map(([at, ins]) => Uint8Array.of(...seed.slice(0, at), ...ins, ...seed.slice(at))),
  )

describe('decoders under fuzzing', () => {
  for (const [name, codec] of DECODERS) {
    it(`${name}: ${RANDOM_RUNS} arbitrary byte strings give a value or a DecodeError`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (b) => acceptsOnlyCanonical(codec, b)),
        { numRuns: RANDOM_RUNS },
      )
    })
    const seeds = SEEDS[name]
    if (seeds) {
      it(`${name}: mutated valid encodings give a value or a DecodeError`, () => {
        for (const hex of seeds) {
          const seed = fromHex(hex)
          fc.assert(
            fc.property(mutation(seed), (b) => acceptsOnlyCanonical(codec, b)),
            { numRuns: Math.ceil(MUTATION_RUNS / seeds.length) },
          )
        }
      })
    }
  }
})
