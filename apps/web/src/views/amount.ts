/** Amounts as the page reads and shows them: whole units of the chain's token, as bigints. */

/** Largest amount the page accepts (the chain's balances are 256-bit). */
const MAX = (1n << 255n) - 1n

/** Reads a whole, non-negative amount; `allowZero` for deposits that may be zero. Throws a sentence naming `what`. */
export function parseAmount(text: string, what: string, allowZero = false): bigint {
  const t = text.trim().replace(/[_,\s]/g, '')
  if (!/^\d+$/.test(t)) throw new RangeError(`${what} must be a whole number`)
  const v = BigInt(t)
  if (v === 0n && !allowZero) throw new RangeError(`${what} must be more than 0`)
  if (v > MAX) throw new RangeError(`${what} is too large`)
  return v
}

/** An amount with thousands separators. */
export function formatAmount(v: bigint): string {
  return v.toLocaleString('en-US')
}
