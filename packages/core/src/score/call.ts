/**
 * Calling a SCORE through its ABI. {@link callScore} checks the call against the manifest before
 * any contract code runs (method, parameters, payable, permission, re-entry), runs it against a
 * fresh {@link StateOverlay} with a host that enforces the rest (read-only frames, declared events,
 * key and value sizes), and merges the overlay into the caller's only when the call succeeds.
 * Contract-to-contract calls go through the same path, one overlay and one stack frame deeper,
 * drawing steps from the one budget of the outermost call.
 */
import type { Value } from '../codec/value.js'
import { type Address, addressFromBytes, isAddress } from '../crypto/address.js'
import { storageKey } from '../exec/layout.js'
import { MAX_LOGS } from '../ledger/receipt.js'
import { abiOf, checkParams, eventParts, INSTALL_METHOD, matchesType, type ScoreAbi } from './abi.js'
import {
  type CallFailure,
  type CallLimits,
  type ContractEngine,
  type FailureCode,
  HostAbort,
  type HostApi,
  HostRejection,
  type LoadedContract,
  MAX_FAILURE_MESSAGE,
} from './engine/types.js'
import type { StateOverlay } from './overlay.js'

/** A loaded contract with its validated ABI: what the executor keeps per deployed SCORE. */
export interface LoadedScore {
  readonly contract: LoadedContract
  readonly abi: ScoreAbi
}

/** The outcome of {@link loadScore}. */
export type ScoreLoadResult = ({ readonly ok: true } & LoadedScore) | { readonly ok: false; readonly failure: CallFailure }

/** Loads SCORE code and reads its manifest; code that does not compile or has a bad manifest is `INVALID_CODE`. */
export function loadScore(engine: ContractEngine, code: Uint8Array | string): ScoreLoadResult {
  const loaded = engine.load(code)
  if (!loaded.ok) return loaded
  const abi = abiOf(loaded.contract)
  if (!abi.ok) return abi
  return { ok: true, contract: loaded.contract, abi: abi.abi }
}

/** Name of the hook an update's new code runs once when it activates (ICON's `on_update`); never callable otherwise. */
export const UPDATE_METHOD = 'onUpdate'

/** Lifecycle hooks: only the executor runs them (`install: true`), never a transaction, query or SCORE. */
const HOOKS: ReadonlySet<string> = new Set([INSTALL_METHOD, UPDATE_METHOD])

/** Finds the SCORE deployed at an address (the executor's registry); undefined when there is none. */
export type ScoreLookup = (score: Address) => LoadedScore | undefined

/** Block facts a contract may read: from the block header being executed, never from a clock. */
export interface BlockInfo {
  readonly height: bigint
  /** The header's timestamp (microseconds since the Unix epoch, as in transactions). */
  readonly timestamp: bigint
}

/** What the permission hook is asked for each frame (the outer call and every nested one). */
export interface PermissionRequest {
  readonly sender: Address
  readonly score: Address
  readonly method: string
  readonly value: bigint
  /** 0 for the transaction's own call, 1 for a call made by that SCORE, and so on. */
  readonly depth: number
}

/** Governance's say on a call: a reason to refuse it (→ `PERMISSION_DENIED`), or undefined to allow. */
export type PermissionCheck = (request: PermissionRequest) => string | undefined

/** One call into a SCORE, as the executor (or a query) makes it. */
export interface ScoreCall {
  readonly scores: ScoreLookup
  /** The caller's overlay: the call runs in a child of it and commits into it only on success. */
  readonly state: StateOverlay
  /** `msg.sender` of the outer frame, and `tx.origin` of every frame. */
  readonly from: Address
  readonly to: Address
  readonly method: string
  /** Named parameters (a map), or null/absent when there are none. */
  readonly params?: Value
  /** Native value sent with the call (moving the balance is the executor's job, in the same overlay). */
  readonly value?: bigint
  readonly block: BlockInfo
  /** The transaction's hash (`tx.hash`); absent for a query, where contracts read null. */
  readonly txHash?: Uint8Array
  /** Steps for the whole call tree; memory per frame. */
  readonly limits: CallLimits
  /** A query: every frame is read-only whatever its ABI says. */
  readonly query?: boolean
  /** The executor's call of a lifecycle hook (`onInstall` at deploy, `onUpdate` at an update's activation); hooks are refused otherwise. */
  readonly install?: boolean
  readonly permit?: PermissionCheck
}

