/**
 * SHA-256 (FIPS 180-4) tuned for the state tree's workload: millions of hashes of 32- to 65-byte
 * inputs per block. A general-purpose implementation pays per call for a hasher object, its block
 * buffer and a `DataView` over it (which makes V8 move a small on-heap typed array off-heap); here
 * the message schedule, state and padding block are allocated once and reused, and full blocks are
 * read straight from the input, so one call allocates only its 32-byte result. Measured on the
 * tree's 65-byte preimages it is several times faster than `@noble/hashes` (see the file comment of
 * `state-tree.ts`); a test checks it against `@noble/hashes` on every length up to 300 bytes.
 */

import { binaryStringToBytes } from './binary.js'

/** Round constants: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
  0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
  0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
  0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
  0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
  0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
])
/** Initial hash value: the first 32 bits of the fractional parts of the square roots of the first 8 primes. */
const IV = Int32Array.from([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])

// Scratch reused by every call: the function is synchronous and never re-entered.
const W = new Int32Array(64)
const S = new Int32Array(8)
/** Padding block(s) for the input's tail: at most two blocks. */
const TAIL = new Uint8Array(128)

function compress(src: Uint8Array, o: number): void {
  for (let i = 0; i < 16; i++, o += 4) {
    W[i] = ((src[o] as number) << 24) | ((src[o + 1] as number) << 16) | ((src[o + 2] as number) << 8) | (src[o + 3] as number)
  }
  for (let i = 16; i < 64; i++) {
    const w15 = W[i - 15] as number
    const w2 = W[i - 2] as number
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3)
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10)
    W[i] = (s1 + (W[i - 7] as number) + s0 + (W[i - 16] as number)) | 0
  }
  let a = S[0] as number
  let b = S[1] as number
  let c = S[2] as number
  let d = S[3] as number
  let e = S[4] as number
  let f = S[5] as number
  let g = S[6] as number
  let h = S[7] as number
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const ch = (e & f) ^ (~e & g)
    const t1 = (h + S1 + ch + (K[i] as number) + (W[i] as number)) | 0
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const maj = (a & b) ^ (a & c) ^ (b & c)
    const t2 = (S0 + maj) | 0
    h = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  S[0] = ((S[0] as number) + a) | 0
  S[1] = ((S[1] as number) + b) | 0
  S[2] = ((S[2] as number) + c) | 0
  S[3] = ((S[3] as number) + d) | 0
  S[4] = ((S[4] as number) + e) | 0
  S[5] = ((S[5] as number) + f) | 0
  S[6] = ((S[6] as number) + g) | 0
  S[7] = ((S[7] as number) + h) | 0
}

/** Runs SHA-256 over `data`, leaving the digest in `S`. */
function digest(data: Uint8Array): void {
  S.set(IV)
  const len = data.length
  const full = len & ~63
  for (let o = 0; o < full; o += 64) compress(data, o)
  const rest = len - full
  TAIL.fill(0)
  for (let i = 0; i < rest; i++) TAIL[i] = data[full + i] as number
  TAIL[rest] = 0x80
  const blocks = rest < 56 ? 1 : 2
  const end = blocks * 64
  // Message length in bits, big-endian 64-bit; lengths stay below 2^53 bits in practice.
  const hi = Math.floor(len / 0x20000000)
  const lo = (len << 3) >>> 0
  TAIL[end - 8] = hi >>> 24
  TAIL[end - 7] = hi >>> 16
  TAIL[end - 6] = hi >>> 8
  TAIL[end - 5] = hi
  TAIL[end - 4] = lo >>> 24
  TAIL[end - 3] = lo >>> 16
  TAIL[end - 2] = lo >>> 8
  TAIL[end - 1] = lo
  compress(TAIL, 0)
  if (blocks === 2) compress(TAIL, 64)
}

/**
 * A SHA-256 that returns the digest as a 32-character binary string (see `binary.ts`), such as
 * OpenSSL's through `node:crypto`. It must not keep or modify its input.
 */
export type BinarySha256 = (data: Uint8Array) => string

let backend: BinarySha256 | undefined

/**
 * Routes {@link fastSha256} and {@link fastSha256Binary} (and with them every protocol hash: tagged
 * hashes, Merkle lists, the state tree) through `impl`, or back to this file's JavaScript with
 * `undefined`. SHA-256 has one correct output, so this changes speed, never a hash: a full node
 * installs OpenSSL's (about 3x faster on the 65-byte preimages of the tree) after checking it
 * against this implementation; a browser keeps the JavaScript. Returns the backend it replaced.
 */
export function useSha256Backend(impl: BinarySha256 | undefined): BinarySha256 | undefined {
  const previous = backend
  backend = impl
  return previous
}

/** SHA-256 of `data`; a fresh 32-byte result. Same output as any SHA-256, allocation-light. */
export function fastSha256(data: Uint8Array): Uint8Array {
  return backend !== undefined ? binaryStringToBytes(backend(data)) : jsSha256(data)
}

/** The JavaScript SHA-256 of `data`, whatever backend is installed (the reference a backend is checked against). */
export function jsSha256(data: Uint8Array): Uint8Array {
  digest(data)
  const out = new Uint8Array(32)
  for (let i = 0, o = 0; i < 8; i++, o += 4) {
    const x = S[i] as number
    out[o] = x >>> 24
    out[o + 1] = x >>> 16
    out[o + 2] = x >>> 8
    out[o + 3] = x
  }
  return out
}

/** SHA-256 of `data` as a 32-character binary string (see `binary.ts`); allocates only the string. */
export function fastSha256Binary(data: Uint8Array): string {
  return backend !== undefined ? backend(data) : jsSha256Binary(data)
}

/** {@link fastSha256Binary} in JavaScript, whatever backend is installed. */
export function jsSha256Binary(data: Uint8Array): string {
  digest(data)
  // One call with all 32 code units makes one flat string; appending in pieces would build a rope
  // of intermediate strings that is flattened (copied again) on first use.
  const a = S[0] as number
  const b = S[1] as number
  const c = S[2] as number
  const d = S[3] as number
  const e = S[4] as number
  const f = S[5] as number
  const g = S[6] as number
  const h = S[7] as number
  return String.fromCharCode(
    a >>> 24,
    (a >>> 16) & 0xff,
    (a >>> 8) & 0xff,
    a & 0xff,
    b >>> 24,
    (b >>> 16) & 0xff,
    (b >>> 8) & 0xff,
    b & 0xff,
    c >>> 24,
    (c >>> 16) & 0xff,
    (c >>> 8) & 0xff,
    c & 0xff,
    d >>> 24,
    (d >>> 16) & 0xff,
    (d >>> 8) & 0xff,
    d & 0xff,
    e >>> 24,
    (e >>> 16) & 0xff,
    (e >>> 8) & 0xff,
    e & 0xff,
    f >>> 24,
    (f >>> 16) & 0xff,
    (f >>> 8) & 0xff,
    f & 0xff,
    g >>> 24,
    (g >>> 16) & 0xff,
    (g >>> 8) & 0xff,
    g & 0xff,
    h >>> 24,
    (h >>> 16) & 0xff,
    (h >>> 8) & 0xff,
    h & 0xff,
  )
}
