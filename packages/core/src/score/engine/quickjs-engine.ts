/**
 * The contract engine on QuickJS-ng compiled to WebAssembly (quickjs-emscripten, sync release
 * build with a separate .wasm file). The whole interpreter — parser, bytecode, garbage collector,
 * allocator, number formatting, Math — is WebAssembly, so a program's steps, memory use and
 * results are the same in Node.js and in a browser by construction. See docs/score-engine.md.
 *
 * Every call starts from the same memory image. Each call depth owns a wasm instance with one
 * runtime and context holding the bridge and the prelude (the base image); the first call of a
 * contract evaluates its module on the base image and copies the used part of the wasm linear
 * memory (the contract's image); every call runs on that image and the image is copied back
 * afterwards. So no state survives between calls, the allocator and the collector start every call
 * from the same point (which makes the memory limit exact), and a call costs a ~280 KiB memcpy
 * instead of building a JavaScript world.
 */
import variantImport from '@jitl/quickjs-ng-wasmfile-release-sync'
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSSyncVariant,
  type QuickJSWASMModule,
} from 'quickjs-emscripten-core'
import { decode, encode } from '../../codec/codec.js'
import { type Value, value as valueCodec } from '../../codec/value.js'
import { BRIDGE_NAMES, PRELUDE } from './guest.js'
import { type CounterCell, StepMeter } from './meter.js'
import {
  type CallFailure,
  type CallLimits,
  type CallResult,
  type ContractEngine,
  EngineFault,
  type FailureCode,
  HostAbort,
  type HostApi,
  HostRejection,
  type LoadResult,
  MAX_FAILURE_MESSAGE,
  MAX_MEMORY_LIMIT,
  type StepBudget,
  type StepSchedule,
} from './types.js'

// The package's types describe its CommonJS build, where the default export arrives wrapped; its ESM
// build (what Node's `import` and bundlers' `browser` conditions pick) exports the variant itself.
const packagedVariant: QuickJSSyncVariant =
  (variantImport as unknown as { default?: QuickJSSyncVariant }).default ?? (variantImport as unknown as QuickJSSyncVariant)

/**
 * The variant with a fixed program name. Emscripten puts an environment block on the heap at
 * start-up whose `_=` entry is the host script's path (in Node) or "./this.program" (in a
 * browser); fixing it removes one way the host leaks into the heap layout.
 */
const variant: QuickJSSyncVariant = {
  ...packagedVariant,
  importModuleLoader: async () => {
    type Loader = (options: Record<string, unknown>) => unknown
    const imported = (await packagedVariant.importModuleLoader()) as unknown as Loader | { default: Loader }
    const load = typeof imported === 'function' ? imported : imported.default
    const pinned: Loader = (options) => load({ ...options, thisProgram: './contract' })
    return pinned as unknown as Awaited<ReturnType<QuickJSSyncVariant['importModuleLoader']>>
  },
}

/** The QuickJS-ng release inside the pinned wasm build; the layout constants below are only valid for it. */
export const QUICKJS_VERSION = '0.12.1'
/** Byte offset of `interrupt_counter` in `JSContext` for the pinned build (wasm32); checked at init. */
const COUNTER_OFFSET = 288
/**
 * The 16 bytes of `JSContext` before the counter hold the clock-derived `Math.random` state and
 * `performance` time origin: the only bytes in which two nodes' images differed. Both globals are
 * removed, and the bytes are zeroed before the base image is saved, so images are byte-identical.
 */
const CLOCK_SEEDED_OFFSET = 272
const CLOCK_SEEDED_BYTES = 16
/**
 * Linear-memory layout of the pinned build (wasm-ld's default: data, BSS, a 5 MiB stack growing
 * down, then the malloc heap). Data and BSS end at 99,952; the image keeps the first 128 KiB.
 * The stack is dead between calls and is not part of the image.
 */
const LOW_BYTES = 128 * 1024
/** Initial `__stack_pointer` (wasm global 0) = the first heap byte. */
const HEAP_BASE = 5_342_832
/**
 * Address of dlmalloc's global state `gm_` (in BSS) and the offsets of the fields used: `top`
 * (everything allocated lies below it), `least_addr` (= {@link HEAP_BASE}, checked at init),
 * `footprint` (bytes taken from sbrk) and `footprint_limit` (dlmalloc refuses to grow past it:
 * the per-call memory limit). wasm32 layout of dlmalloc 2.8.6's `struct malloc_state`.
 */
const GM = 97_972
const GM_LEAST_ADDR = GM + 16
const GM_TOP = GM + 24
const GM_FOOTPRINT = GM + 432
const GM_FOOTPRINT_LIMIT = GM + 440
/** Bytes kept past `top`: the top chunk's header. */
const TOP_SLACK = 64
/**
 * Where the heap's free space starts once an instance is canonicalised. The start-up environment
 * block still differs by host (`LANG` follows the browser's language), so a padding block is
 * allocated up to this address: from here on, allocator state is the same on every host.
 */
