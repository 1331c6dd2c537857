import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  type ErrorFrameBody,
  encodeErrorFrame,
  encodeFrame,
  exchangeRequest,
  FrameKind,
  LoopchainError,
  readFrame,
  sendAndClose,
} from '@loopchain/core'
import { RequestError, type RequestErrorCode } from './errors.js'
import type { NodeLogger } from './logger.js'

/** Answers one request; the returned bytes go back as the response. Throwing sends an error frame. */
export type RequestHandler = (request: Uint8Array, peerId: string) => Uint8Array | Promise<Uint8Array>

/** How a protocol is served. */
export interface HandleOptions {
  /** Requests larger than this are refused with `REQUEST_TOO_LARGE` before being buffered. Default 1 MiB. */
  maxRequestBytes?: number
  /** Refuse peers for which `isMember` is false with `NOT_MEMBER` (full-node protocols). Default false. */
  memberOnly?: boolean
  /** The stream is aborted if the exchange takes longer than this, so a slow peer cannot pin it. Default 30 s. */
  timeoutMs?: number
  /** Streams of this protocol a single connection may have open at once. Default 32. */
  maxInboundStreams?: number
  /**
   * Exchanges with non-members this node serves at once on this protocol, over all connections
   * (peer ids cost nothing to make, so a per-connection limit alone does not bound the work); one
   * more is refused with `BUSY`. Members are not counted. Default unlimited.
   */
  maxConcurrentNonMembers?: number
  /**
   * Bytes of non-members' responses this node holds unsent at once on this protocol (a requester
   * that reads slowly holds its answer here, not a place of `maxConcurrentNonMembers`); a request
   * that finds them at or above this is refused with `BUSY`. Default 64 MiB.
   */
  maxNonMemberUnsentBytes?: number
  /**
   * A non-member must read its response at this rate at least, after {@link sendGraceMs}, or it is
   * cut off (not blamed: a slow link is no fault, and the cut frees what it held). Default 512 KiB/s.
   */
  minReadBytesPerSecond?: number
  /** Time a non-member has to read a response on top of its size at the minimum rate. Default 5 s. */
  sendGraceMs?: number
}

/** How a request is made. */
export interface RequestOptions {
  /** The whole exchange (dial, send, response) must finish within this. Default 10 s. */
  timeoutMs?: number
  /** Responses larger than this abort the stream with `RESPONSE_TOO_LARGE`. Default 1 MiB. */
  maxResponseBytes?: number
  /** Cancels the request early. */
  signal?: AbortSignal
}

// 1 MiB: larger than any single block we expect to send in one response, small enough that a
// peer cannot make us buffer much with one stream.
const DEFAULT_MAX_BYTES = 1 << 20
// Request round trips on a LAN take milliseconds; 10 s leaves room for a busy validator.
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
const DEFAULT_HANDLER_TIMEOUT_MS = 30_000
// After an error frame we stop reading; give the requester this long to read it and reset the
// stream before we reset it ourselves (resetting at once could drop the frame in flight).
const ERROR_GRACE_MS = 2_000
const DEFAULT_MAX_NON_MEMBER_UNSENT_BYTES = 64 << 20
const DEFAULT_MIN_READ_BYTES_PER_S = 512 << 10
const DEFAULT_SEND_GRACE_MS = 5_000
/**
 * How long a requester has to send its request once it opened a stream. A request is one small
 * frame: a peer that opens streams and sends nothing is holding them, and is refused.
 */
export const REQUEST_READ_TIMEOUT_MS = 5_000

/**
 * Registers `handler` for `protocol` on `libp2p` with framing, limits, admission and error frames.
 * `onFault` hears of each request that was the requester's fault (an oversized request, a broken
 * frame, a handler's typed refusal marked `penalize`), once its error frame is sent (so a
 * peer banned for it still reads why).
 */
