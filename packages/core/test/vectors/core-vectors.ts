/**
 * The core's golden vectors: computed from the deterministic samples, stored in core.json by
 * `generate.ts`, and checked by `checkCoreVectors` in Node and in Chromium. The checker also
 * decodes every stored encoding and re-encodes it, so the decoders are pinned too.
 */
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha512 as nobleSha512 } from '@noble/hashes/sha2.js'
import {
  accountAddress,
  type Block,
  bigUint,
  blockCertificates,
  blockCodec,
  blockHash,
  blockHeaderCodec,
  type Codec,
  type CryptoProvider,
  certificateCodec,
  certificateId,
  commitCodec,
  commitHash,
  decode,
  decodeCompactCertificate,
  encode,
  encodeCompactCertificate,
  fromHex,
  type Genesis,
  genesisCodec,
  genesisHash,
  genesisToJson,
  logsBloom,
  merkleLeaf,
  merkleProof,
  merkleProofCodec,
  merkleRoot,
  nobleCrypto,
  parseGenesis,
  receiptCodec,
  receiptHash,
  sha3_256,
  sha256,
  signedVoteCodec,
  signVote,
  taggedHash,
  toHex,
  transactionCodec,
  transactionHash,
  utf8,
  uvarint,
  type Value,
  VoteType,
  validatorSetCodec,
  validatorSetHash,
  value,
} from '../../src/index.js'
import { NETWORK_ID, sampleBlocks, sampleGenesis, sampleKey, sampleReceipt, sampleTransactions, sampleValidators } from './samples.js'

/** One encoded structure: its bytes and its hash. */
export interface Encoded {
  hex: string
  hash: string
}

/** A signature-verification case every provider must judge the same way. */
export interface VerifyCase {
  name: string
  publicKey: string
  message: string
  signature: string
  valid: boolean
}

/** Everything core.json holds. */
export interface CoreVectors {
  uvarint: [number, string][]
  bigUint: [string, string][]
  values: { name: string; hex: string }[]
  hashes: { input: string; sha256: string; sha3_256: string; tagged: string }[]
  keys: { label: string; secretKey: string; publicKey: string; address: string; message: string; signature: string }[]
  verify: VerifyCase[]
  validatorSet: Encoded
  transactions: Encoded[]
  receipt: Encoded & { bloom: string }
  merkle: { size: number; root: string; proofOfLast: string }[]
  header0: Encoded
  block1: Encoded
  commit1: Encoded
  vote: Encoded
  block2: Encoded
  genesis: { json: unknown; hex: string; hash: string }
  /** The certificate block 1 issues: its encoding, id (hash), block-key signature and compact text. */
  certificate: Encoded & { signature: string; compact: string }
}

const SAMPLE_VALUES: [string, Value][] = [
  ['null', null],
  ['true', true],
  ['zero', 0n],
  ['minus-one', -1n],
  ['big', 2n ** 200n + 12345n],
  ['negative-big', -(2n ** 255n)],
  ['empty-string', ''],
  ['unicode', 'ㄱ loopchain 블록체인 🚀'],
  ['bytes', fromHex('00ff10')],
  ['list', [1n, 'two', [null, false]]],
  ['map', { b: 1n, a: 'x', ab: { z: [] }, 한: true }],
]

function enc<T>(codec: Codec<T>, v: T, hash: (v: T) => Uint8Array): Encoded {
  return { hex: toHex(encode(codec, v)), hash: toHex(hash(v)) }
}

/** A point of order 8 on edwards25519 (the cofactor's torsion), for mixed-order key cases. */
function torsion8() {
  const P = ed25519.Point
  for (let i = 1; ; i++) {
    // Multiply a hashed point by L: what remains is its small-order component.
    let pt: InstanceType<typeof P> | undefined
    try {
      pt = P.fromBytes(sha256(utf8(`torsion ${i}`)), false)
    } catch {
      continue
    }
    const t = pt.multiplyUnsafe(P.Fn.ORDER - 1n).add(pt)
    if (!t.multiplyUnsafe(4n).is0()) return t
  }
}

