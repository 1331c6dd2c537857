/**
 * The benchmark output format other tools read (DESIGN.md, "Commands other tools read"): one line
 * per figure, `BENCH <suite>.<name> <value> <unit>`; a comparison's name ends in `_ratio`, unit `x`.
 */

/** Receives one figure. */
export type Report = (name: string, value: number, unit: string) => void

/** Rounds to three significant digits (integers above 1000 stay whole). */
export function formatFigure(v: number): string {
  if (!Number.isFinite(v)) return String(v)
  if (Math.abs(v) >= 1000) return Math.round(v).toString()
  return Number(v.toPrecision(3)).toString()
}

/**
 * `v` rounded down to what {@link formatFigure} prints, instead of to the nearest: for a figure
 * compared with a threshold, so 0.49996 prints 0.499 and not 0.5.
 */
export function floorFigure(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v
  if (Math.abs(v) >= 1000) return Math.floor(v)
  const scale = 10 ** (2 - Math.floor(Math.log10(Math.abs(v))))
  // The epsilon keeps a product like 1.13 × 100 = 112.99999… at 113.
  return Math.floor(v * scale + 1e-9) / scale
}

/** A reporter that prints BENCH lines for `suite`. */
export function printer(suite: string): Report {
  return (name, value, unit) => {
    console.log(`BENCH ${suite}.${name} ${formatFigure(value)} ${unit}`)
  }
}

/** Runs `f` repeatedly for about `ms` milliseconds; returns operations per second. */
export function opsPerSecond(f: () => void, ms = 1000): number {
  // Warm up so the JIT has compiled the hot path before the clock starts.
  for (let i = 0; i < 50; i++) f()
  let n = 0
  const start = performance.now()
  let now = start
  while (now - start < ms) {
    for (let i = 0; i < 20; i++) f()
    n += 20
    now = performance.now()
  }
  return (n * 1000) / (now - start)
}
