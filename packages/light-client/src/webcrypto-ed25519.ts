/**
 * Ed25519 through WebCrypto (`crypto.subtle`): native code in browsers (Chromium 137+, Firefox
 * 129+, Safari 17+) and in Node 20+, an order of magnitude faster than pure JavaScript, but
 * asynchronous. Channel payments sign and verify one state each, so the wallet uses this when it is
 * there and falls back to the core's {@link nobleCrypto} when it is not.
 *
 * It accepts and rejects exactly what the core's verification rule does: WebCrypto implementations
 * check the signature the same way (S < L, the encoding of [S]B − [k]A equal to R), but not every
 * one refuses small-order or non-canonical public keys, so a key is checked once with
 * {@link isAcceptablePublicKey} before WebCrypto sees it.
 */
import { bytesEqual, type ChannelSigner, type CryptoProvider, isAcceptablePublicKey, nobleCrypto } from '@loopchain/core'

/** A channel signer whose work may run asynchronously (WebCrypto) or not (noble, wrapped). */
export type AsyncSigner = ChannelSigner

// PKCS#8 wrapping of a 32-byte Ed25519 seed (RFC 8410): the fixed prefix, then the seed.
const PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20)

// WebCrypto's types want ArrayBuffer-backed views; ours always are (never SharedArrayBuffer).
const bs = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>

function subtle(): SubtleCrypto | undefined {
  return (globalThis as { crypto?: Crypto }).crypto?.subtle
}

/** True when this runtime's WebCrypto signs and verifies Ed25519 (probed with a real signature). */
export async function hasWebCryptoEd25519(): Promise<boolean> {
  const s = subtle()
  if (s === undefined) return false
  try {
    const seed = new Uint8Array(32).fill(7)
    const signer = await webCryptoSigner(seed)
    const msg = Uint8Array.of(1, 2, 3)
    const sig = await signer.sign(msg)
    const expected = nobleCrypto.sign(msg, seed)
    return sig.length === 64 && sig.every((b, i) => b === expected[i])
  } catch {
    return false
  }
}

/** A WebCrypto signer for the 32-byte seed `secretKey`; throws where WebCrypto has no Ed25519. */
export async function webCryptoSigner(secretKey: Uint8Array): Promise<AsyncSigner> {
  const s = subtle()
  if (s === undefined) throw new Error('this runtime has no WebCrypto')
  const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + 32)
  pkcs8.set(PKCS8_PREFIX)
  pkcs8.set(secretKey, PKCS8_PREFIX.length)
  const privateKey = await s.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign'])
  pkcs8.fill(0)
  // Imported public keys by hex, checked once against the core's rule; a channel has two.
  const keys = new Map<string, CryptoKey | null>()
  // The last key asked for, by identity: a session passes the same peer key object every time.
  let last: { publicKey: Uint8Array; copy: Uint8Array; key: CryptoKey | null } | undefined
  const importKey = async (publicKey: Uint8Array): Promise<CryptoKey | null> => {
    if (last !== undefined && last.publicKey === publicKey && bytesEqual(last.copy, publicKey)) return last.key
    const key = await importByHex(publicKey)
    last = { publicKey, copy: publicKey.slice(), key }
    return key
  }
  const importByHex = async (publicKey: Uint8Array): Promise<CryptoKey | null> => {
    const id = hex(publicKey)
    let k = keys.get(id)
    if (k === undefined) {
      k = isAcceptablePublicKey(publicKey) ? await s.importKey('raw', bs(publicKey), { name: 'Ed25519' }, false, ['verify']) : null
      if (keys.size > 64) keys.clear()
      keys.set(id, k)
    }
    return k
  }
  return {
    name: 'webcrypto',
    async sign(message) {
      return new Uint8Array(await s.sign({ name: 'Ed25519' }, privateKey, bs(message)))
    },
    async verify(signature, message, publicKey) {
      if (!(signature instanceof Uint8Array) || signature.length !== 64) return false
      const key = await importKey(publicKey)
      if (key === null) return false
      try {
        return await s.verify({ name: 'Ed25519' }, key, bs(signature), bs(message))
      } catch {
        return false
      }
    },
  }
}

/** The pure-JavaScript signer (the core's rule, synchronous work behind a promise). */
export function nobleSigner(secretKey: Uint8Array, crypto: CryptoProvider = nobleCrypto): AsyncSigner {
  const sk = secretKey.slice()
  return {
    name: crypto.name,
    sign: (message) => crypto.sign(message, sk),
    verify: (signature, message, publicKey) => crypto.verify(signature, message, publicKey),
  }
}

/** The fastest signer this runtime has: WebCrypto when it does Ed25519, noble otherwise. */
export async function bestSigner(secretKey: Uint8Array): Promise<AsyncSigner> {
  return (await hasWebCryptoEd25519()) ? webCryptoSigner(secretKey) : nobleSigner(secretKey)
}

function hex(b: Uint8Array): string {
  let s = ''
  for (const x of b) s += x.toString(16).padStart(2, '0')
  return s
}
