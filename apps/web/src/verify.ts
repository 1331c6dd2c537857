/**
 * Verifying what a person drops, pastes or scans: a portable certificate file (JSON) or the
 * compact QR text. Everything is checked here, in the browser, with the core's six-step
 * `verifyCertificate` against the pinned genesis. The light client supplies what the input lacks,
 * each piece verified before use: the current status (a state proof against the verified tip),
 * and for the compact form the issuing header and the proof of the issuer's right. Offline, a
 * portable file still passes every step but the status, and its header is compared with the one
 * this browser verified and stored, when it has it.
 */
import {
  blockHash,
  bytesEqual,
  type CertificateEvidence,
  type CertificateFile,
  type CertificateReport,
  type CertificateStatusEvidence,
  COMPACT_CERTIFICATE_PREFIX,
  certificateId,
  certificateStatusKey,
  decodeCompactCertificate,
  genesisHash,
  memberKey,
  parseCertificateFile,
  type SignedHeader,
  verifyCertificate,
} from '@loopchain/core'
import type { LightClient } from '@loopchain/light-client'
import type { ChainConfig } from './config.js'

/** How the input was read. */
export type InputKind = 'file' | 'compact' | 'unreadable'

/** How the certificate's issuing header compares with the one this browser's light client verified. */
export interface HeaderComparison {
  readonly status: 'match' | 'conflict' | 'unknown'
  /** Empty when there is nothing to say (an unreadable input). */
  readonly detail: string
}

/** A verification's outcome, for the page. */
export interface Verification {
  readonly kind: InputKind
  readonly report: CertificateReport
  /** The verdict shown: the report's, or invalid when the header conflicts with the verified one. */
  readonly verdict: 'valid' | 'invalid' | 'partial'
  /** Why the status (or, for the compact form, the proofs) could not be fetched, when they could not. */
  readonly offlineReason: string | undefined
  /** Where the issuing header and issuer proof came from. */
  readonly evidenceFrom: 'file' | 'network' | 'none'
  readonly header: HeaderComparison
}

/** What verification needs from the page: the pinned chain and, when there is one, the light client. */
export interface VerifyContext {
  readonly config: ChainConfig
  readonly client: LightClient | undefined
  /** Connected full nodes now. */
  readonly peers: () => readonly string[]
  /** Brings the client's tip up to date; resolves false when no node answered. */
  readonly sync: () => Promise<boolean>
}

/** Reads the input as a file or compact text; undefined when it is neither (verification then says why). */
function read(text: string): { kind: InputKind; file: CertificateFile | undefined } {
  const t = text.trim()
  try {
    if (t.startsWith(COMPACT_CERTIFICATE_PREFIX)) return { kind: 'compact', file: decodeCompactCertificate(t) }
    return { kind: 'file', file: parseCertificateFile(JSON.parse(t)) }
  } catch {
    return { kind: t.startsWith(COMPACT_CERTIFICATE_PREFIX) ? 'compact' : 'unreadable', file: undefined }
  }
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e))

