/**
 * Canonical binary encoding. Every hashed or signed structure in loopchain is described by a
 * {@link Codec} built from the combinators below, and each value has exactly one encoding:
 *
 * - integers are fixed-width big-endian, or minimal LEB128 (`uvarint`), or minimal big-endian
 *   magnitudes behind a one-byte length (`bigUint`);
 * - byte strings, strings and lists carry a `uvarint` length and a per-field maximum;
 * - structs are their fields in declaration order, with no tags and no padding;
 * - optional values and unions carry one tag byte.
 *
 * Decoding is strict: a non-minimal varint, a leading zero in a big integer, a boolean other
 * than 0 or 1, invalid UTF-8, an unknown tag, a length above the field's maximum or beyond the
 * input, and trailing bytes all throw {@link DecodeError}. A length prefix is checked against the
 * remaining input before anything is allocated, so hostile input cannot make the decoder allocate
 * more than the input's own size.
 */
import { DecodeError, EncodeError } from '../errors.js'
import { fastSha256 } from '../state/sha256.js'
import { fromHex, hexInto, toHex, toHexRange } from './hex.js'

/** Growable output buffer used by encoders. */
export class Writer {
  private buf: Uint8Array
  private len = 0

  constructor(initialSize = 256) {
    this.buf = new Uint8Array(initialSize)
  }

  private reserve(n: number): void {
    const need = this.len + n
    if (need <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < need) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.len))
    this.buf = next
  }

  /** Appends one byte. */
  u8(v: number): void {
    this.reserve(1)
    this.buf[this.len++] = v
  }

  /** Appends raw bytes. */
  raw(b: Uint8Array): void {
    this.reserve(b.length)
    this.buf.set(b, this.len)
    this.len += b.length
  }

  /**
   * Appends the byte `first`, then the `n` bytes that `s` spells in hex from character `from`
   * (either case), without an intermediate array. Returns false, having appended nothing, when
   * those characters are not hex digits.
   */
  prefixedHex(first: number, s: string, from: number, n: number): boolean {
    this.reserve(1 + n)
    if (!hexInto(s, from, this.buf, this.len + 1, n)) return false
    this.buf[this.len] = first
    this.len += 1 + n
    return true
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len)
  }

  /** The bytes written so far, as a view valid until the next write or reset. */
  view(): Uint8Array {
    return this.buf.subarray(0, this.len)
  }

  /** Bytes the writer can hold before it grows. */
  get capacity(): number {
    return this.buf.length
  }

  /** Forgets what was written, keeping the buffer. */
  reset(): void {
    this.len = 0
  }
}

/**
 * A writer kept between {@link encode} calls: a fresh one costs a 256-byte buffer outside the
 * JavaScript heap per call, and encoding runs several times per transaction. A call that finds it
 * taken (an encoder that encodes inside) makes its own. Buffers above the cap are not kept.
 */
let spareWriter: Writer | undefined = new Writer(4096)
const SPARE_WRITER_MAX = 1 << 20

/** Cursor over input bytes used by decoders; every read is bounds-checked. */
export class Reader {
  private pos = 0
  private readonly bytes: Uint8Array

