/**
 * The node's HTTP and WebSocket endpoints: JSON-RPC 2.0 at `POST /` and over `ws://…/ws`
 * (subscriptions), Prometheus metrics at `GET /metrics`, and `GET /health`. Every client gets a
 * token bucket (requests per second with a burst), a request-size limit and limits on what it may
 * hold at once (requests arriving, request bytes, WebSocket connections, unsent replies), so one
 * busy or hostile client cannot starve the others. A refused JSON-RPC request gets a JSON-RPC error
 * (over HTTP with 413, 429 or 503); a refused WebSocket opening gets the HTTP status alone, and a
 * request not sent within the time allowed gets Node's 408.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type RawData, type WebSocket, WebSocketServer } from 'ws'
import type { NodeLogger } from '../p2p/logger.js'
import { KeyedBuckets } from './buckets.js'
import { type Json, type RpcDispatcher, RpcErrorCode } from './json-rpc.js'
import { RPC_LIMIT_DEFAULTS, type RpcLimits } from './limits.js'

/**
 * Whom the per-client limits count a request against: an IPv4 address, or an IPv6 address's /64
 * (one host, or one site, is given a whole /64: keyed by full address, each of its 2^64 addresses
 * would be a fresh client with fresh limits). An IPv4 address written as IPv6 (`::ffff:a.b.c.d`,
 * how a dual-stack socket reports it, or `::ffff:xxxx:xxxx`, how a multiaddr prints it) counts as
 * that IPv4 address.
 */
export function clientKey(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return 'unknown'
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remoteAddress)
  if (mapped) return mapped[1] as string
  // The same in hex (`::ffff:102:304`), as a multiaddr prints it.
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(remoteAddress)
  if (hex) {
    const [hi, lo] = [Number.parseInt(hex[1] as string, 16), Number.parseInt(hex[2] as string, 16)]
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
  }
  if (!remoteAddress.includes(':')) return remoteAddress
  // Expand "::" to the zero groups it stands for, then keep the first four groups.
  const zone = remoteAddress.indexOf('%')
  const address = (zone < 0 ? remoteAddress : remoteAddress.slice(0, zone)).toLowerCase()
  const [head = '', tail] = address.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`
}

/** Options of {@link startRpcServer}; the limits default to {@link RPC_LIMIT_DEFAULTS}. */
export interface RpcServerOptions extends RpcLimits {
  readonly dispatcher: RpcDispatcher
  /** Interface to listen on (default 127.0.0.1). */
  readonly host?: string
  /** Port (0 = any free port). */
  readonly port?: number
  /** Largest request body: a transaction of 512 KiB hex-encoded is about 1.1 MB (default 2 MiB). */
  readonly maxBodyBytes?: number
  /**
   * Most bytes waiting unsent for one WebSocket client (replies and notifications) before it is
   * cut off (default 16 MiB): a client that stops reading must not hold the node's memory.
   */
  readonly maxBufferedBytes?: number
  /**
   * How often each WebSocket client is pinged (default 30 s); one that has not answered the
   * previous ping by then is cut off, so a connection whose other end vanished (no FIN ever came)
   * frees its subscriptions.
   */
  readonly heartbeatMs?: number
  /**
   * Most bytes waiting unsent for all the WebSocket connections of one client together (default
   * 32 MiB): past it, the connection being sent to is cut off.
   */
  readonly maxBufferedBytesPerClient?: number
  /**
   * HTTP requests of one client whose bodies are still arriving at once (default 32). The rate
   * limit counts requests as they start; without this, one address could open thousands that each
   * hold up to `maxBodyBytes` while they trickle in. A request read whole no longer counts, however
   * long its answer takes (a send-and-wait).
   */
  readonly maxRequestsInProgressPerClient?: number
  /**
   * Request body bytes held at once for the requests in progress of one client (default 8 MiB) and
   * of all clients together (default 64 MiB); past either, 503. A client alone cannot use the
   * whole budget and lock the others out.
   */
  readonly maxBodyBytesInProgressPerClient?: number
  readonly maxBodyBytesInProgress?: number
  /** Time a client has to send a whole HTTP request, headers and body (default 30 s); then 408. */
  readonly requestTimeoutMs?: number
  /**
   * TCP connections one client may hold (default 64, or the WebSocket cap per client and 16 more)
   * and the server in all (default 4,096, or the WebSocket cap and 1,024 more); past them a
   * connection is closed at once.
   */
  readonly maxConnectionsPerClient?: number
  readonly maxConnections?: number
  /** WebSocket connections one client may hold (default 16) and the server in all (default 1,024). */
  readonly maxWebSocketsPerClient?: number
  readonly maxWebSockets?: number
  /** Sustained requests per second per client (default 200) and the burst above it (default 400); a WebSocket opened counts as one. */
  readonly rateLimit?: { readonly perSecond: number; readonly burst: number }
  /** The Prometheus text for `/metrics`. */
  readonly metrics?: () => string | Promise<string>
  /** The body of `/health`; `ok: false` answers 503. */
  readonly health?: () => { ok: boolean; [k: string]: Json } | Promise<{ ok: boolean; [k: string]: Json }>
  readonly logger?: NodeLogger
  /** How long {@link RpcServer.close} lets requests under way be answered before it closes their connections (default 2 s). */
  readonly closeGraceMs?: number
  /** The clock (milliseconds), injectable for tests of the rate limit. */
  readonly now?: () => number
}

/** A running RPC server. */
export interface RpcServer {
  /** `http://host:port/`. */
  readonly url: string
  /** `ws://host:port/ws`. */
  readonly wsUrl: string
  readonly port: number
  close(): Promise<void>
}

