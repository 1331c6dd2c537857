/**
 * How a certificate travels. The **portable file** is JSON holding the certificate and everything
 * an offline check needs: the block-key signature, the issuing header with its commit, the
 * validator-set changes that lead from the pinned genesis to that height, and the state proof of
 * the issuer's membership (with the block result it is against). The **compact form** is the
 * certificate's canonical bytes and signature in base45, for a QR code: it leaves the bulky proofs
 * out, so a verifier has to fetch them online (`lc_getCertificate`) before it can check more than
 * the form. The **status evidence** is what an online status check brings: a recent committed
 * header, the block result it commits to, and the proof of the certificate's registry record.
 */
import { type Codec, decode, encode, fixedBytes, struct } from '../codec/codec.js'
import { bytesEqual, fromHex, to0x } from '../codec/hex.js'
import { type Address, isAddress } from '../crypto/address.js'
import { DecodeError, LoopchainError } from '../errors.js'
import { type BlockResult, blockResultCodec } from '../ledger/block.js'
import { decodeSetChanges, encodeSetChanges, type SignedHeader, signedHeaderCodec, type ValidatorSetChange } from '../light/headers.js'
import { type StateProof, stateProofCodec } from '../state/proof.js'
import { fromBase45, toBase45 } from './base45.js'
import { type Certificate, type CertificateAttribute, certificateCodec, certificateId } from './certificate.js'

/** The `format` of the portable JSON file this code writes and reads. */
export const CERTIFICATE_FILE_FORMAT = 'loopchain-certificate/1'
/** What starts a compact certificate's text; upper case and `:` keep it in QR alphanumeric mode. */
export const COMPACT_CERTIFICATE_PREFIX = 'LC1:'

/** Why a certificate file, compact text or status evidence cannot be read; `details.path` names the field. */
export class CertificateError extends LoopchainError<'MALFORMED'> {
  constructor(path: string, message: string, cause?: unknown) {
    super('MALFORMED', `${path}: ${message}`, { details: { path }, ...(cause === undefined ? {} : { cause }) })
  }
}

/** Which chain a certificate belongs to: the verifier compares it with the genesis it pins. */
export interface ChainIdentity {
  /** Absent in the compact form. */
  readonly chainId: string | undefined
  readonly networkId: number
  readonly genesisHash: Uint8Array
}

/** The proof that the issuer was a member with the issuer right when its certificate was issued. */
export interface IssuerEvidence {
  /** The result of block `height − 1`: the issuing header's `resultRoot` is its hash. */
  readonly result: BlockResult
  /** The issuer's member record (a `MemberRecord`'s bytes) in that state; absent: not a member. */
  readonly member: Uint8Array | undefined
  /** The state proof of the member key's value (or absence) against `result.stateRoot`. */
  readonly proof: StateProof
}

/** What an offline check needs besides the certificate and its signature. */
export interface CertificateEvidence {
  /** The issuing header and the commit that finalised it. */
  readonly header: SignedHeader
  /** Every validator-set change from the genesis up to the issuing height, in order. */
  readonly changes: readonly ValidatorSetChange[]
  readonly issuer: IssuerEvidence
}

/** A certificate file, decoded. The compact form has no evidence. */
export interface CertificateFile {
  readonly chain: ChainIdentity
  readonly certificate: Certificate
  /** The issuing block key's signature of the certificate's id. */
  readonly signature: Uint8Array
  readonly evidence: CertificateEvidence | undefined
}

/**
 * Evidence of a certificate's current status, brought online: header R (committed; verified by
 * the caller or against the validator sets), the result of block R − 1 that header R commits to,
 * and the proof of the registry record (or of its absence) in that state: "status as of height R − 1".
 */
export interface CertificateStatusEvidence {
  readonly header: SignedHeader
  readonly result: BlockResult
  /** The record's bytes (a `CertificateRecord`), or undefined when the proof shows absence. */
  readonly record: Uint8Array | undefined
  readonly proof: StateProof
  /** Validator-set changes from the genesis up to header R, for a verifier without its own. */
  readonly changes?: readonly ValidatorSetChange[]
}

// ---------------------------------------------------------------------------------------------
// JSON

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CertificateError(path, 'must be an object')
  return v as Record<string, unknown>
}
function only(o: Record<string, unknown>, keys: readonly string[], path: string): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new CertificateError(`${path}.${k}`, 'is not a known field')
}
function str(v: unknown, path: string): string {
  if (typeof v !== 'string') throw new CertificateError(path, 'must be a string')
  return v
}
function int(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new CertificateError(path, 'must be a non-negative integer')
  return v
}
function hex(v: unknown, path: string, length?: number): Uint8Array {
  let b: Uint8Array
  try {
    b = fromHex(str(v, path))
  } catch (e) {
    if (e instanceof DecodeError) throw new CertificateError(path, 'must be 0x-prefixed hex', e)
    throw e
  }
  if (length !== undefined && b.length !== length) throw new CertificateError(path, `must be ${length} bytes, not ${b.length}`)
  return b
}
function nullable<T>(v: unknown, read: (v: unknown) => T): T | undefined {
  return v === null || v === undefined ? undefined : read(v)
}
function decoded<T>(codec: Codec<T>, v: unknown, path: string): T {
  try {
    return decode(codec, hex(v, path))
  } catch (e) {
    if (e instanceof DecodeError) throw new CertificateError(path, `does not decode: ${e.message}`, e)
    throw e
  }
}

