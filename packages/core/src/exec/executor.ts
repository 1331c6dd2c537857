/**
 * Block execution: runs a committed block's transactions against the state tree and yields
 * receipts and the block's result (state root, receipts root, logs bloom), identically in a full
 * node and in a browser.
 *
 * Per transaction:
 * 1. The nonce must be the sender's next one, and the balance must cover the value plus the most
 *    the steps can cost (`stepLimit × stepPrice`); otherwise the receipt fails with nothing
 *    changed and nothing charged (`BAD_NONCE`, `INSUFFICIENT_BALANCE`).
 * 2. The transaction runs in an overlay: a transfer moves value between accounts; a message only
 *    costs its bytes; a call runs a SCORE method (value moves to the SCORE's account first); a
 *    deploy stores the code, creates the SCORE and runs its `onInstall`.
 * 3. On success the overlay's writes apply; on failure they are dropped. Either way the sender
 *    pays `stepsUsed × stepPrice` (the fee is burnt: a permissioned chain prices steps to bound
 *    work, not to pay anyone) and its nonce advances.
 */
import { decode, encode } from '../codec/codec.js'
import { bytesEqual } from '../codec/hex.js'
import type { Value } from '../codec/value.js'
import { type Address, contractAddress, isContractAddress } from '../crypto/address.js'
import { sha256 } from '../crypto/hash.js'
import type { Block, BlockResult } from '../ledger/block.js'
import type { ChainParams, Genesis } from '../ledger/genesis.js'
import { Right } from '../ledger/genesis.js'
import { type EventLog, logsBloom, type Receipt, ReceiptStatus, receiptsRoot } from '../ledger/receipt.js'
import { callDataCodec, deployDataCodec, type Transaction, TxKind, transactionHash } from '../ledger/transaction.js'
import { callScore, type LoadedScore, loadScore, type PermissionCheck } from '../score/call.js'
import type { ContractEngine } from '../score/engine/types.js'
import { StateOverlay } from '../score/overlay.js'
import type { StateCommit, StateTree } from '../state/state-tree.js'
import { BlockState } from './block-state.js'
import {
  type AccountState,
  accountKey,
  accountStateCodec,
  type ContractRecord,
  codeKey,
  contractKey,
  contractRecordCodec,
  EMPTY_ACCOUNT,
  memberKey,
  memberRecordCodec,
} from './layout.js'

/** Fixed step costs outside contract code. */
export const STEP_COSTS = {
  /** Every transaction: signature, nonce and balance bookkeeping. */
  base: 1_000,
  /** Each byte of a transaction's payload (calls, deploys, messages). */
  dataByte: 1,
  /** Each byte of code a deploy stores. */
  codeByte: 2,
} as const

/** Memory each contract frame may use: small on purpose (see docs/score-engine.md, built-in work). */
export const CONTRACT_MEMORY_LIMIT = 4 * 1024 * 1024

/** What execution needs besides the state: the chain's parameters and the contract engine. */
export interface ExecutionEnv {
  readonly params: ChainParams
  /** Needed for calls and deploys; a chain of transfers and messages runs without one. */
  readonly engine?: ContractEngine
}

/** A block's execution: its receipts, its result, and the state commit to write with the block. */
export interface BlockExecution {
  readonly receipts: Receipt[]
  readonly result: BlockResult
  readonly commit: StateCommit
}

/** Writes the genesis state (balances and members with their rights) into an empty tree and commits it. */
export async function applyGenesis(tree: StateTree, genesis: Genesis): Promise<StateCommit> {
  for (const b of genesis.balances) tree.put(accountKey(b.address), encode(accountStateCodec, { balance: b.amount, nonce: 0 }))
  for (const m of genesis.members) tree.put(memberKey(m.address), encode(memberRecordCodec, { id: m.id, rights: m.rights }))
  return tree.commit()
}

