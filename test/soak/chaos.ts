/**
 * `npm run chaos`: a fault run of real processes, longer than `npm test` holds. A devnet of
 * validators and an observer (`loopchain start` each, LevelDB on disk, libp2p on 127.0.0.1) takes
 * a steady load of transfers from many senders while one node at a time is killed with SIGKILL and
 * restarted a few seconds later, over and over. At the end every node is up again and the run
 * checks what an operator cares about after a bad night:
 *
 * - every node holds the same block at every height (no fork, nothing lost by a kill);
 * - every transaction a client was told is committed is on every node, at the same height, with
 *   the same status;
 * - no node saw evidence of a double vote (a restarted validator must not sign twice);
 * - the chain never stalled while a quorum was up, and each restarted node caught up.
 *
 * Options: `--minutes N` (default 5), `--validators N` (default 4; one node down at a time, so
 * 4 tolerates it), `--senders N` (default 16), `--seed N` (the kill schedule; default 1),
 * `--down-max N` (the longest a node stays down or frozen, in seconds; default 12: each fault
 * lasts from 2 s to this),
 * `--quorum-loss` (one fault in five kills two validators at once: the chain must stop, then go on
 * by itself once they are back), `--freeze` (one fault in three freezes a node with SIGSTOP
 * instead, and thaws it with SIGCONT: a VM paused or a process stuck in a long pause, which keeps
 * its connections and comes back to a backlog of stale messages), `--freeze-only` (every fault a
 * freeze: the long pauses that once left a thawed validator gone without a word), `--keep` (keep the directory
 * with the nodes' logs and data). Exit 0 when every check holds.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { encode, type KeyPair, keyPairFromSecret, sha256, to0x, transactionCodec, transactionHash, utf8 } from '@loopchain/core'
import { testTransfer } from '../../packages/node/test/fixtures/test-chain.js'
import { Prng } from '../sim/prng.js'
import { CliNetwork, waitFor } from '../support/cli-network.js'

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0) return fallback
  const v = Number(process.argv[i + 1])
  if (!Number.isSafeInteger(v) || v < 1) throw new Error(`--${name} takes a positive integer`)
  return v
}

const MINUTES = option('minutes', 5)
const VALIDATORS = option('validators', 4)
const SENDERS = option('senders', 16)
const SEED = option('seed', 1)
const DOWN_MAX_S = option('down-max', 12)
const KEEP = process.argv.includes('--keep')
const QUORUM_LOSS = process.argv.includes('--quorum-loss')
const FREEZE_ONLY = process.argv.includes('--freeze-only')
const FREEZE = FREEZE_ONLY || process.argv.includes('--freeze')
/** No new block for this long while a quorum is up counts as a stall. */
const STALL_MS = 30_000

// The fault schedule comes from the simulator's seeded generator: the same seed kills the same
// nodes at the same moments.
const rng = new Prng(SEED)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const say = (line: string) => process.stdout.write(`chaos: ${line}\n`)

const failures: string[] = []
const fail = (what: string) => {
  failures.push(what)
  say(`FAILURE ${what}`)
}

const net = await CliNetwork.start({ validators: VALIDATORS, observer: true, logToFiles: true })
// However this run ends (a harness error too), no node process outlives it.
process.once('exit', () => net.kill())
const names = [...Array.from({ length: VALIDATORS }, (_, i) => `node-${i}`), 'observer']
const live = new Set(names)
const anyLive = () => {
  const up = [...live]
  return up[Math.floor(Math.random() * up.length)] as string
}
say(`${VALIDATORS} validators and an observer in ${net.dir}; ${MINUTES} min, ${SENDERS} senders, seed ${SEED}`)

/** A node's height, or undefined when it does not answer. */
async function heightOf(name: string): Promise<number | undefined> {
  try {
    return ((await net.rpc(name, 'lc_getNetworkInfo')) as { height: number }).height
  } catch {
    return undefined
  }
}

// Senders with funds, so the pool takes their transactions freely.
const senders: KeyPair[] = Array.from({ length: SENDERS }, (_, i) => keyPairFromSecret(sha256(utf8(`chaos sender ${SEED} ${i}`))))
for (const s of senders) await net.transfer(s.address, 1_000_000n)
say(`funded ${SENDERS} senders`)

