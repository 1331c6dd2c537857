/**
 * Transactions. A transaction's body says who sends what to whom on which network; the sender
 * signs the body's hash with ed25519 and attaches its public key (ed25519 cannot recover a key
 * from a signature). The hash covers the body only, so it is the transaction's identity
 * whatever signature bytes travel with it.
 */
import { bigUint, bytes, type Codec, decode, enumeration, fixedBytes, hashEncoded, string, struct, u8, uvarint } from '../codec/codec.js'
import { type Value, value } from '../codec/value.js'
import { type Address, accountAddress, address, isContractAddress } from '../crypto/address.js'
import { Domain, taggedHash } from '../crypto/hash.js'
import type { KeyPair } from '../crypto/keys.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { DecodeError, LoopchainError } from '../errors.js'

/** The transaction format version this code writes and accepts. */
export const TX_VERSION = 1
/** Largest `data` payload: 512 KiB, room for a contract's code with its constructor parameters. */
export const MAX_TX_DATA = 512 * 1024
/** Largest encoded transaction: the payload plus generous room for the fixed fields. */
export const MAX_TX_BYTES = MAX_TX_DATA + 1024

/** What a transaction does. */
export const TxKind = { Transfer: 0, Call: 1, Deploy: 2, Message: 3 } as const
/** A transaction kind. */
export type TxKind = (typeof TxKind)[keyof typeof TxKind]

/** The signed part of a transaction. */
export interface TransactionBody {
  readonly version: number
  readonly networkId: number
  readonly from: Address
  readonly to: Address
  /** Native tokens moved from `from` to `to`, in the smallest unit. */
  readonly value: bigint
  /** Most steps the sender pays for. */
  readonly stepLimit: number
  /** Sender's clock at signing, in microseconds since the Unix epoch. */
  readonly timestamp: number
  /** The sender's transaction count before this one: replay protection and ordering. */
  readonly nonce: number
  readonly kind: TxKind
  /** Kind-specific payload: empty for a transfer, {@link CallData} / {@link DeployData} encoded, or opaque for a message. */
  readonly data: Uint8Array
}

/** Codec of {@link TransactionBody}. */
export const transactionBodyCodec: Codec<TransactionBody> = struct('TransactionBody', {
  version: u8,
  networkId: uvarint,
  from: address,
  to: address,
  value: bigUint(32),
  stepLimit: uvarint,
  timestamp: uvarint,
  nonce: uvarint,
  kind: enumeration('TxKind', [TxKind.Transfer, TxKind.Call, TxKind.Deploy, TxKind.Message]),
  data: bytes(MAX_TX_DATA),
})

/** A transaction as it travels and is stored: body, sender's public key and signature. */
export interface Transaction {
  readonly body: TransactionBody
  readonly publicKey: Uint8Array
  readonly signature: Uint8Array
}

/** Hashes already computed, per body object (bodies are immutable; a node hashes each several times). */
const bodyHashes = new WeakMap<TransactionBody, Uint8Array>()

/** Public key and signature after the body: fixed sizes, so the body is all but the last 96 bytes. */
const KEY_AND_SIGNATURE_BYTES = 32 + 64

const transactionStruct: Codec<Transaction> = struct('Transaction', {
  body: transactionBodyCodec,
  publicKey: fixedBytes(32),
  signature: fixedBytes(64),
})

/**
 * Codec of {@link Transaction}. Decoding also hashes the body from the bytes just read: decoding
 * is canonical (a body has exactly one encoding, and any other is refused), so those bytes are
 * what encoding the body again would give, without the work — addresses back to bytes, amounts
 * back to magnitudes.
 */
export const transactionCodec: Codec<Transaction> = {
  name: transactionStruct.name,
  minSize: transactionStruct.minSize,
  write: transactionStruct.write,
  read(r) {
    const start = r.offset
    const tx = transactionStruct.read(r)
    bodyHashes.set(tx.body, taggedHash(Domain.Transaction, r.consumed(start, r.offset - KEY_AND_SIGNATURE_BYTES)))
    return tx
  },
}

/** Payload of a call: a method of the SCORE at `to` and its parameters. */
export interface CallData {
  readonly method: string
  readonly params: Value
}

/** Codec of {@link CallData}. */
export const callDataCodec: Codec<CallData> = struct('CallData', { method: string(256), params: value })

/** Payload of a deploy: the contract's code and its constructor parameters. */
export interface DeployData {
  /** Media type of `code`, e.g. `application/javascript`. */
  readonly contentType: string
  readonly code: Uint8Array
  readonly params: Value
}

/** Codec of {@link DeployData}. */
export const deployDataCodec: Codec<DeployData> = struct('DeployData', {
  contentType: string(128),
  code: bytes(MAX_TX_DATA),
  params: value,
})

/** The transaction hash: its identity, and the 32 bytes its sender signs. */
export function transactionHash(body: TransactionBody): Uint8Array {
  let h = bodyHashes.get(body)
  if (h === undefined) {
    h = hashEncoded(Domain.Transaction, transactionBodyCodec, body)
    bodyHashes.set(body, h)
  }
  return h.slice()
}

/** Signs a body with the sender's key pair. `body.from` must be the key pair's address. */
export function signTransaction(body: TransactionBody, key: KeyPair, crypto: CryptoProvider = nobleCrypto): Transaction {
  if (body.from !== key.address)
    throw new TxError('SENDER_MISMATCH', `body.from ${body.from} is not the signer ${key.address}`, { penalize: false })
  return { body, publicKey: key.publicKey, signature: crypto.sign(transactionHash(body), key.secretKey) }
}

