/**
 * The web app in real Chromium against a devnet of real node processes: `loopchain devnet` builds
 * and serves the page and prints its URL; certificates are issued, revoked and exported with the
 * CLI; the page's light client dials the nodes over WebSockets, and each certificate is dropped,
 * chosen or pasted into the page, which must reject every bad one at the right step. Then every
 * node is stopped and the page reloaded: the headers come from IndexedDB and the offline steps
 * still pass. Screenshots (desktop and phone size) go to test-results/web/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  CERTIFICATE_REGISTRY_ADDRESS,
  type CertificateFile,
  callDataCodec,
  certificateFileToJson,
  certificateId,
  certificateOfTransaction,
  decode,
  encode,
  encodeCompactCertificate,
  fromHex,
  genesisHash,
  keyPairFromSecret,
  nobleCrypto,
  parseCertificateFile,
  parseGenesis,
  type SignedHeader,
  signedHeaderCodec,
  signTransaction,
  TX_VERSION,
  TxKind,
  to0x,
  transactionCodec,
} from '@loopchain/core'
import { reservePortBlock } from '@loopchain/node'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../support/chromium.js'
import { alive, runLoopchain, startTestDevnet, type TestDevnet } from '../support/devnet.js'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const SHOTS = join(REPO, 'test-results/web')
const dir = mkdtempSync(join(tmpdir(), 'loopchain-web-'))
// A port range of our own: node i uses base + 10·i (+1 ws, +2 rpc), the page base + 100.
const BASE = reservePortBlock()
const RPC = `http://127.0.0.1:${BASE + 2}/`
const PHONE = { width: 390, height: 844 }
const DESKTOP = { width: 1280, height: 900 }

let devnet: TestDevnet
let url = ''
let browser: Browser
/** Certificate texts by case: portable files (JSON) and compact QR texts. */
const files: Record<string, string> = {}
/** The certificates' heights, to know how far the page must have synced. */
let lastHeight = 0

const cli = runLoopchain
const rpc = (method: string, params: object = {}) => devnet.rpc(method, params)
const waitFor = <T>(f: () => T | undefined | Promise<T | undefined>, ms: number, what: string) => devnet.waitFor(f, ms, what)

/** Issues a certificate with the CLI as node-0's institution; returns its id and height. */
async function issue(args: string[]): Promise<{ id: string; height: number }> {
  const out = JSON.parse(await cli(['cert', 'issue', '--key', join(dir, 'issuer.json'), '--rpc', RPC, '--wait', ...args]))
  expect(out.receipt.status).toBe('success')
  lastHeight = Math.max(lastHeight, out.height)
  return { id: out.id, height: out.height }
}

const exportFile = (id: string, qr = false) => cli(['cert', 'export', '--id', id, '--rpc', RPC, ...(qr ? ['--qr'] : [])])

/** A valid file changed by `f` (which gets and returns the decoded file). */
function altered(json: string, f: (file: CertificateFile) => CertificateFile): string {
  return JSON.stringify(certificateFileToJson(f(parseCertificateFile(JSON.parse(json)))), null, 2)
}

/**
 * A certificate issued by a member without the issuer right (the faucet may deploy, not issue):
 * the registry refuses the call, but the block that carries it signed the certificate with its
 * block key all the same (the signature does not depend on execution). No node exports such a
 * certificate, so the test builds its compact form from the transaction and the block.
 */
