/**
 * The read-only protocols full nodes serve to light clients (DESIGN.md, "Trust for light clients";
 * open to non-members), their message codecs, and the serving logic, which a full node, an
 * in-memory test node and a benchmark's synthetic chain all share.
 *
 * | protocol id                          | request                                 | response                                   |
 * | ------------------------------------ | --------------------------------------- | ------------------------------------------ |
 * | `/loopchain/<chain>/light-tip/1`     | empty                                   | `SignedHeader`: the node's last commit     |
 * | `/loopchain/<chain>/light-headers/1` | `HeadersRequest { from, count }`        | `SignedHeader[]`, consecutive from `from`  |
 * | `/loopchain/<chain>/light-sets/1`    | `SetChangesRequest { after }`           | `SetChangesPage { changes, more }`         |
 * | `/loopchain/<chain>/light-proof/1`   | `StateProofRequest { key, height }`     | `StateProofAnswer`                         |
 *
 * Everything a client receives here is checked against headers it verified itself; the node is
 * trusted for nothing but availability.
 */
import { bool, type Codec, decode, encode, list, option, bytes as sizedBytes, struct, uvarint } from '../codec/codec.js'
import { DecodeError, LoopchainError } from '../errors.js'
import { type BlockResult, blockResultCodec } from '../ledger/block.js'
import { MAX_TX_BYTES } from '../ledger/transaction.js'
import {
  type SetInForce,
  type SignedHeader,
  signedHeaderCodec,
  type ValidatorSetChange,
  validatorSetChangeCodec,
} from '../light/headers.js'
import { type StateProof, type StateProofResult, stateProofCodec } from '../state/proof.js'
import { MAX_STATE_KEY_LENGTH, MAX_STATE_VALUE_LENGTH } from '../state/tree-node.js'
import { protocolName } from './names.js'

/** The light-client protocols, by short name. */
export type LightProtocol = 'tip' | 'headers' | 'sets' | 'proof' | 'submit' | 'watch'

/**
 * Every light-client protocol: four read-only ones, and two a wallet writes with — `submit` (a
 * signed transaction into the node's pool; the answer is its hash) and `watch` (a co-signed
 * channel state for the node's watchtower). Neither can make a node say anything false: a
 * transaction's effect is proven later, and a watched state is checked against the chain.
 */
export const LIGHT_PROTOCOLS: readonly LightProtocol[] = ['tip', 'headers', 'sets', 'proof', 'submit', 'watch']

/** Largest watch request a watchtower takes: a channel state (16 pending payments and both signatures) and two revocations fit well. */
export const MAX_WATCH_REQUEST_BYTES = 8 * 1024

/** The libp2p protocol id of a light-client protocol on one chain, e.g. `/loopchain/main/light-tip/1`. */
export function lightProtocolId(chainId: string, protocol: LightProtocol): string {
  return protocolName(chainId, `light-${protocol}`)
}

/** Most headers one `headers` response carries: a few hundred kilobytes with small sets. */
export const MAX_HEADERS_PER_RESPONSE = 256
/** Most set changes one `sets` page carries; permissioned chains change sets rarely. */
export const MAX_SET_CHANGES_PER_PAGE = 256
/**
 * The byte budget at which a server ends a `headers` or `sets` response early. A signed header
 * with a full set (1024 validators) is about 70 KB and a change about twice that, so 1 MiB still
 * carries several of the largest.
 */
export const LIGHT_RESPONSE_BUDGET = 1024 * 1024
// One item may overrun the budget (it is added before the budget is checked): room for the largest.
const LARGEST_ITEM_BYTES = 256 * 1024

/** The largest request a server reads for each protocol (requests are a few varints and a key). */
export const LIGHT_MAX_REQUEST_BYTES: Readonly<Record<LightProtocol, number>> = {
  tip: 0,
  headers: 32,
  sets: 16,
  proof: MAX_STATE_KEY_LENGTH + 32,
  submit: MAX_TX_BYTES,
  watch: MAX_WATCH_REQUEST_BYTES,
}

/** The largest response a client accepts for each protocol. */
export const LIGHT_MAX_RESPONSE_BYTES: Readonly<Record<LightProtocol, number>> = {
  tip: LARGEST_ITEM_BYTES,
  headers: LIGHT_RESPONSE_BUDGET + LARGEST_ITEM_BYTES,
  sets: LIGHT_RESPONSE_BUDGET + LARGEST_ITEM_BYTES,
  // A value may be as large as the state allows (contract code); the proof adds at most ~8 KiB.
  proof: MAX_STATE_VALUE_LENGTH + 64 * 1024,
  // A transaction's hash; a watch is answered with the seq the watchtower now holds (a uvarint).
  submit: 32,
  watch: 16,
}

