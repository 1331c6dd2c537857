/**
 * Block execution: runs a committed block's transactions against the state tree and yields
 * receipts and the block's result (state root, receipts root, logs bloom), identically in a full
 * node and in a browser.
 *
 * Per transaction:
 * 1. The nonce must be the sender's next one, or the receipt fails with nothing changed
 *    (`BAD_NONCE`). The balance must cover the value plus the most the steps can cost
 *    (`stepLimit × stepPrice`), or the receipt fails with nothing charged
 *    (`INSUFFICIENT_BALANCE`) — but the nonce is used: a signed transaction that failed must
 *    never run later, once a balance would cover it, nor stay pooled to fill every block.
 * 2. The transaction runs in an overlay: a transfer moves value between accounts; a message only
 *    costs its bytes; a call runs a SCORE method (value moves to the SCORE's account first); a
 *    deploy stores the code, creates the SCORE and runs its `onInstall`.
 * 3. On success the overlay's writes apply; on failure they are dropped. Either way the sender
 *    pays `stepsUsed × stepPrice` (the fee is burnt: a permissioned chain prices steps to bound
 *    work, not to pay anyone) and its nonce advances.
 *
 * Before the first transaction, SCORE updates due at this height activate (their `onUpdate` runs;
 * see registry.ts). A call to {@link GOVERNANCE_ADDRESS} runs the native governance SCORE, one to
 * {@link CERTIFICATE_REGISTRY_ADDRESS} the native certificate registry (certificates.ts), one to
 * {@link CHANNEL_ADDRESS} the native payment channel SCORE (channels.ts). When the
 * block's transactions change the validator set, {@link BlockExecution.nextValidators} carries the
 * new set: header K+1 (which carries block K's result) names it as `nextValidatorsHash`, and it
 * votes from height K+2 (docs/governance.md).
 */
import { decode, encodableText, encode } from '../codec/codec.js'
import { bytesEqual } from '../codec/hex.js'
import type { Value } from '../codec/value.js'
import { type Address, contractAddress, isContractAddress } from '../crypto/address.js'
import { sha256 } from '../crypto/hash.js'
import type { CryptoProvider } from '../crypto/provider.js'
import { DecodeError, LoopchainError } from '../errors.js'
import type { Block, BlockResult } from '../ledger/block.js'
import type { ChainParams, Genesis } from '../ledger/genesis.js'
import { Right } from '../ledger/genesis.js'
import {
  type EventLog,
  type Failure,
  logsBloom,
  MAX_FAILURE_CODE_BYTES,
  MAX_FAILURE_MESSAGE_BYTES,
  type Receipt,
  ReceiptStatus,
  receiptsRoot,
} from '../ledger/receipt.js'
import {
  callDataCodec,
  type DeployData,
  deployDataCodec,
  runsNoCode,
  STEP_COSTS,
  type Transaction,
  type TransactionBody,
  TxKind,
  transactionHash,
} from '../ledger/transaction.js'
import { type ValidatorSet, validatorSetCodec } from '../ledger/validators.js'
import { checkParams } from '../score/abi.js'
import { callScore, type PermissionCheck, UPDATE_METHOD } from '../score/call.js'
import type { ContractEngine } from '../score/engine/types.js'
import { StateOverlay } from '../score/overlay.js'
import type { StateCommit, StateSource, StateTree } from '../state/state-tree.js'
import { BlockState, StateCache } from './block-state.js'
import { CERTIFICATE_STEPS, certificateCall } from './certificates.js'
import { CHANNEL_STEPS, channelCall } from './channels.js'
import { GOVERNANCE_STEPS, governanceCall } from './governance.js'
import {
  type AccountState,
  AuditStatus,
  accountKey,
  accountStateCodec,
  CERTIFICATE_REGISTRY_ADDRESS,
  CHANNEL_ADDRESS,
  codeKey,
  contractKey,
  EMPTY_ACCOUNT,
  GOVERNANCE_ADDRESS,
  MAX_SCORE_VERSIONS,
  MEMBER_LIST_KEY,
  memberKey,
  memberListCodec,
  memberRecordCodec,
  type ScoreVersion,
  VALIDATORS_KEY,
  VersionStatus,
} from './layout.js'
import {
  activateDueUpdates,
  isQueryable,
  readRecord,
  readScheduled,
  type ScoreCache,
  scoreCache,
  servingLookup,
  servingVersion,
  writeRecord,
  writeScheduled,
} from './registry.js'

