/**
 * "Binary strings": bytes held as a JavaScript string with one code unit (0..255) per byte.
 *
 * The state tree keeps every 32-byte hash and path this way. A short string costs a ~16-byte
 * header plus its bytes, while a `Uint8Array(32)` costs ~230 bytes of heap (a typed-array object and
 * a buffer object besides the bytes) — at 10^6 keys and ~2.4·10^6 nodes that is the difference
 * between ~0.5 GB and ~1.2 GB resident, and far less work for the garbage collector. Strings also
 * compare, sort and key a `Map` natively, in unsigned byte order.
 */

/** Bytes as a binary string. */
export function bytesToBinaryString(b: Uint8Array): string {
  // apply() takes at most ~64k arguments on some engines; chunk so long inputs still work.
  const CHUNK = 0x2000
  if (b.length <= CHUNK) return String.fromCharCode.apply(null, b as unknown as number[])
  let s = ''
  for (let i = 0; i < b.length; i += CHUNK) s += String.fromCharCode.apply(null, b.subarray(i, i + CHUNK) as unknown as number[])
  return s
}

/** Inverse of {@link bytesToBinaryString}. */
export function binaryStringToBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i)
  return out
}

/** Writes the binary string `s` into `out` at `offset`. */
export function writeBinaryString(out: Uint8Array, offset: number, s: string): void {
  for (let i = 0; i < s.length; i++) out[offset + i] = s.charCodeAt(i)
}

/**
 * A 32-byte hash as a binary string with one `fromCharCode` call: faster than the generic path for
 * the tree's hottest conversion, and it accepts any `Uint8Array` subclass (e.g. a Node `Buffer`).
 */
export function hash32ToBinaryString(h: Uint8Array): string {
  if (h.length !== 32) return bytesToBinaryString(h)
  const at = (i: number) => h[i] as number
  return String.fromCharCode(
    at(0),
    at(1),
    at(2),
    at(3),
    at(4),
    at(5),
    at(6),
    at(7),
    at(8),
    at(9),
    at(10),
    at(11),
    at(12),
    at(13),
    at(14),
    at(15),
    at(16),
    at(17),
    at(18),
    at(19),
    at(20),
    at(21),
    at(22),
    at(23),
    at(24),
    at(25),
    at(26),
    at(27),
    at(28),
    at(29),
    at(30),
    at(31),
  )
}
