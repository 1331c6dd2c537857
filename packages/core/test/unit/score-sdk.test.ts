import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { toHex } from '../../src/codec/hex.js'
import type { Value } from '../../src/codec/value.js'
import { type ContractEngine, initEngine } from '../../src/score/engine/index.js'
import { addr, World } from '../fixtures/score/score-world.js'

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

const alice = addr('hx', 1)
const S = addr('cx', 0x51)
const T = addr('cx', 0x52)

/** A SCORE whose methods each exercise one part of the SDK; every method is declared with `any` I/O. */
function probe(body: string, methods: Record<string, string> = {}): string {
  const decl = Object.keys(methods)
    .map((m) => `${m}: { params: [['a', 'any', { optional: true }]] },`)
    .join('\n')
  const fns = Object.entries(methods)
    .map(([m, code]) => `export function ${m}(p) { const a = p === null ? null : p.a; ${code} }`)
    .join('\n')
  return `const { VarDB, DictDB, ArrayDB, msg, block, tx, self } = loopchain
${body}
export const manifest = { name: 'Probe', methods: { ${decl} pay: { payable: true }, look: { readonly: true } } }
export function pay() { return [msg.sender, msg.value] }
export function look() { return tx.hash }
${fns}`
}

function world(code: string, at = S): World {
  const w = new World(engine)
  w.deploy(code, at)
  return w
}

function result(r: ReturnType<World['call']>): Value | string {
  return r.ok ? r.result : `${r.failure.code}: ${r.failure.message}`
}

describe('storage key layout', () => {
  it('puts each container at kind byte ‖ name length ‖ name ‖ canonical Value sub-keys', () => {
    const w = world(
      probe(
        `const v = new VarDB('total', 'int'); const d = new DictDB('b', 'str'); const n = new DictDB('a', 'bool', 2); const l = new ArrayDB('l', 'int')`,
        { write: `v.set(5n); d.set('k', 'hi'); n.at(1n).set('x', true); l.push(7n); return null` },
      ),
    )
    expect(result(w.call(alice, S, 'write'))).toBe(null)
    const stored = Object.fromEntries([...w.store.entries()].map(([k, v]) => [k.slice(44), toHex(v)]))
    expect(stored).toEqual({
      '0105746f74616c': '030105', // VarDB 'total' = 5n
      '02016206016b': '06026869', // DictDB 'b' ['k'] = 'hi'
      '020161030101060178': '02', // DictDB 'a' [1n]['x'] = true
      '03016c': '030101', // ArrayDB 'l' length 1
      '03016c0300': '030107', // ArrayDB 'l' [0] = 7n
    })
    // Every key is prefixed by the storage namespace 's' and the SCORE's 21-byte address.
    for (const k of w.store.keys()) expect(k.slice(0, 44)).toBe(`7301${S.slice(2)}`)
  })

  it('keeps containers of different kinds and names apart even when their bytes look alike', () => {
    const w = world(
      probe(
        `const v = new VarDB('x', 'int'); const v2 = new VarDB('x\\u0000', 'int'); const d = new DictDB('x', 'int'); const arr = new ArrayDB('x', 'int');
         const s1 = new DictDB('x', 'int'); const k = new DictDB('x', 'int', 2)`,
        {
          write: `v.set(1n); v2.set(2n); d.set('', 3n); arr.push(4n); k.at('').set('', 5n); d.set(0n, 6n); d.set('0', 7n); d.set(new Uint8Array(0), 8n)
                  return [v.get(), v2.get(), d.get(''), arr.get(0), k.at('').get(''), s1.get(''), d.get(0n), d.get('0'), d.get(new Uint8Array(0)), d.get(false)]`,
        },
      ),
    )
    expect(result(w.call(alice, S, 'write'))).toEqual([1n, 2n, 3n, 4n, 5n, 3n, 6n, 7n, 8n, 0n])
    expect(w.store.size).toBe(9)
  })
})

