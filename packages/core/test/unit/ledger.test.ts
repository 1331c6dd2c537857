import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type Block,
  BlockError,
  blockCodec,
  blockHash,
  blockLimits,
  blockStepBound,
  bloomMayMatch,
  bytesEqual,
  CommitError,
  callDataCodec,
  checkBlockStructure,
  checkTransaction,
  commitHash,
  concatBytes,
  contractAddress,
  DEFAULT_PARAMS,
  Domain,
  decodeBlock,
  decodeTransaction,
  encode,
  GenesisError,
  genesisHash,
  genesisToJson,
  keyPairFromSecret,
  logMatches,
  logsBloom,
  MAX_TX_BYTES,
  makeValidatorSet,
  parseGenesis,
  sha256,
  signTransaction,
  type Transaction,
  type TransactionBody,
  TxError,
  TxKind,
  toHex,
  transactionBodyCodec,
  transactionCodec,
  transactionHash,
  transactionStepBound,
  utf8,
  ValidatorSetError,
  validatorSetHash,
  verifyCommit,
} from '../../src/index.js'
import { arbTransaction } from '../arbitraries.js'
import {
  NETWORK_ID,
  sampleBlocks,
  sampleGenesis,
  sampleKey,
  sampleReceipt,
  sampleTransactions,
  sampleValidators,
  T0,
} from '../vectors/samples.js'

const ctx = { networkId: NETWORK_ID, now: T0 + 1_000_000, timestampWindow: 300_000_000, maxStepLimit: 1_000_000 }

/**
 * `w` with one byte replaced by `byte` (`how` 0), `byte` inserted (1) or one byte removed (2), at
 * `at` modulo its length: lengths, varints and tags all get hit.
 */
function damaged(w: Uint8Array, at: number, byte: number, how: number): Uint8Array {
  const i = at % w.length
  if (how === 0) return Uint8Array.from(w, (x, j) => (j === i ? byte : x))
  if (how === 1) return Uint8Array.of(...w.subarray(0, i), byte, ...w.subarray(i))
  return Uint8Array.of(...w.subarray(0, i), ...w.subarray(i + 1))
}

function txError(f: () => unknown): TxError {
  try {
    f()
  } catch (e) {
    if (e instanceof TxError) return e
    throw e
  }
  throw new Error('expected a TxError')
}

