/**
 * The native crypto provider: ed25519 and SHA-256 from Node's OpenSSL, an order of magnitude
 * faster than pure JavaScript for verification. It follows the core's verification rule exactly
 * (see `CryptoProvider` in @loopchain/core): OpenSSL already checks S < L and compares R
 * bytewise (cofactorless), and the public-key rule (canonical, not of small order) is applied
 * with the core's byte check ({@link isAcceptableKeyEncoding}); OpenSSL's verification fails for
 * a key that does not decode to a point. So both providers accept exactly the same inputs.
 *
 * Verification asks libsodium first (`sodium-native`, prebuilt), about twice as fast as OpenSSL
 * here (17.7–26.2 k against 7.0–12.1 k a second on one core in `bench net` runs of 2026-12-05).
 * libsodium checks the same equation with the same cofactorless byte comparison, and refuses
 * more: a signature whose R is of small order. So its "yes" is OpenSSL's "yes", and its "no" is
 * OpenSSL's "no" too unless R (or the key) might be of small order or is not a canonical encoding
 * ({@link refusalNeedsOpenSSL}): such a "no" is asked again of OpenSSL, which decides. The rule
 * stays the core's to the byte (the golden vectors `identity-R` and `torsion-R-valid` are
 * signatures libsodium alone refuses), and an ordinary invalid signature costs one libsodium check,
 * not that and OpenSSL's.
 * Where the addon does not load, or fails its check at load ({@link sodiumVerifier}), OpenSSL
 * alone; `LOOPCHAIN_CRYPTO=openssl` asks for that (and then a block's one-off key, see
 * {@link oneOffKey}, is made and signs through OpenSSL too).
 *
 * A key seen for the first time adds ~10 µs to its verification (a JWK import goes straight to
 * OpenSSL's raw-key constructor), not the ~170 µs of decoding it in JavaScript and parsing a DER
 * structure through OpenSSL 3's decoders: a chain with many occasional senders pays it on most
 * transactions.
 */
import { createPrivateKey, createPublicKey, hash, type KeyObject, sign, verify } from 'node:crypto'
import { createRequire } from 'node:module'
import {
  type BinarySha256,
  binaryStringToBytes,
  type CryptoProvider,
  isAcceptableKeyEncoding,
  jsSha256Binary,
  setNewest,
  useSha256Backend,
} from '@loopchain/core'

/** DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
/** DER prefix of an ed25519 PKCS#8 private key (RFC 8410); the raw 32-byte seed follows. */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
/** Keys kept ready: a validator set and the busiest senders fit; beyond, the oldest go. */
const KEY_CACHE_SIZE = 4096

/**
 * Scratch memory outside V8's heap for what is handed to OpenSSL. A typed array of 64 bytes or
 * fewer lives inside the heap (our signatures, keys and hashes), and asking for its `.buffer` —
 * as Node's crypto does with every argument, and as `Buffer.from(x.buffer)` does — moves it out:
 * a malloc, a copy and a buffer record for the GC to sweep, per argument and call. Copying into
 * these instead costs ~1 µs less per verification. Calls are synchronous, so one scratch serves all.
 */
const SCRATCH_MESSAGE_BYTES = 1024
const scratch = Buffer.allocUnsafeSlow(64 + SCRATCH_MESSAGE_BYTES)
const scratchSignature = scratch.subarray(0, 64)
const SCRATCH_MESSAGE = 64
const keyScratchForSodium = Buffer.allocUnsafeSlow(32)
let keyScratch = Buffer.allocUnsafeSlow(256)

/**
 * The bytes of `parts`, one after another, as one latin1 string: a map key for byte arrays, read
 * through scratch memory (see above) instead of through each part's `.buffer`. Callers that mix
 * parts of varying lengths must fix the boundaries themselves (fixed sizes, say).
 */
