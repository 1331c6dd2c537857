import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { compareBytes, StateOverlay, toHex } from '../../src/index.js'

describe('state overlay', () => {
  it('gives its changes in key-byte order, the last write of each key, whatever the order of writes', () => {
    fc.assert(
      fc.property(
        // Few keys (a transaction's usual handful) and many (past the insertion sort), with repeats.
        fc.array(fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 6 }), fc.option(fc.uint8Array({ maxLength: 4 }))), {
          maxLength: 60,
        }),
        (writes) => {
          const o = new StateOverlay(() => undefined)
          const last = new Map<string, Uint8Array | null>()
          for (const [k, v] of writes) {
            if (v === null) o.delete(k)
            else o.set(k, v)
            last.set(toHex(k), v)
          }
          const got = o.changes()
          expect(got.map((w) => toHex(w.key))).toEqual([...last.keys()].sort())
          for (let i = 1; i < got.length; i++) {
            expect(compareBytes((got[i - 1] as (typeof got)[number]).key, (got[i] as (typeof got)[number]).key)).toBeLessThan(0)
          }
          for (const w of got) expect(w.value ?? null).toEqual(last.get(toHex(w.key)))
        },
      ),
      { numRuns: 300 },
    )
  })
})
