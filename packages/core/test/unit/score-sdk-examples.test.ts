import { beforeAll, describe, expect, it } from 'vitest'
import type { Address } from '../../src/crypto/address.js'
import { type ContractEngine, initEngine } from '../../src/score/engine/index.js'
import { ESCROW_SOURCE, TOKEN_SOURCE } from '../../src/score/index.js'
import { scoreSdkProbe } from '../fixtures/score/score-sdk-probe.js'
import { addr, World } from '../fixtures/score/score-world.js'
import SDK_STEPS from '../fixtures/score/sdk-steps.json' with { type: 'json' }

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

const alice = addr('hx', 1)
const bob = addr('hx', 2)
const carol = addr('hx', 3)
const TOKEN = addr('cx', 0xa0)
const ESCROW = addr('cx', 0xe0)

function tokenWorld(): World {
  const w = new World(engine)
  w.deploy(TOKEN_SOURCE, TOKEN, alice, { _name: 'Loop', _symbol: 'LP', _decimals: 18n, _initialSupply: 1000n })
  return w
}

function balance(w: World, owner: Address): unknown {
  const r = w.call(carol, TOKEN, 'balanceOf', { _owner: owner }, { query: true })
  return r.ok ? r.result : r.failure
}

describe('IRC-2 token example', () => {
  it('installs with the whole supply at the deployer and answers the read-only methods', () => {
    const w = tokenWorld()
    expect(w.call(bob, TOKEN, 'name', null, { query: true })).toMatchObject({ ok: true, result: 'Loop' })
    expect(w.call(bob, TOKEN, 'symbol', null, { query: true })).toMatchObject({ ok: true, result: 'LP' })
    expect(w.call(bob, TOKEN, 'decimals', null, { query: true })).toMatchObject({ ok: true, result: 18n })
    expect(w.call(bob, TOKEN, 'totalSupply', null, { query: true })).toMatchObject({ ok: true, result: 1000n })
    expect(balance(w, alice)).toBe(1000n)
    expect(balance(w, bob)).toBe(0n)
  })

  it('cannot be installed twice through an ordinary call', () => {
    const w = tokenWorld()
    const before = w.snapshot()
    const r = w.call(alice, TOKEN, 'onInstall', { _name: 'X', _symbol: 'X', _decimals: 0n, _initialSupply: 5n })
    expect(r).toMatchObject({ ok: false, failure: { code: 'UNKNOWN_METHOD' } })
    expect(w.snapshot()).toEqual(before)
  })

  it('transfers, and logs Transfer with from, to and value indexed and the data unindexed', () => {
    const w = tokenWorld()
    const r = w.call(alice, TOKEN, 'transfer', { _to: bob, _value: 250n })
    expect(r).toMatchObject({ ok: true, result: true })
    expect(balance(w, alice)).toBe(750n)
    expect(balance(w, bob)).toBe(250n)
    expect(w.logs).toEqual([
      { score: TOKEN, event: 'Transfer(Address,Address,int,bytes)', indexed: [alice, bob, 250n], data: [new Uint8Array(0)] },
    ])
    if (r.ok) expect(r.logs).toEqual(w.logs)
  })

  it('fails an overdraft with CONTRACT_ERROR and leaves the state byte-identical', () => {
    const w = tokenWorld()
    const before = w.snapshot()
    const r = w.call(bob, TOKEN, 'transfer', { _to: alice, _value: 1n })
    expect(r).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR', message: 'insufficient balance' } })
    expect(r.stepsUsed).toBeGreaterThan(0)
    expect(w.snapshot()).toEqual(before)
    expect(w.logs).toEqual([])
  })

  it('refuses a transfer to a SCORE that does not take tokens, undoing the debit', () => {
    const w = tokenWorld()
    const before = w.snapshot()
    // The token SCORE itself has no tokenFallback, and calling it would re-enter the token anyway.
    const r = w.call(alice, TOKEN, 'transfer', { _to: TOKEN, _value: 1n })
    expect(r).toMatchObject({ ok: false, failure: { code: 'REENTRANCY' } })
    expect(w.snapshot()).toEqual(before)
  })
})

