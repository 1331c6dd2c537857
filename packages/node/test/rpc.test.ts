import { request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import WebSocket from 'ws'
import {
  clientKey,
  type Json,
  RpcDispatcher,
  RpcError,
  RpcErrorCode,
  type RpcMethod,
  type RpcServer,
  startRpcServer,
} from '../src/index.js'
import { KeyedBuckets } from '../src/rpc/buckets.js'

const methods: RpcMethod[] = [
  {
    name: 'math_add',
    summary: 'Adds two integers.',
    params: [
      { name: 'a', schema: { type: 'integer' }, required: true },
      { name: 'b', schema: { type: 'integer', minimum: 0 }, required: true },
    ],
    result: { name: 'sum', schema: { type: 'integer' } },
    handler: (p) => (p.a as number) + (p.b as number),
  },
  {
    name: 'chain_get',
    summary: 'Fails as a missing thing does.',
    params: [{ name: 'hash', schema: { type: 'string', pattern: '^0x[0-9a-f]{64}$' }, required: true }],
    result: { name: 'block', schema: {} },
    handler: (p) => {
      throw new RpcError(RpcErrorCode.NotFound, `no block ${p.hash}`, { hash: p.hash as string })
    },
  },
  {
    name: 'node_crash',
    summary: 'Throws an unexpected error.',
    params: [],
    result: { name: 'never', schema: {} },
    handler: () => {
      throw new Error('secret internal detail')
    },
  },
  {
    name: 'ticks_subscribe',
    summary: 'Sends three notifications.',
    params: [],
    result: { name: 'subscription', schema: { type: 'string' } },
    websocketOnly: true,
    handler: (_p, ctx) => {
      let n = 0
      const timer = setInterval(() => ctx.notify?.('ticks', { n: ++n }), 10)
      ctx.onClose?.(() => clearInterval(timer))
      setTimeout(() => clearInterval(timer), 35)
      return 'sub-1'
    },
  },
  {
    name: 'count_keys',
    summary: 'Takes any object and counts its keys.',
    params: [{ name: 'o', schema: { type: 'object' }, required: true }],
    result: { name: 'keys', schema: { type: 'integer' } },
    handler: (p) => Object.keys(p.o as object).length,
  },
  {
    name: 'filter_check',
    summary: 'Takes a filter object with one known field.',
    params: [
      {
        name: 'filter',
        schema: { type: 'object', properties: { score: { type: 'string' } }, additionalProperties: false },
        required: true,
      },
    ],
    result: { name: 'ok', schema: { type: 'boolean' } },
    handler: () => true,
  },
  {
    name: 'blob_get',
    summary: 'Answers 64 KiB.',
    params: [],
    result: { name: 'blob', schema: { type: 'string' } },
    handler: () => 'b'.repeat(64 * 1024),
  },
  {
    name: 'long_wait',
    summary: 'Answers after a minute, as a send-and-wait may.',
    params: [],
    result: { name: 'ok', schema: {} },
    handler: async () => {
      await new Promise((r) => setTimeout(r, 60_000).unref())
      return true
    },
  },
  {
    name: 'slow_answer',
    summary: 'Answers after 300 ms, as a send-and-wait does after its block.',
    params: [],
    result: { name: 'ok', schema: {} },
    handler: async () => {
      await new Promise((r) => setTimeout(r, 300))
      return true
    },
  },
  {
    name: 'slow_watch',
    summary: 'Registers a cleanup after a while, as a method still running when the socket closes does.',
    params: [],
    result: { name: 'ok', schema: {} },
    websocketOnly: true,
    handler: async (_p, ctx) => {
      await new Promise((r) => setTimeout(r, 100))
      ctx.onClose?.(() => {
        cleanedUp++
      })
      return true
    },
  },
  {
    name: 'wait_for_hangup',
    summary: 'Waits until its client goes away (HTTP too), or answers after 5 s.',
    params: [],
    result: { name: 'ok', schema: {} },
    handler: async (_p, ctx) => {
      let forget: (() => void) | undefined
      const gone = await new Promise<boolean>((r) => {
        const timer = setTimeout(() => r(false), 5_000)
        forget = ctx.onClose?.(() => {
          clearTimeout(timer)
          r(true)
        })
      })
      forget?.()
      if (gone) hungUp++
      return gone
    },
  },
  {
    name: 'watch_quick',
    summary: 'Registers a cleanup and answers at once: the cleanup must not run when the answer is written.',
    params: [],
    result: { name: 'ok', schema: {} },
    handler: (_p, ctx) => {
      ctx.onClose?.(() => {
        cleanedUp++
      })
      return true
    },
  },
  {
    name: 'watch_then_forget',
    summary: 'Registers two cleanups and takes the first back, as a subscription the client ended does.',
    params: [],
    result: { name: 'ok', schema: {} },
    websocketOnly: true,
    handler: (_p, ctx) => {
      const forget = ctx.onClose?.(() => {
        forgottenRan++
      })
      ctx.onClose?.(() => {
        cleanedUp++
      })
      forget?.()
      return true
    },
  },
]

let cleanedUp = 0
let forgottenRan = 0
let hungUp = 0
let server: RpcServer | undefined
let clock = 0
/** Raw sockets of {@link trickle}, destroyed after each test: an open one would hold the server's close. */
const rawSockets: Socket[] = []

afterEach(async () => {
  for (const s of rawSockets.splice(0)) s.destroy()
  await server?.close()
  server = undefined
})

async function start(extra: Partial<Parameters<typeof startRpcServer>[0]> = {}): Promise<RpcServer> {
  const errors: unknown[] = []
  server = await startRpcServer({
    dispatcher: new RpcDispatcher(methods, { title: 'test', version: '1', maxBatch: 3, onError: (e) => errors.push(e) }),
    metrics: () => 'loopchain_height 7\n',
    health: () => ({ ok: true, height: 7 }),
    ...extra,
  })
  return server
}

async function post(body: string): Promise<{ status: number; json: Json | undefined }> {
  const res = await fetch(server?.url ?? '', { method: 'POST', body, headers: { 'content-type': 'application/json' } })
  const text = await res.text()
  return { status: res.status, json: text ? (JSON.parse(text) as Json) : undefined }
}

const call = (method: string, params?: Json, id: Json = 1) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) })

