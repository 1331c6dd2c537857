/**
 * JSON forms of ledger structures for the JSON-RPC API: bytes as `0x` hex, big integers as
 * decimal strings (JSON numbers lose precision above 2^53), addresses as their `hx…`/`cx…` text.
 */
import {
  type Block,
  type BlockHeader,
  blockHash,
  type Commit,
  type EventLog,
  fromHex,
  MAX_VALUE_DEPTH,
  type Receipt,
  type ScoreAbi,
  type Transaction,
  to0x,
  transactionHash,
  type Value,
} from '@loopchain/core'
import type { Json } from '../rpc/json-rpc.js'

/** A canonical Value as JSON: bigints as decimal strings, bytes as 0x hex. */
export function valueToJson(v: Value): Json {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v
  if (typeof v === 'bigint') return v.toString()
  if (v instanceof Uint8Array) return to0x(v)
  if (Array.isArray(v)) return v.map(valueToJson)
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, valueToJson(x)]))
}

/**
 * JSON parameters to a Value, guided by the SCORE's ABI where it names a type: `int` from a
 * decimal string or a safe integer, `bytes` from 0x hex; other JSON maps as it is (numbers must be
 * integers and become bigints). Lists and maps nest at most {@link MAX_VALUE_DEPTH} deep, as a
 * value may (and the recursion stays shallow whatever the JSON). Throws a TypeError naming the
 * parameter.
 */
export function valueFromJson(j: Json, type?: string, path = 'params', depth = 0): Value {
  // As the value encoding counts: the top at 0, what a list or map holds one deeper.
  if (depth > MAX_VALUE_DEPTH)
    throw new TypeError(`${path} is nested in lists or maps deeper than a value may be (${MAX_VALUE_DEPTH} levels)`)
  if (type === 'int') {
    if (typeof j === 'number' && Number.isSafeInteger(j)) return BigInt(j)
    if (typeof j === 'string') {
      const v = intFromString(j, path)
      if (v !== undefined) return v
    }
    throw new TypeError(`${path} must be an integer (a decimal or 0x string)`)
  }
  if (type === 'bytes') {
    if (typeof j !== 'string') throw new TypeError(`${path} must be 0x-prefixed hex`)
    return fromHex(j)
  }
  if (j === null || typeof j === 'boolean' || typeof j === 'string') return j
  if (typeof j === 'number') {
    if (!Number.isSafeInteger(j)) throw new TypeError(`${path} must be an integer`)
    return BigInt(j)
  }
  if (Array.isArray(j)) return j.map((x, i) => valueFromJson(x, undefined, `${path}[${i}]`, depth + 1))
  const out: Record<string, Value> = Object.create(null)
  for (const [k, x] of Object.entries(j)) out[k] = valueFromJson(x, undefined, `${path}.${k}`, depth + 1)
  return out
}

/** A value's integers are below 2^256 in magnitude (core `codec/value.ts`: 32 bytes, negatives as |v| − 1). */
const INT_BOUND = 1n << 256n
/** Digits of the largest such integer: 78 decimal, 64 hex. */
const MAX_DECIMAL_DIGITS = 78
const MAX_HEX_DIGITS = 64

/**
 * A decimal or `0x` integer string as a bigint, undefined when it is neither. Its length is checked
 * before `BigInt` reads it: reading n digits takes time growing with n², and a request may be
 * megabytes long, all of it on the node's main thread (consensus included).
 */
function intFromString(j: string, path: string): bigint | undefined {
  const negative = j.startsWith('-')
  const text = negative ? j.slice(1) : j
  const hex = /^0x[0-9a-fA-F]+$/.test(text)
  if (!hex && !/^(0|[1-9][0-9]*)$/.test(text)) return undefined
  const significant = hex ? text.slice(2).replace(/^0+/, '') : text
  const out = () => new TypeError(`${path} is outside the integers a value holds (magnitude below 2^256)`)
  if (significant.length > (hex ? MAX_HEX_DIGITS : MAX_DECIMAL_DIGITS)) throw out()
  const magnitude = BigInt(text)
  const v = negative ? -magnitude : magnitude
  if (v >= INT_BOUND || v < -INT_BOUND) throw out()
  return v
}

/** Call parameters typed by a method's ABI. */
export function paramsFromJson(j: Json, abi: ScoreAbi | undefined, method: string): Value {
  if (j === null || typeof j !== 'object' || Array.isArray(j)) return valueFromJson(j)
  const m = abi?.methods[method]
  const out: Record<string, Value> = Object.create(null)
  // Each parameter is one level into the map the call encodes them in.
  for (const [k, x] of Object.entries(j)) out[k] = valueFromJson(x, m?.params.find((p) => p.name === k)?.type, `params.${k}`, 1)
  return out
}

/** A header as JSON, with its hash. */
export function headerToJson(h: BlockHeader): Json {
  return {
    hash: to0x(blockHash(h)),
    version: h.version,
    networkId: h.networkId,
    height: h.height,
    prevHash: to0x(h.prevHash),
    timestamp: h.timestamp,
    proposer: h.proposer,
    round: h.round,
    txRoot: to0x(h.txRoot),
    resultRoot: to0x(h.resultRoot),
    validatorsHash: to0x(h.validatorsHash),
    nextValidatorsHash: to0x(h.nextValidatorsHash),
    blockKey: to0x(h.blockKey),
    lastCommitHash: to0x(h.lastCommitHash),
  }
}

/** A transaction as JSON, with its hash. */
export function transactionToJson(tx: Transaction): Json {
  const b = tx.body
  return {
    hash: to0x(transactionHash(b)),
    version: b.version,
    networkId: b.networkId,
    from: b.from,
    to: b.to,
    value: b.value.toString(),
    stepLimit: b.stepLimit,
    timestamp: b.timestamp,
    nonce: b.nonce,
    kind: ['transfer', 'call', 'deploy', 'message'][b.kind] ?? 'unknown',
    data: to0x(b.data),
    publicKey: to0x(tx.publicKey),
    signature: to0x(tx.signature),
  }
}

/** A commit certificate as JSON. */
export function commitToJson(c: Commit): Json {
  return {
    height: c.height,
    round: c.round,
    blockHash: to0x(c.blockHash),
    signatures: c.signatures.map((s) => ({ index: s.index, signature: to0x(s.signature) })),
  }
}

/** A block as JSON: header, transactions (full or by hash), the carried commit and the certificate signatures. */
export function blockToJson(b: Block, full = true): Json {
  return {
    ...(headerToJson(b.header) as Record<string, Json>),
    transactions: b.transactions.map((t) => (full ? transactionToJson(t) : to0x(transactionHash(t.body)))),
    lastCommit: b.lastCommit ? commitToJson(b.lastCommit) : null,
    certSignatures: b.certSignatures.map((sig) => to0x(sig)),
  }
}

function logToJson(l: EventLog): Json {
  return { score: l.score, event: l.event, indexed: l.indexed.map(valueToJson), data: l.data.map(valueToJson) }
}

/** A receipt as JSON, with where its transaction is. */
export function receiptToJson(r: Receipt, at: { height: number; index: number; blockHash: Uint8Array }): Json {
  return {
    txHash: to0x(r.txHash),
    status: r.status === 1 ? 'success' : 'failure',
    height: at.height,
    index: at.index,
    blockHash: to0x(at.blockHash),
    stepUsed: r.stepUsed,
    fee: r.fee.toString(),
    scoreAddress: r.scoreAddress ?? null,
    failure: r.failure ? { code: r.failure.code, message: r.failure.message } : null,
    logs: r.logs.map(logToJson),
  }
}
