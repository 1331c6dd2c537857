import { Uint8ArrayList } from 'uint8arraylist'
import { RequestError } from './errors.js'

/**
 * The frame format of loopchain's request-response protocols: one byte of kind, a 4-byte big-endian
 * payload length, then the payload. A request stream carries one request frame each way
 * (request, then response or error). A fixed-width length keeps the decoder trivial and lets the
 * reader refuse an oversized frame from its first 5 bytes, before buffering any of it.
 */
export const FrameKind = {
  /** The requester's payload. */
  Request: 0,
  /** The handler's successful answer. */
  Response: 1,
  /** A refusal or failure; the payload is UTF-8 JSON `{ code, message, remoteCode? }`. */
  Error: 2,
} as const

/** One of {@link FrameKind}'s values. */
export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind]

/** Bytes before the payload: kind (1) and length (4). */
export const FRAME_HEADER_BYTES = 5

// Error frames carry a code and a short message; 4 KiB is ample and bounds what a peer can make
// us buffer even when the caller's response limit is larger or smaller.
const MAX_ERROR_PAYLOAD_BYTES = 4096

/** One decoded frame. */
export interface Frame {
  /** What the payload is. */
  kind: FrameKindValue
  /** The payload bytes. */
  payload: Uint8Array
}

/** The body of an error frame. */
export interface ErrorFrameBody {
  /** A {@link RequestError} code, e.g. `REQUEST_TOO_LARGE`. */
  code: string
  /** Human-readable text; never internal stack traces. */
  message: string
  /** The code of the handler's own `LoopchainError`, when it threw one. */
  remoteCode?: string
}

/** Encodes one frame. */
export function encodeFrame(kind: FrameKindValue, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength)
  out[0] = kind
  new DataView(out.buffer).setUint32(1, payload.byteLength, false)
  out.set(payload, FRAME_HEADER_BYTES)
  return out
}

/** Encodes an error frame; the message is cut so the frame stays within the error-frame bound. */
export function encodeErrorFrame(body: ErrorFrameBody): Uint8Array {
  const trimmed: ErrorFrameBody = { ...body, message: body.message.slice(0, 512) }
  return encodeFrame(FrameKind.Error, new TextEncoder().encode(JSON.stringify(trimmed)))
}

/** Parses an error frame's payload; a malformed one becomes a `BAD_FRAME` body. */
export function decodeErrorBody(payload: Uint8Array): ErrorFrameBody {
  try {
    const v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload)) as unknown
    if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>
      if (typeof o.code === 'string' && typeof o.message === 'string') {
        return { code: o.code, message: o.message, ...(typeof o.remoteCode === 'string' ? { remoteCode: o.remoteCode } : {}) }
      }
    }
  } catch {
    // fall through: the peer sent something that is not our error body
  }
  return { code: 'BAD_FRAME', message: 'malformed error frame' }
}

/**
 * Reads exactly one frame from a stream's chunks.
 *
 * @param source - the stream (libp2p 3 streams are async iterables of chunks)
 * @param maxPayloadBytes - the largest request/response payload accepted
 * @param tooLarge - builds the error thrown when the header announces more than the limit; thrown
 *   as soon as the header is read, so an oversized frame is never buffered
 * @throws RequestError `BAD_FRAME` on an unknown kind, `STREAM_FAILED` when the stream ends early
 */
export async function readFrame(
  source: AsyncIterable<Uint8Array | Uint8ArrayList>,
  maxPayloadBytes: number,
  tooLarge: (declaredBytes: number) => Error,
): Promise<Frame> {
  const buf = new Uint8ArrayList()
  let kind: FrameKindValue | undefined
  let length = 0
  for await (const chunk of source) {
    buf.append(chunk)
    if (kind === undefined && buf.byteLength >= FRAME_HEADER_BYTES) {
      const k = buf.get(0)
      if (k !== FrameKind.Request && k !== FrameKind.Response && k !== FrameKind.Error) {
        throw new RequestError('BAD_FRAME', `unknown frame kind ${k}`, { details: { kind: k } })
      }
      kind = k
      length = buf.getUint32(1, false)
      const limit = kind === FrameKind.Error ? MAX_ERROR_PAYLOAD_BYTES : maxPayloadBytes
      if (length > limit) throw tooLarge(length)
    }
    if (kind !== undefined && buf.byteLength >= FRAME_HEADER_BYTES + length) {
      return { kind, payload: buf.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length) }
    }
  }
  throw new RequestError('STREAM_FAILED', `stream ended after ${buf.byteLength} bytes, before a whole frame`, {
    penalize: false,
    details: { received: buf.byteLength },
  })
}
