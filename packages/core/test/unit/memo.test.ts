import { describe, expect, it } from 'vitest'
import { memoByIdentity } from '../../src/index.js'

describe('memoByIdentity', () => {
  it('computes once per object, afresh for an equal but different object, and remembers undefined too', () => {
    const calls: object[] = []
    const f = memoByIdentity((o: { n: number }) => {
      calls.push(o)
      return o.n === 0 ? undefined : o.n * 2
    })
    const a = { n: 2 }
    expect(f(a)).toBe(4)
    expect(f(a)).toBe(4)
    expect(f({ n: 2 })).toBe(4)
    const zero = { n: 0 }
    expect(f(zero)).toBeUndefined()
    expect(f(zero)).toBeUndefined()
    expect(calls).toEqual([a, { n: 2 }, zero])
  })
})
