/** The request-response frame format lives in the core (`wire/frames.ts`), shared with the light client. */
export {
  decodeErrorBody,
  type ErrorFrameBody,
  encodeErrorFrame,
  encodeFrame,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameKind,
  type FrameKindValue,
  readFrame,
} from '@loopchain/core'
