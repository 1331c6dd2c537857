/**
 * Transactions. A transaction's body says who sends what to whom on which network; the sender
 * signs the body's hash with ed25519 and attaches its public key (ed25519 cannot recover a key
 * from a signature). The hash covers the body only, so it is the transaction's identity
 * whatever signature bytes travel with it.
 */
import {
  bigUint,
  bytes,
  type Codec,
  decode,
  enumeration,
  fixedBytes,
  hashEncoded,
  type Reader,
  string,
  struct,
  u8,
  uvarint,
} from '../codec/codec.js'
import { type Value, value } from '../codec/value.js'
import { ADDRESS_LENGTH, type Address, accountAddress, address, isContractAddress } from '../crypto/address.js'
import { Domain, taggedHash } from '../crypto/hash.js'
import type { KeyPair } from '../crypto/keys.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { DecodeError, EncodeError, LoopchainError } from '../errors.js'

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

/** Fixed step costs outside contract code. */
export const STEP_COSTS = {
  /** Every transaction: signature, nonce and balance bookkeeping. */
  base: 1_000,
  /** Each byte of a transaction's payload (calls, deploys, messages). */
  dataByte: 1,
  /** Each byte of code a deploy stores. */
  codeByte: 2,
} as const

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

const amount = bigUint(32)
const txKind = enumeration('TxKind', [TxKind.Transfer, TxKind.Call, TxKind.Deploy, TxKind.Message])
const txData = bytes(MAX_TX_DATA)

/**
 * {@link TransactionBody} as a generic struct: the definition of the encoding, and the reference
 * the direct {@link transactionBodyCodec} is checked against (same bytes, same errors).
 */
export const transactionBodyStruct = struct('TransactionBody', {
  version: u8,
  networkId: uvarint,
  from: address,
  to: address,
  value: amount,
  stepLimit: uvarint,
  timestamp: uvarint,
  nonce: uvarint,
  kind: txKind,
  data: txData,
})

/**
 * Codec of {@link TransactionBody}: {@link transactionBodyStruct} with each field read and written
 * in place rather than through the struct's loop over its fields, whose calls go to a different
 * codec each time (so V8 cannot inline them) and whose objects are built one key at a time. Every
 * node decodes each transaction at least twice (on arrival, in the proposal) and encodes it for
 * gossip and storage.
 */
export const transactionBodyCodec: Codec<TransactionBody> = {
  name: transactionBodyStruct.name,
  minSize: transactionBodyStruct.minSize,
  write(w, v) {
    if (typeof v !== 'object' || v === null) return transactionBodyStruct.write(w, v)
    let field = 'version'
    try {
      u8.write(w, v.version)
      field = 'networkId'
      uvarint.write(w, v.networkId)
      field = 'from'
      address.write(w, v.from)
      field = 'to'
      address.write(w, v.to)
      field = 'value'
      amount.write(w, v.value)
      field = 'stepLimit'
      uvarint.write(w, v.stepLimit)
      field = 'timestamp'
      uvarint.write(w, v.timestamp)
      field = 'nonce'
      uvarint.write(w, v.nonce)
      field = 'kind'
      txKind.write(w, v.kind)
      field = 'data'
      txData.write(w, v.data)
    } catch (e) {
      // The struct's message: which field, then why.
      if (e instanceof EncodeError) throw new EncodeError(e.code, `TransactionBody.${field}: ${e.message}`)
      throw e
    }
  },
  read(r) {
    return new DecodedBody(
      u8.read(r),
      uvarint.read(r),
      address.read(r),
      address.read(r),
      amount.read(r),
      uvarint.read(r),
      uvarint.read(r),
      uvarint.read(r),
      txKind.read(r),
      txData.read(r),
    )
  },
}

/**
 * A body as decoded: the same fields as any {@link TransactionBody} (and equal to a plain object
 * with them), plus its hash where decoding computed it, in a private field that equality checks
 * and JSON do not see. A decoded body is hashed several times in a node (pool, proposal, block,
 * receipts); keeping the hash on the object replaces a `WeakMap` entry per transaction, whose
 * insertions cost about as much as decoding the fields and whose entries every garbage collection
 * has to trace specially.
 */
