import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { initEngine } from '../../packages/core/src/index.js'
import { runChain } from '../../packages/core/test/fixtures/exec/chain.js'
import { runInChromium } from '../support/chromium.js'

describe('block execution in headless Chromium', () => {
  it('the same blocks give the same state roots and receipts in Chromium as in Node', async () => {
    const node = (await runChain(await initEngine())).blocks
    const browser = await runInChromium<typeof node>(fileURLToPath(new URL('./exec.entry.ts', import.meta.url)))
    expect(node).toHaveLength(3)
    expect(node.flatMap((b) => b.receipts).some((r) => r.logs > 0)).toBe(true)
    expect(browser).toEqual(node)
  })
})