/** Memory each contract frame may use: small on purpose (see docs/score-engine.md, built-in work). */
export const CONTRACT_MEMORY_LIMIT = 4 * 1024 * 1024

/** What execution needs besides the state: the chain's parameters and the contract engine. */
export interface ExecutionEnv {
  readonly params: ChainParams
  /** Needed for calls and deploys; a chain of transfers and messages runs without one. */
  readonly engine?: ContractEngine
  /**
   * Verifies the signatures native SCOREs check (payment channel states); nobleCrypto when absent.
   * Every provider accepts exactly the same signatures, so the choice changes speed, never a result.
   */
  readonly crypto?: CryptoProvider
}

/** A block's execution: its receipts, its result, and the state commit to write with the block. */
export interface BlockExecution {
  readonly receipts: Receipt[]
  readonly result: BlockResult
  readonly commit: StateCommit
  /**
   * Set when this block's transactions changed the validator set: the set in state after the block.
   * For block K, header K+1 carries its hash as `nextValidatorsHash` and it votes from height K+2.
   */
  readonly nextValidators?: ValidatorSet
}

/**
 * Writes the genesis state into an empty tree and commits it: balances, members with their rights
 * and node keys, the member list, and the initial validator set (which governance then changes).
 */
export async function applyGenesis(tree: StateTree, genesis: Genesis): Promise<StateCommit> {
  for (const b of genesis.balances) tree.put(accountKey(b.address), encode(accountStateCodec, { balance: b.amount, nonce: 0 }))
  for (const m of genesis.members)
    tree.put(memberKey(m.address), encode(memberRecordCodec, { id: m.id, rights: m.rights, nodeKey: m.nodeKey }))
  tree.put(MEMBER_LIST_KEY, encode(memberListCodec, genesis.members.map((m) => m.address).sort()))
  tree.put(VALIDATORS_KEY, encode(validatorSetCodec, genesis.validators))
  // Version 0, before block 1's: a tree that holds a commit already refuses it (StateTreeError VERSION).
  return tree.commit(0)
}

/** The result of a state with no receipts (genesis, or an empty block). */
export function stateResult(stateRoot: Uint8Array, receipts: readonly Receipt[] = []): BlockResult {
  return { stateRoot, receiptsRoot: receiptsRoot(receipts), logsBloom: logsBloom(receipts) }
}

/**
 * A transaction reads its sender's account several times (a value transfer once). The state key
 * of an address is made once (a bounded cache; the keys are never modified). An account's bytes are
 * decoded at each read: remembering the decoded account per bytes object (a WeakMap) cost more
 * than the decoding it saved (measured on 800-transfer blocks, ~43 against ~47 µs per transfer).
 */
const ACCOUNT_KEYS_KEPT = 65_536
const accountKeys = new Map<Address, Uint8Array>()
function accountKeyOf(a: Address): Uint8Array {
  let k = accountKeys.get(a)
  if (k === undefined) {
    if (accountKeys.size >= ACCOUNT_KEYS_KEPT) accountKeys.clear()
    k = accountKey(a)
    accountKeys.set(a, k)
  }
  return k
}
function readAccount(state: StateOverlay, a: Address): AccountState {
  const raw = state.get(accountKeyOf(a))
  return raw === undefined ? EMPTY_ACCOUNT : decode(accountStateCodec, raw)
}

function writeAccount(state: StateOverlay, a: Address, acc: AccountState): void {
  state.set(accountKeyOf(a), encode(accountStateCodec, acc))
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
    writeAccount(root, b.from, { balance: sender.balance, nonce: sender.nonce + 1 })
    return fail('INSUFFICIENT_BALANCE', `balance ${sender.balance} does not cover value ${b.value} and the step limit's fee ${maxFee}`)
  }

  if (runsNoCode(b)) return valueTransfer(b, hash, sender, root, price)

  const overlay = root.child()
  let outcome: Outcome
  try {
    outcome = runKind(tx, hash, overlay, env, block)
  } catch (e) {
    // A payload that does not decode (a proposer skipped the mempool's checks) fails like any bad input.
    if (!(e instanceof DecodeError)) throw e
    outcome = {
      ok: false,
      stepsUsed: STEP_COSTS.base,
      failure: { code: 'INVALID_DATA', message: `the payload does not decode: ${e.message}`.slice(0, 256) },
    }
  }
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
    failure: ok ? undefined : receiptFailure(outcome.failure ?? outOfSteps(b.stepLimit)),
    logs: ok ? [...(outcome.logs ?? [])] : [],
  }
}

