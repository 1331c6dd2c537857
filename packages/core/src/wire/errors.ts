/**
 * The networking layer's error classes, shared by the full node and the light client so that a
 * browser and a server report the same failure with the same code.
 */
import { LoopchainError } from '../errors.js'

/**
 * Codes of {@link P2PError}.
 *
 * - `INVALID_NAME`: a chain id or protocol name that cannot be part of a protocol id.
 * - `INVALID_KEY`: the node key is not a 32-byte ed25519 secret.
 * - `NOT_STARTED`: the host was used after `stop()`.
 */
export type P2PErrorCode = 'INVALID_NAME' | 'INVALID_KEY' | 'INVALID_ADDRESS' | 'NOT_STARTED'

/** A local misuse of the networking layer (bad configuration, use after stop). */
export class P2PError extends LoopchainError<P2PErrorCode> {}

/**
 * Codes of {@link RequestError}.
 *
 * - `REQUEST_TOO_LARGE`: the request exceeded the handler's `maxRequestBytes` (sent by the responder).
 * - `RESPONSE_TOO_LARGE`: the response exceeded the requester's `maxResponseBytes`.
 * - `NOT_MEMBER`: a member-only protocol was asked by a peer that is not a member.
 * - `HANDLER_FAILED`: the remote handler threw; `details.remoteCode` carries its error code if it had one.
 * - `TIMEOUT`: no whole response within `timeoutMs`.
 * - `BAD_FRAME`: the remote sent bytes that are not a frame of this protocol.
 * - `NO_HANDLER`: the protocol is not registered here (responder side).
 * - `STREAM_FAILED`: dialling, negotiating or the stream itself failed (reset, closed early).
 * - `BUSY`: the responder already serves as many of this protocol's requests from non-members as it
 *   allows at once (members are not limited); ask again later or another peer.
 */
export type RequestErrorCode =
  | 'REQUEST_TOO_LARGE'
  | 'RESPONSE_TOO_LARGE'
  | 'NOT_MEMBER'
  | 'HANDLER_FAILED'
  | 'TIMEOUT'
  | 'BAD_FRAME'
  | 'NO_HANDLER'
  | 'STREAM_FAILED'
  | 'BUSY'

/**
 * A request-response exchange that did not yield a response. `details.remote` is true when the
 * responder reported the error in an error frame (as opposed to a local timeout or limit), and
 * `penalize` says whether the remote peer misbehaved.
 */
export class RequestError extends LoopchainError<RequestErrorCode> {}
