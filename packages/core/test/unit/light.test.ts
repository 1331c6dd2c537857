/**
 * Light-client trust (light/headers.ts) and the light-client wire protocols (wire/light.ts,
 * wire/frames.ts): verifying signed headers, following set changes, header links, state answers
 * against headers, and the serving handlers' bounds and typed errors.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { nobleCrypto } from '../../src/crypto/provider.js'
import {
  BLOCK_VERSION,
  type BlockHeader,
  type BlockResult,
  blockHash,
  blockResultHash,
  bytesEqual,
  type Commit,
  checkHeaderLink,
  createLightHandlers,
  decode,
  decodeSetChanges,
  encode,
  encodeFrame,
  encodeSetChanges,
  exchangeRequest,
  extendValidatorSets,
  FrameKind,
  type FrameStream,
  followValidatorSets,
  headersRequestCodec,
  headersResponseCodec,
  type KeyPair,
  keyPairFromSecret,
  LIGHT_MAX_REQUEST_BYTES,
  type LightBackend,
  LightError,
  LightServeError,
  lightProtocolId,
  MemoryKVStore,
  makeValidatorSet,
  RequestError,
  readFrame,
  type SetInForce,
  type SignedHeader,
  StateTree,
  setAt,
  setChangesPageCodec,
  setChangesRequestCodec,
  sha256,
  signedHeaderCodec,
  stateProofAnswerCodec,
  stateProofRequestCodec,
  stateResult,
  utf8,
  type ValidatorSet,
  type ValidatorSetChange,
  VoteType,
  validatorSetHash,
  verifyHeaderChain,
  verifySignedHeader,
  verifyStateAgainstHeader,
  voteSignBytes,
  ZERO_HASH,
} from '../../src/index.js'
import stored from '../vectors/light.json' with { type: 'json' }
import { computeLightVectors } from '../vectors/light-vectors.js'

const NET = 5
const key = (label: string): KeyPair => keyPairFromSecret(sha256(utf8(label)))
const keysA = [0, 1, 2, 3].map((i) => key(`light a${i}`))
const keysB = [0, 1, 2].map((i) => key(`light b${i}`))
const setOf = (keys: KeyPair[], power = (i: number) => i + 1): ValidatorSet =>
  makeValidatorSet(keys.map((k, i) => ({ address: k.address, publicKey: k.publicKey, power: power(i) })))
const setA = setOf(keysA, () => 1)
const setB = setOf(keysB)
const RESULT: BlockResult = { stateRoot: ZERO_HASH, receiptsRoot: ZERO_HASH, logsBloom: new Uint8Array(256) }

/** Headers 1..n linked by hash; the set changes from A to B at `changeFrom` (announced by changeFrom − 1). */
function buildChain(n: number, changeFrom = Number.POSITIVE_INFINITY, result = RESULT): { headers: BlockHeader[]; sets: SetInForce[] } {
  const sets: SetInForce[] = [{ from: 1, set: setA }, ...(Number.isFinite(changeFrom) ? [{ from: changeFrom, set: setB }] : [])]
  const headers: BlockHeader[] = []
  let prev = ZERO_HASH
  for (let h = 1; h <= n; h++) {
    const header: BlockHeader = {
      version: BLOCK_VERSION,
      networkId: NET,
      height: h,
      prevHash: prev,
      timestamp: 1_000_000 * h,
      proposer: setAt(sets, h).validators[0]?.address as BlockHeader['proposer'],
      round: 0,
      txRoot: ZERO_HASH,
      resultRoot: blockResultHash(result),
      validatorsHash: validatorSetHash(setAt(sets, h)),
      nextValidatorsHash: validatorSetHash(setAt(sets, h + 1)),
      blockKey: new Uint8Array(32),
      lastCommitHash: ZERO_HASH,
    }
    headers.push(header)
    prev = blockHash(header)
  }
  return { headers, sets }
}

