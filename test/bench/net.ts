/**
 * `npm run bench -- net`: a 4-validator devnet of separate `loopchain start` processes on this
 * machine, loaded by a generator that signs its transfers ahead and submits them over JSON-RPC
 * (batches of up to 100, each sender always to the same node so its nonces arrive in order).
 *
 * Figures: tx/s committed in the measurement window (`committed_tps`), and the same capped at the
 * rate the window offered (`sustained_tps`, which every ratio uses: a queue from before the window
 * can drain in it), commit latency p50 / p99 from submission to the moment the committing block is
 * announced (a WebSocket block subscription on one node), CPU and peak memory per node, a node's
 * CPU per committed transaction against one native verification
 * (`node_cpu_per_tx_vs_verify_ratio`), and the in-run ceiling: native ed25519
 * verifications per second on this machine (the higher of a reading before the load and one
 * after) times its cores, divided by the validators (every validator checks every transaction's
 * signature once). "Native" here is OpenSSL through node:crypto: the reference every figure of
 * earlier runs used, so `tps_vs_sig_ceiling_ratio` compares across them. The nodes verify with
 * libsodium first (see `packages/node/src/native-crypto.ts`), about twice as fast here, so the same
 * ceiling from their own verifier is printed too (`sig_verify_node_verifier_per_core`,
 * `tps_vs_node_verifier_sig_ceiling_ratio`, and `node_cpu_per_tx_vs_node_verify_ratio`): the
 * first ratio measures throughput against this machine's speed, the second how close a node comes
 * to what its own signature checks allow. `LOOPCHAIN_CRYPTO=openssl` makes the nodes (and the
 * second figure) use OpenSSL alone. Also beside the first, the OpenSSL ceiling with what the
 * cores deliver verifying together in place of their number (`sig_verify_native_all_cores`,
 * `tps_vs_all_cores_sig_ceiling_ratio`): two cores of a shared machine can deliver less together
 * than twice one. Without `--rate N`, short steps of rising offered rates (up to 0.8 of the
 * ceiling) find the highest the network sustains within the latency targets (p50 500 ms, p99 2 s;
 * one missed step in the probe is run again; `probe_highest_passed_tps`). The measured window runs
 * at the target load, 0.54 of the ceiling, when the probe passed a step at or above it, or else
 * one step below the highest that passed (at the highest when none missed). The ceiling is read
 * again after the probe's warm-up step (a higher reading moves the steps up, by 30% at most) and
 * after the probe, and the highest reading counts. With `--rate N`, the window's load follows a
 * short step at half the rate that only warms the nodes up. `meets_targets` is 1 when the run met
 * all the targets (ratio 0.5, p50 500 ms, p99 2 s, 1 GiB a node, everything sent committed).
 * `machine_busy_pct` and `machine_steal_pct`: how busy the machine's cores were over the window,
 * and how much of their time the host took away (from `/proc/stat`).
 * `store_l0_compactions_in_warmup` and `_in_window`: LevelDB level-0 compactions that began in the
 * warm-up and in the window, all nodes and both their databases together (from each LevelDB `LOG`;
 * one can rewrite tens of megabytes, and one late in the warm-up leaves a queue the window still
 * drains).
 * Options:
 * `--rate N` offered tx/s, `--seconds N` measured window (default 30), `--senders N` (default 1,000),
 * `--warmup N` seconds of load before the window (default 15), `--block-interval N` the chain's least
 * time between blocks in ms (default 100, the chain's default).
 * Environment: `LOOPCHAIN_BENCH_PROF=1` writes each validator's CPU profile, `LOOPCHAIN_BENCH_KEEP=1`
 * keeps logs, data and profiles and writes each measured transaction's latency (`latencies.csv`),
 * `LOOPCHAIN_BENCH_NODE_FLAGS` passes Node.js flags to the validators.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import {
  type CryptoProvider,
  encode,
  genesisToJson,
  keyPairFromSecret,
  parseGenesis,
  sha256,
  to0x,
  toHex,
  transactionCodec,
  transactionHash,
  utf8,
} from '@loopchain/core'
import { HEIGHT_DB_DIR, nativeCrypto, opensslCrypto, verifiesWithSodium } from '@loopchain/node'
import WebSocket from 'ws'
import { levelZeroCompactionStarts } from './leveldb-log.js'
import { floorFigure, type Report } from './report.js'
import { benchSenders, benchTransfer } from './transfers.js'

const CLI = fileURLToPath(new URL('../../apps/node/src/main.ts', import.meta.url))
const VALIDATORS = 4
/**
 * Seconds of load before the measured window, unless `--warmup N` says otherwise. Near capacity a
 * step up in load leaves a queue that drains for many seconds: with 5 s, the window counted that
 * drain (more committed than offered, and its p99).
 */