const CANONICAL_TOP = HEAP_BASE + 2048
/** dlmalloc's per-chunk overhead on wasm32 (no footers). */
const CHUNK_OVERHEAD = 4
/** Memory reserved past a call's largest possible footprint: dlmalloc's top padding and headers. */
const RESERVE_SLACK = 256 * 1024
/**
 * The sandbox's C stack allowance. QuickJS checks it against WebAssembly's shadow stack, which is
 * deterministic; but each shadow-stack byte also costs the host's native stack up to ~15 bytes in
 * recursive C paths (the parser, JSON), and a native overflow would be host-dependent. 32 KiB
 * keeps the worst path measured under ~500 KiB of native stack, inside Node's and Chromium's
 * default ~984 KiB, and still allows about 200 nested JavaScript calls.
 */
export const SANDBOX_STACK_BYTES = 32 * 1024
/** Largest contract source accepted, in UTF-8 bytes. */
export const MAX_CODE_BYTES = 512 * 1024
/** Memory allowed while the engine compiles code at load time. */
const LOAD_MEMORY_LIMIT = 64 * 1024 * 1024
/** Budget for a module's top-level code, run once when its image is built; the steps it used are charged to every call. */
export const MODULE_INIT_STEP_LIMIT = 1_000_000
/** Memory for a module's top-level code: what it leaves behind is in every call's image and counts toward the call's limit. */
export const MODULE_INIT_MEMORY_LIMIT = 4 * 1024 * 1024
/** Steps and extra memory for turning a thrown value into a failure message (not charged to the call). */
const DESCRIBE_STEPS = 100_000
const DESCRIBE_MEMORY = 1024 * 1024
/** Method names a call may name: an identifier, so no symbol or index tricks reach the namespace. */
const METHOD_NAME = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/
/** Contract images kept per call depth; beyond that the depth's instance is reset and images rebuilt on demand. */
const MAX_IMAGES_PER_DEPTH = 8

/**
 * The default {@link StepSchedule}: a host call costs about as much time as 500 poll points (the
 * QuickJS bridge and the state behind it), and a storage write as much again twice (its share of
 * the block's commit). Measured in core docs/score-engine.md §4, Steps.
 */
export const DEFAULT_STEP_SCHEDULE: StepSchedule = Object.freeze({ hostCall: 500, hostByte: 1, storageWrite: 1_000, regexPoll: 1_000 })

/** Options of {@link initEngine}. */
export interface EngineInitOptions {
  /**
   * Where to fetch the .wasm from in a browser (a URL, e.g. Vite's `?url` import of
   * `@jitl/quickjs-ng-wasmfile-release-sync/wasm`). Node finds the file next to the package.
   */
  readonly wasmLocation?: string
  /** The .wasm bytes, when the caller already has them (no fetch, no file read). */
  readonly wasmBinary?: ArrayBuffer
  /**
   * The compiled .wasm, when the caller compiled it already: every instance the engine creates
   * (one per call depth, plus one for compiling) then skips fetching and compiling.
   */
  readonly wasmModule?: WebAssembly.Module
  /** Step costs for host work; defaults to {@link DEFAULT_STEP_SCHEDULE}. */
  readonly schedule?: Partial<StepSchedule>
  /**
   * Deepest nesting of contract calls (a contract calling a contract through the host). Each level
   * has its own wasm instance, created here. Default 4.
   */
  readonly maxCallDepth?: number
}

/** Default {@link EngineInitOptions.maxCallDepth}. */
export const DEFAULT_MAX_CALL_DEPTH = 4

interface EmscriptenHeap {
  HEAPU8: Uint8Array
}

/** Internals of quickjs-emscripten this module reads: the wasm heap and the context pointer. */
function heapOf(module: QuickJSWASMModule): EmscriptenHeap {
  return (module as unknown as { module: EmscriptenHeap }).module
}
function contextPointer(ctx: QuickJSContext): number {
  return (ctx as unknown as { ctx: { value: number } }).ctx.value
}

/** One wasm instance: its linear memory, images of it, and the interrupt counter cells in it. */
class Instance {
  private view: Int32Array
  constructor(
    readonly module: QuickJSWASMModule,
    private readonly heap: EmscriptenHeap,
  ) {
    this.view = new Int32Array(heap.HEAPU8.buffer)
  }

  /** An int32 view of the current memory (growth replaces the buffer). */
  i32(): Int32Array {
    if (this.view.buffer !== this.heap.HEAPU8.buffer) this.view = new Int32Array(this.heap.HEAPU8.buffer)
    return this.view
  }

  top(): number {
    return this.i32()[GM_TOP >> 2]!
  }

  leastAddress(): number {
    return this.i32()[GM_LEAST_ADDR >> 2]!
  }

  footprint(): number {
    return this.i32()[GM_FOOTPRINT >> 2]! >>> 0
  }

  /** Lets the heap grow to at most `bytes` taken from sbrk in all (0: no limit). */
  setFootprintLimit(bytes: number): void {
    this.i32()[GM_FOOTPRINT_LIMIT >> 2] = bytes | 0
  }

  capture(): Image {
    const bytes = this.heap.HEAPU8
    return { low: bytes.slice(0, LOW_BYTES), heap: bytes.slice(HEAP_BASE, this.top() + TOP_SLACK) }
  }

