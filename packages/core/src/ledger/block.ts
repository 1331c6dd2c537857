/**
 * Blocks. A header commits to everything a light client needs: the chain it extends, its
 * transactions (Merkle root), the result of executing the previous block (goloop's pipelining:
 * header N carries block N−1's result, so execution is off the voting path), the validator set
 * that votes on it and the one that votes next, the per-block certificate key, and the previous
 * block's commit certificate, which the body carries.
 */
import { type Codec, decode, fixedBytes, hashEncoded, list, option, struct, u8, uvarint } from '../codec/codec.js'
import { bytesEqual } from '../codec/hex.js'
import { type Address, address } from '../crypto/address.js'
import { Domain, HASH_LENGTH, ZERO_HASH } from '../crypto/hash.js'
import { DecodeError, LoopchainError } from '../errors.js'
import { merkleRoot } from '../merkle/merkle-list.js'
import type { ChainParams, Genesis } from './genesis.js'
import { BLOOM_BYTES } from './receipt.js'
import {
  type KnownTransaction,
  type Transaction,
  transactionCodec,
  transactionCodecReusing,
  transactionHash,
  transactionStepBound,
} from './transaction.js'
import { validatorSetHash } from './validators.js'
import { type Commit, commitCodec, commitHash } from './vote.js'

/** The block format version this code writes and accepts. */
export const BLOCK_VERSION = 1
/** Most transactions in one block: bounds decoding; the genesis parameters may set a lower limit. */
export const MAX_BLOCK_TXS = 50_000
/** Largest encoded block: 64 MiB bounds decoding; the genesis parameters set the working limit. */
export const MAX_BLOCK_BYTES = 64 * 1024 * 1024

/** A block header. Its hash is the block's identity. */
export interface BlockHeader {
  readonly version: number
  readonly networkId: number
  readonly height: number
  readonly prevHash: Uint8Array
  /** The proposer's clock when it proposed, microseconds since the Unix epoch. */
  readonly timestamp: number
  readonly proposer: Address
  /** The consensus round in which the block was proposed. */
  readonly round: number
  /** Merkle root of the transaction hashes. */
  readonly txRoot: Uint8Array
  /** Hash of the {@link BlockResult} of executing block `height − 1`. */
  readonly resultRoot: Uint8Array
  /** Hash of the validator set that votes on this block. */
  readonly validatorsHash: Uint8Array
  /** Hash of the validator set that votes on block `height + 1`. */
  readonly nextValidatorsHash: Uint8Array
  /** Public key of this block's certificate-signing key (DESIGN.md, "Certificates"). */
  readonly blockKey: Uint8Array
  /** Hash of the commit certificate of block `height − 1` (zero at height 1). */
  readonly lastCommitHash: Uint8Array
}

const hash32 = fixedBytes(HASH_LENGTH)

/** Codec of {@link BlockHeader}. */
export const blockHeaderCodec: Codec<BlockHeader> = struct('BlockHeader', {
  version: u8,
  networkId: uvarint,
  height: uvarint,
  prevHash: hash32,
  timestamp: uvarint,
  proposer: address,
  round: uvarint,
  txRoot: hash32,
  resultRoot: hash32,
  validatorsHash: hash32,
  nextValidatorsHash: hash32,
  blockKey: fixedBytes(32),
  lastCommitHash: hash32,
})

/** The hash of a header: the block's identity. */
export function blockHash(header: BlockHeader): Uint8Array {
  return hashEncoded(Domain.Header, blockHeaderCodec, header)
}

/**
 * A block: its header, transactions, the previous block's commit certificate, and the block key's
 * signatures of the certificates it issues.
 */
export interface Block {
  readonly header: BlockHeader
  readonly transactions: readonly Transaction[]
  /** The commit certificate of block `height − 1`; absent only at height 1. */
  readonly lastCommit: Commit | undefined
  /**
   * One ed25519 signature by `header.blockKey` per certificate-issuing transaction, in transaction
   * order, over that certificate's id (`cert/certificate.ts`, docs/certificates.md). The header does
   * not hash them: the block key, which the header does commit to, is what makes them authentic.
   */
  readonly certSignatures: readonly Uint8Array[]
}

/** Codec of {@link Block}. */
export const blockCodec: Codec<Block> = struct('Block', {
  header: blockHeaderCodec,
  transactions: list(transactionCodec, MAX_BLOCK_TXS),
  lastCommit: option(commitCodec),
  certSignatures: list(fixedBytes(64), MAX_BLOCK_TXS),
}) as unknown as Codec<Block>

