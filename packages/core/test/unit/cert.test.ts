import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type Address,
  type Block,
  BlockError,
  blockCertificates,
  type Certificate,
  CertificateError,
  type CertificateTerms,
  certificateCodec,
  certificateFileToJson,
  certificateId,
  certificateOfTransaction,
  checkBlockCertSignatures,
  checkCertificate,
  DecodeError,
  decode,
  decodeCompactCertificate,
  encode,
  encodeCompactCertificate,
  fromBase45,
  keyPairFromSecret,
  parseCertificateFile,
  sha256,
  signBlockCertificates,
  termsFromCall,
  toBase45,
  toHex,
  utf8,
} from '../../src/index.js'
import { arbAddress, arbHash } from '../arbitraries.js'
import { CertChain, loggedId, school } from '../fixtures/cert-chain.js'
import vectors from '../vectors/core.json' with { type: 'json' }
import { sampleBlocks, sampleKey } from '../vectors/samples.js'

const arbText = (maxBytes: number, minLength = 0) =>
  fc.string({ unit: 'grapheme', minLength, maxLength: maxBytes / 4 }).filter((s) => utf8(s).length <= maxBytes && s.length >= minLength)

/** Certificates that obey every rule: sorted unique attribute keys, a window that ends after it starts. */
const arbCertificate: fc.Arbitrary<Certificate> = fc
  .record({
    networkId: fc.maxSafeNat(),
    issuer: arbAddress,
    height: fc.maxSafeNat(),
    txHash: arbHash,
    subject: arbText(256, 1),
    subjectKey: fc.option(arbHash, { nil: undefined }),
    attributes: fc.dictionary(arbText(64, 1), arbText(200), { maxKeys: 5 }),
    validFrom: fc.nat(2 ** 52),
    length: fc.option(fc.integer({ min: 1, max: 2 ** 52 }), { nil: undefined }),
    replaces: fc.option(arbHash, { nil: undefined }),
  })
  .map(({ attributes, length, ...c }) => ({
    ...c,
    version: 1,
    issuer: c.issuer as Address,
    attributes: Object.entries(attributes)
      .map(([key, value]) => ({ key, value }))
      .sort((a, b) => (toHex(utf8(a.key)) < toHex(utf8(b.key)) ? -1 : 1)),
    validUntil: length === undefined ? undefined : c.validFrom + length,
  }))

describe('certificate format', () => {
  it('round-trips through its codec, the JSON file and the compact form, with the same id', () => {
    fc.assert(
      fc.property(arbCertificate, arbHash, (c, genesisHash) => {
        expect(checkCertificate(c)).toBeUndefined()
        const bytes = encode(certificateCodec, c)
        expect(toHex(encode(certificateCodec, decode(certificateCodec, bytes)))).toBe(toHex(bytes))
        const file = {
          chain: { chainId: 'x', networkId: c.networkId, genesisHash },
          certificate: c,
          signature: new Uint8Array(64),
          evidence: undefined,
        }
        const back = parseCertificateFile(JSON.parse(JSON.stringify(certificateFileToJson(file))))
        expect(toHex(certificateId(back.certificate))).toBe(toHex(certificateId(c)))
        const compact = encodeCompactCertificate(file)
        expect(compact).toMatch(/^LC1:[0-9A-Z $%*+\-./:]*$/)
        expect(toHex(certificateId(decodeCompactCertificate(compact).certificate))).toBe(toHex(certificateId(c)))
      }),
      { numRuns: 300 },
    )
  })

  it('any change to any field changes the id', () => {
    const [{ certificate: c }] = blockCertificates(sampleBlocks().block1.transactions, 1) as unknown as [{ certificate: Certificate }]
    const id = toHex(certificateId(c))
    const changed: Certificate[] = [
      { ...c, subject: `${c.subject}.` },
      { ...c, height: c.height + 1 },
      { ...c, validFrom: c.validFrom + 1 },
      { ...c, validUntil: undefined },
      { ...c, subjectKey: undefined },
      { ...c, attributes: c.attributes.slice(1) },
      { ...c, replaces: new Uint8Array(32) },
      { ...c, issuer: sampleKey('other').address },
    ]
    for (const x of changed) expect(toHex(certificateId(x))).not.toBe(id)
  })

  it('the rules: sorted unique attribute names, a non-empty subject, a window that ends after it starts', () => {
    const [{ certificate: c }] = blockCertificates(sampleBlocks().block1.transactions, 1) as unknown as [{ certificate: Certificate }]
    expect(checkCertificate(c)).toBeUndefined()
    expect(checkCertificate({ ...c, attributes: [...c.attributes].reverse() })).toMatch(/sorted/)
    expect(checkCertificate({ ...c, attributes: [c.attributes[0], c.attributes[0]] as never })).toMatch(/sorted/)
    expect(checkCertificate({ ...c, subject: '' })).toMatch(/subject/)
    expect(checkCertificate({ ...c, validUntil: c.validFrom })).toMatch(/validUntil/)
    expect(checkCertificate({ ...c, version: 2 })).toMatch(/version/)
  })

  it('terms from a call: attributes are sorted by UTF-8 bytes, limits are enforced, renew needs the replaced id', () => {
    const t = termsFromCall('issue', { subject: 'Kim', attributes: { z: '1', a: '2', 한: '3', B: '4' }, validFrom: 5n })
    expect(typeof t).toBe('object')
    expect((t as CertificateTerms).attributes.map((a) => a.key)).toEqual(['B', 'a', 'z', '한'])
    expect(termsFromCall('issue', { subject: 'x'.repeat(257), validFrom: 0n })).toMatch(/subject/)
    expect(termsFromCall('issue', { subject: 'x', validFrom: -1n })).toMatch(/validFrom/)
    expect(termsFromCall('issue', { subject: 'x', validFrom: 0n, attributes: { ['k'.repeat(65)]: 'v' } })).toMatch(/attribute name/)
    expect(termsFromCall('issue', { subject: 'x', validFrom: 0n, surprise: 1n })).toMatch(/no parameter/)
    expect(termsFromCall('renew', { subject: 'x', validFrom: 0n })).toMatch(/replaces/)
    expect(termsFromCall('revoke', { id: new Uint8Array(32) })).toMatch(/does not issue/)
  })

  it('base45 matches RFC 9285 and refuses text that is not canonical base45', () => {
    const cases: [string, string][] = [
      ['AB', 'BB8'],
      ['Hello!!', '%69 VD92EX0'],
      ['base-45', 'UJCLQE7W581'],
      ['ietf!', 'QED8WEX0'],
      ['', ''],
    ]
    for (const [plain, b45] of cases) {
      expect(toBase45(utf8(plain))).toBe(b45)
      expect(new TextDecoder().decode(fromBase45(b45))).toBe(plain)
    }
    expect(() => fromBase45('GGW')).toThrow(DecodeError) // 65536: above two bytes
    expect(() => fromBase45('ZZ')).toThrow(DecodeError) // 1664: above one byte
    expect(() => fromBase45('A')).toThrow(DecodeError)
    expect(() => fromBase45('ab')).toThrow(DecodeError)
  })

  it('text decoders under fuzzing: base45, compact text and the JSON file give a value or their typed error, nothing else', () => {
    const alphabet = fc.constantFrom(...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:a#'.split(''))
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 60 }), (chars) => {
        const s = chars.join('')
        try {
          expect(toBase45(fromBase45(s))).toBe(s)
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e
        }
        try {
          decodeCompactCertificate(`LC1:${s}`)
        } catch (e) {
          if (!(e instanceof CertificateError)) throw e
        }
      }),
      { numRuns: 20_000 },
    )
    const compact = vectors.certificate.compact
    fc.assert(
      fc.property(fc.nat(compact.length - 1), alphabet, (at, ch) => {
        try {
          decodeCompactCertificate(compact.slice(0, at) + ch + compact.slice(at + 1))
        } catch (e) {
          if (!(e instanceof CertificateError)) throw e
        }
      }),
      { numRuns: 5_000 },
    )
    const json = certificateFileToJson(decodeCompactCertificate(compact)) as Record<string, unknown>
    const text = JSON.stringify(json)
    fc.assert(
      fc.property(fc.nat(text.length - 1), fc.constantFrom('0', 'f', '"', '1', ' ', '}', 'null'), (at, ch) => {
        let parsed: unknown
        try {
          parsed = JSON.parse(text.slice(0, at) + ch + text.slice(at + 1))
        } catch {
          return
        }
        try {
          parseCertificateFile(parsed)
        } catch (e) {
          if (!(e instanceof CertificateError)) throw e
        }
      }),
      { numRuns: 5_000 },
    )
  })
})