export async function handleRequests(
  libp2p: Libp2p,
  protocol: string,
  handler: RequestHandler,
  opts: HandleOptions,
  isMember: (peerId: string) => boolean,
  log: NodeLogger,
  onFault: (peer: string, code: string) => void = () => undefined,
): Promise<void> {
  const maxRequestBytes = opts.maxRequestBytes ?? DEFAULT_MAX_BYTES
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HANDLER_TIMEOUT_MS
  const maxNonMembers = opts.maxConcurrentNonMembers ?? Number.POSITIVE_INFINITY
  const maxUnsent = opts.maxNonMemberUnsentBytes ?? DEFAULT_MAX_NON_MEMBER_UNSENT_BYTES
  const minReadRate = opts.minReadBytesPerSecond ?? DEFAULT_MIN_READ_BYTES_PER_S
  const sendGraceMs = opts.sendGraceMs ?? DEFAULT_SEND_GRACE_MS
  /** Non-members' exchanges in their handler now, and the bytes of their responses not yet sent. */
  let nonMembers = 0
  let unsent = 0

  const replyError = async (stream: Stream, body: ErrorFrameBody): Promise<void> => {
    await sendAndClose(stream, encodeErrorFrame(body))
    const t = setTimeout(() => stream.abort(new RequestError(body.code as RequestErrorCode, body.message)), ERROR_GRACE_MS)
    t.unref()
  }

  const onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const peer = connection.remotePeer.toString()
    const began = Date.now()
    const deadline = setTimeout(
      () => stream.abort(new RequestError('TIMEOUT', `${protocol} exchange with ${peer} exceeded ${timeoutMs} ms`, { penalize: false })),
      timeoutMs,
    )
    deadline.unref()
    let counted = false
    const release = () => {
      if (counted) nonMembers--
      counted = false
    }
    try {
      const member = isMember(peer)
      if (opts.memberOnly && !member) {
        log.debug('refused member-only protocol to a non-member', { protocol, peer })
        await replyError(stream, { code: 'NOT_MEMBER', message: `${protocol} is open to member institutions only` })
        return
      }
      let request: Uint8Array
      // The request is read before a non-member's place is taken: a peer that opens streams and
      // sends nothing held every place for the handler's whole deadline, and the others got BUSY.
      let silent = false
      const readDeadline = setTimeout(
        () => {
          silent = true
          stream.abort(new RequestError('TIMEOUT', `no request from ${peer} within ${REQUEST_READ_TIMEOUT_MS} ms`, { penalize: false }))
        },
        Math.min(REQUEST_READ_TIMEOUT_MS, timeoutMs),
      )
      readDeadline.unref()
      try {
        const frame = await readFrame(
          stream,
          maxRequestBytes,
          (n) => new RequestError('REQUEST_TOO_LARGE', `request of ${n} bytes exceeds the limit of ${maxRequestBytes}`),
        )
        if (frame.kind !== FrameKind.Request) throw new RequestError('BAD_FRAME', `expected a request frame, got kind ${frame.kind}`)
        request = frame.payload
      } catch (err) {
        if (err instanceof RequestError && (err.code === 'REQUEST_TOO_LARGE' || err.code === 'BAD_FRAME')) {
          log.warn('refused a request', { protocol, peer, code: err.code, message: err.message })
          try {
            await replyError(stream, { code: err.code, message: err.message })
          } finally {
            onFault(peer, err.code)
          }
          return
        }
        if (silent) {
          log.debug('a requester sent nothing', { protocol, peer })
          onFault(peer, 'NO_REQUEST')
          return
        }
        throw err
      } finally {
        clearTimeout(readDeadline)
      }
      if (!member) {
        if (nonMembers >= maxNonMembers || unsent >= maxUnsent) {
          log.debug('refused a non-member: busy', { protocol, peer, serving: nonMembers, unsent })
          await replyError(stream, {
            code: 'BUSY',
            message:
              nonMembers >= maxNonMembers
                ? `${protocol} serves ${maxNonMembers} non-member requests at once; try again later`
                : `${protocol} holds as many unsent answers to non-members as it takes; try again later`,
          })
          return
        }
        nonMembers++
        counted = true
      }
      let response: Uint8Array
      try {
        response = await handler(request, peer)
      } catch (err) {
        release()
        // The requester learns that the handler failed and, for our own typed errors, why; other
        // errors are internal and their text stays in our log.
        const typed = err instanceof LoopchainError
        // A typed refusal (nothing to serve yet, a transaction the pool refuses) is the protocol
        // working; only the requester's fault or our own failure is worth a warning.
        const fields = { protocol, peer, error: err instanceof Error ? err.message : String(err), ...(typed ? { code: err.code } : {}) }
        if (typed && !err.penalize) log.debug('request refused', fields)
        else log.warn('request handler failed', fields)
        try {
          await replyError(stream, {
            code: 'HANDLER_FAILED',
            message: typed ? err.message : 'the handler failed',
            ...(typed ? { remoteCode: err.code } : {}),
          })
        } finally {
          // An untyped failure is ours, not the requester's.
          if (typed && err.penalize) onFault(peer, err.code)
        }
        return
      }
      // The handler's work is done: its place goes to the next non-member. A slow reader holds
      // only its answer, counted against the unsent bytes, and for a bounded time.
      release()
      const frame = encodeFrame(FrameKind.Response, response)
      if (member) {
        await sendAndClose(stream, frame)
        return
      }
      // Within what is left of the exchange's deadline too, so that the cut is always this one.
      const sendMs = Math.max(
        1,
        Math.min(sendGraceMs + Math.ceil((frame.length * 1000) / minReadRate), timeoutMs - (Date.now() - began) - 1),
      )
      const slow = AbortSignal.timeout(sendMs)
      unsent += frame.length
      try {
        await sendAndClose(stream, frame, slow)
      } catch (err) {
        if (!slow.aborted) throw err
        log.debug('a requester did not read its response in time', { protocol, peer, bytes: frame.length, ms: sendMs })
        stream.abort(new RequestError('TIMEOUT', `${peer} did not read ${frame.length} bytes within ${sendMs} ms`, { penalize: false }))
      } finally {
        unsent -= frame.length
      }
    } catch (err) {
      log.debug('request stream failed', { protocol, peer, error: err instanceof Error ? err.message : String(err) })
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      clearTimeout(deadline)
      release()
    }
  }

  await libp2p.handle(protocol, onStream, {
    maxInboundStreams: opts.maxInboundStreams ?? 32,
    // Light clients reach full nodes through relays too; a request is small and short-lived.
    runOnLimitedConnection: true,
  })
}