  /**
   * Makes sure the wasm memory already covers a heap footprint of `footprint` bytes, growing it
   * now (through the allocator, so the runtime's views follow) rather than in the middle of a
   * call: if the host cannot supply the memory, that must be a host fault, never an
   * out-of-memory result that another node would not see. Leaves the allocator state changed;
   * the caller restores an image afterwards.
   */
  reserve(footprint: number): boolean {
    const need = HEAP_BASE + footprint + RESERVE_SLACK
    if (this.heap.HEAPU8.length >= need) return false
    const module = this.module as unknown as { module: { _malloc(n: number): number; _free(p: number): void } }
    const p = module.module._malloc(need - this.top())
    if (p === 0) throw new EngineFault('HOST_OUT_OF_MEMORY', `the host could not grow the sandbox memory to ${need} bytes`)
    module.module._free(p)
    return true
  }

  /**
   * Pads the heap so that free space starts at {@link CANONICAL_TOP}. Only valid on a fresh
   * instance: no free chunks, a footprint that already covers the padding.
   */
  canonicalise(): void {
    const a = this.i32()
    const top = this.top()
    const free = a[GM >> 2]! | a[(GM + 4) >> 2]!
    if (free !== 0 || top > CANONICAL_TOP - 16 || HEAP_BASE + this.footprint() < CANONICAL_TOP + 64) {
      throw new EngineFault('ENGINE_INIT', `unexpected start-up heap (top ${top}, footprint ${this.footprint()}, bins ${free})`)
    }
    const module = this.module as unknown as { module: { _malloc(n: number): number } }
    module.module._malloc(CANONICAL_TOP - top - CHUNK_OVERHEAD)
    if (this.top() !== CANONICAL_TOP) throw new EngineFault('ENGINE_INIT', `heap padding missed: top ${this.top()}`)
  }

  restore(image: Image): void {
    const bytes = this.heap.HEAPU8
    bytes.set(image.low, 0)
    bytes.set(image.heap, HEAP_BASE)
  }

  /** Zeroes the context's clock-seeded fields (see {@link CLOCK_SEEDED_OFFSET}). */
  clearClockSeeds(ctx: QuickJSContext): void {
    const at = contextPointer(ctx) + CLOCK_SEEDED_OFFSET
    this.heap.HEAPU8.fill(0, at, at + CLOCK_SEEDED_BYTES)
  }

  counter(ctx: QuickJSContext): CounterCell {
    const index = (contextPointer(ctx) + COUNTER_OFFSET) >> 2
    return {
      read: () => this.i32()[index]!,
      write: (v) => {
        this.i32()[index] = v
      },
    }
  }
}

/** The used part of an instance's linear memory. */
interface Image {
  readonly low: Uint8Array
  readonly heap: Uint8Array
}

function truncate(message: string): string {
  return message.length > MAX_FAILURE_MESSAGE ? message.slice(0, MAX_FAILURE_MESSAGE) : message
}

function failed(code: FailureCode, message: string, stepsUsed: number): CallResult {
  return { ok: false, failure: { code, message: truncate(message) }, stepsUsed }
}

/** A copy of a host-side error without the engine objects quickjs-emscripten hangs on its errors. */
function plainCause(e: unknown): unknown {
  if (!(e instanceof Error)) return e
  const copy = new Error(e.message)
  copy.name = e.name
  if (e.stack !== undefined) copy.stack = e.stack
  return copy
}

function isHostStackOverflow(e: unknown): boolean {
  return e instanceof Error && e.name === 'RangeError' && /call stack/i.test(e.message)
}

/** A host stack overflow is never the contract's doing: let it through instead of turning it into a result. */
function rethrowHostStack(e: unknown): void {
  if (isHostStackOverflow(e)) throw e
}

function positiveSafeInteger(n: unknown, name: string): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0)
    throw new RangeError(`${name} must be a positive safe integer, got ${String(n)}`)
  return n
}

/**
 * Loads the QuickJS wasm module (one instance for compiling, one per call depth) and checks that
 * the build is the one this module was written against and that the host's native stack is deep
 * enough for it. Per-call execution afterwards is synchronous.
 */
export async function initEngine(options: EngineInitOptions = {}): Promise<ContractEngine> {
  const custom = {
    ...(options.wasmLocation === undefined ? {} : { wasmLocation: options.wasmLocation }),
    ...(options.wasmBinary === undefined ? {} : { wasmBinary: options.wasmBinary }),
    ...(options.wasmModule === undefined ? {} : { wasmModule: options.wasmModule }),
  }
  const depth = options.maxCallDepth ?? DEFAULT_MAX_CALL_DEPTH
  if (!Number.isSafeInteger(depth) || depth < 1 || depth > 64)
    throw new RangeError(`maxCallDepth must be an integer in 1..64, got ${depth}`)
  const instances: Instance[] = []
  try {
    for (let i = 0; i <= depth; i++) {
      const module = await newQuickJSWASMModuleFromVariant(Object.keys(custom).length === 0 ? variant : newVariant(variant, custom))
      instances.push(new Instance(module, heapOf(module)))
    }
  } catch (cause) {
    throw new EngineFault('ENGINE_INIT', `cannot load the QuickJS wasm module: ${String(cause)}`, plainCause(cause))
  }
  const [loader, ...levels] = instances as [Instance, ...Instance[]]
  const engine = new QuickJsEngine(loader, levels, { ...DEFAULT_STEP_SCHEDULE, ...options.schedule })
  engine.selfTest()
  return engine
}