async function nonIssuerCompact(): Promise<string> {
  const faucet = keyPairFromSecret(fromHex(JSON.parse(readFileSync(join(dir, 'faucet.json'), 'utf8')).secretKey))
  const genesis = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
  const { nonce } = await rpc('lc_getAccount', { address: faucet.address })
  const params = { subject: 'Mallory', attributes: { degree: 'PhD' }, validFrom: BigInt(Date.now() * 1000) }
  const tx = signTransaction(
    {
      version: TX_VERSION,
      networkId: genesis.networkId,
      from: faucet.address,
      to: CERTIFICATE_REGISTRY_ADDRESS,
      value: 0n,
      stepLimit: 200_000,
      timestamp: Date.now() * 1000,
      nonce,
      kind: TxKind.Call,
      data: encode(callDataCodec, { method: 'issue', params }),
    },
    faucet,
  )
  const receipt = await rpc('lc_sendTransactionAndWait', { tx: to0x(encode(transactionCodec, tx)), timeoutMs: 30_000 })
  expect(receipt.status).toBe('failure')
  const certificate = certificateOfTransaction(tx, receipt.height)
  if (certificate === undefined) throw new Error('the transaction issues no certificate')
  const block = await rpc('lc_getBlockByHeight', { height: receipt.height, full: true })
  const id = certificateId(certificate)
  const signature = (block.certSignatures as string[])
    .map((s) => fromHex(s))
    .find((s) => nobleCrypto.verify(s, id, fromHex(block.blockKey)))
  if (signature === undefined) throw new Error('no block-key signature of the certificate in its block')
  // The page proves the status against a later header: wait for the next block.
  await waitFor(async () => ((await rpc('lc_getNetworkInfo')).height > receipt.height ? true : undefined), 30_000, 'the next block')
  lastHeight = Math.max(lastHeight, receipt.height)
  return encodeCompactCertificate({
    chain: { chainId: genesis.chainId, networkId: genesis.networkId, genesisHash: genesisHash(genesis) },
    certificate,
    signature,
    evidence: undefined,
  })
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true })
  devnet = await startTestDevnet(dir, BASE)
  url = devnet.url

  // node-0's validator account is an institution with the issuer right.
  const node0 = JSON.parse(readFileSync(join(dir, 'node-0', 'config.json'), 'utf8'))
  writeFileSync(join(dir, 'issuer.json'), JSON.stringify({ secretKey: node0.validatorKey }), { mode: 0o600 })

  // The first block's state is the genesis's; certificates of interest come after it.
  const expired = await issue([
    '--subject',
    'Lee Expired',
    '--attr',
    'degree=BSc',
    '--valid-from',
    '2020-01-01',
    '--valid-until',
    '2021-01-01',
  ])
  const valid = await issue([
    '--subject',
    'Kim Minji',
    '--attr',
    'degree=MSc',
    '--attr',
    'field=Computer Science',
    '--valid-until',
    '2030-01-01',
  ])
  const revoked = await issue(['--subject', 'Park Revoked', '--attr', 'degree=MBA'])
  await cli([
    'cert',
    'revoke',
    '--key',
    join(dir, 'issuer.json'),
    '--id',
    revoked.id,
    '--reason',
    'issued in error',
    '--rpc',
    RPC,
    '--wait',
  ])
  files.valid = await exportFile(valid.id)
  files.validCompact = (await exportFile(valid.id, true)).trim()
  files.expired = await exportFile(expired.id)
  files.revoked = await exportFile(revoked.id)
  // One byte of the subject changed: the id no longer matches.
  files.tampered = files.valid.replace('"Kim Minji"', '"Kim Minjo"')
  // Re-signed by a key that is not the block's.
  const stranger = keyPairFromSecret(crypto.getRandomValues(new Uint8Array(32)))
  files.unknownKey = altered(files.valid, (f) => ({ ...f, signature: nobleCrypto.sign(certificateId(f.certificate), stranger.secretKey) }))
  // Re-signed by a stranger's key, and its header altered to claim that key as the block key.
  files.unknownBlockKey = altered(files.valid, (f) => {
    const ev = f.evidence as NonNullable<CertificateFile['evidence']>
    const header: SignedHeader = { ...ev.header, header: { ...ev.header.header, blockKey: stranger.publicKey } }
    return {
      ...f,
      signature: nobleCrypto.sign(certificateId(f.certificate), stranger.secretKey),
      evidence: { ...ev, header: decode(signedHeaderCodec, encode(signedHeaderCodec, header)) },
    }
  })
  files.nonIssuer = await nonIssuerCompact()
  browser = await launchChromium()
}, 420_000)

afterAll(async () => {
  await browser?.close()
  await devnet?.stop()
  rmSync(dir, { recursive: true, force: true })
})

interface Outcome {
  verdict: string
  steps: Record<string, string>
  firstFailure: string | undefined
  asOf: string
  headerNote: string | undefined
  text: string
}

