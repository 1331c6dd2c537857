/** JSON-RPC 2.0 over HTTP and WebSocket, with metrics and health endpoints. */
export * from './json-rpc.js'
export * from './limits.js'
export * from './server.js'
