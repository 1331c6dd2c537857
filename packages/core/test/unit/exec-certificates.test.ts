import { beforeAll, describe, expect, it } from 'vitest'
import {
  CERTIFICATE_REGISTRY_ADDRESS,
  CertificateStatus,
  type ContractEngine,
  certificateId,
  certificateOfTransaction,
  certificateRecordCodec,
  certificateStatusKey,
  decode,
  getAccount,
  getScoreApi,
  initEngine,
  memberKey,
  queryScore,
  Right,
  toHex,
  transactionHash,
} from '../../src/index.js'
import { CertChain, clinic, loggedId, outsider, plain, school, v1 } from '../fixtures/cert-chain.js'

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

const codes = (ex: { receipts: { failure?: { code: string } | undefined }[] }) => ex.receipts.map((r) => r.failure?.code ?? 'OK')

async function record(c: CertChain, id: Uint8Array) {
  const raw = await c.tree.get(certificateStatusKey(id))
  return raw === undefined ? undefined : decode(certificateRecordCodec, raw)
}

async function query(c: CertChain, method: string, params: Record<string, unknown>) {
  const r = await queryScore(
    c.tree,
    { params: c.genesis.params, engine },
    { from: outsider.address, to: CERTIFICATE_REGISTRY_ADDRESS, method, params: params as never, height: c.height, timestamp: 0 },
  )
  if (!r.ok) throw new Error(`${r.failure.code}: ${r.failure.message}`)
  return r.result
}

describe('certificate registry: issue', () => {
  it('a member with the issuer right issues: the id is the digest of the certificate the transaction carries, recorded active with an event', async () => {
    const c = await CertChain.start()
    const tx = c.issue(school, 'Lee Jiwoo')
    const ex = await c.block([tx])
    expect(codes(ex)).toEqual(['OK'])
    const id = loggedId(ex)
    const cert = certificateOfTransaction(tx, 1)
    expect(cert && toHex(certificateId(cert))).toBe(toHex(id))
    expect(ex.receipts[0]?.logs.map((l) => l.event)).toEqual(['Issued(bytes,Address)'])
    expect(ex.receipts[0]?.logs[0]?.indexed[1]).toBe(school.address)
    expect(await record(c, id)).toMatchObject({ issuer: school.address, height: 1, status: CertificateStatus.Active })
    expect(toHex((await record(c, id))?.txHash ?? new Uint8Array())).toBe(toHex(transactionHash(tx.body)))
    expect(await query(c, 'status', { id })).toBe('active')
    expect(await query(c, 'get', { id })).toMatchObject({ issuer: school.address, height: 1n, status: 'active', replaces: null })
  })

  it('a member without the issuer right and a non-member are refused PERMISSION_DENIED, and nothing but fee and nonce changes', async () => {
    const c = await CertChain.start()
    const txs = [c.issue(plain, 'Park'), c.issue(outsider, 'Choi')]
    const ex = await c.block(txs)
    expect(codes(ex)).toEqual(['PERMISSION_DENIED', 'PERMISSION_DENIED'])
    for (const tx of txs) {
      const cert = certificateOfTransaction(tx, 1)
      expect(cert).toBeDefined()
      expect(await record(c, certificateId(cert as never))).toBeUndefined()
    }
    expect((await getAccount(c.tree, plain.address)).nonce).toBe(1)
    expect(ex.receipts.every((r) => r.logs.length === 0)).toBe(true)
  })

  it('refuses malformed terms with INVALID_ARGUMENT: empty subject, bad window, non-string attribute, wrong key length, a value', async () => {
    const c = await CertChain.start()
    const ex = await c.block([
      c.issue(school, ''),
      c.issue(school, 'x', { validUntil: BigInt(1) }),
      c.issue(school, 'x', { attributes: { n: 1n } }),
      c.issue(school, 'x', { subjectKey: new Uint8Array(31) }),
      c.call(school, CERTIFICATE_REGISTRY_ADDRESS, 'revoke', { id: new Uint8Array(5) }),
      c.call(school, CERTIFICATE_REGISTRY_ADDRESS, 'frobnicate', null),
    ])
    expect(codes(ex)).toEqual([
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'UNKNOWN_METHOD',
    ])
  })

  it('rights are read at execution: after governance removes the issuer right, the next issue is refused', async () => {
    const c = await CertChain.start()
    expect(codes(await c.block([c.issue(school, 'A')]))).toEqual(['OK'])
    await c.block([c.propose(v1, { type: 'setRights', address: school.address, rights: BigInt(Right.Observer) })])
    const raw = await c.tree.get(memberKey(school.address))
    expect(raw).toBeDefined()
    expect(codes(await c.block([c.issue(school, 'B')]))).toEqual(['PERMISSION_DENIED'])
  })
})

