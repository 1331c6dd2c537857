/**
 * The certificate registry system SCORE: native TypeScript inside the executor, at the fixed
 * address {@link CERTIFICATE_REGISTRY_ADDRESS}, next to governance. Member institutions holding the
 * issuer right issue, renew and revoke certificates; the registry keeps one record per certificate
 * (issuer, issuing height and transaction, status) under `r ‖ id`, so that a light client can prove
 * a certificate's current status against a verified header. The certificate's content stays in its
 * block, signed by that block's key (docs/certificates.md).
 *
 * Only the member that issued a certificate may renew or revoke it, and only while it still holds
 * the issuer right: a member is one institution's account (governance keys members by address), so
 * "the same institution" and "the same member" are one thing here.
 */

import { CERTIFICATE_REGISTRY_ABI, certificateId, makeCertificate, termsFromCall } from '../cert/certificate.js'
import { decode, encode, hasLoneSurrogate } from '../codec/codec.js'
import { to0x, utf8 } from '../codec/hex.js'
import type { Value } from '../codec/value.js'
import type { Address } from '../crypto/address.js'
import { Right } from '../ledger/genesis.js'
import type { EventLog } from '../ledger/receipt.js'
import { type AbiMethod, checkParams } from '../score/abi.js'
import type { StateOverlay } from '../score/overlay.js'
import { readMember } from './governance.js'
import {
  CERTIFICATE_REGISTRY_ADDRESS,
  type CertificateRecord,
  CertificateStatus,
  certificateRecordCodec,
  certificateStatusKey,
  MAX_REVOCATION_REASON,
} from './layout.js'

/** Steps a registry call costs beyond the transaction's base: native code, priced like governance. */
export const CERTIFICATE_STEPS = 20_000

/** The outcome of a registry call: a result and its logs, or a typed failure (nothing written). */
export type CertificateCallResult =
  | { readonly ok: true; readonly result: Value; readonly logs: readonly EventLog[] }
  | { readonly ok: false; readonly failure: { readonly code: string; readonly message: string } }

/** What a registry call is made with. */
export interface CertificateCall {
  readonly from: Address
  readonly method: string
  readonly params: Value
  readonly value: bigint
  readonly networkId: number
  readonly height: number
  /** The calling transaction's hash (part of an issued certificate). */
  readonly txHash: Uint8Array
  /** A read-only query: writing methods are refused (`READONLY_VIOLATION`). */
  readonly query: boolean
}

/** A status's name as the registry's read methods and the JSON-RPC give it. */
export const CERTIFICATE_STATUS_NAMES = ['active', 'revoked', 'superseded'] as const

/** The record of certificate `id`, or undefined. */
export function readCertificateRecord(state: StateOverlay, id: Uint8Array): CertificateRecord | undefined {
  const raw = state.get(certificateStatusKey(id))
  return raw === undefined ? undefined : decode(certificateRecordCodec, raw)
}

function writeRecord(state: StateOverlay, id: Uint8Array, r: CertificateRecord): void {
  state.set(certificateStatusKey(id), encode(certificateRecordCodec, r))
}

/** A record as the registry's `get` returns it. */
export function certificateRecordToValue(id: Uint8Array, r: CertificateRecord): Value {
  return {
    id,
    issuer: r.issuer,
    height: BigInt(r.height),
    txHash: r.txHash,
    status: CERTIFICATE_STATUS_NAMES[r.status],
    changedAt: r.changedAt === undefined ? null : BigInt(r.changedAt),
    supersededBy: r.supersededBy ?? null,
    replaces: r.replaces ?? null,
    reason: r.reason ?? null,
  }
}

function log(event: string, indexed: Value[], data: Value[] = []): EventLog {
  return { score: CERTIFICATE_REGISTRY_ADDRESS, event, indexed, data }
}

const short = (id: Uint8Array) => `${to0x(id).slice(0, 18)}…`

/**
 * Runs a registry method. Writes go into `state` only on success; a failure writes nothing:
 * `UNKNOWN_METHOD`, `NOT_PAYABLE`, `READONLY_VIOLATION`, `INVALID_ARGUMENT`, `PERMISSION_DENIED`
 * (the sender lacks the issuer right), `UNKNOWN_CERTIFICATE`, `NOT_CERTIFICATE_ISSUER` (another
 * member issued it), `ALREADY_REVOKED`, `ALREADY_SUPERSEDED`, `CERTIFICATE_EXISTS`.
 */
