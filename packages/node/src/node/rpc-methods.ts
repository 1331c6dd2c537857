/**
 * The node's JSON-RPC methods (prefix `lc_`). Each declares its parameters, so `rpc.discover`
 * documents exactly what the server checks. Errors: a refused transaction is `-32000` with the
 * refusal's code in `data.code`; anything absent is `-32001`; a wait that ran out is `-32002`; a
 * failed SCORE query is `-32010` with the SCORE failure code.
 */
import {
  type Address,
  blockHash,
  certificateFileToJson,
  concatBytes,
  encode,
  fromHex,
  genesisHash,
  getAccount,
  getScoreAbi,
  getScoreApi,
  isAddress,
  LoopchainError,
  logMatches,
  queryScore,
  type StateSource,
  stateProofCodec,
  statusEvidenceToJson,
  to0x,
  toHex,
} from '@loopchain/core'
import type { NodeHost } from '../p2p/host.js'
import { KeyedBuckets } from '../rpc/buckets.js'
import { type Json, RpcError, RpcErrorCode, type RpcMethod } from '../rpc/json-rpc.js'
import { certificateFileOf, certificateStatusOf, genesisResult } from './certificates.js'
import type { CommittedBlock, ConsensusProgress, FullNode } from './full-node.js'
import { blockToJson, headerToJson, paramsFromJson, receiptToJson, transactionToJson, valueToJson } from './json.js'
import { memberPeerIds } from './p2p-network.js'

const HEX = '^0x([0-9a-fA-F]{2})*$'
const NONEMPTY_HEX = '^0x([0-9a-fA-F]{2})+$'
const HASH = '^0x[0-9a-fA-F]{64}$'
const ADDRESS = '^(hx|cx)[0-9a-f]{40}$'
/** A hex-encoded transaction of the largest size, with room. */
const MAX_TX_HEX = 2 * 600 * 1024
/**
 * Subscriptions one WebSocket connection may hold, one client (an IPv4 address or an IPv6 /64, over
 * all its connections), and all together: sixteen clients fill a node, not four.
 */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 64
export const MAX_SUBSCRIPTIONS_PER_CLIENT = 256
export const MAX_SUBSCRIPTIONS = 4096

/** Steps one read-only call (`lc_call`) may use, unless the node is told otherwise. */
export const DEFAULT_QUERY_STEP_LIMIT = 5_000_000
/** Steps of read-only calls a node runs per second, all clients together, unless told otherwise. */
export const DEFAULT_QUERY_STEPS_PER_SECOND = 2_000_000

/** Limits of the node's JSON-RPC methods. */
export interface NodeRpcOptions {
  /** Steps one `lc_call` may use (default {@link DEFAULT_QUERY_STEP_LIMIT}). */
  readonly queryStepLimit?: number
  /** Steps of `lc_call`s run per second, all clients together (default {@link DEFAULT_QUERY_STEPS_PER_SECOND}). */
  readonly queryStepsPerSecond?: number
  /** Steps of `lc_call`s run per second for one client address (default {@link QUERY_CLIENT_SHARE} of the above). */
  readonly queryStepsPerSecondPerClient?: number
  /** The clock of that budget in ms, monotonic (tests pass their own). */
  readonly now?: () => number
}

/**
 * Values (each array, object, and item or field of one) the parameters of one read-only call may
 * hold: typing them by the SCORE's ABI took ~1.1–2.7 µs a value here, unmetered by the engine.
 */
export const MAX_QUERY_PARAM_VALUES = 16_384
/** Steps a read-only call is charged per value of its parameters, for typing them (~1.5 µs, ~30–45 steps). */
export const QUERY_PARAM_VALUE_STEPS = 50

/** The values of `j` (itself, and every item and field within), counted up to `max + 1` at most. */
function countJsonValues(j: Json | undefined, max: number): number {
  if (j === undefined) return 0
  let n = 0
  const stack: Json[] = [j]
  while (stack.length > 0 && n <= max) {
    const v = stack.pop() as Json
    n++
    if (Array.isArray(v)) for (const x of v) stack.push(x)
    else if (v !== null && typeof v === 'object') for (const k in v) stack.push(v[k] as Json)
  }
  return n
}

/** Read-only calls that may wait for their turn; more are refused at once. */
export const MAX_QUEUED_QUERIES = 1024
/** Read-only calls of one client address that may wait for their turn: a whole batch (100) fits. */
export const MAX_QUEUED_QUERIES_PER_CLIENT = 128
/**
 * Steps every read-only call is charged on top of what it ran, like a transaction's base cost: it
 * reads its SCORE's record and code and types its parameters first, also when that fails.
 */
export const QUERY_BASE_STEPS = 1_000
/**
 * State loads one read-only call may wait for. A call starts once no block is being executed or
 * stored, and its reads are answered on the spot. Where they cannot be (a store without
 * synchronous reads, or a block written while the call read its SCORE's ABI), a read no cache
 * holds must be waited for, and the call runs again from the start after each.
 */
