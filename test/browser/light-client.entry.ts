// Runs in Chromium: the light client syncs from a real full node over ws://127.0.0.1 (libp2p
// WebSockets, with the gater that allows loopback), keeps what it verified in IndexedDB, and after
// a reload — with the node stopped — starts from IndexedDB alone. The Node side passes the phase,
// the genesis and the node's address in `__params` and reads the report.
import { blockHash, fromHex, parseGenesis, toHex } from '../../packages/core/src/index.js'
import { computeLightVectors } from '../../packages/core/test/vectors/light-vectors.js'
import { createLibp2pTransport, IndexedDbLightStore, LightClient, LightClientError } from '../../packages/light-client/src/index.js'
import { report } from '../support/browser-report.js'

interface Params {
  phase: 'sync' | 'offline'
  genesis: unknown
  bootstrap: string[]
  key: string
  transports?: ('websockets' | 'webrtc-direct')[]
}

const params = (globalThis as { __params?: Params }).__params as Params

report(async () => {
  const genesis = parseGenesis(params.genesis)
  const store = await IndexedDbLightStore.open({ chainId: genesis.chainId })
  const transport = await createLibp2pTransport({
    chainId: genesis.chainId,
    bootstrap: params.bootstrap,
    allowLocal: true,
    transports: params.transports ?? ['websockets'],
    dialTimeoutMs: 3000,
  })
  const client = await LightClient.open({ genesis, store, transport })
  const resumed = { height: client.height, setChanges: client.setChanges.length }
  if (params.phase === 'sync') {
    const synced = await client.sync()
    const proof = await client.getStateProof(fromHex(params.key))
    const mid = await client.verifiedHeaderAt(2)
    client.follow()
    // The Node side sends a transaction next and watches this for the gossiped header.
    ;(globalThis as { __client?: LightClient }).__client = client
    return {
      userAgent: navigator.userAgent,
      remoteAddrs: transport.libp2p.getConnections().map((c) => c.remoteAddr.toString()),
      resumed,
      height: synced.height,
      hash: toHex(synced.hash),
      setChanges: synced.setChanges,
      value: proof.value ? toHex(proof.value) : null,
      midHash: toHex(blockHash(mid.header)),
      storedHeaders: await store.headerCount(),
      storedBytes: await store.storedBytes(),
      vectors: computeLightVectors(),
    }
  }
  // Offline: the node is gone; everything comes from IndexedDB.
  const tip = client.tip
  let syncError: string | undefined
  try {
    await client.sync()
  } catch (e) {
    syncError = e instanceof LightClientError ? e.code : String(e)
  }
  const stored = await client.verifiedHeaderAt(2)
  return {
    resumed,
    height: client.height,
    hash: tip ? toHex(blockHash(tip.header)) : null,
    midHash: toHex(blockHash(stored.header)),
    storedHeaders: await store.headerCount(),
    validatorsAtTip: client.validatorsAt(client.height).validators.map((v) => v.power),
    syncError,
  }
})
