/**
 * `npm run bench -- gossip`: what one gossip message costs a full node's libp2p stack (gossipsub,
 * yamux, noise, TCP on 127.0.0.1), sender and receiver together. Two node hosts (`createNodeHost`,
 * the full node's own host with member admission, scoring and a topic validator that accepts) run
 * in this process; one publishes messages of a given size at a steady rate on a member topic the
 * other subscribes to, and the process's CPU time (all threads) over that run, less its idle rate,
 * is divided by the messages delivered. Figures, per size (`150` bytes: a vote; `2k`: a batch of a
 * dozen transfers; `60k`: a proposal of ~400 transfers):
 * - `cpu_per_message_<size>_us`: CPU per message delivered, both ends;
 * - `cpu_per_message_<size>_vs_verify_ratio`: the same over one OpenSSL ed25519 verification
 *   measured in the same run (`native_verify_us`).
 * A full node's validators exchange votes, transaction batches and proposals this way, so the
 * figures tell what a message more or less a second costs them (`packages/node/docs/performance.md`).
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { keyPairFromSecret, sha256, utf8 } from '@loopchain/core'
import { createNodeHost, type NodeHost, opensslCrypto } from '@loopchain/node'
import { opsPerSecond, type Report } from './report.js'

/** Message sizes and the rates they are sent at (a second of CPU per run at most, on this machine). */
const RUNS: readonly { label: string; bytes: number; perSecond: number }[] = [
  { label: '150', bytes: 150, perSecond: 2000 },
  { label: '2k', bytes: 2000, perSecond: 1000 },
  { label: '60k', bytes: 60_000, perSecond: 100 },
]
const RUN_MS = 5000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** CPU microseconds of this process (user + system, every thread). */
const cpuNow = () => {
  const c = process.cpuUsage()
  return c.user + c.system
}

/** `only`: the labels of the sizes to run (default all). */
export async function runGossipBench(report: Report, only?: readonly string[]): Promise<void> {
  const keys = [1, 2].map((i) => sha256(utf8(`gossip bench host ${i}`)))
  const ids = await Promise.all(keys.map(async (k) => peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', k)).toString()))
  const members = new Set(ids)
  const accept = () => 'accept' as const
  const open = (nodeKey: Uint8Array, bootstrap: string[]) =>
    createNodeHost({
      chainId: 'gossip-bench',
      nodeKey,
      isMember: (id) => members.has(id),
      bootstrap,
      wsPort: false,
      relay: false,
      validators: { tx: accept, proposal: accept, vote: accept, header: accept },
    })
  const hosts: NodeHost[] = []
  try {
    const a = await open(keys[0] as Uint8Array, [])
    hosts.push(a)
    const b = await open(keys[1] as Uint8Array, a.multiaddrs())
    hosts.push(b)
    let delivered = 0
    b.subscribe('vote', () => {
      delivered++
    })
    a.subscribe('vote', () => {})
    // Connected and in each other's mesh: a message reaches b.
    const probe = new Uint8Array(8)
    for (let i = 0; delivered === 0; i++) {
      if (i > 200) throw new Error('the two hosts did not connect within 20 s')
      new DataView(probe.buffer).setUint32(0, i)
      await a.publish('vote', probe.slice()).catch(() => 0)
      await sleep(100)
    }

    const idleStart = cpuNow()
    await sleep(2000)
    const idlePerMs = (cpuNow() - idleStart) / 2000

    let round = 0
    /** Sends `n` messages of `bytes` at `perSecond` (in bursts every 10 ms); CPU µs per message delivered. */
    const run = async (bytes: number, perSecond: number, ms: number): Promise<number> => {
      round++
      const n = Math.round((perSecond * ms) / 1000)
      const payload = new Uint8Array(bytes)
      const view = new DataView(payload.buffer)
      const before = delivered
      const t0 = performance.now()
      const c0 = cpuNow()
      const perBurst = Math.max(1, Math.round(perSecond / 100))
      for (let i = 0; i < n; i++) {
        // Each message different (gossip drops what it has seen).
        view.setUint32(0, i)
        view.setUint32(4, round)
        void a.publish('vote', payload.slice()).catch(() => 0)
        if ((i + 1) % perBurst === 0) {
          const due = t0 + ((i + 1) * 1000) / perSecond
          await sleep(Math.max(0, due - performance.now()))
        }
      }
      while (delivered - before < n && performance.now() - t0 < ms + 20_000) await sleep(5)
      const got = delivered - before
      if (got < n) throw new Error(`only ${got} of ${n} messages of ${bytes} bytes arrived`)
      const wall = performance.now() - t0
      return (cpuNow() - c0 - idlePerMs * wall) / got
    }

    const key = keyPairFromSecret(sha256(utf8('gossip bench signer')), opensslCrypto)
    const msg = sha256(utf8('a transaction hash'))
    const sig = opensslCrypto.sign(msg, key.secretKey)
    const verifyUs = 1e6 / opsPerSecond(() => opensslCrypto.verify(sig, msg, key.publicKey))
    report('native_verify_us', verifyUs, 'µs')
    for (const r of RUNS) {
      if (only !== undefined && !only.includes(r.label)) continue
      await run(r.bytes, r.perSecond, 1000) // warm-up: the code paths compiled, the buffers grown
      const us = await run(r.bytes, r.perSecond, RUN_MS)
      report(`cpu_per_message_${r.label}_us`, us, 'µs')
      report(`cpu_per_message_${r.label}_vs_verify_ratio`, us / verifyUs, 'x')
    }
  } finally {
    for (const h of hosts) await h.stop().catch(() => undefined)
  }
}