/** The result of a state with no receipts (genesis, or an empty block). */
export function stateResult(stateRoot: Uint8Array, receipts: readonly Receipt[] = []): BlockResult {
  return { stateRoot, receiptsRoot: receiptsRoot(receipts), logsBloom: logsBloom(receipts) }
}

/** SCOREs compiled once per code hash: loading is deterministic, so a cache changes no outcome. */
class ScoreCache {
  private readonly byCode = new Map<string, LoadedScore | null>()
  constructor(private readonly engine: ContractEngine) {}

  get(codeHash: Uint8Array, code: () => Uint8Array | undefined): LoadedScore | undefined {
    const id = String.fromCharCode(...codeHash)
    let s = this.byCode.get(id)
    if (s === undefined) {
      const bytes = code()
      if (bytes === undefined) return undefined
      const r = loadScore(this.engine, bytes)
      s = r.ok ? { contract: r.contract, abi: r.abi } : null
      this.byCode.set(id, s)
    }
    return s ?? undefined
  }
}

const caches = new WeakMap<ContractEngine, ScoreCache>()
function scoreCache(engine: ContractEngine): ScoreCache {
  let c = caches.get(engine)
  if (!c) {
    c = new ScoreCache(engine)
    caches.set(engine, c)
  }
  return c
}

function readAccount(state: StateOverlay, a: Address): AccountState {
  const raw = state.get(accountKey(a))
  return raw === undefined ? EMPTY_ACCOUNT : decode(accountStateCodec, raw)
}

function writeAccount(state: StateOverlay, a: Address, acc: AccountState): void {
  state.set(accountKey(a), encode(accountStateCodec, acc))
}

function hasRight(state: StateOverlay, a: Address, right: number): boolean {
  const raw = state.get(memberKey(a))
  return raw !== undefined && (decode(memberRecordCodec, raw).rights & right) !== 0
}

interface Outcome {
  readonly ok: boolean
  readonly stepsUsed: number
  readonly failure?: { code: string; message: string }
  readonly logs?: readonly EventLog[]
  readonly scoreAddress?: Address
}

/** Executes one transaction against `root` (the block's running state); returns its receipt. */
function executeTransaction(tx: Transaction, root: StateOverlay, env: ExecutionEnv, block: { height: number; timestamp: number }): Receipt {
  const b = tx.body
  const hash = transactionHash(b)
  const price = env.params.stepPrice
  const sender = readAccount(root, b.from)
  const fail = (code: string, message: string): Receipt => ({
    txHash: hash,
    status: ReceiptStatus.Failure,
    stepUsed: 0,
    fee: 0n,
    scoreAddress: undefined,
    failure: { code, message },
    logs: [],
  })
  if (b.nonce !== sender.nonce) return fail('BAD_NONCE', `nonce ${b.nonce} is not the sender's next nonce ${sender.nonce}`)
  const maxFee = BigInt(b.stepLimit) * price
  if (sender.balance < b.value + maxFee) {
    return fail('INSUFFICIENT_BALANCE', `balance ${sender.balance} does not cover value ${b.value} and the step limit's fee ${maxFee}`)
  }

  const overlay = root.child()
  const outcome = runKind(tx, hash, overlay, env, block)
  const stepsUsed = Math.min(outcome.stepsUsed, b.stepLimit)
  if (outcome.ok && outcome.stepsUsed <= b.stepLimit) overlay.commit()
  else overlay.discard()
  const ok = outcome.ok && outcome.stepsUsed <= b.stepLimit
  const fee = BigInt(stepsUsed) * price
  // The fee and the nonce are charged on the running state whatever the outcome.
  const after = readAccount(root, b.from)
  writeAccount(root, b.from, { balance: after.balance - fee, nonce: after.nonce + 1 })
  return {
    txHash: hash,
    status: ok ? ReceiptStatus.Success : ReceiptStatus.Failure,
    stepUsed: stepsUsed,
    fee,
    scoreAddress: ok ? outcome.scoreAddress : undefined,
    failure: ok
      ? undefined
      : (outcome.failure ?? { code: 'OUT_OF_STEPS', message: `the transaction needs more than its ${b.stepLimit} steps` }),
    logs: ok ? [...(outcome.logs ?? [])] : [],
  }
}

