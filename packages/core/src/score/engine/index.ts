/**
 * The SCORE contract engine: deterministic, metered, isolated execution of JavaScript contracts
 * in QuickJS-ng compiled to WebAssembly, identical in Node.js and in browsers.
 *
 * @example
 * ```ts
 * const engine = await initEngine()
 * const loaded = engine.load('export function hello(args) { return "hi " + args.name }')
 * if (loaded.ok) loaded.contract.call('hello', { name: 'ada' }, host, { stepLimit: 100_000, memoryLimit: 4 << 20 })
 * ```
 */
export { JS_INTERRUPT_COUNTER_INIT } from './meter.js'
export {
  DEFAULT_MAX_CALL_DEPTH,
  DEFAULT_STEP_SCHEDULE,
  type EngineInitOptions,
  initEngine,
  MAX_CODE_BYTES,
  MODULE_INIT_MEMORY_LIMIT,
  MODULE_INIT_STEP_LIMIT,
  QUICKJS_VERSION,
  SANDBOX_STACK_BYTES,
} from './quickjs-engine.js'
export * from './types.js'
