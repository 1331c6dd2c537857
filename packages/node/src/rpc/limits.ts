/**
 * The JSON-RPC server's limits on what clients may hold at once, with their defaults: one table
 * for the server ({@link startRpcServer}'s options of the same names) and for a node's config
 * (`rpc.limits`), which checks the ones it sets against these. Loads nothing else.
 */
export const RPC_LIMIT_DEFAULTS = {
  /** Largest request body: a transaction of 512 KiB hex-encoded is about 1.1 MB. */
  maxBodyBytes: 2 * 1024 * 1024,
  /** Time a client has to send a whole HTTP request, headers and body; then 408. */
  requestTimeoutMs: 30_000,
  /** HTTP requests of one client whose bodies are still arriving at once. */
  maxRequestsInProgressPerClient: 32,
  /** Request body bytes held at once for the requests in progress of one client, and of all clients. */
  maxBodyBytesInProgressPerClient: 8 * 1024 * 1024,
  maxBodyBytesInProgress: 64 * 1024 * 1024,
  /**
   * TCP connections one client may hold (HTTP and WebSocket alike), and the server in all: past
   * them a new connection is closed at once. Each takes a file descriptor, which the node's
   * peer-to-peer connections and its database need too.
   */
  maxConnectionsPerClient: 64,
  maxConnections: 4096,
  /** WebSocket connections one client may hold, and the server in all. */
  maxWebSocketsPerClient: 16,
  maxWebSockets: 1024,
  /** Bytes waiting unsent for one WebSocket connection, and for all the connections of one client. */
  maxBufferedBytes: 16 * 1024 * 1024,
  maxBufferedBytesPerClient: 32 * 1024 * 1024,
} as const

export type RpcLimitName = keyof typeof RPC_LIMIT_DEFAULTS
export type RpcLimits = { readonly [K in RpcLimitName]?: number }
