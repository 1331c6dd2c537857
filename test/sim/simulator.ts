/**
 * A deterministic discrete-event simulator for the consensus state machine. One seed fixes
 * everything: validator keys, Byzantine behaviour, message delays, reordering, drops, duplicates,
 * corrupted signatures, partitions that heal, crashes (some in the middle of carrying out a
 * step's outputs) and restarts from the write-ahead log. Time is virtual; nothing reads a clock.
 *
 * Before the global stabilisation time (GST) the network misbehaves; after it, every message
 * between live nodes arrives within 20 ms and every crashed honest node is back. Checkers:
 * - safety: no two honest nodes commit different blocks at one height, and every commit
 *   certificate verifies against the validator set in force at its height;
 * - no double signing: no honest validator ever broadcasts two different votes (or proposals) for
 *   one slot, across restarts; evidence never names an honest validator;
 * - liveness: after GST every honest node commits `heightsAfterGst` new blocks within the window.
 */
import {
  bytesEqual,
  type Consensus,
  type ConsensusMessage,
  type ConsensusOutput,
  type CryptoProvider,
  createConsensus,
  type Decision,
  type KeyPair,
  keyPairFromSecret,
  makeValidatorSet,
  type SignedProposal,
  type SignedVote,
  sha256,
  signProposal,
  signVote,
  type Timeout,
  type TimeoutConfig,
  toHex,
  utf8,
  type ValidatorSet,
  verifyCommit,
  type WalEntry,
  ZERO_HASH,
} from '@loopchain/core'
import { type SimCrypto, simCrypto } from './crypto.js'
import { Prng } from './prng.js'

/**
 * How a Byzantine validator misbehaves: `silent` sends nothing; `mute-leader` votes but never
 * proposes; `equivocate` sends half its peers one vote and the other half a conflicting one;
 * `fork` proposes two blocks at once (one per half) and votes for each to its half; `invalid`
 * proposes blocks the application rejects.
 */
export type ByzantineMode = 'silent' | 'mute-leader' | 'equivocate' | 'fork' | 'invalid'
/** Every Byzantine mode. */
export const BYZANTINE_MODES: readonly ByzantineMode[] = ['silent', 'mute-leader', 'equivocate', 'fork', 'invalid']

/** One simulation run. */
export interface SimOptions {
  readonly seed: number
  /** Validators in the (first) set. */
  readonly validators: number
  /** Byzantine validators, at most f = ⌊(n − 1) / 3⌋. */
  readonly byzantine: number
  readonly crypto?: SimCrypto
  /** Network faults, crashes and partitions before GST (default true). */
  readonly faults?: boolean
  /** Byzantine behaviour per Byzantine validator (default: chosen by the seed). */
  readonly byzantineModes?: readonly ByzantineMode[]
  /** Change the validator set at a height (default: chosen by the seed when faults are on). */
  readonly setChange?: boolean
  readonly heightsAfterGst?: number
  readonly gstMs?: number
  readonly livenessWindowMs?: number
  /** Deliberate breakage of honest nodes, to show the checkers catch it. */
  readonly unsafeTestOnly?: { readonly ignoreLocks?: boolean; readonly halfQuorum?: boolean }
  /** Restart crashed nodes with an empty WAL (deliberate breakage). */
  readonly restartWithoutWal?: boolean
  /** Force crashes of honest nodes (default: chosen by the seed when faults are on). */
  readonly crashes?: number
  /** Receives a line per signed message an honest node sends, for debugging a seed. */
  readonly trace?: (line: string) => void
}

/** What a run found. */
export interface SimResult {
  readonly seed: number
  readonly scenario: string
  readonly safetyViolations: string[]
  readonly livenessFailure: string | undefined
  /** Round at which each height was first committed by an honest node. */
  readonly commitRounds: Map<number, number>
  /** Addresses that signed the first honest commit certificate of each height. */
  readonly commitSigners: Map<number, string[]>
  /** Each node's last committed height, and whether it is Byzantine. */
  readonly nodes: { id: number; address: string; byzantine: boolean; tip: number }[]
  readonly stats: {
    events: number
    deliveries: number
    commits: number
    evidence: number
    rejected: number
    crashes: number
    verifications: number
    finalHeight: number
    virtualMs: number
  }
}

