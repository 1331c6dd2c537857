/**
 * `npm run bench -- gossip`: what gossip messages cost a full node's libp2p stack (gossipsub,
 * yamux, noise, TCP on 127.0.0.1). The node's own hosts (`createNodeHost`, with member admission,
 * scoring and a topic validator that accepts) run in this process; one publishes messages of a
 * given size at a steady rate, and the process's CPU time (all threads) over that run, less its
 * idle rate, is divided by the messages published. Figures:
 * - `cpu_per_message_<size>_us`, two hosts: one message from one to the other, both ends, for
 *   `150` bytes (a vote), `2k` (a batch of a dozen transfers) and `60k` (a proposal of ~400
 *   transfers); with `_vs_verify_ratio`, the same over one OpenSSL ed25519 verification measured
 *   in the same run (`native_verify_us`).
 * - `mesh4_cpu_per_proposal_<size>_us`, four hosts in a full mesh, as four validators are: one
 *   proposal-sized message on a topic that is forwarded, everything all four hosts spend on it
 *   (three copies sent, each receiver checking it for 5 ms, busy, then forwarding it on to the
 *   other two unless told it has it; the checks' CPU taken off), with gossipsub's IDONTWANT from
 *   64 KiB up (`_idontwant64k`, the node's default) and from 16 KiB up (`_idontwant16k`);
 *   `mesh4_idontwant_16k_vs_64k_ratio` compares the two at 60 KB.
 * The 60 KB runs allocate a 60 KB buffer per message, which sets V8's full collections off more
 * often than a validator's few proposals a second do: the cost of a large message is on the high side.
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { keyPairFromSecret, sha256, utf8 } from '@loopchain/core'
import { createNodeHost, type NodeHost, opensslCrypto, type TopicKind } from '@loopchain/node'
import { opsPerSecond, type Report } from './report.js'

/** Message sizes and the rates they are sent at between two hosts. */
const PAIR_RUNS: readonly { label: string; bytes: number; perSecond: number }[] = [
  { label: '150', bytes: 150, perSecond: 2000 },
  { label: '2k', bytes: 2000, perSecond: 1000 },
  { label: '60k', bytes: 60_000, perSecond: 100 },
]
/** Proposal-sized messages through four hosts, a few a second as at the target load. */
const MESH_BYTES = 60_000
const MESH_PER_SECOND = 20
const RUN_MS = 5000
/** How long a host's proposal check takes, busy, before it forwards a proposal. */
const PROPOSAL_CHECK_MS = 5
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** CPU microseconds of this process (user + system, every thread). */
const cpuNow = () => {
  const c = process.cpuUsage()
  return c.user + c.system
}

