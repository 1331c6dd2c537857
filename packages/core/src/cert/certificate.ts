/**
 * Certificates (DESIGN.md, "Certificates"; docs/certificates.md). A member institution holding the
 * issuer right issues a certificate with a call to the certificate registry system SCORE; the
 * certificate is everything that call says (subject, optional subject key, attributes, validity
 * window, the certificate it renews) plus what the chain adds: the network, the issuer (the
 * sender), the issuing height and the transaction hash. Its canonical encoding is hashed into the
 * certificate's id, which the issuing block's per-block key signs.
 *
 * The id depends on the transaction and the height only — never on execution — so the proposer
 * can sign it while building the block, and every validator can check the signature before voting.
 */
import { type Codec, decode, fixedBytes, hashEncoded, hasLoneSurrogate, list, option, string, struct, u8, uvarint } from '../codec/codec.js'
import { compareBytes, utf8 } from '../codec/hex.js'
import type { Value } from '../codec/value.js'
import { type Address, address } from '../crypto/address.js'
import { Domain } from '../crypto/hash.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { DecodeError } from '../errors.js'
import { CERTIFICATE_REGISTRY_ADDRESS } from '../exec/layout.js'
import { type Block, BlockError } from '../ledger/block.js'
import { callDataCodec, type Transaction, TxKind, transactionHash } from '../ledger/transaction.js'
import { type AbiMethod, type AbiParam, type AbiType, checkParams, type ScoreAbi } from '../score/abi.js'

/** The certificate format version this code writes and accepts. */
export const CERTIFICATE_VERSION = 1
/** Longest subject, in UTF-8 bytes: a name or an identifier, not a document. */
export const MAX_SUBJECT_BYTES = 256
/** Most attributes on one certificate: keeps the compact (QR) form within a scannable size. */
export const MAX_ATTRIBUTES = 32
/** Longest attribute name, in UTF-8 bytes. */
export const MAX_ATTRIBUTE_KEY_BYTES = 64
/** Longest attribute value, in UTF-8 bytes. */
export const MAX_ATTRIBUTE_VALUE_BYTES = 1024
/** Length of a certificate id (a SHA-256 digest). */
export const CERTIFICATE_ID_LENGTH = 32

/** One named attribute, e.g. `{ key: 'degree', value: 'MSc' }`. */
export interface CertificateAttribute {
  readonly key: string
  readonly value: string
}

/** What the issuing transaction says: the certificate's terms. */
export interface CertificateTerms {
  /** Who or what the certificate is about. */
  readonly subject: string
  /** The subject's ed25519 public key, when the subject holds one. */
  readonly subjectKey: Uint8Array | undefined
  /** Sorted by the UTF-8 bytes of the key, keys unique. */
  readonly attributes: readonly CertificateAttribute[]
  /** Start of validity, microseconds since the Unix epoch. */
  readonly validFrom: number
  /** End of validity (exclusive), microseconds since the Unix epoch; absent: no end. */
  readonly validUntil: number | undefined
  /** The id of the certificate this one renews. */
  readonly replaces: Uint8Array | undefined
}

/** A certificate: its terms and what the chain adds. Its digest is its id. */
export interface Certificate extends CertificateTerms {
  readonly version: number
  readonly networkId: number
  /** The issuing member institution's account (the transaction's sender). */
  readonly issuer: Address
  /** Height of the issuing block. */
  readonly height: number
  /** Hash of the issuing transaction. */
  readonly txHash: Uint8Array
}

const attributeCodec = struct('CertificateAttribute', {
  key: string(MAX_ATTRIBUTE_KEY_BYTES),
  value: string(MAX_ATTRIBUTE_VALUE_BYTES),
})

/** Codec of {@link Certificate}: what its id hashes, and what the compact form carries. */
export const certificateCodec: Codec<Certificate> = struct('Certificate', {
  version: u8,
  networkId: uvarint,
  issuer: address,
  height: uvarint,
  txHash: fixedBytes(32),
  subject: string(MAX_SUBJECT_BYTES),
  subjectKey: option(fixedBytes(32)),
  attributes: list(attributeCodec, MAX_ATTRIBUTES),
  validFrom: uvarint,
  validUntil: option(uvarint),
  replaces: option(fixedBytes(CERTIFICATE_ID_LENGTH)),
}) as unknown as Codec<Certificate>

/** The certificate's id: the tagged SHA-256 of its canonical encoding, which the block key signs. */
export function certificateId(c: Certificate): Uint8Array {
  return hashEncoded(Domain.Certificate, certificateCodec, c)
}

