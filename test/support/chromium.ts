/**
 * Runs code in real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core):
 * bundles an entry module with Vite, serves it on 127.0.0.1 and returns what the page reports.
 * Browser downloads do not work on these machines; `.ci/run` installs Debian's chromium.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { extname, join, normalize } from 'node:path'
import { type Browser, chromium } from 'playwright-core'
import { build } from 'vite'

/** Where Debian installs Chromium; override with LOOPCHAIN_CHROMIUM. */
export const CHROMIUM_PATH = process.env.LOOPCHAIN_CHROMIUM ?? '/usr/bin/chromium'

/** The flags these machines need: no sandbox as root, no GPU, no outbound background traffic. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
]

/** Launches headless Chromium, failing with a clear message when it is not installed. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium not found at ${CHROMIUM_PATH}: install it with 'apt-get install -y chromium' (or set LOOPCHAIN_CHROMIUM)`)
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true })
}

/** Bundles `entry` (a module that sets `globalThis.__result`) into a temporary directory with an index.html. */
export async function bundleForBrowser(entry: string): Promise<string> {
  const outDir = mkdtempSync(join(tmpdir(), 'loopchain-browser-'))
  await build({
    configFile: false,
    logLevel: 'warn',
    build: {
      outDir,
      emptyOutDir: false,
      minify: false,
      target: 'es2022',
      lib: { entry, formats: ['es'], fileName: () => 'bundle.js' },
    },
  })
  writeFileSync(
    join(outDir, 'index.html'),
    '<!doctype html><meta charset="utf-8"><title>test</title><script type="module" src="./bundle.js"></script>',
  )
  return outDir
}

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
}

/** Serves a directory on 127.0.0.1 on a free port. */
export async function serveStatic(dir: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '')
    const file = join(dir, path === '/' ? 'index.html' : path)
    if (!file.startsWith(dir) || !existsSync(file)) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

/**
 * Bundles `entry`, opens it in a fresh Chromium page and returns `globalThis.__result` once the
 * entry sets it (an entry reports a thrown error by setting `__error`). `params`, when given, is
 * `globalThis.__params` in the page before the entry runs (JSON-serialisable values).
 */
export async function runInChromium<T>(entry: string, timeoutMs = 120_000, params?: unknown): Promise<T> {
  const dir = await bundleForBrowser(entry)
  const server = await serveStatic(dir)
  const browser = await launchChromium()
  try {
    const page = await browser.newPage()
    const logs: string[] = []
    page.on('console', (m) => logs.push(m.text()))
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`))
    if (params !== undefined) {
      await page.addInitScript((p) => {
        ;(globalThis as { __params?: unknown }).__params = p
      }, params)
    }
    await page.goto(server.url)
    await page.waitForFunction(() => '__result' in globalThis || '__error' in globalThis, undefined, { timeout: timeoutMs })
    const error = await page.evaluate(() => (globalThis as { __error?: string }).__error)
    if (error !== undefined) throw new Error(`in Chromium: ${error}\n${logs.join('\n')}`)
    return (await page.evaluate(() => (globalThis as { __result?: unknown }).__result)) as T
  } finally {
    await browser.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
