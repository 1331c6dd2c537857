// The browser side of `npm run bench -- light` (test/bench/light.ts bundles it and opens it in
// headless Chromium). `__params.mode` picks the work:
// - `main`: in one page, with the same crypto provider (the core's noble ed25519) throughout — the
//   raw signature baseline, header verifications, syncs of a synthetic chain from genesis into
//   IndexedDB (and into memory, for comparison), IndexedDB's cost per stored header, warm
//   certificate verification;
// - `cold-cert` / `cold-sig`: the first certificate verification (or the first bare signature
//   check) in a fresh profile, before anything else in the page has touched the crypto.
import {
  blockHash,
  type CryptoProvider,
  encode,
  fromHex,
  keyPairFromSecret,
  nobleCrypto,
  parseGenesis,
  parseStatusEvidence,
  type SignedHeader,
  setAt,
  signedHeaderCodec,
  VoteType,
  validatorSetHash,
  verifyCertificate,
  verifySignedHeader,
  voteSignBytes,
} from '@loopchain/core'
import {
  IndexedDbLightStore,
  LightClient,
  type LightRequestOptions,
  type LightStore,
  type LightTransport,
  MemoryLightStore,
  MemoryTransport,
} from '@loopchain/light-client'
import { SyntheticChain, spreadChanges } from '../../packages/light-client/test/fixtures/synthetic-chain.js'
import { report } from '../support/browser-report.js'
import { opsPerSecond } from './report.js'

/** A certificate as the verification page receives it, built on the Node side. */
export interface CertInput {
  /** The pinned genesis (`genesisToJson`). */
  readonly genesis: unknown
  /** The portable file's JSON text, as a person drops it on the page. */
  readonly file: string
  /** Online status evidence (`statusEvidenceToJson`). */
  readonly status: unknown
  /** The verifier's clock, microseconds. */
  readonly now: number
}

/** What the Node side passes in `__params`. */
export interface PageParams {
  readonly mode: 'main' | 'cold-cert' | 'cold-sig'
  readonly height: number
  readonly changes: number
  readonly validators: number
  /** Syncs timed per store kind. */
  readonly syncRuns: number
  /** Consecutive headers written to IndexedDB to price one. */
  readonly storedHeaders: number
  /** Warm certificate verifications timed. */
  readonly certRuns: number
  readonly cert: CertInput
  /** A valid signature (hex) for `cold-sig`, made on the Node side so the page signs nothing first. */
  readonly sig: { readonly signature: string; readonly message: string; readonly publicKey: string }
}

/** What a `main` page reports. */
export interface MainResult {
  /**
   * Raw ed25519 checks per second, sampled right beside each figure that is compared with it
   * (a shared machine drifts): beside header verification, the syncs and the certificate checks.
   */
  readonly sigVerifyPerSec: { readonly header: number; readonly sync: number; readonly cert: number }
  readonly headerVerifyPerSec: number
  /** Signatures checked per header verification. */
  readonly sigsPerHeader: number
  readonly sync: {
    /** Wall time of open + sync from genesis, per run, fresh IndexedDB database each time. */
    readonly idbMs: number[]
    readonly memoryMs: number[]
    /** Of the IndexedDB runs' time, the part spent inside the in-memory node, per run. */
    readonly nodeMs: number[]
    readonly height: number
    readonly setChanges: number
    readonly verifiedHeaders: number
    readonly requests: number
    readonly requestBytes: number
    readonly responseBytes: number
    readonly sigs: number
    /** What the last IndexedDB run's client keeps stored. */
    readonly storedBytes: number
  }
  /** Encoded size of every signed header of the chain: what a header-by-header sync would fetch. */
  readonly allHeadersBytes: number
  readonly idb: {
    readonly headers: number
    /** The origin's usage growth reported by `navigator.storage.estimate()`. */
    readonly usageBytes: number
    /** `IndexedDbLightStore.storedBytes()`: the canonical encodings stored. */
    readonly storedBytes: number
    /** Mean encoded size of those headers. */
    readonly encodedBytesPerHeader: number
  }
  readonly cert: { readonly warmMs: number[]; readonly sigs: number; readonly valid: boolean | 'partial' }
}

/** What a cold page reports. */
export interface ColdResult {
  readonly ms: number
  readonly ok: boolean
}

// Slices a figure and its baseline are alternated in.
const ROUNDS = 5

const params = (globalThis as { __params?: PageParams }).__params as PageParams