export function certificateCall(state: StateOverlay, call: CertificateCall): CertificateCallResult {
  const fail = (code: string, message: string): CertificateCallResult => ({ ok: false, failure: { code, message: message.slice(0, 256) } })
  const methods = CERTIFICATE_REGISTRY_ABI.methods
  const method = Object.hasOwn(methods, call.method) ? methods[call.method] : undefined
  if (method === undefined) return fail('UNKNOWN_METHOD', `CertificateRegistry has no method ${JSON.stringify(call.method).slice(0, 70)}`)
  if (call.value !== 0n) return fail('NOT_PAYABLE', `CertificateRegistry.${method.name} does not accept a value`)
  if (!method.readonly) {
    if (call.query) return fail('READONLY_VIOLATION', `CertificateRegistry.${method.name} writes state and cannot run in a query`)
    // Rights are read from the state of this very transaction: a governance change applies from the next one.
    if (((readMember(state, call.from)?.rights ?? 0) & Right.Issuer) === 0)
      return fail('PERMISSION_DENIED', `${call.from} is not a member with the issuer right`)
  }
  const bad = checkParams(method as AbiMethod, call.params)
  if (bad !== undefined) return fail('INVALID_ARGUMENT', bad)
  const args = (call.params ?? {}) as { [key: string]: Value }
  switch (method.name) {
    case 'issue':
    case 'renew': {
      const terms = termsFromCall(method.name, call.params)
      if (typeof terms === 'string') return fail('INVALID_ARGUMENT', terms)
      let old: CertificateRecord | undefined
      if (terms.replaces !== undefined) {
        old = readCertificateRecord(state, terms.replaces)
        const refused = mayChange(old, terms.replaces, call.from)
        if (refused !== undefined) return fail(refused.code, refused.message)
      }
      const cert = makeCertificate(terms, { networkId: call.networkId, issuer: call.from, height: call.height, txHash: call.txHash })
      const id = certificateId(cert)
      // A transaction hash is unique, so is the id; refuse rather than overwrite should that ever fail.
      if (readCertificateRecord(state, id) !== undefined) return fail('CERTIFICATE_EXISTS', `certificate ${short(id)} is already recorded`)
      writeRecord(state, id, {
        issuer: call.from,
        height: call.height,
        txHash: call.txHash,
        status: CertificateStatus.Active,
        changedAt: undefined,
        supersededBy: undefined,
        replaces: terms.replaces,
        reason: undefined,
      })
      if (old === undefined || terms.replaces === undefined)
        return { ok: true, result: id, logs: [log('Issued(bytes,Address)', [id, call.from])] }
      writeRecord(state, terms.replaces, { ...old, status: CertificateStatus.Superseded, changedAt: call.height, supersededBy: id })
      return { ok: true, result: id, logs: [log('Renewed(bytes,bytes,Address)', [id, terms.replaces, call.from])] }
    }
    case 'revoke': {
      const id = args.id as Uint8Array
      const reason = (args.reason ?? undefined) as string | undefined
      if (reason !== undefined && (hasLoneSurrogate(reason) || utf8(reason).length > MAX_REVOCATION_REASON))
        return fail('INVALID_ARGUMENT', `reason must be at most ${MAX_REVOCATION_REASON} UTF-8 bytes`)
      if (id.length !== 32) return fail('INVALID_ARGUMENT', 'a certificate id is 32 bytes')
      const rec = readCertificateRecord(state, id)
      const refused = mayChange(rec, id, call.from)
      if (refused !== undefined) return fail(refused.code, refused.message)
      writeRecord(state, id, { ...(rec as CertificateRecord), status: CertificateStatus.Revoked, changedAt: call.height, reason })
      return { ok: true, result: null, logs: [log('Revoked(bytes,Address,str)', [id, call.from], [reason ?? ''])] }
    }
    case 'get': {
      const id = args.id as Uint8Array
      const rec = id.length === 32 ? readCertificateRecord(state, id) : undefined
      return { ok: true, result: rec === undefined ? null : certificateRecordToValue(id, rec), logs: [] }
    }
    case 'status': {
      const id = args.id as Uint8Array
      const rec = id.length === 32 ? readCertificateRecord(state, id) : undefined
      return { ok: true, result: rec === undefined ? null : CERTIFICATE_STATUS_NAMES[rec.status], logs: [] }
    }
    default:
      return fail('UNKNOWN_METHOD', `CertificateRegistry has no method ${method.name}`)
  }
}

/** Why `from` may not renew or revoke certificate `id` (recorded as `rec`), or undefined. */
function mayChange(rec: CertificateRecord | undefined, id: Uint8Array, from: Address): { code: string; message: string } | undefined {
  if (rec === undefined) return { code: 'UNKNOWN_CERTIFICATE', message: `no certificate ${short(id)}` }
  if (rec.issuer !== from)
    return { code: 'NOT_CERTIFICATE_ISSUER', message: `certificate ${short(id)} was issued by ${rec.issuer}, not ${from}` }
  if (rec.status === CertificateStatus.Revoked)
    return { code: 'ALREADY_REVOKED', message: `certificate ${short(id)} was revoked at height ${rec.changedAt}` }
  if (rec.status === CertificateStatus.Superseded) {
    const by = rec.supersededBy ? short(rec.supersededBy) : '?'
    return { code: 'ALREADY_SUPERSEDED', message: `certificate ${short(id)} was renewed at height ${rec.changedAt} by ${by}` }
  }
  return undefined
}
