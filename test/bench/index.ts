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
}

/** Suites named by the design that later issues build. */
const COMING: Record<string, string> = {
  net: 'the full node issue (#5)',
  light: 'the light client issue (#6)',
  channel: 'the private channels issue (#7)',
}

const suite = process.argv[2]
if (suite === undefined) {
  for (const run of Object.values(SUITES)) await run()
} else if (SUITES[suite]) {
  await SUITES[suite]()
} else if (COMING[suite]) {
  console.error(`The '${suite}' suite is not built yet: it arrives with ${COMING[suite]}.`)
  process.exit(2)
} else {
  console.error(`Unknown suite '${suite}'. Suites: ${[...Object.keys(SUITES), ...Object.keys(COMING)].join(', ')}`)
  process.exit(2)
}