const CORS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, OPTIONS',
  'access-control-allow-headers': 'content-type',
}

function rpcErrorBody(code: number, message: string, id: string | number | null = null): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code, message } })
}

/**
 * The id of a refused WebSocket request, so that a client with several calls on one socket knows
 * which one to retry: read from a single request of at most {@link REFUSED_ID_READ_BYTES}
 * bytes (a larger message, or a batch, gets id null: reading it is the work the refusal
 * saves). `undefined` for a notification, which gets no answer at all.
 */
const REFUSED_ID_READ_BYTES = 4096
function refusedRequestId(data: RawData): string | number | null | undefined {
  // Measured in bytes before anything is decoded: the refusal is there to save that work.
  const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength
  if (bytes > REFUSED_ID_READ_BYTES) return null
  try {
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
    const m = JSON.parse(buffer.toString('utf8')) as unknown
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return null
    if (!Object.hasOwn(m, 'id')) return undefined
    const id = (m as { id: unknown }).id
    return typeof id === 'string' || typeof id === 'number' ? id : null
  } catch {
    return null
  }
}

/** Starts the HTTP + WebSocket server. */
export async function startRpcServer(opts: RpcServerOptions): Promise<RpcServer> {
  const d = RPC_LIMIT_DEFAULTS
  const maxBody = opts.maxBodyBytes ?? d.maxBodyBytes
  const maxBuffered = opts.maxBufferedBytes ?? d.maxBufferedBytes
  const maxBufferedPerClient = opts.maxBufferedBytesPerClient ?? d.maxBufferedBytesPerClient
  const maxInProgress = opts.maxRequestsInProgressPerClient ?? d.maxRequestsInProgressPerClient
  const maxBodyBytesInProgress = opts.maxBodyBytesInProgress ?? d.maxBodyBytesInProgress
  const maxBodyBytesPerClient = opts.maxBodyBytesInProgressPerClient ?? d.maxBodyBytesInProgressPerClient
  const requestTimeoutMs = opts.requestTimeoutMs ?? d.requestTimeoutMs
  const maxSocketsPerClient = opts.maxWebSocketsPerClient ?? d.maxWebSocketsPerClient
  const maxSockets = opts.maxWebSockets ?? d.maxWebSockets
  const now = opts.now ?? (() => Date.now())
  /** Per client: HTTP requests whose bodies are arriving, and the bytes they hold. All clients: the bytes held. */
  const inProgress = new Map<string, { requests: number; bytes: number }>()
  let bodyBytesHeld = 0
  /** Per client: its open WebSocket connections. */
  const socketsOf = new Map<string, Set<WebSocket>>()
  const burst = opts.rateLimit?.burst ?? 400
  const buckets = new KeyedBuckets(opts.rateLimit?.perSecond ?? 200, burst, now)
  /**
   * Takes the extra calls a large body counts as (see the dispatcher's value count), at most what
   * a client holds after a request from a full bucket: with a burst set below the largest charge,
   * the largest bodies would be refused for ever, even to a client that sent nothing else.
   */
  const chargeOf =
    (client: string) =>
    (calls: number): boolean =>
      buckets.take(client, Math.min(calls, Math.max(0, burst - 1)))

  const send = (res: ServerResponse, status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type, ...CORS }).end(body)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const client = clientKey(req.socket.remoteAddress)
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'OPTIONS') return void res.writeHead(204, CORS).end()
    // /metrics costs a token too (a scrape every few seconds is far below the rate). /health does
    // not: a probe refused because its address also sends calls would read as a node down.
    if (req.method === 'GET' && path === '/metrics' && !buckets.take(client))
      return send(res, 429, 'application/json', rpcErrorBody(RpcErrorCode.RateLimited, 'rate limited: slow down'))
    if (req.method === 'GET' && path === '/health') {
      const h = opts.health ? await opts.health() : { ok: true }
      return send(res, h.ok ? 200 : 503, 'application/json', JSON.stringify(h))
    }
    if (req.method === 'GET' && path === '/metrics') {
      return send(res, 200, 'text/plain; version=0.0.4', opts.metrics ? await opts.metrics() : '')
    }
    if (req.method !== 'POST' || (path !== '/' && path !== '/api')) {
      return send(res, 404, 'application/json', rpcErrorBody(RpcErrorCode.InvalidRequest, 'JSON-RPC is served by POST / (and ws://…/ws)'))
    }
    if (!buckets.take(client)) return send(res, 429, 'application/json', rpcErrorBody(RpcErrorCode.RateLimited, 'rate limited: slow down'))
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > maxBody) {
      req.resume()
      return send(res, 413, 'application/json', rpcErrorBody(RpcErrorCode.TooLarge, `request body above ${maxBody} bytes`))
    }
    const mine = inProgress.get(client) ?? { requests: 0, bytes: 0 }
    if (mine.requests >= maxInProgress) {
      req.resume()
      return send(
        res,
        429,
        'application/json',
        rpcErrorBody(RpcErrorCode.RateLimited, `${maxInProgress} requests of this client are arriving already: send one at a time`),
      )
    }
    mine.requests++
    inProgress.set(client, mine)
    let held = 0
    let reading = true
    /** The request's body is read (or refused): it no longer counts against its client or the node. */
    const release = () => {
      if (!reading) return
      reading = false
      bodyBytesHeld -= held
      mine.bytes -= held
      if (--mine.requests === 0) inProgress.delete(client)
    }
    let body: string
    try {
      const chunks: Buffer[] = []
      for await (const chunk of req) {
        const n = (chunk as Buffer).length
        held += n
        mine.bytes += n
        bodyBytesHeld += n
        // The answer first, then the connection: destroying the request first reset it unanswered.
        const refuse = (status: number, code: number, message: string) => {
          res.writeHead(status, { 'content-type': 'application/json', connection: 'close', ...CORS })
          res.end(rpcErrorBody(code, message), () => req.destroy())
        }
        if (held > maxBody) return refuse(413, RpcErrorCode.TooLarge, `request body above ${maxBody} bytes`)
        if (mine.bytes > maxBodyBytesPerClient)
          return refuse(503, RpcErrorCode.RateLimited, 'this client is sending too many request bytes at once: send one at a time')
        if (bodyBytesHeld > maxBodyBytesInProgress)
          return refuse(503, RpcErrorCode.RateLimited, 'the node is reading too many requests at once: retry shortly')
        chunks.push(chunk as Buffer)
      }
      body = Buffer.concat(chunks).toString('utf8')
    } finally {
      release()
    }
    const charge = chargeOf(client)
    // A client that hangs up before its answer ends what waits for it (a send-and-wait); the
    // response's own 'close' once written is not that. One listener, however many calls wait.
    const cleanups = new Set<() => void>()
    res.once('close', () => {
      if (!res.writableFinished) for (const f of cleanups) f()
      cleanups.clear()
    })
    const onClose = (f: () => void) => {
      if (req.socket.destroyed && !res.writableFinished) {
        f()
        return () => {}
      }
      cleanups.add(f)
      return () => void cleanups.delete(f)
    }
    const out = await opts.dispatcher.handleText(body, { client, charge, onClose })
    if (out === undefined) return void res.writeHead(204, CORS).end()
    send(res, 200, 'application/json', out)
  }

  // Node's default gives a request 300 s (checked every 30 s): long enough for a slow client to hold a body buffer for minutes.
  const server: Server = createServer(
    requestTimeoutMs > 0
      ? {
          requestTimeout: requestTimeoutMs,
          headersTimeout: Math.min(60_000, requestTimeoutMs),
          connectionsCheckingInterval: Math.floor(Math.max(100, Math.min(5_000, requestTimeoutMs / 4))),
        }
      : { requestTimeout: 0 },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        // A client that hung up, or did not send its request in time (Node answered 408), is no failure of ours.
        const code = (e as NodeJS.ErrnoException | undefined)?.code
        if ((e as Error | undefined)?.message === 'aborted' || code === 'ECONNRESET' || code === 'ERR_HTTP_REQUEST_TIMEOUT') {
          opts.logger?.debug('rpc: a request ended before it was read', { error: String(e) })
          return
        }
        opts.logger?.error('rpc: request failed', { error: String(e) })
        if (!res.headersSent) send(res, 500, 'application/json', rpcErrorBody(RpcErrorCode.InternalError, 'Internal error'))
      })
    },
  )

  // Connections: a client that opens thousands and sends nothing would hold as many file
  // descriptors until the request timeout, and the node's own (libp2p, LevelDB) would run out.
  // Unless set, room for the WebSocket caps and some: a config that raised those stays valid.
  const maxConnectionsPerClient = opts.maxConnectionsPerClient ?? Math.max(d.maxConnectionsPerClient, maxSocketsPerClient + 16)
  const maxConnections = opts.maxConnections ?? Math.max(d.maxConnections, maxSockets + 1024)
  const connectionsOf = new Map<string, number>()
  let connections = 0
  let refusedConnections = 0
  server.on('connection', (socket) => {
    const client = clientKey(socket.remoteAddress)
    const mine = connectionsOf.get(client) ?? 0
    if (mine >= maxConnectionsPerClient || connections >= maxConnections) {
      // Said once in a while, not per connection: a flood would flood the log too.
      if (refusedConnections++ % 1000 === 0)
        opts.logger?.warn('rpc: connections refused: a client holds its limit, or the server does', {
          client,
          clientConnections: mine,
          connections,
          maxConnectionsPerClient,
          maxConnections,
          refused: refusedConnections,
        })
      socket.destroy()
      return
    }
    connectionsOf.set(client, mine + 1)
    connections++
    socket.once('close', () => {
      connections--
      const left = (connectionsOf.get(client) ?? 1) - 1
      if (left > 0) connectionsOf.set(client, left)
      else connectionsOf.delete(client)
    })
  })

  let openSockets = 0
  const wss = new WebSocketServer({
    server,
    path: '/ws',
    maxPayload: maxBody,
    // Opening a connection takes a token of the client's rate limit, and a place of its own and of the server's.
    verifyClient: (info, done) => {
      const client = clientKey(info.req.socket.remoteAddress)
      if ((socketsOf.get(client)?.size ?? 0) >= maxSocketsPerClient)
        return done(false, 429, `this client holds ${maxSocketsPerClient} WebSocket connections already`)
      if (openSockets >= maxSockets) return done(false, 503, 'this node serves as many WebSocket connections as it can: retry later')
      if (!buckets.take(client)) return done(false, 429, 'rate limited: slow down')
      done(true)
    },
  })
  // Per connection, the payload of the ping it has to answer: the protocol's own ping, which
  // browsers answer by themselves, echoing it. A pong that does not echo it does not count: a client
  // that reads nothing (its replies piling up here) could otherwise send pongs unasked and stay.
  const awaiting = new WeakMap<WebSocket, Buffer>()
  const answered = new WeakSet<WebSocket>()
  const heartbeat = setInterval(() => {
    for (const ws of wss.clients) {
      if (!answered.has(ws)) {
        opts.logger?.debug('rpc: websocket client did not answer a ping, closed')
        ws.terminate()
        continue
      }
      answered.delete(ws)
      const payload = randomBytes(8)
      awaiting.set(ws, payload)
      ws.ping(payload)
    }
  }, opts.heartbeatMs ?? 30_000)
  heartbeat.unref()
  wss.on('connection', (ws, req) => {
    const client = clientKey(req.socket.remoteAddress)
    const mine = socketsOf.get(client) ?? new Set<WebSocket>()
    socketsOf.set(client, mine)
    mine.add(ws)
    openSockets++
    answered.add(ws)
    ws.on('pong', (data) => {
      const expected = awaiting.get(ws)
      if (expected !== undefined && data.equals(expected)) {
        awaiting.delete(ws)
        answered.add(ws)
      }
    })
    const cleanups = new Set<() => void>()
    let closed = false
    ws.on('close', () => {
      closed = true
      openSockets--
      mine.delete(ws)
      if (mine.size === 0) socketsOf.delete(client)
      const all = [...cleanups]
      cleanups.clear()
      for (const f of all) f()
    })
    // A frame that breaks the protocol (bad UTF-8, a bad opcode, above maxPayload) closes this
    // socket; unheard, ws's 'error' event ended the whole process.
    ws.on('error', (e) => {
      opts.logger?.debug('rpc: websocket closed on a protocol error', { client, error: e.message })
      ws.terminate()
    })
    // Every frame to this client goes through here: one that reads slower than its replies and
    // notifications come is cut off once too much waits unsent for it.
    const sendFrame = (text: string) => {
      if (ws.readyState !== ws.OPEN) return
      let ofClient = 0
      for (const w of mine) ofClient += w.bufferedAmount
      if (ws.bufferedAmount > maxBuffered || ofClient > maxBufferedPerClient) {
        opts.logger?.debug('rpc: websocket client too slow, closed', { client, buffered: ws.bufferedAmount, bufferedOfClient: ofClient })
        ws.terminate()
        return
      }
      ws.send(text)
    }
    const notify = (method: string, params: Json) => sendFrame(JSON.stringify({ jsonrpc: '2.0', method, params }))
    const onClose = (f: () => void) => {
      // A batch still running when the socket closed registers after the cleanups ran: run it now.
      if (closed) f()
      else cleanups.add(f)
      return () => void cleanups.delete(f)
    }
    const connection = { subscriptions: new Map<string, () => void>() }
    const charge = chargeOf(client)
    ws.on('message', (data) => {
      if (!buckets.take(client)) {
        const id = refusedRequestId(data)
        if (id !== undefined) sendFrame(rpcErrorBody(RpcErrorCode.RateLimited, 'rate limited: slow down', id))
        return
      }
      void opts.dispatcher
        .handleText(data.toString(), { client, websocket: true, notify, onClose, connection, charge })
        .then((out) => {
          if (out !== undefined) sendFrame(out)
        })
        // A socket that closes between the check and the send must not become an unhandled rejection.
        .catch(() => ws.terminate())
    })
  })

  // ws re-emits the HTTP server's errors on itself, where nobody listens: a port in use would end
  // the process with an unhandled 'error' event instead of rejecting here.
  wss.on('error', () => undefined)
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => {
      clearInterval(heartbeat)
      wss.close()
      reject(e)
    })
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve())
  })
  const { port, address } = server.address() as AddressInfo
  const host = address.includes(':') ? `[${address}]` : address
  return {
    url: `http://${host}:${port}/`,
    wsUrl: `ws://${host}:${port}/ws`,
    port,
    close: async () => {
      clearInterval(heartbeat)
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      // Requests under way get a moment to be answered, then their connections are closed: a
      // client waiting on a send-and-wait (up to 120 s) must not hold up the node's stop.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeIdleConnections()
      const cut = setTimeout(() => server.closeAllConnections(), opts.closeGraceMs ?? 2_000)
      await closed
      clearTimeout(cut)
    },
  }
}