export const MAX_QUERY_STATE_LOADS = 16

/** The share of the node's read-only-call steps a second one client address may use, unless told otherwise. */
export const QUERY_CLIENT_SHARE = 1 / 4

/**
 * What read-only calls may take of the node's main thread: the same thread runs consensus, and a
 * call is not cut short by time. Measured on this project's machine, a step costs ~35–55 ns, in
 * computation and in storage reads alike (a step is counted per loop turn, call and host call, so
 * work inside one built-in is not bounded by it), so the default 2,000,000 steps a second is on
 * average at most ~0.1 s of every second, and one call of 5,000,000 steps ~0.25 s.
 *
 * Calls run one at a time, in arrival order, with a turn of the event loop between them (consensus
 * messages and timers run there), so one call is the longest the thread is held. A call starts
 * while both the node's budget and its client's share are above zero, and both are charged what it
 * used afterwards (runs it had to start again, see {@link MAX_QUERY_STATE_LOADS}, at their whole
 * limit); a budget may so go below zero and the next calls wait for it to refill. The node's holds
 * two calls' limits, so a burst after a quiet time is two long calls. A client address refills at
 * `perClient` steps a second (by default {@link QUERY_CLIENT_SHARE} of the node's rate) and holds
 * one call's limit, so one client cannot spend the budget for everyone: by default it takes four
 * busy clients to. A client over its share is refused before it takes a place in the queue, and at
 * most {@link MAX_QUEUED_QUERIES_PER_CLIENT} of its calls wait. A refused caller learns when to
 * try again.
 */
export class QueryBudget {
  private readonly node: KeyedBuckets
  private readonly clients: KeyedBuckets
  private tail: Promise<void> = Promise.resolve()
  private queued = 0
  /** Calls waiting, by client address. */
  private readonly queuedBy = new Map<string, number>()
  constructor(
    readonly stepLimit: number,
    readonly perSecond: number,
    now: () => number,
    perClient = perSecond * QUERY_CLIENT_SHARE,
  ) {
    if (!(Number.isSafeInteger(stepLimit) && stepLimit > 0)) throw new RangeError('the query step limit must be a positive integer')
    if (!(Number.isFinite(perSecond) && perSecond > 0)) throw new RangeError('the query steps per second must be a positive number')
    if (!(Number.isFinite(perClient) && perClient > 0))
      throw new RangeError('the query steps per second per client must be a positive number')
    this.node = new KeyedBuckets(perSecond, 2 * stepLimit, now, 1)
    this.clients = new KeyedBuckets(perClient, stepLimit, now)
  }

  /**
   * Runs `call` for `client` in its turn within the budget and returns what it returns; `call`
   * reports the steps to charge through its argument (a call that reports nothing is charged the
   * whole limit). Throws a rate-limit error (`QUERY_BUDGET` with `retryAfterMs`, or `QUERY_BUSY`
   * when too many calls wait) instead of running it.
   */
  async run<T>(client: string, call: (charge: (steps: number) => void) => Promise<T>): Promise<T> {
    if (this.queued >= MAX_QUEUED_QUERIES)
      throw new RpcError(RpcErrorCode.RateLimited, `${MAX_QUEUED_QUERIES} read-only calls are waiting on this node; retry later`, {
        code: 'QUERY_BUSY',
      })
    // A client over its share, or with many calls waiting, is refused before it takes a place.
    this.checkShare(client)
    const mine = this.queuedBy.get(client) ?? 0
    if (mine >= MAX_QUEUED_QUERIES_PER_CLIENT)
      throw new RpcError(
        RpcErrorCode.RateLimited,
        `${MAX_QUEUED_QUERIES_PER_CLIENT} of your read-only calls are waiting on this node; retry later`,
        { code: 'QUERY_BUSY' },
      )
    this.queued++
    this.queuedBy.set(client, mine + 1)
    let release = () => {}
    const done = new Promise<void>((r) => {
      release = r
    })
    const before = this.tail
    this.tail = before.then(() => done)
    try {
      await before
      await new Promise<void>((r) => setImmediate(r))
    } finally {
      this.queued--
      const left = (this.queuedBy.get(client) ?? 1) - 1
      if (left > 0) this.queuedBy.set(client, left)
      else this.queuedBy.delete(client)
    }
    try {
      if (!(this.node.level('') > 0)) {
        const retryAfterMs = this.node.msUntilPositive('')
        throw new RpcError(
          RpcErrorCode.RateLimited,
          `read-only calls have used this node's budget (${this.perSecond} steps a second, all clients together); retry in ${retryAfterMs} ms`,
          { code: 'QUERY_BUDGET', retryAfterMs },
        )
      }
      this.checkShare(client)
      let charged: number | undefined
      try {
        return await call((steps) => {
          charged = (charged ?? 0) + (Number.isFinite(steps) && steps > 0 ? steps : 0)
        })
      } finally {
        this.node.spend('', charged ?? this.stepLimit)
        this.clients.spend(client, charged ?? this.stepLimit)
      }
    } finally {
      release()
    }
  }

