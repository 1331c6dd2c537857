import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  bigUint,
  blockCodec,
  bool,
  bytes,
  bytesView,
  type Codec,
  commitCodec,
  DecodeError,
  decode,
  EncodeError,
  encode,
  fromHex,
  hashEncoded,
  list,
  option,
  Reader,
  receiptCodec,
  signedVoteCodec,
  string,
  struct,
  taggedHash,
  toHex,
  toHexRange,
  transactionCodec,
  u16,
  u32,
  uvarint,
  value,
} from '../../src/index.js'
import { arbBlock, arbCommit, arbReceipt, arbTransaction, arbValue, arbVote } from '../arbitraries.js'

function decodeError(codec: Codec<unknown>, hex: string): DecodeError {
  try {
    decode(codec, fromHex(hex))
  } catch (e) {
    if (e instanceof DecodeError) return e
    throw e
  }
  throw new Error(`${hex} decoded but should not`)
}

describe('canonical codec', () => {
  it('every structure round-trips through its codec', () => {
    const cases: [string, Codec<any>, fc.Arbitrary<any>][] = [
      ['uvarint', uvarint, fc.maxSafeNat()],
      ['bigUint', bigUint(32), fc.bigInt({ min: 0n, max: 2n ** 256n - 1n })],
      ['value', value, arbValue],
      ['transaction', transactionCodec, arbTransaction],
      ['vote', signedVoteCodec, fc.record({ vote: arbVote, signature: fc.uint8Array({ minLength: 64, maxLength: 64 }) })],
      ['commit', commitCodec, arbCommit],
      ['receipt', receiptCodec, arbReceipt],
      ['block', blockCodec, arbBlock],
    ]
    for (const [, codec, arb] of cases) {
      fc.assert(
        fc.property(arb, (v) => {
          const bytes = encode(codec, v)
          const back = decode(codec, bytes)
          expect(back).toEqual(v)
          // One value, one byte string: encoding the decoded value gives the same bytes.
          expect(toHex(encode(codec, back))).toBe(toHex(bytes))
        }),
        { numRuns: 300 },
      )
    }
  })

  it('uvarint is minimal LEB128 and refuses padded or overlong forms', () => {
    expect(toHex(encode(uvarint, 0))).toBe('00')
    expect(toHex(encode(uvarint, 127))).toBe('7f')
    expect(toHex(encode(uvarint, 128))).toBe('8001')
    expect(decodeError(uvarint, '8000').code).toBe('NON_CANONICAL')
    expect(decodeError(uvarint, 'ff00').code).toBe('NON_CANONICAL')
    expect(decodeError(uvarint, 'ffffffffffffffff01').code).toBe('OVERSIZED')
    expect(decodeError(uvarint, 'ffffffffffffff7f').code).toBe('OVERSIZED') // 2^56 - 1 > 2^53 - 1
    expect(decodeError(uvarint, '80').code).toBe('TRUNCATED')
    expect(() => encode(uvarint, -1)).toThrow(EncodeError)
    expect(() => encode(uvarint, 1.5)).toThrow(EncodeError)
  })

  it('big integers refuse leading zeros and lengths above their width', () => {
    expect(toHex(encode(bigUint(32), 0n))).toBe('00')
    expect(toHex(encode(bigUint(32), 256n))).toBe('020100')
    expect(decodeError(bigUint(32), '020001').code).toBe('NON_CANONICAL')
    expect(decodeError(bigUint(32), `21${'01'.repeat(33)}`).code).toBe('OVERSIZED')
    expect(() => encode(bigUint(32), 2n ** 256n)).toThrow(EncodeError)
  })

  it('big integers are their minimal big-endian bytes on both sides of the number fast path', () => {
    // Reference: the magnitude's hex digits, padded to whole bytes.
    const reference = (v: bigint) => {
      const hex = v === 0n ? '' : v.toString(16)
      return `${(hex.length + 1) >> 1 < 16 ? '0' : ''}${((hex.length + 1) >> 1).toString(16)}${hex.length % 2 ? '0' : ''}${hex}`
    }
    const edges = [0n, 1n, 255n, 256n, 2n ** 48n - 1n, 2n ** 48n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 64n, 2n ** 256n - 1n]
    const check = (v: bigint) => {
      expect(toHex(encode(bigUint(32), v))).toBe(reference(v))
      expect(decode(bigUint(32), fromHex(reference(v)))).toBe(v)
    }
    for (const v of edges) check(v)
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 60n }), check), { numRuns: 500 })
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }), check), { numRuns: 200 })
  })

  it('booleans are exactly 0 or 1, options exactly tag 0 or 1', () => {
    expect(decodeError(bool, '02').code).toBe('NON_CANONICAL')
    expect(decodeError(option(u16), '02').code).toBe('INVALID_TAG')
    expect(decode(option(u16), fromHex('010102'))).toBe(258)
    expect(decode(option(u16), fromHex('00'))).toBeUndefined()
  })

  it('decoded bytes never alias the input, even when the input is a Node Buffer', () => {
    const input = Buffer.from([3, 1, 2, 3])
    const out = decode(bytes(10), input)
    expect(out.constructor).toBe(Uint8Array)
    input[1] = 99
    expect([...out]).toEqual([1, 2, 3])
    // A plain array, and a view into a larger one.
    const plain = new Uint8Array([9, 9, 3, 4, 5, 6])
    for (const from of [plain.subarray(2), plain.slice(2)]) {
      const got = decode(bytes(10), from)
      expect(got.constructor).toBe(Uint8Array)
      from[1] = 77
      expect([...got]).toEqual([4, 5, 6])
    }
  })

  it('encode keeps no state between calls: nested encoders, failures and large values leave the next result exact', () => {
    const inner = struct('Inner', { a: u32, s: string(100) })
    // An encoder that encodes another value in the middle of its own output.
    const nesting: Codec<{ a: number; s: string }> = {
      name: 'Nesting',
      minSize: 0,
      write(w, v) {
        u16.write(w, 7)
        bytes(1000).write(w, encode(inner, v))
        u16.write(w, 9)
      },
      read: () => {
        throw new Error('unused')
      },
    }
    const v = { a: 5, s: 'hi' }
    const innerBytes = encode(inner, v)
    expect(toHex(encode(nesting, v))).toBe(`0007${toHex(encode(uvarint, innerBytes.length))}${toHex(innerBytes)}0009`)
    // A failing encode leaves nothing behind for the next one.
    expect(() => encode(inner, { a: 5, s: 'x'.repeat(101) })).toThrow(EncodeError)
    expect(encode(inner, v)).toEqual(innerBytes)
    // Results are copies, never views of a reused buffer.
    const first = encode(inner, v)
    encode(inner, { a: 0xffffffff, s: 'zzzz' })
    expect(first).toEqual(innerBytes)
    expect(first.buffer.byteLength).toBe(first.length)
    // Values larger than the kept buffer, then small ones again.
    const big = 'y'.repeat(3 << 20)
    expect(decode(string(4 << 20), encode(string(4 << 20), big))).toBe(big)
    expect(encode(inner, v)).toEqual(innerBytes)
  })

  it('hashEncoded is the tagged hash of the encoding, for any value and any tag', () => {
    fc.assert(
      fc.property(arbTransaction, fc.integer({ min: 0, max: 255 }), (tx, tag) => {
        expect(hashEncoded(tag, transactionCodec, tx)).toEqual(taggedHash(tag, encode(transactionCodec, tx)))
      }),
      { numRuns: 200 },
    )
    const big = { a: 1, s: 'z'.repeat(10_000) }
    const codec = struct('Big', { a: u32, s: string(20_000) })
    expect(hashEncoded(7, codec, big)).toEqual(taggedHash(7, encode(codec, big)))
  })

  it('refuses trailing bytes', () => {
    const e = decodeError(u32, '0000000100')
    expect(e.code).toBe('TRAILING_BYTES')
    expect(e.details.remaining).toBe(1)
  })

  it('checks a length prefix against its maximum and the input before allocating', () => {
    // A 4-GiB length claim on a 5-byte input must fail on the claim, not try to allocate.
    expect(decodeError(bytes(1 << 20), '8080808010').code).toBe('OVERSIZED')
    expect(decodeError(bytes(1 << 30), 'ffffff03').code).toBe('TRUNCATED')
    expect(decodeError(list(u32, 1000), 'e907').code).toBe('OVERSIZED') // 1001 items
    // 100 items of at least 4 bytes cannot fit in 3 bytes.
    expect(decodeError(list(u32, 1000), '64000000').code).toBe('TRUNCATED')
    expect(() => encode(bytes(2), Uint8Array.of(1, 2, 3))).toThrow(EncodeError)
  })

  it('strings must be valid UTF-8 and well-formed', () => {
    expect(decodeError(string(10), '02c328').code).toBe('INVALID_VALUE')
    expect(decodeError(string(10), '02c0af').code).toBe('INVALID_VALUE') // overlong '/'
    expect(() => encode(string(10), '\ud800')).toThrow(EncodeError)
    expect(decode(string(10), encode(string(10), '한글'))).toBe('한글')
  })

  it('values: sorted unique map keys, no negative zero, bounded depth', () => {
    const ab = encode(value, { b: 1n, a: 2n })
    expect(toHex(ab)).toBe(toHex(encode(value, { a: 2n, b: 1n })))
    // Map {b, a} written out of order by hand: tag 8, 2 entries, "b" → true, "a" → true.
    expect(decodeError(value, '080201620201610' + '2').code).toBe('NON_CANONICAL')
    // Repeated key.
    expect(decodeError(value, '0802016102016102').code).toBe('NON_CANONICAL')
    expect(decode(value, fromHex('0400'))).toBe(-1n)
    let deep = '00'
    for (let i = 0; i < 40; i++) deep = `0701${deep}`
    expect(decodeError(value, deep).code).toBe('OVERSIZED')
    expect(() => encode(value, 1 as unknown as bigint)).toThrow(EncodeError)
    // Decoded maps cannot reach Object.prototype through a "__proto__" key.
    const m = decode(value, encode(value, JSON.parse('{"__proto__": true}'))) as Record<string, unknown>
    expect(Object.getPrototypeOf(m)).toBeNull()
    const protoKey = '__proto__'
    expect(m[protoKey]).toBe(true)
  })

  it('a struct encodes its fields in declaration order with no framing', () => {
    const pair = struct('Pair', { x: u16, y: u16 })
    expect(toHex(encode(pair, { x: 1, y: 2 }))).toBe('00010002')
    expect(() => encode(pair, { x: 70000, y: 0 })).toThrow(/Pair.x/)
  })
})