/** The outcome of {@link callScore}: the result and this call's logs, or a typed failure. Steps are charged either way. */
export type ScoreCallResult =
  | { readonly ok: true; readonly result: Value; readonly stepsUsed: number; readonly logs: ScoreCallLogs }
  | { readonly ok: false; readonly failure: CallFailure; readonly stepsUsed: number }

/** Logs of a successful call (also merged into the caller's overlay). */
export type ScoreCallLogs = StateOverlay['logs']

/** Longest storage key a contract may use: leaves room in the state tree's 1 KiB keys for the address and the executor's prefix. */
export const MAX_SCORE_KEY_BYTES = 512
/** Largest storage value a contract may write: the Value codec's string limit. */
export const MAX_SCORE_VALUE_BYTES = 1 << 20

/**
 * The state key of a SCORE's storage slot: the storage namespace, the 21-byte address, then the
 * contract's own key (see exec/layout.ts). The address has a fixed length, so no two SCOREs' keys
 * can meet, and overlay keys are state keys, so the executor applies `changes()` as they are.
 */
export function scoreStorageKey(score: Address, key: Uint8Array): Uint8Array {
  return storageKey(score, key)
}

function failure(code: FailureCode, message: string, stepsUsed = 0): ScoreCallResult {
  return { ok: false, failure: { code, message: message.slice(0, MAX_FAILURE_MESSAGE) }, stepsUsed }
}

/** A failed nested call's code, prefixed to the message the calling contract sees. */
function rejectionText(f: CallFailure): string {
  return `${f.code}: ${f.message}`.slice(0, MAX_FAILURE_MESSAGE)
}

/** Failures that end the whole transaction instead of surfacing as a catchable error. */
const STICKY: ReadonlySet<FailureCode> = new Set(['REENTRANCY'])

interface Frame {
  readonly sender: Address
  readonly score: Address
  readonly method: string
  readonly params: Value
  readonly value: bigint
  readonly readonly: boolean
  readonly depth: number
}

/** The shared part of one call tree: the SCOREs on the stack and the outer request. */
class Session {
  private readonly stack: Address[] = []

  constructor(private readonly req: ScoreCall) {}

