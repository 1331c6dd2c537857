/**
 * Certificates through a running validator: issue over JSON-RPC, fetch the portable file and the
 * status evidence over JSON-RPC, verify them offline and with status; revoke and see the status
 * step fail; a synced block without its block-key signatures is refused.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  blockCodec,
  CERTIFICATE_REGISTRY_ADDRESS,
  callDataCodec,
  encode,
  fromHex,
  type Genesis,
  type KeyPair,
  parseCertificateFile,
  parseStatusEvidence,
  Right,
  signTransaction,
  TxKind,
  to0x,
  transactionCodec,
  type Value,
  verifyCertificate,
} from '@loopchain/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FullNode, type Json, nodeRpcMethods, RpcDispatcher, type RpcServer, startRpcServer } from '../src/index.js'
import { secretKeysCached } from '../src/native-crypto.js'
import { testGenesis, testKey } from './fixtures/test-chain.js'

const v = testKey('cert rpc validator')
const funded = testKey('cert rpc funded')
const NETWORK = 14
const g: Genesis = (() => {
  const base = testGenesis({ chainId: 'cert-rpc-test', networkId: NETWORK, validators: [v], funded, params: { blockIntervalMs: 10 } })
  return { ...base, members: base.members.map((m) => ({ ...m, rights: Right.Validator | Right.Issuer })) }
})()

let node: FullNode
let observer: FullNode
let server: RpcServer
const dirs: string[] = []
let nonce = 0

async function rpc(method: string, params: Json = {}): Promise<{ result?: any; error?: { code: number; message: string; data?: any } }> {
  const res = await fetch(server.url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return (await res.json()) as never
}

function registryCall(from: KeyPair, method: string, params: Value): string {
  const tx = signTransaction(
    {
      version: 1,
      networkId: NETWORK,
      from: from.address,
      to: CERTIFICATE_REGISTRY_ADDRESS,
      value: 0n,
      stepLimit: 100_000,
      timestamp: Date.now() * 1000,
      nonce: nonce++,
      kind: TxKind.Call,
      data: encode(callDataCodec, { method, params }),
    },
    from,
  )
  return to0x(encode(transactionCodec, tx))
}

/** Waits until the node has committed `height`. */
async function reach(height: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (node.height < height) {
    if (Date.now() > deadline) throw new Error(`stuck at height ${node.height}, waiting for ${height}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

beforeAll(async () => {
  for (let i = 0; i < 2; i++) dirs.push(mkdtempSync(join(tmpdir(), 'loopchain-cert-')))
  node = await FullNode.open({ dataDir: dirs[0] as string, genesis: g, validatorSecret: v.secretKey })
  observer = await FullNode.open({ dataDir: dirs[1] as string, genesis: g })
  node.start()
  server = await startRpcServer({ dispatcher: new RpcDispatcher(nodeRpcMethods(node), { title: 'loopchain', version: '0.1.0' }) })
})
afterAll(async () => {
  await server.close()
  await node.stop()
  await observer.stop()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe('certificates through a running validator and its JSON-RPC', () => {
  let id: string
  let issuedAt: number

  it('issues a certificate; the block carries the block key’s signature; the file verifies offline', async () => {
    const now = Date.now() * 1000
    const r = await rpc('lc_sendTransactionAndWait', {
      tx: registryCall(v, 'issue', {
        subject: 'Kim Minji',
        attributes: { degree: 'MSc' },
        validFrom: BigInt(now - 1_000_000),
        validUntil: BigInt(now + 86_400_000_000),
      }),
    })
    expect(r.result).toMatchObject({ status: 'success', logs: [{ score: CERTIFICATE_REGISTRY_ADDRESS, event: 'Issued(bytes,Address)' }] })
    id = r.result.logs[0].indexed[0]
    issuedAt = r.result.height
    const block = (await rpc('lc_getBlockByHeight', { height: issuedAt })).result
    expect(block.certSignatures).toHaveLength(1)

    const file = (await rpc('lc_getCertificate', { id })).result
    expect(file).toMatchObject({ format: 'loopchain-certificate/1', id, chain: { chainId: 'cert-rpc-test', networkId: NETWORK } })
    const offline = verifyCertificate(file, { genesis: g, now: Date.now() * 1000 })
    expect(offline.steps.map((s) => s.status)).toEqual(['pass', 'pass', 'pass', 'pass', 'skipped', 'pass'])
    expect(offline.valid).toBe('partial')
    expect(offline.institution).toBe('bank-0')
    expect((await rpc('lc_getCertificate', { id: `0x${'00'.repeat(32)}` })).error?.message).toMatch(/not found/)
  })

  it('signs each block with a fresh block key that never enters the process’s key cache', async () => {
    // The validator's own key is cached by now (its votes); every block key after this is one-off.
    const cached = secretKeysCached()
    const keys = new Set<string>()
    for (let i = 0; i < 3; i++) {
      const r = await rpc('lc_sendTransactionAndWait', {
        tx: registryCall(v, 'issue', { subject: `Holder ${i}`, attributes: {}, validFrom: 0n, validUntil: BigInt(Date.now() * 2000) }),
      })
      expect(r.result?.status).toBe('success')
      const block = (await rpc('lc_getBlockByHeight', { height: r.result.height })).result
      expect(block.certSignatures).toHaveLength(1)
      keys.add(block.blockKey)
    }
    expect(keys.size).toBe(3)
    expect(secretKeysCached()).toBe(cached)
  })

  it('the registry change is followed by one more block, and then the status is proven active as of the issuing height', async () => {
    await reach(issuedAt + 1)
    const st = (await rpc('lc_getCertificateStatus', { id })).result
    expect(st).toMatchObject({ id, status: 'active' })
    const { evidence } = parseStatusEvidence(st)
    const file = parseCertificateFile((await rpc('lc_getCertificate', { id })).result)
    const r = verifyCertificate(file, { genesis: g, now: Date.now() * 1000, status: evidence })
    expect(r.valid).toBe(true)
    expect(r.asOfHeight).toBeGreaterThanOrEqual(issuedAt)
    const call = await rpc('lc_call', { to: CERTIFICATE_REGISTRY_ADDRESS, method: 'status', params: { id } })
    // lc_call needs the contract engine, which this node runs without.
    expect(call.error?.data?.code ?? call.result).toMatch(/NO_ENGINE|active/)
  })

  it('revoked: the status evidence then fails the status step', async () => {
    const r = await rpc('lc_sendTransactionAndWait', { tx: registryCall(v, 'revoke', { id: fromHex(id), reason: 'withdrawn' }) })
    expect(r.result).toMatchObject({ status: 'success' })
    await reach(r.result.height + 1)
    const st = (await rpc('lc_getCertificateStatus', { id })).result
    expect(st.status).toBe('revoked')
    const report = verifyCertificate((await rpc('lc_getCertificate', { id })).result, {
      genesis: g,
      now: Date.now() * 1000,
      status: parseStatusEvidence(st).evidence,
    })
    expect(report.valid).toBe(false)
    expect(report.steps.find((s) => s.name === 'status')).toMatchObject({ status: 'fail' })
    expect(report.steps.find((s) => s.name === 'status')?.detail).toMatch(/revoked at height/)
  })

  it('a synced block stripped of its certificate signatures is refused; the block as committed imports', async () => {
    for (let h = 1; h <= node.height; h++) {
      const stored = await node.committedBlock(h)
      if (!stored) throw new Error(`no block ${h}`)
      if (stored.block.certSignatures.length > 0) {
        const stripped = { ...stored.block, certSignatures: [] }
        expect(await (observer as any).isValidProposal(encode(blockCodec, stripped))).toBe(false)
        await expect(observer.importBlock(stripped, stored.commit)).rejects.toMatchObject({ code: 'CERT_SIGNATURES' })
        expect(observer.height).toBe(h - 1)
        expect(await (observer as any).isValidProposal(encode(blockCodec, stored.block))).toBe(true)
      }
      await observer.importBlock(stored.block, stored.commit)
    }
    expect(observer.height).toBe(node.height)
  })
})
