import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { runInChromium } from '../support/chromium.js'

describe('the wallet’s IndexedDB channel store in headless Chromium', () => {
  it('writes that something waits for ask for strict durability, others for relaxed; records survive a reopen', async () => {
    const entry = fileURLToPath(new URL('./channel-store.entry.ts', import.meta.url))
    const r = await runInChromium<{ steps: Record<string, string[]>; back: string[][] }>(entry)
    expect(r.steps).toEqual({ put: ['strict'], putDurable: ['strict'], putRelaxed: ['relaxed'], rename: ['strict'] })
    expect(r.back).toEqual([
      ['a', '2'],
      ['c', '4'],
    ])
  })
})