const WARMUP_S = 15
const DRAIN_S = 15
const TICK_MS = 25
const PROBE_S = 6
/** Offered rates of the probe steps, as fractions of the ceiling: finer around the 0.5 target. */
const PROBE_FRACTIONS = [0.06, 0.1, 0.14, 0.18, 0.23, 0.3, 0.38, 0.44, 0.47, 0.5, 0.53, 0.56, 0.6, 0.64, 0.68, 0.8]
/** The issue's latency targets at the measured load; a probe step passes when it meets them. */
const TARGET_P50_MS = 500
const TARGET_P99_MS = 2000
/** The issue's other targets: the ratio to the ceiling, and a node's peak memory. */
const TARGET_RATIO = 0.5
const TARGET_RSS_MIB = 1024
/** Probe steps that may miss once and run again (see the probe). */
const PROBE_SECOND_CHANCES = 1
/**
 * Where the window measures when the probe passed a step at or beyond it: this fraction of the
 * ceiling, a little over the target ratio, because the ceiling's reading after the load, which
 * counts when it is higher, read up to 7% above the one before the window in this machine's runs.
 */
const WINDOW_FRACTION = 0.54
/**
 * How far above the first reading the probe's steps may move when the ceiling reads higher after
 * the warm-up step (the transfers signed ahead cover it): a first reading taken in a slow moment
 * of the machine would otherwise end the probe below the target load.
 */
const CEILING_HEADROOM = 1.3

export interface NetBenchOptions {
  readonly rate?: number
  readonly seconds?: number
  readonly senders?: number
  /** Seconds of load before the measured window (default {@link WARMUP_S}). */
  readonly warmup?: number
  /** The chain's least time between blocks, in ms (the genesis's `blockIntervalMs`; default the chain's default, 100). */
  readonly blockInterval?: number
}

interface Proc {
  readonly child: ChildProcess
  readonly pid: number
  readonly rpc: string
  /** The node's data directory: its LevelDB index database, with the height-keyed one inside (their `LOG`s tell when they compacted). */
  readonly dataDir: string
}

/** utime + stime of a process in seconds, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/**
 * The machine's CPU time so far, from `/proc/stat` (clock ticks, all cores): busy (user, nice,
 * system, irq, softirq), stolen (time the hypervisor gave this machine's virtual CPUs to someone
 * else) and the total. Over the window it shows how full the cores were and whether a slow run
 * ran on a host that took time away from it.
 */
function machineCpuTicks(): { busy: number; steal: number; total: number } {
  const f = (/^cpu\s+(.*)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1] ?? '').trim().split(/\s+/).map(Number)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f
  return { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal }
}

/** Peak resident memory of a process in MiB (VmHWM). */
function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : Number.NaN
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

/** Kept-alive connections: fetch costs the generator about a millisecond of CPU per request. */
// Idle sockets close after 2 s, before the server's own keep-alive timeout (5 s) can close one
// under a request.
const agent = new http.Agent({ keepAlive: true, maxSockets: 16, timeout: 2000 })

interface StoreFigures {
  /** Bytes of keys and values the node wrote, LevelDB's table-file writes, transactions committed. */
  readonly written: number
  readonly tables: number
  readonly txs: number
}

/** A validator's store figures from its `/metrics`, since it started. */
async function storeFigures(rpcUrl: string): Promise<StoreFigures> {
  const text = await (await fetch(`${rpcUrl}metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
  return {
    written: value('loopchain_store_written_bytes_total'),
    tables: value('loopchain_store_table_written_bytes_total'),
    txs: value('loopchain_transactions_committed_total'),
  }
}

/** Retries (twice) a request whose kept-alive connection was closed under it. */
async function rpcText(url: string, body: string): Promise<any> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await postOnce(url, body)
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if (attempt >= 3 || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw e
    }
  }
}

function postOnce(url: string, body: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (b: Buffer) => parts.push(b))
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(parts).toString('utf8')))
        } catch (e) {
          reject(e)
        }
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

function rpc(url: string, body: unknown): Promise<any> {
  return rpcText(url, JSON.stringify(body))
}

async function waitFor(f: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms
  for (;;) {
    if (
      await f().catch((e: Error) => {
        if (e.message.includes('exited')) throw e
        return false
      })
    )
      return
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/**
 * ed25519 verifications per second on one core through `provider`, measured now: the best of five
 * short runs, so a moment of contention on a shared machine lowers neither the ceiling nor, through
 * it, the honesty of the ratio (a higher ceiling makes the ratio smaller).
 */
function verifyRate(provider: CryptoProvider): number {
  const k = keyPairFromSecret(sha256(utf8('bench-baseline')), provider)
  const msg = sha256(utf8('message'))
  const sig = provider.sign(msg, k.secretKey)
  for (let i = 0; i < 500; i++) provider.verify(sig, msg, k.publicKey)
  let best = 0
  for (let run = 0; run < 5; run++) {
    const n = 2000
    const t0 = performance.now()
    for (let i = 0; i < n; i++) provider.verify(sig, msg, k.publicKey)
    best = Math.max(best, (n * 1000) / (performance.now() - t0))
  }
  return best
}

/**
 * A worker thread that verifies one native ed25519 signature over and over: it says `ready` once
 * warmed up, then on `go` verifies for the given milliseconds and posts how many a second it did
 * (node:crypto with a key object, OpenSSL: the reference ceiling's verifier, without the provider's wrapper).
 */
const VERIFY_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { generateKeyPairSync, sign, verify } = require('node:crypto')
const { publicKey, privateKey } = generateKeyPairSync('ed25519')
const msg = Buffer.alloc(32, 7)
const sig = sign(null, msg, privateKey)
for (let i = 0; i < 300; i++) verify(null, msg, publicKey, sig)
parentPort.once('message', () => {
  let n = 0
  const t0 = performance.now()
  while (performance.now() - t0 < workerData.ms) {
    for (let i = 0; i < 50; i++) verify(null, msg, publicKey, sig)
    n += 50
  }
  parentPort.postMessage((n * 1000) / (performance.now() - t0))
})
parentPort.postMessage('ready')`

/** The next message of worker `w`; rejected if it fails or exits first. */
function nextMessage<T>(w: Worker): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`a verification worker exited (${code})`))
    w.once('message', (m: T) => {
      w.off('exit', onExit)
      resolve(m)
    })
    w.once('error', reject)
    w.once('exit', onExit)
  })
}

