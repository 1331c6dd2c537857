/**
 * A SCORE's ABI: what its manifest declares (external methods, their parameter and return types,
 * read-only and payable flags, events with indexed fields), read from the deployed module and
 * checked once at load time, then enforced by the host on every call (`call.ts`), never trusted
 * to the contract. See docs/writing-a-score.md for the manifest format.
 */
import type { Value } from '../codec/value.js'
import { isAddress } from '../crypto/address.js'
import { MAX_INDEXED } from '../ledger/receipt.js'
import type { CallFailure, CallLimits, LoadedContract } from './engine/types.js'

/** The parameter, return and event field types a manifest may name. */
export type AbiType = 'int' | 'str' | 'bytes' | 'bool' | 'Address' | 'list' | 'dict' | 'any'

/** Every {@link AbiType}, for validation. */
export const ABI_TYPES: readonly AbiType[] = ['int', 'str', 'bytes', 'bool', 'Address', 'list', 'dict', 'any']

/** One declared parameter or event field. */
export interface AbiParam {
  readonly name: string
  readonly type: AbiType
  /** May be left out of a call (or passed as null). Only parameters can be optional. */
  readonly optional: boolean
}

/** One external method. */
export interface AbiMethod {
  readonly name: string
  readonly params: readonly AbiParam[]
  /** Declared return type; undefined: any Value. */
  readonly returns: AbiType | undefined
  /** Runs read-only: the host refuses its storage writes and events (READONLY_VIOLATION). */
  readonly readonly: boolean
  /** May receive a value; a value sent to any other method fails with NOT_PAYABLE. */
  readonly payable: boolean
}

/** One declared event: at most {@link MAX_INDEXED} indexed fields, then data fields. */
export interface AbiEvent {
  readonly name: string
  readonly indexed: readonly AbiParam[]
  readonly data: readonly AbiParam[]
  /** ICON-style signature that goes into the log, e.g. `Transfer(Address,Address,int)`. */
  readonly signature: string
}

/** A SCORE's ABI, derived from its manifest. */
export interface ScoreAbi {
  readonly name: string
  /** External methods by name (a null-prototype record; `onInstall` included when declared). */
  readonly methods: Readonly<Record<string, AbiMethod>>
  /** Declared events by name (null-prototype record). */
  readonly events: Readonly<Record<string, AbiEvent>>
}

/** Name of the method the deploy transaction runs once (ICON's `on_install`); not callable afterwards. */
export const INSTALL_METHOD = 'onInstall'

/** Identifier rule shared with the engine's method-name check. */
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/

/** Budget for reading a manifest at load time: module data, so far more than enough. */
export const INSPECT_LIMITS: CallLimits = Object.freeze({ stepLimit: 1_000_000, memoryLimit: 4 * 1024 * 1024 })

/** The outcome of {@link abiOf}: an ABI, or why the contract is not a valid SCORE (`INVALID_CODE`). */
export type AbiResult = { readonly ok: true; readonly abi: ScoreAbi } | { readonly ok: false; readonly failure: CallFailure }

class ManifestError extends Error {}

function fail(message: string): never {
  throw new ManifestError(message)
}

function isMap(v: Value | undefined): v is { [key: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function onlyKeys(v: { [key: string]: Value }, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(v)) if (!allowed.includes(k)) fail(`${what} has an unknown key ${JSON.stringify(k)}`)
}

function flag(v: Value | undefined, what: string): boolean {
  if (v === undefined || v === null) return false
  if (typeof v !== 'boolean') fail(`${what} must be a boolean`)
  return v
}

function abiType(v: Value | undefined, what: string): AbiType {
  if (typeof v !== 'string' || !(ABI_TYPES as readonly string[]).includes(v)) fail(`${what} must be one of ${ABI_TYPES.join(', ')}`)
  return v as AbiType
}

function params(v: Value | undefined, what: string, allowOptional: boolean): AbiParam[] {
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) fail(`${what} must be a list of [name, type] pairs`)
  const out: AbiParam[] = []
  for (const [i, p] of v.entries()) {
    const at = `${what}[${i}]`
    if (!Array.isArray(p) || p.length < 2 || p.length > 3) fail(`${at} must be [name, type] or [name, type, { optional: true }]`)
    const [name, type, opts] = p
    if (typeof name !== 'string' || !IDENTIFIER.test(name)) fail(`${at} has a name that is not an identifier`)
    let optional = false
    if (opts !== undefined) {
      if (!isMap(opts)) fail(`${at} options must be a map`)
      onlyKeys(opts, ['optional'], `${at} options`)
      optional = flag(opts.optional, `${at}.optional`)
      if (optional && !allowOptional) fail(`${at}: event fields cannot be optional`)
    }
    if (out.some((q) => q.name === name)) fail(`${what} declares ${name} twice`)
    out.push({ name, type: abiType(type, `${at} type`), optional })
  }
  return out
}