describe('certificate registry: renew and revoke', () => {
  it('a renewal links to the certificate it replaces and supersedes it; the old one can be neither renewed nor revoked again', async () => {
    const c = await CertChain.start()
    const old = loggedId(await c.block([c.issue(school, 'Kim')]))
    const ex = await c.block([c.renew(school, old, 'Kim', { validFrom: 10n, validUntil: 20n })])
    expect(codes(ex)).toEqual(['OK'])
    expect(ex.receipts[0]?.logs[0]?.event).toBe('Renewed(bytes,bytes,Address)')
    const renewed = loggedId(ex)
    expect(toHex(ex.receipts[0]?.logs[0]?.indexed[1] as Uint8Array)).toBe(toHex(old))
    expect(await record(c, old)).toMatchObject({ status: CertificateStatus.Superseded, changedAt: 2 })
    expect(toHex((await record(c, old))?.supersededBy as Uint8Array)).toBe(toHex(renewed))
    expect(toHex((await record(c, renewed))?.replaces as Uint8Array)).toBe(toHex(old))
    expect(await query(c, 'status', { id: old })).toBe('superseded')
    const again = await c.block([c.renew(school, old, 'Kim'), c.revoke(school, old)])
    expect(codes(again)).toEqual(['ALREADY_SUPERSEDED', 'ALREADY_SUPERSEDED'])
  })

  it('revokes with a reason; a second revocation fails ALREADY_REVOKED and changes nothing', async () => {
    const c = await CertChain.start()
    const id = loggedId(await c.block([c.issue(school, 'Kim')]))
    const ex = await c.block([c.revoke(school, id, 'issued in error')])
    expect(codes(ex)).toEqual(['OK'])
    expect(ex.receipts[0]?.logs[0]).toMatchObject({ event: 'Revoked(bytes,Address,str)', data: ['issued in error'] })
    const before = await record(c, id)
    expect(before).toMatchObject({ status: CertificateStatus.Revoked, changedAt: 2, reason: 'issued in error' })
    expect(codes(await c.block([c.revoke(school, id, 'again'), c.renew(school, id, 'Kim')]))).toEqual([
      'ALREADY_REVOKED',
      'ALREADY_REVOKED',
    ])
    expect(await record(c, id)).toEqual(before)
  })

  it('another institution may neither revoke nor renew the certificate, even with the issuer right; unknown ids fail typed', async () => {
    const c = await CertChain.start()
    const id = loggedId(await c.block([c.issue(school, 'Kim')]))
    const ex = await c.block([c.revoke(clinic, id), c.renew(clinic, id, 'Kim'), c.revoke(school, new Uint8Array(32).fill(7))])
    expect(codes(ex)).toEqual(['NOT_CERTIFICATE_ISSUER', 'NOT_CERTIFICATE_ISSUER', 'UNKNOWN_CERTIFICATE'])
    expect(await record(c, id)).toMatchObject({ status: CertificateStatus.Active })
  })

  it('writing methods cannot run as a query; reads of unknown ids give null; the ABI answers at the fixed address', async () => {
    const c = await CertChain.start()
    const api = (await getScoreApi(c.tree, engine, CERTIFICATE_REGISTRY_ADDRESS)) as { methods: { name: string }[] } | undefined
    expect(JSON.stringify(api)).toMatch(/"issue".*"renew".*"revoke"/s)
    await expect(query(c, 'revoke', { id: new Uint8Array(32) })).rejects.toThrow(/READONLY_VIOLATION/)
    expect(await query(c, 'get', { id: new Uint8Array(32) })).toBeNull()
    expect(await query(c, 'status', { id: new Uint8Array(32) })).toBeNull()
  })
})
