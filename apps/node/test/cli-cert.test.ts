import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { reservePortBlock } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type OneNode, runCli, startOneNode } from './fixtures/one-node.js'

const run = runCli

// A block of ports no other test on this machine holds.
const basePort = reservePortBlock()
const url = `http://127.0.0.1:${basePort + 2}/`
let dir: string
let one: OneNode
let issuerKey: string
let genesis: string

const rpc = (method: string, params: object = {}) => one.rpc(method, params)

const cert = (sub: string, ...args: string[]) => run('cert', sub, '--rpc', url, ...args)
const verify = (file: string, online: boolean) =>
  run('cert', 'verify', '--file', file, '--genesis', genesis, ...(online ? ['--rpc', url] : []))
const stepOf = (stdout: string, name: string) =>
  (JSON.parse(stdout).steps as { name: string; status: string; detail: string }[]).find((s) => s.name === name)

beforeAll(async () => {
  one = await startOneNode('cli-cert', basePort)
  dir = one.dir
  genesis = join(dir, 'genesis.json')
  // The validator's institution holds the issuer right (init gives it to every validator); its
  // node config serves as the key file.
  issuerKey = join(dir, 'node-0', 'config.json')
})

afterAll(() => one?.stop())

describe('loopchain cert against a running node', () => {
  it('issue → export → verify offline (partial) and online (valid) → revoke → verify fails at the status step', async () => {
    const issued = cert(
      'issue',
      '--key',
      issuerKey,
      '--subject',
      'Kim Minji',
      '--attr',
      'degree=MSc',
      '--attr',
      'school=KAIST',
      '--valid-until',
      '2030-01-01',
      '--wait',
    )
    expect(issued.stderr).toBe('')
    expect(issued.status).toBe(0)
    const out = JSON.parse(issued.stdout)
    expect(out.id).toMatch(/^0x[0-9a-f]{64}$/)
    expect(out.receipt).toMatchObject({ status: 'success' })
    // --wait returned only once the next block made the certificate provable.
    expect((await rpc('lc_getNetworkInfo')).height).toBeGreaterThan(out.height)

    const file = join(dir, 'kim.json')
    expect(cert('export', '--id', out.id, '--out', file).status).toBe(0)
    const json = JSON.parse(readFileSync(file, 'utf8'))
    // A second export to the same file (a key file, say) is refused: the file stays as it was.
    writeFileSync(file, `${readFileSync(file, 'utf8')} `)
    const again = cert('export', '--id', out.id, '--out', file)
    expect([again.status, again.stderr]).toEqual([
      2,
      `loopchain: ${file} exists; cert export never overwrites a file (it could be a key)\n`,
    ])
    expect(readFileSync(file, 'utf8').endsWith('\n ')).toBe(true)
    expect(json.certificate).toMatchObject({
      subject: 'Kim Minji',
      attributes: [
        { key: 'degree', value: 'MSc' },
        { key: 'school', value: 'KAIST' },
      ],
    })

    const offline = verify(file, false)
    expect(offline.status).toBe(3)
    expect(JSON.parse(offline.stdout).valid).toBe('partial')
    expect(stepOf(offline.stdout, 'issuer-right')?.status).toBe('pass')
    expect(stepOf(offline.stdout, 'status')?.status).toBe('skipped')
    expect(offline.stderr).toMatch(/✓ block-key-signature/)

    const online = verify(file, true)
    expect(online.status).toBe(0)
    expect(JSON.parse(online.stdout)).toMatchObject({ valid: true, id: out.id, institution: 'institution-0' })

    // The compact QR text completes itself online with the node's file.
    const qr = join(dir, 'kim.qr.txt')
    expect(cert('export', '--id', out.id, '--qr', '--out', qr).status).toBe(0)
    expect(readFileSync(qr, 'utf8')).toMatch(/^LC1:[0-9A-Z $%*+\-./:]+\n$/)
    expect(verify(qr, true).status).toBe(0)

    const revoked = cert('revoke', '--key', issuerKey, '--id', out.id, '--reason', 'issued in error', '--wait')
    expect(revoked.status).toBe(0)
    const after = verify(file, true)
    expect(after.status).toBe(1)
    expect(JSON.parse(after.stdout).valid).toBe(false)
    expect(stepOf(after.stdout, 'status')).toMatchObject({ status: 'fail' })
    expect(stepOf(after.stdout, 'status')?.detail).toMatch(/revoked at height \d+ \("issued in error"\)/)
    expect(stepOf(after.stdout, 'block-key-signature')?.status).toBe('pass')
  })

  it('refuses an issuer without the right (the faucet), bad flags, and a tampered file', async () => {
    const faucet = join(dir, 'faucet.json')
    const refused = cert('issue', '--key', faucet, '--subject', 'Nobody', '--wait')
    expect(refused.status).toBe(1)
    expect(refused.stderr).toContain('PERMISSION_DENIED')
    expect(cert('issue', '--key', faucet, '--subject', 'x', '--valid-until', 'someday').status).toBe(2)
    expect(cert('revoke', '--key', faucet, '--id', '0x12').stderr).toMatch(/not a certificate id/)
    const bogus = join(dir, 'bogus.json')
    writeFileSync(bogus, '{"format":"loopchain-certificate/1"}')
    const bad = verify(bogus, false)
    expect(bad.status).toBe(1)
    expect(stepOf(bad.stdout, 'well-formed')?.status).toBe('fail')
    expect(existsSync(bogus)).toBe(true)
  })
})