/**
 * The rules a certificate obeys beyond its codec: the known version, a non-empty subject, attribute
 * keys non-empty and strictly sorted by their UTF-8 bytes, and a window that ends after it starts.
 * Returns why it breaks one, or undefined.
 */
export function checkCertificate(c: Certificate): string | undefined {
  if (c.version !== CERTIFICATE_VERSION) return `certificate version ${c.version} is not ${CERTIFICATE_VERSION}`
  if (c.subject.length === 0) return 'the subject is empty'
  let prev: Uint8Array | undefined
  for (const a of c.attributes) {
    if (a.key.length === 0) return 'an attribute has an empty name'
    const k = utf8(a.key)
    if (prev !== undefined && compareBytes(prev, k) >= 0)
      return `attributes must be sorted by name without repeats (at ${JSON.stringify(a.key)})`
    prev = k
  }
  if (c.validUntil !== undefined && c.validUntil <= c.validFrom) return 'validUntil must be after validFrom'
  return undefined
}

// ---------------------------------------------------------------------------------------------
// The registry's ABI, shared by the executor (certificates SCORE) and the block-key signer.

const p = (name: string, type: AbiType, optional = false): AbiParam => ({ name, type, optional })
const m = (name: string, params: AbiParam[], readonly: boolean, returns?: AbiType): AbiMethod => ({
  name,
  params,
  readonly,
  payable: false,
  returns,
})
const TERMS = [
  p('subject', 'str'),
  p('subjectKey', 'bytes', true),
  p('attributes', 'dict', true),
  p('validFrom', 'int'),
  p('validUntil', 'int', true),
]

const METHODS: Record<string, AbiMethod> = Object.assign(Object.create(null), {
  issue: m('issue', TERMS, false, 'bytes'),
  renew: m('renew', [p('replaces', 'bytes'), ...TERMS], false, 'bytes'),
  revoke: m('revoke', [p('id', 'bytes'), p('reason', 'str', true)], false),
  get: m('get', [p('id', 'bytes')], true),
  status: m('status', [p('id', 'bytes')], true),
})

/** The certificate registry's ABI (for `getScoreApi`); events are listed in docs/certificates.md. */
export const CERTIFICATE_REGISTRY_ABI: ScoreAbi = Object.freeze({
  name: 'CertificateRegistry',
  methods: Object.freeze(METHODS),
  events: Object.freeze(Object.create(null)),
})