function sign(header: BlockHeader, set: ValidatorSet, keys: KeyPair[], only?: number[]): Commit {
  const hash = blockHash(header)
  const signatures = set.validators
    .map((v, index) => ({ v, index }))
    .filter(({ index }) => only === undefined || only.includes(index))
    .map(({ v, index }) => {
      const k = keys.find((x) => x.address === v.address) as KeyPair
      const vote = {
        networkId: header.networkId,
        type: VoteType.Precommit,
        height: header.height,
        round: 0,
        blockHash: hash,
        validator: v.address,
      }
      return { index, signature: nobleCrypto.sign(voteSignBytes(vote), k.secretKey) }
    })
  return { height: header.height, round: 0, blockHash: hash, signatures }
}

const signedA = (h: BlockHeader, only?: number[]): SignedHeader => ({ header: h, commit: sign(h, setA, keysA, only) })
const signedB = (h: BlockHeader, only?: number[]): SignedHeader => ({ header: h, commit: sign(h, setB, keysB, only) })

describe('verifySignedHeader', () => {
  const { headers } = buildChain(3)
  const h2 = headers[1] as BlockHeader

  it('accepts a header committed by more than 2/3 of the set in force and returns the signing power', () => {
    expect(verifySignedHeader(signedA(h2), setA, NET)).toBe(4)
    // 3 of 4 equal votes is a quorum; 2 of 4 is not.
    expect(verifySignedHeader(signedA(h2, [1, 2, 3]), setA, NET)).toBe(3)
  })

  it('rejects too little power, a forged signature, another block, another network or another set', () => {
    const code = (f: () => unknown) => {
      try {
        f()
      } catch (e) {
        return (e as LightError).code
      }
      return 'accepted'
    }
    expect(code(() => verifySignedHeader(signedA(h2, [0, 3]), setA, NET))).toBe('BAD_COMMIT')
    const sh = signedA(h2)
    const bad = sh.commit.signatures.map((s, i) => (i === 2 ? { ...s, signature: s.signature.map((b, j) => (j === 0 ? b ^ 1 : b)) } : s))
    expect(code(() => verifySignedHeader({ ...sh, commit: { ...sh.commit, signatures: bad } }, setA, NET))).toBe('BAD_COMMIT')
    expect(code(() => verifySignedHeader({ header: { ...h2, round: 1 }, commit: sh.commit }, setA, NET))).toBe('BAD_COMMIT')
    expect(code(() => verifySignedHeader(sh, setA, NET + 1))).toBe('WRONG_NETWORK')
    expect(code(() => verifySignedHeader(sh, setB, NET))).toBe('WRONG_SET')
  })
})

describe('following validator-set changes', () => {
  const { headers, sets } = buildChain(20, 11)
  const change: ValidatorSetChange = { signed: signedA(headers[9] as BlockHeader), next: setB }

  it('follows a change from the pinned genesis and knows the set at every height', () => {
    const followed = followValidatorSets({ networkId: NET, validators: setA }, [change])
    expect(followed).toEqual(sets)
    expect(setAt(followed, 10)).toBe(setA)
    expect(setAt(followed, 11)).toBe(setB)
    // Header 15 verifies against the followed set, not the genesis one.
    expect(verifySignedHeader(signedB(headers[14] as BlockHeader), setAt(followed, 15), NET)).toBe(6)
  })

  it('extends stored sets with later changes only', () => {
    const base = [{ from: 1, set: setA }]
    expect(extendValidatorSets(base, NET, [change])).toEqual(sets)
    expect(base).toHaveLength(1)
    expect(() => extendValidatorSets(sets, NET, [change])).toThrow(expect.objectContaining({ code: 'OUT_OF_ORDER' }))
  })

  it('refuses a wrong next set, a header that announces nothing, and a change signed by the wrong set', () => {
    const g = { networkId: NET, validators: setA }
    expect(() => followValidatorSets(g, [{ ...change, next: setOf(keysB, () => 7) }])).toThrow(
      expect.objectContaining({ code: 'WRONG_NEXT_SET' }),
    )
    expect(() => followValidatorSets(g, [{ signed: signedA(headers[3] as BlockHeader), next: setB }])).toThrow(
      expect.objectContaining({ code: 'NOT_A_CHANGE' }),
    )
    expect(() =>
      followValidatorSets(g, [{ ...change, signed: { ...change.signed, commit: sign(headers[9] as BlockHeader, setB, keysB) } }]),
    ).toThrow(expect.objectContaining({ code: 'BAD_COMMIT' }))
  })

  it('round-trips changes through their encoding', () => {
    expect(decodeSetChanges(encodeSetChanges([change]))).toEqual([change])
  })
})

