/**
 * Certificate verification, the same in a browser and a node (docs/certificates.md). Six named
 * steps, each reported with pass, fail or skipped and the reason:
 *
 * 1. `well-formed` — the file reads, every part decodes, the id is the certificate's digest;
 * 2. `header-committed` — the file is for the pinned chain, and the header at the issuing height is
 *    committed by more than 2/3 of the validator set in force there, followed from the pinned genesis;
 * 3. `block-key-signature` — that header's block key signed the certificate's id;
 * 4. `issuer-right` — the issuer was a member holding the issuer right in the state that header
 *    commits to (a state proof);
 * 5. `status` — the registry's record, proven against a recent verified header, says the
 *    certificate is neither revoked nor renewed ("as of height H"); skipped without online evidence;
 * 6. `validity-window` — `now` lies in the certificate's window.
 *
 * `valid` is true when all six pass, false when any fails, and `'partial'` when none fails but some
 * were skipped (offline, or the compact form without its proofs): the report then says what was
 * not checked. Pure: `now` is an input, and nothing is fetched.
 */
import { decode } from '../codec/codec.js'
import { bytesEqual, to0x } from '../codec/hex.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { DecodeError } from '../errors.js'
import { CertificateStatus, certificateRecordCodec, certificateStatusKey, memberKey, memberRecordCodec } from '../exec/layout.js'
import { blockHash, blockResultHash } from '../ledger/block.js'
import { type Genesis, genesisHash, Right } from '../ledger/genesis.js'
import { totalPower, type ValidatorSet } from '../ledger/validators.js'
import { followValidatorSets, LightError, type SetInForce, setAt, type ValidatorSetChange, verifySignedHeader } from '../light/headers.js'
import { StateProofError } from '../state/errors.js'
import { verifyStateProof } from '../state/proof.js'
import { type Certificate, certificateId, checkCertificate } from './certificate.js'
import {
  CertificateError,
  type CertificateFile,
  type CertificateStatusEvidence,
  COMPACT_CERTIFICATE_PREFIX,
  decodeCompactCertificate,
  parseCertificateFile,
} from './file.js'

/** The steps, in the order they run and are reported. */
export const CERTIFICATE_STEP_NAMES = [
  'well-formed',
  'header-committed',
  'block-key-signature',
  'issuer-right',
  'status',
  'validity-window',
] as const
/** A step's name. */
export type CertificateStepName = (typeof CERTIFICATE_STEP_NAMES)[number]

/** One step's outcome and why. */
export interface CertificateStep {
  readonly name: CertificateStepName
  readonly status: 'pass' | 'fail' | 'skipped'
  readonly detail: string
}

/** What {@link verifyCertificate} found. */
export interface CertificateReport {
  /** True: every step passed; false: one failed; `'partial'`: none failed, some were skipped. */
  readonly valid: boolean | 'partial'
  readonly steps: readonly CertificateStep[]
  /** The height whose state the status step read (status "as of height H"). */
  readonly asOfHeight?: number
  /** The certificate's id, once the file is well-formed. */
  readonly id?: Uint8Array
  readonly certificate?: Certificate
  /** The issuing member's institution id, from the proven member record. */
  readonly institution?: string
}

/** What a verifier pins: the genesis's network id and validator set, and the chain's identity if known. */
export interface PinnedGenesis {
  readonly networkId: number
  readonly validators: ValidatorSet
  readonly chainId?: string
  readonly genesisHash?: Uint8Array
}

/** Options of {@link verifyCertificate}. */
export interface VerifyCertificateOptions {
  /** The pinned genesis: a whole {@link Genesis} (its hash and chain id are then checked too) or its essentials. */
  readonly genesis: Genesis | PinnedGenesis
  /** The verifier's clock, microseconds since the Unix epoch (the core reads no clock). */
  readonly now: number
  readonly crypto?: CryptoProvider
  /**
   * Validator sets a light client already verified (genesis first, as `followValidatorSets`
   * returns them); without them the sets are followed from the file's (and the status evidence's)
   * changes.
   */
  readonly validatorSets?: readonly SetInForce[]
  /** Online evidence of the current status; without it the status step is skipped. */
  readonly status?: CertificateStatusEvidence
}

const short = (b: Uint8Array) => `${to0x(b).slice(0, 18)}…`