describe('VarDB, DictDB and ArrayDB', () => {
  const typed = probe(
    `const i = new VarDB('i', 'int'), s = new VarDB('s', 'str'), b = new VarDB('b', 'bool'), y = new VarDB('y', 'bytes'), ad = new VarDB('ad', 'Address'), an = new VarDB('an')`,
    {
      defaults: `return [i.get(), s.get(), b.get(), y.get(), ad.get(), an.get()]`,
      wrong: `const out = []; for (const [db, v] of [[i, 1], [s, 1n], [b, 'true'], [y, 'x'], [ad, 'hxABC'], [an, undefined]]) { try { db.set(v); out.push('stored') } catch (e) { out.push(e.constructor.name + ': ' + e.message) } } return out`,
      roundTrip: `i.set(-12345678901234567890n); s.set('héllo'); b.set(true); y.set(new Uint8Array([1, 2])); ad.set('${alice}'); an.set({ k: [1n, 'x'] }); return [i.get(), s.get(), b.get(), y.get(), ad.get(), an.get()]`,
      clear: `i.set(0n); s.set(''); b.set(false); an.set(null); y.remove(); ad.remove(); return null`,
    },
  )

  it('reads missing values as the type default (0n, empty string, false, null)', () => {
    expect(result(world(typed).call(alice, S, 'defaults'))).toEqual([0n, '', false, null, null, null])
  })

  it('refuses values of the wrong type with a TypeError and stores nothing', () => {
    const w = world(typed)
    expect(result(w.call(alice, S, 'wrong'))).toEqual([
      'TypeError: value must be an int (bigint)',
      'TypeError: value must be a str',
      'TypeError: value must be a bool',
      'TypeError: value must be a bytes',
      'TypeError: value must be a Address',
      'TypeError: value must be a Value',
    ])
    expect(w.store.size).toBe(0)
  })

  it('round-trips every type, and writing the default removes the slot', () => {
    const w = world(typed)
    expect(result(w.call(alice, S, 'roundTrip'))).toEqual([
      -12345678901234567890n,
      'héllo',
      true,
      new Uint8Array([1, 2]),
      alice,
      { k: [1n, 'x'] },
    ])
    expect(w.store.size).toBe(6)
    expect(result(w.call(alice, S, 'clear'))).toBe(null)
    expect(w.store.size).toBe(0)
  })

  it('walks nested DictDBs with at() and refuses to skip or overrun a level', () => {
    const w = world(
      probe(`const allow = new DictDB('allowance', 'int', 2)`, {
        set: `allow.at(a[0]).set(a[1], a[2]); return null`,
        get: `return allow.at(a[0]).get(a[1])`,
        misuse: `const out = []; for (const f of [() => allow.get('x'), () => allow.at('x').at('y'), () => new DictDB('z', 'int', 0), () => allow.at(null)]) { try { f(); out.push('ok') } catch (e) { out.push(e.constructor.name) } } return out`,
      }),
    )
    w.call(alice, S, 'set', { a: ['owner', 'spender', 40n] })
    w.call(alice, S, 'set', { a: ['owner', 'other', 2n] })
    expect(result(w.call(alice, S, 'get', { a: ['owner', 'spender'] }))).toBe(40n)
    expect(result(w.call(alice, S, 'get', { a: ['spender', 'owner'] }))).toBe(0n)
    expect(result(w.call(alice, S, 'misuse'))).toEqual(['TypeError', 'TypeError', 'RangeError', 'TypeError'])
  })

  it('keeps ArrayDB length, items, bounds and iteration consistent', () => {
    const w = world(
      probe(`const l = new ArrayDB('list', 'str')`, {
        ops: `l.push('a'); l.push('b'); l.push('c'); l.set(1, 'B'); const popped = l.pop(); const errs = [];
              for (const f of [() => l.get(2), () => l.get(-1), () => l.set(2n, 'x'), () => l.get(0.5)]) { try { f() } catch (e) { errs.push(e.constructor.name) } }
              return [BigInt(l.length), l.get(0), l.get(1n), popped, [...l], errs]`,
        drain: `const out = []; while (l.length > 0) out.push(l.pop()); try { l.pop() } catch (e) { out.push(e.message) } return out`,
      }),
    )
    // length is a number inside the contract; the result must be a Value, so the probe returns it as is only via BigInt.
    expect(result(w.call(alice, S, 'ops'))).toEqual([
      2n,
      'a',
      'B',
      'c',
      ['a', 'B'],
      ['RangeError', 'RangeError', 'RangeError', 'RangeError'],
    ])
    expect(w.store.size).toBe(3)
    expect(result(w.call(alice, S, 'drain'))).toEqual(['B', 'a', 'pop from an empty ArrayDB'])
    expect(w.store.size).toBe(0)
  })
})

