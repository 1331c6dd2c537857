/**
 * The same contract calls run in Node and in Chromium; what they report (results, steps and the
 * storage left behind) must be identical, byte for byte, step for step.
 */
import { toHex } from '../../packages/core/src/codec/hex.js'
import type { ContractEngine } from '../../packages/core/src/score/engine/index.js'
import type { MemoryHost } from '../../packages/core/test/fixtures/score/memory-host.js'

const LIMITS = { stepLimit: 1_000_000, memoryLimit: 4 * 1024 * 1024 }

/** Runs the token contract and a CPU loop; returns steps, results and the final storage. */
export function scoreEngineProbe(engine: ContractEngine, token: string, host: MemoryHost) {
  const loaded = engine.load(token)
  if (!loaded.ok) throw new Error(`token does not load: ${loaded.failure.message}`)
  const t = loaded.contract
  const mint = t.call('mint', { to: 'alice', amount: 1_000_000n }, host, LIMITS)
  const transfer = t.call('transfer', { to: 'bob', amount: 25n }, host, LIMITS)
  const balanceOf = t.call('balanceOf', { owner: 'bob' }, host, LIMITS)
  const loop = engine.load('export function t() { let s = 0; for (let i = 0; i < 1000; i++) s = (s + i) | 0; return BigInt(s) }')
  if (!loop.ok) throw new Error('loop does not load')
  const loop1000 = loop.contract.call('t', null, host, LIMITS)
  const runaway = loop.contract.call('t', null, host, { ...LIMITS, stepLimit: 500 })
  return {
    version: engine.version,
    steps: { mint: mint.stepsUsed, transfer: transfer.stepsUsed, balanceOf: balanceOf.stepsUsed, loop1000: loop1000.stepsUsed },
    results: [mint, transfer, balanceOf, loop1000].map((r) => (r.ok ? String(r.result) : `failed: ${r.failure.code}`)),
    runaway: runaway.ok ? 'completed' : `${runaway.failure.code} after ${runaway.stepsUsed}`,
    storage: [...host.store.entries()].map(([k, v]) => `${k}=${toHex(v)}`).sort(),
    events: host.events.length,
  }
}