class QuickJsEngine implements ContractEngine {
  readonly version = `quickjs-ng ${QUICKJS_VERSION} (quickjs-emscripten 0.32.0, @jitl/quickjs-ng-wasmfile-release-sync 0.32.0)`
  faulted = false
  private depth = 0
  /**
   * Calls entered and not yet finished through their normal exits. It equals `depth` unless an
   * exception (such as a host stack overflow) escaped from the middle of a call, in which case the
   * wasm state cannot be trusted.
   */
  private open = 0
  private readonly levels: Level[]

  constructor(
    private readonly loader: Instance,
    instances: Instance[],
    readonly schedule: StepSchedule,
  ) {
    this.levels = instances.map((i) => {
      i.canonicalise()
      return new Level(i, schedule)
    })
  }

  /** Checks the build version and the layout constants, and that deep native recursion stays inside QuickJS's own check. */
  selfTest(): void {
    const instance = this.loader
    const rt = instance.module.newRuntime()
    try {
      const banner = rt.dumpMemoryUsage().split('\n')[0] ?? ''
      if (!banner.includes(`QuickJS-ng memory usage -- ${QUICKJS_VERSION} version`)) {
        throw new EngineFault('ENGINE_INIT', `unexpected QuickJS build: ${banner}`)
      }
      const top = instance.top()
      if (instance.leastAddress() !== HEAP_BASE || !(top > HEAP_BASE && top < HEAP_BASE + (1 << 20))) {
        throw new EngineFault('ENGINE_INIT', `malloc state not found at ${GM} (least ${instance.leastAddress()}, top ${top})`)
      }
      rt.setMaxStackSize(SANDBOX_STACK_BYTES)
      const ctx = rt.newContext()
      try {
        const cell = instance.counter(ctx)
        cell.write(1_000_000)
        const loop = ctx.evalCode('for (let i = 0; i < 100; i++) {}')
        if (loop.error) loop.error.dispose()
        else loop.value.dispose()
        // 100 iterations poll 202 times in this build (two poll points per iteration plus entry and exit).
        if (cell.read() !== 1_000_000 - 202) {
          throw new EngineFault('ENGINE_INIT', `QuickJS interrupt counter not found at offset ${COUNTER_OFFSET} (read ${cell.read()})`)
        }
        const grown = ctx.evalCode('globalThis.kept = new Uint8Array(1 << 20); 0')
        if (grown.error) grown.error.dispose()
        else grown.value.dispose()
        if (instance.top() < top + (1 << 20)) throw new EngineFault('ENGINE_INIT', `malloc top at ${GM_TOP} does not follow allocation`)
        // The footprint limit must stop growth: with it set to the current footprint, a 2 MiB allocation fails.
        const before = instance.footprint()
        instance.setFootprintLimit(before)
        const refused = ctx.evalCode('try { globalThis.more = new Uint8Array(2 << 20); "grew" } catch (e) { e.message }')
        instance.setFootprintLimit(0)
        const said = refused.error ? 'error' : ctx.getString(refused.value)
        if (refused.error) refused.error.dispose()
        else refused.value.dispose()
        if (said !== 'out of memory')
          throw new EngineFault('ENGINE_INIT', `malloc footprint limit at ${GM_FOOTPRINT_LIMIT} has no effect (${said})`)
        // The deepest native recursion per shadow-stack byte seen: the parser and JSON on nested brackets.
        const json = ctx.evalCode('try { JSON.parse("[".repeat(100000)) } catch (e) { String(e) }')
        if (json.error) json.error.dispose()
        else json.value.dispose()
        const deep = ctx.evalCode('['.repeat(20_000))
        if (deep.error) deep.error.dispose()
        else deep.value.dispose()
      } finally {
        ctx.dispose()
      }
    } catch (e) {
      this.faulted = true
      if (e instanceof EngineFault) throw e
      if (isHostStackOverflow(e)) {
        throw new EngineFault('HOST_STACK_EXHAUSTED', 'the host native stack is too small for the sandbox stack allowance', plainCause(e))
      }
      throw new EngineFault('ENGINE_INIT', `engine self-test failed: ${String(e)}`, plainCause(e))
    } finally {
      rt.dispose()
    }
  }

  load(code: Uint8Array | string): LoadResult {
    this.assertUsable()
    let source: string
    if (typeof code === 'string') {
      source = code
    } else {
      try {
        source = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(code)
      } catch {
        return { ok: false, failure: { code: 'INVALID_CODE', message: 'contract code is not valid UTF-8' } }
      }
    }
    if (new TextEncoder().encode(source).length > MAX_CODE_BYTES) {
      return { ok: false, failure: { code: 'INVALID_CODE', message: `contract code is larger than ${MAX_CODE_BYTES} bytes` } }
    }
    try {
      // Grown up front, so that a host short of memory faults instead of refusing the code.
      this.loader.reserve(this.loader.footprint() + LOAD_MEMORY_LIMIT)
      const rt = this.loader.module.newRuntime()
      this.loader.setFootprintLimit(this.loader.footprint() + LOAD_MEMORY_LIMIT)
      try {
        rt.setMaxStackSize(SANDBOX_STACK_BYTES)
        rt.setMemoryLimit(LOAD_MEMORY_LIMIT)
        const ctx = rt.newContext()
        try {
          const r = ctx.evalCode(source, 'contract.js', { type: 'module', compileOnly: true, strict: true })
          if (r.error) {
            const message = errorMessage(ctx, r.error)
            r.error.dispose()
            return { ok: false, failure: { code: 'INVALID_CODE', message: truncate(message) } }
          }
          r.value.dispose()
        } finally {
          ctx.dispose()
        }
      } finally {
        rt.dispose()
        this.loader.setFootprintLimit(0)
      }
    } catch (e) {
      throw this.fault(e)
    }
    return {
      ok: true,
      contract: Object.freeze({
        source,
        call: (method: string, args: Value, host: HostApi, limits: CallLimits) => this.call(source, method, args, host, limits),
        inspect: (name: string, limits: CallLimits) => this.call(source, name, null, NO_HOST, limits, true),
        maxCallDepth: this.levels.length,
      }),
    }
  }