describe('storage containers against a model (property)', () => {
  // Same names on purpose: kinds and depths must keep them apart.
  const MODEL_SCORE = `const { VarDB, DictDB, ArrayDB } = loopchain
const vars = [new VarDB('x', 'int'), new VarDB('xx', 'int')]
const dicts = [new DictDB('x', 'int'), new DictDB('x\\u0001', 'int')]
const nested = new DictDB('x', 'int', 2)
const arrays = [new ArrayDB('x', 'int'), new ArrayDB('xx', 'int')]
export const manifest = { name: 'Model', methods: { run: { params: [['ops', 'list']], returns: 'list' } } }
function step(op) {
  const i = Number(op[1])
  switch (op[0]) {
    case 'vs': vars[i].set(op[2]); return null
    case 'vg': return vars[i].get()
    case 'ds': dicts[i].set(op[2], op[3]); return null
    case 'dg': return dicts[i].get(op[2])
    case 'dr': dicts[i].remove(op[2]); return null
    case 'ns': nested.at(op[2]).set(op[3], op[4]); return null
    case 'ng': return nested.at(op[2]).get(op[3])
    case 'ap': arrays[i].push(op[2]); return null
    case 'ao': return arrays[i].pop()
    case 'ag': return arrays[i].get(op[2])
    case 'as': arrays[i].set(op[2], op[3]); return null
    case 'al': return BigInt(arrays[i].length)
  }
  throw new Error('bad op')
}
export function run({ ops }) {
  const out = []
  for (const op of ops) { try { out.push(step(op)) } catch (e) { out.push('error ' + e.constructor.name) } }
  return out
}`

  type Key = string | bigint | boolean | Uint8Array
  const keyArb = fc.constantFrom<Key>('', 'a', '0', 0n, 1n, -1n, true, false, new Uint8Array(0), new Uint8Array([0]))
  const valArb = fc.bigInt({ min: -3n, max: 3n })
  const ix = fc.constantFrom(0n, 1n)
  const opArb = fc.oneof(
    fc.tuple(fc.constant('vs'), ix, valArb),
    fc.tuple(fc.constant('vg'), ix),
    fc.tuple(fc.constant('ds'), ix, keyArb, valArb),
    fc.tuple(fc.constant('dg'), ix, keyArb),
    fc.tuple(fc.constant('dr'), ix, keyArb),
    fc.tuple(fc.constant('ns'), ix, keyArb, keyArb, valArb),
    fc.tuple(fc.constant('ng'), ix, keyArb, keyArb),
    fc.tuple(fc.constant('ap'), ix, valArb),
    fc.tuple(fc.constant('ao'), ix),
    fc.tuple(fc.constant('ag'), ix, fc.bigInt({ min: -1n, max: 4n })),
    fc.tuple(fc.constant('as'), ix, fc.bigInt({ min: -1n, max: 4n }), valArb),
    fc.tuple(fc.constant('al'), ix),
  )

  /** The JS model: plain maps, keyed by a string that tells every key type apart. */
  class Model {
    vars = [0n, 0n]
    dicts = [new Map<string, bigint>(), new Map<string, bigint>()]
    nested = new Map<string, bigint>()
    arrays: bigint[][] = [[], []]
    static k(k: Key): string {
      return k instanceof Uint8Array ? `y${toHex(k)}` : `${typeof k}:${String(k)}`
    }
    step(op: Value[]): Value {
      const i = Number(op[1])
      const arr = this.arrays[i]!
      const at = (j: bigint) => j >= 0n && j < BigInt(arr.length)
      switch (op[0]) {
        case 'vs':
          this.vars[i] = op[2] as bigint
          return null
        case 'vg':
          return this.vars[i]!
        case 'ds':
          this.dicts[i]!.set(Model.k(op[2] as Key), op[3] as bigint)
          return null
        case 'dg':
          return this.dicts[i]!.get(Model.k(op[2] as Key)) ?? 0n
        case 'dr':
          this.dicts[i]!.delete(Model.k(op[2] as Key))
          return null
        case 'ns':
          this.nested.set(`${Model.k(op[2] as Key)}|${Model.k(op[3] as Key)}`, op[4] as bigint)
          return null
        case 'ng':
          return this.nested.get(`${Model.k(op[2] as Key)}|${Model.k(op[3] as Key)}`) ?? 0n
        case 'ap':
          arr.push(op[2] as bigint)
          return null
        case 'ao':
          return arr.length === 0 ? 'error RangeError' : arr.pop()!
        case 'ag':
          return at(op[2] as bigint) ? arr[Number(op[2])]! : 'error RangeError'
        case 'as':
          if (!at(op[2] as bigint)) return 'error RangeError'
          arr[Number(op[2])] = op[3] as bigint
          return null
        default:
          return BigInt(arr.length)
      }
    }
    /** Slots that must be in storage: every non-zero value, and every non-empty array's length. */
    slots(): number {
      const nz = (xs: Iterable<bigint>) => [...xs].filter((x) => x !== 0n).length
      return (
        nz(this.vars) +
        nz(this.dicts[0]!.values()) +
        nz(this.dicts[1]!.values()) +
        nz(this.nested.values()) +
        this.arrays.reduce((n, a) => n + nz(a) + (a.length > 0 ? 1 : 0), 0)
      )
    }
  }

  it('behaves like plain maps and lists, with no two containers sharing a slot', () => {
    const w = new World(engine)
    w.deploy(MODEL_SCORE, S)
    fc.assert(
      fc.property(fc.array(fc.array(opArb, { minLength: 1, maxLength: 25 }), { minLength: 1, maxLength: 4 }), (batches) => {
        w.store.clear()
        const model = new Model()
        for (const ops of batches) {
          const r = w.call(alice, S, 'run', { ops: ops as Value })
          expect(r.ok).toBe(true)
          if (r.ok) expect(r.result).toEqual(ops.map((op) => model.step(op as Value[])))
          expect(w.store.size).toBe(model.slots())
        }
      }),
      { numRuns: 60 },
    )
  })
})