/**
 * A time in microseconds as ISO 8601 UTC to the second, computed by hand (the civil-from-days
 * algorithm) because the core may not touch `Date`, the clock's home.
 */
export function isoFromMicros(us: number): string {
  const secs = Math.floor(us / 1_000_000)
  const days = Math.floor(secs / 86_400)
  const rem = secs - days * 86_400
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const doe = z - era * 146_097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0)
  const two = (n: number) => String(n).padStart(2, '0')
  const hh = Math.floor(rem / 3600)
  const mm = Math.floor((rem % 3600) / 60)
  return `${String(year).padStart(4, '0')}-${two(month)}-${two(day)}T${two(hh)}:${two(mm)}:${two(rem % 60)}Z`
}
const iso = isoFromMicros
const RIGHT_NAMES: [number, string][] = [
  [Right.Validator, 'validator'],
  [Right.MemberNode, 'member-node'],
  [Right.Issuer, 'issuer'],
  [Right.Deployer, 'deployer'],
  [Right.Observer, 'observer'],
]
const rightNames = (bits: number) =>
  RIGHT_NAMES.filter(([b]) => (bits & b) !== 0)
    .map(([, n]) => n)
    .join(', ') || 'none'

function isGenesis(g: Genesis | PinnedGenesis): g is Genesis {
  return 'members' in g && 'params' in g && 'balances' in g
}

function isFile(x: unknown): x is CertificateFile {
  return typeof x === 'object' && x !== null && (x as CertificateFile).signature instanceof Uint8Array && 'certificate' in x
}

/** Reads any accepted input: a decoded file, its JSON (parsed or text), or compact text. */
function readInput(input: unknown): CertificateFile {
  if (isFile(input)) return input
  if (typeof input === 'string') {
    const t = input.trim()
    if (t.startsWith(COMPACT_CERTIFICATE_PREFIX)) return decodeCompactCertificate(t)
    let json: unknown
    try {
      json = JSON.parse(t)
    } catch (e) {
      throw new CertificateError('(root)', `is neither JSON nor compact (${COMPACT_CERTIFICATE_PREFIX}…) text: ${(e as Error).message}`, e)
    }
    return parseCertificateFile(json)
  }
  return parseCertificateFile(input)
}

/** Follows the validator sets from the pinned genesis (or takes the caller's); a string says why not. */
function setsFor(
  opts: VerifyCertificateOptions,
  changes: readonly ValidatorSetChange[],
  crypto: CryptoProvider,
): readonly SetInForce[] | string {
  if (opts.validatorSets !== undefined) return opts.validatorSets
  try {
    return followValidatorSets(opts.genesis, changes, crypto)
  } catch (e) {
    if (e instanceof LightError) return `the validator-set changes do not follow from the pinned genesis: ${e.message}`
    throw e
  }
}

/**
 * Verifies a certificate: a portable file (decoded, JSON text or parsed JSON) or compact text.
 * Never throws for bad input: every problem is a failed step with its reason.
 */
