import { beforeAll, describe, expect, it } from 'vitest'
import type { Value } from '../../src/codec/value.js'
import type { Address } from '../../src/crypto/address.js'
import {
  type ContractEngine,
  DEFAULT_STEP_SCHEDULE,
  EngineFault,
  type HostApi,
  initEngine,
  type StepBudget,
} from '../../src/score/engine/index.js'
import { abiOf, abiToValue, loadScore, MAX_SCORE_KEY_BYTES, StateOverlay, TOKEN_SOURCE } from '../../src/score/index.js'
import { addr, World } from '../fixtures/score/score-world.js'

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

const alice = addr('hx', 1)
const A = addr('cx', 0xaa)
const B = addr('cx', 0xbb)
const C = addr('cx', 0xcc)

/** A SCORE that can write, emit, call, fail and loop on request, to probe every rule. */
const GADGET = `const { VarDB, DictDB } = loopchain
export const manifest = {
  name: 'Gadget',
  methods: {
    put: { params: [['k', 'str'], ['v', 'int']], returns: 'bool' },
    typed: { params: [['i', 'int'], ['s', 'str'], ['y', 'bytes'], ['b', 'bool'], ['a', 'Address'], ['l', 'list'], ['d', 'dict'], ['o', 'int', { optional: true }]] },
    fail: { params: [['k', 'str']] },
    view: { readonly: true, params: [['k', 'str']], returns: 'int' },
    sneakyWrite: { readonly: true },
    sneakyEmit: { readonly: true },
    deposit: { payable: true, returns: 'int' },
    noted: {},
    undeclaredEvent: {},
    badEventFields: {},
    wrongReturn: { returns: 'int' },
    relay: { params: [['to', 'Address'], ['method', 'str'], ['args', 'any', { optional: true }], ['catch', 'bool', { optional: true }]] },
    viewRelay: { readonly: true, params: [['to', 'Address'], ['method', 'str'], ['args', 'any', { optional: true }]] },
    spin: { params: [['n', 'int']] },
    longKey: {},
  },
  events: {
    Noted: { indexed: [['who', 'Address'], ['k', 'str']], data: [['v', 'int'], ['memo', 'str']] },
  },
}
const vals = new DictDB('vals', 'int')
const last = new VarDB('last', 'str')
export function put({ k, v }) { vals.set(k, v); last.set(k); return true }
export function typed(p) { return p.o ?? null }
export function fail({ k }) { vals.set(k, 1n); loopchain.emit('Noted', { who: loopchain.msg.sender, k, v: 1n, memo: '' }); throw new Error('failed after writing ' + k) }
export function view({ k }) { return vals.get(k) }
export function sneakyWrite() { vals.set('x', 1n) }
export function sneakyEmit() { loopchain.emit('Noted', { who: loopchain.msg.sender, k: 'x', v: 1n, memo: '' }) }
export function deposit() { const v = loopchain.msg.value; vals.set('deposit', vals.get('deposit') + v); return v }
export function noted() { loopchain.emit('Noted', { who: loopchain.msg.sender, k: 'key', v: 5n, memo: 'hi' }) }
export function undeclaredEvent() { loopchain.emit('Other', null) }
export function badEventFields() { loopchain.emit('Noted', { who: loopchain.msg.sender, k: 'key', v: 'five', memo: '' }) }
export function wrongReturn() { vals.set('w', 1n); return 'five' }
export function helper() { return 'not external' }
export function relay({ to, method, args, catch: c }) {
  vals.set('before-' + method, 1n)
  let out
  if (c) { try { out = loopchain.call(to, method, args ?? null) } catch (e) { out = 'caught ' + e.message } }
  else out = loopchain.call(to, method, args ?? null)
  vals.set('after-' + method, 1n)
  return out
}
export function viewRelay({ to, method, args }) { return loopchain.call(to, method, args ?? null) }
export function spin({ n }) { vals.set('spinning', 1n); let s = 0; for (let i = 0n; i < n; i++) s++; vals.set('spun', n); return BigInt(s) }
export function longKey() { loopchain.storage.set(new Uint8Array(${MAX_SCORE_KEY_BYTES + 1}), new Uint8Array(1)) }
`

function gadgets(): World {
  const w = new World(engine)
  for (const at of [A, B, C]) w.deploy(GADGET, at)
  // Some state, so "unchanged" is about real bytes.
  w.call(alice, A, 'put', { k: 'seed', v: 9n })
  w.call(alice, B, 'put', { k: 'seed', v: 8n })
  w.logs.length = 0
  return w
}