describe('context', () => {
  const ctx = probe('', {
    facts: `return { sender: msg.sender, value: msg.value, hash: tx.hash, origin: tx.origin, height: block.height, time: block.timestamp, me: self.address }`,
    relay: `return loopchain.call(a, 'facts', null)`,
  })

  it('gives sender, value, tx hash and origin, and height and time from the block', () => {
    const w = world(ctx)
    w.height = 4242n
    w.timestamp = 99n
    expect(result(w.call(alice, S, 'facts'))).toEqual({
      sender: alice,
      value: 0n,
      hash: new Uint8Array(32).fill(7),
      origin: alice,
      height: 4242n,
      time: 99n,
      me: S,
    })
    expect(result(w.call(alice, S, 'pay', null, { value: 5n }))).toEqual([alice, 5n])
  })

  it('shows a nested call the calling SCORE as sender, no value, and the same origin and block', () => {
    const w = world(ctx)
    w.deploy(ctx, T)
    w.height = 7n
    expect(result(w.call(alice, S, 'relay', { a: T }))).toMatchObject({ sender: S, value: 0n, origin: alice, height: 7n, me: T })
  })

  it('reads a null transaction hash in a query', () => {
    const w = world(ctx)
    expect(w.call(alice, S, 'look', null, { query: true })).toMatchObject({ ok: true, result: null })
    expect(w.call(alice, S, 'look')).toMatchObject({ ok: true, result: new Uint8Array(32).fill(7) })
  })
})