/**
 * A raw HTTP request to the server from `from` that sends its headers (announcing `body`) and only
 * the first `sent` bytes of its body: a client that trickles. `rest()` sends the remainder; `text()`
 * is what came back.
 */
async function trickle(
  body: string,
  sent: number,
  from = '127.0.0.1',
): Promise<{ socket: Socket; rest(): void; text(): string; ended: Promise<void> }> {
  const url = new URL(server?.url ?? '')
  // Another loopback address is another client (the limits count per address).
  const socket = connect({ port: Number(url.port), host: url.hostname, localAddress: from })
  rawSockets.push(socket)
  await new Promise((r) => socket.once('connect', r))
  let text = ''
  socket.on('data', (d) => {
    text += d.toString()
  })
  const ended = new Promise<void>((r) => socket.once('close', () => r()))
  socket.on('error', () => undefined)
  socket.write(
    `POST / HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`,
  )
  socket.write(body.slice(0, sent))
  return { socket, rest: () => void socket.write(body.slice(sent)), text: () => text, ended }
}

/** A raw TCP connection to the server from `from`; `closed` says whether the server closed it within 500 ms. */
async function rawConnection(from: string): Promise<{ socket: Socket; closed: Promise<boolean> }> {
  const url = new URL(server?.url ?? '')
  const socket = connect({ port: Number(url.port), host: url.hostname, localAddress: from })
  rawSockets.push(socket)
  socket.on('error', () => undefined)
  const closed = new Promise<boolean>((r) => {
    socket.once('close', () => r(true))
    setTimeout(() => r(false), 500)
  })
  await new Promise((r) => socket.once('connect', r))
  return { socket, closed }
}

describe('connections', () => {
  it("closes a connection past its client's limit or the server's at once; the others go on, and a place freed is taken again", async () => {
    const warned: string[] = []
    const logger = { debug() {}, info() {}, error() {}, warn: (m: string) => void warned.push(m) }
    await start({ maxConnectionsPerClient: 3, maxConnections: 5, logger })
    const url = new URL(server?.url ?? '')
    const open = rawConnection
    const held = [await open('127.0.0.1'), await open('127.0.0.1'), await open('127.0.0.1')]
    expect(await (await open('127.0.0.1')).closed).toBe(true)
    // Another client has places of its own, up to the server's five.
    const others = [await open('127.0.0.2'), await open('127.0.0.2')]
    expect(await (await open('127.0.0.3')).closed).toBe(true)
    expect(await Promise.all([...held, ...others].map((c) => c.closed))).toEqual([false, false, false, false, false])
    // A connection held still serves.
    const first = held[0]?.socket as Socket
    let answer = ''
    first.on('data', (d) => {
      answer += d.toString()
    })
    first.write(`GET /health HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`)
    await vi.waitFor(() => expect(answer).toMatch(/^HTTP\/1\.1 200/), { timeout: 2_000, interval: 20 })
    // One closed: its place is free again.
    held[1]?.socket.destroy()
    await new Promise((r) => setTimeout(r, 100))
    expect(await (await open('127.0.0.1')).closed).toBe(false)
    // Said once, not per connection refused.
    expect(warned.filter((m) => m.startsWith('rpc: connections refused'))).toHaveLength(1)
  })

  it('left unset, the connection cap per client makes room for a raised WebSocket cap', async () => {
    await start({ maxWebSocketsPerClient: 80 })
    const held = await Promise.all(Array.from({ length: 90 }, () => rawConnection('127.0.0.4')))
    // 80 WebSockets and 16 more: 90 are held, none closed.
    expect((await Promise.all(held.map((c) => c.closed))).filter(Boolean)).toHaveLength(0)
  })
})