describe('Reader.take', () => {
  it('copies what it reads, and gives zero bytes as one shared empty array', () => {
    const input = Uint8Array.of(3, 7, 8, 9, 0, 0)
    const r = new Reader(input)
    r.u8()
    const three = r.take(3)
    input[1] = 99
    expect([...three]).toEqual([7, 8, 9])
    expect(three.buffer).not.toBe(input.buffer)
    // Empty payloads (every transfer's data) share one array instead of allocating each time.
    const field = bytes(16)
    const [e1, e2] = [decode(field, Uint8Array.of(0)), decode(field, Uint8Array.of(0))]
    expect(e1).toHaveLength(0)
    expect(e1).toBe(e2)
    expect(r.take(0)).toBe(e1)
  })
})

describe('Reader.view and bytesView', () => {
  it('decode what bytes() decodes, as views of the input, with the same errors', () => {
    const items = [Uint8Array.of(), Uint8Array.of(1), Uint8Array.from({ length: 200 }, (_, i) => i)]
    const wire = encode(list(bytes(300), 8), items)
    // The same bytes on the wire: a batch written by either codec reads with the other.
    expect(encode(list(bytesView(300), 8), items)).toEqual(wire)
    const views = decode(list(bytesView(300), 8), wire)
    expect(views).toEqual(decode(list(bytes(300), 8), wire))
    // Views alias the input: a change to it shows through, where copies would not see it.
    const last = views[2] as Uint8Array
    expect(last.buffer).toBe(wire.buffer)
    wire[wire.length - 1] = 0xaa
    expect(last[199]).toBe(0xaa)
    // Truncated and oversized inputs fail as bytes() fails.
    const r = new Reader(Uint8Array.of(5, 1, 2))
    r.u8()
    expect(() => r.view(3)).toThrow(/TRUNCATED|wanted 3/)
    expect(() => decode(bytesView(300), Uint8Array.of(3, 1, 2))).toThrow(DecodeError)
    expect(() => decode(bytesView(2), Uint8Array.of(3, 1, 2, 3))).toThrow(/OVERSIZED|above its maximum/)
  })
})