function code(r: ReturnType<World['call']>): string {
  return r.ok ? 'ok' : r.failure.code
}

describe('manifest and ABI at load time', () => {
  const exportsOf = (manifest: string, fns = 'export function f() {}') => `export const manifest = ${manifest}\n${fns}`
  it.each([
    ['no manifest', 'export function f() {}'],
    ['a manifest that is not a map', exportsOf(`'f'`)],
    ['a number in the manifest (not a Value)', exportsOf(`{ name: 'X', methods: { f: { readonly: 1 } } }`)],
    ['a declared method that is not exported', exportsOf(`{ name: 'X', methods: { g: {} } }`)],
    ['a declared method that is data', exportsOf(`{ name: 'X', methods: { g: {} } }`, 'export const g = 1n')],
    ['an unknown type', exportsOf(`{ name: 'X', methods: { f: { params: [['a', 'uint']] } } }`)],
    ['a duplicated parameter', exportsOf(`{ name: 'X', methods: { f: { params: [['a', 'int'], ['a', 'str']] } } }`)],
    ['readonly and payable at once', exportsOf(`{ name: 'X', methods: { f: { readonly: true, payable: true } } }`)],
    ['an unknown method key', exportsOf(`{ name: 'X', methods: { f: { external: true } } }`)],
    [
      'four indexed fields',
      exportsOf(`{ name: 'X', methods: {}, events: { E: { indexed: [['a', 'int'], ['b', 'int'], ['c', 'int'], ['d', 'int']] } } }`),
    ],
    ['an optional event field', exportsOf(`{ name: 'X', methods: {}, events: { E: { data: [['a', 'int', { optional: true }]] } } }`)],
    ['a readonly install method', exportsOf(`{ name: 'X', methods: { onInstall: { readonly: true } } }`, 'export function onInstall() {}')],
    ['a module that throws at load', `throw new Error('no'); export const manifest = {}`],
    ['a syntax error', 'export function ('],
  ])('refuses %s as INVALID_CODE', (_what, src) => {
    const r = loadScore(engine, src)
    expect(r).toMatchObject({ ok: false, failure: { code: 'INVALID_CODE' } })
  })

  it('derives the ABI: methods with flags and types, events with signatures, queryable as a Value', () => {
    const loaded = engine.load(TOKEN_SOURCE)
    if (!loaded.ok) throw new Error('token does not load')
    const r = abiOf(loaded.contract)
    if (!r.ok) throw new Error(r.failure.message)
    const { abi } = r
    expect(abi.name).toBe('IRC2Token')
    expect(abi.methods.balanceOf).toEqual({
      name: 'balanceOf',
      params: [{ name: '_owner', type: 'Address', optional: false }],
      returns: 'int',
      readonly: true,
      payable: false,
    })
    expect(abi.methods.transfer?.params.map((p) => p.optional)).toEqual([false, false, true])
    expect(abi.events.Transfer?.signature).toBe('Transfer(Address,Address,int,bytes)')
    expect(abi.events.Transfer?.indexed.map((p) => p.name)).toEqual(['_from', '_to', '_value'])
    const described = abiToValue(abi) as Array<Record<string, Value>>
    expect(described.find((e) => e.name === 'Transfer')).toMatchObject({ type: 'event', signature: 'Transfer(Address,Address,int,bytes)' })
    expect(described.filter((e) => e.type === 'function').map((e) => e.name)).toContain('transfer')
  })
})

