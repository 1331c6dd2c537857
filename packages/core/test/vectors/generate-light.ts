/**
 * Regenerates light.json. Run only when a light-client wire format changes on purpose:
 * `npx tsx packages/core/test/vectors/generate-light.ts`, then review the diff.
 */
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { computeLightVectors } from './light-vectors.js'

const out = fileURLToPath(new URL('./light.json', import.meta.url))
writeFileSync(out, `${JSON.stringify(computeLightVectors(), null, 1)}\n`)
console.log(`wrote ${out}`)