describe('header links and chains', () => {
  const { headers, sets } = buildChain(12, 6)
  const signed = headers.map((h) => (h.height < 6 ? signedA(h) : signedB(h)))

  it('verifies a run of consecutive headers across a set change', () => {
    expect(verifyHeaderChain(sets, NET, signed.slice(2, 9), headers[1])).toHaveLength(7)
  })

  it('refuses a gap, a wrong parent, and a set its parent did not announce', () => {
    const a = headers[3] as BlockHeader
    expect(() => checkHeaderLink(a, headers[5] as BlockHeader)).toThrow(expect.objectContaining({ code: 'BROKEN_LINK' }))
    expect(() => checkHeaderLink(a, { ...(headers[4] as BlockHeader), prevHash: ZERO_HASH })).toThrow(/parent/)
    expect(() => checkHeaderLink(a, { ...(headers[4] as BlockHeader), validatorsHash: validatorSetHash(setB) })).toThrow(/announced/)
    expect(() => verifyHeaderChain(sets, NET, [signed[3], signed[5]] as SignedHeader[])).toThrow(LightError)
  })
})

describe('state answers against a verified header', () => {
  it('accepts a proof of the committed state and refuses a wrong result, value or proof', async () => {
    const tree = await StateTree.open(new MemoryKVStore())
    tree.put(utf8('k1'), utf8('v1'))
    tree.put(utf8('k2'), utf8('v2'))
    const result = stateResult(await tree.commitAndWrite())
    const header = buildChain(1, Number.POSITIVE_INFINITY, result).headers[0] as BlockHeader
    const { value, proof } = await tree.prove(utf8('k1'))
    verifyStateAgainstHeader(header, utf8('k1'), { result, value, proof })
    const absent = await tree.prove(utf8('nope'))
    verifyStateAgainstHeader(header, utf8('nope'), { result, ...absent })
    expect(() => verifyStateAgainstHeader(header, utf8('k1'), { result, value: utf8('v2'), proof })).toThrow(
      expect.objectContaining({ code: 'BAD_PROOF' }),
    )
    expect(() => verifyStateAgainstHeader(header, utf8('k1'), { result: RESULT, value, proof })).toThrow(
      expect.objectContaining({ code: 'WRONG_RESULT' }),
    )
    expect(() => verifyStateAgainstHeader(header, utf8('k2'), { result, value: utf8('v2'), proof })).toThrow(LightError)
  })
})