describe('bad input fails with a typed code and changes nothing', () => {
  const bad: Array<[string, Address, string, Value, { value?: bigint; permit?: () => string }, string]> = [
    ['an undeclared exported helper', A, 'helper', null, {}, 'UNKNOWN_METHOD'],
    ['a method that does not exist', A, 'nothing', null, {}, 'UNKNOWN_METHOD'],
    ['the manifest itself', A, 'manifest', null, {}, 'UNKNOWN_METHOD'],
    ['a SCORE that does not exist', addr('cx', 0x99), 'put', { k: 'x', v: 1n }, {}, 'UNKNOWN_SCORE'],
    ['a string where an int is declared', A, 'put', { k: 'x', v: '1' }, {}, 'INVALID_ARGUMENT'],
    ['a missing parameter', A, 'put', { k: 'x' }, {}, 'INVALID_ARGUMENT'],
    ['an undeclared parameter', A, 'put', { k: 'x', v: 1n, w: 2n }, {}, 'INVALID_ARGUMENT'],
    ['positional parameters', A, 'put', ['x', 1n], {}, 'INVALID_ARGUMENT'],
    ['a malformed Address', A, 'typed', { i: 1n, s: '', y: new Uint8Array(0), b: true, a: 'hxABC', l: [], d: {} }, {}, 'INVALID_ARGUMENT'],
    [
      'a list where a dict is declared',
      A,
      'typed',
      { i: 1n, s: '', y: new Uint8Array(0), b: true, a: alice, l: [], d: [] },
      {},
      'INVALID_ARGUMENT',
    ],
    [
      'bytes where a str is declared',
      A,
      'typed',
      { i: 1n, s: new Uint8Array(0), y: new Uint8Array(0), b: true, a: alice, l: [], d: {} },
      {},
      'INVALID_ARGUMENT',
    ],
    ['a value sent to a non-payable method', A, 'put', { k: 'x', v: 1n }, { value: 1n }, 'NOT_PAYABLE'],
    ['a caller the permission hook refuses', A, 'put', { k: 'x', v: 1n }, { permit: () => 'not a member' }, 'PERMISSION_DENIED'],
    ['an exception after writing and emitting', A, 'fail', { k: 'x' }, {}, 'CONTRACT_ERROR'],
    ['a write from a read-only method', A, 'sneakyWrite', null, {}, 'READONLY_VIOLATION'],
    ['an event from a read-only method', A, 'sneakyEmit', null, {}, 'READONLY_VIOLATION'],
    ['an undeclared event', A, 'undeclaredEvent', null, {}, 'INVALID_EVENT'],
    ['an event field of the wrong type', A, 'badEventFields', null, {}, 'INVALID_EVENT'],
    ['a result of the wrong type after a write', A, 'wrongReturn', null, {}, 'CONTRACT_ERROR'],
    ['a nested failure not caught', A, 'relay', { to: B, method: 'fail', args: { k: 'y' } }, {}, 'CONTRACT_ERROR'],
    ['a nested call with bad arguments not caught', A, 'relay', { to: B, method: 'put', args: { k: 1n } }, {}, 'INVALID_ARGUMENT'],
    ['a nested call of an unknown method not caught', A, 'relay', { to: B, method: 'helper' }, {}, 'UNKNOWN_METHOD'],
    [
      'a re-entering call',
      A,
      'relay',
      { to: B, method: 'relay', args: { to: A, method: 'put', args: { k: 'z', v: 1n } } },
      {},
      'REENTRANCY',
    ],
    [
      'a re-entering call caught by both SCOREs',
      A,
      'relay',
      { to: B, method: 'relay', args: { to: A, method: 'put', args: { k: 'z', v: 1n }, catch: true }, catch: true },
      {},
      'REENTRANCY',
    ],
    ['a call into itself', A, 'relay', { to: A, method: 'put', args: { k: 'z', v: 1n }, catch: true }, {}, 'REENTRANCY'],
    ['a storage key over the limit', A, 'longKey', null, {}, 'CONTRACT_ERROR'],
    ['running out of steps after a write', A, 'spin', { n: 10_000_000n }, {}, 'OUT_OF_STEPS'],
  ]
  it.each(bad)('%s', (_what, to, method, params, opts, expected) => {
    const w = gadgets()
    const before = w.snapshot()
    const r = w.call(alice, to, method, params, { stepLimit: 200_000, ...opts })
    expect(code(r)).toBe(expected)
    expect(w.snapshot()).toEqual(before)
    expect(w.logs).toEqual([])
  })

  it('names the reason in the message', () => {
    const w = gadgets()
    expect(w.call(alice, A, 'put', { k: 'x', v: '1' })).toMatchObject({ failure: { message: 'put: parameter v must be int, got str' } })
    expect(w.call(alice, A, 'fail', { k: 'x' })).toMatchObject({ failure: { message: 'failed after writing x' } })
    expect(w.call(alice, A, 'relay', { to: B, method: 'put', args: { k: 1n } })).toMatchObject({
      failure: { code: 'INVALID_ARGUMENT', message: 'put: parameter k must be str, got int' },
    })
  })

  it('accepts the same calls when they are right (the table above is not failing for another reason)', () => {
    const w = gadgets()
    expect(code(w.call(alice, A, 'put', { k: 'x', v: 1n }))).toBe('ok')
    expect(w.call(alice, A, 'typed', { i: 1n, s: '', y: new Uint8Array(0), b: true, a: alice, l: [], d: {}, o: 3n })).toMatchObject({
      ok: true,
      result: 3n,
    })
    expect(w.call(alice, A, 'deposit', null, { value: 7n })).toMatchObject({ ok: true, result: 7n })
    expect(code(w.call(alice, A, 'put', { k: 'x', v: 1n }, { permit: () => undefined }))).toBe('ok')
    expect(code(w.call(alice, A, 'relay', { to: B, method: 'put', args: { k: 'y', v: 1n } }))).toBe('ok')
    expect(code(w.call(alice, A, 'spin', { n: 100n }, { stepLimit: 200_000 }))).toBe('ok')
  })
})