/** The outcome of executing a block; its hash is the next header's `resultRoot`. */
export interface BlockResult {
  readonly stateRoot: Uint8Array
  readonly receiptsRoot: Uint8Array
  readonly logsBloom: Uint8Array
}

/** Codec of {@link BlockResult}. */
export const blockResultCodec: Codec<BlockResult> = struct('BlockResult', {
  stateRoot: hash32,
  receiptsRoot: hash32,
  logsBloom: fixedBytes(BLOOM_BYTES),
})

/** The hash a header carries as `resultRoot`. */
export function blockResultHash(result: BlockResult): Uint8Array {
  return hashEncoded(Domain.Result, blockResultCodec, result)
}

/** The Merkle root of a block's transactions (over their hashes, in block order). */
export function transactionsRoot(txs: readonly Transaction[]): Uint8Array {
  return merkleRoot(txs.map((tx) => transactionHash(tx.body)))
}

/** Why a block is malformed or does not follow its parent. */
export class BlockError extends LoopchainError<
  | 'MALFORMED'
  | 'TOO_LARGE'
  | 'UNSUPPORTED_VERSION'
  | 'WRONG_NETWORK'
  | 'WRONG_HEIGHT'
  | 'WRONG_PARENT'
  | 'TIMESTAMP_NOT_INCREASING'
  | 'TX_ROOT_MISMATCH'
  | 'COMMIT_MISMATCH'
  | 'TOO_MANY_TXS'
  | 'TOO_MANY_STEPS'
  | 'VALIDATORS_MISMATCH'
  | 'CERT_SIGNATURES'
> {}

/**
 * {@link blockCodec} whose transactions are, where `known` has them, the objects it gives (see
 * {@link transactionCodecReusing}): the same block value, most of it not decoded again.
 */
function blockCodecReusing(known: KnownTransaction): Codec<Block> {
  return struct('Block', {
    header: blockHeaderCodec,
    transactions: list(transactionCodecReusing(known), MAX_BLOCK_TXS),
    lastCommit: option(commitCodec),
    certSignatures: list(fixedBytes(64), MAX_BLOCK_TXS),
  }) as unknown as Codec<Block>
}

/**
 * Decodes a block from the wire, refusing anything above `maxBytes` before decoding. With `known`,
 * a transaction it has (a node's pooled ones) is that object rather than a fresh decode.
 */
export function decodeBlock(bytes: Uint8Array, maxBytes = MAX_BLOCK_BYTES, known?: KnownTransaction): Block {
  if (bytes.length > maxBytes) throw new BlockError('TOO_LARGE', `block of ${bytes.length} bytes is above ${maxBytes}`)
  try {
    return decode(known === undefined ? blockCodec : blockCodecReusing(known), bytes)
  } catch (cause) {
    if (cause instanceof DecodeError) throw new BlockError('MALFORMED', `malformed block: ${cause.message}`, { cause })
    throw cause
  }
}

/**
 * Blocks (readonly objects, never changed once made) whose body {@link checkBlockBody} has passed:
 * a node checks a proposal's when it first sees it and again inside `checkBlockStructure`.
 */
const bodiesChecked = new WeakSet<Block>()

/**
 * Checks that the header commits to the block's body: `txRoot` to its transactions and
 * `lastCommitHash` to its carried commit. The block hash covers only the header, so without this
 * anyone relaying a block could swap its transactions and keep its hash, signatures and votes
 * (certificate signatures are not in the header either: `checkBlockCertSignatures`). Throws
 * {@link BlockError} `TX_ROOT_MISMATCH` or `COMMIT_MISMATCH`.
 */
export function checkBlockBody(block: Block): void {
  if (bodiesChecked.has(block)) return
  const h = block.header
  if (!bytesEqual(h.txRoot, transactionsRoot(block.transactions)))
    throw new BlockError('TX_ROOT_MISMATCH', 'txRoot does not match the transactions')
  const expectCommit = block.lastCommit === undefined ? ZERO_HASH : commitHash(block.lastCommit)
  if (!bytesEqual(h.lastCommitHash, expectCommit))
    throw new BlockError('COMMIT_MISMATCH', 'lastCommitHash does not match the carried commit')
  bodiesChecked.add(block)
}

