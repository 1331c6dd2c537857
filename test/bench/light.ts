/**
 * `npm run bench -- light [--height N] [--changes K] [--validators V] [--runs R]`: the browser
 * light client, measured in headless Chromium (test/bench/light-page.entry.ts does the in-page
 * work). Every figure sits next to an in-run baseline from the same page and crypto provider (the
 * core's noble ed25519):
 *
 * - `ed25519_verify`: raw signature checks per second — the baseline of everything below,
 *   sampled beside each figure compared with it;
 * - `header_verify`, `header_verify_vs_sig_ratio`, `header_verify_sigs`: signed-header checks per
 *   second against it (a header costs one check per signature its commit carries);
 * - `sync_100k_ms` (target < 2000): open a client on a fresh IndexedDB database and sync from
 *   genesis to the tip of a 100,000-block synthetic chain with 10 set changes, served by an
 *   in-memory node through the core's light-protocol handlers (median of R runs; `_first_ms` is
 *   the profile's first); `sync_100k_node_ms` is the node's share of it, `sync_100k_memory_store_ms` the same sync
 *   into memory (with `_idb_vs_memory_ratio`), `sync_100k_sigs` its signature checks and
 *   `sync_100k_sig_floor_ms` what they alone cost at the baseline rate, with `_vs_sig_floor_ratio`;
 * - `sync_100k_bytes` (request and response bytes), `sync_100k_requests`, and
 *   `all_headers_bytes`: what fetching every header would cost, with the ratio;
 * - `sync_100k_idb_stored_bytes`: what the synced client keeps in IndexedDB (the set changes,
 *   the headers it keeps, the checkpoint);
 * - `idb_bytes_per_header`: what Chromium charges the origin per consecutive header stored
 *   (growth of `navigator.storage.estimate().usage`), next to `header_encoded_bytes`, the header's
 *   canonical encoding, with `idb_vs_encoded_ratio`;
 * - `cert_verify_warm_ms` (target < 50): the page's `verifyCertificate` call on a portable file
 *   with status evidence (all six steps), median of repeated calls in one page, next to
 *   `cert_verify_sig_floor_ms` (its `cert_verify_sigs` signature checks at the baseline rate);
 *   `cert_verify_cold_ms`: the first call in a fresh profile (median over fresh profiles), next to
 *   `ed25519_verify_cold_ms`, the first bare signature check in a fresh profile;
 * - `page_js_gzip_kb` (target < 300): the built web app's JavaScript that index.html loads,
 *   gzip level 9 (`page_js_all_gzip_kb`: every emitted chunk), next to `verifier_js_gzip_kb`, the
 *   core's `verifyCertificate` and the readers it needs alone, built the same way.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import {
  certificateFileToJson,
  genesisToJson,
  keyPairFromSecret,
  nobleCrypto,
  sha256,
  statusEvidenceToJson,
  toHex,
  utf8,
} from '@loopchain/core'
import { chromium } from 'playwright-core'
import { build } from 'vite'
import { CertChain, DAY, loggedId, school, T0, v1, v4 } from '../../packages/core/test/fixtures/cert-chain.js'
import { bundleForBrowser, CHROMIUM_ARGS, CHROMIUM_PATH, serveStatic } from '../support/chromium.js'
import type { CertInput, ColdResult, MainResult, PageParams } from './light-page.entry.js'
import type { Report } from './report.js'

/** Options of {@link runLightBench}. */
export interface LightBenchOptions {
  /** Tip height of the synthetic chain. Default 100,000 (the issue's chain). */
  readonly height?: number
  /** Validator-set changes spread over it. Default 10. */
  readonly changes?: number
  /** Validators per set. Default 4 (the synthetic chain's default). */
  readonly validators?: number
  /** Timed syncs per store kind, and fresh profiles per cold figure. Default 5. */
  readonly runs?: number
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const ENTRY = fileURLToPath(new URL('./light-page.entry.ts', import.meta.url))
// Headers written to IndexedDB to price one: enough that fixed costs (the database, its first
// log file) are lost in the mean, few enough to sign in a few seconds in the page.
const STORED_HEADERS = 2000
// Warm certificate verifications timed in one page.
const CERT_RUNS = 50

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

/** A certificate with every piece of evidence, built the way the core's certificate tests build one. */
async function certInput(): Promise<CertInput> {
  const c = await CertChain.start()
  // A set change before issuance, so verification follows it from the pinned genesis.
  await c.block([c.propose(v1, { type: 'addValidator', address: v4.address, publicKey: v4.publicKey, power: 1n })])
  await c.block()
  const id = loggedId(await c.block([c.issue(school, 'Lee Jiwoo', { subjectKey: keyPairFromSecret(sha256(utf8('jiwoo'))).publicKey })]))
  await c.block()
  const file = await c.file(id)
  return {
    genesis: genesisToJson(c.genesis),
    file: JSON.stringify(certificateFileToJson(file)),
    status: statusEvidenceToJson(id, await c.status(id), 'active'),
    now: T0 + 10 * DAY,
  }
}

/** Opens `url` in a fresh Chromium profile (a new user-data directory: on-disk IndexedDB, nothing cached) and returns the page's report. */
async function inFreshProfile<T>(url: string, params: PageParams, timeoutMs: number): Promise<T> {
  // A persistent context is what gives a real on-disk profile (`browser.newPage()` opens an
  // off-the-record context, whose IndexedDB lives in memory).
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`Chromium not found at ${CHROMIUM_PATH}: install it with 'apt-get install -y chromium'`)
  const dir = mkdtempSync(join(tmpdir(), 'loopchain-bench-profile-'))
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true })
  try {
    await context.addInitScript((p) => {
      ;(globalThis as { __params?: unknown }).__params = p
    }, params)
    const page = context.pages()[0] ?? (await context.newPage())
    const logs: string[] = []
    page.on('console', (m) => logs.push(m.text()))
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`))
    await page.goto(url)
    await page.waitForFunction(() => '__result' in globalThis || '__error' in globalThis, undefined, { timeout: timeoutMs })
    const error = await page.evaluate(() => (globalThis as { __error?: string }).__error)
    if (error !== undefined) throw new Error(`in Chromium: ${error}\n${logs.join('\n')}`)
    return (await page.evaluate(() => (globalThis as { __result?: unknown }).__result)) as T
  } finally {
    await context.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const gzipKb = (bytes: Uint8Array) => gzipSync(bytes, { level: 9 }).byteLength / 1024

/**
 * Builds the web app with the repository's vite config into a temporary directory (apps/web/dist
 * is left alone) and sums the gzipped JavaScript its index.html loads: module scripts and
 * modulepreloads. Also returns every emitted JS file's gzipped total (lazy chunks included).
 */
async function pageJs(): Promise<{ pageKb: number; allKb: number; files: number }> {
  const outDir = mkdtempSync(join(tmpdir(), 'loopchain-bench-web-'))
  try {
    await build({
      configFile: join(ROOT, 'vite.config.ts'),
      mode: 'production',
      logLevel: 'error',
      build: { outDir, emptyOutDir: true },
    })
    const html = readFileSync(join(outDir, 'index.html'), 'utf8')
    const refs = new Set<string>()
    for (const tag of html.match(/<(script|link)\b[^>]*>/g) ?? []) {
      const isModule = /^<script\b/.test(tag) && /type="module"/.test(tag)
      const isPreload = /^<link\b/.test(tag) && /rel="modulepreload"/.test(tag)
      const src = /(?:src|href)="([^"]+)"/.exec(tag)?.[1]
      if ((isModule || isPreload) && src !== undefined) refs.add(src.replace(/^\.?\//, ''))
    }
    if (refs.size === 0) throw new Error('the built index.html loads no module script')
    let pageKb = 0
    for (const r of refs) pageKb += gzipKb(readFileSync(join(outDir, r)))
    const assets = join(outDir, 'assets')
    const all = readdirSync(assets).filter((f) => f.endsWith('.js'))
    const allKb = all.reduce((a, f) => a + gzipKb(readFileSync(join(assets, f))), 0)
    return { pageKb, allKb, files: refs.size }
  } finally {
    rmSync(outDir, { recursive: true, force: true })
  }
}

/** The core's `verifyCertificate` alone, built and minified as the page is: the floor any verification page carries. */
async function verifierJsKb(): Promise<number> {
  const outDir = mkdtempSync(join(tmpdir(), 'loopchain-bench-verifier-'))
  try {
    await build({
      configFile: false,
      logLevel: 'error',
      build: {
        outDir,
        emptyOutDir: true,
        target: 'es2022',
        minify: true,
        lib: {
          entry: fileURLToPath(new URL('./light-verifier.entry.ts', import.meta.url)),
          formats: ['es'],
          fileName: () => 'verifier.js',
        },
        rolldownOptions: { output: { keepNames: true } },
      },
    })
    return readdirSync(outDir)
      .filter((f) => f.endsWith('.js'))
      .reduce((a, f) => a + gzipKb(readFileSync(join(outDir, f))), 0)
  } finally {
    rmSync(outDir, { recursive: true, force: true })
  }
}

/** Runs the suite, reporting each figure as it is known. */
export async function runLightBench(report: Report, opts: LightBenchOptions = {}): Promise<void> {
  const height = opts.height ?? 100_000
  const changes = opts.changes ?? 10
  const runs = Math.max(1, opts.runs ?? 5)
  // Named after the issue's chain when it is that chain, so the target's line name stays stable.
  const sync = height === 100_000 ? 'sync_100k' : `sync_${height}`
  const cert = await certInput()
  const sk = sha256(utf8('light bench cold key'))
  const message = sha256(utf8('a vote'))
  const params: PageParams = {
    mode: 'main',
    height,
    changes,
    validators: opts.validators ?? 4,
    syncRuns: runs,
    storedHeaders: STORED_HEADERS,
    certRuns: CERT_RUNS,
    cert,
    sig: { signature: toHex(nobleCrypto.sign(message, sk)), message: toHex(message), publicKey: toHex(nobleCrypto.publicKey(sk)) },
  }

  const dir = await bundleForBrowser(ENTRY)
  const server = await serveStatic(dir)
  try {
    const m = await inFreshProfile<MainResult>(server.url, params, 600_000)
    const sig = m.sigVerifyPerSec
    report('ed25519_verify', median([sig.header, sig.sync, sig.cert]), 'ops/s')
    report('header_verify', m.headerVerifyPerSec, 'ops/s')
    report('header_verify_sigs', m.sigsPerHeader, 'sigs')
    report('header_verify_vs_sig_ratio', m.headerVerifyPerSec / sig.header, 'x')

    const s = m.sync
    const syncMs = median(s.idbMs)
    const floorMs = (s.sigs / sig.sync) * 1000
    report('validators_per_set', params.validators, 'validators')
    report(`${sync}_set_changes`, s.setChanges, 'changes')
    report(`${sync}_ms`, syncMs, 'ms')
    report(`${sync}_first_ms`, s.idbMs[0] as number, 'ms')
    report(`${sync}_node_ms`, median(s.nodeMs), 'ms')
    report(`${sync}_memory_store_ms`, median(s.memoryMs), 'ms')
    report(`${sync}_idb_vs_memory_ratio`, syncMs / median(s.memoryMs), 'x')
    report(`${sync}_verified_headers`, s.verifiedHeaders, 'headers')
    report(`${sync}_sigs`, s.sigs, 'sigs')
    report(`${sync}_sig_floor_ms`, floorMs, 'ms')
    report(`${sync}_vs_sig_floor_ratio`, syncMs / floorMs, 'x')
    report(`${sync}_requests`, s.requests, 'requests')
    report(`${sync}_bytes`, s.requestBytes + s.responseBytes, 'B')
    report('all_headers_bytes', m.allHeadersBytes, 'B')
    report(`${sync}_vs_all_headers_bytes_ratio`, (s.requestBytes + s.responseBytes) / m.allHeadersBytes, 'x')
    report(`${sync}_idb_stored_bytes`, s.storedBytes, 'B')

    report('idb_bytes_per_header', m.idb.usageBytes / m.idb.headers, 'B')
    report('idb_encoded_bytes_per_header', m.idb.storedBytes / m.idb.headers, 'B')
    report('header_encoded_bytes', m.idb.encodedBytesPerHeader, 'B')
    report('idb_vs_encoded_ratio', m.idb.usageBytes / m.idb.headers / m.idb.encodedBytesPerHeader, 'x')

    if (m.cert.valid !== true) throw new Error(`the benchmark's certificate does not verify (valid: ${m.cert.valid})`)
    const warm = median(m.cert.warmMs)
    report('cert_verify_warm_ms', warm, 'ms')
    report('cert_verify_sigs', m.cert.sigs, 'sigs')
    const certFloorMs = (m.cert.sigs / sig.cert) * 1000
    report('cert_verify_sig_floor_ms', certFloorMs, 'ms')
    report('cert_verify_warm_vs_sig_floor_ratio', warm / certFloorMs, 'x')

    const cold: number[] = []
    const coldSig: number[] = []
    for (let i = 0; i < runs; i++) {
      const c = await inFreshProfile<ColdResult>(server.url, { ...params, mode: 'cold-cert' }, 60_000)
      if (!c.ok) throw new Error('the cold certificate verification failed')
      cold.push(c.ms)
      const k = await inFreshProfile<ColdResult>(server.url, { ...params, mode: 'cold-sig' }, 60_000)
      if (!k.ok) throw new Error('the cold signature check failed')
      coldSig.push(k.ms)
    }
    report('cert_verify_cold_ms', median(cold), 'ms')
    report('ed25519_verify_cold_ms', median(coldSig), 'ms')
    report('cert_verify_cold_vs_warm_ratio', median(cold) / warm, 'x')
  } finally {
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }

  const verifier = await verifierJsKb()
  let page: Awaited<ReturnType<typeof pageJs>>
  try {
    page = await pageJs()
  } catch (err) {
    // The web app is built by another part of the tree; say so instead of hiding the other figures.
    console.error(`light: could not build apps/web, so no page_js figures: ${(err as Error).message}`)
    report('verifier_js_gzip_kb', verifier, 'kB')
    return
  }
  report('page_js_gzip_kb', page.pageKb, 'kB')
  report('page_js_files', page.files, 'files')
  report('page_js_all_gzip_kb', page.allKb, 'kB')
  report('verifier_js_gzip_kb', verifier, 'kB')
  report('page_js_vs_verifier_ratio', page.pageKb / verifier, 'x')
}