/** Asks for up to `count` consecutive signed headers from height `from` (at least 1). */
export interface HeadersRequest {
  readonly from: number
  readonly count: number
}
/** Codec of {@link HeadersRequest}. */
export const headersRequestCodec: Codec<HeadersRequest> = struct('HeadersRequest', { from: uvarint, count: uvarint })
/** Codec of a `headers` response: consecutive signed headers (fewer than asked at the tip or the byte budget). */
export const headersResponseCodec: Codec<SignedHeader[]> = list(signedHeaderCodec, MAX_HEADERS_PER_RESPONSE)

/** Asks for the validator-set changes announced by headers above `after` (0: all). */
export interface SetChangesRequest {
  readonly after: number
}
/** Codec of {@link SetChangesRequest}. */
export const setChangesRequestCodec: Codec<SetChangesRequest> = struct('SetChangesRequest', { after: uvarint })

/** One page of validator-set changes, in height order; `more` when the server has further ones. */
export interface SetChangesPage {
  readonly changes: readonly ValidatorSetChange[]
  readonly more: boolean
}
/** Codec of {@link SetChangesPage}. */
export const setChangesPageCodec: Codec<SetChangesPage> = struct('SetChangesPage', {
  changes: list(validatorSetChangeCodec, MAX_SET_CHANGES_PER_PAGE),
  more: bool,
})

/**
 * Asks for `key`'s value in the state committed by header `height` (the state after block
 * `height − 1`, whose result that header carries as `resultRoot`); 0 lets the server use its tip.
 */
export interface StateProofRequest {
  readonly key: Uint8Array
  readonly height: number
}
/** Codec of {@link StateProofRequest}. */
export const stateProofRequestCodec: Codec<StateProofRequest> = struct('StateProofRequest', {
  key: sizedBytes(MAX_STATE_KEY_LENGTH),
  height: uvarint,
})

/**
 * A value (or its absence) with its proof: `result` is the {@link BlockResult} whose hash header
 * `height` carries as `resultRoot`, and `proof` proves `value` against `result.stateRoot`.
 */
export interface StateProofAnswer {
  readonly height: number
  readonly result: BlockResult
  readonly value: Uint8Array | undefined
  readonly proof: StateProof
}
/** Codec of {@link StateProofAnswer}. */
export const stateProofAnswerCodec: Codec<StateProofAnswer> = struct('StateProofAnswer', {
  height: uvarint,
  result: blockResultCodec,
  value: option(sizedBytes(MAX_STATE_VALUE_LENGTH)),
  proof: stateProofCodec,
})

/** Codes of {@link LightServeError}. */
export type LightServeErrorCode = 'BAD_REQUEST' | 'NOT_FOUND'

/**
 * Why a server refused a light-client request: `BAD_REQUEST` (malformed or out of bounds: the
 * requester is at fault, `penalize`) or `NOT_FOUND` (this node does not have it: no penalty).
 */
export class LightServeError extends LoopchainError<LightServeErrorCode> {}

/** What a node offers the light-client protocols: committed headers, set changes and state. */
export interface LightBackend {
  /** The last committed height (0 before the first block). */
  readonly height: number
  /** Committed header `height` with its commit certificate. */
  signedHeader(height: number): Promise<SignedHeader | undefined> | SignedHeader | undefined
  /** Every validator set after the genesis one, in height order, each with the first height it votes on. */
  setChanges(): readonly SetInForce[] | Promise<readonly SetInForce[]>
  /** The result of executing block `height` (the state after it). */
  resultAt(height: number): Promise<BlockResult | undefined> | BlockResult | undefined
  /** A proof of `key` in the state with root `stateRoot`. */
  prove(key: Uint8Array, stateRoot: Uint8Array): Promise<StateProofResult> | StateProofResult
  /** Admits an encoded signed transaction into the pool; resolves with its hash, throws the pool's typed refusal. */
  submit?(tx: Uint8Array): Promise<Uint8Array>
  /** Hands an encoded co-signed channel state to the watchtower; resolves with the seq it now holds. */
  watch?(signedState: Uint8Array): Promise<number>
}

/** A server's handler per light-client protocol: request bytes in, response bytes out. */
export type LightHandlers = Readonly<Record<LightProtocol, (request: Uint8Array) => Promise<Uint8Array>>>

