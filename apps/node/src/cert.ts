/**
 * `loopchain cert …`: issue, renew and revoke certificates with a key that holds the issuer right,
 * export a certificate's portable file (or its compact QR text), and verify one — offline against
 * the genesis you trust, and with --rpc also its current status, proven against the node's latest
 * committed header (core docs/certificates.md).
 */
import { existsSync, readFileSync } from 'node:fs'
import {
  CERTIFICATE_REGISTRY_ADDRESS,
  type CertificateFile,
  type CertificateReport,
  type CertificateStatusEvidence,
  COMPACT_CERTIFICATE_PREFIX,
  callDataCodec,
  certificateFromJson,
  certificateId,
  decodeCompactCertificate,
  encode,
  encodeCompactCertificate,
  fromHex,
  type Genesis,
  parseCertificateFile,
  parseGenesis,
  parseStatusEvidence,
  TxKind,
  termsFromCall,
  to0x,
  toHex,
  type Value,
  verifyCertificate,
} from '@loopchain/core'
import { nativeCrypto } from '@loopchain/node/client'
import { DEFAULT_RPC, fail, flag, rpcCall, writeNewFile } from './cli.js'
import { print, type ReceiptJson, readKey, signAndSend, stepLimitFlag } from './tx.js'

/** Steps a registry call may use by default: its fixed 20,000 and the base cost, with room for a large certificate. */
const REGISTRY_STEP_LIMIT = 200_000
/** How long --wait waits, after the commit, for the next block: the one whose header makes the change provable. */
const PROVABLE_WAIT_MS = 20_000
/** Where `cert verify` finds the genesis it trusts when --genesis is not given: the devnet's. */
const DEFAULT_GENESIS = '.devnet/genesis.json'

interface CertReceipt extends ReceiptJson {
  readonly height: number
  readonly logs: { readonly event: string; readonly indexed: string[] }[]
}

/** Every value of a repeatable flag, e.g. `--attr a=1 --attr b=2`. */
function flags(args: string[], name: string): string[] {
  const out: string[] = []
  args.forEach((a, i) => {
    if (a === `--${name}`) {
      const v = args[i + 1]
      if (v === undefined) fail(`--${name} needs a value`)
      out.push(v)
    }
  })
  return out
}

/** An ISO 8601 time as microseconds since the Unix epoch. */
function timeFlag(args: string[], name: string): number | undefined {
  const raw = flag(args, name)
  if (raw === undefined) return undefined
  const ms = Date.parse(raw)
  if (!Number.isFinite(ms) || ms < 0) fail(`--${name} ${raw} is not a time (ISO 8601, e.g. 2027-03-01 or 2027-03-01T09:00:00Z)`)
  return ms * 1000
}

function idFlag(args: string[], command: string): string {
  const id = flag(args, 'id') ?? fail(`${command} needs --id 0x… (the certificate id, 32 bytes of hex)`)
  if (!/^0x[0-9a-fA-F]{64}$/.test(id)) fail(`--id ${id} is not a certificate id (0x and 64 hex digits)`)
  return id.toLowerCase()
}

/** The terms given by flags, over `base` (a renewal's defaults). */
function termsFromFlags(args: string[], base?: { subject: string; subjectKey?: string; attributes: Record<string, string> }) {
  const subject = flag(args, 'subject') ?? base?.subject ?? fail('needs --subject TEXT (who or what the certificate is about)')
  const keyHex = flag(args, 'subject-key') ?? base?.subjectKey
  if (keyHex !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(keyHex))
    fail(`--subject-key ${keyHex} is not an ed25519 public key (0x and 64 hex digits)`)
  const given = flags(args, 'attr')
  const attributes: Record<string, string> = given.length > 0 ? Object.create(null) : { ...(base?.attributes ?? {}) }
  for (const a of given) {
    const eq = a.indexOf('=')
    if (eq <= 0) fail(`--attr ${a} is not NAME=VALUE`)
    const k = a.slice(0, eq)
    if (Object.hasOwn(attributes, k)) fail(`--attr ${k} is given twice`)
    attributes[k] = a.slice(eq + 1)
  }
  return { subject, subjectKey: keyHex === undefined ? undefined : fromHex(keyHex), attributes }
}