describe('whom the per-client limits count', () => {
  it('an IPv4 address (also written as IPv6), or an IPv6 /64 whatever its last 64 bits and spelling', () => {
    expect(clientKey('10.1.2.3')).toBe('10.1.2.3')
    expect(clientKey('::ffff:10.1.2.3')).toBe('10.1.2.3')
    expect(clientKey('::ffff:a01:203')).toBe('10.1.2.3')
    expect(clientKey('::FFFF:0102:0304')).toBe('1.2.3.4')
    const site = '2001:db8:0:1::/64'
    for (const a of [
      '2001:db8:0:1::1',
      '2001:db8:0:1:ffff:1:2:3',
      '2001:0DB8:0000:0001:0:0:0:9',
      '2001:db8::1:0:0:0:7',
      '2001:db8:0:1::5%eth0',
    ])
      expect(clientKey(a)).toBe(site)
    expect(clientKey('2001:db8:0:2::1')).not.toBe(site)
    expect(clientKey('::1')).toBe('0:0:0:0::/64')
    expect(clientKey(undefined)).toBe('unknown')
  })

  it('a full table of buckets forgets the least recently used clients, not everyone: a busy client stays limited', () => {
    let now = 0
    const b = new KeyedBuckets(1, 2, () => now, 10)
    expect(b.take('busy', 2)).toBe(true)
    expect(b.take('busy')).toBe(false)
    // Nine others fill the table; the busy client is used again meanwhile, so it is not the oldest.
    for (let i = 0; i < 9; i++) {
      b.level(`other ${i}`)
      if (i === 4) expect(b.take('busy')).toBe(false)
    }
    b.level('one more') // past the table's size: the least recently used ("other 0") goes
    expect(b.take('busy')).toBe(false)
    now += 1000
    expect(b.take('busy')).toBe(true) // refilled by time only
  })
})