export function bytesKey(...parts: Uint8Array[]): string {
  let n = 0
  for (const p of parts) n += p.length
  if (keyScratch.length < n) keyScratch = Buffer.allocUnsafeSlow(2 * n)
  let at = 0
  for (const p of parts) {
    keyScratch.set(p, at)
    at += p.length
  }
  return keyScratch.toString('latin1', 0, n)
}

class KeyCache<V> {
  private readonly map = new Map<string, V>()
  constructor(private readonly make: (key: Uint8Array) => V) {}
  get size(): number {
    return this.map.size
  }
  get(key: Uint8Array): V {
    const id = bytesKey(key)
    let v = this.map.get(id)
    if (v === undefined) {
      v = this.make(key)
      setNewest(this.map, id, v, KEY_CACHE_SIZE)
    }
    return v
  }
}

const publicKeys = new KeyCache<KeyObject | null>((pub) => {
  if (!isAcceptableKeyEncoding(pub)) return null
  const x = Buffer.from(pub.buffer, pub.byteOffset, pub.byteLength).toString('base64url')
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' })
  } catch {
    return null // never seen (OpenSSL takes any 32 bytes and checks at verification), but verify must not throw
  }
})
/** How many secret keys the signing cache holds (for tests: a one-off key must not be among them). */
export function secretKeysCached(): number {
  return secretKeys.size
}
const secretKeys = new KeyCache<KeyObject>((seed) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' }),
)

const hashScratch = Buffer.allocUnsafeSlow(64)
const hashViews: Buffer[] = []

/**
 * SHA-256 through OpenSSL (`crypto.hash`: one call, no hasher object), as a 32-character binary
 * string. An input of 64 bytes or fewer may live inside V8's heap and is copied into scratch
 * memory first (see `scratch` above); a longer one is already outside.
 */
export function nativeSha256Binary(data: Uint8Array): string {
  if (data.byteLength > 64) return hash('sha256', data, 'binary')
  hashScratch.set(data)
  let view = hashViews[data.byteLength]
  if (view === undefined) hashViews[data.byteLength] = view = hashScratch.subarray(0, data.byteLength)
  return hash('sha256', view, 'binary')
}

/**
 * Makes the core's protocol hashes (tagged hashes, Merkle lists, the state tree) use OpenSSL's
 * SHA-256 in this process: ~0.26 against ~0.71 µs for the tree's 65-byte preimages, ~0.29 against
 * ~1.05 µs for a 150-byte transaction. It is checked against the JavaScript implementation first
 * (every length across the padding boundaries) and not installed if they differ, so a hash never
 * changes, only its cost. Returns whether it is installed. A full node calls it when it starts;
 * `impl` is for tests.
 */
export function installNativeSha256(impl: BinarySha256 = nativeSha256Binary): boolean {
  if (typeof hash !== 'function') return false
  const sample = new Uint8Array(300)
  for (let i = 0; i < sample.length; i++) sample[i] = (i * 151 + 7) & 0xff
  for (let n = 0; n <= sample.length; n++) {
    const data = sample.subarray(0, n)
    if (impl(data) !== jsSha256Binary(data)) return false
  }
  useSha256Backend(impl)
  return true
}

