/**
 * Sample structures built deterministically from fixed seeds. The vector generator records their
 * bytes and hashes in core.json; the checker rebuilds them in Node and in Chromium and compares,
 * so a runtime that encodes or hashes one byte differently fails.
 */
import {
  type Block,
  type BlockHeader,
  blockHash,
  blockResultHash,
  CERTIFICATE_REGISTRY_ADDRESS,
  type Commit,
  callDataCodec,
  commitHash,
  contractAddress,
  DEFAULT_PARAMS,
  type EventLog,
  encode,
  type Genesis,
  genesisHeader,
  type KeyPair,
  keyPairFromSecret,
  logsBloom,
  makeValidatorSet,
  type Receipt,
  ReceiptStatus,
  Right,
  receiptsRoot,
  sha256,
  signBlockCertificates,
  signTransaction,
  signVote,
  type Transaction,
  TxKind,
  transactionHash,
  transactionsRoot,
  utf8,
  type Value,
  VoteType,
  validatorSetHash,
  ZERO_HASH,
} from '../../src/index.js'

/** A key pair from a short label: the secret is SHA-256 of the label. */
export function sampleKey(label: string): KeyPair {
  return keyPairFromSecret(sha256(utf8(label)))
}

/** Network id of the sample chain. */
export const NETWORK_ID = 7
/** 2026-01-01T00:00:00Z in microseconds. */
export const T0 = 1_767_225_600_000_000

/** Four validators with powers 1..4 and a member list. */
export function sampleValidators() {
  const keys = ['validator-a', 'validator-b', 'validator-c', 'validator-d'].map(sampleKey)
  const set = makeValidatorSet(keys.map((k, i) => ({ address: k.address, publicKey: k.publicKey, power: i + 1 })))
  return { keys, set }
}

/** The sample genesis. */
export function sampleGenesis(): Genesis {
  const { keys, set } = sampleValidators()
  const alice = sampleKey('alice')
  const bob = sampleKey('bob')
  const balances = [alice, bob]
    .map((k, i) => ({ address: k.address, amount: 10n ** 24n * BigInt(i + 1) }))
    .sort((a, b) => (a.address < b.address ? -1 : 1))
  return {
    chainId: 'loopchain-sample',
    networkId: NETWORK_ID,
    timestamp: T0,
    validators: set,
    members: keys.map((k, i) => ({
      id: `bank-${'abcd'[i]}`,
      name: `Bank ${'ABCD'[i]}`,
      address: k.address,
      nodeKey: sampleKey(`node-${i}`).publicKey,
      rights: Right.Validator | Right.MemberNode | (i === 0 ? Right.Issuer | Right.Deployer : 0),
    })),
    balances,
    params: { ...DEFAULT_PARAMS, stepPrice: 12_500n },
  }
}

/** Three sample transactions of different kinds from alice. */
export function sampleTransactions(): Transaction[] {
  const alice = sampleKey('alice')
  const bob = sampleKey('bob')
  const token = contractAddress(sha256(utf8('token deploy')))
  const params: Value = { to: bob.address, amount: 1000n, memo: 'lunch', tags: ['a', 'b'], neg: -5n, flag: true, none: null }
  return [
    { kind: TxKind.Transfer, to: bob.address, value: 1_000_000n, data: new Uint8Array(0) },
    { kind: TxKind.Call, to: token, value: 0n, data: encode(callDataCodec, { method: 'transfer', params }) },
    { kind: TxKind.Message, to: bob.address, value: 0n, data: utf8('hello, bob') },
  ].map((p, nonce) =>
    signTransaction(
      { version: 1, networkId: NETWORK_ID, from: alice.address, stepLimit: 100_000, timestamp: T0 + 1_000_000 + nonce, nonce, ...p },
      alice,
    ),
  )
}

