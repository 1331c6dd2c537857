import { beforeAll, describe, expect, it } from 'vitest'
import {
  blockHash,
  type CertificateFile,
  type CertificateReport,
  type CertificateStatusEvidence,
  certificateFileToJson,
  certificateId,
  encodeCompactCertificate,
  followValidatorSets,
  genesisHash,
  keyPairFromSecret,
  nobleCrypto,
  Right,
  sha256,
  signVote,
  transactionHash,
  utf8,
  VoteType,
  verifyCertificate,
} from '../../src/index.js'
import { CertChain, DAY, loggedId, plain, school, T0, v1, v4 } from '../fixtures/cert-chain.js'

const NOW = T0 + 10 * DAY

/** The status of each step, by name. */
const statuses = (r: CertificateReport) => Object.fromEntries(r.steps.map((s) => [s.name, s.status]))
const detail = (r: CertificateReport, name: string) => r.steps.find((s) => s.name === name)?.detail ?? ''

let c: CertChain
let id: Uint8Array
let file: CertificateFile
let status: CertificateStatusEvidence

beforeAll(async () => {
  c = await CertChain.start()
  // v4 joins the validator set (in force from height 3), so the issuing header is signed by a set
  // the verifier only learns by following the change from the genesis.
  await c.block([c.propose(v1, { type: 'addValidator', address: v4.address, publicKey: v4.publicKey, power: 1n })])
  await c.block()
  id = loggedId(await c.block([c.issue(school, 'Lee Jiwoo', { subjectKey: keyPairFromSecret(sha256(utf8('jiwoo'))).publicKey })]))
  await c.block()
  file = await c.file(id)
  status = await c.status(id)
})

describe('verifyCertificate: a valid certificate', () => {
  it('passes all six steps with status evidence, as of the height before the status header', () => {
    expect(file.evidence?.changes).toHaveLength(1)
    const r = verifyCertificate(file, { genesis: c.genesis, now: NOW, status })
    expect(r.valid).toBe(true)
    expect(r.steps.map((s) => [s.name, s.status])).toEqual([
      ['well-formed', 'pass'],
      ['header-committed', 'pass'],
      ['block-key-signature', 'pass'],
      ['issuer-right', 'pass'],
      ['status', 'pass'],
      ['validity-window', 'pass'],
    ])
    expect(r.asOfHeight).toBe(3)
    expect(r.institution).toBe('school')
    expect(detail(r, 'status')).toContain('as of height 3')
    expect(detail(r, 'header-committed')).toContain('4 of 4 voting power')
  })

  it('reads its JSON file (text or parsed) the same; offline it is partial and says the status was not checked', () => {
    const text = JSON.stringify(certificateFileToJson(file))
    for (const input of [text, JSON.parse(text)]) {
      const r = verifyCertificate(input, { genesis: c.genesis, now: NOW })
      expect(r.valid).toBe('partial')
      expect(statuses(r)).toMatchObject({ 'issuer-right': 'pass', status: 'skipped', 'validity-window': 'pass' })
      expect(detail(r, 'status')).toMatch(/not checked/)
    }
  })

  it('takes validator sets a light client already verified instead of following the file', () => {
    const sets = followValidatorSets(c.genesis, c.changesUpTo(c.height))
    const stripped = { ...file, evidence: { ...file.evidence, changes: [] } } as CertificateFile
    expect(verifyCertificate(stripped, { genesis: c.genesis, now: NOW, validatorSets: sets }).valid).toBe('partial')
    // Without them the header's set is unknown: the change is missing from the file.
    const r = verifyCertificate(stripped, { genesis: c.genesis, now: NOW })
    expect(statuses(r)['header-committed']).toBe('fail')
    expect(detail(r, 'header-committed')).toMatch(/not voted on by the validator set in force/)
  })

  it('the compact form checks only its form offline and says what to fetch', () => {
    const r = verifyCertificate(encodeCompactCertificate(file), { genesis: c.genesis, now: NOW })
    expect(r.valid).toBe('partial')
    expect(statuses(r)).toEqual({
      'well-formed': 'pass',
      'header-committed': 'skipped',
      'block-key-signature': 'skipped',
      'issuer-right': 'skipped',
      status: 'skipped',
      'validity-window': 'pass',
    })
    expect(detail(r, 'block-key-signature')).toMatch(/lc_getCertificate/)
  })
})