describe('light-client protocol handlers', () => {
  const { headers, sets } = buildChain(300, 101)
  const signedAt = (h: number) => (h < 101 ? signedA(headers[h - 1] as BlockHeader) : signedB(headers[h - 1] as BlockHeader))
  const cache = new Map<number, SignedHeader>()
  const backend = (height: number): LightBackend => ({
    height,
    signedHeader: (h) => {
      if (h < 1 || h > height) return undefined
      const sh = cache.get(h) ?? signedAt(h)
      cache.set(h, sh)
      return sh
    },
    setChanges: () => sets.slice(1),
    resultAt: () => RESULT,
    prove: async () => ({ value: undefined, proof: { siblings: [] } }),
  })
  const handlers = createLightHandlers(backend(300))
  const serveError = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    )
    expect(e).toBeInstanceOf(LightServeError)
    return e as LightServeError
  }

  it('names protocols per chain', () => {
    expect(lightProtocolId('main', 'headers')).toBe('/loopchain/main/light-headers/1')
    expect(lightProtocolId('main', 'tip')).not.toBe(lightProtocolId('other', 'tip'))
  })

  it('serves the tip, a range of headers and the set changes', async () => {
    expect(decode(signedHeaderCodec, await handlers.tip(new Uint8Array(0))).header.height).toBe(300)
    const range = decode(headersResponseCodec, await handlers.headers(encode(headersRequestCodec, { from: 290, count: 50 })))
    expect(range.map((s) => s.header.height)).toEqual(Array.from({ length: 11 }, (_, i) => 290 + i))
    const page = decode(setChangesPageCodec, await handlers.sets(encode(setChangesRequestCodec, { after: 0 })))
    expect(page.more).toBe(false)
    expect(page.changes.map((c) => c.signed.header.height)).toEqual([100])
    expect(followValidatorSets({ networkId: NET, validators: setA }, page.changes)).toEqual(sets)
    expect(decode(setChangesPageCodec, await handlers.sets(encode(setChangesRequestCodec, { after: 100 }))).changes).toEqual([])
  })

  it('holds back a change whose announcing header is not committed yet', async () => {
    const early = createLightHandlers(backend(99))
    expect(decode(setChangesPageCodec, await early.sets(encode(setChangesRequestCodec, { after: 0 }))).changes).toEqual([])
  })

  it('answers state proofs for the state a header commits to', async () => {
    const a = decode(stateProofAnswerCodec, await handlers.proof(encode(stateProofRequestCodec, { key: utf8('k'), height: 0 })))
    expect(a.height).toBe(300)
    expect(bytesEqual(blockResultHash(a.result), (headers[299] as BlockHeader).resultRoot)).toBe(true)
  })

  it('refuses bad requests (penalised) and unknown heights (not penalised)', async () => {
    expect(await serveError(handlers.tip(new Uint8Array(1)))).toMatchObject({ code: 'BAD_REQUEST', penalize: true })
    for (const req of [
      { from: 0, count: 1 },
      { from: 1, count: 0 },
      { from: 1, count: 257 },
    ]) {
      expect(await serveError(handlers.headers(encode(headersRequestCodec, req)))).toMatchObject({ code: 'BAD_REQUEST' })
    }
    expect(await serveError(handlers.headers(Uint8Array.of(0xff)))).toMatchObject({ code: 'BAD_REQUEST' })
    expect(await serveError(handlers.headers(new Uint8Array(LIGHT_MAX_REQUEST_BYTES.headers + 1)))).toMatchObject({ code: 'BAD_REQUEST' })
    expect(await serveError(handlers.headers(encode(headersRequestCodec, { from: 301, count: 1 })))).toMatchObject({
      code: 'NOT_FOUND',
      penalize: false,
    })
    expect(await serveError(handlers.proof(encode(stateProofRequestCodec, { key: new Uint8Array(0), height: 1 })))).toMatchObject({
      code: 'BAD_REQUEST',
    })
    expect(await serveError(handlers.proof(encode(stateProofRequestCodec, { key: utf8('k'), height: 301 })))).toMatchObject({
      code: 'NOT_FOUND',
    })
    expect(await serveError(createLightHandlers(backend(0)).tip(new Uint8Array(0)))).toMatchObject({ code: 'NOT_FOUND' })
  })

  it('every request codec round-trips', () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), (a, b) => {
        expect(decode(headersRequestCodec, encode(headersRequestCodec, { from: a, count: b }))).toEqual({ from: a, count: b })
        expect(decode(setChangesRequestCodec, encode(setChangesRequestCodec, { after: a }))).toEqual({ after: a })
      }),
    )
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 1024 }), fc.nat(), (k, h) => {
        expect(decode(stateProofRequestCodec, encode(stateProofRequestCodec, { key: k, height: h }))).toEqual({ key: k, height: h })
      }),
    )
  })
})

