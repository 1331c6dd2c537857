/**
 * The page's channel wallet: its key and channels in IndexedDB, its links on the session's libp2p
 * node (a relay reservation on the full nodes, WebRTC to other pages), its chain reads through
 * the session's light client (state proofs), its transactions and watchtower hand-overs over
 * libp2p. Started once, when the channels page first needs it.
 */
import { keyPairFromSecret, to0x } from '@loopchain/core'
import { bestSigner, ChannelWallet, chainAccessOf, IndexedDbChannelStore, openPeerLinks, WalletError } from '@loopchain/light-client'
import type { App } from './app.js'

let started: Promise<ChannelWallet> | undefined
let storeRef: IndexedDbChannelStore | undefined

/** The wallet, started on first use. */
export function getWallet(app: App): Promise<ChannelWallet> {
  started ??= start(app).catch((e) => {
    started = undefined
    throw e
  })
  return started
}

async function start(app: App): Promise<ChannelWallet> {
  await app.ready
  const session = app.session
  if (session === undefined) throw new WalletError('NO_CHAIN', app.error ?? 'the light client is not running')
  const { genesis } = session.config
  const store = await IndexedDbChannelStore.open({ chainId: genesis.chainId })
  storeRef = store
  let secret = await store.loadKey()
  if (secret === undefined) {
    secret = crypto.getRandomValues(new Uint8Array(32))
    await store.saveKey(secret)
  }
  const key = keyPairFromSecret(secret)
  const signer = await bestSigner(secret)
  const transport = await session.libp2pReady
  const links = await openPeerLinks(transport, { chainId: genesis.chainId })
  const client = session.client
  return ChannelWallet.open({
    key,
    signer,
    store,
    chain: chainAccessOf(client),
    links,
    networkId: genesis.networkId,
    stepPrice: genesis.params.stepPrice,
    watch: async (request) => {
      await client.watchChannel(request)
    },
  })
}

/** The wallet's secret key as 0x hex (for a backup the person keeps). */
export async function exportKey(): Promise<string> {
  const k = await storeRef?.loadKey()
  if (k === undefined) throw new WalletError('NO_KEY', 'the wallet has no key yet')
  return to0x(k)
}

/** Replaces the wallet's key (only while it has no channels); the page reloads to use it. */
export async function importKey(hex: string, app: App): Promise<void> {
  const w = await getWallet(app)
  if (w.state.channels.some((c) => c.phase !== 'closed'))
    throw new WalletError('HAS_CHANNELS', 'close the open channels before changing the key')
  const clean = hex.trim().toLowerCase().replace(/^0x/, '')
  if (!/^[0-9a-f]{64}$/.test(clean)) throw new WalletError('BAD_KEY', 'a key is 64 hex digits (32 bytes)')
  const bytes = Uint8Array.from(clean.match(/../g) as string[], (x) => Number.parseInt(x, 16))
  await storeRef?.saveKey(bytes)
  location.reload()
}

/** Asks the devnet's faucet (beside the page) for test funds; resolves with a sentence for the page. */
export async function askFaucet(address: string): Promise<string> {
  const res = await fetch(new URL('faucet', document.baseURI), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ address }),
  })
  if (res.status === 404 || res.status === 405) throw new WalletError('NO_FAUCET', 'this network has no faucet (only a devnet does)')
  const j = (await res.json().catch(() => ({}))) as { txHash?: string; amount?: string; error?: string }
  if (!res.ok) throw new WalletError('FAUCET', j.error ?? `the faucet answered ${res.status}`)
  return `${j.amount ? BigInt(j.amount).toLocaleString('en-US') : 'Test funds'} on the way (transaction ${j.txHash?.slice(0, 12)}…); the balance updates once a block includes it.`
}
