/**
 * The frame format of loopchain's request-response protocols: one byte of kind, a 4-byte big-endian
 * payload length, then the payload. A request stream carries one frame each way (request, then
 * response or error). A fixed-width length keeps the decoder trivial and lets the reader refuse an
 * oversized frame from its first 5 bytes, before buffering any of it.
 *
 * Pure: the functions here read from and write to a stream they are given (a libp2p stream in the
 * full node and in the light client, in Node or a browser); dialling, timeouts and aborts stay
 * with the caller.
 */
import { RequestError, type RequestErrorCode } from './errors.js'

/** The kinds of frame. */
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

/** A chunk as streams deliver it: bytes, or a list of byte arrays (libp2p's `Uint8ArrayList`). */
export type FrameChunk = Uint8Array | { readonly byteLength: number; subarray(): Uint8Array }

/** The parts of a libp2p 3 stream the framing uses (the stream's chunks, `send`, drain and close). */
export interface FrameStream extends AsyncIterable<FrameChunk> {
  send(data: Uint8Array): boolean
  onDrain(options?: { signal?: AbortSignal }): Promise<void>
  close(options?: { signal?: AbortSignal }): Promise<void>
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
  source: AsyncIterable<FrameChunk>,
  maxPayloadBytes: number,
  tooLarge: (declaredBytes: number) => Error,
): Promise<Frame> {
  // Chunks are kept as they come and joined once: a frame arrives in a few large chunks or, from
  // a hostile peer, in many tiny ones; neither costs more than one copy of the frame.
  const parts: Uint8Array[] = []
  let received = 0
  let kind: FrameKindValue | undefined
  let length = 0
  const prefix = (n: number): Uint8Array => {
    const out = new Uint8Array(n)
    let at = 0
    for (const p of parts) {
      if (at >= n) break
      const take = Math.min(p.byteLength, n - at)
      out.set(p.subarray(0, take), at)
      at += take
    }
    return out
  }
  for await (const chunk of source) {
    const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray()
    parts.push(bytes)
    received += bytes.byteLength
    if (kind === undefined && received >= FRAME_HEADER_BYTES) {
      const head = prefix(FRAME_HEADER_BYTES)
      const k = head[0]
      if (k !== FrameKind.Request && k !== FrameKind.Response && k !== FrameKind.Error) {
        throw new RequestError('BAD_FRAME', `unknown frame kind ${k}`, { details: { kind: k } })
      }
      kind = k
      length = new DataView(head.buffer).getUint32(1, false)
      const limit = kind === FrameKind.Error ? MAX_ERROR_PAYLOAD_BYTES : maxPayloadBytes
      if (length > limit) throw tooLarge(length)
    }
    if (kind !== undefined && received >= FRAME_HEADER_BYTES + length) {
      return { kind, payload: prefix(FRAME_HEADER_BYTES + length).subarray(FRAME_HEADER_BYTES) }
    }
  }
  throw new RequestError('STREAM_FAILED', `stream ended after ${received} bytes, before a whole frame`, {
    penalize: false,
    details: { received },
  })
}

/** Sends bytes, waiting for the stream to drain when its buffer is full, then closes our write half. */
export async function sendAndClose(stream: FrameStream, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain(signal ? { signal } : {})
  await stream.close(signal ? { signal } : {})
}

const KNOWN_REMOTE_CODES = new Set<RequestErrorCode>([
  'REQUEST_TOO_LARGE',
  'NOT_MEMBER',
  'HANDLER_FAILED',
  'BAD_FRAME',
  'NO_HANDLER',
  'BUSY',
])

/**
 * The requester's half of one exchange on an open stream: sends the request frame and returns the
 * response payload, or throws a {@link RequestError} for an error frame or a bad or oversized
 * response. The caller owns the stream: it times the exchange out and aborts the stream when this
 * throws.
 *
 * @param details - facts added to every error (peer, protocol)
 */
export async function exchangeRequest(
  stream: FrameStream,
  request: Uint8Array,
  maxResponseBytes: number,
  details: Record<string, unknown> = {},
): Promise<Uint8Array> {
  const response = readFrame(
    stream,
    maxResponseBytes,
    (n) => new RequestError('RESPONSE_TOO_LARGE', `response of ${n} bytes exceeds the limit of ${maxResponseBytes}`, { details }),
  )
  // Write concurrently with reading: a responder that refuses early (too large, not a member)
  // answers before it has read our request, and we must not wait on a write it will never drain.
  void sendAndClose(stream, encodeFrame(FrameKind.Request, request)).catch(() => {})
  const frame = await response
  if (frame.kind === FrameKind.Response) return frame.payload
  if (frame.kind === FrameKind.Error) {
    const body = decodeErrorBody(frame.payload)
    const code: RequestErrorCode = KNOWN_REMOTE_CODES.has(body.code as RequestErrorCode) ? (body.code as RequestErrorCode) : 'BAD_FRAME'
    throw new RequestError(code, body.message, {
      penalize: code === 'BAD_FRAME',
      details: { ...details, remote: true, ...(body.remoteCode !== undefined ? { remoteCode: body.remoteCode } : {}) },
    })
  }
  throw new RequestError('BAD_FRAME', `expected a response frame, got kind ${frame.kind}`, { details })
}
