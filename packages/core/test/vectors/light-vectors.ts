/**
 * Golden vectors of the light-client wire formats (core wire/light.ts, wire/frames.ts): request
 * and response messages, a signed header and a set-change page, and the frame bytes around them.
 * Built from keys of their own, so they change only when these formats do. Checked in Node
 * (test/unit/light.test.ts) and in Chromium (test/browser/light-client.test.ts).
 */
import {
  BLOCK_VERSION,
  type BlockHeader,
  blockHash,
  encode,
  encodeErrorFrame,
  encodeFrame,
  FrameKind,
  headersRequestCodec,
  headersResponseCodec,
  keyPairFromSecret,
  lightProtocolId,
  makeValidatorSet,
  nobleCrypto,
  type SignedHeader,
  setChangesPageCodec,
  setChangesRequestCodec,
  sha256,
  signedHeaderCodec,
  stateProofAnswerCodec,
  stateProofRequestCodec,
  toHex,
  utf8,
  VoteType,
  validatorSetHash,
  voteSignBytes,
  ZERO_HASH,
} from '../../src/index.js'

/** The vectors: name → lowercase hex (or a protocol id). */
export type LightVectors = Record<string, string>

/** Computes the light-client wire vectors. */
export function computeLightVectors(): LightVectors {
  const keys = [0, 1, 2].map((i) => keyPairFromSecret(sha256(utf8(`light vector validator ${i}`))))
  const set = makeValidatorSet(keys.map((k, i) => ({ address: k.address, publicKey: k.publicKey, power: i + 1 })))
  const next = makeValidatorSet(keys.slice(0, 2).map((k) => ({ address: k.address, publicKey: k.publicKey, power: 5 })))
  const header: BlockHeader = {
    version: BLOCK_VERSION,
    networkId: 9,
    height: 41,
    prevHash: sha256(utf8('header 40')),
    timestamp: 1_767_225_600_000_000,
    proposer: set.validators[0]?.address as BlockHeader['proposer'],
    round: 1,
    txRoot: sha256(utf8('txs')),
    resultRoot: sha256(utf8('result 40')),
    validatorsHash: validatorSetHash(set),
    nextValidatorsHash: validatorSetHash(next),
    blockKey: keyPairFromSecret(sha256(utf8('light vector block key'))).publicKey,
    lastCommitHash: sha256(utf8('commit 40')),
  }
  const hash = blockHash(header)
  const signatures = set.validators.map((v, index) => {
    const k = keys.find((x) => x.address === v.address)
    if (!k) throw new Error('no key')
    const vote = { networkId: 9, type: VoteType.Precommit, height: 41, round: 1, blockHash: hash, validator: v.address }
    return { index, signature: nobleCrypto.sign(voteSignBytes(vote), k.secretKey) }
  })
  const signed: SignedHeader = { header, commit: { height: 41, round: 1, blockHash: hash, signatures } }
  const result = { stateRoot: sha256(utf8('state 40')), receiptsRoot: ZERO_HASH, logsBloom: new Uint8Array(256) }
  const hex = toHex
  return {
    tipProtocol: lightProtocolId('main', 'tip'),
    headersProtocol: lightProtocolId('main', 'headers'),
    setsProtocol: lightProtocolId('main', 'sets'),
    proofProtocol: lightProtocolId('main', 'proof'),
    headersRequest: hex(encode(headersRequestCodec, { from: 1000, count: 64 })),
    setChangesRequest: hex(encode(setChangesRequestCodec, { after: 300 })),
    stateProofRequest: hex(encode(stateProofRequestCodec, { key: utf8('cert:alpha'), height: 42 })),
    signedHeader: hex(encode(signedHeaderCodec, signed)),
    headersResponse: hex(encode(headersResponseCodec, [signed])),
    setChangesPage: hex(encode(setChangesPageCodec, { changes: [{ signed, next }], more: true })),
    stateProofAnswer: hex(
      encode(stateProofAnswerCodec, {
        height: 42,
        result,
        value: utf8('issued'),
        proof: { siblings: [ZERO_HASH, sha256(utf8('sibling'))], leaf: undefined },
      }),
    ),
    requestFrame: hex(encodeFrame(FrameKind.Request, encode(headersRequestCodec, { from: 1, count: 1 }))),
    errorFrame: hex(encodeErrorFrame({ code: 'HANDLER_FAILED', message: 'header 9 is not available here', remoteCode: 'NOT_FOUND' })),
  }
}
