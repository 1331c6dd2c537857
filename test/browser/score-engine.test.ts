import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { initEngine } from '../../packages/core/src/score/engine/index.js'
import { MemoryHost } from '../../packages/core/test/fixtures/score/memory-host.js'
import steps from '../../packages/core/test/fixtures/score/steps.json' with { type: 'json' }
import { runInChromium } from '../support/chromium.js'
import { scoreEngineProbe } from './score-engine-probe.js'

describe('contract engine in headless Chromium', () => {
  it('counts the same steps, returns the same results and leaves the same storage as in Node', async () => {
    const token = readFileSync(fileURLToPath(new URL('../../packages/core/test/fixtures/score/token.js', import.meta.url)), 'utf8')
    const node = scoreEngineProbe(await initEngine(), token, new MemoryHost({ sender: 'alice' }))
    const browser = await runInChromium<typeof node>(fileURLToPath(new URL('./score-engine.entry.ts', import.meta.url)))
    expect(node.steps).toEqual({ mint: steps.mint, transfer: steps.transfer, balanceOf: steps.balanceOf, loop1000: steps.loop1000 })
    expect(node.runaway).toBe('OUT_OF_STEPS after 500')
    expect(browser).toEqual(node)
  })
})
