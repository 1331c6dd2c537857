/**
 * JSON-RPC 2.0 (https://www.jsonrpc.org/specification) for the node's HTTP and WebSocket
 * endpoints: request parsing, batches, notifications, parameter checking against each method's
 * declared schema, the standard error codes and loopchain's own, and an OpenRPC document built
 * from the same declarations (served by `rpc.discover`), so the documentation cannot drift from
 * what the server checks.
 */
import { LoopchainError } from '@loopchain/core'

/** JSON values as `JSON.parse` yields them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** Error codes: the specification's, then loopchain's in the server-error range. */
export const RpcErrorCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** The transaction was refused (mempool or stateless checks); `data.code` says why. */
  TransactionRejected: -32000,
  /** A block, transaction or SCORE that does not exist (yet). */
  NotFound: -32001,
  /** A wait (send-and-wait, transaction result) ended before the transaction committed. */
  Timeout: -32002,
  /** The request or the batch is larger than allowed. */
  TooLarge: -32003,
  /** Too many requests from this client; retry later. */
  RateLimited: -32005,
  /** A SCORE query failed; `data.code` carries the SCORE failure code. */
  ScoreFailed: -32010,
} as const

/** An error a method returns to its caller. */
export class RpcError extends LoopchainError<'RPC_ERROR'> {
  constructor(
    readonly rpcCode: number,
    message: string,
    readonly data?: Json,
  ) {
    super('RPC_ERROR', message, { penalize: false })
  }
}

/** A schema for parameters and results: the subset of JSON Schema the server checks and OpenRPC shows. */
export type Schema =
  | { type: 'string'; pattern?: string; maxLength?: number; description?: string }
  | { type: 'integer'; minimum?: number; maximum?: number; description?: string }
  | { type: 'boolean'; description?: string }
  | { type: 'object'; properties?: Record<string, Schema>; required?: string[]; additionalProperties?: boolean; description?: string }
  | { type: 'array'; items?: Schema; maxItems?: number; description?: string }
  | { description?: string }

/** One parameter of a method (by name; positional calls map in order). */
export interface RpcParam {
  readonly name: string
  readonly schema: Schema
  readonly required?: boolean
  readonly description?: string
}

/** What a method's handler knows about its call. */
export interface RpcContext {
  /** The client's address, for logs and limits. */
  readonly client: string
  /** Set on WebSocket connections: lets a method push notifications (subscriptions). */
  readonly notify?: (method: string, params: Json) => void
  /**
   * Registers cleanup to run when the connection closes (WebSocket only); runs it at once if it
   * has closed. Returns what unregisters it (for state the client ends before it goes).
   */
  readonly onClose?: (f: () => void) => () => void
  /**
   * What this connection holds (WebSocket only): its subscriptions by id, each with what cancels
   * it (methods that keep state per connection register it here).
   */
  readonly connection?: { readonly subscriptions: Map<string, () => void> }
  /**
   * Charges the rate limit for `calls` more calls; false when the client has no budget left. The
   * server charged one for the message; a batch pays for the rest before any of it runs.
   */
  readonly charge?: (calls: number) => boolean
}

/** A method the server offers. */
export interface RpcMethod {
  readonly name: string
  readonly summary: string
  readonly params: readonly RpcParam[]
  readonly result: { readonly name: string; readonly schema: Schema }
  /** Only over WebSocket (subscriptions). */
  readonly websocketOnly?: boolean
  handler(params: Record<string, Json>, ctx: RpcContext): Promise<Json> | Json
}

interface Response {
  jsonrpc: '2.0'
  id: Json
  result?: Json
  error?: { code: number; message: string; data?: Json }
}

function error(id: Json, code: number, message: string, data?: Json): Response {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } }
}

function typeName(v: Json): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v
}