describe('read-only calls', () => {
  it('serve a read-only method normally', () => {
    const w = gadgets()
    expect(w.call(alice, A, 'view', { k: 'seed' })).toMatchObject({ ok: true, result: 9n })
  })

  it('make a query of a writing method fail, and a read-only method calling a writing one fail', () => {
    const w = gadgets()
    const before = w.snapshot()
    expect(code(w.call(alice, A, 'put', { k: 'q', v: 1n }, { query: true }))).toBe('READONLY_VIOLATION')
    expect(code(w.call(alice, A, 'viewRelay', { to: B, method: 'put', args: { k: 'q', v: 1n } }))).toBe('READONLY_VIOLATION')
    expect(w.call(alice, A, 'viewRelay', { to: B, method: 'view', args: { k: 'seed' } })).toMatchObject({ ok: true, result: 8n })
    expect(w.snapshot()).toEqual(before)
  })
})

describe('nested calls', () => {
  it('roll back a failed inner call only, and let the caller catch it and go on', () => {
    const w = gadgets()
    const r = w.call(alice, A, 'relay', { to: B, method: 'fail', args: { k: 'inner' }, catch: true })
    expect(r).toMatchObject({ ok: true, result: 'caught CONTRACT_ERROR: failed after writing inner' })
    const view = (at: Address, k: string) => {
      const v = w.call(alice, at, 'view', { k })
      return v.ok ? v.result : v.failure.code
    }
    expect(view(A, 'before-fail')).toBe(1n)
    expect(view(A, 'after-fail')).toBe(1n)
    expect(view(B, 'inner')).toBe(0n)
    expect(w.logs).toEqual([])
  })

  it('commit a successful inner call with the outer one, logs in call order', () => {
    const w = gadgets()
    const r = w.call(alice, A, 'relay', { to: B, method: 'noted' })
    expect(r.ok).toBe(true)
    expect(w.logs).toEqual([{ score: B, event: 'Noted(Address,str,int,str)', indexed: [A, 'key'], data: [5n, 'hi'] }])
  })

  it('draw steps from one budget: the caller pays for the callee', () => {
    const w = gadgets()
    const alone = w.call(alice, B, 'spin', { n: 2000n })
    const nested = w.call(alice, A, 'relay', { to: B, method: 'spin', args: { n: 2000n } })
    expect(alone.ok && nested.ok).toBe(true)
    expect(nested.stepsUsed).toBeGreaterThan(alone.stepsUsed)
    // A limit that covers the callee alone but not the caller's own work as well.
    const before = w.snapshot()
    const r = w.call(alice, A, 'relay', { to: B, method: 'spin', args: { n: 2000n }, catch: true }, { stepLimit: alone.stepsUsed + 10 })
    expect(r).toMatchObject({ ok: false, failure: { code: 'OUT_OF_STEPS' }, stepsUsed: alone.stepsUsed + 10 })
    expect(w.snapshot()).toEqual(before)
  })

  it('stop at the engine depth limit with a typed failure', () => {
    const w = gadgets()
    for (const n of [1, 2, 3, 4]) w.deploy(GADGET, addr('cx', n))
    const chain = (ats: Address[]): Value => {
      const [head, ...rest] = ats
      return rest.length === 0 ? { to: head!, method: 'view', args: { k: 'x' } } : { to: head!, method: 'relay', args: chain(rest) }
    }
    const before = w.snapshot()
    const r = w.call(alice, A, 'relay', chain([addr('cx', 1), addr('cx', 2), addr('cx', 3), addr('cx', 4)]) as Record<string, Value>)
    expect(code(r)).toBe('STACK_OVERFLOW')
    expect(w.snapshot()).toEqual(before)
  })
})

