import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { encode } from '../../src/codec/codec.js'
import { toHex } from '../../src/codec/hex.js'
import { type Value, value as valueCodec } from '../../src/codec/value.js'
import { sha256 } from '../../src/crypto/hash.js'
import {
  type CallLimits,
  type ContractEngine,
  DEFAULT_STEP_SCHEDULE,
  EngineFault,
  HostAbort,
  HostRejection,
  initEngine,
  type LoadedContract,
} from '../../src/score/engine/index.js'
import { MemoryHost } from '../fixtures/score/memory-host.js'

const fixtures = new URL('../fixtures/score/', import.meta.url)
const TOKEN = readFileSync(new URL('token.js', fixtures), 'utf8')
/** Exact step counts of fixed programs in the pinned engine build: a change means the engine (or its metering) changed. */
const STEPS = JSON.parse(readFileSync(new URL('steps.json', fixtures), 'utf8')) as Record<string, number>
/** SHA-256 of the reference token's memory image, outside the start-up environment block. */
const STEPS_DIGEST = (STEPS as unknown as Record<string, string>).tokenImageSha256

const LIMITS: CallLimits = { stepLimit: 1_000_000, memoryLimit: 8 << 20 }

let engine: ContractEngine

beforeAll(async () => {
  engine = await initEngine()
})

function load(source: string): LoadedContract {
  const r = engine.load(source)
  if (!r.ok) throw new Error(`load failed: ${r.failure.code} ${r.failure.message}`)
  return r.contract
}

/** A contract with one method `t(args)` whose body is `body`. */
function method(body: string): LoadedContract {
  return load(`export function t(args) { ${body} }`)
}

describe('loading', () => {
  it('reports a syntax error as INVALID_CODE', () => {
    const r = engine.load('export function (')
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.failure.code).toBe('INVALID_CODE')
  })

  it('refuses bytes that are not UTF-8', () => {
    const r = engine.load(new Uint8Array([0x65, 0xff, 0xfe]))
    expect(r).toEqual({ ok: false, failure: { code: 'INVALID_CODE', message: 'contract code is not valid UTF-8' } })
  })

  it('loads UTF-8 bytes and strings alike', () => {
    const bytes = new TextEncoder().encode('export function hi() { return "héllo" }')
    const r = engine.load(bytes)
    expect(r.ok).toBe(true)
    if (r.ok) expect(r.contract.call('hi', null, new MemoryHost(), LIMITS)).toMatchObject({ ok: true, result: 'héllo' })
  })

  it('refuses code that imports a module as INVALID_CODE', () => {
    const r = engine.load('import fs from "node:fs"; export function t() { return 1n }')
    expect(r).toEqual({ ok: false, failure: { code: 'INVALID_CODE', message: "ReferenceError: could not load module 'node:fs'" } })
  })

  it('charges top-level code to every call and reports its failure deterministically', () => {
    const c = load('throw new Error("boom"); export function t() { return null }')
    const a = c.call('t', null, new MemoryHost(), LIMITS)
    const b = c.call('t', null, new MemoryHost(), LIMITS)
    expect(a).toEqual(b)
    expect(a).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR', message: 'module initialisation failed: boom' } })
  })
})

