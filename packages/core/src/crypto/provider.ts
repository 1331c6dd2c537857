/**
 * The crypto-provider seam. Protocol code takes a {@link CryptoProvider} so that a full node can
 * plug in Node's native (OpenSSL) ed25519, which verifies an order of magnitude faster than pure
 * JavaScript, while browsers use {@link nobleCrypto}. Every provider must accept and reject exactly
 * the same inputs: a test runs both over every vector, including hostile edge cases.
 *
 * The verification rule (RFC 8032 §5.1.7, cofactorless, as OpenSSL implements it):
 * - the public key is a canonical encoding (y < p) of a point that is not of small order;
 * - S < L;
 * - the encoding of [S]B − [k]A equals the signature's R bytes, k = SHA-512(R‖A‖M) mod L.
 */
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js'
import { sha512 } from '@noble/hashes/sha2.js'
import { fromHex } from '../codec/hex.js'
import { sha256 } from './hash.js'
import { bytesToBigintLE } from './le.js'

/** Cryptographic primitives the protocol needs, with one implementation per runtime. */
export interface CryptoProvider {
  /** A short name for logs and benchmark lines, e.g. `noble` or `native`. */
  readonly name: string
  /** SHA-256 of `data`. */
  sha256(data: Uint8Array): Uint8Array
  /** The 32-byte ed25519 public key of a 32-byte secret key (seed). */
  publicKey(secretKey: Uint8Array): Uint8Array
  /** The deterministic 64-byte ed25519 signature of `message`. */
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array
  /** True when `signature` is valid for `message` under `publicKey` by the rule above; never throws. */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean
}

const Point = ed25519.Point
/** The order of the ed25519 prime-order subgroup. */
const L = Point.Fn.ORDER

/**
 * True when `publicKey` is acceptable to the verification rule: 32 bytes, a canonical point
 * encoding, not of small order. Providers call this (and may cache its answer per key).
 */
export function isAcceptablePublicKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false
  try {
    return !Point.fromBytes(publicKey, false).isSmallOrder()
  } catch {
    return false
  }
}

/**
 * The y coordinates of the eight small-order points (0, 1, p − 1 and two of order 8), as
 * little-endian bytes with the sign bit clear, keyed by their latin1 string.
 */
const SMALL_ORDER_Y = new Set(
  ED25519_TORSION_SUBGROUP.map((hex) => {
    const b = fromHex(hex)
    b[31] = (b[31] as number) & 0x7f
    return String.fromCharCode(...b)
  }),
)

/**
 * The part of {@link isAcceptablePublicKey} that needs no curve arithmetic: 32 bytes whose y
 * (the low 255 bits) is below p and is not the y of a small-order point. A canonical encoding
 * that passes is acceptable exactly when it decodes to a point, so a provider whose own verifier
 * decodes the key and fails on one that does not applies this check alone (the native provider:
 * OpenSSL): about a microsecond, where decoding in JavaScript takes about a hundred. The browser's
 * WebCrypto provider still applies the full rule; it has not been checked against Chromium here.
 */
export function isAcceptableKeyEncoding(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false
  const top = (publicKey[31] as number) & 0x7f
  // y ≥ p = 2^255 − 19 only when every byte above the lowest is all ones and the lowest is ≥ 0xed.
  if (top === 0x7f && (publicKey[0] as number) >= 0xed) {
    let allOnes = true
    for (let i = 1; i < 31 && allOnes; i++) allOnes = publicKey[i] === 0xff
    if (allOnes) return false
  }
  let y = ''
  for (let i = 0; i < 31; i++) y += String.fromCharCode(publicKey[i] as number)
  return !SMALL_ORDER_Y.has(y + String.fromCharCode(top))
}

function nobleVerify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64 || !(message instanceof Uint8Array)) return false
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false
  const s = bytesToBigintLE(signature.subarray(32, 64))
  if (s >= L) return false
  let A: InstanceType<typeof Point>
  try {
    A = Point.fromBytes(publicKey, false)
  } catch {
    return false
  }
  if (A.isSmallOrder()) return false
  const r = signature.subarray(0, 32)
  const buf = new Uint8Array(64 + message.length)
  buf.set(r, 0)
  buf.set(publicKey, 32)
  buf.set(message, 64)
  const k = bytesToBigintLE(sha512(buf)) % L
  const SB = Point.BASE.multiplyUnsafe(s)
  const kA = A.multiplyUnsafe(k)
  const R = SB.subtract(kA).toBytes()
  let diff = 0
  for (let i = 0; i < 32; i++) diff |= (R[i] as number) ^ (r[i] as number)
  return diff === 0
}

/** Pure-JavaScript provider on @noble/curves and @noble/hashes; runs everywhere. */
export const nobleCrypto: CryptoProvider = {
  name: 'noble',
  sha256,
  publicKey(secretKey) {
    return ed25519.getPublicKey(secretKey)
  },
  sign(message, secretKey) {
    return ed25519.sign(message, secretKey)
  },
  verify: nobleVerify,
}
