/**
 * The contract engine's contract with its caller: what a call needs (limits, a host), what it
 * returns (a result or a typed failure, always with the steps it used) and the errors that are
 * not a contract's fault (engine faults). Engine-independent: nothing here names QuickJS.
 */
import type { Value } from '../../codec/value.js'
import { LoopchainError } from '../../errors.js'

/**
 * Why a contract call failed. Each is a deterministic outcome: every node that runs the same call
 * sees the same code, message and step count, so it can go into a receipt.
 */
export type FailureCode =
  /** The call used more than its step limit; `stepsUsed` equals the limit. */
  | 'OUT_OF_STEPS'
  /** The call's sandbox ran out of its memory limit (an allocation failed and nothing caught it). */
  | 'OUT_OF_MEMORY'
  /** The call nested deeper than the sandbox's fixed stack allows. */
  | 'STACK_OVERFLOW'
  /** Contract code threw; the message is the thrown error's message. */
  | 'CONTRACT_ERROR'
  /** The code is not a loadable contract: not UTF-8, a syntax error, an import, too large. */
  | 'INVALID_CODE'
  /** The contract exports no function of that name, or its ABI declares no such external method. */
  | 'UNKNOWN_METHOD'
  /** The arguments are not a {@link Value} the engine can pass (or the method name is malformed), or do not match the ABI. */
  | 'INVALID_ARGUMENT'
  /** There is no SCORE at the called address (SCORE layer, `score/call.ts`). */
  | 'UNKNOWN_SCORE'
  /** A value was sent to a method the ABI does not mark payable. */
  | 'NOT_PAYABLE'
  /** A read-only call (a read-only method, a query, or anything they call) tried to write storage or emit an event. */
  | 'READONLY_VIOLATION'
  /** A call into a SCORE that is already on the call stack (re-entry is refused; see docs/writing-a-score.md). */
  | 'REENTRANCY'
  /** The permission hook (governance) refused the caller. */
  | 'PERMISSION_DENIED'
  /** An event that the ABI does not declare, or whose fields do not match the declaration, or too many events. */
  | 'INVALID_EVENT'

/** A failed call's reason, as it goes into a receipt. */
export interface CallFailure {
  /** Machine-readable reason. */
  readonly code: FailureCode
  /** Human-readable detail; deterministic, at most {@link MAX_FAILURE_MESSAGE} characters. */
  readonly message: string
}

/** Longest failure message kept (in UTF-16 units); longer ones are cut so receipts stay small. */
export const MAX_FAILURE_MESSAGE = 256

/** The outcome of one contract call. `stepsUsed` is charged whether or not the call succeeded. */
export type CallResult =
  | { readonly ok: true; readonly result: Value; readonly stepsUsed: number }
  | { readonly ok: false; readonly failure: CallFailure; readonly stepsUsed: number }

/** Per-call resource limits. */
export interface CallLimits {
  /**
   * Most steps the call may use. A step is one QuickJS "poll point" — a loop back-edge, a function
   * entry or return — plus the fixed costs in {@link StepSchedule}. Positive safe integer.
   */
  readonly stepLimit: number
  /**
   * Most bytes the sandbox heap may grow by during the call, beyond the contract's image (its
   * runtime, prelude and evaluated module, plus the free space the image already holds), in
   * the allocator's granularity. Also the largest single allocation. Bounded by {@link MAX_MEMORY_LIMIT}.
   */
  readonly memoryLimit: number
}

/** Largest memory limit a call may ask for: 256 MiB keeps every sandbox far from the wasm32 ceiling. */
export const MAX_MEMORY_LIMIT = 256 * 1024 * 1024

/** Fixed step costs the engine adds for work that does not pass through a QuickJS poll point. */
export interface StepSchedule {
  /** Steps charged for each call a contract makes into the host (storage, events, calls, context). */
  readonly hostCall: number
  /** Steps charged per byte that crosses the boundary in either direction in a host call. */
  readonly hostByte: number
  /**
   * Steps charged on top of the host call for a storage write or delete: what the block's commit
   * of it costs later (the state tree's new nodes and the write to the store).
   */
  readonly storageWrite: number
  /**
   * Steps charged each time the regular-expression engine polls for an interrupt (QuickJS does so
   * every 10,000 backtracking steps without touching the step counter).
   */
  readonly regexPoll: number
}

/**
 * What contract code can ask of the world, served synchronously (the caller pre-loads or caches
 * the state a call may touch). Implementations must be deterministic. To make a contract-visible
 * error, throw {@link HostRejection}; to stop the whole call with a failure code, throw
 * {@link HostAbort}. Anything else thrown is treated as a fault of the host, not of the contract:
 * the call throws {@link EngineFault} and produces no result.
 */