describe('Reader.consumed', () => {
  it('views bytes already read, and nothing beyond them', () => {
    const r = new Reader(Uint8Array.of(1, 2, 3, 4, 5))
    r.u8()
    r.take(2)
    expect([...r.consumed(1, 3)]).toEqual([2, 3])
    expect(r.consumed(0, 0)).toHaveLength(0)
    expect(() => r.consumed(2, 4)).toThrow(RangeError)
    expect(() => r.consumed(2, 1)).toThrow(RangeError)
    expect(() => r.consumed(-1, 2)).toThrow(RangeError)
  })
})

describe('hex', () => {
  // Two characters per byte from the byte's own digits: the reference toHex is checked against.
  const reference = (b: Uint8Array) => Array.from(b, (x) => (x < 16 ? '0' : '') + x.toString(16)).join('')

  it('toHex is lower-case, two digits a byte, at every length (past its 4,096-byte chunks too) and round-trips', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(toHex(b)).toBe(reference(b))
        expect(fromHex(toHex(b))).toEqual(b)
      }),
    )
    for (const n of [0, 1, 4095, 4096, 4097, 8192, 10_000]) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff)
      expect(toHex(b)).toBe(reference(b))
    }
    // A view into a larger buffer hexes only its own bytes.
    const big = Uint8Array.from({ length: 64 }, (_, i) => i)
    expect(toHex(big.subarray(10, 13))).toBe('0a0b0c')
    // Calls in a row do not leak characters from a longer earlier one.
    expect(toHex(new Uint8Array(40).fill(0xff))).toBe('ff'.repeat(40))
    expect(toHex(Uint8Array.of(1))).toBe('01')
  })

  it('toHexRange hexes exactly the range, across chunk boundaries, and refuses one outside the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (b, x, y) => {
        const start = x % (b.length + 1)
        const end = start + (y % (b.length - start + 1))
        expect(toHexRange(b, start, end)).toBe(reference(b.slice(start, end)))
      }),
    )
    const long = Uint8Array.from({ length: 9000 }, (_, i) => (i * 31) & 0xff)
    expect(toHexRange(long, 3, 8999)).toBe(reference(long.slice(3, 8999)))
    expect(toHexRange(long, 4096, 4096)).toBe('')
    for (const [s, e] of [
      [-1, 2],
      [2, 1],
      [0, 9001],
    ] as const) {
      expect(() => toHexRange(long, s, e)).toThrow(RangeError)
    }
  })
})