describe('calls', () => {
  it('runs the reference token: mint, transfer, balance, event', () => {
    const token = load(TOKEN)
    const host = new MemoryHost({ sender: 'alice' })
    expect(token.call('mint', { to: 'alice', amount: 1000n }, host, LIMITS)).toMatchObject({ ok: true, result: null })
    expect(token.call('transfer', { to: 'bob', amount: 10n }, host, LIMITS)).toMatchObject({ ok: true, result: true })
    expect(token.call('balanceOf', { owner: 'bob' }, host, LIMITS)).toMatchObject({ ok: true, result: 10n })
    expect(token.call('balanceOf', { owner: 'alice' }, host, LIMITS)).toMatchObject({ ok: true, result: 990n })
    expect(host.events).toEqual([{ event: 'Transfer', data: { amount: 10n, from: 'alice', to: 'bob' } }])
  })

  it('returns a thrown error as CONTRACT_ERROR with its message', () => {
    const token = load(TOKEN)
    const r = token.call('transfer', { to: 'bob', amount: 5n }, new MemoryHost(), LIMITS)
    expect(r).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR', message: 'insufficient balance' } })
  })

  it('reports a missing export as UNKNOWN_METHOD', () => {
    const r = load(TOKEN).call('burn', null, new MemoryHost(), LIMITS)
    expect(r).toMatchObject({ ok: false, failure: { code: 'UNKNOWN_METHOD' } })
  })

  it('reports a non-identifier method name and non-Value arguments as INVALID_ARGUMENT without running', () => {
    const token = load(TOKEN)
    expect(token.call('__proto__.x', null, new MemoryHost(), LIMITS)).toMatchObject({
      ok: false,
      failure: { code: 'INVALID_ARGUMENT' },
      stepsUsed: 0,
    })
    expect(token.call('balanceOf', { owner: 1 } as unknown as Value, new MemoryHost(), LIMITS)).toMatchObject({
      ok: false,
      failure: { code: 'INVALID_ARGUMENT' },
      stepsUsed: 0,
    })
  })

  it('refuses a result that is not a Value', () => {
    const r = method('return 1').call('t', null, new MemoryHost(), LIMITS)
    expect(r).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR', message: 'not a Value: number (use a bigint)' } })
  })

  it('maps undefined to null', () => {
    expect(method('return undefined').call('t', null, new MemoryHost(), LIMITS)).toMatchObject({ ok: true, result: null })
  })

  it('lets the host make a contract-visible, catchable error (HostRejection)', () => {
    const host = new MemoryHost({}, () => {
      throw new HostRejection('callee reverted')
    })
    const c = method('try { loopchain.call(new Uint8Array([1]), "x", null) } catch (e) { return e.message }')
    expect(c.call('t', null, host, LIMITS)).toMatchObject({ ok: true, result: 'callee reverted' })
  })

  it('lets the host end the call with a failure code (HostAbort), even if the contract catches', () => {
    const host = new MemoryHost({}, () => {
      throw new HostAbort('OUT_OF_STEPS', 'callee used the rest of the budget')
    })
    const c = method('try { loopchain.call(new Uint8Array([1]), "x", null) } catch (e) {} for (;;) {}')
    expect(c.call('t', null, host, LIMITS)).toEqual({
      ok: false,
      failure: { code: 'OUT_OF_STEPS', message: 'callee used the rest of the budget' },
      stepsUsed: LIMITS.stepLimit,
    })
  })

  it('turns any other host exception into an EngineFault (HOST_FAILED) and stays usable', () => {
    const host = new MemoryHost({}, () => {
      throw new Error('database unavailable')
    })
    const c = method('try { loopchain.call(new Uint8Array([1]), "x", null) } catch (e) {} return 1n')
    expect(() => c.call('t', null, host, LIMITS)).toThrow(EngineFault)
    expect(engine.faulted).toBe(false)
    expect(method('return 2n').call('t', null, new MemoryHost(), LIMITS)).toMatchObject({ ok: true, result: 2n })
  })

  it('passes storage bytes both ways and deletes', () => {
    const host = new MemoryHost()
    const c = method(`
      const k = new Uint8Array([1, 2, 3])
      loopchain.storage.set(k, new Uint8Array([9, 8]))
      const got = loopchain.storage.get(k)
      loopchain.storage.delete(k)
      return [got, loopchain.storage.get(k)]`)
    expect(c.call('t', null, host, LIMITS)).toMatchObject({ ok: true, result: [new Uint8Array([9, 8]), null] })
    expect(host.store.size).toBe(0)
  })

  it('nests contract calls through the host up to the configured depth, then fails deterministically', () => {
    const c = method('return loopchain.call(new Uint8Array(0), "t", null)')
    const host: MemoryHost = new MemoryHost({}, () => {
      const r = c.call('t', null, host, LIMITS)
      if (!r.ok) throw new HostRejection(`${r.failure.code}: ${r.failure.message}`)
      return r.result
    })
    const r = c.call('t', null, host, LIMITS)
    expect(r).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR' } })
    if (!r.ok) expect(r.failure.message.endsWith('STACK_OVERFLOW: contract calls nest deeper than 4')).toBe(true)
    expect(host.calls.call).toBe(4)
  })

  it('keeps a caller intact while a callee of another contract runs at the next depth', () => {
    const callee = load('export function v() { return 7n }')
    const caller = method('const x = 5n; const y = loopchain.call(new Uint8Array(0), "v", null); return x + y')
    const host = new MemoryHost({}, (_t, m, a) => {
      const r = callee.call(m, a, host, LIMITS)
      return r.ok ? r.result : null
    })
    expect(caller.call('t', null, host, LIMITS)).toMatchObject({ ok: true, result: 12n })
  })
})