export interface HostApi {
  /** The stored value under `key`, or undefined when there is none. */
  storageGet(key: Uint8Array): Uint8Array | undefined
  /** Stores `value` under `key`. The engine passes fresh copies; the host may keep them. */
  storageSet(key: Uint8Array, value: Uint8Array): void
  /** Removes `key` (a no-op when absent). */
  storageDelete(key: Uint8Array): void
  /** Records an event log entry. */
  emit(event: string, data: Value): void
  /**
   * Calls another contract and returns its result; throw {@link HostRejection} when it fails. The
   * callee draws from the caller's budget: run it with at most `budget.remaining` steps and bill
   * what it used with `budget.charge`, so a chain of calls never uses more than the outer limit.
   */
  call(target: Uint8Array, method: string, args: Value, budget: StepBudget): Value
  /** A fact about the call's context (sender, height, block time, ...), chosen by name. */
  context(name: string): Value
}

/** The calling contract's step budget, handed to {@link HostApi.call} for the nested call. */
export interface StepBudget {
  /** Steps the caller has left (at the moment of the call). */
  readonly remaining: number
  /** Charges `steps` (a non-negative safe integer) to the caller; past its limit the caller runs out of steps. */
  charge(steps: number): void
}

/** Thrown by a {@link HostApi} method to make contract code see an ordinary, catchable Error. */
export class HostRejection extends LoopchainError<'HOST_REJECTED'> {
  constructor(message: string) {
    super('HOST_REJECTED', message, { penalize: false })
  }
}

/** Thrown by a {@link HostApi} method to end the call at once with a failure (e.g. host-side step accounting). */
export class HostAbort extends LoopchainError<FailureCode> {
  constructor(code: FailureCode, message: string) {
    super(code, message, { penalize: false })
  }
}

/** Codes of {@link EngineFault}. */
export type EngineFaultCode =
  /** The wasm engine failed to initialise, or its build does not match what this module expects. */
  | 'ENGINE_INIT'
  /** The host's native stack overflowed inside the engine: the outcome would be host-dependent. */
  | 'HOST_STACK_EXHAUSTED'
  /** The engine trapped or failed in a way a contract cannot cause deterministically. */
  | 'ENGINE_CRASHED'
  /** A {@link HostApi} method threw something other than a HostRejection or HostAbort, or returned a bad value. */
  | 'HOST_FAILED'
  /** The host could not supply the memory a call may use (checked before the call runs). */
  | 'HOST_OUT_OF_MEMORY'
  /** The engine faulted earlier and must be replaced (call `initEngine` again). */
  | 'ENGINE_UNUSABLE'

/**
 * A failure that is not the contract's doing and whose outcome could differ between machines. It
 * must never become a receipt: the node stops executing the block and reports the fault.
 */
export class EngineFault extends LoopchainError<EngineFaultCode> {
  constructor(code: EngineFaultCode, message: string, cause?: unknown) {
    super(code, message, { penalize: false, ...(cause === undefined ? {} : { cause }) })
  }
}

/** The outcome of loading contract code: a callable contract, or why the code was refused. */
export type LoadResult = { readonly ok: true; readonly contract: LoadedContract } | { readonly ok: false; readonly failure: CallFailure }

/** Contract code that compiled. Each call runs in a fresh sandbox, so no state survives between calls. */
export interface LoadedContract {
  /** The exact source the contract runs. */
  readonly source: string
  /**
   * Runs exported function `method` with `args` against `host`. Synchronous. Returns a typed
   * failure for anything the contract or its inputs caused; throws {@link EngineFault} only for
   * faults of the engine or the host.
   */
  call(method: string, args: Value, host: HostApi, limits: CallLimits): CallResult
  /**
   * Describes the module's exports without calling any: the result is
   * `{ kinds: { [export]: typeof }, value: <export \`name\` when it is not a function, else null> }`,
   * encoded as a {@link Value} inside the sandbox (so a manifest must be made of Values). The
   * contract gets no host: a getter that touches storage fails. Used to read a SCORE's manifest.
   */
  inspect(name: string, limits: CallLimits): CallResult
  /**
   * Frames a call tree may hold (the outer call is one): a call from the deepest frame fails with
   * `STACK_OVERFLOW`. The caller checks this before it looks the callee up, since loading a
   * callee's code reads its manifest with a frame of its own.
   */
  readonly maxCallDepth: number
}

/** A deterministic contract engine. */
export interface ContractEngine {
  /** Name and version of the engine build, e.g. `quickjs-ng 0.12.1 (quickjs-emscripten 0.32.0)`. */
  readonly version: string
  /** Compiles `code` (UTF-8 bytes or a string of ES module source) and returns a callable contract. */
  load(code: Uint8Array | string): LoadResult
  /** True once the engine has faulted; every later call throws {@link EngineFault}. */
  readonly faulted: boolean
}