/** Timeouts of simulated validators: a short base, growing per round, so runs stay short. */
export const SIM_TIMEOUTS: TimeoutConfig = {
  proposeMs: 150,
  proposeDeltaMs: 50,
  prevoteMs: 80,
  prevoteDeltaMs: 40,
  precommitMs: 80,
  precommitDeltaMs: 40,
  rebroadcastMs: 300,
  rebroadcastDeltaMs: 100,
}

/** Time from a commit to the next height's start (the application's execution, a minimum interval). */
const BLOCK_INTERVAL_MS = 1
/** Largest delay after GST, in virtual milliseconds. */
const STABLE_DELAY_MS = 20
/** Most decisions sent in answer to one catch-up request. */
const DECISION_BATCH = 32
/** Least time between two catch-up answers to one peer. */
const SERVE_INTERVAL_MS = 50
const NETWORK_ID = 7
/** Height from which the second validator set is in force, in set-change runs. */
export const SET_CHANGE_HEIGHT = 4

const keyCache = new Map<string, KeyPair>()
/** The fixed key of simulated validator `i` under a provider (cached: keys are the same every run). */
function simKey(i: number, crypto: CryptoProvider): KeyPair {
  const id = `${crypto.name}/${i}`
  let k = keyCache.get(id)
  if (!k) {
    k = keyPairFromSecret(sha256(utf8(`loopchain-sim-validator-${i}`)), crypto)
    keyCache.set(id, k)
  }
  return k
}

type Event =
  | { t: number; seq: number; kind: 'deliver'; to: number; from: number; message: ConsensusMessage }
  | { t: number; seq: number; kind: 'timeout'; node: number; incarnation: number; timeout: Timeout }
  | { t: number; seq: number; kind: 'crash'; node: number; afterOutputs: number | undefined }
  | { t: number; seq: number; kind: 'restart'; node: number }
  | { t: number; seq: number; kind: 'sync-request'; to: number; from: number; height: number }
  | { t: number; seq: number; kind: 'next-height'; node: number; incarnation: number; height: number }

type EventInit = Event extends infer E ? (E extends Event ? Omit<E, 'seq'> : never) : never

/** A binary min-heap of events by (time, sequence). */
class EventQueue {
  private readonly heap: Event[] = []
  get size(): number {
    return this.heap.length
  }
  private less(a: Event, b: Event): boolean {
    return a.t < b.t || (a.t === b.t && a.seq < b.seq)
  }
  push(e: Event): void {
    const h = this.heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!this.less(h[i] as Event, h[p] as Event)) break
      ;[h[i], h[p]] = [h[p] as Event, h[i] as Event]
      i = p
    }
  }
  pop(): Event | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.less(h[l] as Event, h[m] as Event)) m = l
        if (r < h.length && this.less(h[r] as Event, h[m] as Event)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m] as Event, h[i] as Event]
        i = m
      }
    }
    return top
  }
}

interface SimNode {
  readonly id: number
  readonly key: KeyPair
  readonly byz: ByzantineMode | undefined
  /** For a Byzantine node: the peers that get its "real" messages; the rest get the other ones. */
  readonly groupA: Set<number>
  machine: Consensus | undefined
  incarnation: number
  readonly wal: WalEntry[]
  readonly chain: Map<number, Decision>
  tip: number
  readonly inbox: Parameters<Consensus['handle']>[0][]
  draining: boolean
  crashAfterOutputs: number | undefined
  commitsAfterGst: number
  readonly lastServed: Map<number, number>
  verificationsBefore: number
}

const blockHashMemo = new WeakMap<Uint8Array, Uint8Array>()
/** The simulated application's block hash: SHA-256, memoised per block object (blocks are shared in-process). */
function hashBlock(block: Uint8Array): Uint8Array {
  let h = blockHashMemo.get(block)
  if (!h) {
    h = sha256(block)
    blockHashMemo.set(block, h)
  }
  return h
}

function hex(b: Uint8Array): string {
  return toHex(b).slice(0, 12)
}

/** Runs one seeded simulation. */
export function runSimulation(opts: SimOptions): SimResult {
  return new Simulation(opts).run()
}