  constructor(bytes: Uint8Array) {
    // A plain view of a subclass such as Node's Buffer, so `take` can copy with `slice` (on a
    // Buffer, `slice` aliases the input; on a plain Uint8Array it copies).
    this.bytes = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  /** Bytes not yet consumed. */
  get remaining(): number {
    return this.bytes.length - this.pos
  }

  /** Current offset, for error messages. */
  get offset(): number {
    return this.pos
  }

  /** Reads one byte. */
  u8(): number {
    if (this.pos >= this.bytes.length) throw truncated(this.pos, 1, 0)
    return this.bytes[this.pos++] as number
  }

  /**
   * A view of input bytes already read, from offset `start` to `end`: for hashing what was just
   * decoded. It aliases the input, so it must not be kept or changed.
   */
  consumed(start: number, end: number): Uint8Array {
    if (!(0 <= start && start <= end && end <= this.pos))
      throw new RangeError(`consumed(${start}, ${end}) is outside the ${this.pos} bytes read`)
    return this.bytes.subarray(start, end)
  }

  /**
   * Reads `n` bytes as a fresh copy (the result never aliases the input). Zero bytes are one shared
   * empty array: nothing in it can change, and a transfer's empty payload then allocates nothing
   * that a pooled transaction would keep alive.
   */
  take(n: number): Uint8Array {
    if (n > this.remaining) throw truncated(this.pos, n, this.remaining)
    if (n === 0) return NO_BYTES
    // A fresh plain Uint8Array (the input is a plain one, see the constructor): callers keep these bytes.
    const out = this.bytes.slice(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  /**
   * A view of the bytes not yet consumed, without consuming them: for a caller that finds where a
   * value ends by itself and then {@link skip}s it. It aliases the input, so it must not be kept
   * or changed.
   */
  rest(): Uint8Array {
    return this.bytes.subarray(this.pos)
  }

  /** Consumes `n` bytes without reading them. */
  skip(n: number): void {
    if (n > this.remaining) throw truncated(this.pos, n, this.remaining)
    this.pos += n
  }

  /** Reads `n` bytes as lower-case hex, straight from the input (no copy of the bytes). */
  hex(n: number): string {
    if (n > this.remaining) throw truncated(this.pos, n, this.remaining)
    const s = toHexRange(this.bytes, this.pos, this.pos + n)
    this.pos += n
    return s
  }

  /**
   * Reads `n` bytes as a view that aliases the input (no copy). For bytes that are decoded again at
   * once and then dropped, such as the transactions of a gossiped batch: a copy of each would be a
   * fresh buffer outside V8's heap (above 64 bytes), a malloc and a record for the GC to sweep.
   * The view keeps the whole input alive while it lives, and changes with it.
   */
  view(n: number): Uint8Array {
    if (n > this.remaining) throw truncated(this.pos, n, this.remaining)
    const out = this.bytes.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }
}

const NO_BYTES = new Uint8Array(0)

function truncated(offset: number, wanted: number, remaining: number): DecodeError {
  return new DecodeError('TRUNCATED', `input ends at offset ${offset}: wanted ${wanted} byte(s), ${remaining} left`, {
    details: { offset, wanted, remaining },
  })
}

/** A canonical encoder/decoder pair for values of type `T`. */
export interface Codec<T> {
  /** A short type name used in error messages. */
  readonly name: string
  /** The fewest bytes any encoded value occupies; guards list allocation. */
  readonly minSize: number
  /** Appends the encoding of `value`. Throws {@link EncodeError} on out-of-range values. */
  write(w: Writer, value: T): void
  /** Reads one value. Throws {@link DecodeError} on non-canonical or malformed input. */
  read(r: Reader): T
}

/** The value type a codec encodes. */
export type Infer<C> = C extends Codec<infer T> ? T : never

/** Runs `f` with the kept writer (or a fresh one when it is taken), then keeps it, emptied. */
function withWriter<R>(f: (w: Writer) => R): R {
  const w = spareWriter ?? new Writer()
  spareWriter = undefined
  try {
    return f(w)
  } finally {
    if (w.capacity <= SPARE_WRITER_MAX) {
      w.reset()
      spareWriter = w
    }
  }
}

/** Encodes `value` with `codec` into its canonical bytes. */
export function encode<T>(codec: Codec<T>, value: T): Uint8Array {
  return withWriter((w) => {
    codec.write(w, value)
    return w.finish()
  })
}

/**
 * `taggedHash(tag, encode(codec, value))` without the two intermediate copies: the tag and the
 * encoding are written into the kept writer and hashed in place.
 */
export function hashEncoded<T>(tag: number, codec: Codec<T>, value: T): Uint8Array {
  return withWriter((w) => {
    w.u8(tag)
    codec.write(w, value)
    return fastSha256(w.view())
  })
}

/** Decodes exactly one value from `bytes`; trailing bytes are an error. */
export function decode<T>(codec: Codec<T>, bytes: Uint8Array): T {
  const r = new Reader(bytes)
  const value = codec.read(r)
  if (r.remaining !== 0) {
    throw new DecodeError('TRAILING_BYTES', `${r.remaining} trailing byte(s) after ${codec.name}`, {
      details: { offset: r.offset, remaining: r.remaining },
    })
  }
  return value
}

// ---------------------------------------------------------------------------------------------
// Integers

function fixedUint(bytes: 1 | 2 | 4): Codec<number> {
  const max = 2 ** (8 * bytes) - 1
  const name = `u${8 * bytes}`
  return {
    name,
    minSize: bytes,
    write(w, v) {
      if (!Number.isInteger(v) || v < 0 || v > max) throw new EncodeError('OUT_OF_RANGE', `${name} out of range: ${v}`)
      for (let i = bytes - 1; i >= 0; i--) w.u8(Math.floor(v / 2 ** (8 * i)) & 0xff)
    },
    read(r) {
      let v = 0
      for (let i = 0; i < bytes; i++) v = v * 256 + r.u8()
      return v
    },
  }
}

/** Unsigned 8-bit integer. */
export const u8: Codec<number> = fixedUint(1)
/** Unsigned 16-bit big-endian integer. */
export const u16: Codec<number> = fixedUint(2)
/** Unsigned 32-bit big-endian integer. */
export const u32: Codec<number> = fixedUint(4)

/** Largest value a {@link uvarint} carries: JavaScript's largest exact integer. */
export const MAX_UVARINT = Number.MAX_SAFE_INTEGER

/**
 * Unsigned LEB128 integer up to 2^53-1 (heights, rounds, timestamps in microseconds, lengths).
 * Minimal form only: the last byte of a multi-byte encoding is never zero.
 */
export const uvarint: Codec<number> = {
  name: 'uvarint',
  minSize: 1,
  write(w, v) {
    if (!Number.isSafeInteger(v) || v < 0) throw new EncodeError('OUT_OF_RANGE', `uvarint out of range: ${v}`)
    let x = v
    while (x >= 0x80) {
      w.u8((x % 0x80) | 0x80)
      x = Math.floor(x / 0x80)
    }
    w.u8(x)
  },
  read(r) {
    const start = r.offset
    let v = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = r.u8()
      v += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) {
          throw new DecodeError('NON_CANONICAL', `uvarint at offset ${start} has a redundant zero byte`, {
            details: { offset: start },
          })
        }
        if (v > MAX_UVARINT) {
          throw new DecodeError('OVERSIZED', `uvarint at offset ${start} exceeds 2^53-1`, { details: { offset: start } })
        }
        return v
      }
      scale *= 0x80
    }
    throw new DecodeError('OVERSIZED', `uvarint at offset ${start} is longer than 8 bytes`, { details: { offset: start } })
  },
}

