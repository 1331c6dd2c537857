/**
 * How `loopchain devnet` serves the web app (apps/web): it builds the page with Vite when the
 * build is missing or older than its sources, writes the page's chain.json (the devnet's genesis,
 * pinned, and its nodes' WebSocket addresses) and serves both on 127.0.0.1.
 *
 * A devnet may hand the page its genesis because the devnet made it; a production deployment pins
 * the genesis in the chain.json it deploys with the page, and never lets a node supply it.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type Address,
  encode,
  fromHex,
  isAddress,
  keyPairFromSecret,
  STEP_COSTS,
  signTransaction,
  TX_VERSION,
  TxKind,
  to0x,
  transactionCodec,
} from '@loopchain/core'
import { encodeInvite } from '@loopchain/light-client'
import { nativeCrypto, peerIdFromNodeKey } from '@loopchain/node'
import { rpcOutcome } from './cli.js'
import { localHost, readNodeConfig } from './config.js'
import { readKey } from './tx.js'

/** The repository's root (this file is apps/node/src/web.ts). */
const REPO = fileURLToPath(new URL('../../../', import.meta.url))
/** The web app's sources and its build. */
export const WEB_DIR = join(REPO, 'apps', 'web')
export const WEB_DIST = join(WEB_DIR, 'dist')
/** What the page's build depends on: when any of it is newer than the build, the page is rebuilt. */
const WEB_SOURCES = [
  join(WEB_DIR, 'src'),
  join(WEB_DIR, 'index.html'),
  join(REPO, 'packages', 'core', 'src'),
  join(REPO, 'packages', 'light-client', 'src'),
  join(REPO, 'vite.config.ts'),
]

/** The `format` of chain.json (apps/web/src/config.ts reads it). */
export const CHAIN_CONFIG_FORMAT = 'loopchain-web/1'

/**
 * The page's chain.json for the devnet in `dir`: its genesis and, for each node config found
 * (`node-i/`, `observer/`), the node's WebSocket multiaddr with its peer id.
 */
export async function devnetChainConfig(dir: string, configs: readonly string[]): Promise<Record<string, unknown>> {
  const genesis = JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')) as unknown
  const nodes = await Promise.all(
    configs.map(async (file) => {
      const c = readNodeConfig(file)
      return { c, addr: `/ip4/${localHost(c.p2p.host)}/tcp/${c.p2p.wsPort}/ws/p2p/${await peerIdFromNodeKey(fromHex(c.nodeKey))}` }
    }),
  )
  // Hubs: nodes that run a channel hub with their institution's account, reached on their WebSockets address.
  const hubs = nodes
    .filter(({ c }) => c.hub === true && c.validatorKey !== undefined)
    .map(({ c, addr }) => {
      const key = keyPairFromSecret(fromHex(c.validatorKey as string), nativeCrypto)
      return encodeInvite({ address: key.address, publicKey: to0x(key.publicKey), links: [addr] })
    })
  // allowLocal: the page may dial loopback over plain ws://, which only a devnet needs.
  return { format: CHAIN_CONFIG_FORMAT, genesis, bootstrap: nodes.map((n) => n.addr), allowLocal: true, hubs }
}

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0
  const st = statSync(path)
  if (!st.isDirectory()) return st.mtimeMs
  let newest = st.mtimeMs
  for (const e of readdirSync(path)) {
    if (e === 'node_modules' || e === 'dist') continue
    newest = Math.max(newest, newestMtime(join(path, e)))
  }
  return newest
}

/** True when apps/web/dist is missing or older than a source it is built from. */
export function webBuildIsStale(): boolean {
  const built = join(WEB_DIST, 'index.html')
  if (!existsSync(built)) return true
  const at = statSync(built).mtimeMs
  return WEB_SOURCES.some((p) => newestMtime(p) > at)
}

/**
 * Builds the web app into apps/web/dist with Vite (the root vite.config.ts), unless the build is
 * current. It builds into a directory of its own and then swaps it in, so a page being served
 * never sees half a build. Returns the build's directory.
 */
