/**
 * `npm run sim -- --validators N --byzantine F --runs R --seed S [--crypto native|noble|fake]
 * [--unsafe ignore-locks|half-quorum] [--no-wal] [--verbose]`
 *
 * Runs R seeded simulations (seeds S … S+R−1) of N validators with F Byzantine, with network
 * faults, crashes and restarts before GST. Prints the seed and scenario of every failing run and
 * ends with `SIM runs=R validators=N byzantine=F safety_violations=K liveness_failures=L`
 * (K and L count failing runs); exits 0 only when both are 0.
 */
import type { SimCrypto } from './crypto.js'
import { runMany, type SimOptions } from './simulator.js'

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

function intFlag(name: string, fallback: number): number {
  const v = flag(name)
  if (v === undefined) return fallback
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} needs a non-negative integer, got ${v}`)
    process.exit(2)
  }
  return n
}

const validators = intFlag('validators', 4)
const byzantine = intFlag('byzantine', Math.min(1, Math.floor((validators - 1) / 3)))
const runs = intFlag('runs', 200)
const seed = intFlag('seed', 1)
const crypto = (flag('crypto') ?? 'native') as SimCrypto
if (!['native', 'noble', 'fake'].includes(crypto)) {
  console.error(`--crypto is native, noble or fake, got ${crypto}`)
  process.exit(2)
}
if (validators < 1 || byzantine > Math.floor((validators - 1) / 3)) {
  console.error(
    `${byzantine} Byzantine of ${validators} validators: at most ${Math.floor((validators - 1) / 3)} are tolerated (n >= 3f + 1)`,
  )
  process.exit(2)
}
const unsafe = flag('unsafe')
const verbose = process.argv.includes('--verbose')
const base: Omit<SimOptions, 'seed'> = {
  validators,
  byzantine,
  crypto,
  ...(unsafe === 'ignore-locks' ? { unsafeTestOnly: { ignoreLocks: true } } : {}),
  ...(unsafe === 'half-quorum' ? { unsafeTestOnly: { halfQuorum: true } } : {}),
  ...(process.argv.includes('--no-wal') ? { restartWithoutWal: true } : {}),
}

const started = process.hrtime.bigint()
const summary = runMany(base, seed, runs, (r) => {
  const failed = r.safetyViolations.length > 0 || r.livenessFailure !== undefined
  if (failed) {
    console.log(
      `FAIL seed=${r.seed} (reproduce: npm run sim -- --validators ${validators} --byzantine ${byzantine} --runs 1 --seed ${r.seed} --crypto ${crypto})`,
    )
    console.log(`  scenario: ${r.scenario}`)
    for (const v of r.safetyViolations.slice(0, 5)) console.log(`  safety: ${v}`)
    if (r.livenessFailure) console.log(`  liveness: ${r.livenessFailure}`)
  } else if (verbose) {
    console.log(`ok seed=${r.seed} heights=${r.stats.finalHeight} commits=${r.stats.commits} evidence=${r.stats.evidence} ${r.scenario}`)
  }
})
const seconds = Number(process.hrtime.bigint() - started) / 1e9
const t = summary.totals
console.log(
  `# ${runs} runs in ${seconds.toFixed(1)} s: ${t.commits} honest commits, ${t.evidence} evidence reports, ${t.rejected} rejected messages, ${t.crashes} crashes`,
)
console.log(
  `SIM runs=${runs} validators=${validators} byzantine=${byzantine} safety_violations=${summary.safetyViolations} liveness_failures=${summary.livenessFailures}`,
)
process.exit(summary.safetyViolations === 0 && summary.livenessFailures === 0 ? 0 : 1)