function verifyCases(): VerifyCase[] {
  const P = ed25519.Point
  const L = P.Fn.ORDER
  const k = sampleKey('verify-key')
  const msg = utf8('edge cases')
  const sig = nobleCrypto.sign(msg, k.secretKey)
  const cases: VerifyCase[] = []
  const add = (name: string, publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array, valid: boolean) =>
    cases.push({ name, publicKey: toHex(publicKey), message: toHex(message), signature: toHex(signature), valid })
  // RFC 8032 §7.1, TEST 1 and TEST 2.
  add(
    'rfc8032-test1',
    fromHex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'),
    new Uint8Array(0),
    fromHex(
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
    ),
    true,
  )
  add(
    'rfc8032-test2',
    fromHex('3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c'),
    fromHex('72'),
    fromHex(
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    ),
    true,
  )
  add('valid', k.publicKey, msg, sig, true)
  add('wrong-message', k.publicKey, utf8('edge casez'), sig, false)
  const flipped = sig.slice()
  flipped[5] = (flipped[5] as number) ^ 1
  add('flipped-R-bit', k.publicKey, msg, flipped, false)
  // S + L: the same scalar mod L, but not canonical; RFC 8032 demands S < L.
  let s = 0n
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i] as number)
  const sPlusL = s + L
  const malleable = sig.slice()
  for (let i = 0; i < 32; i++) malleable[32 + i] = Number((sPlusL >> BigInt(8 * i)) & 0xffn)
  add('s-plus-L', k.publicKey, msg, malleable, false)
  // The identity as public key with R = identity, S = 0 satisfies the bare equation; small-order keys are refused.
  const identity = P.ZERO.toBytes()
  const idSig = new Uint8Array(64)
  idSig.set(identity)
  add('small-order-key', identity, msg, idSig, false)
  // y = p + 1: a non-canonical encoding of the point with y = 1 (the identity).
  const nonCanon = new Uint8Array(32).fill(0xff)
  nonCanon[0] = 0xee
  nonCanon[31] = 0x7f
  add('non-canonical-key', nonCanon, msg, sig, false)
  // A mixed-order key A + T: a cofactored verifier would accept some signatures that the
  // cofactorless rule refuses. Both providers must refuse all of them.
  const T = torsion8()
  const A = P.fromBytes(k.publicKey)
  const mixed = A.add(T).toBytes()
  for (let i = 0; i < 4; i++) {
    const m = utf8(`mixed ${i}`)
    // Sign "for" the mixed key by hand: the nonce and challenge use the mixed key bytes.
    // Valid under the cofactorless rule exactly when the challenge k kills the torsion: k ≡ 0 (mod 8).
    const { signature, challenge } = signWithPublicKey(k.secretKey, mixed, m)
    add(`mixed-order-key-${i}`, mixed, m, signature, challenge % 8n === 0n)
  }
  add('short-signature', k.publicKey, msg, sig.slice(0, 63), false)
  // R of small order, made by the key's holder (S = k·a, so [S]B − [k]A is the identity): the
  // equation holds and the rule accepts it. libsodium refuses every small-order R, so the node,
  // which asks it first, must let OpenSSL decide (packages/node/src/native-crypto.ts).
  add(
    'identity-R',
    k.publicKey,
    utf8('identity R'),
    signWithPublicKey(k.secretKey, k.publicKey, utf8('identity R'), identity).signature,
    true,
  )
  // With the mixed key A + T, [S]B − [k](A + T) = −[k]T: R = [j]T holds exactly when j ≡ −k (mod 8).
  for (let i = 0, found = 0; found < 2; i++) {
    const m = utf8(`torsion R ${i}`)
    const j = 1 + (i % 7)
    const { signature, challenge } = signWithPublicKey(k.secretKey, mixed, m, T.multiplyUnsafe(BigInt(j)).toBytes())
    const valid = (challenge + BigInt(j)) % 8n === 0n
    if (valid !== (found === 0)) continue
    add(`torsion-R-${valid ? 'valid' : 'invalid'}`, mixed, m, signature, valid)
    found++
  }
  return cases
}

/**
 * An ed25519 signature made with secret `seed` but hashing `pub` as the public key (a forger's
 * trick), and its challenge k. With `fixedR`, R is those bytes and S = k·a (no nonce).
 */