/** Checks `v` against `s`; returns what is wrong, naming the path, or undefined. */
export function checkSchema(v: Json, s: Schema, path: string): string | undefined {
  if (!('type' in s)) return undefined
  switch (s.type) {
    case 'string':
      if (typeof v !== 'string') return `${path} must be a string, not ${typeName(v)}`
      if (s.maxLength !== undefined && v.length > s.maxLength) return `${path} is longer than ${s.maxLength}`
      if (s.pattern !== undefined && !new RegExp(s.pattern).test(v)) return `${path} does not match ${s.pattern}`
      return undefined
    case 'integer':
      if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v))
        return `${path} is beyond the largest exact integer (2^53 - 1)`
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) return `${path} must be an integer, not ${typeName(v)}`
      if (s.minimum !== undefined && v < s.minimum) return `${path} must be at least ${s.minimum}`
      if (s.maximum !== undefined && v > s.maximum) return `${path} must be at most ${s.maximum}`
      return undefined
    case 'boolean':
      return typeof v === 'boolean' ? undefined : `${path} must be true or false`
    case 'array': {
      if (!Array.isArray(v)) return `${path} must be an array, not ${typeName(v)}`
      if (s.maxItems !== undefined && v.length > s.maxItems) return `${path} has more than ${s.maxItems} items`
      for (let i = 0; i < v.length; i++) {
        const bad = s.items ? checkSchema(v[i] as Json, s.items, `${path}[${i}]`) : undefined
        if (bad) return bad
      }
      return undefined
    }
    case 'object': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return `${path} must be an object, not ${typeName(v)}`
      for (const r of s.required ?? []) if (!Object.hasOwn(v, r)) return `${path}.${r} is required`
      // Nothing to check of its fields: not walked (an object of 200,000 keys took 250 ms to).
      if (s.properties === undefined && s.additionalProperties !== false) return undefined
      for (const [k, x] of Object.entries(v)) {
        // Own properties only: a field named `toString` or `__proto__` is not a known one.
        const p = s.properties && Object.hasOwn(s.properties, k) ? s.properties[k] : undefined
        if (p === undefined) {
          if (s.additionalProperties === false) return `${path}.${k} is not a known field`
          continue
        }
        const bad = checkSchema(x, p, `${path}.${k}`)
        if (bad) return bad
      }
      return undefined
    }
  }
}

/** Dispatches JSON-RPC requests to methods. Transport-neutral: HTTP and WebSocket both call {@link handleText}. */
/**
 * Deepest nesting of arrays and objects a request may have; no method takes more than a few
 * levels. A body nested a million levels deep is valid JSON that `JSON.parse` takes over half a
 * second to read here, for one rate-limit token: such a body is refused before it is parsed.
 */
const MAX_JSON_DEPTH = 64
/**
 * Longest response the server writes, a batch's replies together. A block of 8 MiB is some 20
 * million characters of JSON with its transactions in full; a batch of a hundred of them would
 * not fit in a JavaScript string and could take the node down. Past it, a reply is a `TooLarge`
 * error with the request's id.
 */
export const MAX_RESPONSE_CHARS = 64 * 1024 * 1024
/**
 * Most arrays, objects and items of arrays and objects a request body may hold (see
 * {@link jsonShape}). What a request costs to read grows with them, not with its bytes: 2 MiB of
 * `{},{},…` (700,000 objects) took 180–450 ms to parse here, a transaction of 512 KiB in hex a few
 * ms. A batch of a hundred transactions holds under a thousand.
 */
export const MAX_BODY_VALUES = 65_536
/**
 * A body is charged one more rate-limit token (one call) per whole this many values, on top of
 * its calls: a batch of a hundred transactions (600 values) costs two more, a body at
 * {@link MAX_BODY_VALUES} 256 more.
 */
export const VALUES_PER_CALL = 256
/** Bodies up to this many characters cannot nest deeper than {@link MAX_JSON_DEPTH} (two brackets a level), so are not scanned. */
const SHALLOW_BODY_CHARS = 2 * MAX_JSON_DEPTH

/**
 * How `text`'s brackets (outside strings) nest, in one pass (a few ms for a megabyte): whether
 * deeper than `limit`, and its values, counted as its opening brackets and commas (an array or
 * object, and each item but the first of one). The scan stops at the first level past `limit`,
 * or at the first value past `maxValues`.
 */