describe('metering', () => {
  it('stops an infinite loop with OUT_OF_STEPS and charges exactly the limit', () => {
    const c = method('for (;;) {}')
    for (const stepLimit of [1, 999, 12_345, 100_000]) {
      const r = c.call('t', null, new MemoryHost(), { stepLimit, memoryLimit: LIMITS.memoryLimit })
      expect(r).toEqual({ ok: false, failure: { code: 'OUT_OF_STEPS', message: 'step limit reached' }, stepsUsed: stepLimit })
    }
  })

  it('lets a call use exactly its limit and fails it one step below', () => {
    const c = method('let s = 0; for (let i = 0; i < 1000; i++) s += i; return BigInt(s)')
    const free = c.call('t', null, new MemoryHost(), LIMITS)
    expect(free.ok).toBe(true)
    const need = free.stepsUsed
    expect(c.call('t', null, new MemoryHost(), { ...LIMITS, stepLimit: need })).toEqual({ ok: true, result: 499500n, stepsUsed: need })
    expect(c.call('t', null, new MemoryHost(), { ...LIMITS, stepLimit: need - 1 })).toMatchObject({
      ok: false,
      failure: { code: 'OUT_OF_STEPS' },
      stepsUsed: need - 1,
    })
  })

  it('cannot be escaped by catching: the interrupt is uncatchable', () => {
    const c = method('try { for (;;) {} } catch (e) { return "caught" } finally { return "finally" }')
    expect(c.call('t', null, new MemoryHost(), { ...LIMITS, stepLimit: 5000 })).toMatchObject({
      ok: false,
      failure: { code: 'OUT_OF_STEPS' },
      stepsUsed: 5000,
    })
  })

  it('meters catastrophic regular-expression backtracking', () => {
    const c = method("return /(a+)+b/.test('a'.repeat(40))")
    expect(c.call('t', null, new MemoryHost(), { ...LIMITS, stepLimit: 200_000 })).toMatchObject({
      ok: false,
      failure: { code: 'OUT_OF_STEPS' },
      stepsUsed: 200_000,
    })
  })

  it('meters a getter on the result (marshalling runs inside the meter)', () => {
    const c = method('return { get x() { for (;;) {} } }')
    expect(c.call('t', null, new MemoryHost(), { ...LIMITS, stepLimit: 50_000 })).toMatchObject({
      ok: false,
      failure: { code: 'OUT_OF_STEPS' },
      stepsUsed: 50_000,
    })
  })

  it('stops deep recursion with STACK_OVERFLOW, the same way every time', () => {
    const c = method('function f(n) { return f(n + 1) + 1 } return f(0)')
    const a = c.call('t', null, new MemoryHost(), LIMITS)
    expect(a).toEqual({
      ok: false,
      failure: { code: 'STACK_OVERFLOW', message: 'Maximum call stack size exceeded' },
      stepsUsed: STEPS.recursion,
    })
    expect(c.call('t', null, new MemoryHost(), LIMITS)).toEqual(a)
  })

  it('stops a huge allocation with OUT_OF_MEMORY', () => {
    const c = method("return BigInt('x'.repeat(100_000_000).length)")
    expect(c.call('t', null, new MemoryHost(), LIMITS)).toMatchObject({
      ok: false,
      failure: { code: 'OUT_OF_MEMORY', message: 'out of memory' },
    })
  })

  it('stops gradual growth with OUT_OF_MEMORY at the same point every time', () => {
    const c = method('const a = []; for (;;) a.push(new Uint8Array(4096))')
    const limits = { stepLimit: 10_000_000, memoryLimit: 4 << 20 }
    const a = c.call('t', null, new MemoryHost(), limits)
    expect(a).toMatchObject({ ok: false, failure: { code: 'OUT_OF_MEMORY' } })
    expect(c.call('t', null, new MemoryHost(), limits)).toEqual(a)
    expect(a.stepsUsed).toBe(STEPS.memoryGrowth4MiB)
  })

  it('hits the memory limit at the same point before and after the sandbox memory has grown', () => {
    const c = method('const a = []; for (;;) a.push(new Uint8Array(1 << 20))')
    const at = (mib: number) => c.call('t', null, new MemoryHost(), { stepLimit: 10_000_000, memoryLimit: mib << 20 })
    const before = at(4)
    expect(before).toMatchObject({ ok: false, failure: { code: 'OUT_OF_MEMORY' } })
    expect(at(64)).toMatchObject({ ok: false, failure: { code: 'OUT_OF_MEMORY' } })
    expect(at(4)).toEqual(before)
  })

  it('charges host calls by the schedule', () => {
    const none = method('return null').call('t', null, new MemoryHost(), LIMITS)
    const one = method('loopchain.storage.set(new Uint8Array(3), new Uint8Array(5)); return null').call('t', null, new MemoryHost(), LIMITS)
    // The host part is hostCall + 8 bytes; the rest is the prelude's own work preparing the arguments.
    expect(one.stepsUsed - none.stepsUsed).toBeGreaterThanOrEqual(DEFAULT_STEP_SCHEDULE.hostCall + 8 * DEFAULT_STEP_SCHEDULE.hostByte)
  })

  it('charges the description of a thrown value to the call, within its limit', () => {
    const c = method('throw { toString() { for (;;) {} } }')
    const r = c.call('t', null, new MemoryHost(), LIMITS)
    expect(r).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR' } })
    // Describing it ran until its budget (100,000 steps) ran out: that is the call's cost now.
    expect(r.stepsUsed).toBeGreaterThan(90_000)
    expect(r.stepsUsed).toBeLessThanOrEqual(LIMITS.stepLimit)
    const small = c.call('t', null, new MemoryHost(), { ...LIMITS, stepLimit: 5_000 })
    expect(small).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR' } })
    expect(small.stepsUsed).toBe(5_000)
  })

  it('charges an event and a call by the bytes of their data, as a storage write', () => {
    const size = 1 << 16
    const run = (body: string) => method(body).call('t', null, new MemoryHost(), LIMITS).stepsUsed
    const emitted = (n: number) => run(`const d = new Uint8Array(${n}); loopchain.emit('E', { d }); return null`)
    expect(emitted(size) - emitted(0)).toBeGreaterThanOrEqual(size * DEFAULT_STEP_SCHEDULE.hostByte)
    const called = (n: number) =>
      run(`const d = new Uint8Array(${n}); try { loopchain.call(new Uint8Array(21), 'f', { d }) } catch {} return null`)
    expect(called(size) - called(0)).toBeGreaterThanOrEqual(size * DEFAULT_STEP_SCHEDULE.hostByte)
  })

  it('counts the same steps on repeated runs, across contracts and in a fresh engine (pinned in fixtures/score/steps.json)', async () => {
    const measure = (e: ContractEngine): Record<string, number> => {
      const r = e.load(TOKEN)
      if (!r.ok) throw new Error('load')
      const token = r.contract
      const host = new MemoryHost({ sender: 'alice' })
      const out: Record<string, number> = {}
      out.mint = token.call('mint', { to: 'alice', amount: 1_000_000n }, host, LIMITS).stepsUsed
      out.transfer = token.call('transfer', { to: 'bob', amount: 25n }, host, LIMITS).stepsUsed
      out.balanceOf = token.call('balanceOf', { owner: 'bob' }, host, LIMITS).stepsUsed
      const loop = e.load('export function t() { let s = 0; for (let i = 0; i < 1000; i++) s = (s + i) | 0; return BigInt(s) }')
      if (!loop.ok) throw new Error('load')
      out.loop1000 = loop.contract.call('t', null, host, LIMITS).stepsUsed
      return out
    }
    const first = measure(engine)
    // Something else in between, so the second run starts from a different engine history.
    method('const a = []; for (let i = 0; i < 5000; i++) a.push({ i: BigInt(i) }); return null').call('t', null, new MemoryHost(), LIMITS)
    const second = measure(engine)
    const fresh = measure(await initEngine({ maxCallDepth: 1 }))
    expect(second).toEqual(first)
    expect(fresh).toEqual(first)
    expect(first).toEqual({ mint: STEPS.mint, transfer: STEPS.transfer, balanceOf: STEPS.balanceOf, loop1000: STEPS.loop1000 })
  })
})

