/**
 * `npm run bench -- <suite>`: runs one benchmark suite and prints `BENCH <suite>.<name> <value>
 * <unit>` lines. With no suite, runs every suite that finishes in a few minutes.
 * Speed is measured here, never asserted in tests; each figure comes with an in-run baseline.
 */
import { printer } from './report.js'

type Suite = () => Promise<void>

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
    const i = process.argv.indexOf('--txs')
    await runNodeBench(printer('node'), i >= 0 ? { txs: Number(process.argv[i + 1]) } : {})
  },
  net: async () => {
    const { runNetBench } = await import('./net.js')
    const opt = (name: string) => {
      const i = process.argv.indexOf(`--${name}`)
      return i >= 0 ? Number(process.argv[i + 1]) : undefined
    }
    const o = { rate: opt('rate'), seconds: opt('seconds'), senders: opt('senders') }
    await runNetBench(printer('net'), Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)))
  },
  channel: async () => {
    const { runChannelBench } = await import('./channel.js')
    const i = process.argv.indexOf('--payments')
    await runChannelBench(printer('channel'), i >= 0 ? { payments: Number(process.argv[i + 1]) } : {})
  },
  light: async () => {
    const { runLightBench } = await import('./light.js')
    const opt = (name: string) => {
      const i = process.argv.indexOf(`--${name}`)
      return i >= 0 ? Number(process.argv[i + 1]) : undefined
    }
    const o = { height: opt('height'), changes: opt('changes'), validators: opt('validators'), runs: opt('runs') }
    await runLightBench(printer('light'), Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)))
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