describe('transactions', () => {
  const alice = sampleKey('alice')
  const bob = sampleKey('bob')
  const body: TransactionBody = {
    version: 1,
    networkId: NETWORK_ID,
    from: alice.address,
    to: bob.address,
    value: 5n,
    stepLimit: 1000,
    timestamp: T0 + 1_000_000,
    nonce: 0,
    kind: TxKind.Transfer,
    data: new Uint8Array(0),
  }

  it('a signed transaction passes the stateless checks and yields its hash', () => {
    for (const tx of sampleTransactions()) expect(checkTransaction(tx, ctx)).toEqual(transactionHash(tx.body))
  })

  it('refuses a bad signature, another network, a foreign key, an old or future timestamp', () => {
    const tx = signTransaction(body, alice)
    const badSig = { ...tx, signature: tx.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) }
    expect(txError(() => checkTransaction(badSig, ctx)).code).toBe('BAD_SIGNATURE')
    expect(txError(() => checkTransaction(badSig, ctx)).penalize).toBe(true)
    // A valid signature over a modified body: the hash changes, so it fails too.
    expect(txError(() => checkTransaction({ ...tx, body: { ...body, value: 6n } }, ctx)).code).toBe('BAD_SIGNATURE')
    expect(txError(() => checkTransaction(signTransaction({ ...body, networkId: 8 }, alice), ctx)).code).toBe('WRONG_NETWORK')
    expect(txError(() => checkTransaction({ ...tx, publicKey: bob.publicKey }, ctx)).code).toBe('SENDER_MISMATCH')
    const old = signTransaction({ ...body, timestamp: ctx.now - ctx.timestampWindow - 1 }, alice)
    expect(txError(() => checkTransaction(old, ctx)).code).toBe('TIMESTAMP_TOO_OLD')
    expect(txError(() => checkTransaction(old, ctx)).penalize).toBe(false)
    const future = signTransaction({ ...body, timestamp: ctx.now + ctx.timestampWindow + 1 }, alice)
    expect(txError(() => checkTransaction(future, ctx)).code).toBe('TIMESTAMP_IN_FUTURE')
    expect(txError(() => checkTransaction(signTransaction({ ...body, stepLimit: 0 }, alice), ctx)).code).toBe('BAD_STEP_LIMIT')
    expect(txError(() => checkTransaction(signTransaction({ ...body, version: 2 }, alice), ctx)).code).toBe('UNSUPPORTED_VERSION')
  })

  it('checks kind-specific payloads', () => {
    const score = contractAddress(sha256(utf8('x')))
    expect(txError(() => checkTransaction(signTransaction({ ...body, data: Uint8Array.of(1) }, alice), ctx)).code).toBe('BAD_DATA')
    expect(txError(() => checkTransaction(signTransaction({ ...body, value: 0n }, alice), ctx)).code).toBe('BAD_DATA')
    const call = { ...body, kind: TxKind.Call, value: 0n, to: score, data: encode(callDataCodec, { method: 'f', params: null }) }
    expect(checkTransaction(signTransaction(call, alice), ctx)).toHaveLength(32)
    expect(txError(() => checkTransaction(signTransaction({ ...call, to: bob.address }, alice), ctx)).code).toBe('BAD_DATA')
    expect(txError(() => checkTransaction(signTransaction({ ...call, data: Uint8Array.of(9) }, alice), ctx)).code).toBe('BAD_DATA')
  })

  it('refuses to sign for another address, and decodes only bounded, well-formed bytes', () => {
    expect(txError(() => signTransaction({ ...body, from: bob.address }, alice)).code).toBe('SENDER_MISMATCH')
    expect(txError(() => decodeTransaction(new Uint8Array(MAX_TX_BYTES + 1))).code).toBe('TOO_LARGE')
    const bytes = encode(transactionCodec, signTransaction(body, alice))
    expect(txError(() => decodeTransaction(bytes.subarray(0, bytes.length - 1))).code).toBe('MALFORMED')
    expect(decodeTransaction(bytes).body).toEqual(body)
  })

  it('any single-bit change to a signed transaction makes it fail the checks', () => {
    const bytes = encode(transactionCodec, signTransaction(body, alice))
    fc.assert(
      fc.property(fc.nat(bytes.length * 8 - 1), (bit) => {
        const b = bytes.slice()
        b[bit >> 3] = (b[bit >> 3] as number) ^ (1 << (bit & 7))
        expect(() => checkTransaction(decodeTransaction(b), ctx)).toThrow(TxError)
      }),
      { numRuns: 400 },
    )
  })
})

describe('transaction hashes taken from wire bytes', () => {
  /** The hash by its definition: SHA-256 of the domain tag and the body's encoding. */
  const definedHash = (body: TransactionBody) => sha256(Uint8Array.of(Domain.Transaction, ...encode(transactionBodyCodec, body)))

  it('equal the hashes of the bodies, for every kind, alone and inside a block', () => {
    fc.assert(
      fc.property(arbTransaction, (tx) => {
        expect(transactionHash(decodeTransaction(encode(transactionCodec, tx)).body)).toEqual(definedHash(tx.body))
      }),
      { numRuns: 200 },
    )
    const txs = sampleTransactions()
    for (const tx of txs) expect(transactionHash(decodeTransaction(encode(transactionCodec, tx)).body)).toEqual(definedHash(tx.body))
    const { block1 } = sampleBlocks()
    const decoded = decodeBlock(encode(blockCodec, block1))
    expect(decoded.transactions.length).toBeGreaterThan(0)
    decoded.transactions.forEach((tx, i) => {
      expect(transactionHash(tx.body)).toEqual(definedHash((block1.transactions[i] as (typeof block1.transactions)[number]).body))
    })
  })

  it('equal the hashes of the bodies for whatever damaged bytes still decode (decoding is canonical)', () => {
    const wires = sampleTransactions().map((tx) => encode(transactionCodec, tx))
    let decodedSome = 0
    fc.assert(
      fc.property(fc.nat(wires.length - 1), fc.nat(), fc.nat(255), fc.nat(2), (which, at, byte, how) => {
        const b = damaged(wires[which] as Uint8Array, at, byte, how)
        let tx: ReturnType<typeof decodeTransaction>
        try {
          tx = decodeTransaction(b)
        } catch {
          return
        }
        decodedSome++
        expect(transactionHash(tx.body)).toEqual(definedHash(tx.body))
      }),
      { numRuns: 1500 },
    )
    expect(decodedSome).toBeGreaterThan(100)
  })
})