/** `n` member hosts, each dialling the ones before it (a full mesh), all subscribed to `topic`. */
async function openMesh(
  n: number,
  topic: TopicKind,
  tag: string,
  idontwantMinBytes?: number,
): Promise<{ hosts: NodeHost[]; delivered: () => number }> {
  const keys = Array.from({ length: n }, (_, i) => sha256(utf8(`gossip bench ${tag} host ${i}`)))
  const ids = await Promise.all(keys.map(async (k) => peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', k)).toString()))
  const members = new Set(ids)
  const accept = () => 'accept' as const
  // A validator checks a proposal's block before it is forwarded (several ms at ~400 transfers),
  // synchronously: nothing else runs on its event loop meanwhile (socket reads included).
  const checkBlock = () => {
    const until = performance.now() + PROPOSAL_CHECK_MS
    while (performance.now() < until) {}
    return 'accept' as const
  }
  const hosts: NodeHost[] = []
  let delivered = 0
  try {
    for (const nodeKey of keys) {
      const host = await createNodeHost({
        chainId: 'gossip-bench',
        nodeKey,
        isMember: (id) => members.has(id),
        bootstrap: hosts.flatMap((h) => h.multiaddrs()),
        wsPort: false,
        relay: false,
        validators: { tx: accept, proposal: checkBlock, vote: accept, header: accept },
        ...(idontwantMinBytes !== undefined ? { idontwantMinBytes } : {}),
      })
      hosts.push(host)
      host.subscribe(topic, () => {
        delivered++
      })
    }
    // Every host in every other's mesh for the topic.
    for (let i = 0; hosts.some((h) => h.meshPeers(topic).length < n - 1); i++) {
      if (i > 300) throw new Error(`${n} hosts did not form a full mesh within 30 s`)
      await sleep(100)
    }
  } catch (e) {
    for (const h of hosts) await h.stop().catch(() => undefined)
    throw e
  }
  return { hosts, delivered: () => delivered }
}

let round = 0
/**
 * Publishes `perSecond` messages of `bytes` from `from` for `ms`, waits until each reached the
 * `receivers`, and returns the CPU per message published (µs), the idle rate taken off.
 */
async function publishRun(
  from: NodeHost,
  topic: TopicKind,
  delivered: () => number,
  receivers: number,
  run: { bytes: number; perSecond: number; ms: number; idlePerMs: number },
): Promise<number> {
  round++
  const n = Math.round((run.perSecond * run.ms) / 1000)
  const payload = new Uint8Array(run.bytes)
  const view = new DataView(payload.buffer)
  const before = delivered()
  const t0 = performance.now()
  const c0 = cpuNow()
  const perBurst = Math.max(1, Math.round(run.perSecond / 100))
  for (let i = 0; i < n; i++) {
    // Each message different (gossip drops what it has seen).
    view.setUint32(0, i)
    view.setUint32(4, round)
    void from.publish(topic, payload.slice()).catch(() => 0)
    if ((i + 1) % perBurst === 0) await sleep(Math.max(0, t0 + ((i + 1) * 1000) / run.perSecond - performance.now()))
  }
  const want = n * receivers
  while (delivered() - before < want && performance.now() - t0 < run.ms + 20_000) await sleep(5)
  const got = delivered() - before
  if (got < want) throw new Error(`only ${got} of ${want} deliveries of ${run.bytes}-byte messages arrived`)
  return (cpuNow() - c0 - run.idlePerMs * (performance.now() - t0)) / n
}

/** This process's CPU per millisecond with the hosts idle. */
async function idleRate(): Promise<number> {
  const c0 = cpuNow()
  await sleep(2000)
  return (cpuNow() - c0) / 2000
}

/** `only`: the figures' size labels to run (`150`, `2k`, `60k`, `mesh4`; default all). */
export async function runGossipBench(report: Report, only?: readonly string[]): Promise<void> {
  const labels = [...PAIR_RUNS.map((r) => r.label), 'mesh4']
  const unknown = (only ?? []).filter((l) => !labels.includes(l))
  if (unknown.length) throw new Error(`unknown gossip figures ${unknown.join(', ')}; known: ${labels.join(', ')}`)
  const wanted = (label: string) => only === undefined || only.includes(label)
  const key = keyPairFromSecret(sha256(utf8('gossip bench signer')), opensslCrypto)
  const msg = sha256(utf8('a transaction hash'))
  const sig = opensslCrypto.sign(msg, key.secretKey)
  const verifyUs = 1e6 / opsPerSecond(() => opensslCrypto.verify(sig, msg, key.publicKey))
  report('native_verify_us', verifyUs, 'µs')

  if (PAIR_RUNS.some((r) => wanted(r.label))) {
    const { hosts, delivered } = await openMesh(2, 'vote', 'pair')
    try {
      const [a] = hosts as [NodeHost, NodeHost]
      const idlePerMs = await idleRate()
      for (const r of PAIR_RUNS) {
        if (!wanted(r.label)) continue
        // A first second warms up: the code paths compiled, the buffers grown.
        await publishRun(a, 'vote', delivered, 1, { ...r, ms: 1000, idlePerMs })
        const us = await publishRun(a, 'vote', delivered, 1, { ...r, ms: RUN_MS, idlePerMs })
        report(`cpu_per_message_${r.label}_us`, us, 'µs')
        report(`cpu_per_message_${r.label}_vs_verify_ratio`, us / verifyUs, 'x')
      }
    } finally {
      for (const h of hosts) await h.stop().catch(() => undefined)
    }
  }

  if (wanted('mesh4')) {
    // Each setting twice, in the order A B B A, so neither gains from running later (a warmer JIT).
    const sums = { idontwant64k: 0, idontwant16k: 0 }
    for (const label of ['idontwant64k', 'idontwant16k', 'idontwant16k', 'idontwant64k'] as const) {
      const { hosts, delivered } = await openMesh(4, 'proposal', `${label}-${round}`, label === 'idontwant64k' ? 64 * 1024 : 16 * 1024)
      try {
        const idlePerMs = await idleRate()
        const run = { bytes: MESH_BYTES, perSecond: MESH_PER_SECOND, idlePerMs }
        await publishRun(hosts[0] as NodeHost, 'proposal', delivered, 3, { ...run, ms: 1000 })
        // Less the three receivers' checks, which are CPU spent on purpose.
        sums[label] +=
          (await publishRun(hosts[0] as NodeHost, 'proposal', delivered, 3, { ...run, ms: RUN_MS })) - 3 * PROPOSAL_CHECK_MS * 1000
      } finally {
        for (const h of hosts) await h.stop().catch(() => undefined)
      }
    }
    report('mesh4_cpu_per_proposal_60k_idontwant64k_us', sums.idontwant64k / 2, 'µs')
    report('mesh4_cpu_per_proposal_60k_idontwant16k_us', sums.idontwant16k / 2, 'µs')
    report('mesh4_idontwant_16k_vs_64k_ratio', sums.idontwant16k / sums.idontwant64k, 'x')
  }
}
