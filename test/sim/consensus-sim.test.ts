/**
 * The consensus simulator's seeded runs. Most use cheap fake signatures (a digest-and-key tag
 * that a bit-flip breaks but anyone could forge) so that 1,000 runs stay fast; a smaller set runs
 * with real ed25519 signatures, checked by every node. Each failure names its seed:
 * `npm run sim -- --validators N --byzantine F --runs 1 --seed S --crypto fake` replays it.
 */
import { describe, expect, it } from 'vitest'
import { runMany, runSimulation, SET_CHANGE_HEIGHT, type SimOptions, type SimSummary } from './simulator.js'

function describeFailures(s: SimSummary): string {
  return s.failures
    .slice(0, 5)
    .map((r) => `seed ${r.seed}: ${r.safetyViolations[0] ?? r.livenessFailure}\n  ${r.scenario}`)
    .join('\n')
}

function expectClean(base: Omit<SimOptions, 'seed'>, seed: number, runs: number): SimSummary {
  const s = runMany(base, seed, runs)
  expect(s.safetyViolations, describeFailures(s)).toBe(0)
  expect(s.livenessFailures, describeFailures(s)).toBe(0)
  // The runs did exercise the protocol: blocks were committed and faults happened.
  expect(s.totals.commits).toBeGreaterThan(runs * 3)
  return s
}

describe('seeded runs with FAKE signatures (fast stand-ins): safety, liveness, no double signing', () => {
  // 600 runs of 4 validators with 1 Byzantine and 400 of 7 with 2: drops, delays, duplicates,
  // corrupted signatures, partitions, crashes (some mid-step) and WAL restarts before GST.
  for (let chunk = 0; chunk < 6; chunk++) {
    it(`4 validators, 1 Byzantine, faults: seeds ${1000 + chunk * 100}..${1099 + chunk * 100}`, () => {
      const s = expectClean({ validators: 4, byzantine: 1, crypto: 'fake' }, 1000 + chunk * 100, 100)
      expect(s.totals.crashes).toBeGreaterThan(0)
      expect(s.totals.rejected).toBeGreaterThan(0)
    })
  }
  for (let chunk = 0; chunk < 4; chunk++) {
    it(`7 validators, 2 Byzantine, faults: seeds ${5000 + chunk * 100}..${5099 + chunk * 100}`, () => {
      const s = expectClean({ validators: 7, byzantine: 2, crypto: 'fake' }, 5000 + chunk * 100, 100)
      expect(s.totals.evidence).toBeGreaterThan(0)
    })
  }
})

describe('seeded runs with REAL ed25519 signatures, verified by every node', () => {
  it('native (OpenSSL) ed25519: 40 runs of 4 validators with 1 Byzantine, faults', () => {
    expectClean({ validators: 4, byzantine: 1, crypto: 'native' }, 20_000, 40)
  })
  it('native (OpenSSL) ed25519: 10 runs of 7 validators with 2 Byzantine, faults', () => {
    expectClean({ validators: 7, byzantine: 2, crypto: 'native' }, 21_000, 10)
  })
  it("the core's pure-JS (noble) ed25519: 2 runs of 4 validators with 1 Byzantine, faults", () => {
    expectClean({ validators: 4, byzantine: 1, crypto: 'noble' }, 22_000, 2)
  })
})

describe('scenarios', () => {
  it('a silent leader is replaced after one round: heights it leads commit at round 1, the others at round 0', () => {
    const r = runSimulation({ seed: 7, validators: 4, byzantine: 1, byzantineModes: ['silent'], faults: false, heightsAfterGst: 20 })
    expect(r.safetyViolations).toEqual([])
    expect(r.livenessFailure).toBeUndefined()
    const rounds = [...r.commitRounds.values()]
    expect(rounds.length).toBeGreaterThanOrEqual(20)
    expect(Math.max(...rounds)).toBe(1)
    // Equal powers rotate the leader every height: the silent one leads round 0 of one height in 4.
    const slow = rounds.filter((x) => x === 1).length
    expect(slow).toBeGreaterThanOrEqual(Math.floor(rounds.length / 4) - 1)
    expect(slow).toBeLessThanOrEqual(Math.ceil(rounds.length / 4) + 1)
  })

  it('a crashed validator restarts from its WAL and the network keeps committing', () => {
    const r = runSimulation({ seed: 3, validators: 4, byzantine: 0, faults: false, crashes: 2, heightsAfterGst: 10 })
    expect(r.stats.crashes).toBe(2)
    expect(r.safetyViolations).toEqual([])
    expect(r.livenessFailure).toBeUndefined()
  })

  it('a validator-set change takes effect at its height: the newcomer signs certificates from then on, the leaver no more', () => {
    const r = runSimulation({ seed: 11, validators: 4, byzantine: 1, setChange: true, faults: false, heightsAfterGst: 8 })
    expect(r.safetyViolations).toEqual([])
    expect(r.livenessFailure).toBeUndefined()
    const leaver = r.nodes[0]?.address
    const newcomer = r.nodes[4]?.address
    let after = 0
    for (const [h, signers] of r.commitSigners) {
      if (h < SET_CHANGE_HEIGHT) {
        expect(signers).not.toContain(newcomer)
      } else {
        after++
        // The newcomer holds 2 of 5 power: no certificate of the new set reaches 2/3 without it.
        expect(signers).toContain(newcomer)
        expect(signers).not.toContain(leaver)
      }
    }
    expect(after).toBeGreaterThanOrEqual(4)
    // The validator that left still follows the chain as an observer.
    expect(r.nodes[0]?.tip).toBeGreaterThanOrEqual(SET_CHANGE_HEIGHT + 3)
  })

  it('the same seed replays the same run', () => {
    const a = runSimulation({ seed: 42, validators: 7, byzantine: 2 })
    const b = runSimulation({ seed: 42, validators: 7, byzantine: 2 })
    expect(b.stats).toEqual(a.stats)
    expect([...b.commitRounds]).toEqual([...a.commitRounds])
  })
})

describe('the checkers catch deliberate breakage', () => {
  it('safety checker: with a half-power "quorum", Byzantine forks make honest nodes commit different blocks', () => {
    const s = runMany({ validators: 4, byzantine: 1, byzantineModes: ['fork'], unsafeTestOnly: { halfQuorum: true } }, 1, 40)
    const forks = s.failures.flatMap((r) => r.safetyViolations).filter((v) => /node \d+ committed .*, node \d+ committed/.test(v))
    expect(forks.length).toBeGreaterThan(0)
  })

  it('double-sign checker: a validator restarted WITHOUT its WAL signs conflicting votes', () => {
    const s = runMany({ validators: 4, byzantine: 0, faults: true, crashes: 3, restartWithoutWal: true }, 1, 40)
    const doubles = s.failures.flatMap((r) => r.safetyViolations).filter((v) => v.includes('double-signed'))
    expect(doubles.length).toBeGreaterThan(0)
  })

  it('the same runs with the WAL never double-sign', () => {
    const s = runMany({ validators: 4, byzantine: 0, faults: true, crashes: 3 }, 1, 40)
    expect(s.safetyViolations, describeFailures(s)).toBe(0)
  })
})