/** A certificate as JSON: readable fields, times in microseconds since the Unix epoch. */
export function certificateToJson(c: Certificate): Json {
  return {
    version: c.version,
    networkId: c.networkId,
    issuer: c.issuer,
    height: c.height,
    txHash: to0x(c.txHash),
    subject: c.subject,
    subjectKey: c.subjectKey === undefined ? null : to0x(c.subjectKey),
    attributes: c.attributes.map((a) => ({ key: a.key, value: a.value })),
    validFrom: c.validFrom,
    validUntil: c.validUntil ?? null,
    replaces: c.replaces === undefined ? null : to0x(c.replaces),
  }
}

const CERT_FIELDS = [
  'version',
  'networkId',
  'issuer',
  'height',
  'txHash',
  'subject',
  'subjectKey',
  'attributes',
  'validFrom',
  'validUntil',
  'replaces',
]

/** Reads a certificate's JSON form; throws {@link CertificateError} naming the first bad field. */
export function certificateFromJson(json: unknown, path = 'certificate'): Certificate {
  const o = obj(json, path)
  only(o, CERT_FIELDS, path)
  if (!Array.isArray(o.attributes)) throw new CertificateError(`${path}.attributes`, 'must be an array of { key, value }')
  const attributes = o.attributes.map((x, i): CertificateAttribute => {
    const a = obj(x, `${path}.attributes[${i}]`)
    only(a, ['key', 'value'], `${path}.attributes[${i}]`)
    return { key: str(a.key, `${path}.attributes[${i}].key`), value: str(a.value, `${path}.attributes[${i}].value`) }
  })
  const issuer = str(o.issuer, `${path}.issuer`)
  if (!isAddress(issuer)) throw new CertificateError(`${path}.issuer`, 'must be an address')
  const c: Certificate = {
    version: int(o.version, `${path}.version`),
    networkId: int(o.networkId, `${path}.networkId`),
    issuer: issuer as Address,
    height: int(o.height, `${path}.height`),
    txHash: hex(o.txHash, `${path}.txHash`, 32),
    subject: str(o.subject, `${path}.subject`),
    subjectKey: nullable(o.subjectKey, (v) => hex(v, `${path}.subjectKey`, 32)),
    attributes,
    validFrom: int(o.validFrom, `${path}.validFrom`),
    validUntil: nullable(o.validUntil, (v) => int(v, `${path}.validUntil`)),
    replaces: nullable(o.replaces, (v) => hex(v, `${path}.replaces`, 32)),
  }
  // The codec's limits (lengths, counts, valid Unicode) are part of the format.
  try {
    encode(certificateCodec, c)
  } catch (e) {
    throw new CertificateError(path, `is out of the format's limits: ${(e as Error).message}`, e)
  }
  return c
}

/** The portable file's JSON form (for `JSON.stringify`). */
export function certificateFileToJson(f: CertificateFile): Json {
  const out: { [key: string]: Json } = {
    format: CERTIFICATE_FILE_FORMAT,
    chain: { chainId: f.chain.chainId ?? null, networkId: f.chain.networkId, genesisHash: to0x(f.chain.genesisHash) },
    id: to0x(certificateId(f.certificate)),
    certificate: certificateToJson(f.certificate),
    signature: to0x(f.signature),
  }
  if (f.evidence) {
    const e = f.evidence
    out.evidence = {
      header: to0x(encode(signedHeaderCodec, e.header)),
      validatorSetChanges: to0x(encodeSetChanges(e.changes)),
      issuer: {
        result: to0x(encode(blockResultCodec, e.issuer.result)),
        member: e.issuer.member === undefined ? null : to0x(e.issuer.member),
        proof: to0x(encode(stateProofCodec, e.issuer.proof)),
      },
    }
  }
  return out
}

/**
 * Reads a portable file (already `JSON.parse`d). Checks its shape and that every binary part
 * decodes, and that `id` is the certificate's digest; the rest is {@link verifyCertificate}'s.
 * Throws {@link CertificateError} naming the first bad field.
 */