/** `inner` with its signature checks counted. */
function counting(inner: CryptoProvider): CryptoProvider & { verifies: number } {
  const c = {
    name: inner.name,
    verifies: 0,
    sha256: inner.sha256,
    publicKey: inner.publicKey,
    sign: inner.sign,
    verify(s: Uint8Array, m: Uint8Array, pk: Uint8Array) {
      c.verifies++
      return inner.verify(s, m, pk)
    },
  }
  return c
}

/** A transport that counts round trips, bytes both ways, and the time spent in the node behind it. */
class MeteredTransport implements LightTransport {
  requests = 0
  requestBytes = 0
  responseBytes = 0
  nodeMs = 0

  constructor(private readonly inner: LightTransport) {}

  peers(): string[] {
    return this.inner.peers()
  }

  async request(peer: string, protocol: Parameters<LightTransport['request']>[1], request: Uint8Array, opts?: LightRequestOptions) {
    const t0 = performance.now()
    const response = await this.inner.request(peer, protocol, request, opts)
    this.nodeMs += performance.now() - t0
    this.requests++
    this.requestBytes += request.byteLength
    this.responseBytes += response.byteLength
    return response
  }

  subscribeHeaders(): () => void {
    return () => {}
  }

  // The node outlives each client: closing a client must not close it.
  async close(): Promise<void> {}
}

function certOptions(c: CertInput) {
  return { genesis: parseGenesis(c.genesis), now: c.now, status: parseStatusEvidence(c.status).evidence }
}

