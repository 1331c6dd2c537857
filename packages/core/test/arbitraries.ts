/** fast-check arbitraries for the core's structures, shared by the property and fuzz suites. */
import fc from 'fast-check'
import {
  type Address,
  addressFromBytes,
  type Block,
  type Commit,
  type EventLog,
  type Receipt,
  type Transaction,
  type Value,
  type Vote,
  VoteType,
} from '../src/index.js'

/** Any address (account or contract). */
export const arbAddress: fc.Arbitrary<Address> = fc
  .tuple(fc.constantFrom(0, 1), fc.uint8Array({ minLength: 20, maxLength: 20 }))
  .map(([t, b]) => addressFromBytes(Uint8Array.of(t, ...b)))

/** 32 bytes. */
export const arbHash = fc.uint8Array({ minLength: 32, maxLength: 32 })
const arbSig = fc.uint8Array({ minLength: 64, maxLength: 64 })
const arbU53 = fc.maxSafeNat()

/** Any canonical Value, a few levels deep. */
export const arbValue: fc.Arbitrary<Value> = fc.letrec<{ v: Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.bigInt({ min: -(2n ** 256n), max: 2n ** 256n - 1n }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('v'), { maxKeys: 4 }).map((o) => Object.assign(Object.create(null), o)),
  ),
})).v

/** Any transaction (signature bytes arbitrary: the codec does not check them). */
export const arbTransaction: fc.Arbitrary<Transaction> = fc.record({
  body: fc.record({
    version: fc.integer({ min: 0, max: 255 }),
    networkId: arbU53,
    from: arbAddress,
    to: arbAddress,
    value: fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }),
    stepLimit: arbU53,
    timestamp: arbU53,
    nonce: arbU53,
    kind: fc.constantFrom(0, 1, 2, 3) as fc.Arbitrary<0 | 1 | 2 | 3>,
    data: fc.uint8Array({ maxLength: 100 }),
  }),
  publicKey: arbHash,
  signature: arbSig,
})

/** Any vote. */
export const arbVote: fc.Arbitrary<Vote> = fc.record({
  networkId: arbU53,
  type: fc.constantFrom(VoteType.Prevote, VoteType.Precommit),
  height: arbU53,
  round: arbU53,
  blockHash: arbHash,
  validator: arbAddress,
})

/** Any commit. */
export const arbCommit: fc.Arbitrary<Commit> = fc.record({
  height: arbU53,
  round: arbU53,
  blockHash: arbHash,
  signatures: fc.array(fc.record({ index: fc.integer({ min: 0, max: 65535 }), signature: arbSig }), { maxLength: 5 }),
})

const arbLog: fc.Arbitrary<EventLog> = fc.record({
  score: arbAddress,
  event: fc.string({ maxLength: 40 }),
  indexed: fc.array(arbValue, { maxLength: 3 }),
  data: fc.array(arbValue, { maxLength: 3 }),
})

/** Any receipt. */
export const arbReceipt: fc.Arbitrary<Receipt> = fc.record({
  txHash: arbHash,
  status: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>,
  stepUsed: arbU53,
  fee: fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }),
  scoreAddress: fc.option(arbAddress, { nil: undefined }),
  failure: fc.option(fc.record({ code: fc.string({ maxLength: 20 }), message: fc.string({ maxLength: 60 }) }), { nil: undefined }),
  logs: fc.array(arbLog, { maxLength: 3 }),
})

/** Any block (contents need not be consistent: the codec does not check that). */
export const arbBlock: fc.Arbitrary<Block> = fc.record({
  header: fc.record({
    version: fc.integer({ min: 0, max: 255 }),
    networkId: arbU53,
    height: arbU53,
    prevHash: arbHash,
    timestamp: arbU53,
    proposer: arbAddress,
    round: arbU53,
    txRoot: arbHash,
    resultRoot: arbHash,
    validatorsHash: arbHash,
    nextValidatorsHash: arbHash,
    blockKey: arbHash,
    lastCommitHash: arbHash,
  }),
  transactions: fc.array(arbTransaction, { maxLength: 3 }),
  lastCommit: fc.option(arbCommit, { nil: undefined }),
  certSignatures: fc.array(arbSig, { maxLength: 2 }),
})