class Simulation {
  private readonly rng: Prng
  private readonly crypto: CryptoProvider
  private readonly queue = new EventQueue()
  private seq = 0
  private now = 0
  private readonly nodes: SimNode[] = []
  private readonly setA: ValidatorSet
  private readonly setB: ValidatorSet | undefined
  private readonly gst: number
  private readonly deadline: number
  private readonly target: number
  private readonly dropP: number
  private readonly dupP: number
  private readonly corruptP: number
  private readonly maxDelay: number
  private readonly partition: { start: number; end: number; side: Set<number> } | undefined
  private readonly byzIds = new Set<number>()
  private readonly decided = new Map<number, { hash: Uint8Array; node: number }>()
  private readonly signedSlots = new Map<string, string>()
  private readonly violations: string[] = []
  private readonly commitRounds = new Map<number, number>()
  private readonly commitSigners = new Map<number, string[]>()
  private readonly forkHashes = new Map<string, Uint8Array>()
  private readonly scenario: string
  private readonly stats: SimResult['stats'] = {
    events: 0,
    deliveries: 0,
    commits: 0,
    evidence: 0,
    rejected: 0,
    crashes: 0,
    verifications: 0,
    finalHeight: 0,
    virtualMs: 0,
  }

  constructor(private readonly opts: SimOptions) {
    const n = opts.validators
    const f = Math.floor((n - 1) / 3)
    if (n < 1 || opts.byzantine < 0 || opts.byzantine > f) {
      throw new RangeError(`${opts.byzantine} Byzantine of ${n} validators: at most ${f} are tolerated`)
    }
    const rng = new Prng(opts.seed)
    this.rng = rng
    this.crypto = simCrypto(opts.crypto ?? 'fake')
    const faults = opts.faults ?? true
    const setChange = opts.setChange ?? (faults && rng.chance(0.25))
    const total = setChange ? n + 1 : n
    // Byzantine validators sit in both sets when the set changes: key 0 leaves, key n joins.
    const eligible = Array.from({ length: n }, (_, i) => i).filter((i) => !setChange || i !== 0)
    const byz = rng.shuffle(eligible).slice(0, opts.byzantine)
    for (const b of byz) this.byzIds.add(b)
    const modes = new Map<number, ByzantineMode>()
    byz.forEach((b, i) => {
      modes.set(b, opts.byzantineModes?.[i % opts.byzantineModes.length] ?? rng.pick(BYZANTINE_MODES))
    })
    for (let i = 0; i < total; i++) {
      const groupA = new Set<number>()
      for (let j = 0; j < total; j++) if (j !== i && rng.chance(0.5)) groupA.add(j)
      this.nodes.push({
        id: i,
        key: simKey(i, this.crypto),
        byz: modes.get(i),
        groupA,
        machine: undefined,
        incarnation: 0,
        wal: [],
        chain: new Map(),
        tip: 0,
        inbox: [],
        draining: false,
        crashAfterOutputs: undefined,
        commitsAfterGst: 0,
        lastServed: new Map(),
        verificationsBefore: 0,
      })
    }
    const v = (i: number, power = 1) => ({
      address: (this.nodes[i] as SimNode).key.address,
      publicKey: (this.nodes[i] as SimNode).key.publicKey,
      power,
    })
    this.setA = makeValidatorSet(Array.from({ length: n }, (_, i) => v(i)))
    this.setB = setChange ? makeValidatorSet(Array.from({ length: n }, (_, i) => v(i + 1, i + 1 === n ? 2 : 1))) : undefined
    this.gst = opts.gstMs ?? (faults ? rng.int(300, 1500) : 0)
    this.deadline = this.gst + (opts.livenessWindowMs ?? 30_000)
    this.target = opts.heightsAfterGst ?? 3
    this.dropP = faults ? rng.float() * 0.3 : 0
    this.dupP = faults ? 0.05 : 0
    this.corruptP = faults ? 0.01 : 0
    this.maxDelay = faults ? rng.int(20, 250) : STABLE_DELAY_MS
    if (faults && rng.chance(0.5)) {
      const start = rng.int(0, this.gst)
      const side = new Set(rng.shuffle(Array.from({ length: total }, (_, i) => i)).slice(0, rng.int(1, total - 1)))
      this.partition = { start, end: rng.int(start, this.gst), side }
    }
    const honest = this.nodes.filter((x) => !x.byz).map((x) => x.id)
    const crashes = opts.crashes ?? (faults ? rng.int(0, Math.min(2, honest.length)) : 0)
    const crashed = rng.shuffle(honest).slice(0, crashes)
    for (const c of crashed) {
      const at = rng.int(0, Math.max(0, this.gst - 100))
      const back = opts.crashes !== undefined && !faults ? at + rng.int(100, 600) : rng.int(at + 20, Math.max(at + 20, this.gst))
      this.push({ kind: 'crash', node: c, afterOutputs: rng.chance(0.5) ? rng.int(0, 3) : undefined, t: at })
      this.push({ kind: 'restart', node: c, t: back })
    }
    this.scenario =
      `seed=${opts.seed} n=${n} byzantine=${byz.map((b) => `${b}:${modes.get(b)}`).join(',') || 'none'} crypto=${this.crypto.name} ` +
      `gst=${this.gst} drop=${this.dropP.toFixed(2)} maxDelay=${this.maxDelay} setChange=${setChange} crashes=${crashed.join(',') || 'none'} ` +
      `partition=${this.partition ? `${this.partition.start}-${this.partition.end}:[${[...this.partition.side].join(',')}]` : 'none'}`
  }