/**
 * Unsigned big integer as a one-byte length and a minimal big-endian magnitude (zero is the empty
 * magnitude). Used for token amounts.
 */
export function bigUint(maxBytes = 32): Codec<bigint> {
  const name = `bigUint${maxBytes * 8}`
  const limit = 1n << BigInt(8 * maxBytes)
  return {
    name,
    minSize: 1,
    write(w, v) {
      if (typeof v !== 'bigint' || v < 0n || v >= limit) throw new EncodeError('OUT_OF_RANGE', `${name} out of range`)
      const mag = bigintToBytes(v)
      w.u8(mag.length)
      w.raw(mag)
    },
    read(r) {
      const start = r.offset
      const n = r.u8()
      if (n > maxBytes) {
        throw new DecodeError('OVERSIZED', `${name} at offset ${start} has ${n} bytes, more than ${maxBytes}`, {
          details: { offset: start, length: n, max: maxBytes },
        })
      }
      const mag = r.take(n)
      if (n > 0 && mag[0] === 0) {
        throw new DecodeError('NON_CANONICAL', `${name} at offset ${start} has a leading zero byte`, {
          details: { offset: start },
        })
      }
      return bytesToBigint(mag)
    },
  }
}

/** The largest bigint that converts to a number exactly. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** Minimal big-endian bytes of a non-negative bigint (empty for zero). */
export function bigintToBytes(v: bigint): Uint8Array {
  if (v < 0n) throw new RangeError('bigintToBytes takes a non-negative bigint')
  if (v <= MAX_SAFE) {
    // Most amounts, nonces and fees: number arithmetic, no intermediate string.
    let n = Number(v)
    let len = 0
    for (let x = n; x > 0; x = Math.floor(x / 256)) len++
    const out = new Uint8Array(len)
    for (let i = len - 1; i >= 0; i--) {
      out[i] = n % 256
      n = Math.floor(n / 256)
    }
    return out
  }
  const hex = v.toString(16)
  return fromHex(hex.length % 2 ? `0${hex}` : hex)
}

/** Big-endian bytes to a non-negative bigint. */
export function bytesToBigint(b: Uint8Array): bigint {
  if (b.length <= 6) {
    // Fits a number exactly (48 bits): one bigint made, not one per byte.
    let n = 0
    for (let i = 0; i < b.length; i++) n = n * 256 + (b[i] as number)
    return BigInt(n)
  }
  return BigInt(`0x${toHex(b)}`)
}