function jsonShape(text: string, limit: number, maxValues = Number.POSITIVE_INFINITY): { tooDeep: boolean; values: number } {
  let depth = 0
  let values = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      // A string: jump to the quote that closes it, the first not escaped (after an even run of
      // backslashes). Strings (transactions in hex) are most of a body; read a character at a time,
      // they made the scan cost more than JSON.parse.
      for (;;) {
        const q = text.indexOf('"', i + 1)
        if (q < 0) return { tooDeep: false, values } // unterminated: JSON.parse refuses it
        let b = q - 1
        while (text.charCodeAt(b) === 0x5c) b--
        i = q
        if ((q - 1 - b) % 2 === 0) break
      }
    } else if (c === 0x2c) {
      if (++values > maxValues) break
    } else if (c === 0x5b || c === 0x7b) {
      if (++values > maxValues) break
      if (++depth > limit) return { tooDeep: true, values }
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return { tooDeep: false, values }
}

export class RpcDispatcher {
  private readonly methods = new Map<string, RpcMethod>()
  private readonly maxResponseChars: number

  constructor(
    methods: readonly RpcMethod[],
    private readonly info: {
      title: string
      version: string
      maxBatch?: number
      /** Longest response text (a batch's replies together); see {@link MAX_RESPONSE_CHARS}. */
      maxResponseChars?: number
      onError?: (e: unknown, method: string) => void
    },
  ) {
    this.maxResponseChars = info.maxResponseChars ?? MAX_RESPONSE_CHARS
    for (const m of methods) this.methods.set(m.name, m)
    this.methods.set('rpc.discover', {
      name: 'rpc.discover',
      summary: 'This OpenRPC document: every method, its parameters and its result.',
      params: [],
      result: { name: 'document', schema: { type: 'object' } },
      handler: () => this.openRpc(),
    })
  }

  /** The OpenRPC 1.2 document of the methods. */
  openRpc(): Json {
    return {
      openrpc: '1.2.6',
      info: { title: this.info.title, version: this.info.version },
      methods: [...this.methods.values()].map((m) => ({
        name: m.name,
        summary: m.summary + (m.websocketOnly ? ' (WebSocket only)' : ''),
        paramStructure: 'either',
        params: m.params.map((p) => ({
          name: p.name,
          required: p.required ?? false,
          schema: p.schema as Json,
          ...(p.description ? { description: p.description } : {}),
        })),
        result: { name: m.result.name, schema: m.result.schema as Json },
      })),
    } as Json
  }

  /** Handles one request body (a single request or a batch); returns the response text, or undefined when there is nothing to answer. */
  async handleText(text: string, ctx: RpcContext & { websocket?: boolean }): Promise<string | undefined> {
    if (text.length > SHALLOW_BODY_CHARS) {
      const shape = jsonShape(text, MAX_JSON_DEPTH, MAX_BODY_VALUES)
      if (shape.tooDeep)
        return JSON.stringify(error(null, RpcErrorCode.InvalidRequest, `Invalid Request: nested deeper than ${MAX_JSON_DEPTH} levels`))
      if (shape.values > MAX_BODY_VALUES)
        return JSON.stringify(
          error(
            null,
            RpcErrorCode.TooLarge,
            `the body holds more than ${MAX_BODY_VALUES} arrays, objects and items of them: send less in one request`,
          ),
        )
      const extra = Math.floor(shape.values / VALUES_PER_CALL)
      if (extra > 0 && ctx.charge && !ctx.charge(extra))
        return JSON.stringify(
          error(
            null,
            RpcErrorCode.RateLimited,
            `rate limited: a body of ${shape.values} values counts as ${extra} more calls than are left`,
          ),
        )
    }
    let parsed: Json
    try {
      parsed = JSON.parse(text) as Json
    } catch {
      return JSON.stringify(error(null, RpcErrorCode.ParseError, 'Parse error: the body is not JSON'))
    }
    if (Array.isArray(parsed)) {
      if (parsed.length === 0) return JSON.stringify(error(null, RpcErrorCode.InvalidRequest, 'Invalid Request: empty batch'))
      const max = this.info.maxBatch ?? 100
      if (parsed.length > max) return JSON.stringify(error(null, RpcErrorCode.TooLarge, `a batch may hold at most ${max} requests`))
      if (ctx.charge && !ctx.charge(parsed.length - 1))
        return JSON.stringify(
          error(null, RpcErrorCode.RateLimited, `rate limited: a batch of ${parsed.length} calls is above what is left`),
        )
      // Concurrently (JSON-RPC 2.0 allows any order; the replies keep the requests' order): one
      // after another, a batch of send-and-wait calls held its request for their waits added up.
      // Each call starts in the batch's order, so transactions reach the pool in that order.
      // Each reply is written as it comes and charged to the batch's budget (see MAX_RESPONSE_CHARS).
      const budget = { left: this.maxResponseChars }
      const out = (await Promise.all(parsed.map(async (r) => this.reply(await this.handleOne(r, ctx), budget)))).filter(
        (r) => r !== undefined,
      )
      return out.length ? `[${out.join(',')}]` : undefined
    }
    return this.reply(await this.handleOne(parsed, ctx), { left: this.maxResponseChars })
  }