  private push(e: EventInit): void {
    this.queue.push({ ...e, seq: this.seq++ } as Event)
  }

  private setFor(height: number): ValidatorSet {
    return this.setB && height >= SET_CHANGE_HEIGHT ? this.setB : this.setA
  }

  private startMachine(node: SimNode): void {
    const honest = !node.byz
    node.machine = createConsensus(
      {
        networkId: NETWORK_ID,
        signer: { address: node.key.address, secretKey: node.key.secretKey },
        crypto: this.crypto,
        hashBlock,
        timeouts: SIM_TIMEOUTS,
        ...(honest && this.opts.unsafeTestOnly ? { unsafeTestOnly: this.opts.unsafeTestOnly } : {}),
      },
      this.opts.restartWithoutWal ? [] : node.wal,
    )
    node.incarnation++
    this.feed(node, { type: 'start-height', height: node.tip + 1, validators: this.setFor(node.tip + 1) })
  }

  run(): SimResult {
    for (const node of this.nodes) this.startMachine(node)
    let done = false
    for (;;) {
      const e = this.queue.pop()
      if (!e || e.t > this.deadline) break
      this.now = e.t
      this.stats.events++
      this.dispatch(e)
      if (e.t >= this.gst && this.livenessReached()) {
        done = true
        break
      }
    }
    for (const n of this.nodes) {
      if (n.machine) this.stats.verifications += n.machine.status().verifications
      this.stats.finalHeight = Math.max(this.stats.finalHeight, n.tip)
    }
    this.stats.virtualMs = this.now
    let livenessFailure: string | undefined
    if (!done) {
      const lag = this.nodes
        .filter((n) => !n.byz)
        .map((n) => {
          const s = n.machine?.status()
          return `node ${n.id}: tip ${n.tip}, +${n.commitsAfterGst} after GST, ${s ? `h${s.height} r${s.round} ${s.step} lock ${s.lockedRound} valid ${s.validRound}` : 'down'}`
        })
      livenessFailure = `no progress to ${this.target} heights after GST by ${this.deadline} ms: ${lag.join('; ')}`
    }
    return {
      seed: this.opts.seed,
      scenario: this.scenario,
      safetyViolations: this.violations,
      livenessFailure,
      commitRounds: this.commitRounds,
      commitSigners: this.commitSigners,
      nodes: this.nodes.map((x) => ({ id: x.id, address: x.key.address, byzantine: x.byz !== undefined, tip: x.tip })),
      stats: this.stats,
    }
  }

  private livenessReached(): boolean {
    for (const n of this.nodes) if (!n.byz && n.commitsAfterGst < this.target) return false
    return true
  }