/** libsodium's detached verification: (signature 64 bytes, message, public key 32 bytes). */
export type SodiumVerify = (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean

/**
 * libsodium's verification, if `sodium-native` loads and passes a check against OpenSSL's answers:
 * a valid signature (a short message and a long one, as a plain array) accepted, and refused a
 * corrupted one and one with S + L in place of S (a build with `ED25519_COMPAT` would take that,
 * a "yes" where OpenSSL says no). Undefined otherwise: OpenSSL alone then. `load` is for tests.
 */
export function sodiumVerifier(load: () => unknown = () => createRequire(import.meta.url)('sodium-native')): SodiumVerify | undefined {
  let fn: SodiumVerify
  try {
    const lib = load() as { crypto_sign_verify_detached?: unknown }
    if (typeof lib?.crypto_sign_verify_detached !== 'function') return undefined
    const raw = lib.crypto_sign_verify_detached as (s: Buffer, m: Buffer, k: Buffer) => boolean
    fn = (s, m, k) => raw(s as Buffer, m as Buffer, k as Buffer)
    const seed = Buffer.alloc(32, 0x5a)
    const pub = Buffer.from(nativeCrypto.publicKey(seed))
    const msg = Buffer.from('loopchain sodium self-check')
    const sig = Buffer.from(nativeCrypto.sign(msg, seed))
    const long = Uint8Array.from({ length: 2000 }, (_, i) => i & 0xff)
    const longSig = Buffer.from(nativeCrypto.sign(long, seed))
    const bad = Buffer.from(sig)
    bad[0] = (bad[0] as number) ^ 1
    if (fn(sig, msg, pub) !== true || fn(longSig, long, pub) !== true || fn(bad, msg, pub) !== false) return undefined
    if (fn(withSPlusL(sig), msg, pub) !== false) return undefined
  } catch {
    return undefined
  }
  return fn
}

/**
 * The y coordinates of the eight points of small order (0, 1, p − 1 and two shared by the points
 * of order 8), as 32-byte little-endian encodings with the sign bit clear. The test derives them
 * from noble's table of the torsion subgroup.
 */
export const SMALL_ORDER_Y: readonly Uint8Array[] = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
].map((h) => Uint8Array.from(Buffer.from(h, 'hex')))

/**
 * Whether the point encoding at `offset` (32 bytes) might be of small order, whatever its sign bit,
 * or is not canonical (y ≥ p = 2^255 − 19).
 */
function unusualPoint(bytes: Uint8Array, offset: number): boolean {
  const top = (bytes[offset + 31] as number) & 0x7f
  if (top === 0x7f && (bytes[offset] as number) >= 0xed) {
    let i = 1
    while (i < 31 && bytes[offset + i] === 0xff) i++
    if (i === 31) return true
  }
  next: for (const y of SMALL_ORDER_Y) {
    if (bytes[offset] !== y[0] || top !== y[31]) continue
    for (let i = 1; i < 31; i++) if (bytes[offset + i] !== y[i]) continue next
    return true
  }
  return false
}

/**
 * Whether libsodium's refusal of this signature must be asked again of OpenSSL: only where the two
 * may differ, a signature whose R might be of small order (libsodium refuses those, the rule does
 * not) or is not a canonical encoding, or such a key (the rule refuses those keys before either
 * library is asked; checked too, so the fast "no" never rests on that). Any other signature that
 * libsodium refuses fails the equation both check, or S < L, which both check.
 */
export function refusalNeedsOpenSSL(signature: Uint8Array, publicKey: Uint8Array): boolean {
  return unusualPoint(signature, 0) || unusualPoint(publicKey, 0)
}

/** The order of the ed25519 base point. */
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n

/** `signature` with S + L in place of S: the same scalar, not canonical, refused by the rule. */
function withSPlusL(signature: Uint8Array): Buffer {
  const out = Buffer.from(signature)
  let v = ED25519_L
  for (let i = 32, carry = 0n; i < 64; i++) {
    const sum = BigInt(out[i] as number) + (v & 255n) + carry
    out[i] = Number(sum & 255n)
    carry = sum >> 8n
    v >>= 8n
  }
  return out
}

