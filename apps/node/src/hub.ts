/**
 * A full node acting as a channel hub: the node's institution account runs a channel wallet
 * (the light client's, in Node) whose channels are with browsers that dial the node directly, and
 * which forwards hash-locked payments between them (A → hub → C). Its chain reads go through a
 * light client on the node's own light-protocol handlers (checked like any other), its channel
 * states live in a LevelDB beside the node's (`<dataDir>/hub`, each saved before it is
 * acknowledged), and its links are the node's libp2p host. Enabled by `"hub": true` in a
 * validator's config; `loopchain devnet` makes node-0 a hub.
 */
import { deserialize, serialize } from 'node:v8'
import { createLightHandlers, type Genesis, type KeyPair, providerSigner, utf8 } from '@loopchain/core'
import {
  type ChannelRecord,
  type ChannelStore,
  ChannelWallet,
  chainAccessOf,
  encodeInvite,
  type Libp2pTransport,
  LightClient,
  MemoryLightStore,
  MemoryTransport,
  openPeerLinks,
  type PeerLinks,
} from '@loopchain/light-client'
import { type FullNode, fullNodeLightBackend, LevelKVStore, type NodeHost, type NodeLogger, nativeCrypto } from '@loopchain/node'

const KEY = utf8('key')
const CHANNEL = 0x63 // 'c' ‖ channel id (utf8)

/** A {@link ChannelStore} on LevelDB: records by structured serialisation (bigints and bytes kept). */
export class LevelChannelStore implements ChannelStore {
  constructor(private readonly db: LevelKVStore) {}
  private static key(id: string): Uint8Array {
    const b = utf8(id)
    const k = new Uint8Array(b.length + 1)
    k[0] = CHANNEL
    k.set(b, 1)
    return k
  }
  async loadKey(): Promise<Uint8Array | undefined> {
    return this.db.get(KEY)
  }
  async saveKey(secretKey: Uint8Array): Promise<void> {
    await this.db.write([{ type: 'put', key: KEY, value: secretKey }])
  }
  async list(): Promise<ChannelRecord[]> {
    const out: ChannelRecord[] = []
    for await (const [, v] of this.db.iterate({ gte: Uint8Array.of(CHANNEL), lt: Uint8Array.of(CHANNEL + 1) })) out.push(deserialize(v))
    return out
  }
  async get(id: string): Promise<ChannelRecord | undefined> {
    const v = await this.db.get(LevelChannelStore.key(id))
    return v === undefined ? undefined : deserialize(v)
  }
  async put(record: ChannelRecord): Promise<void> {
    await this.db.write([{ type: 'put', key: LevelChannelStore.key(record.id), value: serialize(record) }])
  }
  async rename(oldId: string, record: ChannelRecord): Promise<void> {
    await this.db.write([
      { type: 'del', key: LevelChannelStore.key(oldId) },
      { type: 'put', key: LevelChannelStore.key(record.id), value: serialize(record) },
    ])
  }
  async close(): Promise<void> {
    await this.db.close()
  }
}

/** A running hub. */
export interface Hub {
  /** The invite browsers use to open a channel with the hub. */
  invite(): string
  readonly wallet: ChannelWallet
  stop(): Promise<void>
}

/** Starts the hub of `node` with the institution's account `key`, on `host`. */
export async function startHub(node: FullNode, host: NodeHost, key: KeyPair, genesis: Genesis, log: NodeLogger): Promise<Hub> {
  const db = await LevelKVStore.open(`${node.options.dataDir}/hub`)
  const store = new LevelChannelStore(db)
  const client = await LightClient.open({
    genesis,
    // The hub follows its own node's headers. Their commits are checked like any other, but with
    // the node's native crypto (not the pure-JavaScript default, ~1 ms a signature) and its memory
    // of the precommits it verified as votes: about one of a block's signatures is verified again
    // (the node's own), not all of them.
    crypto: node.recallingCrypto,
    transport: new MemoryTransport({ self: createLightHandlers(fullNodeLightBackend(node)) }),
    store: new MemoryLightStore(),
  })
  const sync = () => void client.sync().catch(() => undefined)
  const off = node.onBlock(sync)
  if (node.height > 0) await client.sync()
  // Browsers dial the node itself (WebSockets, or through a TLS proxy's /wss the config announces),
  // so the hub's links are plain connections to it.
  const wsAddrs = () => host.multiaddrs().filter((a) => /\/wss?\//.test(a))
  const links: PeerLinks = await openPeerLinks({ libp2p: host.libp2p } as unknown as Libp2pTransport, {
    chainId: genesis.chainId,
    advertise: wsAddrs,
  })
  const wallet = await ChannelWallet.open({
    key,
    signer: providerSigner(key.secretKey, nativeCrypto),
    store,
    chain: chainAccessOf(client),
    links,
    networkId: genesis.networkId,
    stepPrice: genesis.params.stepPrice,
    hub: true,
  })
  const invite = () =>
    encodeInvite({ address: key.address, publicKey: `0x${Buffer.from(key.publicKey).toString('hex')}`, links: wsAddrs() })
  log.info('channel hub ready', { account: key.address, channels: wallet.state.channels.length })
  return {
    invite,
    wallet,
    async stop() {
      off()
      await wallet.close()
      await links.close()
      await client.close()
      await store.close()
    },
  }
}