export function parseCertificateFile(json: unknown): CertificateFile {
  const o = obj(json, '(root)')
  only(o, ['format', 'chain', 'id', 'certificate', 'signature', 'evidence'], '(root)')
  if (o.format !== CERTIFICATE_FILE_FORMAT) throw new CertificateError('format', `must be ${JSON.stringify(CERTIFICATE_FILE_FORMAT)}`)
  const ch = obj(o.chain, 'chain')
  only(ch, ['chainId', 'networkId', 'genesisHash'], 'chain')
  const chain: ChainIdentity = {
    chainId: nullable(ch.chainId, (v) => str(v, 'chain.chainId')),
    networkId: int(ch.networkId, 'chain.networkId'),
    genesisHash: hex(ch.genesisHash, 'chain.genesisHash', 32),
  }
  const certificate = certificateFromJson(o.certificate)
  const id = hex(o.id, 'id', 32)
  if (!bytesEqual(id, certificateId(certificate)))
    throw new CertificateError('id', 'is not the digest of the certificate (the certificate was altered)')
  const signature = hex(o.signature, 'signature', 64)
  let evidence: CertificateEvidence | undefined
  if (o.evidence !== undefined && o.evidence !== null) {
    const e = obj(o.evidence, 'evidence')
    only(e, ['header', 'validatorSetChanges', 'issuer'], 'evidence')
    const iss = obj(e.issuer, 'evidence.issuer')
    only(iss, ['result', 'member', 'proof'], 'evidence.issuer')
    let changes: ValidatorSetChange[]
    try {
      changes = decodeSetChanges(hex(e.validatorSetChanges, 'evidence.validatorSetChanges'))
    } catch (err) {
      if (err instanceof DecodeError) throw new CertificateError('evidence.validatorSetChanges', `does not decode: ${err.message}`, err)
      throw err
    }
    evidence = {
      header: decoded(signedHeaderCodec, e.header, 'evidence.header'),
      changes,
      issuer: {
        result: decoded(blockResultCodec, iss.result, 'evidence.issuer.result'),
        member: nullable(iss.member, (v) => hex(v, 'evidence.issuer.member')),
        proof: decoded(stateProofCodec, iss.proof, 'evidence.issuer.proof'),
      },
    }
  }
  return { chain, certificate, signature, evidence }
}

// ---------------------------------------------------------------------------------------------
// Compact form

interface Compact {
  genesisHash: Uint8Array
  certificate: Certificate
  signature: Uint8Array
}

/** Codec of the compact form's bytes: genesis hash, certificate, block-key signature. */
export const compactCertificateCodec: Codec<Compact> = struct('CompactCertificate', {
  genesisHash: fixedBytes(32),
  certificate: certificateCodec,
  signature: fixedBytes(64),
}) as unknown as Codec<Compact>

/** The compact text of a certificate, for a QR code: `LC1:` and base45 of the compact bytes. */
export function encodeCompactCertificate(f: CertificateFile): string {
  return (
    COMPACT_CERTIFICATE_PREFIX +
    toBase45(encode(compactCertificateCodec, { genesisHash: f.chain.genesisHash, certificate: f.certificate, signature: f.signature }))
  )
}

/**
 * Reads compact text (surrounding white space ignored). The result has no evidence: a verifier
 * fetches the full file by the certificate's id to check the header, signature and issuer.
 * Throws {@link CertificateError}.
 */
export function decodeCompactCertificate(text: string): CertificateFile {
  const t = text.trim()
  if (!t.startsWith(COMPACT_CERTIFICATE_PREFIX)) throw new CertificateError('(compact)', `must start with ${COMPACT_CERTIFICATE_PREFIX}`)
  let c: Compact
  try {
    c = decode(compactCertificateCodec, fromBase45(t.slice(COMPACT_CERTIFICATE_PREFIX.length)))
  } catch (e) {
    if (e instanceof DecodeError) throw new CertificateError('(compact)', `does not decode: ${e.message}`, e)
    throw e
  }
  return {
    chain: { chainId: undefined, networkId: c.certificate.networkId, genesisHash: c.genesisHash },
    certificate: c.certificate,
    signature: c.signature,
    evidence: undefined,
  }
}

// ---------------------------------------------------------------------------------------------
// Status evidence

/** Status evidence as JSON (`lc_getCertificateStatus`); `status` and `asOfHeight` are for display, not trusted. */
export function statusEvidenceToJson(id: Uint8Array, ev: CertificateStatusEvidence, status: string | null): Json {
  return {
    id: to0x(id),
    height: ev.header.header.height,
    asOfHeight: ev.header.header.height - 1,
    status,
    header: to0x(encode(signedHeaderCodec, ev.header)),
    result: to0x(encode(blockResultCodec, ev.result)),
    record: ev.record === undefined ? null : to0x(ev.record),
    proof: to0x(encode(stateProofCodec, ev.proof)),
    validatorSetChanges: to0x(encodeSetChanges(ev.changes ?? [])),
  }
}

/** Reads status evidence from its JSON form. Throws {@link CertificateError}. */
export function parseStatusEvidence(json: unknown): { id: Uint8Array; evidence: CertificateStatusEvidence } {
  const o = obj(json, '(status)')
  let changes: ValidatorSetChange[] = []
  try {
    changes = o.validatorSetChanges === undefined ? [] : decodeSetChanges(hex(o.validatorSetChanges, 'validatorSetChanges'))
  } catch (e) {
    if (e instanceof DecodeError) throw new CertificateError('validatorSetChanges', `does not decode: ${e.message}`, e)
    throw e
  }
  return {
    id: hex(o.id, 'id', 32),
    evidence: {
      header: decoded(signedHeaderCodec, o.header, 'header'),
      result: decoded(blockResultCodec, o.result, 'result'),
      record: nullable(o.record, (v) => hex(v, 'record')),
      proof: decoded(stateProofCodec, o.proof, 'proof'),
      changes,
    },
  }
}