/** The key object for `publicKey`, or null when the signature or key is malformed or the key refused by the rule. */
function keyToVerify(signature: Uint8Array, publicKey: Uint8Array): KeyObject | null {
  if (!(signature instanceof Uint8Array) || signature.length !== 64 || !(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    return null
  }
  return publicKeys.get(publicKey)
}

function opensslVerify(signature: Uint8Array, message: Uint8Array, key: KeyObject): boolean {
  try {
    if (!(message instanceof Uint8Array) || message.length > SCRATCH_MESSAGE_BYTES) return verify(null, message, key, signature)
    scratchSignature.set(signature)
    scratch.set(message, SCRATCH_MESSAGE)
    return verify(null, scratch.subarray(SCRATCH_MESSAGE, SCRATCH_MESSAGE + message.length), key, scratchSignature)
  } catch {
    return false
  }
}

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

/** The native provider for Node.js: OpenSSL signs and hashes; libsodium verifies first (see above). */
export const nativeCrypto: CryptoProvider = {
  name: 'native',
  sha256(data) {
    return binaryStringToBytes(nativeSha256Binary(data))
  },
  publicKey(secretKey) {
    if (secretKey.length !== 32) throw new RangeError('an ed25519 secret key is 32 bytes')
    const der = createPublicKey(secretKeys.get(secretKey)).export({ format: 'der', type: 'spki' })
    return u8(der).slice(SPKI_PREFIX.length)
  },
  sign(message, secretKey) {
    if (secretKey.length !== 32) throw new RangeError('an ed25519 secret key is 32 bytes')
    return u8(sign(null, message, secretKeys.get(secretKey)))
  },
  verify(signature, message, publicKey) {
    const key = keyToVerify(signature, publicKey)
    if (key === null) return false
    const sodium = sodiumVerify()
    if (sodium !== undefined && message instanceof Uint8Array) {
      // Through scratch memory, as for OpenSSL: the addon reads each argument's backing store.
      // Whatever this throws on (a detached buffer, say), OpenSSL's path below answers instead.
      try {
        scratchSignature.set(signature)
        keyScratchForSodium.set(publicKey)
        const long = message.length > SCRATCH_MESSAGE_BYTES
        if (!long) scratch.set(message, SCRATCH_MESSAGE)
        const m = long ? message : scratch.subarray(SCRATCH_MESSAGE, SCRATCH_MESSAGE + message.length)
        if (sodium(scratchSignature, m, keyScratchForSodium)) return true
        if (!refusalNeedsOpenSSL(signature, publicKey)) return false
      } catch {
        // answered by OpenSSL below
      }
    }
    return opensslVerify(signature, message, key)
  },
}

/**
 * A key used for one job and then destroyed: a block's certificate-signing key (`full-node.ts`,
 * `buildBlock`). It never enters the key cache, which keeps keys for the life of the process
 * (4,096 of them, the oldest going first): a block key kept there would outlive the proposal by
 * thousands of blocks, and a later compromise of the node could sign certificates into those past
 * blocks.
 */
export interface OneOffKey {
  readonly publicKey: Uint8Array
  /** A provider that signs with this key (and verifies like {@link nativeCrypto}); throws for any other secret. */
  readonly crypto: CryptoProvider
  /**
   * Ends the key: signing with it afterwards throws. With libsodium its bytes are zeroed at once;
   * with OpenSSL the key object is let go, and cleared when it is collected (see {@link oneOffKey}).
   */
  destroy(): void
}

/** The two libsodium calls a {@link OneOffKey} signs with. */
export interface SodiumSign {
  crypto_sign_seed_keypair(pk: Buffer, sk: Buffer, seed: Buffer): void
  crypto_sign_detached(sig: Buffer, message: Buffer, sk: Buffer): void
}

/** libsodium's key derivation and signing, loaded like its verification (and `LOOPCHAIN_CRYPTO=openssl` turns it off). */
let sodiumSignState: SodiumSign | undefined | null = null
function sodiumSign(): SodiumSign | undefined {
  if (sodiumSignState === null) {
    sodiumSignState = undefined
    if (sodiumVerify() !== undefined) {
      try {
        const lib = createRequire(import.meta.url)('sodium-native') as Partial<SodiumSign>
        if (typeof lib.crypto_sign_seed_keypair === 'function' && typeof lib.crypto_sign_detached === 'function')
          sodiumSignState = lib as SodiumSign
      } catch {
        // OpenSSL signs instead
      }
    }
  }
  return sodiumSignState
}

/**
 * Makes a {@link OneOffKey} from a 32-byte seed, which the caller wipes as before. With libsodium
 * (`lib`; `null` for OpenSSL) the key's 64 bytes live in one buffer that `destroy` zeroes (~50 µs
 * for the key and a signature here). Without it (`LOOPCHAIN_CRYPTO=openssl`, or the addon missing),
 * an OpenSSL key object made for it alone (~660 µs: OpenSSL 3 decodes a private key slowly), which
 * `destroy` only lets go of: OpenSSL clears the key when V8 collects the object, not at once.
 * Signatures are the same either way (ed25519 signing is deterministic).
 */
export function oneOffKey(seed: Uint8Array, lib: SodiumSign | null = sodiumSign() ?? null): OneOffKey {
  if (seed.length !== 32) throw new RangeError('an ed25519 secret key is 32 bytes')
  // The seed is compared in place, and every copy made of it here is wiped: the caller's wipe of
  // the seed must leave nothing of the key but what `destroy` clears.
  const owns = (secret: Uint8Array) => secret === seed || (secret.length === 32 && secret.every((b, i) => b === seed[i]))
  let destroyed = false
  const check = (secret: Uint8Array) => {
    if (destroyed) throw new Error('this one-off key was destroyed')
    if (!owns(secret)) throw new Error('a one-off key signs only with its own secret')
  }
  const backend = lib !== null ? sodiumOneOff(seed, lib) : opensslOneOff(seed)
  return {
    publicKey: backend.publicKey,
    crypto: {
      ...nativeCrypto,
      publicKey(secret) {
        check(secret)
        return backend.publicKey.slice()
      },
      sign(message, secret) {
        check(secret)
        return backend.sign(message)
      },
    },
    destroy() {
      destroyed = true
      backend.wipe()
    },
  }
}

/** What a {@link OneOffKey} signs with: the key's public half, its signing, and the wipe of what it holds. */
interface OneOffBackend {
  readonly publicKey: Uint8Array
  sign(message: Uint8Array): Uint8Array
  wipe(): void
}

function sodiumOneOff(seed: Uint8Array, lib: SodiumSign): OneOffBackend {
  const pk = Buffer.alloc(32)
  const sk = Buffer.alloc(64)
  const seedCopy = Buffer.from(seed)
  try {
    lib.crypto_sign_seed_keypair(pk, sk, seedCopy)
  } finally {
    seedCopy.fill(0)
  }
  return {
    publicKey: new Uint8Array(pk),
    sign(message) {
      const sig = Buffer.alloc(64)
      lib.crypto_sign_detached(sig, Buffer.from(message), sk)
      return new Uint8Array(sig)
    },
    wipe: () => sk.fill(0),
  }
}

function opensslOneOff(seed: Uint8Array): OneOffBackend {
  const der = Buffer.concat([PKCS8_PREFIX, seed])
  let key: KeyObject | undefined
  try {
    key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  } finally {
    der.fill(0)
  }
  return {
    publicKey: u8(createPublicKey(key).export({ format: 'der', type: 'spki' })).slice(SPKI_PREFIX.length),
    sign: (message) => u8(sign(null, message, key as KeyObject)),
    wipe: () => {
      key = undefined
    },
  }
}

/** The same provider verifying with OpenSSL alone: the reference the bench measures, and tests. */
export const opensslCrypto: CryptoProvider = {
  ...nativeCrypto,
  name: 'openssl',
  verify(signature, message, publicKey) {
    const key = keyToVerify(signature, publicKey)
    return key !== null && opensslVerify(signature, message, key)
  },
}

/**
 * Loaded at the first verification (a client command that only signs never loads it): null until
 * then, undefined if OpenSSL is to verify alone.
 */
let sodiumState: SodiumVerify | undefined | null = null

/** `LOOPCHAIN_CRYPTO=openssl` makes OpenSSL verify alone (to compare, or to rule libsodium out), and sign one-off keys. */
function sodiumVerify(): SodiumVerify | undefined {
  if (sodiumState === null) sodiumState = process.env.LOOPCHAIN_CRYPTO === 'openssl' ? undefined : sodiumVerifier()
  return sodiumState
}

/** Whether verification asks libsodium first in this process (see above). */
export function verifiesWithSodium(): boolean {
  return sodiumVerify() !== undefined
}
