/**
 * What every `loopchain` command shares: reading flags, failing with a message, and a JSON-RPC
 * client that turns an unreachable node or an error answer into that message.
 */

import { writeFileSync } from 'node:fs'

/** Where the client commands look for a node: node-0 of a devnet made with the default base port. */
export const DEFAULT_RPC = 'http://127.0.0.1:27602/'

/** The value after `--name`, if the flag is there. */
export function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : undefined
}

/**
 * The whole number after `--name` (digits only: `Number` would read '' as 0 and take 0x2 or
 * 4.0), or `fallback` when the flag is absent; anything else ends the command through {@link fail}.
 */
export function wholeFlag(args: string[], name: string, fallback: number): number {
  const v = flag(args, name)
  if (v === undefined) return fallback
  if (!/^\d{1,15}$/.test(v)) fail(`--${name} must be a whole number, not '${v}'`)
  return Number(v)
}

/** Prints `loopchain: message` on stderr and exits 2: the user's input or the node said no. */
export function fail(message: string): never {
  process.stderr.write(`loopchain: ${message}\n`)
  process.exit(2)
}

/** A JSON-RPC call's result, or why there is none: the node unreachable, no JSON-RPC answer, or an error answer. */
export type RpcOutcome = { readonly result: unknown } | { readonly error: string }

/**
 * How long a command waits for a node's answer: 10 s, and for a send-and-wait the longest wait a
 * node allows (120 s) and a little more. A node that takes the connection and never answers (a
 * firewall that drops packets, a wedged proxy) would otherwise hold the command for minutes.
 */
export function answerTimeoutMs(method: string): number {
  return method === 'lc_sendTransactionAndWait' ? 130_000 : 10_000
}

/** Calls a JSON-RPC method and says how it went, without ending the command. */
export async function rpcOutcome(
  url: string,
  method: string,
  params: object = {},
  timeoutMs = answerTimeoutMs(method),
): Promise<RpcOutcome> {
  let res: Response
  let j: { result?: unknown; error?: { code: number; message: string; data?: unknown } }
  const signal = AbortSignal.timeout(timeoutMs)
  const late = () => ({ error: `no answer from ${url} within ${timeoutMs / 1000} s (${method})` })
  try {
    res = await fetch(url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }), signal })
  } catch (e) {
    if (signal.aborted) return late()
    return { error: `cannot reach ${url}: ${(e as Error).message} (is the node running? try 'npm run devnet')` }
  }
  try {
    j = (await res.json()) as typeof j
  } catch {
    if (signal.aborted) return late()
    return { error: `${url} answered HTTP ${res.status} with no JSON-RPC response (is it a loopchain node's JSON-RPC URL?)` }
  }
  if (j.error) return { error: `${method}: ${j.error.message}${j.error.data ? ` ${JSON.stringify(j.error.data)}` : ''}` }
  return { result: j.result }
}

/** Calls a JSON-RPC method; any transport or JSON-RPC error ends the command through {@link fail}. */
export async function rpcCall(url: string, method: string, params: object = {}): Promise<unknown> {
  const out = await rpcOutcome(url, method, params)
  if ('error' in out) fail(out.error)
  return out.result
}

/** The flags a command takes: those followed by a value, those that stand alone, and those that may repeat. */
export interface FlagSpec {
  readonly values: readonly string[]
  readonly switches?: readonly string[]
  readonly repeatable?: readonly string[]
}

/**
 * Checks a command's arguments against what it takes, before it does anything: an unknown flag
 * (a typo, or one from another command), a flag without its value, a flag given twice or a stray
 * word ends the command through {@link fail}, instead of being ignored — `keys new --out me.json`
 * must not print the secret it was asked to write.
 */
export function checkArgs(command: string, args: readonly string[], spec: FlagSpec): void {
  const seen = new Set<string>()
  const help = `see 'loopchain ${command} --help'`
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    if (!a.startsWith('--')) fail(`${command}: unexpected argument '${a}' (values follow their flag, e.g. --to hx…); ${help}`)
    const name = a.slice(2)
    const takesValue = spec.values.includes(name)
    if (!takesValue && !spec.switches?.includes(name)) fail(`${command} has no option ${a}; ${help}`)
    if (seen.has(name) && !spec.repeatable?.includes(name)) fail(`${command}: ${a} is given twice`)
    seen.add(name)
    if (takesValue) {
      const v = args[i + 1]
      if (v === undefined || v.startsWith('--')) fail(`${command}: ${a} needs a value; ${help}`)
      i++
    }
  }
}

/** Writes `text` to a new file `out` (mode `mode`), or fails saying why: `refusal` when it exists. */
export function writeNewFile(out: string, text: string, refusal: string, mode = 0o644): void {
  try {
    writeFileSync(out, text, { flag: 'wx', mode })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    fail(code === 'EEXIST' ? `${out} exists; ${refusal}` : `cannot write ${out}: ${(e as Error).message}`)
  }
}