function signWithPublicKey(
  seed: Uint8Array,
  pub: Uint8Array,
  msg: Uint8Array,
  fixedR?: Uint8Array,
): { signature: Uint8Array; challenge: bigint } {
  const sha512 = nobleSha512
  const P = ed25519.Point
  const L = P.Fn.ORDER
  const h = sha512(seed)
  const head = h.slice(0, 32)
  head[0] = (head[0] as number) & 248
  head[31] = ((head[31] as number) & 127) | 64
  const le = (b: Uint8Array) => {
    let v = 0n
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number)
    return v
  }
  const a = le(head) % L
  const cat = (...p: Uint8Array[]) => {
    const out = new Uint8Array(p.reduce((n, x) => n + x.length, 0))
    let o = 0
    for (const x of p) {
      out.set(x, o)
      o += x.length
    }
    return out
  }
  const r = fixedR ? 0n : le(sha512(cat(h.slice(32), msg))) % L
  const R = fixedR ?? P.BASE.multiply(r === 0n ? 1n : r).toBytes()
  const kk = le(sha512(cat(R, pub, msg))) % L
  const S = (r + kk * a) % L
  const out = new Uint8Array(64)
  out.set(R)
  for (let i = 0; i < 32; i++) out[32 + i] = Number((S >> BigInt(8 * i)) & 0xffn)
  return { signature: out, challenge: kk }
}

/** Computes every vector from the samples. */
export function computeCoreVectors(crypto: CryptoProvider = nobleCrypto): CoreVectors {
  const { set } = sampleValidators()
  const txs = sampleTransactions()
  const receipt = sampleReceipt(txs[1] ?? (txs[0] as never))
  const { header0, block1, commit1, block2 } = sampleBlocks()
  const genesis = sampleGenesis()
  const voter = sampleValidators().keys[2]
  if (!voter) throw new Error('no voter')
  const vote = signVote(
    { networkId: NETWORK_ID, type: VoteType.Prevote, height: 5, round: 2, blockHash: sha256(utf8('some block')), validator: voter.address },
    voter.secretKey,
    crypto,
  )
  const merkle = [0, 1, 2, 3, 5, 8, 13].map((size) => {
    const items = Array.from({ length: size }, (_, i) => utf8(`item ${i}`))
    const leaves = items.map(merkleLeaf)
    return {
      size,
      root: toHex(merkleRoot(items)),
      proofOfLast: size === 0 ? '' : toHex(encode(merkleProofCodec, merkleProof(leaves, size - 1))),
    }
  })
  const inputs = ['', 'abc', 'loopchain', 'x'.repeat(1000)].map(utf8)
  return {
    uvarint: [0, 1, 127, 128, 300, 16384, 2 ** 32, Number.MAX_SAFE_INTEGER].map((n) => [n, toHex(encode(uvarint, n))]),
    bigUint: [0n, 1n, 255n, 256n, 10n ** 18n, 2n ** 256n - 1n].map((n) => [n.toString(), toHex(encode(bigUint(32), n))]),
    values: SAMPLE_VALUES.map(([name, v]) => ({ name, hex: toHex(encode(value, v)) })),
    hashes: inputs.map((b) => ({
      input: toHex(b),
      sha256: toHex(crypto.sha256(b)),
      sha3_256: toHex(sha3_256(b)),
      tagged: toHex(taggedHash(0x11, b)),
    })),
    keys: ['alice', 'bob', 'validator-a'].map((label) => {
      const k = sampleKey(label)
      const message = utf8(`message from ${label}`)
      return {
        label,
        secretKey: toHex(k.secretKey),
        publicKey: toHex(crypto.publicKey(k.secretKey)),
        address: accountAddress(crypto.publicKey(k.secretKey)),
        message: toHex(message),
        signature: toHex(crypto.sign(message, k.secretKey)),
      }
    }),
    verify: verifyCases(),
    validatorSet: enc(validatorSetCodec, set, validatorSetHash),
    transactions: txs.map((tx) => ({ hex: toHex(encode(transactionCodec, tx)), hash: toHex(transactionHash(tx.body)) })),
    receipt: { ...enc(receiptCodec, receipt, receiptHash), bloom: toHex(logsBloom([receipt])) },
    merkle,
    header0: enc(blockHeaderCodec, header0, blockHash),
    block1: enc(blockCodec, block1, (b) => blockHash(b.header)),
    commit1: enc(commitCodec, commit1, commitHash),
    vote: { hex: toHex(encode(signedVoteCodec, vote)), hash: toHex(vote.signature) },
    block2: enc(blockCodec, block2, (b) => blockHash(b.header)),
    genesis: { json: genesisToJson(genesis), hex: toHex(encode(genesisCodec, genesis)), hash: toHex(genesisHash(genesis)) },
    certificate: certificateVector(block1, genesis),
  }
}

