// The size baseline of `npm run bench -- light`: the core's certificate verifier and the readers
// the page feeds it (genesis, status evidence), with nothing else, bundled as the web app is.
export { parseGenesis, parseStatusEvidence, verifyCertificate } from '@loopchain/core'