  /** Refuses `client` when it has used its share (its calls wait for it to refill). */
  private checkShare(client: string): void {
    if (this.clients.level(client) > 0) return
    const retryAfterMs = this.clients.msUntilPositive(client)
    throw new RpcError(
      RpcErrorCode.RateLimited,
      `your read-only calls have used your share of this node's budget (${this.clients.perSecond} steps a second); retry in ${retryAfterMs} ms`,
      { code: 'QUERY_BUDGET', retryAfterMs },
    )
  }
}

/** `state` read without waiting wherever it can be (see `StateSource.tryGetSync`), else as `get` reads. */
function onTheSpot(state: StateSource): StateSource {
  const sync = state.tryGetSync
  if (sync === undefined) return state
  return {
    get: (key) => {
      const v = sync(key)
      return v === undefined ? state.get(key) : Promise.resolve(v ?? undefined)
    },
    tryGetSync: sync,
  }
}

function notFound(what: string): RpcError {
  return new RpcError(RpcErrorCode.NotFound, `${what} not found`)
}

/**
 * A transaction this node's full pool evicted (its sender held the most there): not found, with
 * `data.code` EVICTED. It may still be in a block, from another node's pool; sending it again is
 * safe either way (a nonce is used once).
 */
function evictedError(hash: string): RpcError {
  return new RpcError(
    RpcErrorCode.NotFound,
    `transaction ${hash} not found: this node's full mempool evicted it to make room for another sender's (its sender had the most waiting); send it again`,
    { code: 'EVICTED', hash },
  )
}

/**
 * Block sync as `lc_getNetworkInfo` shows it: this node's height, the highest a peer reported, and
 * while behind, the rate of the sync under way and the seconds left at that rate (null until a
 * first batch of blocks is in). A node that has not asked a peer yet (just started) reads as
 * syncing, with its own height as the target.
 */
export function syncProgress(node: Pick<FullNode, 'height' | 'syncTarget' | 'syncRate' | 'syncChecked'>): Json {
  const target = Math.max(node.syncTarget, node.height)
  const syncing = target > node.height || !node.syncChecked
  const rate = syncing ? node.syncRate : 0
  return {
    height: node.height,
    target,
    syncing,
    blocksPerSecond: rate,
    secondsLeft: syncing && rate > 0 ? Math.ceil((target - node.height) / rate) : null,
  }
}

/** The height in progress as `lc_getNetworkInfo` shows it ({@link FullNode.consensusProgress}, in seconds); null while idle. */
export function consensusProgressJson(p: ConsensusProgress | undefined): Json {
  if (p === undefined) return null
  return {
    height: p.height,
    round: p.round,
    step: p.step,
    seconds: Math.floor(p.ms / 1000),
    stalled: p.stalled,
    heard: [...p.heard],
    silent: [...p.silent],
    silentMembers: [...p.silentMembers],
    ...(p.notConnected ? { notConnected: [...p.notConnected], notConnectedMembers: [...(p.notConnectedMembers ?? [])] } : {}),
    powerHeard: p.powerHeard,
    totalPower: p.totalPower,
  }
}

async function receiptOf(node: FullNode, hashHex: string): Promise<Json | undefined> {
  const hash = fromHex(hashHex)
  const at = await node.chain.locate(hash)
  if (!at) return undefined
  const [receipts, block] = await Promise.all([node.chain.receiptsAt(at.height), node.chain.blockAt(at.height)])
  const r = receipts?.[at.index]
  if (!r || !block) return undefined
  return receiptToJson(r, { ...at, blockHash: blockHash(block.header) })
}

/** What `lc_getPeers` and `lc_getNetworkInfo` read from the node's libp2p host. */
export type PeerSource = Pick<NodeHost, 'peerId' | 'connections' | 'peerScore' | 'bannedPeers' | 'relay'>

// JSON has no infinities; gossipsub scores are finite in practice, but a status page must not break.
const finite = (x: number): number | null => (Number.isFinite(x) ? Math.round(x * 1000) / 1000 : null)

