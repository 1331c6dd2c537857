import { LoopchainError } from '@loopchain/core'

/**
 * Codes of {@link LightClientError}.
 *
 * - `PEER_FAULT`: a full node sent something that does not verify (a forged or under-signed
 *   header, a wrong validator set or set change, a bad proof, a status it cannot back); `details`
 *   has `peer` and the verification's `code`. The node is at fault (`penalize`).
 * - `NO_PEER`: no full node is connected (offline); only what is stored can be used.
 * - `UNAVAILABLE`: every node asked failed to answer (timeouts, refusals); `details.errors` lists why.
 * - `NOT_VERIFIED`: the height is above the verified tip, or the header is not stored and no node can supply it.
 * - `CONFLICT`: a node's validly signed header differs from the verified one at the same height
 *   (see `LightClient.conflicts`): the chain forked or a validator set's keys leaked.
 * - `STORE_MISMATCH`: the store holds another chain's data (chain id, network or genesis set differ).
 * - `CLOSED`: the client was used after `close()`.
 * - `REFUSED`: a node refused a transaction or a watched state (`details.code`: the node's reason,
 *   e.g. `BAD_NONCE`); another node would refuse it too, so it is not retried elsewhere.
 */
export type LightClientErrorCode =
  | 'PEER_FAULT'
  | 'CONFLICT'
  | 'NO_PEER'
  | 'UNAVAILABLE'
  | 'NOT_VERIFIED'
  | 'STORE_MISMATCH'
  | 'CLOSED'
  | 'REFUSED'

/** A light-client operation that failed; `code` says why (see {@link LightClientErrorCode}). */
export class LightClientError extends LoopchainError<LightClientErrorCode> {}
