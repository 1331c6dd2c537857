import { readFileSync } from 'node:fs'
import ts from 'typescript'
import { beforeAll, describe, expect, it } from 'vitest'
import { type ContractEngine, initEngine } from '../../src/score/engine/index.js'
import { addr, World } from '../fixtures/score/score-world.js'

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

const alice = addr('hx', 1)
const bob = addr('hx', 2)
const M = addr('cx', 0x77)

/** What a developer's own tooling does: compile the TypeScript SCORE to one ES module. */
function compile(): string {
  const source = readFileSync(new URL('../fixtures/score/membership.score.ts', import.meta.url), 'utf8')
  const out = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 } })
  return out.outputText
}

describe('a SCORE written in TypeScript', () => {
  it('compiles to a module without imports', () => {
    const js = compile()
    expect(js).not.toMatch(/\bimport\b/)
    expect(js).toMatch(/export const manifest/)
  })

  it('deploys and runs: payable join with the block height, nested DictDB, ArrayDB roster, events', () => {
    const w = new World(engine)
    w.deploy(compile(), M, alice, { fee: 10n })
    w.height = 500n
    expect(w.call(alice, M, 'join', { nickname: 'al' }, { value: 9n })).toMatchObject({ ok: false, failure: { message: 'the fee is 10' } })
    expect(w.call(alice, M, 'join', { nickname: 'al' }, { value: 10n })).toMatchObject({ ok: true })
    w.height = 501n
    expect(w.call(bob, M, 'join', { nickname: 'bo' }, { value: 10n })).toMatchObject({ ok: true })
    expect(w.call(bob, M, 'endorse', { who: alice })).toMatchObject({ ok: true })
    expect(w.call(bob, M, 'memberSince', { who: alice })).toMatchObject({ ok: true, result: 500n })
    expect(w.call(bob, M, 'members')).toMatchObject({ ok: true, result: [alice, bob] })
    expect(w.call(bob, M, 'endorsed', { by: bob, who: alice })).toMatchObject({ ok: true, result: true })
    expect(w.call(bob, M, 'endorsed', { by: alice, who: bob })).toMatchObject({ ok: true, result: false })
    expect(w.logs).toEqual([
      { score: M, event: 'Joined(Address,str,int)', indexed: [alice], data: ['al', 500n] },
      { score: M, event: 'Joined(Address,str,int)', indexed: [bob], data: ['bo', 501n] },
    ])
    expect(w.call(bob, M, 'members', null, { value: 1n })).toMatchObject({ ok: false, failure: { code: 'NOT_PAYABLE' } })
  })
})