// The load: each sender sends one transfer at a time to a live node and waits for its receipt.
interface Confirmed {
  hash: string
  height: number
  status: string
}
const confirmed: Confirmed[] = []
let sendErrors = 0
let stopping = false
const genesis = net.genesis()
async function sender(k: KeyPair): Promise<void> {
  let nonce = 0
  while (!stopping) {
    const node = anyLive()
    const tx = testTransfer(genesis.networkId, k, (senders[nonce % senders.length] as KeyPair).address, nonce, 1n)
    const hash = to0x(transactionHash(tx.body))
    try {
      const r = (await net.rpc(node, 'lc_sendTransactionAndWait', { tx: to0x(encode(transactionCodec, tx)), timeoutMs: 20_000 })) as {
        height: number
        status: string
      }
      confirmed.push({ hash, height: r.height, status: r.status })
      nonce++
    } catch {
      // The node died under the request, or the transaction did not commit in time: ask a live
      // node where this sender stands (a pooled copy may still commit; then the nonce moved on).
      sendErrors++
      await sleep(500)
      try {
        nonce = ((await net.rpc(anyLive(), 'lc_getAccount', { address: k.address })) as { nonce: number }).nonce
      } catch {
        // try again with the next round
      }
    }
  }
}
const load = senders.map((k) => sender(k))

/** Validators needed to commit (equal power): more than two thirds. */
const QUORUM = Math.floor((2 * VALIDATORS) / 3) + 1
const quorumUp = () => names.filter((n) => n !== 'observer' && live.has(n)).length >= QUORUM

// Stall watch: the highest height any live node reports must move while a quorum is up.
let top = 0
let topAt = Date.now()
const watch = setInterval(async () => {
  const hs = await Promise.all([...live].map(heightOf))
  const h = Math.max(0, ...hs.filter((x): x is number => x !== undefined))
  if (h > top || !quorumUp()) {
    top = Math.max(top, h)
    topAt = Date.now()
  } else if (Date.now() - topAt > STALL_MS) {
    fail(`no block for ${Math.round((Date.now() - topAt) / 1000)} s at height ${top} with ${[...live].join(', ')} up`)
    topAt = Date.now()
  }
}, 1000)

// The faults: one node at a time, killed and restarted.
const kills = new Map<string, number>()
const freezes = new Map<string, number>()
const catchUp: number[] = []
const end = Date.now() + MINUTES * 60_000
while (Date.now() < end) {
  await sleep(rng.int(5_000, 15_000))
  if (Date.now() >= end) break
  // Mostly one node; one time in five (with --quorum-loss), two validators at once: the chain
  // must stop (no quorum) and go on by itself once they are back.
  const victims = [rng.pick(names)]
  if (QUORUM_LOSS && rng.chance(0.2)) {
    const validators = names.filter((n) => n !== 'observer')
    const first = rng.pick(validators)
    const rest = validators.filter((n) => n !== first)
    victims.splice(0, 1, first, rng.pick(rest))
  }
  const freeze = FREEZE_ONLY || (FREEZE && rng.chance(1 / 3))
  const fault = freeze ? 'SIGSTOP' : 'SIGKILL'
  for (const v of victims) {
    net.signal(v, fault)
    live.delete(v)
    const tally = freeze ? freezes : kills
    tally.set(v, (tally.get(v) ?? 0) + 1)
  }
  const downMs = rng.int(2_000, Math.max(2_000, DOWN_MAX_S * 1000))
  say(
    `${freeze ? 'froze' : 'killed'} ${victims.join(' and ')} (${fault}) at height ${top}; ${freeze ? 'thawing' : 'restarting'} in ${(downMs / 1000).toFixed(1)} s`,
  )
  await sleep(downMs)
  const restartedAt = Date.now()
  const target = top
  for (const v of victims) {
    if (freeze) net.signal(v, 'SIGCONT')
    else net.startNode(v)
  }
  for (const v of victims) {
    try {
      await waitFor(async () => ((await heightOf(v)) ?? -1) >= target || undefined, 120_000, `${v} to catch up`)
      catchUp.push(Date.now() - restartedAt)
      say(`${v} back and at height ${target} after ${((Date.now() - restartedAt) / 1000).toFixed(1)} s`)
    } catch {
      fail(`${v} did not reach height ${target} within 120 s of its ${freeze ? 'thaw' : 'restart'}`)
    }
    live.add(v)
  }
}

stopping = true
await Promise.all(load)
clearInterval(watch)