export async function buildWebApp(opts: { force?: boolean } = {}): Promise<string> {
  if (!opts.force && !webBuildIsStale()) return WEB_DIST
  const { build } = await import('vite')
  const tmp = `${WEB_DIST}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  await build({ configFile: join(REPO, 'vite.config.ts'), mode: 'production', logLevel: 'warn', build: { outDir: tmp, emptyOutDir: true } })
  rmSync(WEB_DIST, { recursive: true, force: true })
  renameSync(tmp, WEB_DIST)
  return WEB_DIST
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
}

// The page talks to full nodes over WebSockets on other ports; everything else comes from here.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"

/** A running web server. */
export interface WebServer {
  readonly url: string
  close(): Promise<void>
}

/**
 * Serves the built page from `dist` and `chainJson` as /chain.json, on `host:port` (port 0: any
 * free port). Hashed assets are cached for good; the page and chain.json never.
 */
export async function serveWebApp(opts: {
  dist: string
  chainJson: string
  host?: string
  port: number
  /** Devnets only: `POST /faucet {"address"}` sends test funds (see {@link devnetFaucet}). */
  faucet?: Faucet
}): Promise<WebServer> {
  const root = normalize(opts.dist + sep)
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    const headers = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' }
    if (path === '/faucet' && opts.faucet && req.method === 'POST') return void answerFaucet(opts.faucet, req, res, headers)
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, headers).end()
    if (path === '/chain.json') {
      return void res.writeHead(200, { ...headers, 'content-type': TYPES['.json'], 'cache-control': 'no-store' }).end(opts.chainJson)
    }
    const file = normalize(join(root, path === '/' ? 'index.html' : path))
    if (!file.startsWith(root) || !existsSync(file) || statSync(file).isDirectory()) {
      return void res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found')
    }
    const html = file.endsWith('.html')
    res
      .writeHead(200, {
        ...headers,
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'cache-control': html ? 'no-cache' : 'public, max-age=31536000, immutable',
        ...(html ? { 'content-security-policy': CSP } : {}),
      })
      .end(req.method === 'HEAD' ? undefined : readFileSync(file))
  })
  const host = opts.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://${host}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** Sends test funds to an address; resolves with the transaction hash or throws a sentence for the page. */
export type Faucet = (address: string) => Promise<string>

/** What one faucet request sends. */
export const FAUCET_AMOUNT = 1_000_000n
// One request per address this often: a devnet convenience, not a tap to drain.
const FAUCET_INTERVAL_MS = 5_000

function answerFaucet(faucet: Faucet, req: IncomingMessage, res: ServerResponse, headers: Record<string, string>): void {
  let body = ''
  const reply = (status: number, o: object) =>
    res.writeHead(status, { ...headers, 'content-type': TYPES['.json'] as string, 'cache-control': 'no-store' }).end(JSON.stringify(o))
  req.setEncoding('utf8')
  req.on('data', (d: string) => {
    body += d
    if (body.length > 1024) {
      reply(413, { error: 'the request is too large' })
      req.destroy()
    }
  })
  req.on('end', () => {
    if (res.headersSent) return
    let address: unknown
    try {
      address = (JSON.parse(body) as { address?: unknown }).address
    } catch {
      reply(400, { error: 'send JSON {"address": "hx…"}' })
      return
    }
    if (!isAddress(address) || !address.startsWith('hx')) {
      reply(400, { error: 'address must be an account address (hx…)' })
      return
    }
    faucet(address).then(
      (txHash) => reply(200, { txHash, amount: String(FAUCET_AMOUNT) }),
      // Too soon for this address: 429; the node failed or did not answer: 502.
      (e: unknown) => reply((e as { status?: number }).status ?? 502, { error: (e as Error).message }),
    )
  })
}

/**
 * The devnet's faucet: transfers of {@link FAUCET_AMOUNT} from the faucet key (DIR/faucet.json)
 * through node `rpc`'s JSON-RPC, one at a time (nonces counted here), at most one per address
 * every few seconds.
 */
export function devnetFaucet(dir: string, rpc: string): Faucet {
  const key = readKey(join(dir, 'faucet.json'))
  const last = new Map<string, number>()
  let queue: Promise<unknown> = Promise.resolve()
  let nextNonce = 0
  return (address) => {
    const t = Date.now()
    if (t - (last.get(address) ?? 0) < FAUCET_INTERVAL_MS)
      return Promise.reject(Object.assign(new Error('test funds were just sent to this address; wait a few seconds'), { status: 429 }))
    last.set(address, t)
    // A node's error is this request's, told to the page: `rpcCall` would end the whole devnet.
    const call = async (method: string, params: object = {}) => {
      const out = await rpcOutcome(rpc, method, params)
      if ('error' in out) throw new Error(out.error)
      return out.result
    }
    const run = queue.then(async () => {
      const info = (await call('lc_getNetworkInfo')) as { networkId: number }
      const account = (await call('lc_getAccount', { address: key.address })) as { nonce: number }
      const nonce = Math.max(account.nonce, nextNonce)
      const tx = signTransaction(
        {
          version: TX_VERSION,
          networkId: info.networkId,
          from: key.address,
          to: address as Address,
          value: FAUCET_AMOUNT,
          stepLimit: STEP_COSTS.base,
          timestamp: Date.now() * 1000,
          nonce,
          kind: TxKind.Transfer,
          data: new Uint8Array(0),
        },
        key,
        nativeCrypto,
      )
      const hash = (await call('lc_sendTransaction', { tx: to0x(encode(transactionCodec, tx)) })) as string
      nextNonce = nonce + 1
      return hash
    })
    queue = run.catch(() => {
      nextNonce = 0
      // Nothing was sent: the address may ask again at once.
      last.delete(address)
    })
    return run
  }
}

/**
 * Everything `devnet` does for the page: builds it if needed, writes DIR/web/chain.json (which the
 * Vite dev server, `npm run web:dev`, serves too) and serves the page on `port`.
 */
export async function startDevnetWeb(dir: string, configs: readonly string[], port: number): Promise<WebServer> {
  const chain = `${JSON.stringify(await devnetChainConfig(dir, configs), null, 2)}\n`
  mkdirSync(join(dir, 'web'), { recursive: true })
  writeFileSync(join(dir, 'web', 'chain.json'), chain)
  const dist = await buildWebApp()
  const first = readNodeConfig(configs[0] as string)
  const faucet = devnetFaucet(dir, `http://${localHost(first.rpc.host)}:${first.rpc.port}/`)
  return serveWebApp({ dist, chainJson: chain, port, faucet })
}