  run(frame: Frame, parent: StateOverlay, stepLimit: number, install: boolean): ScoreCallResult {
    const { req } = this
    if (this.stack.includes(frame.score)) {
      return failure('REENTRANCY', `${frame.score} is already on the call stack; re-entering a SCORE is refused`)
    }
    const score = req.scores(frame.score)
    if (score === undefined) return failure('UNKNOWN_SCORE', `no SCORE at ${frame.score}`)
    const { abi } = score
    const method = Object.hasOwn(abi.methods, frame.method) ? abi.methods[frame.method] : undefined
    if (method === undefined || HOOKS.has(method.name) !== install) {
      return failure('UNKNOWN_METHOD', `${abi.name} has no external method ${JSON.stringify(frame.method).slice(0, 70)}`)
    }
    const bad = checkParams(method, frame.params)
    if (bad !== undefined) return failure('INVALID_ARGUMENT', bad)
    if (frame.value < 0n) return failure('INVALID_ARGUMENT', 'value must not be negative')
    if (frame.value > 0n && !method.payable) return failure('NOT_PAYABLE', `${abi.name}.${method.name} does not accept a value`)
    const refused = req.permit?.({ sender: frame.sender, score: frame.score, method: method.name, value: frame.value, depth: frame.depth })
    if (refused !== undefined) return failure('PERMISSION_DENIED', refused)
    if (stepLimit <= 0) return failure('OUT_OF_STEPS', 'step limit reached')
    const readonly = frame.readonly || method.readonly
    const overlay = parent.child()
    /** What this frame last told its contract about a failed nested call, to keep its code if uncaught. */
    let lastRejection: CallFailure | undefined
    const writable = (what: string): void => {
      if (readonly) throw new HostAbort('READONLY_VIOLATION', `${abi.name}.${method.name} is read-only here and cannot ${what}`)
    }
    const slot = (key: Uint8Array): Uint8Array => {
      if (key.length === 0 || key.length > MAX_SCORE_KEY_BYTES)
        throw new HostRejection(`a storage key must be 1 to ${MAX_SCORE_KEY_BYTES} bytes`)
      return scoreStorageKey(frame.score, key)
    }
    const host: HostApi = {
      storageGet: (key) => overlay.get(slot(key)),
      storageSet: (key, v) => {
        writable('write storage')
        if (v.length > MAX_SCORE_VALUE_BYTES) throw new HostRejection(`a storage value must be at most ${MAX_SCORE_VALUE_BYTES} bytes`)
        overlay.set(slot(key), v)
      },
      storageDelete: (key) => {
        writable('write storage')
        overlay.delete(slot(key))
      },
      emit: (event, fields) => {
        writable('emit events')
        const parts = eventParts(abi, event, fields)
        if (typeof parts === 'string') throw new HostAbort('INVALID_EVENT', parts)
        if (overlay.logCount >= MAX_LOGS) throw new HostAbort('INVALID_EVENT', `more than ${MAX_LOGS} events in one transaction`)
        overlay.log({ score: frame.score, event: parts.signature, indexed: parts.indexed, data: parts.data })
      },
      call: (target, calleeMethod, args, budget) => {
        let callee: Address
        try {
          callee = addressFromBytes(target)
        } catch {
          throw new HostRejection('the call target is not an address')
        }
        // Before the callee is looked up: a callee whose code this process has not loaded yet has
        // its manifest read in a frame of its own, which does not exist at the deepest frame. That
        // lookup failed (and was remembered as "no SCORE") where a process that had the code loaded
        // went on: two nodes, two results for one block.
        const max = score.contract.maxCallDepth
        if (frame.depth + 1 >= max) {
          lastRejection = { code: 'STACK_OVERFLOW', message: `contract calls nest deeper than ${max}` }
          throw new HostRejection(rejectionText(lastRejection))
        }
        const inner = this.run(
          { sender: frame.score, score: callee, method: calleeMethod, params: args, value: 0n, readonly, depth: frame.depth + 1 },
          overlay,
          budget.remaining,
          false,
        )
        budget.charge(inner.stepsUsed)
        if (inner.ok) return inner.result
        if (STICKY.has(inner.failure.code)) throw new HostAbort(inner.failure.code, inner.failure.message)
        lastRejection = inner.failure
        throw new HostRejection(rejectionText(inner.failure))
      },
      context: (name) => {
        switch (name) {
          case 'sender':
            return frame.sender
          case 'value':
            return frame.value
          case 'origin':
            return req.from
          case 'txHash':
            return req.txHash === undefined ? null : req.txHash.slice()
          case 'height':
            return req.block.height
          case 'timestamp':
            return req.block.timestamp
          case 'address':
            return frame.score
          default:
            return null
        }
      },
    }
    this.stack.push(frame.score)
    let r: ReturnType<LoadedContract['call']>
    try {
      r = score.contract.call(method.name, frame.params, host, { stepLimit, memoryLimit: req.limits.memoryLimit })
    } catch (e) {
      overlay.discard()
      throw e
    } finally {
      this.stack.pop()
    }
    if (!r.ok) {
      overlay.discard()
      // A nested failure the contract did not catch keeps its own code (say NOT_PAYABLE) in the receipt.
      const f = r.failure
      if (lastRejection !== undefined && f.code === 'CONTRACT_ERROR' && f.message === rejectionText(lastRejection)) {
        return { ok: false, failure: lastRejection, stepsUsed: r.stepsUsed }
      }
      return r
    }
    if (method.returns !== undefined && !matchesType(method.returns, r.result)) {
      overlay.discard()
      return failure('CONTRACT_ERROR', `${abi.name}.${method.name} returned a value that is not ${method.returns}`, r.stepsUsed)
    }
    const logs = overlay.logs.slice()
    overlay.commit()
    return { ok: true, result: r.result, stepsUsed: r.stepsUsed, logs }
  }
}

/**
 * Calls an external method of a SCORE. Bad input (an unknown SCORE or method, parameters that do
 * not match the ABI, a value sent to a non-payable method, a refused permission) fails before any
 * contract code runs; anything the contract does wrong fails the call. A failed call leaves
 * `call.state` exactly as it was; a successful one merges its writes and logs into it. Throws only
 * {@link EngineFault} (never a receipt) and programming errors such as a closed overlay.
 */
export function callScore(call: ScoreCall): ScoreCallResult {
  if (!isAddress(call.from) || !isAddress(call.to)) return failure('INVALID_ARGUMENT', 'from and to must be addresses')
  if (call.value !== undefined && typeof call.value !== 'bigint') return failure('INVALID_ARGUMENT', 'value must be a bigint')
  return new Session(call).run(
    {
      sender: call.from,
      score: call.to,
      method: call.method,
      params: call.params ?? null,
      value: call.value ?? 0n,
      readonly: call.query === true,
      depth: 0,
    },
    call.state,
    call.limits.stepLimit,
    call.install === true,
  )
}