/**
 * Builds the ABI from a manifest value and the module's export kinds. Throws ManifestError with a
 * deterministic message on the first problem.
 */
function parseManifest(manifest: Value, kinds: { [key: string]: Value }): ScoreAbi {
  if (!isMap(manifest)) fail('the module exports no manifest map (export const manifest = { name, methods, events })')
  onlyKeys(manifest, ['name', 'methods', 'events'], 'manifest')
  const { name, methods: m, events: e } = manifest
  if (typeof name !== 'string' || name.length === 0 || name.length > 64) fail('manifest.name must be a string of 1 to 64 characters')
  if (!isMap(m)) fail('manifest.methods must be a map')
  const methods: Record<string, AbiMethod> = Object.create(null)
  for (const [method, spec] of Object.entries(m)) {
    const at = `methods.${method}`
    if (!IDENTIFIER.test(method)) fail(`${at}: the name is not an identifier`)
    if (!isMap(spec)) fail(`${at} must be a map`)
    onlyKeys(spec, ['params', 'returns', 'readonly', 'payable'], at)
    if (kinds[method] !== 'function') fail(`${at} is declared but the module exports no function ${method}`)
    const readonly = flag(spec.readonly, `${at}.readonly`)
    const payable = flag(spec.payable, `${at}.payable`)
    if (readonly && payable) fail(`${at} cannot be both readonly and payable`)
    if (method === INSTALL_METHOD && readonly) fail(`${at}: the install method writes state and cannot be readonly`)
    const returns = spec.returns === undefined || spec.returns === null ? undefined : abiType(spec.returns, `${at}.returns`)
    methods[method] = Object.freeze({
      name: method,
      params: Object.freeze(params(spec.params, `${at}.params`, true)),
      returns,
      readonly,
      payable,
    })
  }
  const events: Record<string, AbiEvent> = Object.create(null)
  if (e !== undefined && e !== null) {
    if (!isMap(e)) fail('manifest.events must be a map')
    for (const [event, spec] of Object.entries(e)) {
      const at = `events.${event}`
      if (!IDENTIFIER.test(event)) fail(`${at}: the name is not an identifier`)
      if (!isMap(spec)) fail(`${at} must be a map`)
      onlyKeys(spec, ['indexed', 'data'], at)
      const indexed = params(spec.indexed, `${at}.indexed`, false)
      const data = params(spec.data, `${at}.data`, false)
      if (indexed.length > MAX_INDEXED) fail(`${at} has ${indexed.length} indexed fields; at most ${MAX_INDEXED}`)
      for (const f of data) if (indexed.some((g) => g.name === f.name)) fail(`${at} declares ${f.name} twice`)
      const signature = `${event}(${[...indexed, ...data].map((f) => f.type).join(',')})`
      events[event] = Object.freeze({ name: event, indexed: Object.freeze(indexed), data: Object.freeze(data), signature })
    }
  }
  return Object.freeze({ name, methods: Object.freeze(methods), events: Object.freeze(events) })
}

/**
 * Reads and validates the manifest a SCORE module exports (`export const manifest = …`). A missing
 * or malformed manifest, or one that declares a method the module does not export as a function,
 * is `INVALID_CODE`: such code must never be deployed. Runs the module's top-level code (metered,
 * with no host), so an engine fault can still throw.
 */
export function abiOf(contract: LoadedContract): AbiResult {
  const r = contract.inspect('manifest', INSPECT_LIMITS)
  if (!r.ok)
    return { ok: false, failure: { code: 'INVALID_CODE', message: `cannot read the manifest: ${r.failure.message}`.slice(0, 256) } }
  const described = r.result
  if (!isMap(described) || !isMap(described.kinds))
    return { ok: false, failure: { code: 'INVALID_CODE', message: 'cannot read the exports' } }
  try {
    return { ok: true, abi: parseManifest(described.value ?? null, described.kinds) }
  } catch (e) {
    if (e instanceof ManifestError)
      return { ok: false, failure: { code: 'INVALID_CODE', message: `bad manifest: ${e.message}`.slice(0, 256) } }
    throw e
  }
}