function isMap(v: Value | undefined): v is { [key: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function timestamp(v: Value | undefined, what: string): number | string {
  if (typeof v !== 'bigint' || v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER))
    return `${what} must be an int in 0..${Number.MAX_SAFE_INTEGER} (microseconds since the Unix epoch)`
  return Number(v)
}

function text(s: string, what: string, min: number, max: number): string | undefined {
  if (hasLoneSurrogate(s)) return `${what} is not valid Unicode`
  const n = utf8(s).length
  if (n < min || n > max) return `${what} must be ${min}..${max} UTF-8 bytes, not ${n}`
  return undefined
}

/**
 * The terms of an `issue` or `renew` call, or why its parameters are not acceptable. The same
 * function decides which transactions the block key signs and what the registry records, so the
 * two can never disagree.
 */
export function termsFromCall(method: string, params: Value): CertificateTerms | string {
  if (method !== 'issue' && method !== 'renew') return `${method} does not issue a certificate`
  const bad = checkParams(METHODS[method] as AbiMethod, params)
  if (bad !== undefined) return bad
  const a = (params ?? {}) as { [key: string]: Value }
  const subject = a.subject as string
  const badSubject = text(subject, 'subject', 1, MAX_SUBJECT_BYTES)
  if (badSubject !== undefined) return badSubject
  const key = a.subjectKey ?? undefined
  if (key !== undefined && (key as Uint8Array).length !== 32) return 'subjectKey must be 32 bytes (an ed25519 public key)'
  const attrs = a.attributes ?? {}
  if (!isMap(attrs)) return 'attributes must be a map of names to strings'
  const entries = Object.entries(attrs)
  if (entries.length > MAX_ATTRIBUTES) return `at most ${MAX_ATTRIBUTES} attributes`
  const attributes: CertificateAttribute[] = []
  for (const [k, v] of entries) {
    const badKey = text(k, 'an attribute name', 1, MAX_ATTRIBUTE_KEY_BYTES)
    if (badKey !== undefined) return badKey
    if (typeof v !== 'string') return `attribute ${JSON.stringify(k).slice(0, 70)} must be a string`
    const badValue = text(v, `attribute ${JSON.stringify(k).slice(0, 70)}`, 0, MAX_ATTRIBUTE_VALUE_BYTES)
    if (badValue !== undefined) return badValue
    attributes.push({ key: k, value: v })
  }
  attributes.sort((x, y) => compareBytes(utf8(x.key), utf8(y.key)))
  const validFrom = timestamp(a.validFrom, 'validFrom')
  if (typeof validFrom === 'string') return validFrom
  let validUntil: number | undefined
  if (a.validUntil !== undefined && a.validUntil !== null) {
    const t = timestamp(a.validUntil, 'validUntil')
    if (typeof t === 'string') return t
    if (t <= validFrom) return 'validUntil must be after validFrom'
    validUntil = t
  }
  let replaces: Uint8Array | undefined
  if (method === 'renew') {
    replaces = a.replaces as Uint8Array
    if (replaces.length !== CERTIFICATE_ID_LENGTH) return `replaces must be a certificate id (${CERTIFICATE_ID_LENGTH} bytes)`
  }
  return { subject, subjectKey: key as Uint8Array | undefined, attributes, validFrom, validUntil, replaces }
}

/** The certificate of `terms` issued by `issuer` in transaction `txHash` of block `height`. */
export function makeCertificate(
  terms: CertificateTerms,
  at: { networkId: number; issuer: Address; height: number; txHash: Uint8Array },
): Certificate {
  return {
    version: CERTIFICATE_VERSION,
    networkId: at.networkId,
    issuer: at.issuer,
    height: at.height,
    txHash: at.txHash,
    subject: terms.subject,
    subjectKey: terms.subjectKey,
    attributes: terms.attributes,
    validFrom: terms.validFrom,
    validUntil: terms.validUntil,
    replaces: terms.replaces,
  }
}

/**
 * The certificate `tx` issues if block `height` carries it: defined for a well-formed `issue` or
 * `renew` call to the registry with no value, whether or not execution then accepts it (the
 * sender's right, the replaced certificate's status and the fee are execution's business).
 */
export function certificateOfTransaction(tx: Transaction, height: number): Certificate | undefined {
  const b = tx.body
  if (b.kind !== TxKind.Call || b.to !== CERTIFICATE_REGISTRY_ADDRESS || b.value !== 0n) return undefined
  let data: { method: string; params: Value }
  try {
    data = decode(callDataCodec, b.data)
  } catch (e) {
    if (e instanceof DecodeError) return undefined
    throw e
  }
  const terms = termsFromCall(data.method, data.params)
  if (typeof terms === 'string') return undefined
  return makeCertificate(terms, { networkId: b.networkId, issuer: b.from, height, txHash: transactionHash(b) })
}

/** The certificates a block at `height` with `transactions` issues, in transaction order, with each one's index. */
export function blockCertificates(transactions: readonly Transaction[], height: number): { index: number; certificate: Certificate }[] {
  const out: { index: number; certificate: Certificate }[] = []
  transactions.forEach((tx, index) => {
    const certificate = certificateOfTransaction(tx, height)
    if (certificate !== undefined) out.push({ index, certificate })
  })
  return out
}

/** Signs the id of every certificate the transactions issue with the block's secret key: the block's `certSignatures`. */
export function signBlockCertificates(
  transactions: readonly Transaction[],
  height: number,
  blockSecret: Uint8Array,
  crypto: CryptoProvider = nobleCrypto,
): Uint8Array[] {
  return blockCertificates(transactions, height).map(({ certificate }) => crypto.sign(certificateId(certificate), blockSecret))
}

/**
 * Checks that a block carries exactly one valid block-key signature per certificate it issues, in
 * transaction order. Throws {@link BlockError} `CERT_SIGNATURES`: a proposal or a synced block
 * without them would leave a certificate no one can verify.
 */
export function checkBlockCertSignatures(block: Block, crypto: CryptoProvider = nobleCrypto): void {
  const h = block.header
  const certs = blockCertificates(block.transactions, h.height)
  if (block.certSignatures.length !== certs.length) {
    throw new BlockError(
      'CERT_SIGNATURES',
      `block ${h.height} issues ${certs.length} certificates but carries ${block.certSignatures.length} block-key signatures`,
    )
  }
  certs.forEach(({ index, certificate }, i) => {
    if (!crypto.verify(block.certSignatures[i] as Uint8Array, certificateId(certificate), h.blockKey)) {
      throw new BlockError(
        'CERT_SIGNATURES',
        `the block-key signature of the certificate in transaction ${index} of block ${h.height} does not verify`,
      )
    }
  })
}