describe('engine state', () => {
  it('keeps exact results and steps while more contracts than it caches are interleaved', () => {
    const contracts = Array.from({ length: 11 }, (_, i) =>
      load(
        `const base = ${i}n; export function t(args) { let s = base; for (let i = 0n; i < args.n; i++) s += i; loopchain.storage.set(new Uint8Array([${i}]), new Uint8Array([1])); return s }`,
      ),
    )
    const host = new MemoryHost()
    const first = contracts.map((c) => c.call('t', { n: 50n }, host, LIMITS))
    for (let round = 0; round < 3; round++) {
      for (let i = contracts.length - 1; i >= 0; i--) expect(contracts[i]!.call('t', { n: 50n }, host, LIMITS)).toEqual(first[i])
    }
    expect(first.map((r) => (r.ok ? r.result : null))).toEqual(Array.from({ length: 11 }, (_, i) => BigInt(i) + 1225n))
  })

  it('builds byte-identical contract images whatever the engine ran before (pinned in steps.json)', async () => {
    // White-box: the image is the engine's private state. Everything but the 2 KiB start-up
    // environment block (which holds the host's LANG) must match across engines, hosts and runtimes.
    const digest = (e: ContractEngine): string => {
      const r = e.load(TOKEN)
      if (!r.ok) throw new Error('load')
      r.contract.call('balanceOf', { owner: 'x' }, new MemoryHost(), LIMITS)
      const level = (e as unknown as { levels: Array<{ entries: Map<string, { image: { low: Uint8Array; heap: Uint8Array } }> }> })
        .levels[0]!
      const image = level.entries.get(TOKEN)!.image
      const rest = image.heap.subarray(2048)
      const all = new Uint8Array(image.low.length + rest.length)
      all.set(image.low)
      all.set(rest, image.low.length)
      return toHex(sha256(all))
    }
    method('const a = []; for (let i = 0; i < 3000; i++) a.push("x" + i); return null').call('t', null, new MemoryHost(), LIMITS)
    expect(digest(engine)).toBe(STEPS_DIGEST)
    expect(digest(await initEngine({ maxCallDepth: 1 }))).toBe(STEPS_DIGEST)
  })

  it('never turns host stack exhaustion into a result: either the exact result, or a fault that retires the engine', async () => {
    const source = 'export function t() { function f(n) { return n ? f(n - 1) + 1 : 0 } return BigInt(f(150)) }'
    let local = await initEngine({ maxCallDepth: 1 })
    let contract = local.load(source)
    const expected = contract.ok ? contract.contract.call('t', null, new MemoryHost(), LIMITS) : undefined
    expect(expected).toMatchObject({ ok: true, result: 150n })
    let max = 0
    let target = Number.POSITIVE_INFINITY
    let outcome: unknown
    const dive = (n: number): number => {
      max = Math.max(max, n)
      if (n >= target) {
        try {
          outcome = contract.ok ? contract.contract.call('t', null, new MemoryHost(), LIMITS) : undefined
        } catch (e) {
          outcome = e
        }
        return 0
      }
      return dive(n + 1) + 1
    }
    try {
      dive(0)
    } catch {}
    let faults = 0
    for (let margin = 0; margin < 3000; margin += 40) {
      target = max - margin
      outcome = undefined
      try {
        dive(0)
      } catch {
        continue
      }
      if (outcome instanceof Error) {
        // Thrown before the sandbox was touched (the engine is fine) or from inside it (the engine is retired).
        let next: unknown
        try {
          next = contract.ok ? contract.contract.call('t', null, new MemoryHost(), LIMITS) : undefined
        } catch (e) {
          next = e
        }
        if (local.faulted) {
          faults++
          expect(next).toBeInstanceOf(EngineFault)
          local = await initEngine({ maxCallDepth: 1 })
          contract = local.load(source)
        } else {
          expect(next).toEqual(expected)
        }
      } else if (outcome !== undefined) {
        expect(outcome).toEqual(expected)
      }
    }
    expect(faults).toBeLessThan(75)
  })
})