/** A boolean as one byte, 0 or 1. */
export const bool: Codec<boolean> = {
  name: 'bool',
  minSize: 1,
  write(w, v) {
    w.u8(v ? 1 : 0)
  },
  read(r) {
    const start = r.offset
    const b = r.u8()
    if (b > 1) throw new DecodeError('NON_CANONICAL', `bool at offset ${start} is ${b}, not 0 or 1`, { details: { offset: start } })
    return b === 1
  },
}

// ---------------------------------------------------------------------------------------------
// Byte strings and text

/** Exactly `n` bytes, no length prefix (hashes, keys, signatures). */
export function fixedBytes(n: number): Codec<Uint8Array> {
  const name = `bytes${n}`
  return {
    name,
    minSize: n,
    write(w, v) {
      if (!(v instanceof Uint8Array) || v.length !== n) {
        throw new EncodeError('INVALID_VALUE', `${name} needs exactly ${n} bytes, got ${v instanceof Uint8Array ? v.length : typeof v}`)
      }
      w.raw(v)
    },
    read(r) {
      return r.take(n)
    },
  }
}

function readLength(r: Reader, name: string, max: number, unit: number): number {
  const start = r.offset
  const n = uvarint.read(r)
  if (n > max) {
    throw new DecodeError('OVERSIZED', `${name} at offset ${start} declares length ${n}, above its maximum ${max}`, {
      details: { offset: start, length: n, max },
    })
  }
  if (n * unit > r.remaining) throw truncated(r.offset, n * unit, r.remaining)
  return n
}

/** A byte string of at most `max` bytes behind a uvarint length. */
export function bytes(max: number): Codec<Uint8Array> {
  const name = `bytes(<=${max})`
  return {
    name,
    minSize: 1,
    write(w, v) {
      if (!(v instanceof Uint8Array)) throw new EncodeError('INVALID_VALUE', `${name} needs a Uint8Array`)
      if (v.length > max) throw new EncodeError('OVERSIZED', `${name} got ${v.length} bytes`)
      uvarint.write(w, v.length)
      w.raw(v)
    },
    read(r) {
      return r.take(readLength(r, name, max, 1))
    },
  }
}

/**
 * {@link bytes} on the wire, decoded as views that alias the input ({@link Reader.view}) instead of
 * copies: for a container whose items are decoded again and dropped before the input could change.
 */
export function bytesView(max: number): Codec<Uint8Array> {
  const inner = bytes(max)
  return {
    name: inner.name,
    minSize: inner.minSize,
    write: inner.write,
    read(r) {
      return r.view(readLength(r, inner.name, max, 1))
    },
  }
}

const textEncoder = new TextEncoder()

/** True when `s` holds a UTF-16 surrogate without its pair (it has no UTF-8 encoding). */
/**
 * `s` as text a {@link string} codec of `maxBytes` takes whatever it holds: a lone surrogate
 * becomes U+FFFD, and the text is cut to at most `maxBytes` of UTF-8 on a character boundary.
 * Deterministic (no platform API whose output could differ): receipts carry such text, and a
 * receipt that could not be encoded would halt every node on a committed block.
 */
export function encodableText(s: string, maxBytes: number): string {
  let out = ''
  let bytes = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    let ch: string
    let n: number
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      ch = s.slice(i, i + 2)
      n = 4
      i++
    } else if (c >= 0xd800 && c <= 0xdfff) {
      ch = '\ufffd'
      n = 3
    } else {
      ch = s[i] as string
      n = c < 0x80 ? 1 : c < 0x800 ? 2 : 3
    }
    if (bytes + n > maxBytes) break
    out += ch
    bytes += n
  }
  return out
}