  /** `res` as text, or a TooLarge error in its place when it does not fit in what `budget` has left; charged to it. */
  private reply(res: Response | undefined, budget: { left: number }): string | undefined {
    if (res === undefined) return undefined
    let text: string | undefined
    try {
      text = JSON.stringify(res)
    } catch (e) {
      if (!(e instanceof RangeError)) throw e // past V8's longest string: too large by far
    }
    if (text === undefined || text.length > budget.left) {
      text = JSON.stringify(
        error(
          res.id,
          RpcErrorCode.TooLarge,
          `the response would pass ${this.maxResponseChars} characters${budget.left < this.maxResponseChars ? ' with the batch' : ''}: ask for less at a time (full: false for blocks, fewer calls in a batch)`,
        ),
      )
    }
    budget.left -= text.length
    return text
  }

  private async handleOne(req: Json, ctx: RpcContext & { websocket?: boolean }): Promise<Response | undefined> {
    if (typeof req !== 'object' || req === null || Array.isArray(req))
      return error(null, RpcErrorCode.InvalidRequest, 'Invalid Request: not an object')
    const idOk = !('id' in req) || req.id === null || typeof req.id === 'string' || (typeof req.id === 'number' && Number.isFinite(req.id))
    const id = idOk && 'id' in req ? (req.id as Json) : null
    if (req.jsonrpc !== '2.0' || typeof req.method !== 'string' || !idOk) {
      return error(id, RpcErrorCode.InvalidRequest, 'Invalid Request: needs jsonrpc "2.0", a string method and a string or number id')
    }
    const isNotification = !('id' in req)
    const method = this.methods.get(req.method)
    if (!method || (method.websocketOnly && !ctx.websocket)) {
      return isNotification
        ? undefined
        : error(id, RpcErrorCode.MethodNotFound, `Method not found: ${req.method.slice(0, 80)}${method ? ' (WebSocket only)' : ''}`)
    }
    const params = this.bindParams(method, req.params)
    if (typeof params === 'string') return isNotification ? undefined : error(id, RpcErrorCode.InvalidParams, `Invalid params: ${params}`)
    try {
      const result = await method.handler(params, ctx)
      return isNotification ? undefined : { jsonrpc: '2.0', id, result }
    } catch (e) {
      if (isNotification) return undefined
      if (e instanceof RpcError) return error(id, e.rpcCode, e.message, e.data)
      this.info.onError?.(e, method.name)
      return error(id, RpcErrorCode.InternalError, 'Internal error')
    }
  }

  private bindParams(m: RpcMethod, raw: Json | undefined): Record<string, Json> | string {
    let named: Record<string, Json>
    if (raw === undefined || raw === null) named = {}
    else if (Array.isArray(raw)) {
      if (raw.length > m.params.length) return `${m.name} takes at most ${m.params.length} parameters`
      named = {}
      raw.forEach((v, i) => {
        named[(m.params[i] as RpcParam).name] = v
      })
    } else if (typeof raw === 'object') named = raw
    else return 'params must be an array or an object'
    for (const p of m.params) {
      const v = named[p.name]
      if (v === undefined) {
        if (p.required) return `${p.name} is required`
        continue
      }
      const bad = checkSchema(v, p.schema, p.name)
      if (bad) return bad
    }
    for (const k of Object.keys(named)) if (!m.params.some((p) => p.name === k)) return `${m.name} has no parameter ${k.slice(0, 40)}`
    return named
  }
}