async function main(p: PageParams): Promise<MainResult> {
  // The baseline: raw ed25519 checks with the provider everything below uses, sampled beside each figure.
  const key = keyPairFromSecret(new Uint8Array(32).fill(7), nobleCrypto)
  const msg = voteSignBytes({
    networkId: 7,
    type: VoteType.Precommit,
    height: 1,
    round: 0,
    blockHash: new Uint8Array(32).fill(1),
    validator: key.address,
  })
  const sig = nobleCrypto.sign(msg, key.secretKey)
  const sigOps = (ms: number) => opsPerSecond(() => nobleCrypto.verify(sig, msg, key.publicKey), ms)

  const chain = await SyntheticChain.create({ height: p.height, changesAt: spreadChanges(p.height, p.changes), validators: p.validators })
  const networkId = chain.genesis.networkId

  // Header verification: a tip header signed by its whole set, checked against that set.
  const tip = chain.signedHeader(p.height) as SignedHeader
  const tipSet = setAt(chain.sets, p.height)
  // Alternated with the baseline in short slices, so both see the same machine.
  let sigHeader = 0
  let headerVerifyPerSec = 0
  for (let r = 0; r < ROUNDS; r++) {
    sigHeader += sigOps(400) / ROUNDS
    headerVerifyPerSec += opsPerSecond(() => verifySignedHeader(tip, tipSet, networkId, nobleCrypto), 400) / ROUNDS
  }
  const counted = counting(nobleCrypto)
  verifySignedHeader(tip, tipSet, networkId, counted)
  const sigsPerHeader = counted.verifies

  // Sign what the client will ask for (set-change headers and the tip) before any clock starts:
  // the node's signing is the fixture's cost, not the client's.
  for (const s of chain.sets.slice(1)) chain.signedHeader(s.from - 1)
  const node = new MemoryTransport({ node: chain.handlers() })

  const syncOnce = async (store: LightStore, crypto: CryptoProvider = nobleCrypto) => {
    const transport = new MeteredTransport(node)
    const start = performance.now()
    const client = await LightClient.open({ genesis: chain.genesis, store, transport, crypto, crossCheck: false })
    const result = await client.sync()
    const ms = performance.now() - start
    if (result.height !== p.height) throw new Error(`synced to ${result.height}, not ${p.height}`)
    return { client, result, ms, transport }
  }

  // One counted run (in memory) for the signature count, discarded from the timings.
  const countedCrypto = counting(nobleCrypto)
  const probe = await syncOnce(new MemoryLightStore(), countedCrypto)
  await probe.client.close()

  const idbMs: number[] = []
  const nodeMs: number[] = []
  const memoryMs: number[] = []
  let last: Awaited<ReturnType<typeof syncOnce>> | undefined
  let storedBytes = 0
  let sigSync = 0
  for (let i = 0; i < p.syncRuns; i++) {
    sigSync += sigOps(300) / p.syncRuns
    // Alternate the store kinds so drift on a shared machine hits both alike.
    const store = await IndexedDbLightStore.open({ chainId: chain.genesis.chainId, name: `bench-sync-${i}` })
    const run = await syncOnce(store)
    idbMs.push(run.ms)
    nodeMs.push(run.transport.nodeMs)
    storedBytes = await store.storedBytes()
    await run.client.close()
    last = run
    const mem = await syncOnce(new MemoryLightStore())
    memoryMs.push(mem.ms)
    await mem.client.close()
  }
  if (last === undefined) throw new Error('syncRuns must be at least 1')

  // What fetching every header would cost: each header with a commit of the tip's shape (the same
  // number of signatures; only the height's varint differs, and that is set per header).
  let allHeadersBytes = 0
  for (const header of chain.headers) {
    allHeadersBytes += encode(signedHeaderCodec, { header, commit: { ...tip.commit, height: header.height } }).byteLength
  }

  // IndexedDB's cost per header: consecutive real signed headers written in batches (as a client
  // following the chain stores them), priced by the origin's usage growth.
  const n = Math.min(p.storedHeaders, p.height)
  const headers: SignedHeader[] = []
  for (let h = 1; h <= n; h++) headers.push(chain.signedHeader(h) as SignedHeader)
  const encodedBytes = headers.reduce((a, sh) => a + encode(signedHeaderCodec, sh).byteLength, 0)
  const usage = async () => (await navigator.storage.estimate()).usage ?? 0
  const before = await usage()
  const store = await IndexedDbLightStore.open({ chainId: chain.genesis.chainId, name: 'bench-headers' })
  const BATCH = 100
  for (let i = 0; i < headers.length; i += BATCH) {
    const batch = headers.slice(i, i + BATCH)
    const top = batch[batch.length - 1] as SignedHeader
    await store.save({
      headers: batch,
      changes: [],
      checkpoint: {
        chainId: chain.genesis.chainId,
        networkId,
        genesisSetHash: validatorSetHash(chain.genesis.validators),
        height: top.header.height,
        hash: blockHash(top.header),
        setsKnownThrough: top.header.height,
      },
    })
  }
  const idbStoredBytes = await store.storedBytes()
  await store.close()
  const usageBytes = (await usage()) - before

  // Warm certificate verification: the page's call, repeated in one page.
  const c = certOptions(p.cert)
  for (let i = 0; i < 5; i++) verifyCertificate(p.cert.file, c)
  const warmMs: number[] = []
  let valid: boolean | 'partial' = false
  let sigCert = 0
  for (let r = 0; r < ROUNDS; r++) {
    sigCert += sigOps(300) / ROUNDS
    for (let i = 0; i < Math.ceil(p.certRuns / ROUNDS); i++) {
      const s = performance.now()
      valid = verifyCertificate(p.cert.file, c).valid
      warmMs.push(performance.now() - s)
    }
  }
  const certCounted = counting(nobleCrypto)
  verifyCertificate(p.cert.file, { ...c, crypto: certCounted })

  return {
    sigVerifyPerSec: { header: sigHeader, sync: sigSync, cert: sigCert },
    headerVerifyPerSec,
    sigsPerHeader,
    sync: {
      idbMs,
      memoryMs,
      nodeMs,
      height: last.result.height,
      setChanges: last.result.setChanges,
      verifiedHeaders: last.result.verifiedHeaders,
      requests: last.transport.requests,
      requestBytes: last.transport.requestBytes,
      responseBytes: last.transport.responseBytes,
      sigs: countedCrypto.verifies,
      storedBytes,
    },
    allHeadersBytes,
    idb: { headers: n, usageBytes, storedBytes: idbStoredBytes, encodedBytesPerHeader: encodedBytes / n },
    cert: { warmMs, sigs: certCounted.verifies, valid },
  }
}

report(async (): Promise<MainResult | ColdResult> => {
  const p = params
  if (p.mode === 'cold-cert') {
    // The genesis and status come from the page's config and the network: not part of the check.
    const opts = certOptions(p.cert)
    const s = performance.now()
    const r = verifyCertificate(p.cert.file, opts)
    return { ms: performance.now() - s, ok: r.valid === true }
  }
  if (p.mode === 'cold-sig') {
    const [signature, message, publicKey] = [fromHex(p.sig.signature), fromHex(p.sig.message), fromHex(p.sig.publicKey)]
    const s = performance.now()
    const ok = nobleCrypto.verify(signature, message, publicKey)
    return { ms: performance.now() - s, ok }
  }
  return main(p)
})