  private dispatch(e: Event): void {
    switch (e.kind) {
      case 'deliver': {
        const node = this.nodes[e.to] as SimNode
        this.stats.deliveries++
        this.feed(node, { type: 'message', message: e.message, from: String(e.from) })
        break
      }
      case 'timeout': {
        const node = this.nodes[e.node] as SimNode
        if (node.incarnation === e.incarnation) this.feed(node, { type: 'timeout', timeout: e.timeout })
        break
      }
      case 'crash': {
        const node = this.nodes[e.node] as SimNode
        if (e.afterOutputs === undefined) this.crash(node)
        else node.crashAfterOutputs = e.afterOutputs
        break
      }
      case 'restart': {
        const node = this.nodes[e.node] as SimNode
        node.crashAfterOutputs = undefined
        if (!node.machine) this.startMachine(node)
        break
      }
      case 'next-height': {
        const node = this.nodes[e.node] as SimNode
        if (node.incarnation === e.incarnation)
          this.feed(node, { type: 'start-height', height: e.height, validators: this.setFor(e.height) })
        break
      }
      case 'sync-request': {
        const node = this.nodes[e.to] as SimNode
        if (node.machine) this.serve(node, e.from, e.height)
        break
      }
    }
  }

  private crash(node: SimNode): void {
    if (!node.machine) return
    this.stats.crashes++
    this.stats.verifications += node.machine.status().verifications
    node.machine = undefined
    node.inbox.length = 0
    node.crashAfterOutputs = undefined
    node.incarnation++
  }

  private feed(node: SimNode, input: Parameters<Consensus['handle']>[0]): void {
    if (!node.machine) return
    node.inbox.push(input)
    if (node.draining) return
    node.draining = true
    while (node.inbox.length > 0 && node.machine) {
      const next = node.inbox.shift() as Parameters<Consensus['handle']>[0]
      this.carry(node, node.machine.handle(next))
    }
    node.draining = false
  }

  /** Carries out a step's outputs in order, as a driver must (WAL writes before what follows them). */
  private carry(node: SimNode, outs: ConsensusOutput[]): void {
    for (let k = 0; k < outs.length; k++) {
      if (node.crashAfterOutputs !== undefined) {
        if (node.crashAfterOutputs === 0) {
          this.crash(node)
          return
        }
        node.crashAfterOutputs--
      }
      const o = outs[k] as ConsensusOutput
      switch (o.type) {
        case 'wal-write':
          node.wal.push(o.entry)
          break
        case 'broadcast':
          this.broadcast(node, o.message)
          break
        case 'schedule-timeout':
          this.push({ kind: 'timeout', node: node.id, incarnation: node.incarnation, timeout: o.timeout, t: this.now + o.delayMs })
          break
        case 'request-block': {
          const block = utf8(`block h${o.height} r${o.round} by ${node.id}`)
          node.inbox.push({ type: 'block', height: o.height, round: o.round, block })
          break
        }
        case 'validate-block':
          node.inbox.push({ type: 'block-validity', height: o.height, blockHash: o.blockHash, valid: o.block[0] !== 0xff })
          break
        case 'commit':
          this.onCommit(node, o)
          // The application executes the block, then starts the next height (1 ms later: a minimum block interval).
          this.push({
            kind: 'next-height',
            node: node.id,
            incarnation: node.incarnation,
            height: o.height + 1,
            t: this.now + BLOCK_INTERVAL_MS,
          })
          break
        case 'evidence': {
          this.stats.evidence++
          const who = o.evidence.kind === 'conflicting-votes' ? o.evidence.first.vote.validator : o.evidence.first.proposal.proposer
          const culprit = this.nodes.find((x) => x.key.address === who)
          if (culprit && !culprit.byz)
            this.violations.push(`evidence against honest node ${culprit.id} at ${this.now} ms (${this.scenario})`)
          break
        }
        case 'peer-behind':
          if (o.from !== undefined) this.serve(node, Number(o.from), o.height)
          break
        case 'sync-needed':
          if (o.from !== undefined) this.send(node.id, Number(o.from), undefined, o.height)
          break
        case 'rejected':
          this.stats.rejected++
          break
      }
    }
  }