export function verifyCertificate(input: unknown, opts: VerifyCertificateOptions): CertificateReport {
  if (!Number.isSafeInteger(opts.now) || opts.now < 0) throw new TypeError('now must be microseconds since the Unix epoch')
  const crypto = opts.crypto ?? nobleCrypto
  const steps: CertificateStep[] = []
  const step = (name: CertificateStepName, status: CertificateStep['status'], detail: string) => steps.push({ name, status, detail })
  const report = (extra: Omit<CertificateReport, 'valid' | 'steps'> = {}): CertificateReport => {
    const valid = steps.some((s) => s.status === 'fail') ? false : steps.every((s) => s.status === 'pass') ? true : 'partial'
    return { valid, steps, ...extra }
  }

  // 1. well-formed
  let file: CertificateFile
  try {
    file = readInput(input)
  } catch (e) {
    if (!(e instanceof CertificateError)) throw e
    step('well-formed', 'fail', `the file is not a certificate file: ${e.message}`)
    for (const name of CERTIFICATE_STEP_NAMES.slice(1)) step(name, 'skipped', 'the file is not well-formed')
    return report()
  }
  const c = file.certificate
  const id = certificateId(c)
  const broken =
    checkCertificate(c) ??
    (file.chain.networkId !== c.networkId ? `the file names network ${file.chain.networkId}, the certificate ${c.networkId}` : undefined)
  if (broken !== undefined) {
    step('well-formed', 'fail', `the certificate breaks the format's rules: ${broken}`)
    for (const name of CERTIFICATE_STEP_NAMES.slice(1)) step(name, 'skipped', 'the certificate is not well-formed')
    return report({ id, certificate: c })
  }
  const ev = file.evidence
  step(
    'well-formed',
    'pass',
    `certificate ${short(id)} about ${JSON.stringify(c.subject)}, issued by ${c.issuer} at height ${c.height}` +
      (ev ? '' : ' (compact form: it carries no header or proofs)'),
  )
  const noEvidence = `the compact form carries no header or proofs: fetch the full file by its id (lc_getCertificate) to check this`

  // 2. header-committed
  const g = opts.genesis
  const pinnedHash = isGenesis(g) ? genesisHash(g) : g.genesisHash
  const pinnedChainId = g.chainId
  let headerOk = false
  const chainMismatch =
    file.chain.networkId !== g.networkId
      ? `the certificate is for network ${file.chain.networkId}, the pinned genesis is network ${g.networkId}`
      : pinnedHash !== undefined && !bytesEqual(pinnedHash, file.chain.genesisHash)
        ? `the certificate is for the chain with genesis ${short(file.chain.genesisHash)}, not the pinned genesis ${short(pinnedHash)}`
        : pinnedChainId !== undefined && file.chain.chainId !== undefined && pinnedChainId !== file.chain.chainId
          ? `the certificate is for chain ${file.chain.chainId}, not the pinned ${pinnedChainId}`
          : undefined
  if (chainMismatch !== undefined) step('header-committed', 'fail', chainMismatch)
  else if (!ev) step('header-committed', 'skipped', noEvidence)
  else if (ev.header.header.height !== c.height)
    step(
      'header-committed',
      'fail',
      `the file's header is for height ${ev.header.header.height}, the certificate was issued at ${c.height}`,
    )
  else {
    const sets = setsFor(opts, ev.changes, crypto)
    if (typeof sets === 'string') step('header-committed', 'fail', sets)
    else {
      try {
        const set = setAt(sets, c.height)
        const power = verifySignedHeader(ev.header, set, g.networkId, crypto)
        headerOk = true
        step(
          'header-committed',
          'pass',
          `header ${c.height} (${short(blockHash(ev.header.header))}) is committed by ${power} of ${totalPower(set)} voting power of the validator set in force at that height`,
        )
      } catch (e) {
        if (!(e instanceof LightError)) throw e
        step('header-committed', 'fail', e.message)
      }
    }
  }

  // 3. block-key-signature
  const unverified = 'the header is not verified, so it vouches for nothing'
  if (!ev) step('block-key-signature', 'skipped', noEvidence)
  else {
    const key = ev.header.header.blockKey
    const signed = crypto.verify(file.signature, id, key)
    if (!headerOk)
      step('block-key-signature', 'skipped', `${unverified} (the signature ${signed ? 'verifies' : 'does not verify'} under its block key)`)
    else if (signed) step('block-key-signature', 'pass', `the key of block ${c.height} (${short(key)}) signed the certificate`)
    else step('block-key-signature', 'fail', `the signature does not verify under the key of block ${c.height} (${short(key)})`)
  }

  // 4. issuer-right
  let institution: string | undefined
  if (!ev) step('issuer-right', 'skipped', noEvidence)
  else if (!headerOk) step('issuer-right', 'skipped', `${unverified}, nor for the state it commits to`)
  else {
    const iss = ev.issuer
    const before = `the state before block ${c.height}`
    if (!bytesEqual(blockResultHash(iss.result), ev.header.header.resultRoot)) {
      step('issuer-right', 'fail', `the block result in the file is not the one header ${c.height} commits to`)
    } else {
      try {
        verifyStateProof(iss.result.stateRoot, memberKey(c.issuer), iss.member, iss.proof)
        if (iss.member === undefined) step('issuer-right', 'fail', `${c.issuer} was not a member in ${before}`)
        else {
          const rec = decode(memberRecordCodec, iss.member)
          institution = rec.id
          if ((rec.rights & Right.Issuer) !== 0)
            step('issuer-right', 'pass', `${c.issuer} (institution ${rec.id}) held the issuer right in ${before}`)
          else
            step(
              'issuer-right',
              'fail',
              `${c.issuer} (institution ${rec.id}) did not hold the issuer right in ${before} (rights: ${rightNames(rec.rights)})`,
            )
        }
      } catch (e) {
        if (e instanceof StateProofError) step('issuer-right', 'fail', `the proof of the issuer's membership does not hold: ${e.message}`)
        else if (e instanceof DecodeError) step('issuer-right', 'fail', `the issuer's member record does not decode: ${e.message}`)
        else throw e
      }
    }
  }

  // 5. status
  let asOfHeight: number | undefined
  const st = opts.status
  if (!st) step('status', 'skipped', 'no online status evidence: whether the certificate was revoked or renewed is not checked')
  else {
    const r = st.header.header.height
    const sets = setsFor(opts, st.changes && st.changes.length > 0 ? st.changes : (ev?.changes ?? []), crypto)
    let verdict: [CertificateStep['status'], string] | undefined
    if (typeof sets === 'string') verdict = ['fail', sets]
    else {
      try {
        verifySignedHeader(st.header, setAt(sets, r), g.networkId, crypto)
      } catch (e) {
        if (!(e instanceof LightError)) throw e
        verdict = ['fail', `the status header is not verified: ${e.message}`]
      }
    }
    if (verdict === undefined && r - 1 < c.height)
      verdict = [
        'skipped',
        `the status header ${r} commits to the state before the issuing block ${c.height}, which says nothing about this certificate yet: ask again once the next block is committed`,
      ]
    if (verdict === undefined && !bytesEqual(blockResultHash(st.result), st.header.header.resultRoot))
      verdict = ['fail', `the block result given is not the one header ${r} commits to`]
    if (verdict === undefined) {
      try {
        verifyStateProof(st.result.stateRoot, certificateStatusKey(id), st.record, st.proof)
        asOfHeight = r - 1
        verdict = statusVerdict(c, st.record, r - 1)
      } catch (e) {
        if (e instanceof StateProofError) verdict = ['fail', `the proof of the certificate's status does not hold: ${e.message}`]
        else if (e instanceof DecodeError) verdict = ['fail', `the registry record does not decode: ${e.message}`]
        else throw e
      }
    }
    step('status', verdict[0], verdict[1])
  }

  // 6. validity-window
  const window = `valid from ${iso(c.validFrom)}${c.validUntil === undefined ? ' with no end' : ` until ${iso(c.validUntil)}`}`
  if (opts.now < c.validFrom) step('validity-window', 'fail', `not yet valid at ${iso(opts.now)}: ${window}`)
  else if (c.validUntil !== undefined && opts.now >= c.validUntil)
    step('validity-window', 'fail', `expired at ${iso(c.validUntil)} (now ${iso(opts.now)})`)
  else step('validity-window', 'pass', `${window}; now ${iso(opts.now)}`)

  return report({
    id,
    certificate: c,
    ...(asOfHeight === undefined ? {} : { asOfHeight }),
    ...(institution === undefined ? {} : { institution }),
  })
}

/** The status step's verdict from the proven record (or its absence) in the state after block `asOf`. */
function statusVerdict(c: Certificate, raw: Uint8Array | undefined, asOf: number): [CertificateStep['status'], string] {
  if (raw === undefined)
    return ['fail', `the registry has no record of this certificate as of height ${asOf}: its issuing transaction did not take effect`]
  const rec = decode(certificateRecordCodec, raw)
  if (rec.issuer !== c.issuer || rec.height !== c.height || !bytesEqual(rec.txHash, c.txHash))
    return ['fail', `the registry's record under this id names another issuance (${rec.issuer} at height ${rec.height})`]
  switch (rec.status) {
    case CertificateStatus.Active:
      return ['pass', `active (neither revoked nor renewed) as of height ${asOf}`]
    case CertificateStatus.Revoked:
      return ['fail', `revoked at height ${rec.changedAt}${rec.reason ? ` (${JSON.stringify(rec.reason)})` : ''}, as of height ${asOf}`]
    default:
      return [
        'fail',
        `superseded: renewed at height ${rec.changedAt} by ${rec.supersededBy ? to0x(rec.supersededBy) : 'another certificate'}, as of height ${asOf}`,
      ]
  }
}
