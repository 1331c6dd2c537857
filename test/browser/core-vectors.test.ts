import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import stored from '../../packages/core/test/vectors/core.json' with { type: 'json' }
import { type CoreVectors, computeCoreVectors } from '../../packages/core/test/vectors/core-vectors.js'
import { runInChromium } from '../support/chromium.js'

describe('golden vectors in headless Chromium', () => {
  it('Chromium computes exactly the bytes Node computes and the vectors pin, state proofs included', async () => {
    const entry = fileURLToPath(new URL('./core-vectors.entry.ts', import.meta.url))
    const r = await runInChromium<{
      userAgent: string
      failures: string[]
      stateFailures: string[]
      stateCases: number
      webCrypto: string[] | 'unavailable'
      computed: CoreVectors
    }>(entry)
    expect(r.userAgent).toMatch(/HeadlessChrome|Chrome/)
    expect(r.failures).toEqual([])
    expect(r.stateFailures).toEqual([])
    expect(r.stateCases).toBeGreaterThanOrEqual(5)
    // The channel wallet verifies with WebCrypto where it has Ed25519: the same rule, small-order R included.
    expect(r.webCrypto).toEqual([])
    expect(r.computed).toEqual(JSON.parse(JSON.stringify(computeCoreVectors())))
    expect(r.computed).toEqual(stored)
  })
})