/** Builds the registry call's parameters, checks them as the chain will, signs, sends and reports. */
async function send(args: string[], method: 'issue' | 'renew' | 'revoke', params: Record<string, Value>): Promise<void> {
  const key = readKey(flag(args, 'key') ?? fail(`cert ${method} needs --key FILE (a key with the issuer right)`))
  if (method !== 'revoke') {
    const terms = termsFromCall(method, params)
    if (typeof terms === 'string') fail(terms)
  }
  const data = encode(callDataCodec, { method, params })
  const sent = await signAndSend(
    args,
    key,
    { kind: TxKind.Call, to: CERTIFICATE_REGISTRY_ADDRESS, value: 0n, data },
    stepLimitFlag(args, REGISTRY_STEP_LIMIT),
  )
  const receipt = sent.receipt as CertReceipt | undefined
  if (!receipt) {
    process.stdout.write(`${JSON.stringify({ hash: sent.hash }, null, 2)}\n`)
    return
  }
  const id = method === 'revoke' ? (params.id as Uint8Array) : receipt.logs[0]?.indexed[0]
  if (receipt.status === 'success') await provable(flag(args, 'rpc') ?? DEFAULT_RPC, receipt.height)
  print({ ...(id === undefined ? {} : { id: typeof id === 'string' ? id : to0x(id) }), height: receipt.height, receipt }, receipt)
}

/**
 * Waits until the node commits the block after `height`: header N commits to the state after block
 * N − 1, so only then can anyone prove the change (the node makes that block at once).
 */