/**
 * A failure as a receipt holds it: its code and message made encodable (a contract's error
 * message, cut at 256 characters in the middle of a surrogate pair, or one holding a lone
 * surrogate, could not be encoded: the receipts root of a committed block threw and every node
 * halted on it).
 */
function receiptFailure(f: Failure): Failure {
  return { code: encodableText(f.code, MAX_FAILURE_CODE_BYTES), message: encodableText(f.message, MAX_FAILURE_MESSAGE_BYTES) }
}

/**
 * A value transfer or a message, most of a busy chain's traffic: exactly what the general path
 * gives (`runKind`'s transfer and message cases, then the fee and the nonce), with the sender's
 * account read once and written once and no nested overlay. `sender` is its account as read.
 */
function valueTransfer(b: TransactionBody, hash: Uint8Array, sender: AccountState, root: StateOverlay, price: bigint): Receipt {
  const steps = STEP_COSTS.base + STEP_COSTS.dataByte * b.data.length
  const ok = steps <= b.stepLimit
  const stepsUsed = ok ? steps : b.stepLimit
  const fee = BigInt(stepsUsed) * price
  const value = ok && b.from !== b.to ? b.value : 0n
  writeAccount(root, b.from, { balance: sender.balance - value - fee, nonce: sender.nonce + 1 })
  if (value !== 0n) credit(root, b.to, value)
  return {
    txHash: hash,
    status: ok ? ReceiptStatus.Success : ReceiptStatus.Failure,
    stepUsed: stepsUsed,
    fee,
    scoreAddress: undefined,
    failure: ok ? undefined : outOfSteps(b.stepLimit),
    logs: [],
  }
}

/** The failure of a transaction whose work went past its step limit (part of its receipt, so of the receipts root). */
function outOfSteps(stepLimit: number): Failure {
  return { code: 'OUT_OF_STEPS', message: `the transaction needs more than its ${stepLimit} steps` }
}

/** Adds `value` to the balance of `a`. */
function credit(state: StateOverlay, a: Address, value: bigint): void {
  const c = readAccount(state, a)
  writeAccount(state, a, { ...c, balance: c.balance + value })
}

function move(state: StateOverlay, from: Address, to: Address, value: bigint): void {
  if (value === 0n || from === to) return
  const a = readAccount(state, from)
  writeAccount(state, from, { ...a, balance: a.balance - value })
  credit(state, to, value)
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
  if (b.kind === TxKind.Call && b.to === GOVERNANCE_ADDRESS) {
    const data = decode(callDataCodec, b.data)
    const r = governanceCall(state, env.params, {
      from: b.from,
      method: data.method,
      params: data.params,
      value: b.value,
      height: block.height,
      query: false,
    })
    const stepsUsed = base + GOVERNANCE_STEPS
    return r.ok ? { ok: true, stepsUsed, logs: r.logs } : { ok: false, stepsUsed, failure: r.failure }
  }
  if (b.kind === TxKind.Call && b.to === CERTIFICATE_REGISTRY_ADDRESS) {
    const data = decode(callDataCodec, b.data)
    const r = certificateCall(state, {
      from: b.from,
      method: data.method,
      params: data.params,
      value: b.value,
      networkId: b.networkId,
      height: block.height,
      txHash: hash,
      query: false,
    })
    const stepsUsed = base + CERTIFICATE_STEPS
    return r.ok ? { ok: true, stepsUsed, logs: r.logs } : { ok: false, stepsUsed, failure: r.failure }
  }
  if (b.kind === TxKind.Call && b.to === CHANNEL_ADDRESS) {
    const data = decode(callDataCodec, b.data)
    // The value moves to the channel account inside the call, so a refused call moves nothing.
    const r = channelCall(state, {
      from: b.from,
      method: data.method,
      params: data.params,
      value: b.value,
      height: block.height,
      txHash: hash,
      query: false,
      ...(env.crypto === undefined ? {} : { crypto: env.crypto }),
    })
    const stepsUsed = base + CHANNEL_STEPS
    return r.ok ? { ok: true, stepsUsed, logs: r.logs } : { ok: false, stepsUsed, failure: r.failure }
  }
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
      const scores = servingLookup(state, cache)
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
        const rec = readRecord(state, b.to)
        if (rec !== undefined && rec.serving === 0) return { ok: false, stepsUsed: base, failure: notActive(b.to) }
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
      const data = decode(deployDataCodec, b.data)
      if (isContractAddress(b.to) && b.to !== NEW_SCORE_ADDRESS) return update(tx, data, state, cache, base, block.height, env.params)
      return deploy(tx, hash, data, state, cache, common, base, block.height, env.params)
    }
  }
}