describe('value marshalling', () => {
  const bigint256 = fc.bigInt({ min: -(1n << 256n), max: (1n << 256n) - 1n })
  const text = fc.string({ unit: 'grapheme', maxLength: 12 })
  const { value: arbitraryValue } = fc.letrec<{ value: Value }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constant(null),
      fc.boolean(),
      bigint256,
      text,
      fc.uint8Array({ maxLength: 16 }),
      fc.array(tie('value'), { maxLength: 4 }),
      fc.dictionary(text, tie('value'), { maxKeys: 4 }).map((d) => {
        // Dictionaries with a null prototype, so a key like "__proto__" is an ordinary key.
        const out: Record<string, Value> = Object.create(null)
        for (const [k, v] of Object.entries(d)) out[k] = v
        return out
      }),
    ),
  }))

  it('round-trips every Value through the sandbox unchanged (canonical bytes equal)', () => {
    const echo = load('export function echo(args) { return args }')
    fc.assert(
      fc.property(arbitraryValue, (v) => {
        const r = echo.call('echo', v, new MemoryHost(), LIMITS)
        expect(r.ok).toBe(true)
        if (r.ok) expect(encode(valueCodec, r.result)).toEqual(encode(valueCodec, v))
      }),
      { numRuns: 300 },
    )
  })

  it('round-trips Values the contract builds itself, through events and context', () => {
    const c = load(`export function t(args) {
      loopchain.emit('E', args)
      return [loopchain.context('v'), { 'é': 1n, a: [true, false, null], ['__proto__']: new Uint8Array([1]) }]
    }`)
    fc.assert(
      fc.property(arbitraryValue, arbitraryValue, (a, b) => {
        const host = new MemoryHost({ v: b })
        const r = c.call('t', a, host, LIMITS)
        expect(r.ok).toBe(true)
        if (!r.ok) return
        const expected: Record<string, Value> = Object.create(null)
        expected.a = [true, false, null]
        expected.é = 1n
        // An own key named __proto__ (the object has a null prototype).
        Object.defineProperty(expected, '__proto__', { value: new Uint8Array([1]), enumerable: true })
        expect(encode(valueCodec, r.result)).toEqual(encode(valueCodec, [b, expected]))
        expect(encode(valueCodec, host.events[0]!.data)).toEqual(encode(valueCodec, a))
      }),
      { numRuns: 100 },
    )
  })

  it('encodes correctly when a getter on the result emits an event mid-encoding', () => {
    const host = new MemoryHost()
    const r = method("return { a: 'first', get b() { loopchain.emit('E', { inner: [1n, 2n] }); return 'second' }, c: 3n }").call(
      't',
      null,
      host,
      LIMITS,
    )
    expect(r).toMatchObject({ ok: true, result: { a: 'first', b: 'second', c: 3n } })
    expect(host.events).toEqual([{ event: 'E', data: { inner: [1n, 2n] } }])
  })

  it('rejects integers beyond 256 bits and strings with lone surrogates coming out of the sandbox', () => {
    expect(method('return 1n << 256n').call('t', null, new MemoryHost(), LIMITS)).toMatchObject({
      ok: false,
      failure: { code: 'CONTRACT_ERROR', message: 'integer does not fit in 256 bits' },
    })
    expect(method("return '\\ud800'").call('t', null, new MemoryHost(), LIMITS)).toMatchObject({
      ok: false,
      failure: { code: 'CONTRACT_ERROR', message: 'string has a lone surrogate' },
    })
  })

  it('refuses values nested deeper than 32', () => {
    expect(method('let v = null; for (let i = 0; i < 40; i++) v = [v]; return v').call('t', null, new MemoryHost(), LIMITS)).toMatchObject({
      ok: false,
      failure: { code: 'CONTRACT_ERROR', message: 'value nested deeper than 32' },
    })
  })
})
