import { describe, expect, it } from 'vitest'
import { formatAmount, parseAmount } from '../src/views/amount.js'

describe('amounts on the channels page', () => {
  it('reads whole numbers, with separators', () => {
    expect(parseAmount(' 1,000 ', 'x')).toBe(1000n)
    expect(parseAmount('12_345', 'x')).toBe(12345n)
    expect(parseAmount('0', 'x', true)).toBe(0n)
  })
  it('refuses negative, fractional, empty, zero (unless allowed) and oversized amounts, naming the field', () => {
    expect(() => parseAmount('-5', 'the amount')).toThrow('the amount must be a whole number')
    expect(() => parseAmount('1.5', 'x')).toThrow(/whole number/)
    expect(() => parseAmount('', 'x')).toThrow(/whole number/)
    expect(() => parseAmount('0', 'your deposit')).toThrow('your deposit must be more than 0')
    expect(() => parseAmount('9'.repeat(80), 'x')).toThrow(/too large/)
  })
  it('shows thousands separators', () => {
    expect(formatAmount(1234567n)).toBe('1,234,567')
  })
})