describe('decoding a block whose transactions a node already holds', () => {
  /** A body's hash by its definition: SHA-256 of the domain tag and the body's encoding. */
  const bodyHash = (body: TransactionBody) => sha256(Uint8Array.of(Domain.Transaction, ...encode(transactionBodyCodec, body)))
  const { block1 } = sampleBlocks()
  const wire = (tx: Transaction) => encode(transactionCodec, tx)
  /** What a mempool does: the held object for a body hash with exactly these key and signature bytes. */
  const holding = (held: readonly Transaction[]) => {
    const byHash = new Map(held.map((tx) => [toHex(transactionHash(tx.body)), tx]))
    let asked = 0
    const known = (hash: Uint8Array, keyAndSignature: Uint8Array) => {
      asked++
      const tx = byHash.get(toHex(hash))
      return tx && bytesEqual(concatBytes(tx.publicKey, tx.signature), keyAndSignature) ? tx : undefined
    }
    return { known, asked: () => asked }
  }

  it('takes the held objects, decodes the rest, and gives the block a plain decode gives', () => {
    fc.assert(
      fc.property(
        fc.array(arbTransaction, { minLength: 1, maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        (txs, held) => {
          const block = { ...block1, transactions: txs }
          const bytes = encode(blockCodec, block)
          // The node holds its own decoded copies of some (as the pool does), not the objects encoded.
          const copies = txs.map((tx) => decodeTransaction(wire(tx)))
          const { known, asked } = holding(copies.filter((_, i) => held[i]))
          const decoded = decodeBlock(bytes, undefined, known)
          expect(decoded).toEqual(decodeBlock(bytes))
          expect(asked()).toBe(txs.length)
          // Each one's hash, decoded or held, is its body's (one not held is hashed once, in place).
          for (const tx of decoded.transactions) expect(transactionHash(tx.body)).toEqual(bodyHash(tx.body))
          decoded.transactions.forEach((tx, i) => {
            if (held[i] && !copies.slice(0, i).some((c) => bytesEqual(wire(c), wire(tx)))) expect(tx).toBe(copies[i])
            if (!held[i] && !copies.some((c, j) => held[j] && bytesEqual(wire(c), wire(tx)))) expect(copies).not.toContain(tx)
          })
        },
      ),
      { numRuns: 150 },
    )
  })

  it('decodes afresh a held body under another signature or key', () => {
    const [t, u] = block1.transactions as [Transaction, Transaction]
    const forged = { ...t, signature: t.signature.map((x, i) => (i === 5 ? x ^ 1 : x)) }
    const rekeyed = { ...t, publicKey: u.publicKey }
    const { known } = holding([t])
    const decoded = decodeBlock(encode(blockCodec, { ...block1, transactions: [forged, t, rekeyed] }), undefined, known)
    expect(decoded.transactions[1]).toBe(t)
    expect(decoded.transactions[0]).not.toBe(t)
    expect(decoded.transactions[0]).toEqual(forged)
    expect(decoded.transactions[2]).toEqual(rekeyed)
  })

  it('refuses damaged bytes exactly as a plain decode does, and decodes what it decodes', () => {
    const bytes = encode(blockCodec, block1)
    const { known } = holding(block1.transactions.map((tx) => decodeTransaction(wire(tx))))
    const outcome = (f: () => unknown) => {
      try {
        return { value: f() }
      } catch (e) {
        if (!(e instanceof BlockError)) throw e
        return { error: `${e.code}: ${e.message}` }
      }
    }
    let decodedSome = 0
    fc.assert(
      fc.property(fc.nat(), fc.nat(255), fc.nat(2), (at, byte, how) => {
        const b = damaged(bytes, at, byte, how)
        const plain = outcome(() => decodeBlock(b))
        const reusing = outcome(() => decodeBlock(b, undefined, known))
        expect(reusing).toEqual(plain)
        if (!('value' in reusing)) return
        decodedSome++
        for (const tx of (reusing.value as Block).transactions) expect(transactionHash(tx.body)).toEqual(bodyHash(tx.body))
      }),
      { numRuns: 1500 },
    )
    expect(decodedSome).toBeGreaterThan(50)
    // Cut anywhere: the same error.
    for (let n = 0; n < bytes.length; n++) {
      const b = bytes.subarray(0, n)
      expect(outcome(() => decodeBlock(b, undefined, known))).toEqual(outcome(() => decodeBlock(b)))
    }
  })
})

describe('blocks and commits', () => {
  const { header0, block1, commit1, block2 } = sampleBlocks()
  const { set } = sampleValidators()
  const limits = { maxTxs: 100, maxSteps: 100_000_000 }

  it('a block follows its parent and its commit proves it', () => {
    checkBlockStructure(block1, header0, limits)
    checkBlockStructure(block2, block1.header, limits)
    expect(verifyCommit(commit1, { networkId: NETWORK_ID, height: 1, blockHash: blockHash(block1.header) }, set)).toBe(9)
  })

  it("a block's transactions may declare at most the chain's maxBlockSteps together", () => {
    const declared = blockStepBound(block1.transactions)
    expect(block1.transactions.length).toBeGreaterThan(1)
    expect(declared).toBe(block1.transactions.reduce((n, tx) => n + transactionStepBound(tx.body), 0))
    // What counts: a step limit, or what a transaction that runs no code uses if less.
    const body = (block1.transactions[0] as Transaction).body
    const to = body.from
    const cx = contractAddress(new Uint8Array(32))
    const data = new Uint8Array(100)
    expect(transactionStepBound({ ...body, kind: TxKind.Transfer, to, data: new Uint8Array(0), stepLimit: 50_000_000 })).toBe(1_000)
    expect(transactionStepBound({ ...body, kind: TxKind.Message, to, data, stepLimit: 50_000_000 })).toBe(1_100)
    expect(transactionStepBound({ ...body, kind: TxKind.Message, to, data, stepLimit: 600 })).toBe(600)
    expect(transactionStepBound({ ...body, kind: TxKind.Transfer, to: cx, data: new Uint8Array(0), stepLimit: 50_000_000 })).toBe(
      50_000_000,
    )
    expect(transactionStepBound({ ...body, kind: TxKind.Call, to: cx, data, stepLimit: 70_000 })).toBe(70_000)
    checkBlockStructure(block1, header0, { ...limits, maxSteps: declared })
    let code = ''
    try {
      checkBlockStructure(block1, header0, { ...limits, maxSteps: declared - 1 })
    } catch (e) {
      code = (e as BlockError).code
    }
    expect(code).toBe('TOO_MANY_STEPS')
    // From the genesis parameters.
    expect(blockLimits({ ...DEFAULT_PARAMS, maxBlockTxs: 7, maxBlockSteps: 9 })).toEqual({ maxTxs: 7, maxSteps: 9 })
  })

  it('structural faults are refused with their code', () => {
    const code = (b: Block, parent = block1.header) => {
      try {
        checkBlockStructure(b, parent, limits)
      } catch (e) {
        if (e instanceof BlockError) return e.code
        throw e
      }
      return 'OK'
    }
    const h = block2.header
    // Checked once per block object: a copy under the same header is checked again.
    expect(code(block2)).toBe('OK')
    expect(code(block2)).toBe('OK')
    expect(code({ ...block2, header: { ...h, height: 3 } })).toBe('WRONG_HEIGHT')
    expect(code({ ...block2, header: { ...h, prevHash: new Uint8Array(32) } })).toBe('WRONG_PARENT')
    expect(code({ ...block2, header: { ...h, timestamp: block1.header.timestamp } })).toBe('TIMESTAMP_NOT_INCREASING')
    expect(code({ ...block2, transactions: sampleTransactions() })).toBe('TX_ROOT_MISMATCH')
    expect(code({ ...block2, lastCommit: undefined })).toBe('COMMIT_MISMATCH')
    expect(code({ ...block2, lastCommit: { ...commit1, round: 5 } })).toBe('COMMIT_MISMATCH')
    expect(code({ ...block2, header: { ...h, version: 9 } })).toBe('UNSUPPORTED_VERSION')
    expect(code({ ...block1, lastCommit: commit1 }, header0)).toBe('COMMIT_MISMATCH')
    expect(() => checkBlockStructure(block1, header0, { ...limits, maxTxs: 2 })).toThrow(/TOO_MANY|above 2/)
    expect(() => decodeBlock(new Uint8Array(10), 5)).toThrow(BlockError)
  })

  it('a commit without quorum, with a forged or repeated signature, or for another block is refused', () => {
    const expected = { networkId: NETWORK_ID, height: 1, blockHash: blockHash(block1.header) }
    const code = (c: typeof commit1, exp = expected) => {
      try {
        verifyCommit(c, exp, set)
      } catch (e) {
        if (e instanceof CommitError) return e.code
        throw e
      }
      return 'OK'
    }
    // The signers hold 2+3+4 = 9 of 10; without the power-4 signer, 5 of 10 is not more than 2/3.
    const strongest = commit1.signatures.find((s) => set.validators[s.index]?.power === 4)
    expect(code({ ...commit1, signatures: commit1.signatures.filter((s) => s !== strongest) })).toBe('NO_QUORUM')
    const [s0, s1, s2] = commit1.signatures as [
      (typeof commit1.signatures)[0],
      (typeof commit1.signatures)[0],
      (typeof commit1.signatures)[0],
    ]
    expect(code({ ...commit1, signatures: [s0, s0, s1, s2] })).toBe('UNSORTED')
    expect(code({ ...commit1, signatures: [s0, s1, { ...s2, signature: s1.signature }] })).toBe('BAD_SIGNATURE')
    expect(code({ ...commit1, signatures: [s0, s1, { ...s2, index: 9 }] })).toBe('UNKNOWN_VALIDATOR')
    expect(code({ ...commit1, round: 1 })).toBe('BAD_SIGNATURE')
    expect(code(commit1, { ...expected, networkId: 8 })).toBe('BAD_SIGNATURE')
    expect(code(commit1, { ...expected, blockHash: sha256(utf8('other')) })).toBe('WRONG_BLOCK')
    expect(commitHash(commit1)).toEqual(block2.header.lastCommitHash)
  })

  it('validator sets are sorted, positive and bound to their keys', () => {
    const ks = [1, 2, 3].map((i) => keyPairFromSecret(sha256(utf8(`v${i}`))))
    const set3 = makeValidatorSet(ks.map((k) => ({ address: k.address, publicKey: k.publicKey, power: 1 })))
    const reversed = { validators: [...set3.validators].reverse() }
    expect(() => makeValidatorSet(reversed.validators)).not.toThrow()
    expect(validatorSetHash(makeValidatorSet(reversed.validators))).toEqual(validatorSetHash(set3))
    const mk = (vs: typeof set3.validators) => () => makeValidatorSet(vs)
    expect(mk([])).toThrow(ValidatorSetError)
    expect(mk([{ ...(set3.validators[0] as (typeof set3.validators)[0]), power: 0 }])).toThrow(/power/)
    expect(mk([{ ...(set3.validators[0] as (typeof set3.validators)[0]), publicKey: (ks[1] as (typeof ks)[0]).publicKey }])).toThrow(
      /public key/,
    )
    expect(mk([set3.validators[0] as (typeof set3.validators)[0], set3.validators[0] as (typeof set3.validators)[0]])).toThrow(/sorted/)
  })
})

describe('receipts and blooms', () => {
  const txs = sampleTransactions()
  const receipts = txs.map(sampleReceipt)
  const bloom = logsBloom(receipts)
  const log = receipts[0]?.logs[0]
  if (!log) throw new Error('sample has logs')

  it('a bloom says maybe for every log it holds and filters find them', () => {
    expect(bloomMayMatch(bloom, { score: log.score, event: log.event })).toBe(true)
    expect(bloomMayMatch(bloom, { score: log.score, indexed: [log.indexed[0]] })).toBe(true)
    expect(logMatches(log, { score: log.score, event: log.event, indexed: [undefined, 'hx00'] })).toBe(true)
    expect(logMatches(log, { event: 'Approval(Address,Address,int)' })).toBe(false)
  })

  it('a bloom rules out most absent SCOREs and events', () => {
    let maybe = 0
    for (let i = 0; i < 1000; i++) if (bloomMayMatch(bloom, { score: contractAddress(sha256(utf8(`other ${i}`))) })) maybe++
    // 7 items set at most 21 of 2048 bits: a false positive needs 3 hits, about (21/2048)^3.
    expect(maybe).toBeLessThan(5)
    expect(bloomMayMatch(bloom, { event: 'Burn(int)' })).toBe(false)
  })
})

describe('genesis', () => {
  it('the JSON form round-trips to the same hash', () => {
    const g = sampleGenesis()
    const parsed = parseGenesis(JSON.parse(JSON.stringify(genesisToJson(g))))
    expect(genesisHash(parsed)).toEqual(genesisHash(g))
  })

  it('refuses bad fields with the path of the first fault', () => {
    const base = genesisToJson(sampleGenesis()) as Record<string, any>
    const path = (mutate: (j: Record<string, any>) => void) => {
      const j = structuredClone(base)
      mutate(j)
      try {
        parseGenesis(j)
      } catch (e) {
        if (e instanceof GenesisError) return e.details.path
        throw e
      }
      return 'OK'
    }
    expect(path(() => {})).toBe('OK')
    expect(path((j) => (j.chainId = 'Bad Chain'))).toBe('chainId')
    expect(path((j) => (j.members[0].rights = ['root']))).toBe('members[0].rights[0]')
    expect(path((j) => (j.members[1].id = j.members[0].id))).toBe('members[1].id')
    expect(path((j) => (j.members = j.members.slice(1)))).toMatch(/^validators\[/)
    expect(path((j) => (j.balances[0].amount = '-1'))).toBe('balances[0].amount')
    expect(path((j) => (j.balances = [...j.balances].reverse()))).toBe('balances[1]')
    expect(path((j) => (j.params.blockIntervalMs = -5))).toBe('params.blockIntervalMs')
    expect(path((j) => (j.params.color = 'blue'))).toBe('params.color')
    // One transaction may not declare more steps than a whole block may: it could never be included.
    expect(path((j) => (j.params.maxStepLimit = j.params.maxBlockSteps + 1))).toBe('params.maxStepLimit')
    expect(path((j) => (j.params.maxStepLimit = j.params.maxBlockSteps))).toBe('OK')
    expect(path((j) => (j.params.maxStepLimit = 0))).toBe('params.maxStepLimit')
    expect(path((j) => (j.validators[0].publicKey = '0x1234'))).toBe('validators[0].publicKey')
    // Two members cannot claim one node: admission to the members' protocols goes by node key.
    expect(path((j) => (j.members[1].nodeKey = j.members[0].nodeKey))).toBe('members[1].nodeKey')
  })
})