/** Verifies `text` (file JSON or compact text) as of `now` (microseconds since the epoch). Never throws for bad input. */
export async function verifyText(text: string, ctx: VerifyContext, now = Date.now() * 1000): Promise<Verification> {
  const { kind, file } = read(text)
  const genesis = ctx.config.genesis
  if (file === undefined) {
    const report = verifyCertificate(text, { genesis, now })
    return { kind, report, verdict: 'invalid', offlineReason: undefined, evidenceFrom: 'none', header: unknownHeader('') }
  }
  const c = file.certificate
  const client = ctx.client
  const ours = bytesEqual(file.chain.genesisHash, genesisHash(genesis))
  let input = file
  let status: CertificateStatusEvidence | undefined
  let offlineReason: string | undefined
  let evidenceFrom: Verification['evidenceFrom'] = file.evidence ? 'file' : 'none'

  // Nothing is fetched for a certificate of another chain: the header step will say so.
  if (ours && client !== undefined) {
    try {
      if (ctx.peers().length === 0) throw new Error('no full node is reachable')
      // The freshest tip first: the status is then as recent as the network's, not as the last
      // gossip. Without it the status would be proven against an older tip: not shown as current.
      if (!(await ctx.sync())) throw new Error('no full node gave this browser its latest verified tip')
      if (client.height < c.height) throw new Error(`the verified chain does not reach height ${c.height} yet`)
      if (file.evidence === undefined) {
        input = { ...file, chain: { ...file.chain, chainId: genesis.chainId }, evidence: await evidenceOf(client, file) }
        evidenceFrom = 'network'
      }
      // Header N commits to the state after block N − 1: the issuance is provable from header height + 1 on.
      if (client.height <= c.height) throw new Error(`no block after the issuing block ${c.height} is verified yet`)
      status = await statusOf(client, certificateId(c))
    } catch (e) {
      offlineReason = message(e)
    }
  } else if (client === undefined) offlineReason = 'the light client is not running'

  // The validator sets this browser followed from the pinned genesis, when they reach the
  // certificate's height (stored, so offline too): a file's own change list could leave a change
  // out, and then an older set, whose keys may since have leaked, would vouch for the header.
  const known = ours && client?.knowsValidatorsAt(c.height) ? client.validatorSets : undefined
  const report = verifyCertificate(input, { genesis, now, ...(status ? { status } : {}), ...(known ? { validatorSets: known } : {}) })
  const committed = report.steps.find((s) => s.name === 'header-committed')?.status === 'pass'
  const header =
    input.evidence && client && committed
      ? await compareHeader(client, input.evidence.header, status !== undefined)
      : unknownHeader(committed ? undefined : 'the certificate carries no verified header to compare')
  const base = report.valid === true ? 'valid' : report.valid === false ? 'invalid' : 'partial'
  return { kind, report, verdict: header.status === 'conflict' ? 'invalid' : base, offlineReason, evidenceFrom, header }
}

/** The compact form's missing evidence, from the network, verified by the light client against its headers. */
async function evidenceOf(client: LightClient, file: CertificateFile): Promise<CertificateEvidence> {
  const c = file.certificate
  const header = await client.verifiedHeaderAt(c.height)
  // The issuer's member record in the state header `height` commits to: the state before the issuing block.
  const member = await client.getStateProof(memberKey(c.issuer), { height: c.height })
  return { header, changes: client.setChanges, issuer: { result: member.result, member: member.value, proof: member.proof } }
}

/** The certificate's registry record (or its proven absence) against the verified tip. */
async function statusOf(client: LightClient, id: Uint8Array): Promise<CertificateStatusEvidence> {
  const sp = await client.getStateProof(certificateStatusKey(id))
  const header = await client.verifiedHeaderAt(sp.height)
  return { header, result: sp.result, record: sp.value, proof: sp.proof, changes: client.setChanges }
}

function unknownHeader(why = 'this browser has not verified the header at that height'): HeaderComparison {
  return { status: 'unknown', detail: why }
}

/**
 * Compares the certificate's issuing header with the light client's header at that height: from
 * IndexedDB, or fetched and verified when online. Two different validly signed headers at one
 * height mean a fork or leaked validator keys, so the certificate is not to be trusted.
 */
async function compareHeader(client: LightClient, theirs: SignedHeader, online: boolean): Promise<HeaderComparison> {
  const h = theirs.header.height
  let mine: SignedHeader | undefined
  let where = 'stored in this browser (IndexedDB)'
  try {
    mine = await client.store.header(h)
    if (mine === undefined && h === client.height) mine = client.tip
    if (mine === undefined && online && h <= client.height) {
      mine = await client.verifiedHeaderAt(h)
      where = 'the light client verified from the network'
    }
  } catch {
    mine = undefined
  }
  if (mine === undefined) return unknownHeader(`this browser has no verified header ${h} to compare with`)
  if (bytesEqual(blockHash(mine.header), blockHash(theirs.header))) return { status: 'match', detail: `header ${h} is the one ${where}` }
  return {
    status: 'conflict',
    detail: `header ${h} in the certificate differs from the one ${where}: the chain forked or validator keys leaked`,
  }
}
