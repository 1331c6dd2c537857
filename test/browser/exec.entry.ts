// Runs in Chromium: execute the test chain (transfers, a SCORE deploy, token calls, failures)
// from genesis and report every state root and receipt.
import { initEngine } from '../../packages/core/src/index.js'
import { runChain } from '../../packages/core/test/fixtures/exec/chain.js'
import { report } from '../support/browser-report.js'

report(async () => (await runChain(await initEngine())).blocks)
