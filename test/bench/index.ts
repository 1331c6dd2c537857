/**
 * `npm run bench -- <suite>`: runs one benchmark suite and prints `BENCH <suite>.<name> <value>
 * <unit>` lines. With no suite, runs every suite that finishes in a few minutes.
 * Speed is measured here, never asserted in tests; each figure comes with an in-run baseline.
 */
import { printer } from './report.js'

type Suite = () => Promise<void>

/** The numeric `--name value` options among `names` that were given on the command line. */
function numberOpts<const K extends string>(...names: K[]): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {}
  for (const name of names) {
    const i = process.argv.indexOf(`--${name}`)
    if (i < 0) continue
    const v = Number(process.argv[i + 1])
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${name} takes a number of at least 0, not ${process.argv[i + 1] ?? 'nothing'}`)
    out[name] = v
  }
  return out
}

const SUITES: Record<string, Suite> = {
  core: async () => {
    const { runCoreBench } = await import('./core.js')
    const sizes = process.argv
      .slice(3)
      .map(Number)
      .filter((n) => n > 0)
    await runCoreBench(printer('core'), sizes.length ? sizes : undefined)
  },
  consensus: async () => {
    const { runConsensusBench } = await import('./consensus.js')
    await runConsensusBench(printer('consensus'))
  },
  score: async () => {
    const { runScoreBench } = await import('./score.js')
    const transfers = Number(process.argv[3])
    await runScoreBench(printer('score'), transfers > 0 ? { transfers } : {})
  },
  node: async () => {
    const { runNodeBench } = await import('./node.js')
    await runNodeBench(printer('node'), numberOpts('txs'))
  },
  net: async () => {
    const { runNetBench } = await import('./net.js')
    const { 'block-interval': blockInterval, ...rest } = numberOpts('rate', 'seconds', 'senders', 'warmup', 'block-interval')
    await runNetBench(printer('net'), { ...rest, ...(blockInterval !== undefined ? { blockInterval } : {}) })
  },
  gossip: async () => {
    const { runGossipBench } = await import('./gossip.js')
    // `npm run bench -- gossip 60k mesh4` runs only those figures' sizes.
    const only = process.argv.slice(3).filter((a) => !a.startsWith('--'))
    await runGossipBench(printer('gossip'), only.length ? only : undefined)
  },
  channel: async () => {
    const { runChannelBench } = await import('./channel.js')
    await runChannelBench(printer('channel'), numberOpts('payments', 'rounds'))
  },
  light: async () => {
    const { runLightBench } = await import('./light.js')
    await runLightBench(printer('light'), numberOpts('height', 'changes', 'validators', 'runs'))
  },
}

/** Suites that run only when named (they take minutes or start processes). */
const ON_DEMAND = new Set(['net'])

const suite = process.argv[2]
if (suite === undefined) {
  for (const [name, run] of Object.entries(SUITES)) if (!ON_DEMAND.has(name)) await run()
} else if (SUITES[suite]) {
  await SUITES[suite]()
} else {
  console.error(`Unknown suite '${suite}'. Suites: ${Object.keys(SUITES).join(', ')}`)
  process.exit(2)
}