describe('verifyCertificate: failures, each at its step', () => {
  it('revoked: the status step fails with the height of the revocation', async () => {
    const d = await CertChain.start()
    const x = loggedId(await d.block([d.issue(school, 'Kim')]))
    await d.block([d.revoke(school, x, 'diploma withdrawn')])
    await d.block()
    const r = verifyCertificate(await d.file(x), { genesis: d.genesis, now: NOW, status: await d.status(x) })
    expect(r.valid).toBe(false)
    expect(statuses(r)).toMatchObject({ 'block-key-signature': 'pass', 'issuer-right': 'pass', status: 'fail' })
    expect(detail(r, 'status')).toMatch(/revoked at height 2 \("diploma withdrawn"\), as of height 2/)
  })

  it('renewed: the old certificate fails the status step (superseded), the new one passes', async () => {
    const d = await CertChain.start()
    const old = loggedId(await d.block([d.issue(school, 'Kim')]))
    const renewed = loggedId(await d.block([d.renew(school, old, 'Kim')]))
    await d.block()
    const r = verifyCertificate(await d.file(old), { genesis: d.genesis, now: NOW, status: await d.status(old) })
    expect(statuses(r).status).toBe('fail')
    expect(detail(r, 'status')).toMatch(/superseded/)
    const newFile = await d.file(renewed)
    expect(newFile.certificate.replaces).toEqual(old)
    expect(verifyCertificate(newFile, { genesis: d.genesis, now: NOW, status: await d.status(renewed) }).valid).toBe(true)
  })

  it('status evidence from before the issuing block is not enough: the status step is skipped, not passed', async () => {
    const d = await CertChain.start()
    const x = loggedId(await d.block([d.issue(school, 'Kim')]))
    const r = verifyCertificate(await d.file(x), { genesis: d.genesis, now: NOW, status: await d.status(x) })
    expect(r.valid).toBe('partial')
    expect(detail(r, 'status')).toMatch(/next block/)
  })

  it('expired or not yet valid: the validity window fails', () => {
    const late = verifyCertificate(file, { genesis: c.genesis, now: T0 + 366 * DAY, status })
    expect(late.valid).toBe(false)
    expect(statuses(late)).toMatchObject({ status: 'pass', 'validity-window': 'fail' })
    expect(detail(late, 'validity-window')).toMatch(/expired at 2027-01-01T00:00:00Z/)
    expect(statuses(verifyCertificate(file, { genesis: c.genesis, now: T0 - 1, status }))['validity-window']).toBe('fail')
  })

  it('one byte changed anywhere in the JSON file fails well-formed or the signature, never passes', () => {
    const json = certificateFileToJson(file) as Record<string, any>
    const flip = (hex: string, at: number) => {
      const i = 2 + at * 2
      const b = (parseInt(hex.slice(i, i + 2), 16) ^ 1).toString(16).padStart(2, '0')
      return hex.slice(0, i) + b + hex.slice(i + 2)
    }
    const variants: [string, Record<string, any>][] = [
      ['subject', { ...json, certificate: { ...json.certificate, subject: 'Lee Jiwoa' } }],
      ['validUntil', { ...json, certificate: { ...json.certificate, validUntil: json.certificate.validUntil + 1 } }],
      ['signature', { ...json, signature: flip(json.signature, 10) }],
      ['id', { ...json, id: flip(json.id, 0) }],
    ]
    for (const [what, v] of variants) {
      const r = verifyCertificate(v, { genesis: c.genesis, now: NOW, status })
      expect(r.valid, what).toBe(false)
      const s = statuses(r)
      expect(s['well-formed'] === 'fail' || s['block-key-signature'] === 'fail', what).toBe(true)
    }
    // The id alone follows a change: a file whose id and certificate were both changed fails the signature.
    const forged = { ...file, certificate: { ...file.certificate, subject: 'Someone Else' } }
    const r = verifyCertificate(forged, { genesis: c.genesis, now: NOW, status })
    expect(statuses(r)).toMatchObject({ 'well-formed': 'pass', 'header-committed': 'pass', 'block-key-signature': 'fail' })
  })

  it('signed by a key that is not the block key: the block-key signature step fails', () => {
    const stranger = keyPairFromSecret(sha256(utf8('stranger')))
    const r = verifyCertificate(
      { ...file, signature: nobleCrypto.sign(certificateId(file.certificate), stranger.secretKey) },
      { genesis: c.genesis, now: NOW, status },
    )
    expect(r.valid).toBe(false)
    expect(statuses(r)).toMatchObject({ 'header-committed': 'pass', 'block-key-signature': 'fail', 'issuer-right': 'pass' })
    expect(detail(r, 'block-key-signature')).toMatch(/does not verify under the key of block 3/)
  })

  it('issued by a member without the issuer right: the block key signed it, the issuer step fails', async () => {
    // The registry refuses the call, but the proposer signs every well-formed issue call before
    // execution: such a signature exists, and only the issuer step (with the status) catches it.
    const d = await CertChain.start()
    const tx = d.issue(plain, 'Fake Degree')
    const ex = await d.block([tx])
    expect(ex.receipts[0]?.failure?.code).toBe('PERMISSION_DENIED')
    await d.block()
    const forged = await d.fileOfTx(transactionHash(tx.body), 1)
    const r = verifyCertificate(forged, { genesis: d.genesis, now: NOW, status: await d.status(certificateId(forged.certificate)) })
    expect(r.valid).toBe(false)
    expect(statuses(r)).toMatchObject({ 'header-committed': 'pass', 'block-key-signature': 'pass', 'issuer-right': 'fail', status: 'fail' })
    expect(detail(r, 'issuer-right')).toMatch(/institution plain\) did not hold the issuer right .*rights: observer/)
    expect(detail(r, 'status')).toMatch(/no record/)
  })

  it('a membership proof for another member, or a result not committed by the header, fails the issuer step', () => {
    const ev = file.evidence as NonNullable<CertificateFile['evidence']>
    const other = {
      ...file,
      certificate: { ...file.certificate },
      evidence: { ...ev, issuer: { ...ev.issuer, member: Uint8Array.of(4, 1, 2, 3, 4, Right.Issuer) } },
    }
    expect(statuses(verifyCertificate(other, { genesis: c.genesis, now: NOW }))['issuer-right']).toBe('fail')
    const result = { ...ev.issuer.result, stateRoot: new Uint8Array(32) }
    const wrong = { ...file, evidence: { ...ev, issuer: { ...ev.issuer, result } } }
    expect(detail(verifyCertificate(wrong, { genesis: c.genesis, now: NOW }), 'issuer-right')).toMatch(/not the one header 3 commits to/)
  })

  it('a header committed by a set that is not the one in force: the header step fails, and nothing that rests on it passes', () => {
    const ev = file.evidence as NonNullable<CertificateFile['evidence']>
    const header = ev.header.header
    // Four strangers sign the header in the places of the real validators.
    const strangers = [1, 2, 3, 4].map((i) => keyPairFromSecret(sha256(utf8(`stranger ${i}`))))
    const set = c.setAt(3)
    const signatures = set.validators.map((v, index) => ({
      index,
      signature: signVote(
        { networkId: 9, type: VoteType.Precommit, height: 3, round: 0, blockHash: blockHash(header), validator: v.address },
        (strangers[index] as { secretKey: Uint8Array }).secretKey,
      ).signature,
    }))
    const forged = { ...file, evidence: { ...ev, header: { header, commit: { ...ev.header.commit, signatures } } } }
    const r = verifyCertificate(forged, { genesis: c.genesis, now: NOW, status })
    expect(r.valid).toBe(false)
    expect(statuses(r)).toMatchObject({ 'header-committed': 'fail', 'block-key-signature': 'skipped', 'issuer-right': 'skipped' })
    expect(detail(r, 'header-committed')).toMatch(/not committed by the set in force/)
    // A verifier that pins another genesis (another validator set) refuses the header too.
    const otherGenesis = { networkId: 9, validators: { validators: set.validators.slice(0, 1) } }
    expect(statuses(verifyCertificate(file, { genesis: otherGenesis, now: NOW }))['header-committed']).toBe('fail')
  })

  it('a file for another chain fails the header step, naming both chains', () => {
    const r = verifyCertificate(file, { genesis: { ...c.genesis, chainId: 'other-chain' }, now: NOW })
    expect(statuses(r)['header-committed']).toBe('fail')
    expect(detail(r, 'header-committed')).toMatch(/genesis/)
    expect(genesisHash({ ...c.genesis, chainId: 'other-chain' })).not.toEqual(file.chain.genesisHash)
  })

  it('status evidence with a forged record or a header signed by strangers fails the status step', async () => {
    const revokedRecord = { ...status, record: status.record && Uint8Array.from([...status.record.slice(0, -4), 1, 0, 0, 0]) }
    expect(statuses(verifyCertificate(file, { genesis: c.genesis, now: NOW, status: revokedRecord })).status).toBe('fail')
    const other = await c.status(new Uint8Array(32).fill(1))
    const r = verifyCertificate(file, { genesis: c.genesis, now: NOW, status: other })
    expect(detail(r, 'status')).toMatch(/does not hold|does not hash/)
  })

  it('not a certificate at all: well-formed fails and every other step is skipped', () => {
    for (const input of ['{"format":"something-else"}', 'LC1:!!', '', { format: 'loopchain-certificate/1' }]) {
      const r = verifyCertificate(input, { genesis: c.genesis, now: NOW })
      expect(r.valid).toBe(false)
      expect(r.steps[0]?.status).toBe('fail')
      expect(r.steps.slice(1).every((s) => s.status === 'skipped')).toBe(true)
    }
  })
})