describe('JSON-RPC over HTTP', () => {
  it('answers calls by name and by position, batches, and stays silent for notifications', async () => {
    await start()
    expect((await post(call('math_add', { a: 2, b: 3 }))).json).toEqual({ jsonrpc: '2.0', id: 1, result: 5 })
    expect((await post(call('math_add', [4, 5], 'x'))).json).toEqual({ jsonrpc: '2.0', id: 'x', result: 9 })
    const batch = await post(
      `[${call('math_add', [1, 1], 1)},${JSON.stringify({ jsonrpc: '2.0', method: 'math_add', params: [1, 2] })},${call('nope', [], 3)}]`,
    )
    expect(batch.json).toEqual([
      { jsonrpc: '2.0', id: 1, result: 2 },
      { jsonrpc: '2.0', id: 3, error: { code: RpcErrorCode.MethodNotFound, message: 'Method not found: nope' } },
    ])
    expect((await post(JSON.stringify({ jsonrpc: '2.0', method: 'math_add', params: [1, 2] }))).status).toBe(204)
  })

  it('maps every kind of bad request to its JSON-RPC error code', async () => {
    await start()
    const code = async (body: string) => ((await post(body)).json as { error?: { code: number } }).error?.code
    expect(await code('{not json')).toBe(RpcErrorCode.ParseError)
    expect(await code('[]')).toBe(RpcErrorCode.InvalidRequest)
    expect(await code('{"jsonrpc":"1.0","id":1,"method":"math_add"}')).toBe(RpcErrorCode.InvalidRequest)
    expect(await code('{"jsonrpc":"2.0","id":{},"method":"math_add"}')).toBe(RpcErrorCode.InvalidRequest)
    expect(await code(call('math_add', { a: 1 }))).toBe(RpcErrorCode.InvalidParams)
    expect(await code(call('math_add', { a: 1, b: -1 }))).toBe(RpcErrorCode.InvalidParams)
    expect(await code(call('math_add', { a: '1', b: 1 }))).toBe(RpcErrorCode.InvalidParams)
    expect(await code(call('math_add', { a: 1, b: 1, c: 1 }))).toBe(RpcErrorCode.InvalidParams)
    expect(await code(call('chain_get', { hash: '0x12' }))).toBe(RpcErrorCode.InvalidParams)
    // Inherited names are not known fields; an integer past 2^53 - 1 is refused as such.
    expect((await post(call('filter_check', { filter: { score: 'x' } }))).json).toEqual({ jsonrpc: '2.0', id: 1, result: true })
    for (const name of ['toString', 'constructor', 'hasOwnProperty'])
      expect(await code(call('filter_check', { filter: { [name]: 1 } }))).toBe(RpcErrorCode.InvalidParams)
    expect(await code('{"jsonrpc":"2.0","id":1,"method":"filter_check","params":{"filter":{"__proto__":1}}}')).toBe(
      RpcErrorCode.InvalidParams,
    )
    // Deep nesting is refused before it is parsed; brackets inside strings do not count.
    const deep = (await post(`${'['.repeat(5000)}${']'.repeat(5000)}`)).json as { error?: { code: number; message: string } }
    expect(deep.error).toMatchObject({ code: RpcErrorCode.InvalidRequest, message: expect.stringContaining('nested deeper than') })
    // However short: 65 levels fit in 140 characters (a short body once went unscanned up to 8 KiB, which nests 4,000 deep).
    const shortDeep = `{"jsonrpc":"2.0","id":1,"method":"filter_check","params":{"filter":${'['.repeat(63)}${']'.repeat(63)}}}`
    expect(shortDeep.length).toBeLessThan(200)
    expect((await post(shortDeep)).json).toMatchObject({
      error: { code: RpcErrorCode.InvalidRequest, message: expect.stringContaining('nested deeper than 64') },
    })
    expect(await code(call('chain_get', { hash: '['.repeat(10_000) }))).toBe(RpcErrorCode.InvalidParams)
    // An escaped quote does not end a string; an escaped backslash before a quote does not keep it open.
    expect(await code(call('chain_get', { hash: `"${'['.repeat(10_000)}` }))).toBe(RpcErrorCode.InvalidParams)
    expect(await code(call('chain_get', { hash: `\\"${'['.repeat(10_000)}` }))).toBe(RpcErrorCode.InvalidParams)
    const afterEscapes = `{"jsonrpc":"2.0","id":1,"method":"chain_get","params":{"hash":"\\\\","x":${'['.repeat(100)}${']'.repeat(100)}}}`
    expect((await post(afterEscapes)).json).toMatchObject({
      error: { code: RpcErrorCode.InvalidRequest, message: expect.stringContaining('nested deeper than 64') },
    })
    const huge = (await post(call('math_add', { a: 2 ** 60, b: 1 }))).json as { error?: { code: number; message: string } }
    expect(huge.error?.code).toBe(RpcErrorCode.InvalidParams)
    expect(huge.error?.message).toContain('beyond the largest exact integer')
    expect(await code(call('ticks_subscribe', []))).toBe(RpcErrorCode.MethodNotFound)
    expect(
      await code(`[${call('math_add', [1, 1])},${call('math_add', [1, 1])},${call('math_add', [1, 1])},${call('math_add', [1, 1])}]`),
    ).toBe(RpcErrorCode.TooLarge)
  })

  it('answers a response past the size limit, alone or with its batch, with TooLarge and its id', async () => {
    const CTX = { client: 'test' }
    // Over HTTP, through the real server.
    await start({ dispatcher: new RpcDispatcher(methods, { title: 'test', version: '1', maxBatch: 3, maxResponseChars: 150_000 }) })
    const one = (await post(call('blob_get', [], 7))).json as { result: string }
    expect(one.result).toHaveLength(64 * 1024)
    // Two blobs fit, the third would pass 150,000 characters: its reply is the error, the others stand.
    const reply = await post(`[${[1, 2, 3].map((id) => call('blob_get', [], id)).join(',')}]`)
    expect(reply.status).toBe(200)
    const batch = reply.json as { id: number; result?: string; error?: { code: number; message: string } }[]
    expect(batch.map((r) => r.id)).toEqual([1, 2, 3])
    expect(batch.filter((r) => r.result?.length === 64 * 1024)).toHaveLength(2)
    expect(batch.filter((r) => r.error?.code === RpcErrorCode.TooLarge)).toEqual([
      {
        jsonrpc: '2.0',
        id: 3,
        error: { code: RpcErrorCode.TooLarge, message: expect.stringMatching(/would pass 150000 characters with the batch/) },
      },
    ])
    const small = new RpcDispatcher(methods, { title: 'test', version: '1', maxResponseChars: 50_000 })
    expect(JSON.parse((await small.handleText(call('blob_get', [], 'b'), CTX)) as string)).toEqual({
      jsonrpc: '2.0',
      id: 'b',
      error: { code: RpcErrorCode.TooLarge, message: expect.stringMatching(/^the response would pass 50000 characters: ask for less/) },
    })
    // Small replies are untouched by the limit.
    expect(JSON.parse((await small.handleText(`[${call('math_add', [1, 2], 1)}]`, CTX)) as string)).toEqual([
      { jsonrpc: '2.0', id: 1, result: 3 },
    ])
  })

  it('passes method errors with their code and data, and hides internal errors', async () => {
    await start()
    const h = `0x${'ab'.repeat(32)}`
    expect((await post(call('chain_get', { hash: h }))).json).toEqual({
      jsonrpc: '2.0',
      id: 1,
      error: { code: RpcErrorCode.NotFound, message: `no block ${h}`, data: { hash: h } },
    })
    const crash = (await post(call('node_crash'))).json as { error: { code: number; message: string } }
    expect(crash.error).toEqual({ code: RpcErrorCode.InternalError, message: 'Internal error' })
  })

  it('refuses oversized bodies and rate-limits a client, then lets it back in', async () => {
    clock = 0
    await start({ maxBodyBytes: 1000, rateLimit: { perSecond: 1, burst: 2 }, now: () => clock })
    const big = await post(call('math_add', { a: 1, b: 1, pad: 'x'.repeat(2000) } as Json))
    expect(big.status).toBe(413)
    expect((big.json as { error: { code: number } }).error.code).toBe(RpcErrorCode.TooLarge)
    expect((await post(call('math_add', [1, 1]))).status).toBe(200)
    const limited = await post(call('math_add', [1, 1]))
    expect(limited.status).toBe(429)
    expect((limited.json as { error: { code: number } }).error.code).toBe(RpcErrorCode.RateLimited)
    clock += 1500
    expect((await post(call('math_add', [1, 1]))).status).toBe(200)
  })

  it('a batch pays the rate limit for each of its calls, not once', async () => {
    clock = 0
    await start({ rateLimit: { perSecond: 1, burst: 3 }, now: () => clock })
    const three = `[${call('math_add', [1, 1], 1)},${call('math_add', [1, 2], 2)},${call('math_add', [1, 3], 3)}]`
    expect(((await post(three)).json as unknown[]).length).toBe(3)
    expect((await post(call('math_add', [1, 1]))).status).toBe(429)
    clock += 2000 // two tokens back: the batch's first call passes the door, its other two do not fit
    const refused = (await post(three)).json as { error: { code: number; message: string } }
    expect(refused.error.code).toBe(RpcErrorCode.RateLimited)
    expect(refused.error.message).toContain('batch of 3')
  })

  it('a body pays the rate limit per 256 values it holds, and one of more than 65,536 is refused unread', async () => {
    clock = 0
    await start({ rateLimit: { perSecond: 1, burst: 50 }, now: () => clock })
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))
    // ~10,000 values: 39 calls more than its one.
    const wide = call('count_keys', { o: keys(10_000) })
    expect((await post(wide)).json).toMatchObject({ result: 10_000 })
    const again = (await post(wide)).json as { error: { code: number; message: string } }
    expect(again.error.code).toBe(RpcErrorCode.RateLimited)
    expect(again.error.message).toMatch(/a body of 1000\d values counts as 39 more calls/)
    // Ten tokens back: a plain call passes, the wide body still does not.
    clock += 10_000
    expect((await post(call('math_add', [1, 1]))).json).toMatchObject({ result: 2 })
    expect(((await post(wide)).json as { error: { code: number } }).error.code).toBe(RpcErrorCode.RateLimited)
    clock += 100_000
    const tooWide = (await post(call('count_keys', { o: keys(70_000) }))).json as { error: { code: number; message: string } }
    expect(tooWide.error).toMatchObject({ code: RpcErrorCode.TooLarge, message: expect.stringContaining('more than 65536') })
    // Refused before it was charged: the bucket is still full.
    expect((await post(wide)).json).toMatchObject({ result: 10_000 })
    // Values are counted outside strings only: a long string is one.
    expect((await post(call('count_keys', { o: { s: ',{['.repeat(100_000) } }))).json).toMatchObject({ result: 1 })
    // A body that counts as more calls than the burst holds (78 more here, the burst 50) takes
    // what a full bucket holds, instead of being refused for ever; nothing is left behind it.
    clock += 100_000
    expect((await post(call('count_keys', { o: keys(20_000) }))).json).toMatchObject({ result: 20_000 })
    expect(((await post(call('math_add', [1, 1]))).json as { error: { code: number } }).error.code).toBe(RpcErrorCode.RateLimited)
  })

  it('answers a body that grows past the limit while it streams with 413, instead of resetting the connection', async () => {
    await start({ maxBodyBytes: 1000 })
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        await new Promise((r) => setTimeout(r, 5))
        c.enqueue(new TextEncoder().encode(' '.repeat(400)))
      },
    })
    // No content-length: the size is only known as it arrives (chunked).
    const res = await fetch(server?.url ?? '', { method: 'POST', body, duplex: 'half' } as RequestInit)
    expect(res.status).toBe(413)
    expect(((await res.json()) as { error: { code: number } }).error.code).toBe(RpcErrorCode.TooLarge)
    expect((await post(call('math_add', [1, 1]))).status).toBe(200)
  })

  it('holds a client to its requests arriving at once: bodies still trickling in count, answers being awaited do not', async () => {
    await start({ maxRequestsInProgressPerClient: 2 })
    // Three at once, each answered after 300 ms: read whole, they hold no place while they wait.
    const waits = await Promise.all([1, 2, 3].map((id) => post(call('slow_answer', [], id))))
    expect(waits.map((w) => w.status)).toEqual([200, 200, 200])
    const body = call('math_add', [2, 3], 'slow')
    const slow = [await trickle(body, 5), await trickle(body, 5)]
    await new Promise((r) => setTimeout(r, 100))
    const refused = await post(call('math_add', [1, 1]))
    expect(refused.status).toBe(429)
    expect(refused.json).toMatchObject({
      error: { code: RpcErrorCode.RateLimited, message: expect.stringContaining('arriving already') },
    })
    // One finishes and is answered: the client has a place again.
    slow[0]?.rest()
    await vi.waitFor(() => expect(slow[0]?.text()).toContain('"result":5'))
    expect((await post(call('math_add', [1, 1]))).json).toEqual({ jsonrpc: '2.0', id: 1, result: 2 })
    for (const t of slow) t.socket.destroy()
  }, 15_000)

  it('refuses a request, with 503, while the request bytes held for its client or for all clients are past their budget', async () => {
    await start({ maxBodyBytesInProgressPerClient: 1000, maxBodyBytesInProgress: 1500, maxBodyBytes: 4000 })
    const body = (n: number, id: number) => `${' '.repeat(n)}${call('math_add', [1, 1], id)}`
    // Client 127.0.0.2 holds 900 bytes of a body still arriving.
    const big = await trickle(body(1500, 1), 900, '127.0.0.2')
    await new Promise((r) => setTimeout(r, 100))
    // Another client is served: the first holds less than the node's budget.
    expect((await post(body(200, 2))).status).toBe(200)
    // The first client's next request passes its own budget (900 + 200 > 1000).
    const second = await trickle(body(200, 3), 10_000, '127.0.0.2')
    await second.ended
    expect(second.text()).toContain('503')
    expect(second.text()).toContain('this client is sending too many request bytes at once')
    // Past the node's budget (900 + 700 > 1500), another client is refused too.
    const other = await post(body(700, 4))
    expect(other.status).toBe(503)
    expect(other.json).toMatchObject({
      error: { code: RpcErrorCode.RateLimited, message: expect.stringContaining('too many requests at once') },
    })
    big.socket.destroy()
    await big.ended
    await vi.waitFor(async () => expect((await post(body(700, 5))).status).toBe(200))
  }, 15_000)

  it('cuts off a request whose body does not arrive in time with 408; that and a client hanging up are logged at debug, not as errors', async () => {
    const logged: { level: string; msg: string }[] = []
    const at = (level: string) => (msg: string) => void logged.push({ level, msg })
    await start({ requestTimeoutMs: 400, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } })
    const stuck = await trickle(call('math_add', [1, 1]), 5)
    await stuck.ended
    expect(stuck.text()).toContain('408')
    expect((await post(call('math_add', [1, 1]))).status).toBe(200)
    // A client that hangs up halfway through its body.
    const gone = await trickle(call('math_add', [1, 1]), 5)
    gone.socket.destroy()
    await vi.waitFor(() => expect(logged.filter((l) => l.msg === 'rpc: a request ended before it was read')).toHaveLength(2))
    expect(logged.filter((l) => l.level !== 'debug')).toEqual([])
  }, 15_000)

  it('closing lets a request under way be answered for a moment, then closes its connection: a long wait does not hold the stop', async () => {
    const closing = await start({ closeGraceMs: 1_000 })
    const waiting = fetch(closing.url, { method: 'POST', body: call('long_wait', []) }).then(
      (r) => r.status,
      () => 'cut',
    )
    const quick = post(call('slow_answer', []))
    await new Promise((r) => setTimeout(r, 100))
    const t0 = performance.now()
    await closing.close()
    const took = performance.now() - t0
    server = undefined
    expect(took).toBeGreaterThanOrEqual(500)
    expect(took).toBeLessThan(5_000)
    // Answered within the moment: the one that takes 300 ms. Cut: the one that would take a minute.
    expect((await quick).status).toBe(200)
    expect(await waiting).toBe('cut')
  })

  it('serves health, metrics and an OpenRPC document that lists every method with its parameters', async () => {
    await start()
    const health = await fetch(`${server?.url}health`)
    expect(health.status).toBe(200)
    expect(await health.json()).toEqual({ ok: true, height: 7 })
    expect(await (await fetch(`${server?.url}metrics`)).text()).toContain('loopchain_height 7')
    const doc = (await post(call('rpc.discover'))).json as { result: { methods: { name: string; params: { name: string }[] }[] } }
    const add = doc.result.methods.find((m) => m.name === 'math_add')
    expect(add?.params.map((p) => p.name)).toEqual(['a', 'b'])
    expect(doc.result.methods.map((m) => m.name)).toContain('rpc.discover')
  })
})