/** Gives the page a certificate the way a person would, and reads the result once it is shown. */
async function verifyIn(page: Page, how: 'paste' | 'choose' | 'drop', text: string, name = 'certificate.json'): Promise<Outcome> {
  const result = page.locator('#result')
  const before = Number((await result.getAttribute('data-done')) ?? 0)
  if (how === 'paste') {
    await page.getByLabel('Or paste the certificate').fill(text)
    await page.getByRole('button', { name: 'Verify', exact: true }).click()
  } else if (how === 'choose') {
    await page.locator('#cert-file').setInputFiles({ name, mimeType: 'application/json', buffer: Buffer.from(text) })
  } else {
    const dt = await page.evaluateHandle(
      ([t, n]) => {
        const d = new DataTransfer()
        d.items.add(new File([t as string], n as string, { type: 'application/json' }))
        return d
      },
      [text, name],
    )
    await page.dispatchEvent('#drop-zone', 'drop', { dataTransfer: dt })
  }
  await page.waitForSelector(`#result[data-done="${before + 1}"]`, { timeout: 60_000 })
  return page.evaluate(() => {
    const steps: Record<string, string> = {}
    for (const li of document.querySelectorAll<HTMLElement>('#result li[data-step]'))
      steps[li.dataset.step as string] = li.dataset.status as string
    return {
      verdict: document.querySelector<HTMLElement>('#verdict')?.dataset.verdict ?? 'none',
      steps,
      firstFailure: document.querySelector<HTMLElement>('#result li[data-status="fail"]')?.dataset.step,
      asOf: document.querySelector('#as-of')?.textContent ?? '',
      headerNote: document.querySelector<HTMLElement>('#header-note')?.dataset.header,
      text: document.querySelector('#result')?.textContent ?? '',
    }
  })
}

const ALL_PASS = {
  'well-formed': 'pass',
  'header-committed': 'pass',
  'block-key-signature': 'pass',
  'issuer-right': 'pass',
  status: 'pass',
  'validity-window': 'pass',
}

/** Opens the page and waits until its light client has verified the chain past every certificate. */
async function openSynced(viewport: { width: number; height: number }): Promise<Page> {
  const page = await browser.newPage({ viewport })
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  await page.goto(url)
  await page.waitForSelector('#chain-status[data-phase="online"]', { timeout: 60_000 })
  await page.goto(`${url}#/network`)
  await page.waitForFunction((h) => Number(document.querySelector<HTMLElement>('#net-height')?.dataset.height) > h, lastHeight, {
    timeout: 60_000,
  })
  await page.goto(`${url}#/verify`)
  expect(errors).toEqual([])
  return page
}

