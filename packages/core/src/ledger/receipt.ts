/**
 * Receipts, event logs and logs blooms. Every executed transaction yields a receipt; a block's
 * receipts form a Merkle list whose root is in the block's result. A 2048-bit bloom over the
 * block's logs lets a client skip blocks that cannot hold a log of a given SCORE or event
 * without downloading their receipts.
 */
import { bigUint, type Codec, encode, enumeration, fixedBytes, hashEncoded, list, option, string, struct, uvarint } from '../codec/codec.js'
import { bytesEqual, utf8 } from '../codec/hex.js'
import { type Value, value } from '../codec/value.js'
import { type Address, address, addressToBytes } from '../crypto/address.js'
import { Domain, HASH_LENGTH, taggedHash } from '../crypto/hash.js'
import { merkleRootOfLeaves } from '../merkle/merkle-list.js'

/** Most indexed fields in one event, as in ICON: three plus the signature. */
export const MAX_INDEXED = 3
/** Most event logs one transaction may emit. */
export const MAX_LOGS = 1024
/** Bytes in a logs bloom (2048 bits, Ethereum's and ICON's size). */
export const BLOOM_BYTES = 256

/** An event emitted by a SCORE. `event` is its signature, e.g. `Transfer(Address,Address,int)`. */
export interface EventLog {
  readonly score: Address
  readonly event: string
  readonly indexed: readonly Value[]
  readonly data: readonly Value[]
}

/** Codec of {@link EventLog}. */
export const eventLogCodec: Codec<EventLog> = struct('EventLog', {
  score: address,
  event: string(256),
  indexed: list(value, MAX_INDEXED),
  data: list(value, 64),
})

/** Whether a transaction succeeded. */
export const ReceiptStatus = { Failure: 0, Success: 1 } as const
/** A receipt status. */
export type ReceiptStatus = (typeof ReceiptStatus)[keyof typeof ReceiptStatus]

/** Why a transaction failed: a stable code and a human message. */
export interface Failure {
  readonly code: string
  readonly message: string
}

/** The outcome of one transaction. */
export interface Receipt {
  readonly txHash: Uint8Array
  readonly status: ReceiptStatus
  readonly stepUsed: number
  /** Native tokens charged for the steps. */
  readonly fee: bigint
  /** The address of the SCORE a deploy created or updated. */
  readonly scoreAddress: Address | undefined
  readonly failure: Failure | undefined
  readonly logs: readonly EventLog[]
}

/** Most UTF-8 bytes of a failure's code in a receipt. */
export const MAX_FAILURE_CODE_BYTES = 64
/** Most UTF-8 bytes of a failure's message in a receipt. */
export const MAX_FAILURE_MESSAGE_BYTES = 1024

/** Codec of {@link Receipt}. */
export const receiptCodec: Codec<Receipt> = struct('Receipt', {
  txHash: fixedBytes(HASH_LENGTH),
  status: enumeration('ReceiptStatus', [ReceiptStatus.Failure, ReceiptStatus.Success]),
  stepUsed: uvarint,
  fee: bigUint(32),
  scoreAddress: option(address),
  failure: option(struct('Failure', { code: string(MAX_FAILURE_CODE_BYTES), message: string(MAX_FAILURE_MESSAGE_BYTES) })),
  logs: list(eventLogCodec, MAX_LOGS),
})

/** Hash of a receipt. */
export function receiptHash(r: Receipt): Uint8Array {
  return hashEncoded(Domain.Receipt, receiptCodec, r)
}

/** The Merkle root of a block's receipts, in transaction order. */
export function receiptsRoot(receipts: readonly Receipt[]): Uint8Array {
  // merkleRoot of the encoded receipts, each leaf hashed where it is encoded (no copy of it).
  return merkleRootOfLeaves(receipts.map((r) => hashEncoded(Domain.MerkleLeaf, receiptCodec, r)))
}

// ---------------------------------------------------------------------------------------------
// Blooms

/** A fresh, empty bloom. */
export function emptyBloom(): Uint8Array {
  return new Uint8Array(BLOOM_BYTES)
}

function bloomBits(item: Uint8Array): [number, number, number] {
  const h = taggedHash(Domain.Bloom, item)
  const bit = (i: number) => (((h[i] as number) << 8) | (h[i + 1] as number)) & 2047
  return [bit(0), bit(2), bit(4)]
}

function bloomAdd(bloom: Uint8Array, item: Uint8Array): void {
  for (const b of bloomBits(item)) bloom[b >> 3] = (bloom[b >> 3] as number) | (1 << (b & 7))
}

function bloomHas(bloom: Uint8Array, item: Uint8Array): boolean {
  return bloomBits(item).every((b) => ((bloom[b >> 3] as number) & (1 << (b & 7))) !== 0)
}

function indexedItem(position: number, v: Value): Uint8Array {
  const enc = encode(value, v)
  const out = new Uint8Array(enc.length + 1)
  out[0] = position
  out.set(enc, 1)
  return out
}

/** Adds a log's SCORE address, event signature and indexed fields (by position) to `bloom`. */
export function addLogToBloom(bloom: Uint8Array, log: EventLog): void {
  bloomAdd(bloom, addressToBytes(log.score))
  bloomAdd(bloom, utf8(log.event))
  for (const [i, v] of log.indexed.entries()) bloomAdd(bloom, indexedItem(i, v))
}

/** The bloom of every log in `receipts`. */
export function logsBloom(receipts: readonly Receipt[]): Uint8Array {
  const bloom = emptyBloom()
  for (const r of receipts) for (const log of r.logs) addLogToBloom(bloom, log)
  return bloom
}

/** A filter on logs: any field left out matches everything. */
export interface LogFilter {
  readonly score?: Address
  readonly event?: string
  /** Indexed field values by position; `undefined` entries match anything. */
  readonly indexed?: readonly (Value | undefined)[]
}

/**
 * False when no log matching `filter` can be in a block with this bloom; true means "maybe"
 * (check the receipts).
 */
export function bloomMayMatch(bloom: Uint8Array, filter: LogFilter): boolean {
  if (filter.score !== undefined && !bloomHas(bloom, addressToBytes(filter.score))) return false
  if (filter.event !== undefined && !bloomHas(bloom, utf8(filter.event))) return false
  return (filter.indexed ?? []).every((v, i) => v === undefined || bloomHas(bloom, indexedItem(i, v)))
}

/** True when `log` matches `filter` exactly. */
export function logMatches(log: EventLog, filter: LogFilter): boolean {
  if (filter.score !== undefined && log.score !== filter.score) return false
  if (filter.event !== undefined && log.event !== filter.event) return false
  return (filter.indexed ?? []).every((v, i) => {
    if (v === undefined) return true
    const actual = log.indexed[i]
    return actual !== undefined && bytesEqual(encode(value, actual), encode(value, v))
  })
}