describe('events', () => {
  it('land in the logs with indexed and data parts in declaration order', () => {
    const w = gadgets()
    const r = w.call(alice, A, 'noted')
    expect(r).toMatchObject({
      ok: true,
      logs: [{ score: A, event: 'Noted(Address,str,int,str)', indexed: [alice, 'key'], data: [5n, 'hi'] }],
    })
    expect(w.logs).toHaveLength(1)
  })
})

describe('StateOverlay', () => {
  const k = (n: number) => new Uint8Array([n])
  const v = (n: number) => new Uint8Array([n, n])
  it('reads through to the reader, hides deletions, and sorts changes by key', () => {
    const base = new Map([
      [1, v(1)],
      [2, v(2)],
    ])
    const root = new StateOverlay((key) => base.get(key[0]!))
    root.set(k(3), v(3))
    root.delete(k(1))
    expect(root.get(k(1))).toBeUndefined()
    expect(root.get(k(2))).toEqual(v(2))
    expect(root.changes()).toEqual([
      { key: k(1), value: undefined },
      { key: k(3), value: v(3) },
    ])
  })

  it('merges a committed child and drops a discarded one', () => {
    const root = new StateOverlay(() => undefined)
    const kept = root.child()
    kept.set(k(1), v(1))
    kept.log({ score: addr('cx', 1), event: 'E()', indexed: [], data: [] })
    const dropped = kept.child()
    dropped.set(k(2), v(2))
    expect(dropped.get(k(1))).toEqual(v(1))
    dropped.discard()
    kept.commit()
    expect(root.changes()).toEqual([{ key: k(1), value: v(1) }])
    expect(root.logs).toHaveLength(1)
    expect(() => kept.get(k(1))).toThrow(/already committed/)
    expect(() => root.commit()).toThrow(TypeError)
  })
})

describe('engine support for the SCORE layer', () => {
  const LIMITS = { stepLimit: 100_000, memoryLimit: 1 << 20 }
  const host = (call: HostApi['call']): HostApi => ({
    storageGet: () => undefined,
    storageSet: () => {},
    storageDelete: () => {},
    emit: () => {},
    call,
    context: () => null,
  })
  /** A host call that charges what `steps` says and returns null. */
  const charging =
    (steps: (budget: StepBudget) => number): HostApi['call'] =>
    (_t, _m, _a, budget) => {
      budget.charge(steps(budget))
      return null
    }
  const caller = () => {
    const r = engine.load('export function t() { try { loopchain.call(new Uint8Array([1]), "m", null) } catch (e) {} return 1n }')
    if (!r.ok) throw new Error('load')
    return r.contract
  }

  it('hands a nested call the remaining steps and bills the caller what the host charges', () => {
    let seen = 0
    const cheap = caller().call(
      't',
      null,
      host((_t, _m, _a, budget) => {
        seen = budget.remaining
        return null
      }),
      LIMITS,
    )
    expect(cheap.ok).toBe(true)
    // What the call itself costs before the nested one: the host call, and a little of the caller's own.
    expect(seen).toBeGreaterThan(LIMITS.stepLimit - DEFAULT_STEP_SCHEDULE.hostCall - 450)
    expect(seen).toBeLessThan(LIMITS.stepLimit)
    const billed = caller().call('t', null, host(charging(() => 1000)), LIMITS)
    expect(billed.stepsUsed).toBe(cheap.stepsUsed + 1000)
    const broke = caller().call('t', null, host(charging((b) => b.remaining + 1)), LIMITS)
    expect(broke).toMatchObject({ ok: false, failure: { code: 'OUT_OF_STEPS' }, stepsUsed: LIMITS.stepLimit })
  })

  it('treats a host that bills a nonsense step count as a host fault, not a receipt', () => {
    expect(() => caller().call('t', null, host(charging(() => -1)), LIMITS)).toThrow(EngineFault)
  })

  it('inspects exports without a host: kinds, and the value of a data export', () => {
    const r = engine.load('export const manifest = { name: "X", n: [1n] }; export function f() {}; export const g = () => 1')
    if (!r.ok) throw new Error('load')
    expect(r.contract.inspect('manifest', LIMITS)).toMatchObject({
      ok: true,
      result: { kinds: { f: 'function', g: 'function', manifest: 'object' }, value: { name: 'X', n: [1n] } },
    })
    expect(r.contract.inspect('f', LIMITS)).toMatchObject({ ok: true, result: { value: null } })
    const touchy = engine.load('export const manifest = { get name() { return loopchain.context("sender") } }')
    if (!touchy.ok) throw new Error('load')
    expect(touchy.contract.inspect('manifest', LIMITS)).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR' } })
  })
})