  private assertUsable(): void {
    if (this.open !== this.depth) this.faulted = true
    if (this.faulted) throw new EngineFault('ENGINE_UNUSABLE', 'the engine faulted earlier; create a new one with initEngine()')
  }

  private fault(e: unknown): EngineFault {
    if (e instanceof EngineFault) {
      if (e.code === 'HOST_FAILED' && isHostStackOverflow(e.cause)) {
        this.faulted = true
        return new EngineFault('HOST_STACK_EXHAUSTED', 'the host native stack overflowed in a host function', e.cause)
      }
      // A host failure or a refused reservation leaves the engine consistent (the image is restored).
      if (e.code !== 'HOST_FAILED' && e.code !== 'HOST_OUT_OF_MEMORY') this.faulted = true
      return e
    }
    this.faulted = true
    if (isHostStackOverflow(e))
      return new EngineFault('HOST_STACK_EXHAUSTED', 'the host native stack overflowed inside the sandbox', plainCause(e))
    return new EngineFault('ENGINE_CRASHED', `the engine failed: ${String(e)}`, plainCause(e))
  }

  call(source: string, method: string, args: Value, host: HostApi, limits: CallLimits, inspect = false): CallResult {
    this.assertUsable()
    const stepLimit = positiveSafeInteger(limits.stepLimit, 'stepLimit')
    const memoryLimit = positiveSafeInteger(limits.memoryLimit, 'memoryLimit')
    if (memoryLimit > MAX_MEMORY_LIMIT) throw new RangeError(`memoryLimit must be at most ${MAX_MEMORY_LIMIT}, got ${memoryLimit}`)
    if (typeof method !== 'string' || !METHOD_NAME.test(method)) {
      return failed('INVALID_ARGUMENT', `method name ${JSON.stringify(String(method)).slice(0, 80)} is not an identifier`, 0)
    }
    let argBytes: Uint8Array
    try {
      argBytes = encode(valueCodec, args)
    } catch (e) {
      rethrowHostStack(e)
      return failed('INVALID_ARGUMENT', `arguments are not a Value: ${e instanceof Error ? e.message : String(e)}`, 0)
    }
    const level = this.levels[this.depth]
    if (level === undefined) {
      // Deterministic: the nesting depth is a property of the call chain, not of the machine.
      return failed('STACK_OVERFLOW', `contract calls nest deeper than ${this.levels.length}`, 0)
    }
    this.depth++
    this.open++
    let result: CallResult | undefined
    let problem: { error: unknown } | undefined
    let entry: Entry | undefined
    try {
      entry = level.enter(source)
      result = level.run(entry, method, argBytes, host, stepLimit, memoryLimit, inspect)
    } catch (e) {
      problem = { error: e }
    } finally {
      this.depth--
    }
    try {
      if (entry !== undefined) level.leave(entry)
    } catch (e) {
      problem = { error: e }
    }
    if (problem !== undefined || result === undefined) {
      const f = this.fault(problem?.error)
      this.open--
      throw f
    }
    this.open--
    return result
  }
}

/** Reads name and message of an error handle without running contract code (used at load time only). */
function errorMessage(ctx: QuickJSContext, error: QuickJSHandle): string {
  const dumped = ctx.dump(error) as unknown
  if (dumped !== null && typeof dumped === 'object') {
    const { name, message } = dumped as { name?: unknown; message?: unknown }
    return `${typeof name === 'string' ? name : 'Error'}: ${typeof message === 'string' ? message : ''}`
  }
  return String(dumped)
}

/** Raised inside a bridge function to make the contract see a plain Error. */
class GuestError extends Error {}

/** A host method broke the HostApi contract (bad return type): a host fault, not a contract failure. */
class HostContractError extends Error {}

/** What one running call needs from its bridge functions. */
interface CallState {
  readonly host: HostApi
  abort: CallFailure | undefined
  hostFailure: { error: unknown } | undefined
}

/** A contract's image: the base image plus its evaluated module. */
interface Entry {
  readonly image: Image
  /** Bytes the image's heap took from sbrk: the base of the per-call footprint limit. */
  readonly imageFootprint: number
  /** The module namespace (valid while this image is in memory); undefined when initialisation failed. */
  readonly namespace: QuickJSHandle | undefined
  /** Steps the module's top-level code used, or why it failed. */
  readonly init: { readonly steps: number; readonly failure?: CallFailure }
}

/**
 * One call depth: a wasm instance holding one QuickJS runtime and context with the bridge and the
 * prelude (the "base image"), and the images of contracts evaluated on top of it. Every contract
 * image is built from the base image, so its allocator state, collector state and addresses
 * depend on the contract and the engine build alone, not on what else this node ran.
 */
