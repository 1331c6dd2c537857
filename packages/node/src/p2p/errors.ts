/** The networking error classes live in the core (`wire/`), shared with the light client. */
export { P2PError, type P2PErrorCode, RequestError, type RequestErrorCode } from '@loopchain/core'
