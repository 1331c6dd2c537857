/**
 * A canonical self-describing value: what contract parameters, return values and event data are
 * made of. It has no floating point (amounts are bigints), map keys are strings sorted by their
 * UTF-8 bytes with no duplicates, and nesting is bounded, so every value has one encoding and
 * decoding cannot exhaust the stack.
 */
import { DecodeError, EncodeError } from '../errors.js'
import { bigUint, bytes, type Codec, type Reader, string, uvarint, type Writer } from './codec.js'
import { compareBytes } from './hex.js'

/** A canonical value. */
export type Value = null | boolean | bigint | string | Uint8Array | Value[] | { [key: string]: Value }

/** Deepest nesting of lists and maps a {@link Value} may have. */
export const MAX_VALUE_DEPTH = 32
/** Longest string or byte string inside a value: 1 MiB, the largest transaction payload. */
const MAX_VALUE_BYTES = 1 << 20
/** Most items in one list or map: bounded by the payload size anyway; stated for the length check. */
const MAX_VALUE_ITEMS = 1 << 20

enum Tag {
  Null = 0,
  False = 1,
  True = 2,
  PosInt = 3,
  NegInt = 4,
  Bytes = 5,
  String = 6,
  List = 7,
  Map = 8,
}

const magnitude = bigUint(32)
const byteString = bytes(MAX_VALUE_BYTES)
const text = string(MAX_VALUE_BYTES)
const keyEncoder = new TextEncoder()

function writeValue(w: Writer, v: Value, depth: number): void {
  if (depth > MAX_VALUE_DEPTH) throw new EncodeError('OVERSIZED', `value nested deeper than ${MAX_VALUE_DEPTH}`)
  if (v === null) {
    w.u8(Tag.Null)
  } else if (typeof v === 'boolean') {
    w.u8(v ? Tag.True : Tag.False)
  } else if (typeof v === 'bigint') {
    // Negative integers store |v| - 1 so that no value has two encodings (no negative zero).
    w.u8(v >= 0n ? Tag.PosInt : Tag.NegInt)
    magnitude.write(w, v >= 0n ? v : -v - 1n)
  } else if (typeof v === 'string') {
    w.u8(Tag.String)
    text.write(w, v)
  } else if (v instanceof Uint8Array) {
    w.u8(Tag.Bytes)
    byteString.write(w, v)
  } else if (Array.isArray(v)) {
    w.u8(Tag.List)
    uvarint.write(w, v.length)
    for (const x of v) writeValue(w, x, depth + 1)
  } else if (typeof v === 'object') {
    const keys = Object.keys(v)
      .map((k) => [k, keyEncoder.encode(k)] as const)
      .sort((a, b) => compareBytes(a[1], b[1]))
    w.u8(Tag.Map)
    uvarint.write(w, keys.length)
    for (const [k] of keys) {
      text.write(w, k)
      writeValue(w, (v as Record<string, Value>)[k] as Value, depth + 1)
    }
  } else {
    throw new EncodeError('INVALID_VALUE', `a Value cannot hold a ${typeof v} (use bigint for numbers)`)
  }
}

function readCount(r: Reader): number {
  const start = r.offset
  const n = uvarint.read(r)
  // Every item takes at least one byte, so a count above the remaining input is a lie.
  if (n > MAX_VALUE_ITEMS || n > r.remaining) {
    throw new DecodeError('OVERSIZED', `value container at offset ${start} declares ${n} items`, { details: { offset: start, count: n } })
  }
  return n
}

function readValue(r: Reader, depth: number): Value {
  const start = r.offset
  if (depth > MAX_VALUE_DEPTH) {
    throw new DecodeError('OVERSIZED', `value at offset ${start} nested deeper than ${MAX_VALUE_DEPTH}`, { details: { offset: start } })
  }
  const tag = r.u8()
  switch (tag) {
    case Tag.Null:
      return null
    case Tag.False:
      return false
    case Tag.True:
      return true
    case Tag.PosInt:
      return magnitude.read(r)
    case Tag.NegInt:
      return -magnitude.read(r) - 1n
    case Tag.Bytes:
      return byteString.read(r)
    case Tag.String:
      return text.read(r)
    case Tag.List: {
      const n = readCount(r)
      const out: Value[] = new Array(n)
      for (let i = 0; i < n; i++) out[i] = readValue(r, depth + 1)
      return out
    }
    case Tag.Map: {
      const n = readCount(r)
      const out: Record<string, Value> = Object.create(null)
      let prev: Uint8Array | undefined
      for (let i = 0; i < n; i++) {
        const keyAt = r.offset
        const k = text.read(r)
        const kb = keyEncoder.encode(k)
        if (prev !== undefined && compareBytes(prev, kb) >= 0) {
          throw new DecodeError('NON_CANONICAL', `map key at offset ${keyAt} is out of order or repeated`, { details: { offset: keyAt } })
        }
        prev = kb
        out[k] = readValue(r, depth + 1)
      }
      return out
    }
    default:
      throw new DecodeError('INVALID_TAG', `value at offset ${start} has unknown tag ${tag}`, { details: { offset: start, tag } })
  }
}

/** Codec of {@link Value}. Decoded maps have a null prototype, so no key can shadow `Object.prototype`. */
export const value: Codec<Value> = {
  name: 'value',
  minSize: 1,
  write(w, v) {
    writeValue(w, v, 0)
  },
  read(r) {
    return readValue(r, 0)
  },
}
