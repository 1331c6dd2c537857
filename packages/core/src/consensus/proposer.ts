/**
 * Proposer rotation: weighted round-robin, a pure function of the validator set, the height and
 * the round. The set's powers give a schedule by smooth weighted round-robin (each validator
 * appears in proportion to its power, evenly spaced so that a heavy validator does not lead many
 * rounds in a row); height `h`, round `r` takes slot `(h + r) mod length`. The next round of a
 * height and the next height both move one slot, so a silent leader costs one round.
 */
import type { Validator, ValidatorSet } from '../ledger/validators.js'

/**
 * Longest schedule: powers are first divided by their greatest common divisor (equal powers give
 * a schedule of length n); beyond 4096 slots they are scaled down proportionally (each validator
 * keeps at least one slot), which bounds the one-off O(n · length) computation per set.
 */
export const MAX_SCHEDULE_LENGTH = 4096

const schedules = new WeakMap<ValidatorSet, readonly number[]>()

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b]
  return a
}

/** The proposer schedule of a set: validator indexes, one per slot (O(L log L) once per set). */
export function proposerSchedule(set: ValidatorSet): readonly number[] {
  const cached = schedules.get(set)
  if (cached) return cached
  const vs = set.validators
  let g = 0
  for (const v of vs) g = gcd(v.power, g)
  let weights = vs.map((v) => v.power / Math.max(g, 1))
  const total = weights.reduce((a, b) => a + b, 0)
  if (total > MAX_SCHEDULE_LENGTH) {
    const scale = MAX_SCHEDULE_LENGTH / total
    weights = weights.map((w) => Math.max(1, Math.floor(w * scale)))
  }
  // Stride scheduling: validator i's k-th slot sits at (k + phase_i) / weight_i of the period,
  // with phases spread over (0, 1) by index so that light validators do not bunch up; slots are
  // taken in order of position. Each validator leads exactly `weight` slots, evenly spaced, and
  // with equal weights the schedule is plain round-robin by index.
  const n = weights.length
  const slots: { pos: number; index: number }[] = []
  for (let i = 0; i < n; i++) {
    const w = weights[i] as number
    const phase = (i + 0.5) / n
    for (let k = 0; k < w; k++) slots.push({ pos: (k + phase) / w, index: i })
  }
  slots.sort((a, b) => a.pos - b.pos || a.index - b.index)
  const out = slots.map((x) => x.index)
  schedules.set(set, out)
  return out
}

/** Index (in the set) of the proposer at `height`, `round`. */
export function proposerIndex(set: ValidatorSet, height: number, round: number): number {
  const s = proposerSchedule(set)
  return s[(height + round) % s.length] as number
}

/** The proposer at `height`, `round`. */
export function proposerOf(set: ValidatorSet, height: number, round: number): Validator {
  return set.validators[proposerIndex(set, height, round)] as Validator
}