describe('block-key signatures', () => {
  const { block1 } = sampleBlocks()

  it('the sample block signs exactly its certificate-issuing transaction, and the signatures check', () => {
    expect(blockCertificates(block1.transactions, 1).map((x) => x.index)).toEqual([3])
    expect(block1.certSignatures).toHaveLength(1)
    expect(() => checkBlockCertSignatures(block1)).not.toThrow()
  })

  it('a block with a missing, extra or foreign signature is refused CERT_SIGNATURES', () => {
    const other = signBlockCertificates(block1.transactions, 1, sha256(utf8('not the block key')))
    const bad: Block[] = [
      { ...block1, certSignatures: [] },
      { ...block1, certSignatures: [...block1.certSignatures, ...other] },
      { ...block1, certSignatures: other },
      // Signed for another height: the id covers the height.
      { ...block1, certSignatures: signBlockCertificates(block1.transactions, 2, sampleKey('block-key-1').secretKey) },
    ]
    for (const b of bad) {
      let err: unknown
      try {
        checkBlockCertSignatures(b)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(BlockError)
      expect((err as BlockError).code).toBe('CERT_SIGNATURES')
    }
  })

  it('only well-formed, value-free issue and renew calls to the registry are signed: what execution needs is not consulted', async () => {
    const c = await CertChain.start()
    const issue = c.issue(school, 'Kim')
    const renew = c.renew(school, new Uint8Array(32), 'Kim')
    const revoke = c.revoke(school, new Uint8Array(32))
    const bad = c.issue(school, '')
    expect(certificateOfTransaction(issue, 1)).toBeDefined()
    expect(certificateOfTransaction(renew, 1)?.replaces).toEqual(new Uint8Array(32))
    expect(certificateOfTransaction(revoke, 1)).toBeUndefined()
    expect(certificateOfTransaction(bad, 1)).toBeUndefined()
    const ex = await c.block([issue, renew, revoke, bad])
    // The renewal of an unknown certificate fails in execution, yet it was signed.
    expect(ex.receipts.map((r) => r.failure?.code ?? 'OK')).toEqual([
      'OK',
      'UNKNOWN_CERTIFICATE',
      'UNKNOWN_CERTIFICATE',
      'INVALID_ARGUMENT',
    ])
    expect(c.blocks[1]?.certSignatures).toHaveLength(2)
    expect(toHex(loggedId(ex))).toBe(toHex(certificateId(certificateOfTransaction(issue, 1) as Certificate)))
    expect(keyPairFromSecret(CertChain.blockSecret(1)).publicKey).toEqual(c.headers[1]?.blockKey)
  })
})