describe('JSON-RPC over WebSocket', () => {
  it('answers requests and delivers subscription notifications', async () => {
    await start()
    const ws = new WebSocket(server?.wsUrl ?? '')
    await new Promise((r) => ws.once('open', r))
    const got: Json[] = []
    ws.on('message', (d) => got.push(JSON.parse(d.toString()) as Json))
    ws.send(call('math_add', [20, 22], 9))
    ws.send(call('ticks_subscribe', [], 10))
    await new Promise((r) => setTimeout(r, 150))
    ws.close()
    expect(got).toContainEqual({ jsonrpc: '2.0', id: 9, result: 42 })
    expect(got).toContainEqual({ jsonrpc: '2.0', id: 10, result: 'sub-1' })
    expect(got.filter((m) => (m as { method?: string }).method === 'ticks').length).toBeGreaterThanOrEqual(2)
  })

  it('a request refused by the rate limit is answered with its own id, a notification not at all', async () => {
    clock = 0
    // Two tokens: one the opening of the connection takes, one for the first request.
    await start({ rateLimit: { perSecond: 1, burst: 2 }, now: () => clock })
    const ws = new WebSocket(server?.wsUrl ?? '')
    await new Promise((r) => ws.once('open', r))
    const got: { id?: unknown; result?: unknown; error?: { code: number } }[] = []
    ws.on('message', (d) => got.push(JSON.parse(d.toString())))
    ws.send(call('math_add', [1, 1], 'first'))
    ws.send(call('math_add', [1, 2], 'second'))
    ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'math_add', params: [1, 3] })) // a notification
    ws.send(`[${call('math_add', [1, 4], 4)}]`)
    await vi.waitFor(() => expect(got).toHaveLength(3))
    await new Promise((r) => setTimeout(r, 100))
    ws.close()
    const limited = (id: unknown) => ({ jsonrpc: '2.0', id, error: { code: RpcErrorCode.RateLimited, message: 'rate limited: slow down' } })
    expect(got).toHaveLength(3)
    for (const m of [limited('second'), limited(null), { jsonrpc: '2.0', id: 'first', result: 2 }]) expect(got).toContainEqual(m)
  })

  it('a frame that breaks the protocol closes that socket and nothing else', async () => {
    await start({ maxBodyBytes: 1000 })
    for (const bad of [
      (ws: WebSocket) => ws.send(Buffer.from([0xff, 0xfe]), { binary: false }), // not UTF-8
      (ws: WebSocket) => ws.send('x'.repeat(5000)), // above maxPayload
    ]) {
      const ws = new WebSocket(server?.wsUrl ?? '')
      await new Promise((r) => ws.once('open', r))
      ws.on('error', () => undefined)
      const closed = new Promise((r) => ws.once('close', r))
      bad(ws)
      await closed
    }
    // The server (and this test's process, which hosts it) lives on, over both transports.
    expect((await post(call('math_add', [2, 2]))).json).toEqual({ jsonrpc: '2.0', id: 1, result: 4 })
    const ws = new WebSocket(server?.wsUrl ?? '')
    await new Promise((r) => ws.once('open', r))
    const answer = new Promise((r) => ws.once('message', (d) => r(JSON.parse(d.toString()))))
    ws.send(call('math_add', [3, 4], 5))
    expect(await answer).toEqual({ jsonrpc: '2.0', id: 5, result: 7 })
    ws.close()
  })

  it('a client that sends requests but stops reading the replies is cut off once too much waits unsent for it', async () => {
    const logged: string[] = []
    const logger = { debug: (msg: string) => logged.push(msg), info: () => undefined, warn: () => undefined, error: () => undefined }
    await start({ maxBufferedBytes: 1024 * 1024, rateLimit: { perSecond: 10_000, burst: 10_000 }, logger })
    const ws = new WebSocket(server?.wsUrl ?? '')
    await new Promise((r) => ws.once('open', r))
    const closed = new Promise((r) => ws.once('close', r))
    ws.pause() // reads nothing from here on
    // 50 MiB of replies: far more than the sockets' kernel buffers hold, so the rest waits in the server.
    for (let i = 0; i < 800; i++) ws.send(call('blob_get', [], i))
    const until = Date.now() + 10_000
    while (!logged.includes('rpc: websocket client too slow, closed') && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    expect(logged).toContain('rpc: websocket client too slow, closed')
    ws.resume()
    await closed
    // Others are still served.
    expect((await post(call('math_add', [1, 2]))).json).toEqual({ jsonrpc: '2.0', id: 1, result: 3 })
  })

  it('a client that does not answer pings is cut off; one that does stays', async () => {
    await start({ heartbeatMs: 100 })
    const silent = new WebSocket(server?.wsUrl ?? '', { autoPong: false })
    const live = new WebSocket(server?.wsUrl ?? '')
    await Promise.all([silent, live].map((ws) => new Promise((r) => ws.once('open', r))))
    const silentClosed = new Promise((r) => silent.once('close', r))
    let liveClosed = false
    live.once('close', () => {
      liveClosed = true
    })
    await silentClosed
    await new Promise((r) => setTimeout(r, 400))
    expect(liveClosed).toBe(false)
    const answer = new Promise((r) => live.once('message', (d) => r(JSON.parse(d.toString()))))
    live.send(call('math_add', [1, 1], 3))
    expect(await answer).toEqual({ jsonrpc: '2.0', id: 3, result: 2 })
    live.close()
  })

  it('a pong that does not echo the ping does not count: a client that reads nothing cannot stay by sending pongs unasked', async () => {
    await start({ heartbeatMs: 100 })
    const reader = new WebSocket(server?.wsUrl ?? '', { autoPong: false })
    await new Promise((r) => reader.once('open', r))
    const closed = new Promise((r) => reader.once('close', r))
    const spoof = setInterval(() => reader.pong(Buffer.from('still here')), 20)
    try {
      await closed
    } finally {
      clearInterval(spoof)
    }
  }, 15_000)

  it('holds a client to its number of WebSocket connections (16 by default), and frees a place when one closes', async () => {
    await start({ maxWebSocketsPerClient: 2 })
    const open = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(server?.wsUrl ?? '')
        ws.once('open', () => resolve(ws))
        ws.once('error', reject)
      })
    const [a, b] = [await open(), await open()]
    await expect(open()).rejects.toThrow(/429/)
    const gone = new Promise((r) => a.once('close', r))
    a.close()
    await gone
    await vi.waitFor(async () => (await open()).close())
    b.close()
  }, 15_000)

  it('cuts off a client whose connections together have too much waiting unsent, though each is under its own limit', async () => {
    const logged: { msg: string; fields?: Record<string, unknown> }[] = []
    const logger = {
      debug: (msg: string, fields?: Record<string, unknown>) => logged.push({ msg, ...(fields ? { fields } : {}) }),
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
    }
    await start({
      maxBufferedBytes: 1024 * 1024 * 1024,
      maxBufferedBytesPerClient: 4 * 1024 * 1024,
      rateLimit: { perSecond: 10_000, burst: 10_000 },
      logger,
    })
    const sockets = [new WebSocket(server?.wsUrl ?? ''), new WebSocket(server?.wsUrl ?? '')]
    await Promise.all(sockets.map((ws) => new Promise((r) => ws.once('open', r))))
    for (const ws of sockets) ws.pause() // reads nothing from here on
    for (let i = 0; i < 400; i++) for (const ws of sockets) ws.send(call('blob_get', [], i))
    await vi.waitFor(() => expect(logged.find((l) => l.msg === 'rpc: websocket client too slow, closed')).toBeDefined(), {
      timeout: 10_000,
    })
    const cut = logged.find((l) => l.msg === 'rpc: websocket client too slow, closed')?.fields as {
      buffered: number
      bufferedOfClient: number
    }
    expect(cut.bufferedOfClient).toBeGreaterThan(4 * 1024 * 1024)
    expect(cut.buffered).toBeLessThan(1024 * 1024 * 1024)
    for (const ws of sockets) ws.terminate()
  }, 15_000)

  it('over HTTP, a client that hangs up before its answer ends what waits on it; an answer written runs no cleanup', async () => {
    const s = await start()
    const before = hungUp
    const req = httpRequest(s.url, { method: 'POST', headers: { 'content-type': 'application/json' } })
    req.on('error', () => {})
    req.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'wait_for_hangup' }))
    await new Promise((r) => setTimeout(r, 200))
    req.destroy()
    await vi.waitFor(() => expect(hungUp).toBe(before + 1), { timeout: 2_000, interval: 20 })
    const cleaned = cleanedUp
    expect((await post(call('watch_quick'))).json).toMatchObject({ result: true })
    await new Promise((r) => setTimeout(r, 100))
    expect(cleanedUp).toBe(cleaned)
  })

  it('a cleanup registered after the socket closed runs at once (a batch still running then)', async () => {
    await start()
    cleanedUp = 0
    const ws = new WebSocket(server?.wsUrl ?? '')
    await new Promise((r) => ws.once('open', r))
    ws.send(`[${call('slow_watch', [], 1)},${call('slow_watch', [], 2)}]`)
    await new Promise((r) => setTimeout(r, 20))
    ws.close()
    await new Promise((r) => setTimeout(r, 400))
    expect(cleanedUp).toBe(2)
  })

  it('a cleanup taken back before the socket closes does not run then; the others do', async () => {
    await start()
    cleanedUp = 0
    forgottenRan = 0
    const ws = new WebSocket(server?.wsUrl ?? '')
    await new Promise((r) => ws.once('open', r))
    const answered = new Promise((r) => ws.once('message', r))
    ws.send(call('watch_then_forget', [], 1))
    await answered
    ws.close()
    await vi.waitFor(() => expect(cleanedUp).toBe(1))
    expect(forgottenRan).toBe(0)
  })
})