/** The chain's limits on one block (from its {@link ChainParams}). */
export interface BlockLimits {
  readonly maxTxs: number
  /** Most steps the block's transactions can use together ({@link blockStepBound}; the chain's `maxBlockSteps`). */
  readonly maxSteps: number
}

/** The limits `params` put on a block. */
export function blockLimits(params: ChainParams): BlockLimits {
  return { maxTxs: params.maxBlockTxs, maxSteps: params.maxBlockSteps }
}

/**
 * The most steps `txs` can use together when the block runs ({@link transactionStepBound}: each
 * one's step limit, or the fixed cost of one that runs no code). Exact up to 2^53; past it the sum
 * of non-negative numbers may round but never falls back under a limit it passed, so comparing it
 * with one stays right.
 */
export function blockStepBound(txs: readonly Transaction[]): number {
  let steps = 0
  for (const tx of txs) steps += transactionStepBound(tx.body)
  return steps
}

/**
 * Checks the structure of `block` against its parent header: version, network, height, parent
 * hash, increasing timestamp, transaction root and the commit hash, and the chain's limits on a
 * block's transactions: their number, and the steps they can use together (`maxSteps`, the
 * chain's `maxBlockSteps`). It does not verify the commit's signatures (see `verifyCommit`), the
 * transactions' signatures, or execution.
 */
export function checkBlockStructure(block: Block, parent: BlockHeader, limits: BlockLimits): void {
  const h = block.header
  if (h.version !== BLOCK_VERSION) throw new BlockError('UNSUPPORTED_VERSION', `block version ${h.version} is not ${BLOCK_VERSION}`)
  if (h.networkId !== parent.networkId) throw new BlockError('WRONG_NETWORK', `block is for network ${h.networkId}`)
  if (h.height !== parent.height + 1) throw new BlockError('WRONG_HEIGHT', `block height ${h.height} does not follow ${parent.height}`)
  if (!bytesEqual(h.prevHash, blockHash(parent))) throw new BlockError('WRONG_PARENT', `block ${h.height} does not extend the known parent`)
  if (h.timestamp <= parent.timestamp) {
    throw new BlockError('TIMESTAMP_NOT_INCREASING', `block timestamp ${h.timestamp} is not after its parent's ${parent.timestamp}`)
  }
  if (!bytesEqual(h.validatorsHash, parent.nextValidatorsHash)) {
    throw new BlockError('VALIDATORS_MISMATCH', `block ${h.height} is not voted on by the set its parent announced`)
  }
  if (block.transactions.length > limits.maxTxs) {
    throw new BlockError('TOO_MANY_TXS', `block carries ${block.transactions.length} transactions, above ${limits.maxTxs}`)
  }
  const steps = blockStepBound(block.transactions)
  if (steps > limits.maxSteps) {
    throw new BlockError('TOO_MANY_STEPS', `block's transactions can use ${steps} steps together, above ${limits.maxSteps}`)
  }
  checkBlockBody(block)
  if (parent.height === 0 ? block.lastCommit !== undefined : block.lastCommit === undefined) {
    throw new BlockError('COMMIT_MISMATCH', `block ${h.height} must ${parent.height === 0 ? 'not ' : ''}carry its parent's commit`)
  }
  if (block.lastCommit && (block.lastCommit.height !== parent.height || !bytesEqual(block.lastCommit.blockHash, h.prevHash))) {
    throw new BlockError('COMMIT_MISMATCH', 'the carried commit is not for the parent block')
  }
}

/**
 * Header 0, which every node and light client derives from the genesis: no parent, no
 * transactions, no commit; its `resultRoot` is the hash of the genesis state's result (header 0 has
 * no block −1, so it carries the genesis result by convention, and header 1 carries it again as
 * the result of executing block 0).
 */
export function genesisHeader(genesis: Genesis, result: BlockResult): BlockHeader {
  const vh = validatorSetHash(genesis.validators)
  const first = genesis.validators.validators[0]
  if (!first) throw new BlockError('MALFORMED', 'genesis has no validators')
  return {
    version: BLOCK_VERSION,
    networkId: genesis.networkId,
    height: 0,
    prevHash: ZERO_HASH,
    timestamp: genesis.timestamp,
    proposer: first.address,
    round: 0,
    txRoot: ZERO_HASH,
    resultRoot: blockResultHash(result),
    validatorsHash: vh,
    nextValidatorsHash: vh,
    blockKey: new Uint8Array(32),
    lastCommitHash: ZERO_HASH,
  }
}