  private onCommit(node: SimNode, o: Extract<ConsensusOutput, { type: 'commit' }>): void {
    node.chain.set(o.height, { block: o.block, commit: o.commit })
    node.tip = o.height
    if (node.byz) return
    this.stats.commits++
    if (this.now >= this.gst) node.commitsAfterGst++
    if (!bytesEqual(sha256(o.block), o.blockHash))
      this.violations.push(`node ${node.id} committed bytes that do not hash to the block at height ${o.height}`)
    // Every certificate is checked with real signatures; with fake ones, the first per height suffices.
    const prior = this.decided.get(o.height)
    if (this.crypto.name !== 'fake' || !prior)
      try {
        verifyCommit(o.commit, { networkId: NETWORK_ID, height: o.height, blockHash: o.blockHash }, this.setFor(o.height), this.crypto)
      } catch (e) {
        this.violations.push(`node ${node.id}: commit certificate at height ${o.height} does not verify: ${(e as Error).message}`)
      }
    if (!prior) {
      this.decided.set(o.height, { hash: o.blockHash, node: node.id })
      this.commitRounds.set(o.height, o.round)
      const set = this.setFor(o.height)
      this.commitSigners.set(
        o.height,
        o.commit.signatures.map((x) => set.validators[x.index]?.address ?? '?'),
      )
    } else if (!bytesEqual(prior.hash, o.blockHash)) {
      this.violations.push(
        `height ${o.height}: node ${prior.node} committed ${hex(prior.hash)}, node ${node.id} committed ${hex(o.blockHash)} (${this.scenario})`,
      )
    }
  }

  /** Sends decisions from `height` on to `to`, at most once per interval per peer. */
  private serve(node: SimNode, to: number, height: number): void {
    const last = node.lastServed.get(to)
    if (last !== undefined && this.now - last < SERVE_INTERVAL_MS) return
    node.lastServed.set(to, this.now)
    for (let h = height; h <= Math.min(node.tip, height + DECISION_BATCH - 1); h++) {
      const d = node.chain.get(h)
      if (d) this.send(node.id, to, { kind: 'decision', decision: d })
    }
  }

  private recordSigned(node: SimNode, m: ConsensusMessage): void {
    if (node.byz) return
    let slot: string
    let what: string
    if (m.kind === 'vote') {
      const v = m.vote.vote
      if (v.validator !== node.key.address) return
      slot = `vote ${v.validator} h${v.height} r${v.round} t${v.type}`
      what = toHex(v.blockHash)
    } else if (m.kind === 'proposal') {
      const p = m.proposal.proposal
      if (p.proposer !== node.key.address) return
      slot = `proposal ${p.proposer} h${p.height} r${p.round}`
      what = `${toHex(p.blockHash)}/${p.validRound}`
    } else return
    const prior = this.signedSlots.get(slot)
    if (prior === undefined) this.signedSlots.set(slot, what)
    else if (prior !== what) this.violations.push(`honest node ${node.id} double-signed: ${slot} (${this.scenario})`)
  }

  private broadcast(node: SimNode, m: ConsensusMessage): void {
    this.recordSigned(node, m)
    if (this.opts.trace && !node.byz) {
      if (m.kind === 'vote' && m.vote.vote.validator === node.key.address) {
        const v = m.vote.vote
        this.opts.trace(`${this.now} n${node.id} ${v.type === 1 ? 'prevote' : 'precommit'} h${v.height} r${v.round} ${hex(v.blockHash)}`)
      } else if (m.kind === 'proposal' && m.proposal.proposal.proposer === node.key.address) {
        const p = m.proposal.proposal
        this.opts.trace(`${this.now} n${node.id} propose h${p.height} r${p.round} ${hex(p.blockHash)} vr${p.validRound}`)
      }
    }
    const others = this.nodes.filter((x) => x.id !== node.id)
    if (!node.byz) {
      for (const o of others) this.send(node.id, o.id, m)
      return
    }
    if (node.byz === 'silent' || (node.byz === 'mute-leader' && m.kind === 'proposal')) return
    if (node.byz === 'invalid' && m.kind === 'proposal') {
      const bad = this.resignProposal(node, m.proposal, new Uint8Array([0xff, ...m.proposal.block]))
      for (const o of others) this.send(node.id, o.id, { kind: 'proposal', proposal: bad })
      return
    }
    const alt = this.byzantineTwin(node, m)
    for (const o of others) this.send(node.id, o.id, node.groupA.has(o.id) || !alt ? m : alt)
  }

