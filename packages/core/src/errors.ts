/**
 * The core's error classes. Every failure the core reports is one of these: a stable `code`
 * string a caller can switch on, typed details, and — for input that arrived from a peer —
 * whether the peer that sent it deserves a penalty.
 */

/** Base class of every error the core throws on purpose. */
export class LoopchainError<Code extends string = string> extends Error {
  /** A stable machine-readable code, e.g. `TRAILING_BYTES`. */
  readonly code: Code
  /** True when the input can only come from a faulty or malicious sender. */
  readonly penalize: boolean
  /** Extra facts about the failure (offsets, limits, names). */
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: Code, message: string, opts: { penalize?: boolean; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = code
    this.penalize = opts.penalize ?? true
    this.details = opts.details ?? {}
  }
}

/** Codes of {@link DecodeError}. */
export type DecodeErrorCode = 'TRUNCATED' | 'TRAILING_BYTES' | 'NON_CANONICAL' | 'OVERSIZED' | 'INVALID_TAG' | 'INVALID_VALUE'

/** Bytes that are not the canonical encoding of any value of the expected type. */
export class DecodeError extends LoopchainError<DecodeErrorCode> {}

/** A value the encoder refuses: out of range, too long, wrong shape. A programming error. */
export class EncodeError extends LoopchainError<'OUT_OF_RANGE' | 'OVERSIZED' | 'INVALID_VALUE'> {
  constructor(code: 'OUT_OF_RANGE' | 'OVERSIZED' | 'INVALID_VALUE', message: string, details?: Record<string, unknown>) {
    super(code, message, { penalize: false, ...(details ? { details } : {}) })
  }
}