export function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1)
      if (!(d >= 0xdc00 && d <= 0xdfff)) return true
      i++
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true
    }
  }
  return false
}
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** A UTF-8 string of at most `maxBytes` encoded bytes. Invalid UTF-8 does not decode. */
export function string(maxBytes: number): Codec<string> {
  const name = `string(<=${maxBytes})`
  return {
    name,
    minSize: 1,
    write(w, v) {
      if (typeof v !== 'string') throw new EncodeError('INVALID_VALUE', `${name} needs a string`)
      if (hasLoneSurrogate(v)) throw new EncodeError('INVALID_VALUE', `${name} has a lone surrogate`)
      const b = textEncoder.encode(v)
      if (b.length > maxBytes) throw new EncodeError('OVERSIZED', `${name} got ${b.length} bytes`)
      uvarint.write(w, b.length)
      w.raw(b)
    },
    read(r) {
      const start = r.offset
      const b = r.take(readLength(r, name, maxBytes, 1))
      try {
        return textDecoder.decode(b)
      } catch (cause) {
        throw new DecodeError('INVALID_VALUE', `${name} at offset ${start} is not valid UTF-8`, { details: { offset: start }, cause })
      }
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Composites

/** A list of at most `maxItems` items behind a uvarint count. */
export function list<T>(item: Codec<T>, maxItems: number): Codec<T[]> {
  const name = `list<${item.name}>(<=${maxItems})`
  return {
    name,
    minSize: 1,
    write(w, v) {
      if (!Array.isArray(v)) throw new EncodeError('INVALID_VALUE', `${name} needs an array`)
      if (v.length > maxItems) throw new EncodeError('OVERSIZED', `${name} got ${v.length} items`)
      uvarint.write(w, v.length)
      for (const x of v) item.write(w, x)
    },
    read(r) {
      const n = readLength(r, name, maxItems, Math.max(1, item.minSize))
      const out: T[] = new Array(n)
      for (let i = 0; i < n; i++) out[i] = item.read(r)
      return out
    },
  }
}

/** An optional value: tag 0 for absent (`undefined`), tag 1 and the value for present. */
export function option<T>(inner: Codec<T>): Codec<T | undefined> {
  const name = `option<${inner.name}>`
  return {
    name,
    minSize: 1,
    write(w, v) {
      if (v === undefined) {
        w.u8(0)
      } else {
        w.u8(1)
        inner.write(w, v)
      }
    },
    read(r) {
      const start = r.offset
      const tag = r.u8()
      if (tag === 0) return undefined
      if (tag === 1) return inner.read(r)
      throw new DecodeError('INVALID_TAG', `${name} at offset ${start} has tag ${tag}`, { details: { offset: start, tag } })
    },
  }
}

/** Field codecs of a struct, in encoding order. */
export type Fields = Record<string, Codec<any>>

/** The object type a struct of `F` encodes. */
export type StructOf<F extends Fields> = { [K in keyof F]: Infer<F[K]> }

/** A struct: its fields' encodings concatenated in declaration order. */
export function struct<F extends Fields>(name: string, fields: F): Codec<StructOf<F>> & { readonly fields: F } {
  const entries = Object.entries(fields)
  const minSize = entries.reduce((s, [, c]) => s + c.minSize, 0)
  return {
    name,
    fields,
    minSize,
    write(w, v) {
      if (typeof v !== 'object' || v === null) throw new EncodeError('INVALID_VALUE', `${name} needs an object`)
      for (const [k, c] of entries) {
        try {
          c.write(w, (v as Record<string, unknown>)[k])
        } catch (e) {
          if (e instanceof EncodeError) throw new EncodeError(e.code, `${name}.${k}: ${e.message}`)
          throw e
        }
      }
    },
    read(r) {
      const out: Record<string, unknown> = {}
      for (const [k, c] of entries) out[k] = c.read(r)
      return out as StructOf<F>
    },
  }
}

/** Two values of one codec, one after the other (e.g. one per party of a channel). */
export function pairOf<T>(name: string, c: Codec<T>): Codec<readonly [T, T]> {
  return {
    name,
    minSize: 2 * c.minSize,
    write(w, v) {
      c.write(w, v[0])
      c.write(w, v[1])
    },
    read(r) {
      return [c.read(r), c.read(r)] as const
    },
  }
}

/** One of a fixed set of small integers (an enum), as one byte. */
export function enumeration<const V extends readonly number[]>(name: string, values: V): Codec<V[number]> {
  const allowed = new Set<number>(values)
  return {
    name,
    minSize: 1,
    write(w, v) {
      if (!allowed.has(v)) throw new EncodeError('INVALID_VALUE', `${name} has no member ${v}`)
      w.u8(v)
    },
    read(r) {
      const start = r.offset
      const v = r.u8()
      if (!allowed.has(v))
        throw new DecodeError('INVALID_TAG', `${name} at offset ${start} has no member ${v}`, { details: { offset: start, tag: v } })
      return v as V[number]
    },
  }
}

/** Maps a codec's value through a pair of conversions (e.g. bytes ⇄ Address). */
export function mapped<A, B>(inner: Codec<A>, name: string, to: (a: A) => B, from: (b: B) => A): Codec<B> {
  return {
    name,
    minSize: inner.minSize,
    write(w, v) {
      inner.write(w, from(v))
    },
    read(r) {
      return to(inner.read(r))
    },
  }
}
