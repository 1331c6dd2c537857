// Runs in Chromium: recompute every golden vector with the browser's JavaScript engine.

import stored from '../../packages/core/test/vectors/core.json' with { type: 'json' }
import { type CoreVectors, checkCoreVectors, computeCoreVectors } from '../../packages/core/test/vectors/core-vectors.js'
import { report } from '../support/browser-report.js'

report(() => ({
  userAgent: navigator.userAgent,
  failures: checkCoreVectors(stored as CoreVectors),
  computed: computeCoreVectors(),
}))