/** Codes of {@link TxError}. */
export type TxErrorCode =
  | 'MALFORMED'
  | 'TOO_LARGE'
  | 'UNSUPPORTED_VERSION'
  | 'WRONG_NETWORK'
  | 'SENDER_NOT_ACCOUNT'
  | 'SENDER_MISMATCH'
  | 'BAD_SIGNATURE'
  | 'TIMESTAMP_TOO_OLD'
  | 'TIMESTAMP_IN_FUTURE'
  | 'BAD_STEP_LIMIT'
  | 'BAD_DATA'

/** Why a transaction is refused before it reaches the mempool or a block. */
export class TxError extends LoopchainError<TxErrorCode> {}

/** What a node checks a transaction against. */
export interface TxCheckContext {
  readonly networkId: number
  /** The checking node's clock, microseconds since the Unix epoch (an input: the core reads no clock). */
  readonly now: number
  /** How far a timestamp may be from `now`, in microseconds. */
  readonly timestampWindow: number
  /** Most steps one transaction may ask for. */
  readonly maxStepLimit: number
  /**
   * Whether this exact transaction (body, key and signature) was already verified by the caller,
   * e.g. it sits in the node's mempool; then its signature is not checked again. Every other
   * check still runs.
   */
  readonly alreadyVerified?: (tx: Transaction, hash: Uint8Array) => boolean
}

/**
 * Decodes a transaction from the wire, refusing anything above {@link MAX_TX_BYTES} before
 * decoding. Throws {@link TxError} `TOO_LARGE` or `MALFORMED` (with the {@link DecodeError} as cause).
 */
export function decodeTransaction(bytes: Uint8Array): Transaction {
  if (bytes.length > MAX_TX_BYTES) throw new TxError('TOO_LARGE', `transaction of ${bytes.length} bytes is above ${MAX_TX_BYTES}`)
  try {
    return decode(transactionCodec, bytes)
  } catch (cause) {
    if (cause instanceof DecodeError) throw new TxError('MALFORMED', `malformed transaction: ${cause.message}`, { cause })
    throw cause
  }
}

/**
 * The stateless checks every node applies (DESIGN.md, "The path of a transaction"): version,
 * network, sender key and signature, timestamp window, step limit, kind-specific payload.
 * Nonce and balance need state and are the mempool's and executor's. Returns the hash.
 */
export function checkTransaction(tx: Transaction, ctx: TxCheckContext, crypto: CryptoProvider = nobleCrypto): Uint8Array {
  const b = tx.body
  if (b.version !== TX_VERSION) throw new TxError('UNSUPPORTED_VERSION', `transaction version ${b.version} is not ${TX_VERSION}`)
  if (b.networkId !== ctx.networkId) {
    throw new TxError('WRONG_NETWORK', `transaction is for network ${b.networkId}, this is ${ctx.networkId}`, { penalize: false })
  }
  if (isContractAddress(b.from)) throw new TxError('SENDER_NOT_ACCOUNT', `sender ${b.from} is a contract address`)
  if (accountAddress(tx.publicKey) !== b.from) throw new TxError('SENDER_MISMATCH', `public key does not belong to sender ${b.from}`)
  if (b.stepLimit < 1 || b.stepLimit > ctx.maxStepLimit) {
    throw new TxError('BAD_STEP_LIMIT', `step limit ${b.stepLimit} is outside 1..${ctx.maxStepLimit}`, { penalize: false })
  }
  if (b.timestamp < ctx.now - ctx.timestampWindow) {
    throw new TxError('TIMESTAMP_TOO_OLD', `transaction timestamp ${b.timestamp} is older than the window`, {
      penalize: false,
      details: { timestamp: b.timestamp, now: ctx.now },
    })
  }
  if (b.timestamp > ctx.now + ctx.timestampWindow) {
    throw new TxError('TIMESTAMP_IN_FUTURE', `transaction timestamp ${b.timestamp} is ahead of the window`, {
      penalize: false,
      details: { timestamp: b.timestamp, now: ctx.now },
    })
  }
  checkPayload(b)
  const hash = transactionHash(b)
  if (ctx.alreadyVerified?.(tx, hash)) return hash
  if (!crypto.verify(tx.signature, hash, tx.publicKey)) throw new TxError('BAD_SIGNATURE', 'transaction signature does not verify')
  return hash
}

function checkPayload(b: TransactionBody): void {
  try {
    switch (b.kind) {
      case TxKind.Transfer:
        if (b.data.length !== 0) throw new TxError('BAD_DATA', 'a transfer carries no data')
        if (b.value <= 0n) throw new TxError('BAD_DATA', 'a transfer moves a positive value')
        return
      case TxKind.Call:
        if (!isContractAddress(b.to)) throw new TxError('BAD_DATA', `a call goes to a contract address, not ${b.to}`)
        decode(callDataCodec, b.data)
        return
      case TxKind.Deploy:
        decode(deployDataCodec, b.data)
        return
      case TxKind.Message:
        return
    }
  } catch (cause) {
    if (cause instanceof DecodeError) throw new TxError('BAD_DATA', `payload does not decode: ${cause.message}`, { cause })
    throw cause
  }
}
