/**
 * Hex and byte helpers shared by every package. Hex strings are lower-case with a `0x` prefix
 * on output; input accepts either case, with or without the prefix.
 */
import { DecodeError } from '../errors.js'

/** The two character codes of each byte's lower-case hex, at 2b and 2b + 1. */
const HEX_CODES = new Uint16Array(512)
for (let i = 0; i < 256; i++) {
  const h = i.toString(16).padStart(2, '0')
  HEX_CODES[2 * i] = h.charCodeAt(0)
  HEX_CODES[2 * i + 1] = h.charCodeAt(1)
}
/** Bytes per `String.fromCharCode` call: 8,192 arguments, far under every engine's limit. */
const HEX_CHUNK = 4096
/** Character codes of the string being built (reused: `toHex` never re-enters itself). */
const codes: number[] = []

/**
 * Bytes to lower-case hex without a prefix. It runs for every map key and address a transaction
 * touches: the string is made in one step from its character codes, where appending two
 * characters per byte made a chain of intermediate strings to flatten (~6x slower).
 */
export function toHex(b: Uint8Array): string {
  return toHexRange(b, 0, b.length)
}

/**
 * {@link toHex} of `b[start..end)`. Use it instead of `toHex(b.subarray(start, end))`: a subarray
 * of a small array that lives inside V8's heap (64 bytes or fewer, e.g. a decoded address or a
 * fresh hash) moves that array out of the heap — a malloc and a buffer record for the GC to sweep,
 * ~1 µs against ~0.2 µs for the conversion itself.
 */
export function toHexRange(b: Uint8Array, start: number, end: number): string {
  if (!(0 <= start && start <= end && end <= b.length)) throw new RangeError(`hex range ${start}..${end} is outside ${b.length} bytes`)
  const n = end - start
  if (n > HEX_CHUNK) {
    let s = ''
    for (let i = start; i < end; i += HEX_CHUNK) s += toHexRange(b, i, Math.min(end, i + HEX_CHUNK))
    return s
  }
  codes.length = 2 * n
  for (let i = start, j = 0; j < 2 * n; i++, j += 2) {
    const x = (b[i] as number) << 1
    codes[j] = HEX_CODES[x] as number
    codes[j + 1] = HEX_CODES[x + 1] as number
  }
  return String.fromCharCode.apply(null, codes)
}

/** Bytes to `0x`-prefixed lower-case hex. */
export function to0x(b: Uint8Array): string {
  return `0x${toHex(b)}`
}

/** Value of each hex digit by char code; -1 for anything else. */
const DIGIT = new Int8Array(128).fill(-1)
for (let i = 0; i < 16; i++) {
  DIGIT[i.toString(16).charCodeAt(0)] = i
  DIGIT[i.toString(16).toUpperCase().charCodeAt(0)] = i
}

/** Hex (optionally `0x`-prefixed) to bytes; throws {@link DecodeError} on odd length or bad digits. */
export function fromHex(s: string): Uint8Array {
  const start = s.charCodeAt(0) === 48 && (s.charCodeAt(1) | 32) === 120 ? 2 : 0
  if ((s.length - start) % 2 !== 0) throw notHex(s)
  const out = new Uint8Array((s.length - start) / 2)
  if (!hexInto(s, start, out, 0, out.length)) throw notHex(s)
  return out
}

/**
 * Parses `count` bytes of hex from `s` at `start` into `out` at `offset`; false on a bad digit.
 * Allocation-free (no closure either: this runs for every address a transaction touches).
 */
export function hexInto(s: string, start: number, out: Uint8Array, offset: number, count: number): boolean {
  for (let i = 0, j = start; i < count; i++, j += 2) {
    const hi = DIGIT[s.charCodeAt(j)] ?? -1
    const lo = DIGIT[s.charCodeAt(j + 1)] ?? -1
    if (hi < 0 || lo < 0) return false
    out[offset + i] = (hi << 4) | lo
  }
  return true
}

function notHex(s: string): DecodeError {
  return new DecodeError('INVALID_VALUE', `not a hex string: ${JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s)}`)
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Lexicographic byte order: negative, zero or positive like `Array.prototype.sort` wants. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** Concatenates byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s)
}