class Level {
  private readonly base: Image
  /** Contract images by source, least recently used first. */
  private readonly entries = new Map<string, Entry>()
  /** The entry whose image is in memory, unmodified (undefined: the base image or a dirty state). */
  private current: Entry | undefined
  private readonly rt: QuickJSRuntime
  private readonly ctx: QuickJSContext
  private readonly meter: StepMeter
  private readonly invoke: QuickJSHandle
  private readonly describe: QuickJSHandle
  private readonly inspectFn: QuickJSHandle
  private readonly resolveFn: QuickJSHandle
  private state: CallState | undefined
  private handles: QuickJSHandle[] = []

  constructor(
    private readonly instance: Instance,
    private readonly schedule: StepSchedule,
  ) {
    const rt = instance.module.newRuntime()
    this.rt = rt
    rt.setMaxStackSize(SANDBOX_STACK_BYTES)
    const ctx = rt.newContext()
    this.ctx = ctx
    // quickjs-emscripten creates these handles lazily; create them now so they are in the image.
    void ctx.undefined
    void ctx.global
    this.meter = new StepMeter(instance.counter(ctx), schedule.regexPoll)
    this.meter.idle()
    rt.setInterruptHandler(() => this.meter.onInterrupt())
    this.installBridge()
    const kit = ctx.unwrapResult(ctx.evalCode(PRELUDE, 'prelude.js', { strict: true }))
    this.invoke = ctx.getProp(kit, 'invoke')
    this.describe = ctx.getProp(kit, 'describe')
    this.inspectFn = ctx.getProp(kit, 'inspect')
    this.resolveFn = ctx.getProp(kit, 'resolve')
    kit.dispose()
    rt.setMemoryLimit(-1)
    instance.setFootprintLimit(0)
    instance.clearClockSeeds(ctx)
    this.base = instance.capture()
  }

  /** Puts the contract's image in memory, building it on the base image the first time. */
  enter(source: string): Entry {
    const found = this.entries.get(source)
    if (found !== undefined) {
      this.entries.delete(source)
      this.entries.set(source, found)
      if (this.current !== found) {
        this.instance.restore(found.image)
        this.current = found
      }
      return found
    }
    if (this.entries.size >= MAX_IMAGES_PER_DEPTH) this.entries.delete(this.entries.keys().next().value as string)
    this.current = undefined
    this.instance.restore(this.base)
    if (this.instance.reserve(this.instance.footprint() + MODULE_INIT_MEMORY_LIMIT + DESCRIBE_MEMORY)) this.instance.restore(this.base)
    const entry = this.build(source)
    this.entries.set(source, entry)
    this.current = entry
    return entry
  }

  /** Puts the entry's image back, so the next call starts from it. */
  leave(entry: Entry): void {
    this.instance.restore(entry.image)
    this.current = entry
  }

  /** Evaluates the module on the base image (its top-level code metered) and saves the result. */
  private build(source: string): Entry {
    const { ctx, rt, instance, meter } = this
    rt.setMemoryLimit(MODULE_INIT_MEMORY_LIMIT)
    instance.setFootprintLimit(instance.footprint() + MODULE_INIT_MEMORY_LIMIT)
    meter.start(MODULE_INIT_STEP_LIMIT)
    const loaded = ctx.evalCode(source, 'contract.js', { type: 'module', strict: true })
    let init: Entry['init']
    let namespace: QuickJSHandle | undefined
    if (loaded.error) {
      const exhausted = meter.exhausted
      const steps = meter.stop()
      const failure = exhausted
        ? { code: 'OUT_OF_STEPS' as const, message: 'module initialisation ran out of steps' }
        : this.describeError(loaded.error, MODULE_INIT_MEMORY_LIMIT, true).failure
      loaded.error.dispose()
      init = { steps, failure: { code: failure.code, message: truncate(`module initialisation failed: ${failure.message}`) } }
    } else {
      init = { steps: meter.stop() }
      namespace = loaded.value
    }
    meter.idle()
    rt.setMemoryLimit(-1)
    instance.setFootprintLimit(0)
    return { image: instance.capture(), imageFootprint: instance.footprint(), namespace, init }
  }

  private keep(h: QuickJSHandle): QuickJSHandle {
    this.handles.push(h)
    return h
  }