function certificateVector(block1: Block, genesis: Genesis): CoreVectors['certificate'] {
  const [issued] = blockCertificates(block1.transactions, 1)
  const signature = block1.certSignatures[0]
  if (!issued || !signature) throw new Error('block 1 issues no certificate')
  const file = {
    chain: { chainId: genesis.chainId, networkId: NETWORK_ID, genesisHash: genesisHash(genesis) },
    certificate: issued.certificate,
    signature,
    evidence: undefined,
  }
  return {
    ...enc(certificateCodec, issued.certificate, certificateId),
    signature: toHex(signature),
    compact: encodeCompactCertificate(file),
  }
}

function roundTrip<T>(codec: Codec<T>, hex: string): string {
  return toHex(encode(codec, decode(codec, fromHex(hex))))
}

/**
 * Compares freshly computed vectors with the stored ones and round-trips every stored
 * encoding through its decoder. Returns the list of mismatches (empty when all agree).
 */
export function checkCoreVectors(stored: CoreVectors, crypto: CryptoProvider = nobleCrypto): string[] {
  const failures: string[] = []
  const fresh = computeCoreVectors(crypto) as unknown as Record<string, unknown>
  for (const [k, v] of Object.entries(stored)) {
    const a = JSON.stringify(v)
    const b = JSON.stringify(fresh[k])
    if (a !== b) failures.push(`${k}: computed ${b.slice(0, 200)} but the vector says ${a.slice(0, 200)}`)
  }
  const rt: [string, Codec<any>, string][] = [
    ['validatorSet', validatorSetCodec, stored.validatorSet.hex],
    ['receipt', receiptCodec, stored.receipt.hex],
    ['header0', blockHeaderCodec, stored.header0.hex],
    ['block1', blockCodec, stored.block1.hex],
    ['block2', blockCodec, stored.block2.hex],
    ['commit1', commitCodec, stored.commit1.hex],
    ['vote', signedVoteCodec, stored.vote.hex],
    ['genesis', genesisCodec, stored.genesis.hex],
    ['certificate', certificateCodec, stored.certificate.hex],
    ...stored.transactions.map((t, i): [string, Codec<any>, string] => [`transactions[${i}]`, transactionCodec, t.hex]),
    ...stored.values.map((v): [string, Codec<any>, string] => [`values.${v.name}`, value, v.hex]),
    ...stored.merkle
      .filter((m) => m.size > 0)
      .map((m): [string, Codec<any>, string] => [`merkle[${m.size}]`, merkleProofCodec, m.proofOfLast]),
  ]
  for (const [name, codec, hex] of rt) {
    try {
      if (roundTrip(codec, hex) !== hex) failures.push(`${name}: decode then encode changed the bytes`)
    } catch (e) {
      failures.push(`${name}: does not decode: ${(e as Error).message}`)
    }
  }
  try {
    const g = parseGenesis(stored.genesis.json)
    if (toHex(genesisHash(g)) !== stored.genesis.hash) failures.push('genesis: the JSON form parses to another hash')
  } catch (e) {
    failures.push(`genesis: JSON form does not parse: ${(e as Error).message}`)
  }
  try {
    const compact = decodeCompactCertificate(stored.certificate.compact)
    if (toHex(certificateId(compact.certificate)) !== stored.certificate.hash) failures.push('certificate: the compact form has another id')
    if (!crypto.verify(fromHex(stored.certificate.signature), fromHex(stored.certificate.hash), sampleKey('block-key-1').publicKey))
      failures.push(`certificate: ${crypto.name} refuses the block-key signature`)
  } catch (e) {
    failures.push(`certificate: compact form does not decode: ${(e as Error).message}`)
  }
  for (const c of stored.verify) {
    const got = crypto.verify(fromHex(c.signature), fromHex(c.message), fromHex(c.publicKey))
    if (got !== c.valid) failures.push(`verify ${c.name}: ${crypto.name} says ${got}, the vector says ${c.valid}`)
  }
  return failures
}
