// In-page side of `npm run bench -- channel` (test/bench/channel.ts drives two of these pages,
// each in its own Chromium context): a light-client libp2p node with a relay reservation on a
// real full node, a direct WebRTC link to the other page, and one channel party — the core's
// session and driver, states saved to IndexedDB before they are acknowledged — signing with the
// page's WebCrypto Ed25519 or with noble. Functions are called by the driver through `page.evaluate`.
import {
  ChannelDriver,
  ChannelSession,
  type ChannelSigner,
  type ChannelSnapshot,
  decodeChannelWire,
  encodeChannelWire,
  encodeSignedChannelState,
  fromHex,
  keyPairFromSecret,
  nobleCrypto,
  toHex,
} from '@loopchain/core'
import {
  type ChannelRecord,
  createLibp2pTransport,
  IndexedDbChannelStore,
  type Libp2pTransport,
  nobleSigner,
  openPeerLinks,
  type PeerLinks,
  type WalletLink,
  webCryptoSigner,
} from '@loopchain/light-client'

let transport: Libp2pTransport
let links: PeerLinks
let link: WalletLink | undefined
let driver: ChannelDriver | undefined
let store: IndexedDbChannelStore
/** How long each save to IndexedDB took (ms), since `saveTimes` was last called. */
let saveMs: number[] = []
/** Signatures made and checked by this page's channel party since `cryptoCounts` was last called. */
let counts = { signs: 0, verifies: 0 }

/** `signer`, counting its work. */
function counted(signer: ChannelSigner): ChannelSigner {
  return {
    name: signer.name,
    sign: (m) => {
      counts.signs++
      return signer.sign(m)
    },
    verify: (sig, m, k) => {
      counts.verifies++
      return signer.verify(sig, m, k)
    },
  }
}

async function signerOf(kind: string, seed: Uint8Array): Promise<ChannelSigner> {
  return kind === 'webcrypto' ? webCryptoSigner(seed) : nobleSigner(seed, nobleCrypto)
}

const bench = {
  /** Starts libp2p with peer links; resolves with this page's relayed WebRTC address. */
  async start(chainId: string, bootstrap: string[]): Promise<string> {
    transport = await createLibp2pTransport({ chainId, bootstrap, allowLocal: true, transports: ['websockets'], peerLinks: true })
    links = await openPeerLinks(transport, { chainId })
    links.onLink((l) => attach(l))
    store = await IndexedDbChannelStore.open({ chainId: `bench-${Math.random()}` })
    for (let i = 0; i < 200; i++) {
      const a = links.myAddresses()[0]
      if (a !== undefined) return a
      await new Promise((r) => setTimeout(r, 50))
    }
    throw new Error('no relay reservation')
  },

  /** Dials the other page; resolves with the link's kind. */
  async dial(addr: string): Promise<string> {
    const l = await links.dial(addr)
    attach(l)
    return l.kind
  },

  /** Sign-then-verify pairs per second with `kind`, for `ms` (the ceiling a payment is compared with). */
  async ceiling(kind: string, seedHex: string, ms: number): Promise<number> {
    const seed = fromHex(seedHex)
    const s = await signerOf(kind, seed)
    const pk = keyPairFromSecret(seed).publicKey
    const msg = new Uint8Array(32).fill(7)
    let n = 0
    const t0 = performance.now()
    while (performance.now() - t0 < ms) {
      msg[0] = n & 0xff
      const sig = await s.sign(msg)
      if (!(await s.verify(sig, msg, pk))) throw new Error('a signature did not verify')
      n++
    }
    return (n * 1000) / (performance.now() - t0)
  },

  /** Makes this page party `me` of a fresh channel between the two seeds' keys. */
  async setup(me: 0 | 1, seeds: [string, string], channelIdHex: string, kind: string, deposits: [string, string]): Promise<void> {
    const k0 = keyPairFromSecret(fromHex(seeds[0]))
    const k1 = keyPairFromSecret(fromHex(seeds[1]))
    const session = ChannelSession.create({
      me,
      channelId: fromHex(channelIdHex),
      keys: [k0.publicKey, k1.publicKey],
      deposits: [BigInt(deposits[0]), BigInt(deposits[1])],
      signer: counted(await signerOf(kind, fromHex(seeds[me]))),
    })
    const record: ChannelRecord = {
      id: channelIdHex,
      me,
      phase: 'open',
      peer: { address: (me === 0 ? k1 : k0).address, publicKey: '' },
      deposits: [BigInt(deposits[0]), BigInt(deposits[1])],
      challengePeriod: 20,
      messages: [],
      updatedAt: 0,
    }
    driver?.abandon('a new run')
    driver = new ChannelDriver(session, {
      send: (m) => link?.send(encodeChannelWire(m)),
      save: (snapshot, durable) => {
        const t0 = performance.now()
        return store.put({ ...record, snapshot }, { durable }).then(() => {
          saveMs.push(performance.now() - t0)
        })
      },
      height: () => 1,
      later: (f, ms) => void setTimeout(f, ms),
    })
  },

  /** `n` payments of 1, each waiting for the last: per-payment latencies in ms. */
  async sequential(n: number): Promise<number[]> {
    const d = driver as ChannelDriver
    const times: number[] = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      await d.pay(1n)
      times.push(performance.now() - t0)
    }
    return times
  },

  /** `n` payments of 1 issued back to back (the driver keeps up to its window in flight): total ms. */
  async pipelined(n: number): Promise<number> {
    const d = driver as ChannelDriver
    const t0 = performance.now()
    await Promise.all(Array.from({ length: n }, () => d.pay(1n)))
    return performance.now() - t0
  },

  /** Durations (ms) of the saves made since the last call: a group commit makes fewer saves than states. */
  saveTimes(): number[] {
    const out = saveMs
    saveMs = []
    return out
  },

  /** Signatures made and checked since the last call. */
  cryptoCounts(): { signs: number; verifies: number } {
    const out = counts
    counts = { signs: 0, verifies: 0 }
    return out
  },

  /** This party's latest co-signed state, encoded (hex). */
  latest(): string {
    return toHex(encodeSignedChannelState((driver as ChannelDriver).session.latest))
  },

  /** The number below which the peer revoked its states (0: no revocation yet). */
  peerRevokedBelow(): number {
    return (driver as ChannelDriver).session.peerRevocation?.below ?? 0
  },

  /** The number below which this party revoked its own states (0: none yet). */
  myRevokedBelow(): number {
    return (driver as ChannelDriver).session.snapshot().myRevocation?.below ?? 0
  },

  /** The latest co-signed seq in this page's IndexedDB record of the channel. */
  async storedSeq(channelIdHex: string): Promise<number> {
    const snapshot = (await store.get(channelIdHex))?.snapshot as ChannelSnapshot | undefined
    return snapshot?.latest.state.seq ?? -1
  },

  /** This party's latest co-signed seq. */
  seq(): number {
    return driver?.session.latest.state.seq ?? -1
  },
}

function attach(l: WalletLink): void {
  link = l
  l.onMessage((f) => {
    void driver?.receive(decodeChannelWire(f))
  })
}

;(globalThis as { bench?: typeof bench }).bench = bench
;(globalThis as { __result?: unknown }).__result = 'ready'