  /**
   * Runs `method` of the contract whose image {@link enter} just put in memory; with `inspect`,
   * describes the module's exports instead (`method` names the export whose value to return).
   */
  run(
    entry: Entry,
    method: string,
    argBytes: Uint8Array,
    host: HostApi,
    stepLimit: number,
    memoryLimit: number,
    inspect = false,
  ): CallResult {
    const { ctx, meter } = this
    const { init } = entry
    if (init.failure !== undefined) return failed(init.failure.code, init.failure.message, Math.min(init.steps, stepLimit))
    if (init.steps >= stepLimit) return failed('OUT_OF_STEPS', 'step limit reached', stepLimit)
    if (this.instance.reserve(entry.imageFootprint + memoryLimit + DESCRIBE_MEMORY)) this.instance.restore(entry.image)
    const state: CallState = { host, abort: undefined, hostFailure: undefined }
    this.state = state
    try {
      this.rt.setMemoryLimit(memoryLimit)
      this.instance.setFootprintLimit(entry.imageFootprint + memoryLimit)
      meter.start(stepLimit - init.steps)
      const steps = (): number => init.steps + meter.stop()
      let r: ReturnType<QuickJSContext['callFunction']>
      if (inspect) {
        r = ctx.callFunction(this.inspectFn, ctx.undefined, entry.namespace!, this.keep(ctx.newString(method)))
      } else {
        const resolved = ctx.callFunction(this.resolveFn, ctx.undefined, entry.namespace!, this.keep(ctx.newString(method)))
        if (resolved.error) {
          resolved.error.dispose()
          return failed('UNKNOWN_METHOD', `the contract has no method ${method}`, steps())
        }
        const fn = this.keep(resolved.value)
        if (ctx.typeof(fn) !== 'function') return failed('UNKNOWN_METHOD', `the contract exports no function ${method}`, steps())
        const argBuffer = this.keep(ctx.newArrayBuffer(argBytes.slice().buffer))
        r = ctx.callFunction(this.invoke, ctx.undefined, fn, argBuffer)
      }
      const exhausted = meter.exhausted
      const stepsUsed = steps()
      if (state.hostFailure !== undefined) throw hostFault(state.hostFailure.error)
      if (state.abort !== undefined) {
        if (r.error) r.error.dispose()
        else r.value.dispose()
        // Whoever ran out, an OUT_OF_STEPS call is charged its whole limit.
        return failed(state.abort.code, state.abort.message, state.abort.code === 'OUT_OF_STEPS' ? stepLimit : stepsUsed)
      }
      if (r.error) {
        const error = this.keep(r.error)
        if (exhausted) return failed('OUT_OF_STEPS', 'step limit reached', stepsUsed)
        const described = this.describeError(error, memoryLimit, false, Math.max(0, Math.min(DESCRIBE_STEPS, stepLimit - stepsUsed)))
        return failed(described.failure.code, described.failure.message, stepsUsed + described.steps)
      }
      const out = this.keep(r.value)
      const bytes = ctx.getArrayBuffer(out)
      let copy: Uint8Array
      try {
        copy = bytes.value.slice()
      } finally {
        bytes.dispose()
      }
      try {
        return { ok: true, result: decode(valueCodec, copy), stepsUsed }
      } catch (e) {
        rethrowHostStack(e)
        return failed('CONTRACT_ERROR', `result is not a canonical Value: ${e instanceof Error ? e.message : String(e)}`, stepsUsed)
      }
    } finally {
      this.state = undefined
      const handles = this.handles
      this.handles = []
      for (let i = handles.length - 1; i >= 0; i--) {
        const h = handles[i]!
        if (h.alive) h.dispose()
      }
      meter.idle()
    }
  }

  /**
   * Maps a thrown guest value to a failure. Runs the prelude's `describe` (which may run the
   * contract's own `toString` or `message` getter) on at most `budget` steps, and says how many it
   * used. A call pays them: on a fixed, uncharged budget, a contract that threw a value whose
   * description loops got 100,000 steps free for every failed call it made.
   */
  private describeError(
    error: QuickJSHandle,
    memoryLimit: number,
    loading: boolean,
    budget = DESCRIBE_STEPS,
  ): { failure: CallFailure; steps: number } {
    const { ctx, meter } = this
    this.rt.setMemoryLimit(memoryLimit + DESCRIBE_MEMORY)
    this.instance.setFootprintLimit(this.instance.footprint() + DESCRIBE_MEMORY)
    meter.start(budget)
    const d = ctx.callFunction(this.describe, ctx.undefined, error)
    const steps = meter.stop()
    const failure = this.describedFailure(d, loading)
    return { failure, steps }
  }

  private describedFailure(d: ReturnType<QuickJSContext['callFunction']>, loading: boolean): CallFailure {
    const { ctx } = this
    if (d.error) {
      d.error.dispose()
      return { code: 'CONTRACT_ERROR', message: 'contract threw a value that cannot be described' }
    }
    const kind = ctx.getProp(d.value, 0)
    const message = ctx.getProp(d.value, 1)
    const code = ctx.typeof(kind) === 'string' ? ctx.getString(kind) : 'CONTRACT_ERROR'
    const text = ctx.typeof(message) === 'string' ? ctx.getString(message) : ''
    kind.dispose()
    message.dispose()
    d.value.dispose()
    if (loading && code === 'CONTRACT_ERROR' && text.startsWith('could not load module')) {
      return { code: 'INVALID_CODE', message: truncate(`contract code imports a module: ${text}`) }
    }
    const known: FailureCode = code === 'OUT_OF_MEMORY' || code === 'STACK_OVERFLOW' ? code : 'CONTRACT_ERROR'
    return { code: known, message: truncate(text) }
  }

  /** Charges host work; on exhaustion the guest sees an error now and an uncatchable interrupt at its next step. */
  private charge(bytes: number, call = true, extra = 0): void {
    if (!this.meter.charge((call ? this.schedule.hostCall : 0) + this.schedule.hostByte * bytes + extra))
      throw new GuestError('step limit reached')
  }

  private bytesArg(h: QuickJSHandle | undefined, what: string): Uint8Array {
    if (h === undefined) throw new GuestError(`${what} is missing`)
    let lifetime: ReturnType<QuickJSContext['getArrayBuffer']>
    try {
      lifetime = this.ctx.getArrayBuffer(h)
    } catch (e) {
      rethrowHostStack(e)
      throw new GuestError(`${what} must be bytes`)
    }
    try {
      return lifetime.value.slice()
    } finally {
      lifetime.dispose()
    }
  }