function move(state: StateOverlay, from: Address, to: Address, value: bigint): void {
  if (value === 0n || from === to) return
  const a = readAccount(state, from)
  writeAccount(state, from, { ...a, balance: a.balance - value })
  const c = readAccount(state, to)
  writeAccount(state, to, { ...c, balance: c.balance + value })
}

function runKind(
  tx: Transaction,
  hash: Uint8Array,
  state: StateOverlay,
  env: ExecutionEnv,
  block: { height: number; timestamp: number },
): Outcome {
  const b = tx.body
  const base = STEP_COSTS.base + STEP_COSTS.dataByte * b.data.length
  switch (b.kind) {
    case TxKind.Transfer:
      if (isContractAddress(b.to))
        return {
          ok: false,
          stepsUsed: base,
          failure: { code: 'BAD_RECIPIENT', message: 'send value to a SCORE with a call to a payable method' },
        }
      move(state, b.from, b.to, b.value)
      return { ok: true, stepsUsed: base }
    case TxKind.Message:
      move(state, b.from, b.to, b.value)
      return { ok: true, stepsUsed: base }
    case TxKind.Call:
    case TxKind.Deploy: {
      if (!env.engine)
        return { ok: false, stepsUsed: base, failure: { code: 'NO_ENGINE', message: 'this executor has no contract engine' } }
      const cache = scoreCache(env.engine)
      const scores = (a: Address): LoadedScore | undefined => {
        const rec = state.get(contractKey(a))
        if (rec === undefined) return undefined
        const r: ContractRecord = decode(contractRecordCodec, rec)
        return cache.get(r.codeHash, () => state.get(codeKey(r.codeHash)))
      }
      const permit: PermissionCheck = () => undefined
      const common = {
        scores,
        state,
        from: b.from,
        block: { height: BigInt(block.height), timestamp: BigInt(block.timestamp) },
        txHash: hash,
        permit,
      }
      if (b.kind === TxKind.Call) {
        const data = decode(callDataCodec, b.data)
        move(state, b.from, b.to, b.value)
        const r = callScore({
          ...common,
          to: b.to,
          method: data.method,
          params: data.params,
          value: b.value,
          limits: { stepLimit: Math.max(0, b.stepLimit - base), memoryLimit: CONTRACT_MEMORY_LIMIT },
        })
        return r.ok
          ? { ok: true, stepsUsed: base + r.stepsUsed, logs: r.logs }
          : { ok: false, stepsUsed: base + r.stepsUsed, failure: r.failure }
      }
      return deploy(tx, hash, state, cache, common, base)
    }
  }
}