function decodeRequest<T>(codec: Codec<T>, request: Uint8Array, protocol: LightProtocol): T {
  if (request.length > LIGHT_MAX_REQUEST_BYTES[protocol]) {
    throw new LightServeError('BAD_REQUEST', `${protocol} request of ${request.length} bytes is above ${LIGHT_MAX_REQUEST_BYTES[protocol]}`)
  }
  try {
    return decode(codec, request)
  } catch (cause) {
    if (cause instanceof DecodeError) throw new LightServeError('BAD_REQUEST', `malformed ${protocol} request: ${cause.message}`, { cause })
    throw cause
  }
}

async function mustHeader(backend: LightBackend, height: number): Promise<SignedHeader> {
  const sh = await backend.signedHeader(height)
  if (sh === undefined) throw new LightServeError('NOT_FOUND', `header ${height} is not available here`, { penalize: false })
  return sh
}

/**
 * The light-client protocols served from `backend`: each handler checks the request's size and
 * bounds and throws {@link LightServeError} for a bad or unanswerable one.
 */
export function createLightHandlers(backend: LightBackend): LightHandlers {
  const sized = (protocol: LightProtocol, request: Uint8Array) => {
    if (request.length > LIGHT_MAX_REQUEST_BYTES[protocol])
      throw new LightServeError(
        'BAD_REQUEST',
        `${protocol} request of ${request.length} bytes is above ${LIGHT_MAX_REQUEST_BYTES[protocol]}`,
      )
  }
  return {
    async submit(request) {
      if (backend.submit === undefined)
        throw new LightServeError('NOT_FOUND', 'this node takes no transactions from light clients', { penalize: false })
      sized('submit', request)
      return backend.submit(request)
    },

    async watch(request) {
      if (backend.watch === undefined) throw new LightServeError('NOT_FOUND', 'this node runs no watchtower', { penalize: false })
      sized('watch', request)
      return encode(uvarint, await backend.watch(request))
    },

    async tip(request) {
      if (request.length !== 0) throw new LightServeError('BAD_REQUEST', 'a tip request is empty')
      const h = backend.height
      if (h === 0) throw new LightServeError('NOT_FOUND', 'no block is committed yet', { penalize: false })
      return encode(signedHeaderCodec, await mustHeader(backend, h))
    },

    async headers(request) {
      const { from, count } = decodeRequest(headersRequestCodec, request, 'headers')
      if (from < 1 || count < 1 || count > MAX_HEADERS_PER_RESPONSE) {
        throw new LightServeError(
          'BAD_REQUEST',
          `headers from ${from}, count ${count}: need from >= 1 and count 1..${MAX_HEADERS_PER_RESPONSE}`,
        )
      }
      if (from > backend.height)
        throw new LightServeError('NOT_FOUND', `header ${from} is above this node's height ${backend.height}`, { penalize: false })
      const out: SignedHeader[] = []
      let size = 0
      const last = Math.min(from + count - 1, backend.height)
      for (let h = from; h <= last && size < LIGHT_RESPONSE_BUDGET; h++) {
        const sh = await mustHeader(backend, h)
        out.push(sh)
        size += encode(signedHeaderCodec, sh).length
      }
      return encode(headersResponseCodec, out)
    },

    async sets(request) {
      const { after } = decodeRequest(setChangesRequestCodec, request, 'sets')
      const height = backend.height
      // A set in force from F was announced by header F - 1; one whose header is not committed yet
      // cannot be proven, and waits for the next request.
      const pending = (await backend.setChanges()).filter((s) => s.from - 1 > after && s.from - 1 <= height)
      const changes: ValidatorSetChange[] = []
      let size = 0
      for (const s of pending) {
        if (changes.length >= MAX_SET_CHANGES_PER_PAGE || size >= LIGHT_RESPONSE_BUDGET) break
        const change: ValidatorSetChange = { signed: await mustHeader(backend, s.from - 1), next: s.set }
        changes.push(change)
        size += encode(validatorSetChangeCodec, change).length
      }
      return encode(setChangesPageCodec, { changes, more: changes.length < pending.length })
    },

    async proof(request) {
      const req = decodeRequest(stateProofRequestCodec, request, 'proof')
      if (req.key.length === 0) throw new LightServeError('BAD_REQUEST', 'a state key is at least one byte')
      const height = req.height === 0 ? backend.height : req.height
      if (height < 1 || height > backend.height) {
        throw new LightServeError('NOT_FOUND', `no committed header ${height} here (height ${backend.height})`, { penalize: false })
      }
      const result = await backend.resultAt(height - 1)
      if (result === undefined)
        throw new LightServeError('NOT_FOUND', `the state of header ${height} is not available here`, { penalize: false })
      const { value, proof } = await backend.prove(req.key, result.stateRoot)
      return encode(stateProofAnswerCodec, { height, result, value, proof })
    },
  }
}