/** Verifications per second of `threads` workers started together (their sum). */
async function parallelVerifyRate(threads: number): Promise<number> {
  const workers = Array.from({ length: threads }, () => new Worker(VERIFY_WORKER, { eval: true, workerData: { ms: 700 } }))
  try {
    // All warmed up before any starts, so they verify over the same moment.
    await Promise.all(workers.map((w) => nextMessage<string>(w)))
    const rates = workers.map((w) => nextMessage<number>(w))
    for (const w of workers) w.postMessage('go')
    return (await Promise.all(rates)).reduce((a, b) => a + b, 0)
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}

/**
 * Verifications per second of worker threads on every core at once, and of one alone (same code,
 * runs taken in turn, the best of three each): cores that share a physical core or its caches
 * deliver less together than one core alone times their number. Only their quotient is used (see
 * `allCoresFactor`): the workers call node:crypto directly, not the nodes' provider. Undefined, and
 * its figures left out, where worker threads fail.
 */
async function machineVerifyRate(cores: number): Promise<{ all: number; one: number } | undefined> {
  try {
    let one = 0
    let all = 0
    for (let run = 0; run < 3; run++) {
      one = Math.max(one, await parallelVerifyRate(1))
      all = Math.max(all, await parallelVerifyRate(cores))
    }
    return { all, one }
  } catch (e) {
    console.error(`net: could not measure all cores verifying at once: ${(e as Error).message}`)
    return undefined
  }
}

/**
 * How many times one core's verification rate the machine's cores deliver together: the measured
 * quotient, at most the number of cores (a reading above it is noise in the one-core run).
 */
function allCoresFactor(machine: { all: number; one: number }, cores: number): number {
  return Math.min(cores, machine.all / machine.one)
}

export async function runNetBench(report: Report, opts: NetBenchOptions = {}): Promise<void> {
  const cores = availableParallelism()
  let perCore = verifyRate(opensslCrypto)
  let nodePerCore = verifyRate(nativeCrypto)
  let ceiling = (perCore * cores) / VALIDATORS
  let machine = await machineVerifyRate(cores)
  const seconds = opts.seconds ?? 30
  const warmup = opts.warmup ?? WARMUP_S
  // Without --rate, probe rising rates first (PROBE_S each) for the highest one the network
  // sustains within the latency targets, and measure there or a step below (see the probe). A
  // step passes when what it sent in its first two thirds committed by its end with p50 and p99
  // within them (an uncommitted transaction counts as infinitely late). A looser bar (p50 under a
  // second) chose rates at the edge of capacity, where the measured window's queues and p99 grew.
  const probeRates = (c: number) => (opts.rate === undefined ? PROBE_FRACTIONS.map((f) => Math.round(c * f)) : [])
  let probes = probeRates(ceiling)
  let rate = opts.rate ?? (probes[0] as number)
  /** The highest probe step that met the latency targets (0 without a probe). */
  let highestPassed = 0
  /** One core's OpenSSL rate read again: the highest reading of the run makes the ceiling. */
  const readCeilingAgain = (): number => {
    const reading = verifyRate(opensslCrypto)
    perCore = Math.max(perCore, reading)
    ceiling = (perCore * cores) / VALIDATORS
    return reading
  }
  // A first step at a low rate only warms up (every sender's key is new to the nodes, the code is
  // not compiled yet, the first blocks are slow), then drains: with --rate, at half that rate.
  const firstStep = opts.rate === undefined ? (probes[0] as number) : Math.round(opts.rate / 2)
  const senderCount = opts.senders ?? 1000
  console.error(
    `net: verify ${Math.round(perCore)}/s per core (OpenSSL) × ${cores} cores / ${VALIDATORS} validators = ceiling ${Math.round(ceiling)} tx/s; the nodes' verifier (${verifiesWithSodium() ? 'libsodium; OpenSSL where the two may differ' : 'OpenSSL'}) ${Math.round(nodePerCore)}/s per core`,
  )
  const logMachine = (when: string, m: { all: number; one: number } | undefined) => {
    if (m)
      console.error(
        `net: ${when}, worker threads on all ${cores} cores verified ${Math.round(m.all)}/s together, ${(m.all / m.one).toFixed(2)}× one alone (${Math.round(m.one)}/s)`,
      )
  }
  logMachine('before the load', machine)
  console.error(
    probes.length
      ? `net: warming up at ${firstStep} tx/s, probing ${probes.join(', ')} tx/s (${PROBE_S}s each, passing within p50 ${TARGET_P50_MS} ms and p99 ${TARGET_P99_MS} ms), then ${warmup}s warm-up + ${seconds}s measured, from ${senderCount} senders`
      : `net: warming up at ${firstStep} tx/s for ${PROBE_S}s, then offering ${rate} tx/s for ${warmup}s warm-up + ${seconds}s measured, from ${senderCount} senders`,
  )

  // A fresh devnet whose genesis funds the generator's senders.
  const dir = mkdtempSync(join(tmpdir(), 'loopchain-bench-net-'))
  // Ports of its own (28000–32735), away from the tests' ranges and the devnet's, so a bench can
  // run beside them, and below Linux's ephemeral ports (32768+): a port the OS had given an
  // outgoing connection failed a start with EADDRINUSE now and then.
  const base = 28_000 + Math.floor(Math.random() * 470) * 10
  const senders = benchSenders('bench-sender', senderCount)
  const procs: Proc[] = []
  /** The chain's least time between blocks (its genesis), printed with the figures. */
  let blockIntervalMs = 0
  try {
    const init = spawn(
      process.execPath,
      ['--import', 'tsx', CLI, 'init', '--validators', String(VALIDATORS), '--out', dir, '--base-port', String(base)],
      {
        stdio: 'ignore',
      },
    )
    await new Promise((r) => init.once('exit', r))
    const gPath = join(dir, 'genesis.json')
    const g = parseGenesis(JSON.parse(readFileSync(gPath, 'utf8')))
    const balances = [...g.balances, ...senders.map((s) => ({ address: s.address, amount: 10n ** 24n }))]
    balances.sort((a, b) => (a.address < b.address ? -1 : 1))
    // Every transfer is signed, and stamped, before the run: on a machine with many cores the
    // probes and the window then outlast the default 5-minute timestamp window, and the last ones
    // would be refused as too old. The bench's chain accepts 30 minutes; nothing else changes but the
    // block interval, when `--block-interval` sets it.
    const funded = {
      ...g,
      balances,
      params: {
        ...g.params,
        txTimestampWindowMs: 30 * 60 * 1000,
        ...(opts.blockInterval !== undefined ? { blockIntervalMs: opts.blockInterval } : {}),
      },
    }
    writeFileSync(gPath, JSON.stringify(genesisToJson(funded), null, 2))
    blockIntervalMs = funded.params.blockIntervalMs

    for (let i = 0; i < VALIDATORS; i++) {
      // The load generator is one client sending thousands of calls a second: a trusted gateway,
      // given the rate limit an operator would give one (the default, 200 a second, is per client).
      const configPath = join(dir, `node-${i}`, 'config.json')
      const config = JSON.parse(readFileSync(configPath, 'utf8'))
      writeFileSync(
        configPath,
        JSON.stringify({ ...config, rpc: { ...config.rpc, rateLimit: { perSecond: 1_000_000, burst: 1_000_000 } } }, null, 2),
      )
      const prof = process.env.LOOPCHAIN_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'prof')}`] : []
      // Node.js flags for the validators only, to measure runtime settings (e.g. GC flags).
      const flags = (process.env.LOOPCHAIN_BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean)
      const child = spawn(
        process.execPath,
        [...flags, ...prof, '--import', 'tsx', CLI, 'start', '--config', join(dir, `node-${i}`, 'config.json'), '--exit-with-parent'],
        {
          stdio: ['ignore', openSync(join(dir, `node-${i}.log`), 'w'), 'inherit'],
          env: { ...process.env, LOOPCHAIN_PARENT_PID: String(process.pid) },
        },
      )
      procs.push({
        child,
        pid: child.pid as number,
        rpc: `http://127.0.0.1:${base + 10 * i + 2}/`,
        dataDir: resolve(join(dir, `node-${i}`), config.dataDir),
      })
    }
    for (const p of procs) {
      await waitFor(
        async () => {
          if (p.child.exitCode !== null) throw new Error(`the node at ${p.rpc} exited with ${p.child.exitCode}`)
          return !(await rpc(p.rpc, { jsonrpc: '2.0', id: 1, method: 'lc_getNetworkInfo' })).error
        },
        60_000,
        p.rpc,
      )
    }

    // Sign everything ahead: sender s sends its k-th transfer with nonce k.
    // The probe's steps may still move up by CEILING_HEADROOM (see the warm-up step).
    const highest = probeRates(ceiling * CEILING_HEADROOM)
    const most = Math.max(rate, ...highest)
    const retried = probes.length ? PROBE_SECOND_CHANCES * most * PROBE_S : 0
    const total = Math.ceil(highest.reduce((n, r) => n + r * PROBE_S, firstStep * PROBE_S + retried) + most * (warmup + seconds))
    const txs: { request: string; hash: string; node: number; sender: number }[] = []
    const now = Date.now() * 1000
    const signStart = performance.now()
    for (let j = 0; j < total; j++) {
      const s = j % senderCount
      const tx = benchTransfer(senders, g.networkId, j, now)
      // The request is serialised ahead too (its id is the transaction's index): the generator
      // shares the cores with the nodes, so its own work per transaction is kept small.
      const request = `{"jsonrpc":"2.0","id":${j},"method":"lc_sendTransaction","params":{"tx":"${to0x(encode(transactionCodec, tx))}"}}`
      txs.push({ request, hash: toHex(transactionHash(tx.body)), node: s % VALIDATORS, sender: s })
    }
    console.error(`net: signed ${total} transfers in ${Math.round(performance.now() - signStart)} ms`)

    // Commit times come from node 0's block subscription; the block's hashes from lc_getBlockByHeight.
    const submittedAt = new Map<string, number>()
    const committedAt = new Map<string, number>()
    const blocks: { at: number; txs: number }[] = []
    const ws = new WebSocket(`${(procs[0] as Proc).rpc.replace('http', 'ws')}ws`)
    await new Promise((r, j) => ws.once('open', r).once('error', j))
    let fetching = Promise.resolve()
    ws.on('message', (raw) => {
      const m = JSON.parse(String(raw))
      if (m.method !== 'lc_subscription') return
      const at = performance.now()
      const height = m.params.result.height as number
      fetching = fetching
        .then(async () => {
          const r = await rpc((procs[0] as Proc).rpc, {
            jsonrpc: '2.0',
            id: 1,
            method: 'lc_getBlockByHeight',
            params: { height, full: false },
          })
          const hashes = (r.result?.transactions ?? []) as string[]
          blocks.push({ at, txs: hashes.length })
          for (const h of hashes) committedAt.set(h.slice(2), at)
        })
        .catch((e: Error) => {
          // A block announced as the nodes stop cannot be fetched any more; it is after the window.
          console.error(`net: could not fetch block ${height}: ${e.message}`)
        })
    })
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'lc_subscribe', params: { topic: 'blocks' } }))

    // Open loop at the offered rate, in batches per node every tick.
    let refused = 0
    let skipped = 0
    const dead = new Set<number>()
    const refusals = new Map<string, number>()
    const inflight = new Set<Promise<void>>()
    let next = 0
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
    /** Submits everything due at `rateNow` since `t0` (plus `base` already due before) for `ms`. */
    const offer = async (rateNow: number, ms: number, onTick?: () => void): Promise<void> => {
      const t0 = performance.now()
      const base = next
      while (next < total && performance.now() - t0 < ms) {
        onTick?.()
        const due = Math.min(total, base + Math.floor(((performance.now() - t0) / 1000) * rateNow))
        const perNode: (typeof txs)[] = Array.from({ length: VALIDATORS }, () => [])
        for (; next < due; next++) {
          const t = txs[next] as (typeof txs)[number]
          // A sender with a refused transaction has a nonce gap: the rest of its transactions would wait forever.
          if (dead.has(t.sender)) skipped++
          else (perNode[t.node] as typeof txs).push(t)
        }
        for (let i = 0; i < VALIDATORS; i++) {
          const list = perNode[i] as typeof txs
          for (let k = 0; k < list.length; k += 100) {
            const chunk = list.slice(k, k + 100)
            const sentAt = performance.now()
            for (const t of chunk) submittedAt.set(t.hash, sentAt)
            const body = `[${chunk.map((t) => t.request).join(',')}]`
            const p: Promise<void> = rpcText((procs[i] as Proc).rpc, body)
              .then((rs: any) => {
                for (const r of Array.isArray(rs) ? rs : [rs]) {
                  // A retried request finds its transactions pooled already: they count as sent.
                  if (!r.error || r.error.data?.code === 'DUPLICATE') continue
                  refused++
                  const t = txs[r.id] as (typeof txs)[number]
                  dead.add(t.sender)
                  submittedAt.delete(t.hash)
                  const why = String(r.error.data?.code ?? r.error.message)
                  refusals.set(why, (refusals.get(why) ?? 0) + 1)
                }
              })
              .catch((e: NodeJS.ErrnoException) => {
                refused += chunk.length
                const why = `request failed: ${e.code ?? e.message}`
                refusals.set(why, (refusals.get(why) ?? 0) + chunk.length)
              })
              .finally(() => inflight.delete(p))
            inflight.add(p)
          }
        }
        await sleep(TICK_MS)
      }
    }
    /**
     * Sorted commit latencies of what was sent from `from` up to `to`: a transaction not committed
     * counts as infinitely late (`late`), or is left out (`skip`, for a count of its own).
     */
    const latencies = (from: number, to: number, uncommitted: 'late' | 'skip'): number[] => {
      const out: number[] = []
      for (const [h, sent] of submittedAt) {
        if (sent < from || sent >= to) continue
        const at = committedAt.get(h)
        if (at !== undefined) out.push(at - sent)
        else if (uncommitted === 'late') out.push(Number.POSITIVE_INFINITY)
      }
      return out.sort((x, y) => x - y)
    }
    const drained = async (ms: number) => {
      const until = Date.now() + ms
      while (Date.now() < until && [...submittedAt.keys()].some((h) => !committedAt.has(h))) await sleep(100)
    }

    // The warm-up step, then the probe: one step per rate; a step passes when what it sent in
    // its first two thirds has committed by its end within the latency targets.
    await offer(firstStep, PROBE_S * 1000)
    await drained(10_000)
    if (probes.length) {
      // The ceiling read again, the load off: a higher reading moves the steps up (within
      // CEILING_HEADROOM) and counts for the ceiling, as every higher reading does.
      const [first, firstCeiling] = [perCore, ceiling]
      const again = readCeilingAgain()
      if (again > first) probes = probeRates(firstCeiling * Math.min(CEILING_HEADROOM, again / first))
      console.error(
        `net: verify ${Math.round(again)}/s per core after the warm-up step${again > first ? `; probing ${probes.join(', ')} tx/s` : ''}`,
      )
    }
    // One step that misses is run again, once in the whole probe, after the queue drains: a slow
    // moment of a shared machine would otherwise end the probe far below what the network does.
    let secondChances = PROBE_SECOND_CHANCES
    const passed: number[] = []
    for (let i = 0; i < probes.length; i++) {
      const r = probes[i] as number
      const stepStart = performance.now()
      await offer(r, PROBE_S * 1000)
      const lat = latencies(stepStart, stepStart + (PROBE_S * 2000) / 3, 'late')
      const done = lat.filter(Number.isFinite).length / Math.max(1, lat.length)
      const p50 = percentile(lat, 50)
      const p99 = percentile(lat, 99)
      const ok = p50 <= TARGET_P50_MS && p99 <= TARGET_P99_MS
      const ms = (x: number) => (Number.isFinite(x) ? `${Math.round(x)} ms` : '∞')
      const again = !ok && secondChances > 0
      console.error(
        `net: probe ${r} tx/s: ${Math.round(done * 100)}% committed, p50 ${ms(p50)}, p99 ${ms(p99)} ${ok ? 'ok' : again ? 'too much, once more' : 'too much'}`,
      )
      if (again) {
        secondChances--
        await drained(10_000)
        i--
        continue
      }
      if (!ok) break
      passed.push(r)
    }
    if (probes.length) {
      highestPassed = passed[passed.length - 1] ?? 0
      await drained(20_000)
      // The ceiling read again, the load off: an earlier reading taken in a slow moment would put
      // the target load below 0.5 of the ceiling the run ends with (the highest reading counts).
      const earlier = perCore
      console.error(`net: verify ${Math.round(readCeilingAgain())}/s per core after the probe (${Math.round(earlier)}/s before it)`)
      // The issue asks for the latency "at that load": the load of ratio 0.5. When the probe
      // passed a step at or above WINDOW_FRACTION of the ceiling, the window runs at exactly that
      // fraction, and the probe's highest step is printed beside it. Otherwise the window runs one
      // step below the highest passed (at the highest when none missed or only one passed, at the
      // first step when none passed): a short step that just passed is at the edge of capacity,
      // and the window's longer run there missed the targets in a quarter of this machine's runs.
      const target = Math.round(WINDOW_FRACTION * ceiling)
      const below = passed.length === probes.length || passed.length < 2 ? passed.length - 1 : passed.length - 2
      rate = highestPassed >= target ? target : (passed[below] ?? (probes[0] as number))
      const why =
        highestPassed >= target
          ? `the target load (${WINDOW_FRACTION} of the ceiling; the highest step passed: ${highestPassed})`
          : passed.length === 0
            ? 'the first step: no step passed'
            : below === passed.length - 2
              ? `one step below the highest passed (${highestPassed})`
              : 'the highest step passed'
      console.error(`net: measuring at ${rate} tx/s, ${why}`)
    }
    const cpu0: number[] = []
    let windowStart = 0
    let loadCpu0 = process.cpuUsage()
    let machine0 = machineCpuTicks()
    let windowStartWallMs = 0
    const warmupStartWallMs = Date.now()
    const measureFrom = performance.now() + warmup * 1000
    await offer(rate, (warmup + seconds) * 1000, () => {
      if (windowStart === 0 && performance.now() >= measureFrom) {
        windowStart = performance.now()
        for (const p of procs) cpu0.push(cpuSeconds(p.pid))
        loadCpu0 = process.cpuUsage()
        machine0 = machineCpuTicks()
        windowStartWallMs = Date.now()
      }
    })
    const windowEnd = performance.now()
    const windowEndWallMs = Date.now()
    const cpu1 = procs.map((p) => cpuSeconds(p.pid))
    const loadCpu = process.cpuUsage(loadCpu0)
    const machine1 = machineCpuTicks()
    await Promise.all(inflight)
    // Let the tail commit, then stop listening.
    await drained(DRAIN_S * 1000)
    await fetching
    ws.close()

    const windowS = (windowEnd - windowStart) / 1000
    const committedInWindow = [...committedAt.values()].filter((at) => at >= windowStart && at < windowEnd).length
    // Everything sent from the window's start on (its tail commits in the drain); what never
    // committed is counted apart (`uncommitted_txs`).
    const windowLatencies = latencies(windowStart, Number.POSITIVE_INFINITY, 'skip')
    if (process.env.LOOPCHAIN_BENCH_KEEP) {
      // Each measured transaction: when it was sent (ms into the window), its latency and its node.
      const nodeOf = new Map(txs.map((t) => [t.hash, t.node]))
      const rows = [...submittedAt]
        .filter(([h, sent]) => sent >= windowStart && committedAt.has(h))
        .map(([h, sent]) => `${Math.round(sent - windowStart)},${Math.round((committedAt.get(h) as number) - sent)},${nodeOf.get(h)}`)
      writeFileSync(join(dir, 'latencies.csv'), `sent_ms,latency_ms,node\n${rows.join('\n')}\n`)
    }
    const missing = [...submittedAt.keys()].filter((h) => !committedAt.has(h)).length
    const tps = committedInWindow / windowS
    // What the ratios count: the committed rate, but never more than the window offered. Near
    // capacity a queue left from before the window can still be draining in it, and what it
    // commits then is no rate the network sustains.
    const sentInWindow = [...submittedAt.values()].filter((at) => at >= windowStart && at < windowEnd).length
    const sustained = Math.min(tps, sentInWindow / windowS)
    const windowBlocks = blocks.filter((b) => b.at >= windowStart && b.at < windowEnd)
    if (refusals.size) console.error(`net: refused ${refused}: ${JSON.stringify(Object.fromEntries(refusals))}`)

    // Measured again now the load is off: the highest reading of the run makes the ceiling, so a
    // slow moment at the start cannot make the ratio look better than the machine allows.
    const before = perCore
    const after = readCeilingAgain()
    nodePerCore = Math.max(nodePerCore, verifyRate(nativeCrypto))
    const machineAfter = await machineVerifyRate(cores)
    logMachine('after the load', machineAfter)
    if (machineAfter && (machine === undefined || machineAfter.all > machine.all)) machine = machineAfter
    console.error(
      `net: verify ${Math.round(before)}/s per core before the ${probes.length ? 'window (the highest reading)' : 'load'}, ${Math.round(after)}/s after; the ceiling takes the higher`,
    )
    report('sig_verify_native_per_core', perCore, 'ops/s')
    report('cores', cores, 'cores')
    report('sig_ceiling_tps', ceiling, 'tx/s')
    report('offered_tps', rate, 'tx/s')
    if (probes.length) {
      // Offered for PROBE_S seconds, not sustained for the window: what the probe passed, beside
      // what the window measured.
      report('probe_highest_passed_tps', highestPassed, 'tx/s')
      report('probe_highest_passed_vs_sig_ceiling_ratio', highestPassed / ceiling, 'x')
    }
    report('warmup_s', warmup, 's')
    report('window_s', windowS, 's')
    report('committed_tps', tps, 'tx/s')
    report('sustained_tps', sustained, 'tx/s')
    // Rounded down, so a ratio just under the target never prints as 0.5.
    report('tps_vs_sig_ceiling_ratio', floorFigure(sustained / ceiling), 'x')
    report('sig_verify_node_verifier_per_core', nodePerCore, 'ops/s')
    report('tps_vs_node_verifier_sig_ceiling_ratio', sustained / ((nodePerCore * cores) / VALIDATORS), 'x')
    // The same ceiling from what all cores verify at once: one core's rate (as above) times what
    // the cores deliver together (see allCoresFactor), printed beside the defined one, which
    // takes the number of cores.
    if (machine) {
      const factor = allCoresFactor(machine, cores)
      report('sig_verify_native_all_cores', perCore * factor, 'ops/s')
      report('sig_verify_all_cores_vs_one_core_ratio', factor, 'x')
      report('tps_vs_all_cores_sig_ceiling_ratio', sustained / ((perCore * factor) / VALIDATORS), 'x')
    }
    const p50 = percentile(windowLatencies, 50)
    const p99 = percentile(windowLatencies, 99)
    report('commit_latency_p50_ms', p50, 'ms')
    report('commit_latency_p99_ms', p99, 'ms')
    report('blocks_per_s', windowBlocks.length / windowS, 'blocks/s')
    report('block_interval_ms', blockIntervalMs, 'ms')
    report('txs_per_block', windowBlocks.reduce((s, b) => s + b.txs, 0) / Math.max(1, windowBlocks.length), 'txs')
    report('refused_txs', refused, 'txs')
    report('skipped_txs', skipped, 'txs')
    report('uncommitted_txs', Math.max(0, missing), 'txs')
    const cpuS = procs.map((_, i) => (cpu1[i] as number) - (cpu0[i] as number))
    cpuS.forEach((s, i) => {
      report(`node${i}_cpu`, (100 * s) / windowS, '%core')
    })
    // A node's CPU per committed transaction, against one native verification on this machine: at
    // saturation the ceiling ratio is about the inverse of this ratio. Below saturation it reads
    // high: blocks get smaller and more frequent, and their fixed costs fill the idle time.
    const cpuUsPerTx = ((cpuS.reduce((a, b) => a + b, 0) / procs.length) * 1e6) / Math.max(1, committedInWindow)
    report('node_cpu_us_per_tx', cpuUsPerTx, 'µs')
    report('node_cpu_per_tx_vs_verify_ratio', cpuUsPerTx / (1e6 / perCore), 'x')
    report('node_cpu_per_tx_vs_node_verify_ratio', cpuUsPerTx / (1e6 / nodePerCore), 'x')
    const rss = procs.map((p) => peakRssMiB(p.pid))
    procs.forEach((_, i) => {
      report(`node${i}_peak_rss`, rss[i] as number, 'MiB')
    })
    report('node_peak_rss_max', Math.max(...rss), 'MiB')
    // What the validators wrote to LevelDB over the whole run, and what LevelDB wrote beneath
    // that (their /metrics): bytes per committed transaction and the write amplification.
    const stores = await Promise.all(procs.map((p) => storeFigures(p.rpc)))
    const sum = (f: (s: StoreFigures) => number) => stores.reduce((a, s) => a + f(s), 0)
    if (stores.every((s) => s.written > 0 && s.txs > 0)) {
      report('store_written_bytes_per_tx', sum((s) => s.written) / sum((s) => s.txs), 'B')
      report('store_write_amplification', sum((s) => s.tables) / sum((s) => s.written), 'x')
    } else console.error(`net: no store figures: a validator's /metrics lacked them (${JSON.stringify(stores)})`)
    // The issue's targets together: 1 when this run met all of them (and everything it sent
    // committed), 0 when not.
    const met =
      sustained / ceiling >= TARGET_RATIO &&
      p50 <= TARGET_P50_MS &&
      p99 <= TARGET_P99_MS &&
      Math.max(...rss) <= TARGET_RSS_MIB &&
      missing === 0
    report('meets_targets', met ? 1 : 0, 'yes=1')
    report('loadgen_cpu', (100 * (loadCpu.user + loadCpu.system)) / 1e6 / windowS, '%core')
    // LevelDB's level-0 compactions that began in the warm-up and in the window, all nodes together
    // (see leveldb-log.ts): one late in the warm-up leaves a queue that the window still drains.
    // Each node has two databases (SplitKVStore): the index in its data directory, the records
    // keyed by height in a subdirectory.
    const dbs = procs.flatMap((p) => [p.dataDir, join(p.dataDir, HEIGHT_DB_DIR)])
    const starts = dbs.map((d) => levelZeroCompactionStarts(d))
    const missingLog = dbs.filter((_, i) => starts[i] === undefined)
    if (missingLog.length === 0) {
      const begun = (from: number, to: number) => starts.reduce((n, s) => n + (s ?? []).filter((t) => t >= from && t < to).length, 0)
      report('store_l0_compactions_in_warmup', begun(warmupStartWallMs, windowStartWallMs), 'compactions')
      report('store_l0_compactions_in_window', begun(windowStartWallMs, windowEndWallMs), 'compactions')
    } else console.error(`net: no LevelDB LOG in ${missingLog.join(', ')}`)
    // The whole machine over the window: how busy its cores were (the nodes, the load generator and
    // anything else), and how much time the host took away (steal): a run that fell behind with
    // steal well above zero ran short of the cores it was measured against.
    const ticks = machine1.total - machine0.total
    if (ticks > 0) {
      report('machine_busy_pct', (100 * (machine1.busy - machine0.busy)) / ticks, '%')
      report('machine_steal_pct', (100 * (machine1.steal - machine0.steal)) / ticks, '%')
    }
  } finally {
    // A clean stop first (profiles and logs get written), then no mercy.
    for (const p of procs) p.child.kill('SIGTERM')
    await Promise.all(
      procs.map((p) =>
        p.child.exitCode !== null
          ? undefined
          : Promise.race([new Promise((r) => p.child.once('exit', r)), new Promise((r) => setTimeout(r, 5000))]),
      ),
    )
    for (const p of procs) p.child.kill('SIGKILL')
    if (process.env.LOOPCHAIN_BENCH_KEEP) console.error(`net: logs and data kept in ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
  }
}