/** The JSON-RPC methods of a full node; with `peers`, also `lc_getPeers`. */
export function nodeRpcMethods(node: FullNode, peers?: PeerSource, opts: NodeRpcOptions = {}): RpcMethod[] {
  const g = node.options.genesis
  const queries = new QueryBudget(
    opts.queryStepLimit ?? DEFAULT_QUERY_STEP_LIMIT,
    opts.queryStepsPerSecond ?? DEFAULT_QUERY_STEPS_PER_SECOND,
    opts.now ?? (() => performance.now()),
    opts.queryStepsPerSecondPerClient,
  )
  /** Clients waiting for a transaction (hash hex without 0x), told when it commits or leaves the pool unused. */
  const waiters = new Map<string, Set<(why: 'committed' | 'evicted') => void>>()
  /** Subscriptions open on this node (each is a block listener that runs in the commit path). */
  let subscriptions = 0
  /** Open subscriptions per client address. */
  const byClient = new Map<string, number>()
  node.onBlock((b) => {
    for (const r of b.receipts) {
      const set = waiters.get(toHex(r.txHash))
      if (set) for (const f of set) f('committed')
    }
  })
  node.onEvicted((hash) => {
    const set = waiters.get(hash)
    if (set) for (const f of set) f('evicted')
  })

  const submit = async (txHex: string): Promise<string> => {
    try {
      return `0x${await node.submit(fromHex(txHex))}`
    } catch (e) {
      if (e instanceof LoopchainError) {
        const next = e.details.next
        throw new RpcError(RpcErrorCode.TransactionRejected, e.message, { code: e.code, ...(typeof next === 'number' ? { next } : {}) })
      }
      throw e
    }
  }

  return [
    {
      name: 'lc_sendTransaction',
      summary:
        "Checks a signed transaction (hex of its canonical encoding) and pools it; returns its hash. Every refusal is -32000 with data.code. The transaction's own checks: MALFORMED, TOO_LARGE, UNSUPPORTED_VERSION, WRONG_NETWORK, SENDER_NOT_ACCOUNT, SENDER_MISMATCH, BAD_SIGNATURE, TIMESTAMP_TOO_OLD, TIMESTAMP_IN_FUTURE, BAD_STEP_LIMIT, BAD_DATA; STOPPED while the node stops. The pool's: DUPLICATE (this very transaction is pooled), NONCE_POOLED (another of the sender's with this nonce is), NONCE_TOO_LOW or NONCE_TOO_FAR (data.next: the sender's next nonce on chain), NOT_PERMITTED, SENDER_LIMIT or POOL_FULL (the pool is full and cannot make room for this sender: room is taken only from the sender holding the most, while it keeps at least as many as this sender will have, and never for an account without funds; or the node's queue of transactions to check is full). A full pool otherwise evicts the last transactions of the sender holding the most; that sender's later nonces then get NONCE_TOO_FAR with data.next the first evicted nonce until it is sent again.",
      params: [{ name: 'tx', schema: { type: 'string', pattern: HEX, maxLength: MAX_TX_HEX }, required: true }],
      result: { name: 'hash', schema: { type: 'string', pattern: HASH } },
      handler: (p) => submit(p.tx as string),
    },
    {
      name: 'lc_sendTransactionAndWait',
      summary:
        "Like lc_sendTransaction, then waits until the transaction is committed and returns its receipt. Ends with -32002 at the timeout (default 15,000 ms), or with -32001 and data.code EVICTED if this node's full pool evicts it first (send it again).",
      params: [
        { name: 'tx', schema: { type: 'string', pattern: HEX, maxLength: MAX_TX_HEX }, required: true },
        { name: 'timeoutMs', schema: { type: 'integer', minimum: 1, maximum: 120_000 } },
      ],
      result: { name: 'receipt', schema: { type: 'object' } },
      handler: async (p, ctx) => {
        const hash = await submit(p.tx as string)
        const id = hash.slice(2)
        // Ends at the commit, at the timeout, or when the client goes away; its timer never outlives it.
        type Why = 'committed' | 'evicted' | 'timeout' | 'closed'
        let end: (why: Why) => void = () => undefined
        const outcome = new Promise<Why>((resolve) => {
          end = resolve
        })
        const committed = (why: 'committed' | 'evicted') => end(why)
        const set = waiters.get(id) ?? new Set()
        set.add(committed)
        waiters.set(id, set)
        const timer = setTimeout(() => end('timeout'), (p.timeoutMs as number | undefined) ?? 15_000)
        const forget = ctx.onClose?.(() => end('closed'))
        try {
          // A block may have committed it between the submit and the waiter above.
          const early = await receiptOf(node, hash)
          if (early !== undefined) return early
          // Or evicted already: the pool checks a batch of arrivals at once, and a later one may
          // have taken this one's place before the waiter above was set.
          if (!node.mempool.has(id) && node.mempool.wasEvicted(id)) throw evictedError(hash)
          const why = await outcome
          const receipt = await receiptOf(node, hash)
          if (receipt !== undefined) return receipt
          if (why === 'closed') return null // nobody reads it
          if (why === 'evicted') throw evictedError(hash)
          throw new RpcError(RpcErrorCode.Timeout, `transaction ${hash} was not committed in time`, { hash })
        } finally {
          clearTimeout(timer)
          forget?.()
          set.delete(committed)
          if (set.size === 0 && waiters.get(id) === set) waiters.delete(id)
        }
      },
    },
    {
      name: 'lc_getTransactionResult',
      summary:
        "The receipt of a committed transaction. Not found is -32001; for one of the last 4,096 this node's full pool evicted since it started (and no block holds), data.code is EVICTED: send it again.",
      params: [{ name: 'hash', schema: { type: 'string', pattern: HASH }, required: true }],
      result: { name: 'receipt', schema: { type: 'object' } },
      handler: async (p) => {
        const r = await receiptOf(node, p.hash as string)
        if (r !== undefined) return r
        const id = (p.hash as string).slice(2).toLowerCase()
        if (node.mempool.has(id)) throw notFound('receipt (pending in the mempool)')
        if (node.mempool.wasEvicted(id)) throw evictedError(p.hash as string)
        throw notFound('transaction')
      },
    },
    {
      name: 'lc_getTransactionByHash',
      summary: 'A committed transaction with its block height and index.',
      params: [{ name: 'hash', schema: { type: 'string', pattern: HASH }, required: true }],
      result: { name: 'transaction', schema: { type: 'object' } },
      handler: async (p) => {
        const at = await node.chain.locate(fromHex(p.hash as string))
        const tx = at ? (await node.chain.blockAt(at.height))?.transactions[at.index] : undefined
        if (!at || !tx) throw notFound('transaction')
        return { ...(transactionToJson(tx) as Record<string, Json>), height: at.height, index: at.index }
      },
    },
    {
      name: 'lc_getLastBlock',
      summary:
        'The last committed block. Before the first (height 0), the genesis header the first block builds on (its hash is block 1’s prevHash), with no transactions, commit or certificates; no other method serves it.',
      params: [{ name: 'full', schema: { type: 'boolean' } }],
      result: { name: 'block', schema: { type: 'object' } },
      handler: async (p) => {
        if (node.height === 0)
          return { ...(headerToJson(node.head) as Record<string, Json>), transactions: [], lastCommit: null, certSignatures: [] }
        const b = await node.chain.blockAt(node.height)
        if (!b) throw notFound('block')
        return blockToJson(b, p.full !== false)
      },
    },
    {
      name: 'lc_getBlockByHeight',
      summary: 'The committed block at a height.',
      params: [
        { name: 'height', schema: { type: 'integer', minimum: 1 }, required: true },
        { name: 'full', schema: { type: 'boolean' } },
      ],
      result: { name: 'block', schema: { type: 'object' } },
      handler: async (p) => {
        // Above the tip nothing is committed here, whatever the store holds (a write a crash cut short).
        const b = (p.height as number) > node.height ? undefined : await node.chain.blockAt(p.height as number)
        if (!b) throw notFound(`block ${p.height}`)
        return blockToJson(b, p.full !== false)
      },
    },
    {
      name: 'lc_getBlockByHash',
      summary: 'The committed block with a hash.',
      params: [
        { name: 'hash', schema: { type: 'string', pattern: HASH }, required: true },
        { name: 'full', schema: { type: 'boolean' } },
      ],
      result: { name: 'block', schema: { type: 'object' } },
      handler: async (p) => {
        const h = await node.chain.heightOf(fromHex(p.hash as string))
        const b = h === undefined ? undefined : await node.chain.blockAt(h)
        if (!b) throw notFound('block')
        return blockToJson(b, p.full !== false)
      },
    },
    {
      name: 'lc_getAccount',
      summary: "An account's balance (decimal string) and next nonce in the state after the last committed block.",
      params: [{ name: 'address', schema: { type: 'string', pattern: ADDRESS }, required: true }],
      result: { name: 'account', schema: { type: 'object' } },
      handler: async (p) => {
        const a = await getAccount(node.committedState(), p.address as Address)
        return { balance: a.balance.toString(), nonce: a.nonce }
      },
    },
    {
      name: 'lc_call',
      summary:
        'Runs a SCORE method read-only against the state after the last committed block (nothing is written), within the node’s step limit for a call, charged the steps it ran plus 1,000 and 50 per value of its params (at most 16,384 values); when read-only calls have used the node’s budget of steps a second, -32005 with data.retryAfterMs.',
      params: [
        { name: 'to', schema: { type: 'string', pattern: '^cx[0-9a-f]{40}$' }, required: true },
        // The engine's limit on a method name (64 characters): a longer one is not a method of any SCORE.
        { name: 'method', schema: { type: 'string', pattern: '^[A-Za-z_$][A-Za-z0-9_$]*$', maxLength: 64 }, required: true },
        { name: 'params', schema: { type: 'object' } },
        { name: 'from', schema: { type: 'string', pattern: ADDRESS } },
      ],
      result: { name: 'result', schema: {} },
      handler: async (p, ctx) => {
        const engine = node.options.engine
        if (!engine) throw new RpcError(RpcErrorCode.ScoreFailed, 'this node runs without a contract engine', { code: 'NO_ENGINE' })
        const from = (p.from as Address | undefined) ?? ('hx0000000000000000000000000000000000000000' as Address)
        // Whether the SCORE called has no ABI on record: its UNKNOWN_SCORE is "not found", not one
        // from a SCORE it calls in turn.
        let noAbi = false
        const values = countJsonValues(p.params as Json | undefined, MAX_QUERY_PARAM_VALUES)
        if (values > MAX_QUERY_PARAM_VALUES)
          throw new RpcError(
            RpcErrorCode.InvalidParams,
            `params hold more than ${MAX_QUERY_PARAM_VALUES} values (arrays, objects and their items); a read-only call takes no more`,
          )
        // What typing the parameters costs, charged with the call whatever becomes of it.
        const typing = QUERY_BASE_STEPS + values * QUERY_PARAM_VALUE_STEPS
        const r = await queries.run(ctx.client, async (charge) => {
          // Started once no block is being executed or stored, so the committed state is the
          // tree's latest and every read is answered on the spot: the call runs once. One
          // committed state for the whole call, with its height and time (read in one turn).
          await node.stateSettled()
          const state = node.committedState()
          const { height, timestamp } = node.head
          let params: ReturnType<typeof paramsFromJson>
          try {
            // Typed by the SCORE's ABI, so big integers and bytes can be passed as strings. Read
            // on the spot too: a wait here would let a block move the tree before the call.
            const abi = await getScoreAbi(onTheSpot(state), engine, p.to as Address)
            noAbi = abi === undefined
            try {
              params = paramsFromJson((p.params as Json | undefined) ?? null, abi, p.method as string)
            } catch (e) {
              throw new RpcError(RpcErrorCode.InvalidParams, (e as Error).message)
            }
          } catch (e) {
            charge(typing)
            throw e
          }
          // Waits counted: each is a run that ended on a read, charged at the whole limit. A
          // block written while the call waited for its ABI can still cause them.
          let loads = 0
          const source: StateSource = {
            get: (key) => {
              if (++loads > MAX_QUERY_STATE_LOADS)
                throw new RpcError(RpcErrorCode.RateLimited, 'the state moved while the call ran (a block was being written); retry', {
                  code: 'QUERY_RETRY',
                  retryAfterMs: 100,
                })
              return state.get(key)
            },
            ...(state.tryGetSync ? { tryGetSync: state.tryGetSync } : {}),
          }
          try {
            const out = await queryScore(
              source,
              { params: g.params, engine },
              { from, to: p.to as Address, method: p.method as string, params, height, timestamp, stepLimit: queries.stepLimit },
            )
            charge(typing + loads * queries.stepLimit + out.stepsUsed)
            return out
          } catch (e) {
            charge(typing + (loads + 1) * queries.stepLimit)
            throw e
          }
        })
        if (!r.ok) {
          // No SCORE there: "not found", as lc_getScoreApi says it.
          if (r.failure.code === 'UNKNOWN_SCORE' && noAbi) throw notFound(`SCORE ${p.to}`)
          throw new RpcError(RpcErrorCode.ScoreFailed, r.failure.message, { code: r.failure.code })
        }
        return valueToJson(r.result)
      },
    },
    {
      name: 'lc_getScoreApi',
      summary: "A SCORE's ABI: its methods (parameters, result, readonly, payable) and events; the serving version or a given one.",
      params: [
        { name: 'address', schema: { type: 'string', pattern: '^cx[0-9a-f]{40}$' }, required: true },
        { name: 'version', schema: { type: 'integer', minimum: 1 } },
      ],
      result: { name: 'abi', schema: { type: 'array', items: { type: 'object' } } },
      handler: async (p) => {
        const engine = node.options.engine
        if (!engine) throw new RpcError(RpcErrorCode.ScoreFailed, 'this node runs without a contract engine', { code: 'NO_ENGINE' })
        const abi = await getScoreApi(node.committedState(), engine, p.address as Address, p.version as number | undefined)
        if (abi === undefined) throw notFound(`SCORE ${p.address}${p.version ? ` version ${p.version}` : ''}`)
        return valueToJson(abi)
      },
    },
    {
      name: 'lc_getStateProof',
      summary: 'The value under a state key and its Merkle proof against the state root after a block (default: the last).',
      params: [
        { name: 'key', schema: { type: 'string', pattern: NONEMPTY_HEX, maxLength: 2 + 2048 }, required: true },
        { name: 'height', schema: { type: 'integer', minimum: 0 } },
      ],
      result: { name: 'proof', schema: { type: 'object' } },
      handler: async (p) => {
        // Height and root from the committed tip together (see FullNode.tipResult).
        const tip = node.height
        const height = (p.height as number | undefined) ?? tip
        if (height > tip) throw notFound(`block ${height}`)
        // The genesis state's result is no block's: computed from the genesis (once; its nodes are stored).
        const result =
          height === tip ? node.tipResult : height === 0 ? await genesisResult(node.options.genesis) : await node.chain.resultAt(height)
        if (!result) throw notFound(`block ${height}`)
        const root = result.stateRoot
        const { value, proof } = await node.state.prove(fromHex(p.key as string), root)
        return { height, stateRoot: to0x(root), value: value ? to0x(value) : null, proof: to0x(encode(stateProofCodec, proof)) }
      },
    },
    {
      name: 'lc_getCertificate',
      summary:
        'The portable file of a certificate (JSON, core docs/certificates.md): the certificate, its block-key signature, the issuing header with its commit, the validator-set changes up to it and the proof of the issuer’s right.',
      params: [{ name: 'id', schema: { type: 'string', pattern: HASH }, required: true }],
      result: { name: 'file', schema: { type: 'object' } },
      handler: async (p) => {
        const file = await certificateFileOf(node, fromHex(p.id as string))
        if (!file) throw notFound('certificate')
        return certificateFileToJson(file) as Json
      },
    },
    {
      name: 'lc_getCertificateStatus',
      summary:
        'Evidence of a certificate’s current status: the last committed header and its commit, the result it commits to, and the proof of the registry record (or its absence) in that state — status as of height (last − 1).',
      params: [{ name: 'id', schema: { type: 'string', pattern: HASH }, required: true }],
      result: { name: 'status', schema: { type: 'object' } },
      handler: async (p) => {
        const id = fromHex(p.id as string)
        const r = await certificateStatusOf(node, id)
        if (!r) throw notFound('a committed header (no block yet)')
        return statusEvidenceToJson(id, r.evidence, r.status) as Json
      },
    },
    {
      name: 'lc_watchChannel',
      summary:
        'Hands a co-signed payment channel state (0x hex of its encoding) and the peer’s revocations the party holds (0x hex of each, at most two) to this node’s watchtower, which challenges a unilateral close with an older state while the party is offline: with the closer’s revocation of the closing state the closer is penalised, without one the newer state replaces it. Returns the seq now held; refuses (data.code) MALFORMED, UNKNOWN_CHANNEL, CHANNEL_CLOSED, BAD_STATE, BAD_REVOCATION, FULL.',
      params: [
        { name: 'state', schema: { type: 'string', pattern: HEX, maxLength: 20_000 }, required: true },
        {
          name: 'revocations',
          schema: { type: 'array', items: { type: 'string', pattern: HEX, maxLength: 400 }, maxItems: 2 },
          required: false,
        },
      ],
      result: { name: 'seq', schema: { type: 'integer' } },
      handler: async (p) => {
        const tower = node.watchtower
        if (!tower) throw new RpcError(RpcErrorCode.NotFound, 'this node runs no watchtower (an observer)', { code: 'NO_WATCHTOWER' })
        try {
          const revocations = ((p.revocations as string[] | undefined) ?? []).map(fromHex)
          return await tower.watch(concatBytes(fromHex(p.state as string), ...revocations))
        } catch (e) {
          if (e instanceof LoopchainError) throw new RpcError(RpcErrorCode.TransactionRejected, e.message, { code: e.code })
          throw e
        }
      },
    },
    {
      name: 'lc_getNetworkInfo',
      summary:
        'Chain identity and this node’s view: chain id, network id, genesis hash, height, role (validator; standby: it holds a validator key the latest set does not name; observer), block sync (height, target, blocks a second and seconds left while behind), pool size; with a network, its peer id, whether its state admits it to the members’ topics, how many member nodes it admits, the validators whose node it does not admit (they cannot vote over the network), and its circuit relay for light clients (slots in use; its limits on each relayed connection and on the connections between two addresses; the attempts it refused past the latter; null when it runs none); and the height in progress (consensus: its height, round and step, the seconds since this node started it, stalled when that is past the rounds a height takes with a quorum at work (three or more rounds of timeouts), the validators this node holds votes or proposals from for it (its own included) and the silent ones, the validators whose node it has no connection to, each with their member ids, the power heard and the total; null while the chain is idle).',
      params: [],
      result: { name: 'info', schema: { type: 'object' } },
      handler: () => ({
        chainId: g.chainId,
        networkId: g.networkId,
        genesisHash: to0x(genesisHash(g)),
        height: node.height,
        lastBlockHash: to0x(blockHash(node.head)),
        role: node.role,
        sync: syncProgress(node),
        mempool: node.mempool.size,
        ...(peers ? { peerId: peers.peerId, admitted: memberPeerIds(node).has(peers.peerId), relay: peers.relay() ?? null } : {}),
        memberNodes: node.admittedNodeKeys.size,
        validatorsNotAdmitted: node.validatorsNotAdmitted,
        consensus: consensusProgressJson(node.consensusProgress()),
      }),
    },
    ...(peers
      ? [
          {
            name: 'lc_getPeers',
            summary:
              'This node’s peer id, its connected peers (member or not, gossip score) and the peers it refuses for a graylisted score. No addresses.',
            params: [],
            result: { name: 'peers', schema: { type: 'object' } },
            handler: () => {
              // Governance changes who is a member: asked each time.
              const members = memberPeerIds(node)
              return {
                peerId: peers.peerId,
                peers: [...new Set(peers.connections().map((c) => c.peerId))].map((id) => ({
                  peerId: id,
                  member: members.has(id),
                  score: finite(peers.peerScore(id)),
                })),
                banned: peers.bannedPeers().map((b) => ({ ...b, score: finite(peers.peerScore(b.peerId)) })),
              }
            },
          } satisfies RpcMethod,
        ]
      : []),
    {
      name: 'lc_getValidators',
      summary: 'The validator set in force: addresses, public keys and voting power.',
      params: [],
      result: { name: 'validators', schema: { type: 'array' } },
      handler: () =>
        node.validatorsAt(node.height + 1).validators.map((v) => ({ address: v.address, publicKey: to0x(v.publicKey), power: v.power })),
    },
    {
      name: 'lc_subscribe',
      summary:
        "Notifies 'lc_subscription' with each new block header, or with each event log matching a filter (a SCORE address; an event by name, e.g. 'Transfer', or full signature).",
      websocketOnly: true,
      params: [
        { name: 'topic', schema: { type: 'string', pattern: '^(blocks|logs)$' }, required: true },
        {
          name: 'filter',
          schema: {
            type: 'object',
            additionalProperties: false,
            properties: { score: { type: 'string', pattern: '^cx[0-9a-f]{40}$' }, event: { type: 'string', maxLength: 256 } },
          },
        },
      ],
      result: { name: 'subscription', schema: { type: 'string' } },
      handler: (p, ctx) => {
        const connection = ctx.connection
        if (!connection) throw new RpcError(RpcErrorCode.MethodNotFound, 'lc_subscribe needs a WebSocket connection')
        if (connection.subscriptions.size >= MAX_SUBSCRIPTIONS_PER_CONNECTION)
          throw new RpcError(RpcErrorCode.TooLarge, `a connection may hold at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions`)
        const held = byClient.get(ctx.client) ?? 0
        if (held >= MAX_SUBSCRIPTIONS_PER_CLIENT)
          throw new RpcError(RpcErrorCode.TooLarge, `one client address may hold at most ${MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions`)
        if (subscriptions >= MAX_SUBSCRIPTIONS)
          throw new RpcError(RpcErrorCode.TooLarge, `this node serves at most ${MAX_SUBSCRIPTIONS} subscriptions; try later`)
        const id = `0x${toHex(globalThis.crypto.getRandomValues(new Uint8Array(8)))}`
        if (p.topic === 'blocks' && p.filter !== undefined)
          throw new RpcError(RpcErrorCode.InvalidParams, "a filter applies to the 'logs' topic only; 'blocks' sends every header")
        const filter = (p.filter ?? {}) as { score?: Address; event?: string }
        if (filter.score !== undefined && !isAddress(filter.score))
          throw new RpcError(RpcErrorCode.InvalidParams, 'filter.score is not an address')
        const send = (result: Json) => ctx.notify?.('lc_subscription', { subscription: id, result })
        const off = node.onBlock((b: CommittedBlock) => {
          if (p.topic === 'blocks') return send(headerToJson(b.block.header))
          b.receipts.forEach((r, index) => {
            for (const log of r.logs) {
              if (!logMatches(log, { ...(filter.score ? { score: filter.score } : {}) })) continue
              // An event by its name ('Transfer') or its full signature ('Transfer(Address,Address,int,bytes)').
              if (filter.event !== undefined && log.event !== filter.event && !log.event.startsWith(`${filter.event}(`)) continue
              send({
                height: b.block.header.height,
                txHash: to0x(r.txHash),
                index,
                score: log.score,
                event: log.event,
                indexed: log.indexed.map(valueToJson),
                data: log.data.map(valueToJson),
              })
            }
          })
        })
        subscriptions++
        byClient.set(ctx.client, held + 1)
        // Once, whether by lc_unsubscribe or by the connection closing.
        let forget: (() => void) | undefined
        const cancel = () => {
          if (!connection.subscriptions.delete(id)) return
          forget?.()
          off()
          subscriptions--
          const n = (byClient.get(ctx.client) ?? 1) - 1
          if (n > 0) byClient.set(ctx.client, n)
          else byClient.delete(ctx.client)
        }
        connection.subscriptions.set(id, cancel)
        forget = ctx.onClose?.(cancel)
        return id
      },
    },
    {
      name: 'lc_unsubscribe',
      summary: 'Ends a subscription of this connection (the id lc_subscribe returned); false when it holds no such subscription.',
      websocketOnly: true,
      params: [{ name: 'subscription', schema: { type: 'string', pattern: '^0x[0-9a-f]{16}$' }, required: true }],
      result: { name: 'ended', schema: { type: 'boolean' } },
      handler: (p, ctx) => {
        const cancel = ctx.connection?.subscriptions.get(p.subscription as string)
        if (cancel === undefined) return false
        cancel()
        return true
      },
    },
  ]
}
