import { describe, expect, it } from 'vitest'
import { floorFigure, formatFigure } from './report.js'

describe('bench figures', () => {
  it('prints three significant digits, and whole numbers from 1000 on', () => {
    expect(formatFigure(0.52974)).toBe('0.53')
    expect(formatFigure(0.00972449)).toBe('0.00972')
    expect(formatFigure(1234.6)).toBe('1235')
    expect(formatFigure(Number.POSITIVE_INFINITY)).toBe('Infinity')
  })

  it('rounds a figure down to what it prints, so one just under a threshold never prints as the threshold', () => {
    expect(formatFigure(0.49996)).toBe('0.5')
    expect(formatFigure(floorFigure(0.49996))).toBe('0.499')
    expect(floorFigure(0.5298)).toBe(0.529)
    expect(floorFigure(0.00972449)).toBe(0.00972)
    expect(floorFigure(1234.6)).toBe(1234)
    expect(floorFigure(-0.4996)).toBe(-0.5)
  })

  it('keeps a figure that already has three digits (1.13 × 100 is 112.99… in floating point)', () => {
    expect(floorFigure(1.13)).toBe(1.13)
    expect(floorFigure(2.26)).toBe(2.26)
    expect(floorFigure(0.53)).toBe(0.53)
    expect(floorFigure(0.5)).toBe(0.5)
    expect(floorFigure(0.29)).toBe(0.29)
    expect(floorFigure(0)).toBe(0)
  })
})