describe('escrow example', () => {
  const DEADLINE = 150n
  function escrowWorld(): World {
    const w = tokenWorld()
    w.call(alice, TOKEN, 'transfer', { _to: bob, _value: 500n })
    w.deploy(ESCROW_SOURCE, ESCROW, carol, { token: TOKEN, buyer: bob, seller: carol, amount: 300n, deadline: DEADLINE })
    w.logs.length = 0
    return w
  }
  function deposit(w: World) {
    return w.call(bob, TOKEN, 'transfer', { _to: ESCROW, _value: 300n })
  }
  const status = (w: World) => {
    const r = w.call(alice, ESCROW, 'status', null, { query: true })
    return r.ok ? (r.result as Record<string, unknown>).state : r.failure
  }

  it('takes the deposit through the token: the token calls tokenFallback, both log in call order', () => {
    const w = escrowWorld()
    expect(deposit(w)).toMatchObject({ ok: true, result: true })
    expect(status(w)).toBe('funded')
    expect(balance(w, ESCROW)).toBe(300n)
    expect(balance(w, bob)).toBe(200n)
    expect(w.logs.map((l) => [l.score, l.event])).toEqual([
      [TOKEN, 'Transfer(Address,Address,int,bytes)'],
      [ESCROW, 'Deposited(Address,int)'],
    ])
  })

  it('refuses a wrong deposit amount: the escrow throws inside tokenFallback and the token transfer is undone', () => {
    const w = escrowWorld()
    const before = w.snapshot()
    const r = w.call(bob, TOKEN, 'transfer', { _to: ESCROW, _value: 299n })
    expect(r).toMatchObject({ ok: false, failure: { code: 'CONTRACT_ERROR', message: 'the deposit must be exactly 300' } })
    expect(w.snapshot()).toEqual(before)
    expect(w.logs).toEqual([])
  })

  it('releases to the seller when the buyer says so, and only once', () => {
    const w = escrowWorld()
    deposit(w)
    expect(w.call(carol, ESCROW, 'release')).toMatchObject({ ok: false, failure: { message: 'only the buyer releases' } })
    expect(w.call(bob, ESCROW, 'release')).toMatchObject({ ok: true, result: true })
    expect(balance(w, carol)).toBe(300n)
    expect(balance(w, ESCROW)).toBe(0n)
    expect(status(w)).toBe('released')
    const before = w.snapshot()
    expect(w.call(bob, ESCROW, 'release')).toMatchObject({ ok: false, failure: { message: 'the escrow is not funded' } })
    expect(w.snapshot()).toEqual(before)
  })

  it('lets the buyer take a refund only from the deadline height, read from the block', () => {
    const w = escrowWorld()
    deposit(w)
    w.height = DEADLINE - 1n
    const before = w.snapshot()
    expect(w.call(bob, ESCROW, 'refund')).toMatchObject({
      ok: false,
      failure: { code: 'CONTRACT_ERROR', message: 'the buyer can take a refund from height 150' },
    })
    expect(w.snapshot()).toEqual(before)
    w.height = DEADLINE
    expect(w.call(bob, ESCROW, 'refund')).toMatchObject({ ok: true, result: true })
    expect(balance(w, bob)).toBe(500n)
    expect(status(w)).toBe('refunded')
    expect(w.logs.at(-1)).toEqual({ score: ESCROW, event: 'Refunded(Address,int)', indexed: [bob], data: [300n] })
  })

  it('lets the seller refund before the deadline, and no one else', () => {
    const w = escrowWorld()
    deposit(w)
    w.height = 101n
    expect(w.call(alice, ESCROW, 'refund')).toMatchObject({ ok: false, failure: { message: 'only the buyer or the seller refunds' } })
    expect(w.call(carol, ESCROW, 'refund')).toMatchObject({ ok: true })
    expect(balance(w, bob)).toBe(500n)
  })
})

describe('metering of the SDK', () => {
  it('charges the pinned steps for the token example (fixtures/score/sdk-steps.json), the same on every run', () => {
    const runs = [tokenWorld(), tokenWorld()].map((w) => {
      const install = w.call(alice, TOKEN, 'totalSupply', null, { query: true })
      const transfer = w.call(alice, TOKEN, 'transfer', { _to: bob, _value: 250n })
      const balanceOf = w.call(carol, TOKEN, 'balanceOf', { _owner: bob }, { query: true })
      return { totalSupply: install.stepsUsed, transfer: transfer.stepsUsed, balanceOf: balanceOf.stepsUsed }
    })
    expect(runs[1]).toEqual(runs[0])
    expect(runs[0]).toEqual(SDK_STEPS.token)
  })
})

describe('cross-runtime probe (fixtures/score/score-sdk-probe.ts)', () => {
  it('runs the examples to the expected outcomes, identically on a second engine', async () => {
    const a = scoreSdkProbe(engine)
    expect(a.outcomes.map((o) => o.split(' ').slice(0, 2).join(' '))).toEqual([
      'onInstall ok',
      'transfer ok',
      'onInstall ok',
      'transfer ok',
      'refund CONTRACT_ERROR',
      'refund ok',
      'transfer CONTRACT_ERROR',
      'transfer REENTRANCY',
      'transfer INVALID_ARGUMENT',
    ])
    expect(scoreSdkProbe(await initEngine({ maxCallDepth: 2 }))).toEqual(a)
  })
})