  /** The conflicting message a Byzantine node sends to its second group, if any. */
  private byzantineTwin(node: SimNode, m: ConsensusMessage): ConsensusMessage | undefined {
    if (node.byz === 'invalid' || node.byz === 'mute-leader') return undefined
    if (m.kind === 'proposal') {
      if (node.byz !== 'fork') return undefined
      const p = m.proposal.proposal
      const twin = this.resignProposal(node, m.proposal, new Uint8Array([...m.proposal.block, 0x01]))
      this.forkHashes.set(`${p.height}/${p.round}/${toHex(p.blockHash)}`, twin.proposal.blockHash)
      return { kind: 'proposal', proposal: twin }
    }
    if (m.kind !== 'vote') return undefined
    const v = m.vote.vote
    const forked = this.forkHashes.get(`${v.height}/${v.round}/${toHex(v.blockHash)}`)
    const blockHash = forked ?? (bytesEqual(v.blockHash, ZERO_HASH) ? sha256(utf8(`phantom ${v.height} ${v.round} ${v.type}`)) : ZERO_HASH)
    const twin: SignedVote = signVote({ ...v, blockHash }, node.key.secretKey, this.crypto)
    return { kind: 'vote', vote: twin }
  }

  private resignProposal(node: SimNode, sp: SignedProposal, block: Uint8Array): SignedProposal {
    return signProposal({ ...sp.proposal, blockHash: sha256(block) }, block, node.key.secretKey, this.crypto)
  }

  private connected(a: number, b: number): boolean {
    const p = this.partition
    if (!p || this.now < p.start || this.now >= p.end) return true
    return p.side.has(a) === p.side.has(b)
  }

  /** Sends a message (or, with `syncHeight`, a catch-up request) through the faulty network. */
  private send(from: number, to: number, m: ConsensusMessage | undefined, syncHeight?: number): void {
    if (!this.connected(from, to)) return
    const unstable = this.now < this.gst
    if (unstable && this.rng.chance(this.dropP)) return
    const copies = this.rng.chance(this.dupP) ? 2 : 1
    for (let c = 0; c < copies; c++) {
      const t = this.now + this.rng.int(1, unstable ? this.maxDelay : STABLE_DELAY_MS)
      if (m === undefined) {
        this.push({ kind: 'sync-request', to, from, height: syncHeight ?? 0, t })
        continue
      }
      const message = unstable && this.rng.chance(this.corruptP) ? corrupt(m) : m
      this.push({ kind: 'deliver', to, from, message, t })
    }
  }
}

/** A copy of `m` with one signature bit flipped: it must be rejected. */
function corrupt(m: ConsensusMessage): ConsensusMessage {
  const flip = (sig: Uint8Array) => {
    const s = sig.slice()
    s[5] = (s[5] as number) ^ 0x10
    return s
  }
  if (m.kind === 'vote') return { kind: 'vote', vote: { vote: m.vote.vote, signature: flip(m.vote.signature) } }
  if (m.kind === 'proposal') return { kind: 'proposal', proposal: { ...m.proposal, signature: flip(m.proposal.signature) } }
  const sigs = m.decision.commit.signatures
  if (sigs.length === 0) return m
  const [first, ...rest] = sigs
  return {
    kind: 'decision',
    decision: {
      block: m.decision.block,
      commit: { ...m.decision.commit, signatures: [{ index: first!.index, signature: flip(first!.signature) }, ...rest] },
    },
  }
}

/** Aggregate of many runs. */
export interface SimSummary {
  runs: number
  safetyViolations: number
  livenessFailures: number
  failures: SimResult[]
  totals: { commits: number; evidence: number; rejected: number; crashes: number; events: number }
}

/** Runs `runs` seeds from `seed` with the same shape. */
export function runMany(base: Omit<SimOptions, 'seed'>, seed: number, runs: number, onResult?: (r: SimResult) => void): SimSummary {
  const summary: SimSummary = {
    runs,
    safetyViolations: 0,
    livenessFailures: 0,
    failures: [],
    totals: { commits: 0, evidence: 0, rejected: 0, crashes: 0, events: 0 },
  }
  for (let i = 0; i < runs; i++) {
    const r = runSimulation({ ...base, seed: seed + i })
    if (r.safetyViolations.length > 0) summary.safetyViolations++
    if (r.livenessFailure) summary.livenessFailures++
    if (r.safetyViolations.length > 0 || r.livenessFailure) summary.failures.push(r)
    summary.totals.commits += r.stats.commits
    summary.totals.evidence += r.stats.evidence
    summary.totals.rejected += r.stats.rejected
    summary.totals.crashes += r.stats.crashes
    summary.totals.events += r.stats.events
    onResult?.(r)
  }
  return summary
}
