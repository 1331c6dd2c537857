// Runs in Chromium: the contract engine must count exactly the steps Node counts (pinned in
// packages/core/test/fixtures/score/steps.json) and leave the same storage behind.

import { initEngine } from '../../packages/core/src/score/engine/index.js'
import { MemoryHost } from '../../packages/core/test/fixtures/score/memory-host.js'
import TOKEN from '../../packages/core/test/fixtures/score/token.js?raw'
import { report } from '../support/browser-report.js'
import { scoreEngineProbe } from './score-engine-probe.js'

report(async () => scoreEngineProbe(await initEngine(), TOKEN, new MemoryHost({ sender: 'alice' })))
