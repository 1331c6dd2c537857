/**
 * The direct transaction and address codecs against the generic definitions they replace on the
 * hot path (`transactionBodyStruct`, `addressViaBytes`): the same bytes for every value, the same
 * value or the same error for every input, valid or not.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Domain } from '../../src/crypto/hash.js'
import {
  type Address,
  address,
  addressToBytes,
  addressViaBytes,
  type Codec,
  decode,
  EncodeError,
  encode,
  hashEncoded,
  type Transaction,
  transactionBodyCodec,
  transactionBodyStruct,
  transactionCodec,
  transactionHash,
  transactionStruct,
} from '../../src/index.js'
import { arbTransaction } from '../arbitraries.js'

/** What `f` returns, or its error's class, code and message. */
function settle(f: () => unknown): unknown {
  try {
    return { value: f() }
  } catch (e) {
    const err = e as Error & { code?: string }
    return { error: err.constructor.name, code: err.code, message: err.message }
  }
}

const outcome = <T>(codec: Codec<T>, bytes: Uint8Array) => settle(() => decode(codec, bytes))
const encodeOutcome = <T>(codec: Codec<T>, v: T) => settle(() => encode(codec, v))

/** A valid encoding with one byte changed, cut short, or extended. */
const arbMangled = fc
  .tuple(arbTransaction, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'cut', 'extend'))
  .map(([tx, at, b, how]) => {
    const bytes = encode(transactionStruct, tx)
    const i = at % bytes.length
    if (how === 'cut') return bytes.slice(0, i)
    if (how === 'extend') return Uint8Array.of(...bytes, b)
    const out = bytes.slice()
    out[i] = b
    return out
  })

describe('direct transaction codec', () => {
  it('writes the bytes the struct writes and reads back the same values', () => {
    fc.assert(
      fc.property(arbTransaction, (tx) => {
        const bytes = encode(transactionCodec, tx)
        expect(bytes).toEqual(encode(transactionStruct, tx))
        expect(encode(transactionBodyCodec, tx.body)).toEqual(encode(transactionBodyStruct, tx.body))
        const back = decode(transactionCodec, bytes)
        expect(back).toEqual(decode(transactionStruct, bytes))
        expect(back).toEqual(tx)
        // The hash kept from decoding is the hash of the body encoded again.
        expect(transactionHash(back.body)).toEqual(hashEncoded(Domain.Transaction, transactionBodyStruct, tx.body))
        expect(transactionHash(back.body)).toEqual(transactionHash({ ...tx.body }))
      }),
    )
  })

  it('refuses exactly what the struct refuses, with the same error', () => {
    fc.assert(
      fc.property(arbMangled, (bytes) => {
        expect(outcome(transactionCodec, bytes)).toEqual(outcome(transactionStruct, bytes))
        const body = bytes.subarray(0, Math.max(0, bytes.length - 96))
        expect(outcome(transactionBodyCodec, body)).toEqual(outcome(transactionBodyStruct, body))
      }),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(outcome(transactionCodec, bytes)).toEqual(outcome(transactionStruct, bytes))
      }),
    )
  })

  it('refuses to encode what the struct refuses, naming the same field', () => {
    const good = fc.sample(arbTransaction, { numRuns: 1, seed: 7 })[0] as Transaction
    const bad: unknown[] = [
      null,
      'body',
      { ...good.body, version: 256 },
      { ...good.body, networkId: -1 },
      { ...good.body, from: 'hx00' },
      { ...good.body, to: `HX${'0'.repeat(40)}` },
      { ...good.body, to: `hx${'g'.repeat(40)}` },
      { ...good.body, value: -1n },
      { ...good.body, value: 1 },
      { ...good.body, stepLimit: 1.5 },
      { ...good.body, timestamp: Number.MAX_SAFE_INTEGER + 2 },
      { ...good.body, nonce: '1' },
      { ...good.body, kind: 9 },
      { ...good.body, data: 'x' },
    ]
    for (const body of bad) {
      const want = encodeOutcome(transactionBodyStruct, body as Transaction['body'])
      expect(want).toHaveProperty('error')
      expect(encodeOutcome(transactionBodyCodec, body as Transaction['body'])).toEqual(want)
    }
  })
})

describe('addressToBytes', () => {
  it('refuses anything but hx or cx and 40 hex digits, instead of reading it as another address', () => {
    const ok = `cx${'ab'.repeat(20)}` as Address
    expect(addressToBytes(ok)).toEqual(Uint8Array.of(1, ...Array(20).fill(0xab)))
    for (const bad of ['hx00', `HX${'0'.repeat(40)}`, `zz${'0'.repeat(40)}`, `hx${'0'.repeat(41)}`, `hx${'0'.repeat(39)}g`, '', 42]) {
      expect(() => addressToBytes(bad as Address), String(bad)).toThrow(EncodeError)
    }
  })
})

describe('direct address codec', () => {
  it('reads and writes what the codec through bytes does, errors included', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.uint8Array({ minLength: 0, maxLength: 24 }), (type, rest) => {
        const bytes = Uint8Array.of(type, ...rest)
        expect(outcome(address, bytes)).toEqual(outcome(addressViaBytes, bytes))
      }),
    )
    const hex40 = fc.stringMatching(/^[0-9a-fA-F]{40}$/)
    const arbText = fc.oneof(
      hex40.map((h) => `hx${h.toLowerCase()}`),
      hex40.map((h) => `cx${h}`),
      hex40.map((h) => `Hx${h}`),
      hex40.map((h) => `hx${h.slice(1)}z`),
      fc.string({ maxLength: 44 }),
    )
    fc.assert(
      fc.property(arbText, (s) => {
        expect(encodeOutcome(address, s as Address)).toEqual(encodeOutcome(addressViaBytes, s as Address))
      }),
    )
  })
})
