/**
 * Escape attempts: contract code trying to reach the host, observe the machine, or leave state
 * behind. Each test asserts what the contract actually observed (or how its call failed); the
 * first one is the control showing that the harness does report successes and values.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import type { Value } from '../../src/codec/value.js'
import { type CallLimits, type CallResult, type ContractEngine, HostRejection, initEngine } from '../../src/score/engine/index.js'
import { MemoryHost } from '../fixtures/score/memory-host.js'

const LIMITS: CallLimits = { stepLimit: 1_000_000, memoryLimit: 8 << 20 }

let engine: ContractEngine

beforeAll(async () => {
  engine = await initEngine()
})

/** Runs `body` as the body of an exported `t(args)` in a fresh contract. */
function run(body: string, args: Value = null, host = new MemoryHost()): CallResult {
  const r = engine.load(`export function t(args) { ${body} }`)
  if (!r.ok) throw new Error(`load failed: ${r.failure.message}`)
  return r.contract.call('t', args, host, LIMITS)
}

function ok(result: Value): unknown {
  return expect.objectContaining({ ok: true, result })
}

describe('escape attempts', () => {
  it('control: the harness sees a success and its value', () => {
    expect(run("return [typeof Map, typeof BigInt, typeof loopchain, typeof loopchain.storage.get, 'ok']")).toEqual(
      ok(['function', 'function', 'object', 'function', 'ok']),
    )
  })

  it('01 finds no Node.js globals: process, require, module, Buffer, global', () => {
    expect(run('return [typeof process, typeof require, typeof module, typeof Buffer, typeof global, typeof __dirname]')).toEqual(
      ok(['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined']),
    )
  })

  it('02 finds no browser or I/O globals: window, document, fetch, WebAssembly, navigator, console', () => {
    expect(
      run(
        'return [typeof window, typeof document, typeof fetch, typeof WebAssembly, typeof navigator, typeof console, typeof XMLHttpRequest]',
      ),
    ).toEqual(ok(['undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined', 'undefined']))
  })

  it('03 sees a globalThis holding only language built-ins and loopchain', () => {
    const r = run("return Object.getOwnPropertyNames(globalThis).filter((n) => !/^[A-Z]/.test(n)).join(',')")
    expect(r).toEqual(
      ok(
        'parseInt,parseFloat,isNaN,isFinite,decodeURI,decodeURIComponent,encodeURI,encodeURIComponent,escape,unescape,undefined,globalThis,loopchain',
      ),
    )
  })

  it('04 cannot import a module statically', () => {
    const r = engine.load('import { readFileSync } from "node:fs"; export function t() { return readFileSync("/etc/passwd", "utf8") }')
    expect(r).toEqual({ ok: false, failure: { code: 'INVALID_CODE', message: "ReferenceError: could not load module 'node:fs'" } })
  })

  it('05 cannot import a module dynamically: import() never settles and nothing loads', () => {
    expect(run("let r = 'pending'; import('node:fs').then(() => { r = 'loaded' }, () => { r = 'rejected' }); return r")).toEqual(
      ok('pending'),
    )
  })

  it('06 cannot use the Function constructor', () => {
    expect(run("return Function('return globalThis')()")).toMatchObject({
      ok: false,
      failure: { code: 'CONTRACT_ERROR', message: 'dynamic code is disabled' },
    })
  })

  it('07 cannot reach the Function constructor through constructor.constructor chains', () => {
    const r = run(`const out = []
      for (const f of [function () {}, async function () {}, function* () {}, async function* () {}, [].constructor, Uint8Array]) {
        try { f.constructor('return this'); out.push('made') } catch (e) { out.push(e.message) }
      }
      return out`)
    expect(r).toEqual(ok(Array(6).fill('dynamic code is disabled')))
  })

  it('08 has no eval, direct or indirect', () => {
    expect(run('return [typeof eval, typeof globalThis.eval]')).toEqual(ok(['undefined', 'undefined']))
    expect(run("return eval('1 + 1')")).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR', message: 'eval is not defined' } })
  })

  it('09 cannot pollute the host through prototypes, and the pollution does not outlive the call', () => {
    const c = engine.load(`export function pollute() {
        Object.prototype.polluted = 'yes'; Array.prototype.push = null; JSON.parse = null; return null }
      export function look() { return [typeof ({}).polluted, typeof [].push, typeof JSON.parse] }`)
    if (!c.ok) throw new Error('load')
    expect(c.contract.call('pollute', null, new MemoryHost(), LIMITS)).toEqual(ok(null))
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(typeof [].push).toBe('function')
    expect(c.contract.call('look', null, new MemoryHost(), LIMITS)).toEqual(ok(['undefined', 'function', 'function']))
  })

  it('10 has no clock: Date and performance are gone', () => {
    expect(run('return [typeof Date, typeof performance]')).toEqual(ok(['undefined', 'undefined']))
    expect(run('return String(new Date())')).toMatchObject({
      ok: false,
      failure: { code: 'CONTRACT_ERROR', message: 'Date is not defined' },
    })
  })

  it('11 has no randomness: Math.random is gone', () => {
    expect(run('return [typeof Math.random, typeof crypto]')).toEqual(ok(['undefined', 'undefined']))
  })

  it('12 cannot observe garbage collection: WeakRef and FinalizationRegistry are gone', () => {
    expect(run('return [typeof WeakRef, typeof FinalizationRegistry]')).toEqual(ok(['undefined', 'undefined']))
  })

  it('13 has no timers or job scheduling: setTimeout, setInterval, queueMicrotask', () => {
    expect(run('return [typeof setTimeout, typeof setInterval, typeof setImmediate, typeof queueMicrotask]')).toEqual(
      ok(['undefined', 'undefined', 'undefined', 'undefined']),
    )
  })

  it('14 has no shared memory: SharedArrayBuffer and Atomics are gone', () => {
    expect(run('return [typeof SharedArrayBuffer, typeof Atomics]')).toEqual(ok(['undefined', 'undefined']))
  })

  it('15 has no Intl, and locale-sensitive functions give fixed answers', () => {
    expect(
      run(
        "return [typeof Intl, (1234.5).toLocaleString(), String('a'.localeCompare('b')), 'I'.toLocaleLowerCase('tr'), 'ß'.toLocaleUpperCase()]",
      ),
    ).toEqual(ok(['undefined', '1234.5', '-1', 'i', 'SS']))
  })

  it('16 cannot read float bit patterns (NaN payloads are not fixed by WebAssembly)', () => {
    expect(
      run(
        'return [typeof Float64Array, typeof Float32Array, typeof Float16Array, typeof DataView.prototype.getFloat64, typeof DataView.prototype.setFloat32]',
      ),
    ).toEqual(ok(['undefined', 'undefined', 'undefined', 'undefined', 'undefined']))
  })

  it('17 sees no host frames or paths in errors from host calls', () => {
    const host = new MemoryHost({}, () => {
      throw new HostRejection('no such contract')
    })
    const r = run(`try { loopchain.call(new Uint8Array([1]), 'm', null) } catch (e) { return [e.message, String(e.stack)] }`, null, host)
    expect(r.ok).toBe(true)
    if (!r.ok) return
    const [message, stack] = r.result as [string, string]
    expect(message).toBe('no such contract')
    expect(stack).not.toMatch(/node_modules|\.ts\b|node:|\/work\/|file:/)
  })

  it('18 sees only sandbox file names through Error.prepareStackTrace', () => {
    expect(run('Error.prepareStackTrace = (e, frames) => frames.map((f) => String(f.getFileName())); return new Error("x").stack')).toEqual(
      ok(['contract.js', 'prelude.js']),
    )
  })

  it('19 gets copies of arguments: mutating them does not touch the host objects', () => {
    const args = { list: [1n, 2n], bytes: new Uint8Array([1, 2]) }
    const r = run('args.list.push(3n); args.bytes[0] = 99; args.extra = true; return args.list.length === 3', args)
    expect(r).toEqual(ok(true))
    expect(args).toEqual({ list: [1n, 2n], bytes: new Uint8Array([1, 2]) })
  })

  it('20 gets arguments with no prototype to climb (maps have a null prototype)', () => {
    expect(
      run("return [Object.getPrototypeOf(args) === null, typeof args.constructor, typeof args.__proto__, 'toString' in args]", { a: 1n }),
    ).toEqual(ok([true, 'undefined', 'undefined', false]))
  })

  it('21 cannot smuggle a Proxy or getters out: they run inside the sandbox and only data leaves', () => {
    const r = run(`let reads = 0
      return new Proxy({}, {
        ownKeys() { return ['x'] },
        getOwnPropertyDescriptor() { return { value: 0n, enumerable: true, configurable: true } },
        get() { reads++; return BigInt(reads) },
      })`)
    expect(r).toEqual(ok({ x: 1n }))
  })

  it('22 cannot reach the bridge functions the prelude uses', () => {
    expect(run("return ['__lc_get', '__lc_set', '__lc_call', '__lc_ctx'].map((n) => typeof globalThis[n])")).toEqual(
      ok(['undefined', 'undefined', 'undefined', 'undefined']),
    )
  })

  it('23 cannot replace or extend the loopchain API', () => {
    const r = run(`const out = []
      for (const f of [() => { loopchain.storage = null }, () => { loopchain.storage.get = null }, () => { loopchain.extra = 1 }, () => { globalThis.loopchain = null }, () => { delete globalThis.loopchain }]) {
        try { f(); out.push('changed') } catch (e) { out.push(e.name) }
      }
      return out`)
    expect(r).toEqual(ok(['TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError']))
  })

  it('24 keeps no module state between calls', () => {
    const c = engine.load(
      'let n = 0; export function inc() { n++; globalThis.seen = (globalThis.seen ?? 0) + 1; return [BigInt(n), BigInt(globalThis.seen)] }',
    )
    if (!c.ok) throw new Error('load')
    const host = new MemoryHost()
    expect(c.contract.call('inc', null, host, LIMITS)).toEqual(ok([1n, 1n]))
    expect(c.contract.call('inc', null, host, LIMITS)).toEqual(ok([1n, 1n]))
  })

  it('25 shares no Symbol registry entries across calls', () => {
    const c = engine.load(`export function put() { globalThis[Symbol.for('loopchain.secret')] = 'x'; return null }
      export function get() { return typeof globalThis[Symbol.for('loopchain.secret')] }`)
    if (!c.ok) throw new Error('load')
    c.contract.call('put', null, new MemoryHost(), LIMITS)
    expect(c.contract.call('get', null, new MemoryHost(), LIMITS)).toEqual(ok('undefined'))
  })

  it('26 shares nothing between separate contracts, even interleaved', () => {
    const a = engine.load('export function t() { globalThis.shared = "from A"; Object.prototype.mark = "A"; return null }')
    const b = engine.load('export function t() { return [typeof globalThis.shared, typeof ({}).mark] }')
    if (!a.ok || !b.ok) throw new Error('load')
    a.contract.call('t', null, new MemoryHost(), LIMITS)
    expect(b.contract.call('t', null, new MemoryHost(), LIMITS)).toEqual(ok(['undefined', 'undefined']))
    a.contract.call('t', null, new MemoryHost(), LIMITS)
    expect(b.contract.call('t', null, new MemoryHost(), LIMITS)).toEqual(ok(['undefined', 'undefined']))
  })

  it('27 shares nothing between separate engines', async () => {
    const other = await initEngine({ maxCallDepth: 1 })
    const a = other.load('export function t() { globalThis.shared = 1n; return null }')
    if (!a.ok) throw new Error('load')
    a.contract.call('t', null, new MemoryHost(), LIMITS)
    expect(run('return typeof globalThis.shared')).toEqual(ok('undefined'))
  })

  it('28 cannot read other storage through the host object: it gets bytes, not the host', () => {
    const host = new MemoryHost()
    host.storageSet(new Uint8Array([7]), new Uint8Array([42]))
    const r = run(
      'const v = loopchain.storage.get(new Uint8Array([7])); return [v, Object.getPrototypeOf(v) === Uint8Array.prototype, typeof v.buffer.constructor.constructor]',
      null,
      host,
    )
    expect(r).toEqual(ok([new Uint8Array([42]), true, 'function']))
    // ...and that constructor is the disabled one.
    expect(
      run(
        "return (() => { try { return new Uint8Array(1).buffer.constructor.constructor('return 1')() } catch (e) { return e.message } })()",
      ),
    ).toEqual(ok('dynamic code is disabled'))
  })

  it('29 cannot call host functions during module initialisation', () => {
    const c = engine.load('const who = loopchain.context("sender"); export function t() { return who }')
    if (!c.ok) throw new Error('load')
    expect(c.contract.call('t', null, new MemoryHost(), LIMITS)).toMatchObject({
      ok: false,
      failure: { code: 'CONTRACT_ERROR', message: 'module initialisation failed: the host is not available while the module initialises' },
    })
  })

  it('30 cannot keep running after its step budget by catching the interrupt in a finally', () => {
    const host = new MemoryHost()
    const r = run('try { for (;;) {} } finally { loopchain.storage.set(new Uint8Array([1]), new Uint8Array([1])) }', null, host)
    expect(r).toMatchObject({ ok: false, failure: { code: 'OUT_OF_STEPS' }, stepsUsed: LIMITS.stepLimit })
    expect(host.calls.set).toBe(0)
  })
})