async function provable(url: string, height: number): Promise<void> {
  const deadline = Date.now() + PROVABLE_WAIT_MS
  for (;;) {
    const info = (await rpcCall(url, 'lc_getNetworkInfo')) as { height: number }
    if (info.height > height) return
    if (Date.now() > deadline) {
      process.stderr.write(`loopchain: committed at height ${height}; no later block yet, so its status is not provable yet\n`)
      return
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** `cert issue`. */
export async function certIssue(args: string[]): Promise<void> {
  const t = termsFromFlags(args)
  const validFrom = timeFlag(args, 'valid-from') ?? Date.now() * 1000
  const validUntil = timeFlag(args, 'valid-until')
  await send(args, 'issue', {
    subject: t.subject,
    ...(t.subjectKey ? { subjectKey: t.subjectKey } : {}),
    attributes: t.attributes,
    validFrom: BigInt(validFrom),
    ...(validUntil === undefined ? {} : { validUntil: BigInt(validUntil) }),
  })
}

/**
 * `cert renew`: a new certificate that replaces --id. What is not given is taken from the old
 * certificate; the new window starts now (or --valid-from) and lasts as long as the old one did
 * (or until --valid-until).
 */
export async function certRenew(args: string[]): Promise<void> {
  const id = idFlag(args, 'cert renew')
  const url = flag(args, 'rpc') ?? DEFAULT_RPC
  const old = certificateFromJson(((await rpcCall(url, 'lc_getCertificate', { id })) as { certificate: unknown }).certificate)
  const t = termsFromFlags(args, {
    subject: old.subject,
    ...(old.subjectKey ? { subjectKey: to0x(old.subjectKey) } : {}),
    attributes: Object.fromEntries(old.attributes.map((a) => [a.key, a.value])),
  })
  const validFrom = timeFlag(args, 'valid-from') ?? Date.now() * 1000
  const validUntil =
    timeFlag(args, 'valid-until') ?? (old.validUntil === undefined ? undefined : validFrom + (old.validUntil - old.validFrom))
  await send(args, 'renew', {
    replaces: fromHex(id),
    subject: t.subject,
    ...(t.subjectKey ? { subjectKey: t.subjectKey } : {}),
    attributes: t.attributes,
    validFrom: BigInt(validFrom),
    ...(validUntil === undefined ? {} : { validUntil: BigInt(validUntil) }),
  })
}

/** `cert revoke`. */
export async function certRevoke(args: string[]): Promise<void> {
  const id = idFlag(args, 'cert revoke')
  const reason = flag(args, 'reason')
  await send(args, 'revoke', { id: fromHex(id), ...(reason === undefined ? {} : { reason }) })
}

/** `cert export`: the portable JSON file, or with --qr the compact text for a QR code. */
export async function certExport(args: string[]): Promise<void> {
  const id = idFlag(args, 'cert export')
  const json = await rpcCall(flag(args, 'rpc') ?? DEFAULT_RPC, 'lc_getCertificate', { id })
  const text = args.includes('--qr') ? `${encodeCompactCertificate(parseCertificateFile(json))}\n` : `${JSON.stringify(json, null, 2)}\n`
  const out = flag(args, 'out')
  if (out === undefined) process.stdout.write(text)
  else {
    writeNewFile(out, text, 'cert export never overwrites a file (it could be a key)')
    process.stderr.write(`loopchain: wrote certificate ${id} to ${out}\n`)
  }
}

function readGenesis(args: string[]): Genesis {
  const path = flag(args, 'genesis') ?? (existsSync(DEFAULT_GENESIS) ? DEFAULT_GENESIS : undefined)
  if (path === undefined) fail('cert verify needs --genesis FILE: the genesis of the chain you trust (the verifier pins it)')
  try {
    return parseGenesis(JSON.parse(readFileSync(path, 'utf8')))
  } catch (e) {
    fail(`cannot read the genesis ${path}: ${(e as Error).message}`)
  }
}

/**
 * `cert verify`: the six steps against the pinned genesis. With --rpc, a compact certificate is
 * completed with the node's full file (which must carry the same certificate and signature), and
 * the status is checked with the node's proof. Prints the report as JSON and each step on stderr;
 * exits 0 when valid, 1 when a step fails, 3 when nothing failed but some steps could not run.
 */
export async function certVerify(args: string[]): Promise<void> {
  const path = flag(args, 'file') ?? fail('cert verify needs --file FILE (a certificate file, or a file holding its LC1: text)')
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    fail(`cannot read ${path}: ${(e as Error).message}`)
  }
  const genesis = readGenesis(args)
  const url = flag(args, 'rpc')
  let input: unknown = text
  let status: CertificateStatusEvidence | undefined
  if (url !== undefined) {
    let local: CertificateFile | undefined
    try {
      local = text.trim().startsWith(COMPACT_CERTIFICATE_PREFIX) ? decodeCompactCertificate(text) : parseCertificateFile(JSON.parse(text))
    } catch {
      // Not readable: the well-formed step reports why.
    }
    if (local !== undefined) {
      const id = to0x(certificateId(local.certificate))
      if (local.evidence === undefined) {
        const full = parseCertificateFile(await rpcCall(url, 'lc_getCertificate', { id }))
        if (toHex(full.signature) !== toHex(local.signature))
          fail(`${url} serves certificate ${id} with another signature than the compact form's`)
        input = full
      }
      status = parseStatusEvidence(await rpcCall(url, 'lc_getCertificateStatus', { id })).evidence
    }
  }
  const report = verifyCertificate(input, { genesis, now: Date.now() * 1000, crypto: nativeCrypto, ...(status ? { status } : {}) })
  for (const s of report.steps) process.stderr.write(`${{ pass: '✓', fail: '✗', skipped: '–' }[s.status]} ${s.name}: ${s.detail}\n`)
  process.stdout.write(`${JSON.stringify(reportToJson(report), null, 2)}\n`)
  process.exitCode = report.valid === true ? 0 : report.valid === false ? 1 : 3
}

function reportToJson(r: CertificateReport): object {
  return {
    valid: r.valid,
    ...(r.id ? { id: to0x(r.id) } : {}),
    ...(r.asOfHeight === undefined ? {} : { asOfHeight: r.asOfHeight }),
    ...(r.institution ? { institution: r.institution } : {}),
    ...(r.certificate ? { subject: r.certificate.subject, issuer: r.certificate.issuer, height: r.certificate.height } : {}),
    steps: r.steps,
  }
}