class DecodedBody implements TransactionBody {
  #hash: Uint8Array | undefined = undefined

  constructor(
    readonly version: number,
    readonly networkId: number,
    readonly from: Address,
    readonly to: Address,
    readonly value: bigint,
    readonly stepLimit: number,
    readonly timestamp: number,
    readonly nonce: number,
    readonly kind: TxKind,
    readonly data: Uint8Array,
  ) {}

  /** The hash of this body (computed once; the caller must not change the result). */
  static hashOf(body: DecodedBody): Uint8Array {
    if (body.#hash === undefined) body.#hash = hashEncoded(Domain.Transaction, transactionBodyCodec, body)
    return body.#hash
  }

  /** Records the hash computed from the bytes this body was decoded from. */
  static remember(body: DecodedBody, hash: Uint8Array): void {
    body.#hash = hash
  }
}

/** A transaction as it travels and is stored: body, sender's public key and signature. */
export interface Transaction {
  readonly body: TransactionBody
  readonly publicKey: Uint8Array
  readonly signature: Uint8Array
}

/**
 * Hashes already computed for bodies that were not decoded (built by a signer, say); decoded ones
 * carry theirs ({@link DecodedBody}). Bodies are immutable, and a node hashes each several times.
 */
const bodyHashes = new WeakMap<TransactionBody, Uint8Array>()

/** Public key and signature after the body: fixed sizes, so the body is all but the last 96 bytes. */
const KEY_AND_SIGNATURE_BYTES = 32 + 64

const publicKeyBytes = fixedBytes(32)
const signatureBytes = fixedBytes(64)

/** {@link Transaction} as a generic struct; see {@link transactionBodyStruct}. */
export const transactionStruct = struct('Transaction', {
  body: transactionBodyCodec,
  publicKey: publicKeyBytes,
  signature: signatureBytes,
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
  read: (r) => readTransaction(r),
}

/**
 * {@link transactionCodec}'s read. `bodyHash`, when given, is the hash of the `bodyBytes` bytes at
 * the reader's offset, already computed: it is the body's hash if the body decoded is that long.
 */
function readTransaction(r: Reader, bodyBytes = -1, bodyHash?: Uint8Array): Transaction {
  const start = r.offset
  const body = transactionBodyCodec.read(r) as DecodedBody
  const end = r.offset
  const tx: Transaction = { body, publicKey: publicKeyBytes.read(r), signature: signatureBytes.read(r) }
  DecodedBody.remember(
    body,
    bodyHash !== undefined && end - start === bodyBytes ? bodyHash : taggedHash(Domain.Transaction, r.consumed(start, end)),
  )
  return tx
}

/**
 * What a node already holds of a transaction it finds in a block: given the hash of the body and
 * the 96 bytes of key and signature that follow it (a view into the block, not to be kept), the
 * decoded transaction with exactly that hash, key and signature, or `undefined`.
 */
export type KnownTransaction = (hash: Uint8Array, keyAndSignature: Uint8Array) => Transaction | undefined

/**
 * {@link transactionCodec} for a reader of block bytes whose transactions a node mostly holds
 * already (its mempool): each transaction's body is found by its length fields, hashed in place,
 * and when `known` gives an object for that hash, key and signature, that object is the value, and
 * nothing of the transaction is decoded — no addresses to strings, amount to a bigint, key and
 * signature copied, each a young object a loaded node would carry through collections until the
 * block commits. Otherwise, and whenever the length fields do not fit the input, the transaction
 * is decoded as by {@link transactionCodec}, with its errors.
 *
 * The value is the one a full decode would give: a body is the bytes its hash covers, so equal
 * hashes are equal bodies, whose decoding was canonical when the known object was decoded, and
 * the key and signature are compared byte for byte (by `known`). Even if the length fields were
 * read wrongly, a range of bytes that hashes to a known body is that body, and decoding from the
 * same offset reads exactly it (a canonical encoding ends where it ends).
 */
export function transactionCodecReusing(known: KnownTransaction): Codec<Transaction> {
  return {
    name: transactionCodec.name,
    minSize: transactionCodec.minSize,
    write: transactionCodec.write,
    read(r) {
      const rest = r.rest()
      const n = bodyLength(rest)
      if (!(n > 0 && n + KEY_AND_SIGNATURE_BYTES <= rest.length)) return readTransaction(r)
      const hash = taggedHash(Domain.Transaction, rest.subarray(0, n))
      const tx = known(hash, rest.subarray(n, n + KEY_AND_SIGNATURE_BYTES))
      if (tx === undefined) return readTransaction(r, n, hash) // not held: decoded, and not hashed twice
      r.skip(n + KEY_AND_SIGNATURE_BYTES)
      return tx
    },
  }
}

/**
 * Where the transaction body at the start of `b` ends, by its length fields alone (see
 * {@link transactionBodyStruct}), or -1 when they run past the end of `b`. Nothing is checked:
 * the bytes are a body only if something else vouches for them (their hash, above).
 */
function bodyLength(b: Uint8Array): number {
  let p = skipUvarint(b, 1) // version, network
  if (p < 0) return -1
  p += 2 * ADDRESS_LENGTH // from, to
  if (p >= b.length) return -1
  p += 1 + (b[p] as number) // value: its length, its magnitude
  for (let i = 0; i < 3 && p >= 0; i++) p = skipUvarint(b, p) // step limit, timestamp, nonce
  if (p < 0) return -1
  p += 1 // kind
  // data: its length (a uvarint), then its bytes
  let n = 0
  let scale = 1
  for (let i = 0; ; i++) {
    if (i === 8 || p >= b.length) return -1
    const c = b[p++] as number
    n += (c & 0x7f) * scale
    if ((c & 0x80) === 0) break
    scale *= 0x80
  }
  p += n
  return p <= b.length ? p : -1
}

/** The offset after the uvarint at `p` in `b`, or -1 when it runs past the end (or past 8 bytes). */
function skipUvarint(b: Uint8Array, p: number): number {
  for (let i = 0; i < 8; i++, p++) {
    if (p >= b.length) return -1
    if (((b[p] as number) & 0x80) === 0) return p + 1
  }
  return -1
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

/**
 * Whether `body` runs no code: a message, or a transfer to an account (not a contract). Its steps
 * are then fixed by its size ({@link transactionStepBound}).
 */
export function runsNoCode(body: TransactionBody): boolean {
  return body.kind === TxKind.Message || (body.kind === TxKind.Transfer && !isContractAddress(body.to))
}

/**
 * The most steps `body` can use when it runs: its step limit, or for one that runs no code the
 * fixed cost of its size if that is less. A block's transactions are bounded by these together
 * (the chain's `maxBlockSteps`): counting a transfer's generous limit would let cheap transfers
 * that declare the largest limit fill blocks two at a time.
 */
export function transactionStepBound(body: TransactionBody): number {
  if (!runsNoCode(body)) return body.stepLimit
  return Math.min(body.stepLimit, STEP_COSTS.base + STEP_COSTS.dataByte * body.data.length)
}

/** The transaction hash: its identity, and the 32 bytes its sender signs. */
export function transactionHash(body: TransactionBody): Uint8Array {
  if (body instanceof DecodedBody) return DecodedBody.hashOf(body).slice()
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
  checkTransactionBody(tx, ctx)
  const hash = transactionHash(tx.body)
  checkTransactionSignature(tx, hash, ctx, crypto)
  return hash
}

/**
 * {@link checkTransaction} without the signature: every check that costs no more than a hash of
 * the key, for a caller that has state to read (a nonce) before it verifies, so that input which
 * cannot be a valid transaction costs it neither.
 */
export function checkTransactionBody(tx: Transaction, ctx: Omit<TxCheckContext, 'alreadyVerified'>): void {
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
}

/**
 * The rest of {@link checkTransaction}: the signature over `hash` (the body's
 * {@link transactionHash}), unless `ctx.alreadyVerified` says this exact transaction was verified.
 */
export function checkTransactionSignature(
  tx: Transaction,
  hash: Uint8Array,
  ctx: Pick<TxCheckContext, 'alreadyVerified'>,
  crypto: CryptoProvider = nobleCrypto,
): void {
  if (ctx.alreadyVerified?.(tx, hash)) return
  if (!crypto.verify(tx.signature, hash, tx.publicKey)) throw new TxError('BAD_SIGNATURE', 'transaction signature does not verify')
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
