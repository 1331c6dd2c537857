import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { addNewest, setNewest } from '../../src/bounded.js'

describe('bounded caches', () => {
  it('setNewest keeps the most recently set keys, newest last, with their latest values', () => {
    const m = new Map<string, number>()
    setNewest(m, 'a', 1, 2)
    setNewest(m, 'b', 2, 2)
    setNewest(m, 'a', 3, 2) // used again: now the newest
    setNewest(m, 'c', 4, 2) // 'b' is the oldest and goes
    expect([...m]).toEqual([
      ['a', 3],
      ['c', 4],
    ])
  })

  it('addNewest keeps the most recently added keys, newest last', () => {
    const s = new Set<number>()
    for (const k of [1, 2, 3, 1, 4]) addNewest(s, k, 3)
    expect([...s]).toEqual([3, 1, 4])
  })

  it('both hold exactly the last `max` distinct keys of any sequence, in order of last use', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), fc.integer({ min: 1, max: 10 }), (keys, max) => {
        const lastUse: number[] = []
        for (const k of keys) {
          const i = lastUse.indexOf(k)
          if (i >= 0) lastUse.splice(i, 1)
          lastUse.push(k)
        }
        const want = lastUse.slice(-max)
        const m = new Map<number, number>()
        const s = new Set<number>()
        keys.forEach((k, i) => {
          setNewest(m, k, i, max)
          addNewest(s, k, max)
        })
        expect([...m.keys()]).toEqual(want)
        expect([...s]).toEqual(want)
        for (const k of want) expect(m.get(k)).toBe(keys.lastIndexOf(k))
      }),
    )
  })
})
