/**
 * What the page needs to know about its chain, from `chain.json` next to the page: the pinned
 * genesis (the trust root: the validator set every header is checked against) and the full nodes
 * to dial. The file is part of the deployment, served from the page's own origin: in production
 * the operator pins the genesis when the page is deployed, never by asking a node, since a node
 * that chose the genesis could make any chain look valid. `loopchain devnet` writes one for its
 * local network.
 */
import { type Genesis, genesisHash, parseGenesis, to0x } from '@loopchain/core'

/** The `format` of chain.json. */
export const CHAIN_CONFIG_FORMAT = 'loopchain-web/1'

/** The page's chain, read from chain.json. */
export interface ChainConfig {
  readonly genesis: Genesis
  /** 0x hex of the pinned genesis's hash, shown so a person can compare it with a published one. */
  readonly genesisHash: string
  /** Full nodes' multiaddrs ending in `/p2p/<peerId>` (`/ws` on a devnet, `/wss` in production). */
  readonly bootstrap: readonly string[]
  /** Allow dialling loopback and private addresses over plain `ws://` (devnets only). */
  readonly allowLocal: boolean
  /** Invites of the network's channel hubs (full nodes that forward payments between channels). */
  readonly hubs: readonly string[]
}

/** Why chain.json cannot be used. */
export class ChainConfigError extends Error {
  override readonly name = 'ChainConfigError'
}

/** Reads chain.json's parsed JSON; throws {@link ChainConfigError} naming what is wrong. */
export function parseChainConfig(json: unknown): ChainConfig {
  if (typeof json !== 'object' || json === null) throw new ChainConfigError('chain.json must be a JSON object')
  const o = json as Record<string, unknown>
  if (o.format !== CHAIN_CONFIG_FORMAT) throw new ChainConfigError(`chain.json: format must be ${JSON.stringify(CHAIN_CONFIG_FORMAT)}`)
  let genesis: Genesis
  try {
    genesis = parseGenesis(o.genesis)
  } catch (e) {
    throw new ChainConfigError(`chain.json: genesis: ${(e as Error).message}`)
  }
  const bootstrap = o.bootstrap
  if (!Array.isArray(bootstrap) || !bootstrap.every((a) => typeof a === 'string' && /\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(a))) {
    throw new ChainConfigError('chain.json: bootstrap must be a list of multiaddrs ending in /p2p/<peer id>')
  }
  const hubs = Array.isArray(o.hubs) ? o.hubs.filter((x): x is string => typeof x === 'string' && x.length < 4096) : []
  return { genesis, genesisHash: to0x(genesisHash(genesis)), bootstrap, allowLocal: o.allowLocal === true, hubs }
}

// The last chain.json read, kept so that a reload without a network still knows its chain.
const CACHE_KEY = 'loopchain-web/chain.json'

/**
 * Fetches and reads chain.json from beside the page. When it cannot be fetched (offline), the copy
 * the page kept from its last load is used: it came from the same origin.
 */
export async function loadChainConfig(url = new URL('chain.json', document.baseURI).href): Promise<ChainConfig> {
  let text: string
  try {
    const res = await fetch(url, { cache: 'no-store' })
    if (!res.ok) throw new ChainConfigError(`cannot load ${url}: HTTP ${res.status}`)
    text = await res.text()
  } catch (e) {
    const cached = localStorage.getItem(CACHE_KEY)
    if (cached === null) throw e instanceof ChainConfigError ? e : new ChainConfigError(`cannot load ${url}: ${(e as Error).message}`)
    text = cached
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new ChainConfigError(`${url} is not JSON`)
  }
  const config = parseChainConfig(json)
  try {
    localStorage.setItem(CACHE_KEY, text)
  } catch {
    // Storage full or disabled: the page still works, only not from a cold offline start.
  }
  return config
}