/** True when `v` is a value of ABI type `t` (int = bigint, Address = canonical hx…/cx… string, dict = map). */
export function matchesType(t: AbiType, v: Value): boolean {
  switch (t) {
    case 'int':
      return typeof v === 'bigint'
    case 'str':
      return typeof v === 'string'
    case 'bytes':
      return v instanceof Uint8Array
    case 'bool':
      return typeof v === 'boolean'
    case 'Address':
      return isAddress(v)
    case 'list':
      return Array.isArray(v)
    case 'dict':
      return isMap(v)
    case 'any':
      return true
  }
}

function describeValue(v: Value): string {
  if (v === null) return 'null'
  if (v instanceof Uint8Array) return 'bytes'
  if (Array.isArray(v)) return 'list'
  if (typeof v === 'object') return 'dict'
  if (typeof v === 'bigint') return 'int'
  if (typeof v === 'string') return 'str'
  return 'bool'
}

/**
 * Checks call parameters against a method's declaration: a map (or null when nothing is passed)
 * holding every required parameter with its declared type and nothing undeclared. Returns the
 * reason they do not match, or undefined.
 */
export function checkParams(method: AbiMethod, args: Value): string | undefined {
  if (args !== null && !isMap(args)) return `${method.name} takes a map of named parameters, not ${describeValue(args)}`
  const given = args ?? {}
  for (const k of Object.keys(given)) {
    if (!method.params.some((p) => p.name === k)) return `${method.name} has no parameter ${JSON.stringify(k).slice(0, 70)}`
  }
  for (const p of method.params) {
    const v = Object.hasOwn(given, p.name) ? given[p.name] : undefined
    if (v === undefined || v === null) {
      if (!p.optional) return `${method.name}: parameter ${p.name} (${p.type}) is missing`
      continue
    }
    if (!matchesType(p.type, v)) return `${method.name}: parameter ${p.name} must be ${p.type}, got ${describeValue(v)}`
  }
  return undefined
}

/**
 * Checks an emitted event against its declaration and splits it into the log's indexed and data
 * parts (in declaration order). Returns the parts, or the reason the event is not acceptable.
 */
export function eventParts(abi: ScoreAbi, event: string, fields: Value): { indexed: Value[]; data: Value[]; signature: string } | string {
  const decl = Object.hasOwn(abi.events, event) ? abi.events[event] : undefined
  if (decl === undefined) return `event ${JSON.stringify(event).slice(0, 70)} is not declared in the manifest`
  const all = [...decl.indexed, ...decl.data]
  const given = fields ?? {}
  if (!isMap(given)) return `event ${event} takes a map of its fields`
  for (const k of Object.keys(given))
    if (!all.some((f) => f.name === k)) return `event ${event} has no field ${JSON.stringify(k).slice(0, 70)}`
  const parts: Value[][] = [[], []]
  for (const [i, group] of [decl.indexed, decl.data].entries()) {
    for (const f of group) {
      const v = Object.hasOwn(given, f.name) ? given[f.name] : undefined
      if (v === undefined) return `event ${event}: field ${f.name} is missing`
      if (!matchesType(f.type, v)) return `event ${event}: field ${f.name} must be ${f.type}, got ${describeValue(v)}`
      parts[i]!.push(v)
    }
  }
  const [indexed, data] = parts as [Value[], Value[]]
  return { indexed, data, signature: decl.signature }
}

/**
 * The ABI as a {@link Value}, in the shape a JSON-RPC `getScoreApi` answers with: a list of
 * `{ type: 'function' | 'event', name, inputs: [{ name, type, optional?, indexed? }], ... }`.
 */
export function abiToValue(abi: ScoreAbi): Value {
  const out: Value[] = []
  for (const m of Object.values(abi.methods)) {
    const entry: { [key: string]: Value } = {
      type: 'function',
      name: m.name,
      inputs: m.params.map((p) => ({ name: p.name, type: p.type, optional: p.optional })),
      readonly: m.readonly,
      payable: m.payable,
    }
    if (m.returns !== undefined) entry.returns = m.returns
    out.push(entry)
  }
  for (const e of Object.values(abi.events)) {
    out.push({
      type: 'event',
      name: e.name,
      signature: e.signature,
      inputs: [
        ...e.indexed.map((p) => ({ name: p.name, type: p.type, indexed: true })),
        ...e.data.map((p) => ({ name: p.name, type: p.type, indexed: false })),
      ],
    })
  }
  return out
}
