import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PORT_BLOCK, reservePortBlock } from '../src/index.js'

describe('port blocks for side-by-side networks', () => {
  it('never hands the same block out twice while it is held, and marks the claim on disk', () => {
    const bases = Array.from({ length: 20 }, () => reservePortBlock())
    expect(new Set(bases).size).toBe(bases.length)
    for (const b of bases) {
      expect(b % PORT_BLOCK).toBe(0)
      expect(existsSync(join(tmpdir(), 'loopchain-port-blocks', String(b)))).toBe(true)
    }
  })
})
