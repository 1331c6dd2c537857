/**
 * The class form of a SCORE: a default-exported class with a static manifest; its methods are the
 * external methods, each call on a fresh instance. The same checks as the module form apply.
 */
import { beforeAll, describe, expect, it } from 'vitest'
import {
  type Address,
  type ContractEngine,
  callScore,
  initEngine,
  type LoadedScore,
  loadScore,
  StateOverlay,
  toHex,
} from '../../src/index.js'

const SCORE = 'cx00000000000000000000000000000000000c1a55' as Address
const ALICE = 'hx00000000000000000000000000000000000a11ce' as Address
const BOB = 'hx0000000000000000000000000000000000000b0b' as Address

const CLASS_TOKEN = `
const { VarDB, DictDB, msg } = loopchain
export default class Token {
  static manifest = {
    name: 'ClassToken',
    methods: {
      onInstall: { params: [['supply', 'int']] },
      balanceOf: { readonly: true, params: [['owner', 'Address']], returns: 'int' },
      transfer: { params: [['to', 'Address'], ['value', 'int']], returns: 'bool' },
      deposit: { payable: true },
    },
    events: { Transfer: { indexed: [['from', 'Address'], ['to', 'Address']], data: [['value', 'int']] } },
  }
  balances = new DictDB('balances', 'int')
  total = new VarDB('total', 'int')
  onInstall({ supply }) { this.total.set(supply); this.balances.set(msg.sender, supply) }
  balanceOf({ owner }) { return this.balances.get(owner) }
  transfer({ to, value }) {
    const held = this.balances.get(msg.sender)
    if (held < value) throw new Error('insufficient balance')
    this.balances.set(msg.sender, held - value)
    this.balances.set(to, this.balances.get(to) + value)
    loopchain.emit('Transfer', { from: msg.sender, to, value })
    return true
  }
  deposit() { return null }
  helper() { return 'not external' }
}
`

let engine: ContractEngine
let token: LoadedScore
const store = new Map<string, Uint8Array>()

function call(from: Address, method: string, params: Record<string, unknown> | null, opts: { value?: bigint; install?: boolean } = {}) {
  const state = new StateOverlay((k) => store.get(toHex(k)))
  const r = callScore({
    scores: (a) => (a === SCORE ? token : undefined),
    state,
    from,
    to: SCORE,
    method,
    params: params as never,
    ...(opts.value !== undefined ? { value: opts.value } : {}),
    ...(opts.install ? { install: true } : {}),
    block: { height: 1n, timestamp: 0n },
    limits: { stepLimit: 1_000_000, memoryLimit: 4 * 1024 * 1024 },
  })
  if (r.ok) for (const w of state.changes()) w.value === undefined ? store.delete(toHex(w.key)) : store.set(toHex(w.key), w.value)
  return r
}

beforeAll(async () => {
  engine = await initEngine()
  const r = loadScore(engine, CLASS_TOKEN)
  if (!r.ok) throw new Error(r.failure.message)
  token = r
})

describe('a SCORE written as a class', () => {
  it('derives its ABI from the static manifest', () => {
    expect(token.abi.name).toBe('ClassToken')
    expect(Object.keys(token.abi.methods).sort()).toEqual(['balanceOf', 'deposit', 'onInstall', 'transfer'])
    expect(token.abi.methods.balanceOf?.readonly).toBe(true)
    expect(token.abi.methods.deposit?.payable).toBe(true)
  })

  it('installs, transfers with an event, and answers read-only calls', () => {
    expect(call(ALICE, 'onInstall', { supply: 1000n }, { install: true }).ok).toBe(true)
    const t = call(ALICE, 'transfer', { to: BOB, value: 250n })
    expect(t.ok && t.result).toBe(true)
    expect(t.ok && t.logs.map((l) => l.event)).toEqual(['Transfer(Address,Address,int)'])
    const b = call(ALICE, 'balanceOf', { owner: BOB })
    expect(b.ok && b.result).toBe(250n)
  })

  it('refuses what the manifest does not allow, and a failed call leaves storage as it was', () => {
    const before = JSON.stringify([...store.entries()].map(([k, v]) => [k, toHex(v)]))
    const code = (r: ReturnType<typeof call>) => (r.ok ? 'OK' : r.failure.code)
    expect(code(call(ALICE, 'helper', null))).toBe('UNKNOWN_METHOD')
    expect(code(call(ALICE, 'constructor', null))).toBe('UNKNOWN_METHOD')
    expect(code(call(ALICE, 'transfer', { to: BOB, value: 'many' }))).toBe('INVALID_ARGUMENT')
    expect(code(call(ALICE, 'transfer', { to: BOB, value: 1n }, { value: 5n }))).toBe('NOT_PAYABLE')
    expect(code(call(BOB, 'transfer', { to: ALICE, value: 251n }))).toBe('CONTRACT_ERROR')
    expect(JSON.stringify([...store.entries()].map(([k, v]) => [k, toHex(v)]))).toBe(before)
  })
})