function deploy(
  tx: Transaction,
  hash: Uint8Array,
  state: StateOverlay,
  cache: ScoreCache,
  common: Omit<Parameters<typeof callScore>[0], 'to' | 'method' | 'params' | 'value' | 'limits'>,
  base: number,
): Outcome {
  const b = tx.body
  const data = decode(deployDataCodec, b.data)
  const steps = base + STEP_COSTS.codeByte * data.code.length
  if (!hasRight(state, b.from, Right.Deployer)) {
    return { ok: false, stepsUsed: steps, failure: { code: 'PERMISSION_DENIED', message: `${b.from} does not hold the deployer right` } }
  }
  if (data.contentType !== 'application/javascript') {
    return {
      ok: false,
      stepsUsed: steps,
      failure: { code: 'INVALID_CODE', message: `content type ${data.contentType} is not application/javascript` },
    }
  }
  const codeHash = sha256(data.code)
  const loaded = cache.get(codeHash, () => data.code)
  if (loaded === undefined) {
    return {
      ok: false,
      stepsUsed: steps,
      failure: { code: 'INVALID_CODE', message: 'the code does not load as a SCORE (syntax, imports or manifest)' },
    }
  }
  const address = contractAddress(hash)
  if (state.get(contractKey(address)) !== undefined) {
    return { ok: false, stepsUsed: steps, failure: { code: 'ADDRESS_TAKEN', message: `a SCORE already lives at ${address}` } }
  }
  const existing = state.get(codeKey(codeHash))
  if (existing === undefined || !bytesEqual(existing, data.code)) state.set(codeKey(codeHash), data.code)
  state.set(contractKey(address), encode(contractRecordCodec, { deployer: b.from, codeHash, version: 1 }))
  move(state, b.from, address, b.value)
  if (!Object.hasOwn(loaded.abi.methods, 'onInstall')) return { ok: true, stepsUsed: steps, scoreAddress: address }
  const r = callScore({
    ...common,
    to: address,
    method: 'onInstall',
    params: data.params,
    value: b.value,
    install: true,
    limits: { stepLimit: Math.max(0, b.stepLimit - steps), memoryLimit: CONTRACT_MEMORY_LIMIT },
  })
  return r.ok
    ? { ok: true, stepsUsed: steps + r.stepsUsed, logs: r.logs, scoreAddress: address }
    : { ok: false, stepsUsed: steps + r.stepsUsed, failure: r.failure }
}

/**
 * Executes `block` on `tree` (which must be at the state after the previous block) and commits the
 * state; returns the receipts, the result (whose hash the next header carries) and the commit whose
 * ops the caller writes together with the block.
 */
export async function executeBlock(tree: StateTree, block: Block, env: ExecutionEnv): Promise<BlockExecution> {
  const state = new BlockState(tree)
  const receipts: Receipt[] = []
  const info = { height: block.header.height, timestamp: block.header.timestamp }
  for (const tx of block.transactions) {
    const { receipt, writes } = await state.retrying(() => {
      const root = new StateOverlay((k) => state.read(k))
      const receipt = executeTransaction(tx, root, env, info)
      return { receipt, writes: root.changes() }
    })
    state.apply(writes)
    receipts.push(receipt)
  }
  const commit = await tree.commit()
  return { receipts, result: stateResult(commit.root, receipts), commit }
}

/**
 * Runs a read-only method of a SCORE against the current state (a query: nothing is written,
 * every frame is read-only whatever its ABI says). Steps are bounded by `stepLimit`.
 */
export async function queryScore(
  tree: StateTree,
  env: ExecutionEnv & { engine: ContractEngine },
  q: { from: Address; to: Address; method: string; params?: Value; height: number; timestamp: number; stepLimit?: number },
) {
  const state = new BlockState(tree)
  const cache = scoreCache(env.engine)
  return state.retrying(() => {
    const root = new StateOverlay((k) => state.read(k))
    const scores = (a: Address): LoadedScore | undefined => {
      const rec = root.get(contractKey(a))
      if (rec === undefined) return undefined
      const r = decode(contractRecordCodec, rec)
      return cache.get(r.codeHash, () => root.get(codeKey(r.codeHash)))
    }
    return callScore({
      scores,
      state: root,
      from: q.from,
      to: q.to,
      method: q.method,
      params: q.params ?? null,
      block: { height: BigInt(q.height), timestamp: BigInt(q.timestamp) },
      limits: { stepLimit: q.stepLimit ?? 10_000_000, memoryLimit: CONTRACT_MEMORY_LIMIT },
      query: true,
    })
  })
}

/** The account state of `a` (balance and nonce) in `tree`'s current state. */
export async function getAccount(tree: StateTree, a: Address): Promise<AccountState> {
  const raw = await tree.get(accountKey(a))
  return raw === undefined ? EMPTY_ACCOUNT : decode(accountStateCodec, raw)
}