/** A stream fed by a handler: what the requester sends goes to `respond`, whose bytes come back in `chunk`-sized pieces. */
function loopStream(respond: (frame: Uint8Array) => Uint8Array, chunk = 3): FrameStream {
  let sent: Uint8Array | undefined
  let wake: (() => void) | undefined
  return {
    send(data) {
      sent = data
      wake?.()
      return true
    },
    onDrain: async () => {},
    close: async () => {},
    async *[Symbol.asyncIterator]() {
      while (sent === undefined) await new Promise<void>((r) => (wake = r))
      const out = respond(sent)
      for (let i = 0; i < out.length; i += chunk) {
        const part = out.subarray(i, i + chunk)
        // Alternate plain bytes and list-like chunks, as libp2p streams deliver both.
        yield i % 2 === 0 ? part : { byteLength: part.byteLength, subarray: () => part }
      }
    },
  }
}

describe('request framing over a stream', () => {
  it('sends a request frame and returns the response payload', async () => {
    const stream = loopStream(() => encodeFrame(FrameKind.Response, utf8('pong')))
    expect(new TextDecoder().decode(await exchangeRequest(stream, utf8('ping'), 100))).toBe('pong')
    async function* bytewise(b: Uint8Array) {
      for (let i = 0; i < b.length; i++) yield b.subarray(i, i + 1)
    }
    const req = await readFrame(bytewise(encodeFrame(FrameKind.Request, utf8('ping'))), 10, () => new Error('big'))
    expect(new TextDecoder().decode(req.payload)).toBe('ping')
  })

  it('turns an error frame into a RequestError with the remote code, and refuses an oversized response', async () => {
    const err = new TextEncoder().encode(JSON.stringify({ code: 'HANDLER_FAILED', message: 'no', remoteCode: 'NOT_FOUND' }))
    const failing = exchangeRequest(
      loopStream(() => encodeFrame(FrameKind.Error, err)),
      utf8('x'),
      100,
    )
    await expect(failing).rejects.toMatchObject({
      name: 'RequestError',
      code: 'HANDLER_FAILED',
      details: { remote: true, remoteCode: 'NOT_FOUND' },
    })
    const big = exchangeRequest(
      loopStream(() => encodeFrame(FrameKind.Response, new Uint8Array(200))),
      utf8('x'),
      100,
    )
    await expect(big).rejects.toBeInstanceOf(RequestError)
    await expect(
      exchangeRequest(
        loopStream(() => encodeFrame(FrameKind.Response, new Uint8Array(200))),
        utf8('x'),
        100,
      ),
    ).rejects.toMatchObject({
      code: 'RESPONSE_TOO_LARGE',
    })
  })
})

describe('golden vectors of the light-client wire formats', () => {
  it('the bytes computed now are the bytes pinned in test/vectors/light.json', () => {
    expect(computeLightVectors()).toEqual(stored)
  })

  it('every pinned message decodes and re-encodes to the same bytes', () => {
    const rt = (codec: Parameters<typeof decode>[0], hex: string) => {
      const bytes = Uint8Array.from(hex.match(/../g) ?? [], (b) => Number.parseInt(b, 16))
      expect(encode(codec, decode(codec, bytes))).toEqual(bytes)
    }
    rt(headersRequestCodec, stored.headersRequest)
    rt(setChangesRequestCodec, stored.setChangesRequest)
    rt(stateProofRequestCodec, stored.stateProofRequest)
    rt(signedHeaderCodec, stored.signedHeader)
    rt(headersResponseCodec, stored.headersResponse)
    rt(setChangesPageCodec, stored.setChangesPage)
    rt(stateProofAnswerCodec, stored.stateProofAnswer)
  })
})
