// Runs in Chromium: recompute every golden vector (encodings, hashes, signatures, a sample block,
// state trees and proofs) with the browser's JavaScript engine.

import stored from '../../packages/core/test/vectors/core.json' with { type: 'json' }
import { type CoreVectors, checkCoreVectors, computeCoreVectors } from '../../packages/core/test/vectors/core-vectors.js'
import stateVectorsJson from '../../packages/core/test/vectors/state.json' with { type: 'json' }
import { checkStateVectors, type StateVectorFile } from '../../packages/core/test/vectors/state-vectors.js'
import { report } from '../support/browser-report.js'

const stateVectors = stateVectorsJson as unknown as StateVectorFile

report(async () => ({
  userAgent: navigator.userAgent,
  failures: checkCoreVectors(stored as CoreVectors),
  stateFailures: await checkStateVectors(stateVectors),
  stateCases: stateVectors.cases.length,
  computed: computeCoreVectors(),
}))
