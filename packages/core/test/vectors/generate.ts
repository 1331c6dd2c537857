/**
 * Regenerates core.json from the samples. Run only when a format changes on purpose:
 * `npx tsx packages/core/test/vectors/generate.ts`, then review the diff: every changed byte is a
 * protocol change that Node and browsers must agree on.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { computeCoreVectors } from './core-vectors.js'

const out = fileURLToPath(new URL('./core.json', import.meta.url))
writeFileSync(out, `${JSON.stringify(computeCoreVectors(), null, 1)}\n`)
console.log(`wrote ${out}`)