/** Sends one request over a new stream and returns the response bytes, or throws a {@link RequestError}. */
export async function sendRequest(
  libp2p: Libp2p,
  peerId: string,
  protocol: string,
  bytes: Uint8Array,
  opts: RequestOptions = {},
): Promise<Uint8Array> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_BYTES
  const timeout = AbortSignal.timeout(timeoutMs)
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout
  const details = { peer: peerId, protocol }
  const timedOut = () =>
    new RequestError('TIMEOUT', `no response from ${peerId} on ${protocol} within ${timeoutMs} ms`, { penalize: false, details })

  let stream: Stream
  try {
    stream = await libp2p.dialProtocol(peerIdFromString(peerId), protocol, { signal, runOnLimitedConnection: true })
  } catch (err) {
    if (timeout.aborted) throw timedOut()
    const unsupported = err instanceof Error && err.name === 'UnsupportedProtocolError'
    throw new RequestError(unsupported ? 'NO_HANDLER' : 'STREAM_FAILED', `could not open ${protocol} to ${peerId}: ${String(err)}`, {
      penalize: false,
      details,
      cause: err,
    })
  }

  const onAbort = () => stream.abort(timedOut())
  signal.addEventListener('abort', onAbort, { once: true })
  let ok = false
  try {
    // The framing (request frame out, one response or error frame back) is shared with the light
    // client: core `wire/frames.ts`.
    const payload = await exchangeRequest(stream, bytes, maxResponseBytes, details)
    ok = true
    return payload
  } catch (err) {
    if (timeout.aborted) throw timedOut()
    if (err instanceof RequestError) throw err
    throw new RequestError('STREAM_FAILED', `${protocol} stream to ${peerId} failed: ${String(err)}`, {
      penalize: false,
      details,
      cause: err,
    })
  } finally {
    signal.removeEventListener('abort', onAbort)
    // After a whole response both halves are closed; anything else leaves a half-open stream that
    // we reset so neither side keeps it.
    if (!ok) stream.abort(new RequestError('STREAM_FAILED', 'request abandoned', { penalize: false }))
  }
}