function notActive(a: Address): { code: string; message: string } {
  return { code: 'SCORE_NOT_ACTIVE', message: `no version of ${a} serves (pending or rejected audit)` }
}

/**
 * The `to` of a deploy that creates a new SCORE (any account address works too); a deploy to the
 * address of an existing SCORE registers an update of it.
 */
export const NEW_SCORE_ADDRESS = 'cx0000000000000000000000000000000000000000' as Address

function deploy(
  tx: Transaction,
  hash: Uint8Array,
  data: DeployData,
  state: StateOverlay,
  cache: ScoreCache,
  common: Omit<Parameters<typeof callScore>[0], 'to' | 'method' | 'params' | 'value' | 'limits'>,
  base: number,
  height: number,
  params: ChainParams,
): Outcome {
  const b = tx.body
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
  const audited = params.requireAudit
  const v1: ScoreVersion = {
    version: 1,
    codeHash,
    deployer: b.from,
    deployedAt: height,
    audit: audited ? AuditStatus.Pending : AuditStatus.Accepted,
    status: audited ? VersionStatus.Pending : VersionStatus.Active,
    activeFrom: audited ? undefined : height,
    params: null,
    failure: undefined,
  }
  writeRecord(state, address, { deployer: b.from, serving: audited ? 0 : 1, versions: [v1] })
  move(state, b.from, address, b.value)
  if (!Object.hasOwn(loaded.abi.methods, 'onInstall')) return { ok: true, stepsUsed: steps, scoreAddress: address }
  // onInstall runs at deploy even while audit is pending: the constructor's parameters are checked
  // now, and an accepted version serves at once with its storage ready.
  const r = callScore({
    ...common,
    scores: (a) => (a === address ? loaded : common.scores(a)),
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
 * Registers a new version of the SCORE at `tx.to`. Only the SCORE's creator may, and only while it
 * holds the deployer right; one update at a time (none pending or scheduled); the SCORE must have a
 * serving version. The parameters are checked now against the new code's `onUpdate` (which runs at
 * activation). Without audit the version is accepted at once and activates at the next block.
 */
function update(
  tx: Transaction,
  data: DeployData,
  state: StateOverlay,
  cache: ScoreCache,
  base: number,
  height: number,
  params: ChainParams,
): Outcome {
  const b = tx.body
  const steps = base + STEP_COSTS.codeByte * data.code.length
  const no = (code: string, message: string): Outcome => ({ ok: false, stepsUsed: steps, failure: { code, message } })
  const rec = readRecord(state, b.to)
  if (rec === undefined) return no('UNKNOWN_SCORE', `no SCORE at ${b.to} to update (deploy a new SCORE to ${NEW_SCORE_ADDRESS})`)
  if (!hasRight(state, b.from, Right.Deployer)) return no('PERMISSION_DENIED', `${b.from} does not hold the deployer right`)
  if (rec.deployer !== b.from) return no('PERMISSION_DENIED', `only ${rec.deployer}, which created ${b.to}, may update it`)
  if (b.value !== 0n) return no('NOT_PAYABLE', 'an update carries no value')
  if (rec.serving === 0) return no('SCORE_NOT_ACTIVE', `${b.to} has no serving version to update`)
  if (rec.versions.some((v) => v.status === VersionStatus.Pending || v.status === VersionStatus.Scheduled))
    return no('UPDATE_IN_PROGRESS', `${b.to} already has a version waiting for audit or activation`)
  if (rec.versions.length >= MAX_SCORE_VERSIONS) return no('TOO_MANY_VERSIONS', `${b.to} has ${MAX_SCORE_VERSIONS} versions`)
  if (data.contentType !== 'application/javascript')
    return no('INVALID_CODE', `content type ${data.contentType} is not application/javascript`)
  const codeHash = sha256(data.code)
  const loaded = cache.get(codeHash, () => data.code)
  if (loaded === undefined) return no('INVALID_CODE', 'the code does not load as a SCORE (syntax, imports or manifest)')
  const hook = Object.hasOwn(loaded.abi.methods, UPDATE_METHOD) ? loaded.abi.methods[UPDATE_METHOD] : undefined
  if (hook === undefined) {
    if (data.params !== null) return no('INVALID_ARGUMENT', `the new code declares no ${UPDATE_METHOD}, so an update takes no parameters`)
  } else {
    const bad = checkParams(hook, data.params)
    if (bad !== undefined) return no('INVALID_ARGUMENT', bad)
  }
  const existing = state.get(codeKey(codeHash))
  if (existing === undefined || !bytesEqual(existing, data.code)) state.set(codeKey(codeHash), data.code)
  const version = rec.versions.length + 1
  const audited = params.requireAudit
  const v: ScoreVersion = {
    version,
    codeHash,
    deployer: b.from,
    deployedAt: height,
    audit: audited ? AuditStatus.Pending : AuditStatus.Accepted,
    status: audited ? VersionStatus.Pending : VersionStatus.Scheduled,
    activeFrom: audited ? undefined : height + 1,
    params: data.params,
    failure: undefined,
  }
  writeRecord(state, b.to, { ...rec, versions: [...rec.versions, v] })
  if (!audited) writeScheduled(state, [...readScheduled(state), { score: b.to, version, activeFrom: height + 1 }])
  return { ok: true, stepsUsed: steps, scoreAddress: b.to }
}

/**
 * Executes `block` on `tree` (which must be at the state after the previous block) and commits the
 * state; returns the receipts, the result (whose hash the next header carries) and the commit whose
 * ops the caller writes together with the block.
 */
export async function executeBlock(tree: StateTree, block: Block, env: ExecutionEnv): Promise<BlockExecution> {
  const state = BlockState.for(tree)
  const receipts: Receipt[] = []
  const info = { height: block.header.height, timestamp: block.header.timestamp }
  // Every transaction reads its sender's and its target's account: load them all up front.
  await state.loadAll(block.transactions.flatMap((tx) => [accountKeyOf(tx.body.from), accountKeyOf(tx.body.to)]))
  const start = await state.retrying(() => {
    const root = new StateOverlay((k) => state.read(k))
    const validators = root.get(VALIDATORS_KEY)
    if (readScheduled(root).some((u) => u.activeFrom <= info.height)) {
      if (!env.engine) throw new LoopchainError('NO_ENGINE', 'a SCORE update is due at this height and this executor has no engine')
      activateDueUpdates(root, scoreCache(env.engine), info)
    }
    return { validators, writes: root.changes() }
  })
  state.apply(start.writes)
  const read = (k: Uint8Array) => state.read(k)
  for (const tx of block.transactions) {
    const attempt = () => {
      const root = new StateOverlay(read)
      const receipt = executeTransaction(tx, root, env, info)
      return { receipt, writes: root.changes() }
    }
    // Awaited only when a read missed: a block's transactions then run without a turn each.
    let done = state.retrying(attempt)
    if (done instanceof Promise) done = await done
    const { receipt, writes } = done
    state.apply(writes)
    receipts.push(receipt)
  }
  await state.load(VALIDATORS_KEY)
  const after = state.read(VALIDATORS_KEY)
  const changed = after !== undefined && (start.validators === undefined || !bytesEqual(after, start.validators))
  // Its nodes are stored under the block's height, so they sort with the block (see StateTree).
  const commit = await tree.commit(block.header.height)
  state.settle()
  const out = { receipts, result: stateResult(commit.root, receipts), commit }
  return changed ? { ...out, nextValidators: decode(validatorSetCodec, after) } : out
}

/** The outcome of {@link queryScore}: a result, or a typed failure. */
export type QueryResult =
  | { readonly ok: true; readonly result: Value; readonly stepsUsed: number }
  | { readonly ok: false; readonly failure: { readonly code: string; readonly message: string }; readonly stepsUsed: number }

/**
 * Runs a read-only method of a SCORE against the current state (a query: nothing is written,
 * every frame is read-only whatever its ABI says). Steps are bounded by `stepLimit`. `version`
 * addresses a registered version other than the serving one (one that serves or served before):
 * its code runs over the SCORE's current storage; nested calls reach serving versions. The
 * native SCOREs' read methods answer at {@link GOVERNANCE_ADDRESS}, {@link CERTIFICATE_REGISTRY_ADDRESS}
 * and {@link CHANNEL_ADDRESS}.
 */
export async function queryScore(
  tree: StateSource,
  env: ExecutionEnv & { engine: ContractEngine },
  q: {
    from: Address
    to: Address
    method: string
    params?: Value
    height: number
    timestamp: number
    stepLimit?: number
    version?: number
  },
): Promise<QueryResult> {
  const state = new StateCache(tree)
  const cache = scoreCache(env.engine)
  return state.retrying((): QueryResult => {
    const root = new StateOverlay((k) => state.read(k))
    if (q.to === GOVERNANCE_ADDRESS) {
      const r = governanceCall(root, env.params, {
        from: q.from,
        method: q.method,
        params: q.params ?? null,
        value: 0n,
        height: q.height,
        query: true,
      })
      return r.ok ? { ok: true, result: r.result, stepsUsed: GOVERNANCE_STEPS } : { ok: false, failure: r.failure, stepsUsed: 0 }
    }
    if (q.to === CERTIFICATE_REGISTRY_ADDRESS) {
      const r = certificateCall(root, {
        from: q.from,
        method: q.method,
        params: q.params ?? null,
        value: 0n,
        networkId: 0,
        height: q.height,
        txHash: new Uint8Array(32),
        query: true,
      })
      return r.ok ? { ok: true, result: r.result, stepsUsed: CERTIFICATE_STEPS } : { ok: false, failure: r.failure, stepsUsed: 0 }
    }
    if (q.to === CHANNEL_ADDRESS) {
      const r = channelCall(root, {
        from: q.from,
        method: q.method,
        params: q.params ?? null,
        value: 0n,
        height: q.height,
        txHash: new Uint8Array(32),
        query: true,
      })
      return r.ok ? { ok: true, result: r.result, stepsUsed: CHANNEL_STEPS } : { ok: false, failure: r.failure, stepsUsed: 0 }
    }
    const serving = servingLookup(root, cache)
    let scores = serving
    const rec = readRecord(root, q.to)
    if (rec !== undefined && q.version !== undefined) {
      const v = rec.versions[q.version - 1]
      if (v === undefined || !isQueryable(v))
        return {
          ok: false,
          failure: { code: 'SCORE_NOT_ACTIVE', message: `version ${q.version} of ${q.to} is not one that serves or served` },
          stepsUsed: 0,
        }
      const old = cache.get(v.codeHash, () => root.get(codeKey(v.codeHash)))
      scores = (a) => (a === q.to ? old : serving(a))
    } else if (rec !== undefined && servingVersion(rec) === undefined) return { ok: false, failure: notActive(q.to), stepsUsed: 0 }
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

/**
 * The account of `a` as the last block executed on `tree` left it, when that block's view still
 * matches the tree and touched `a`; `undefined` otherwise (then {@link getAccount} reads it).
 * Synchronous and without a store read: a node refreshes its block's senders' nonces with it.
 */
export function peekAccount(tree: StateTree, a: Address): AccountState | undefined {
  const raw = BlockState.peek(tree, accountKeyOf(a))
  if (raw === undefined) return undefined
  return raw === null ? EMPTY_ACCOUNT : decode(accountStateCodec, raw)
}

/** The account state of `a` (balance and nonce) in `tree`'s current state, or in a snapshot's. */
export async function getAccount(tree: StateSource, a: Address): Promise<AccountState> {
  const raw = await tree.get(accountKey(a))
  return raw === undefined ? EMPTY_ACCOUNT : decode(accountStateCodec, raw)
}