/** A certificate issued by validator-a (the sample's issuer) to the certificate registry, nonce 0. */
export function sampleCertificateIssue(): Transaction {
  const issuer = sampleKey('validator-a')
  const params: Value = {
    subject: 'Kim Minji',
    subjectKey: sampleKey('subject').publicKey,
    attributes: { degree: 'MSc', 전공: '컴퓨터공학', field: 'Distributed systems' },
    validFrom: BigInt(T0),
    validUntil: BigInt(T0 + 365 * 86_400_000_000),
  }
  return signTransaction(
    {
      version: 1,
      networkId: NETWORK_ID,
      from: issuer.address,
      to: CERTIFICATE_REGISTRY_ADDRESS,
      value: 0n,
      stepLimit: 100_000,
      timestamp: T0 + 1_500_000,
      nonce: 0,
      kind: TxKind.Call,
      data: encode(callDataCodec, { method: 'issue', params }),
    },
    issuer,
  )
}

/** A sample receipt with two event logs. */
export function sampleReceipt(tx: Transaction): Receipt {
  const score = contractAddress(sha256(utf8('token deploy')))
  const logs: EventLog[] = [
    { score, event: 'Transfer(Address,Address,int)', indexed: [tx.body.from, 'hx00', 1000n], data: [utf8('memo')] },
    { score, event: 'Approval(Address,Address,int)', indexed: [tx.body.from], data: [] },
  ]
  return {
    txHash: transactionHash(tx.body),
    status: ReceiptStatus.Success,
    stepUsed: 4321,
    fee: 54_012_500n,
    scoreAddress: undefined,
    failure: undefined,
    logs,
  }
}

/** Block 1 and block 2 of the sample chain; block 2 carries block 1's commit. */
export function sampleBlocks(): { header0: BlockHeader; block1: Block; commit1: Commit; block2: Block } {
  const genesis = sampleGenesis()
  const { keys, set } = sampleValidators()
  const result0 = { stateRoot: sha256(utf8('genesis state')), receiptsRoot: ZERO_HASH, logsBloom: new Uint8Array(256) }
  const header0 = genesisHeader(genesis, result0)
  // Block 1 also issues a certificate, so its block-key signature list is pinned too.
  const txs = [...sampleTransactions(), sampleCertificateIssue()]
  const vh = validatorSetHash(set)
  const first = keys[0] as KeyPair
  const header1: BlockHeader = {
    version: 1,
    networkId: NETWORK_ID,
    height: 1,
    prevHash: blockHash(header0),
    timestamp: T0 + 2_000_000,
    proposer: first.address,
    round: 0,
    txRoot: transactionsRoot(txs),
    resultRoot: blockResultHash(result0),
    validatorsHash: vh,
    nextValidatorsHash: vh,
    blockKey: sampleKey('block-key-1').publicKey,
    lastCommitHash: ZERO_HASH,
  }
  const block1: Block = {
    header: header1,
    transactions: txs,
    lastCommit: undefined,
    certSignatures: signBlockCertificates(txs, 1, sampleKey('block-key-1').secretKey),
  }
  const h1 = blockHash(header1)
  // Validators b, c, d sign (power 2+3+4 = 9 of 10).
  const signatures = set.validators
    .map((v, index) => ({ v, index }))
    .filter(({ v }) => v.address !== first.address)
    .slice(0, 3)
    .map(({ v, index }) => {
      const key = keys.find((k) => k.address === v.address) as KeyPair
      const vote = { networkId: NETWORK_ID, type: VoteType.Precommit, height: 1, round: 0, blockHash: h1, validator: v.address }
      return { index, signature: signVote(vote, key.secretKey).signature }
    })
  const commit1: Commit = { height: 1, round: 0, blockHash: h1, signatures }
  const receipts = txs.map(sampleReceipt)
  const result1 = { stateRoot: sha256(utf8('state after block 1')), receiptsRoot: receiptsRoot(receipts), logsBloom: logsBloom(receipts) }
  const header2: BlockHeader = {
    ...header1,
    height: 2,
    prevHash: h1,
    timestamp: T0 + 3_000_000,
    round: 1,
    proposer: (keys[1] as KeyPair).address,
    txRoot: transactionsRoot([]),
    resultRoot: blockResultHash(result1),
    blockKey: sampleKey('block-key-2').publicKey,
    lastCommitHash: commitHash(commit1),
  }
  return { header0, block1, commit1, block2: { header: header2, transactions: [], lastCommit: commit1, certSignatures: [] } }
}