  private stringArg(h: QuickJSHandle | undefined, what: string): string {
    if (h === undefined || this.ctx.typeof(h) !== 'string') throw new GuestError(`${what} must be a string`)
    return this.ctx.getString(h)
  }

  private valueOf(bytes: Uint8Array, what: string): Value {
    try {
      return decode(valueCodec, bytes)
    } catch (e) {
      rethrowHostStack(e)
      throw new GuestError(`${what} is not a canonical Value: ${e instanceof Error ? e.message : String(e)}`)
    }
  }

  private hostValue(v: unknown, what: string): Uint8Array {
    try {
      return encode(valueCodec, v as Value)
    } catch (e) {
      rethrowHostStack(e)
      // The host broke its own contract; that is not the contract's fault.
      throw new HostContractError(`${what} returned something that is not a Value`, { cause: e })
    }
  }

  private installBridge(): void {
    const { ctx } = this
    const host = (): HostApi => {
      const s = this.state
      if (s === undefined) throw new GuestError('the host is not available while the module initialises')
      return s.host
    }
    const impls: Record<(typeof BRIDGE_NAMES)[number], (...a: QuickJSHandle[]) => QuickJSHandle | undefined> = {
      __lc_get: (k) => {
        const h = host()
        const key = this.bytesArg(k, 'key')
        this.charge(key.length)
        const v = h.storageGet(key)
        if (v === undefined) return undefined
        if (!(v instanceof Uint8Array)) throw new HostContractError('storageGet returned something that is not a Uint8Array')
        this.charge(v.length, false)
        return ctx.newArrayBuffer(v.slice().buffer)
      },
      __lc_set: (k, v) => {
        const h = host()
        const key = this.bytesArg(k, 'key')
        const val = this.bytesArg(v, 'value')
        this.charge(key.length + val.length, true, this.schedule.storageWrite)
        h.storageSet(key, val)
        return undefined
      },
      __lc_del: (k) => {
        const h = host()
        const key = this.bytesArg(k, 'key')
        this.charge(key.length, true, this.schedule.storageWrite)
        h.storageDelete(key)
        return undefined
      },
      __lc_emit: (e, d) => {
        const h = host()
        const event = this.stringArg(e, 'event')
        // Charged by the bytes of its data too, like a storage write: events are kept with the
        // receipt (they were charged by the name alone, and 200 events of 512 KiB cost 40,000 steps).
        const bytes = this.bytesArg(d, 'event data')
        this.charge(event.length + bytes.length)
        const data = this.valueOf(bytes, 'event data')
        h.emit(event, data)
        return undefined
      },
      __lc_call: (t, m, a) => {
        const h = host()
        const target = this.bytesArg(t, 'target')
        const method = this.stringArg(m, 'method')
        const argBytes = this.bytesArg(a, 'args')
        this.charge(target.length + method.length + argBytes.length)
        const args = this.valueOf(argBytes, 'args')
        const meter = this.meter
        const budget: StepBudget = {
          remaining: meter.remaining,
          charge: (steps) => {
            if (!Number.isSafeInteger(steps) || steps < 0)
              throw new HostContractError(`budget.charge(${String(steps)}) is not a step count`)
            meter.charge(steps)
          },
        }
        const out = this.hostValue(h.call(target, method, args, budget), 'call')
        this.charge(out.length, false)
        return ctx.newArrayBuffer(out.buffer)
      },
      __lc_ctx: (n) => {
        const h = host()
        const name = this.stringArg(n, 'name')
        this.charge(name.length)
        const out = this.hostValue(h.context(name), 'context')
        this.charge(out.length, false)
        return ctx.newArrayBuffer(out.buffer)
      },
    }
    for (const name of BRIDGE_NAMES) {
      const impl = impls[name]
      const fn = ctx.newFunction(name, (...a: QuickJSHandle[]) => {
        const s = this.state
        if (s !== undefined && (s.abort !== undefined || s.hostFailure !== undefined || this.meter.exhausted)) {
          return { error: ctx.newError('the call is stopping') }
        }
        try {
          return impl(...a)
        } catch (e) {
          if (e instanceof GuestError || e instanceof HostRejection) return { error: ctx.newError(truncate(e.message)) }
          if (s !== undefined) {
            if (e instanceof HostAbort) s.abort = { code: e.code, message: truncate(e.message) }
            else s.hostFailure = { error: e }
          }
          this.meter.halt()
          return { error: ctx.newError('the call is stopping') }
        }
      })
      ctx.setProp(ctx.global, name, fn)
      fn.dispose()
    }
  }
}

function noHost(): never {
  throw new HostRejection('no host while the module is inspected')
}

/** The host of {@link LoadedContract.inspect}: a manifest is data, so any host access is refused. */
const NO_HOST: HostApi = {
  storageGet: noHost,
  storageSet: noHost,
  storageDelete: noHost,
  emit: noHost,
  call: noHost,
  context: noHost,
}

function hostFault(e: unknown): EngineFault {
  return new EngineFault('HOST_FAILED', `a host function failed: ${e instanceof Error ? e.message : String(e)}`, plainCause(e))
}
