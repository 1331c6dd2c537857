// Runs in Chromium: recompute every golden vector (encodings, hashes, signatures, a sample block,
// state trees and proofs) with the browser's JavaScript engine.

import { fromHex } from '../../packages/core/src/index.js'
import stored from '../../packages/core/test/vectors/core.json' with { type: 'json' }
import { type CoreVectors, checkCoreVectors, computeCoreVectors } from '../../packages/core/test/vectors/core-vectors.js'
import stateVectorsJson from '../../packages/core/test/vectors/state.json' with { type: 'json' }
import { checkStateVectors, type StateVectorFile } from '../../packages/core/test/vectors/state-vectors.js'
import { hasWebCryptoEd25519, webCryptoSigner } from '../../packages/light-client/src/webcrypto-ed25519.js'
import { report } from '../support/browser-report.js'

const stateVectors = stateVectorsJson as unknown as StateVectorFile

/**
 * The verification vectors through this browser's WebCrypto Ed25519, as the channel wallet verifies
 * a counterparty's states: each case whose answer differs from the vector's.
 */
async function webCryptoFailures(): Promise<string[] | 'unavailable'> {
  if (!(await hasWebCryptoEd25519())) return 'unavailable'
  const signer = await webCryptoSigner(new Uint8Array(32).fill(1))
  const failures: string[] = []
  for (const c of (stored as CoreVectors).verify) {
    const got = await signer.verify(fromHex(c.signature), fromHex(c.message), fromHex(c.publicKey))
    if (got !== c.valid) failures.push(`verify ${c.name}: WebCrypto says ${got}, the vector says ${c.valid}`)
  }
  return failures
}

report(async () => ({
  userAgent: navigator.userAgent,
  failures: checkCoreVectors(stored as CoreVectors),
  stateFailures: await checkStateVectors(stateVectors),
  stateCases: stateVectors.cases.length,
  webCrypto: await webCryptoFailures(),
  computed: computeCoreVectors(),
}))