// Every node up, at one height.
for (const n of names) if (!net.running(n)) net.startNode(n)
let head = 0
try {
  head = await waitFor(
    async () => {
      const hs = await Promise.all(names.map(heightOf))
      return hs.every((h) => h !== undefined && h === hs[0]) ? (hs[0] as number) : undefined
    },
    120_000,
    'every node at one height',
  )
} catch (e) {
  fail(String(e))
}

/**
 * A read from a node under its JSON-RPC rate limit (200 a second per client): a refused or failed
 * read is tried again, up to 5 times with a growing pause; undefined when it never answers.
 */
async function read<T>(n: string, method: string, params: object): Promise<T | undefined> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    try {
      return (await net.rpc(n, method, params)) as T
    } catch {
      await sleep(250 * attempt)
    }
  }
  return undefined
}

// The same block at every height on every node.
let forks = 0
for (let h = 1; h <= head; h++) {
  const hashes = await Promise.all(
    names.map((n) => read<{ hash: string }>(n, 'lc_getBlockByHeight', { height: h, full: false }).then((b) => b?.hash ?? 'unreadable')),
  )
  if (new Set(hashes).size !== 1) {
    forks++
    if (forks <= 5) fail(`height ${h}: the nodes hold different blocks (${hashes.join(', ')})`)
  }
}

// Every confirmed transaction on every node, where its receipt said: 5 reads at a time per node.
let missing = 0
const check = async (c: Confirmed, n: string) => {
  const r = await read<{ height: number; status: string }>(n, 'lc_getTransactionResult', { hash: c.hash })
  if (r === undefined || r.height !== c.height || r.status !== c.status) {
    missing++
    if (missing <= 5) fail(`${n}: confirmed transaction ${c.hash} (height ${c.height}, ${c.status}) reads ${JSON.stringify(r)}`)
  }
}
const reads = confirmed.flatMap((c) => names.map((n) => () => check(c, n)))
for (let i = 0; i < reads.length; i += 5 * names.length) await Promise.all(reads.slice(i, i + 5 * names.length).map((f) => f()))

// No double vote, and what the nodes logged as errors.
let evidence = 0
const errors: string[] = []
for (const n of names) {
  let text = ''
  try {
    text = readFileSync(join(net.dir, `${n}.log`), 'utf8')
  } catch {
    continue
  }
  for (const line of text.split('\n')) {
    if (line.includes('evidence of a faulty validator')) evidence++
    if (line.includes('"level":"error"')) errors.push(`${n}: ${line.slice(0, 300)}`)
  }
}
if (evidence > 0) fail(`${evidence} log lines report evidence of a faulty validator (a double vote)`)
// Every process that ended was killed by this run; one that ended otherwise crashed (or was killed by something else).
for (const e of net.exits.filter((x) => !x.killed)) fail(`${e.name} exited by itself (${e.signal ?? `exit code ${e.code}`})`)

const sorted = [...catchUp].sort((a, b) => a - b)
const killed = [...kills].map(([n, k]) => `${n} ×${k}`).join(', ')
const frozen = [...freezes].map(([n, k]) => `${n} ×${k}`).join(', ')
say(
  `${[...kills.values()].reduce((a, b) => a + b, 0)} kills (${killed || 'none'})${FREEZE ? `, ${[...freezes.values()].reduce((a, b) => a + b, 0)} freezes (${frozen || 'none'})` : ''}; final height ${head}`,
)
say(
  `${confirmed.length} transactions confirmed to clients (${confirmed.filter((c) => c.status !== 'success').length} failed on chain), ${sendErrors} sends cut short by a kill or a timeout`,
)
say(`heights 1..${head} agree on all ${names.length} nodes: ${forks === 0 ? 'yes' : `no (${forks} differ)`}`)
say(`confirmed transactions on every node where their receipt said: ${missing === 0 ? 'yes' : `no (${missing} reads differ)`}`)
if (sorted.length > 0)
  say(
    `catch-up after a restart or thaw: median ${(sorted[Math.floor(sorted.length / 2)] as number) / 1000} s, max ${(sorted.at(-1) as number) / 1000} s`,
  )
say(`error lines in the nodes' logs: ${errors.length}`)
for (const e of errors.slice(0, 10)) say(`  ${e}`)
say(failures.length === 0 ? 'OK' : `FAILED (${failures.length})`)
if (KEEP) say(`kept ${net.dir}`)
else net.stop()
process.exit(failures.length === 0 ? 0 : 1)