describe('the web app against a devnet of real nodes', () => {
  let page: Page

  it('devnet serves the page and its chain.json, pinning the devnet genesis and listing the nodes over WebSockets', async () => {
    expect(url).toBe(`http://127.0.0.1:${BASE + 100}/`)
    const chain = (await (await fetch(`${url}chain.json`)).json()) as { genesis: unknown; bootstrap: string[] }
    expect(chain.genesis).toEqual(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
    expect(chain.bootstrap).toHaveLength(5)
    for (const a of chain.bootstrap) expect(a).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/12D3Koo\w+$/)
    const html = await fetch(url)
    expect(html.headers.get('content-security-policy')).toContain("default-src 'self'")
  })

  it('a valid certificate verifies in the page: every step passes, with the height its status is as of', async () => {
    page = await openSynced(DESKTOP)
    const r = await verifyIn(page, 'choose', files.valid as string, 'kim-minji.json')
    expect(r.steps).toEqual(ALL_PASS)
    expect(r.verdict).toBe('valid')
    expect(r.asOf).toMatch(/^Status as of height \d+$/)
    expect(r.headerNote).toBe('match')
    expect(r.text).toContain('Kim Minji')
    await page.screenshot({ path: join(SHOTS, 'desktop-valid.png'), fullPage: true })
  }, 180_000)

  it('the compact QR text verifies too: the light client fetches and checks the header and proofs it leaves out', async () => {
    const r = await verifyIn(page, 'paste', files.validCompact as string)
    expect(r.steps).toEqual(ALL_PASS)
    expect(r.verdict).toBe('valid')
    expect(r.text).toContain('fetched and verified by the light client')
  }, 60_000)

  it.each([
    ['revoked', 'status', /revoked at height \d+ \("issued in error"\)/],
    ['expired', 'validity-window', /expired at 2021-01-01T00:00:00Z/],
    ['tampered', 'well-formed', /not the digest of the certificate/],
    ['unknownKey', 'block-key-signature', /does not verify under the key of block/],
    ['unknownBlockKey', 'header-committed', /header \d+ is not committed by the set in force/],
    ['nonIssuer', 'issuer-right', /did not hold the issuer right/],
  ])(
    'a certificate that is %s is rejected at the %s step',
    async (name, step, detail) => {
      const how = name === 'revoked' ? 'drop' : 'paste'
      const r = await verifyIn(page, how, files[name] as string, `${name}.json`)
      expect(r.verdict).toBe('invalid')
      expect(r.firstFailure).toBe(step)
      expect(r.steps[step]).toBe('fail')
      expect(r.text).toMatch(detail)
      if (name === 'revoked') await page.screenshot({ path: join(SHOTS, 'desktop-revoked.png'), fullPage: true })
      if (name === 'nonIssuer') await page.screenshot({ path: join(SHOTS, 'desktop-non-issuer.png'), fullPage: true })
    },
    60_000,
  )

  it('works with the keyboard alone: every control is reachable by Tab, and the result takes the focus', async () => {
    await page.goto(`${url}#/verify`)
    await page.waitForSelector('#cert-text')
    const reached: string[] = []
    for (let i = 0; i < 10 && !reached.includes('cert-text'); i++) {
      await page.keyboard.press('Tab')
      reached.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent?.trim() || ''))
    }
    expect(reached).toContain('Choose a file…')
    expect(reached.at(-1)).toBe('cert-text')
    const before = Number((await page.locator('#result').getAttribute('data-done')) ?? 0)
    await page.keyboard.press('Control+A')
    await page.keyboard.insertText(files.expired as string)
    await page.keyboard.press('Tab')
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('verify-button')
    await page.keyboard.press('Enter')
    await page.waitForSelector(`#result[data-done="${before + 1}"]`)
    expect(await page.evaluate(() => document.activeElement?.closest('#verdict') !== null)).toBe(true)
    expect(await page.locator('#announce').textContent()).toMatch(/^Not valid\. Rejected: it is outside its validity period/)
  }, 60_000)

  it('the network view shows the connected nodes, the verified height and the validator set', async () => {
    await page.getByRole('link', { name: 'Network' }).click()
    await page.waitForSelector('#validators tbody tr')
    expect(await page.locator('#validators tbody tr').count()).toBe(4)
    expect(Number(await page.locator('#net-peers').textContent())).toBeGreaterThanOrEqual(2)
    expect(Number(await page.locator('#net-height').getAttribute('data-height'))).toBeGreaterThan(lastHeight)
    // With two nodes connected and a verified tip, the cross-check has run, or says it will: never that it lacks nodes.
    expect(await page.locator('#cross-check').textContent()).toMatch(
      /^(Agrees with .* at height \d+\.|Not yet: it runs with the next sync\.)$/,
    )
    expect(await page.locator('#genesis-hash').textContent()).toBe(
      to0x(genesisHash(parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8'))))),
    )
    await page.screenshot({ path: join(SHOTS, 'desktop-network.png'), fullPage: true })
  }, 60_000)

  it('works on a phone-sized screen: nothing overflows sideways, and the result reads the same', async () => {
    const phone = await openSynced(PHONE)
    const r = await verifyIn(phone, 'paste', files.valid as string)
    expect(r.verdict).toBe('valid')
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width)
    await phone.screenshot({ path: join(SHOTS, 'phone-valid.png'), fullPage: true })
    await verifyIn(phone, 'paste', files.revoked as string)
    await phone.screenshot({ path: join(SHOTS, 'phone-revoked.png'), fullPage: true })
    await phone.goto(`${url}#/network`)
    await phone.waitForSelector('#validators tbody tr')
    expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width)
    await phone.screenshot({ path: join(SHOTS, 'phone-network.png'), fullPage: true })
    await phone.close()
    // The dark scheme, for people whose phones ask for it.
    const dark = await browser.newPage({ viewport: PHONE, colorScheme: 'dark' })
    await dark.goto(`${url}#/verify`)
    expect((await verifyIn(dark, 'paste', files.tampered as string)).verdict).toBe('invalid')
    await dark.screenshot({ path: join(SHOTS, 'phone-dark-tampered.png'), fullPage: true })
    await dark.close()
  }, 180_000)

  it('kill -9 of node-0: the devnet says how to restart it, and goes on printing the blocks the others commit', async () => {
    const node0 = devnet.nodePids().find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node-0/config.json'))
    expect(node0).toBeDefined()
    process.kill(node0 as number, 'SIGKILL')
    await waitFor(() => (devnet.output().includes('node-0 exited (SIGKILL)') ? true : undefined), 30_000, 'the exit line')
    expect(devnet.output()).toContain(
      `node-0 exited (SIGKILL); its log: ${join(dir, 'node-0', 'node.log')}. To restart it: npx loopchain start --config ${join(dir, 'node-0', 'config.json')}`,
    )
    expect(readFileSync(join(dir, 'node-0', 'node.log'), 'utf8')).toMatch(/"msg":"node ready"/)

    const node1 = `http://127.0.0.1:${BASE + 12}/`
    const to = 'hx00000000000000000000000000000000000000aa'
    const receipt = JSON.parse(
      await cli(['tx', 'send', '--key', join(dir, 'faucet.json'), '--to', to, '--value', '7', '--wait', '--rpc', node1]),
    )
    expect(receipt.status).toBe('success')
    await waitFor(() => (devnet.output().includes(`block ${receipt.height} committed\n`) ? true : undefined), 30_000, 'the block line')
    // The page follows the three validators left; the next test needs it settled at their tip.
    const tipOf1 = async () => {
      const res = await fetch(node1, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'lc_getNetworkInfo' }) })
      return ((await res.json()) as { result: { height: number } }).result.height
    }
    await waitFor(
      async () => {
        const shown = Number(await page.locator('#net-height').getAttribute('data-height'))
        return shown >= receipt.height && shown === (await tipOf1()) ? true : undefined
      },
      30_000,
      'the page at the tip',
    )
  }, 90_000)

  it('with every node stopped, a reload loads the headers from IndexedDB and the offline steps still pass', async () => {
    const nodes = devnet.nodePids()
    expect(nodes).toHaveLength(4) // node-0 was killed above
    for (const pid of nodes) process.kill(pid, 'SIGTERM')
    await waitFor(() => (nodes.every((pid) => !alive(pid)) ? true : undefined), 30_000, 'the nodes to stop')
    await expect(fetch(RPC)).rejects.toThrow()
    // Read once the nodes are gone (the devnet makes empty blocks): the tip the page verified last.
    const height = async () => Number(await page.locator('#net-height').getAttribute('data-height'))
    const verified = await waitFor(
      async () => {
        const h = await height()
        await new Promise((r) => setTimeout(r, 1000))
        return (await height()) === h ? h : undefined
      },
      30_000,
      'the page to stop moving',
    )

    await page.goto(`${url}#/network`)
    await page.reload()
    await page.waitForSelector('#net-height')
    // The stored tip, re-verified from the pinned genesis, shows before (and without) any node.
    expect(Number(await page.locator('#net-height').getAttribute('data-height'))).toBe(verified)
    expect(await page.locator('#net-from-store').count()).toBe(1)
    await page.waitForSelector('#chain-status[data-phase="offline"]', { timeout: 30_000 })
    expect(await page.locator('#net-peers').textContent()).toBe('0')
    const dbs = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name))
    expect(dbs.some((n) => n?.startsWith('loopchain-light-loopchain-devnet-'))).toBe(true)
    await page.screenshot({ path: join(SHOTS, 'desktop-offline-network.png'), fullPage: true })

    await page.goto(`${url}#/verify`)
    const r = await verifyIn(page, 'drop', files.valid as string, 'kim-minji.json')
    expect(r.verdict).toBe('partial')
    expect(r.steps).toEqual({ ...ALL_PASS, status: 'skipped' })
    expect(r.asOf).toBe('Status not checked online')
    // The file's header is the one this browser verified earlier and kept in IndexedDB.
    expect(r.headerNote).toBe('match')
    expect(r.text).toContain('IndexedDB')
    expect(r.text).toMatch(/Not checked online: no full node is reachable/)
    await page.screenshot({ path: join(SHOTS, 'desktop-offline-valid.png'), fullPage: true })

    // Offline, the bad ones are still caught by the steps that need no network.
    expect((await verifyIn(page, 'paste', files.tampered as string)).firstFailure).toBe('well-formed')
    expect((await verifyIn(page, 'paste', files.unknownKey as string)).firstFailure).toBe('block-key-signature')
    expect((await verifyIn(page, 'paste', files.expired as string)).firstFailure).toBe('validity-window')
    // The compact form carries no proofs: offline only its form and window can be checked.
    const compact = await verifyIn(page, 'paste', files.validCompact as string)
    expect(compact.verdict).toBe('partial')
    expect(compact.steps['header-committed']).toBe('skipped')

    const phone = await browser.newPage({ viewport: PHONE })
    await phone.goto(`${url}#/verify`)
    expect((await verifyIn(phone, 'paste', files.valid as string)).verdict).toBe('partial')
    await phone.screenshot({ path: join(SHOTS, 'phone-offline-valid.png'), fullPage: true })
    await phone.close()
  }, 180_000)
})
