/**
 * The client commands that talk to a node's JSON-RPC: `tx send`, `tx deploy` and `tx call` sign a
 * transaction with a key file and send it; `call` runs a read-only SCORE method. The three `tx`
 * commands share one path: read the key, ask the node for the network id and the sender's next
 * nonce, sign, send, and print the hash or (with --wait) the receipt.
 */
import { readFileSync } from 'node:fs'
import {
  type Address,
  callDataCodec,
  checkParams,
  contractAddress,
  deployDataCodec,
  encode,
  fromHex,
  GOVERNANCE_ADDRESS,
  governanceActionParams,
  INSTALL_METHOD,
  initEngine,
  isAddress,
  isContractAddress,
  type KeyPair,
  keyPairFromSecret,
  loadScore,
  NEW_SCORE_ADDRESS,
  STEP_COSTS,
  signTransaction,
  TX_VERSION,
  TxKind,
  to0x,
  transactionCodec,
  UPDATE_METHOD,
  utf8,
  type Value,
} from '@loopchain/core'
import { type Json, nativeCrypto, paramsFromJson, valueFromJson } from '@loopchain/node/client'
import { DEFAULT_RPC, fail, flag, rpcCall } from './cli.js'
import { pathFrom, readJsonFile, readSecretKeyFile } from './config.js'

/** Steps a transfer declares by default: exactly what it uses, the fixed base cost (it carries no data and runs no code). */
const TRANSFER_STEP_LIMIT = STEP_COSTS.base
/** Steps a deploy or a call may use by default: room for the largest code (2 steps a byte of 512 KiB) and its onInstall. */
const CONTRACT_STEP_LIMIT = 10_000_000
/** A method name as the node's `lc_call` accepts it. */
const METHOD_NAME = /^[A-Za-z_$][A-Za-z0-9_$]*$/
/** What esbuild compiles a TypeScript SCORE to: the module form and language level the engine runs. */
const TS_TARGET = { format: 'esm', target: 'es2022' } as const

/** The kind-specific part of a transaction; the rest comes from the key and the node. */
interface Unsigned {
  readonly kind: TxKind
  readonly to: Address
  readonly value: bigint
  readonly data: Uint8Array
}

/** A receipt as the node's JSON-RPC gives it (the fields the CLI reads). */
export interface ReceiptJson {
  readonly txHash: string
  readonly status: 'success' | 'failure'
  readonly scoreAddress: string | null
  readonly failure: { readonly code: string; readonly message: string } | null
}

/**
 * Reads a key file: JSON with `secretKey` (0x and 64 hex digits), as `keys new` prints and `init`
 * writes for the faucet — or a validator's node config, whose `validatorKey` (or the key file its
 * `validatorKeyFile` names) is the account of its institution (what `cert issue` signs with on a devnet).
 */
export function readKey(file: string): KeyPair {
  let secret: unknown
  let j: { secretKey?: unknown; validatorKey?: unknown; validatorKeyFile?: unknown }
  try {
    j = readJsonFile(file) as typeof j
    secret = j.secretKey ?? j.validatorKey
  } catch (e) {
    fail(`cannot read the key file ${file}: ${(e as Error).message}`)
  }
  // A node config whose validator key is kept in a file of its own.
  if (secret === undefined && typeof j.validatorKeyFile === 'string') {
    try {
      secret = readSecretKeyFile(pathFrom(file, j.validatorKeyFile), `validatorKeyFile of ${file}`)
    } catch (e) {
      fail((e as Error).message)
    }
  }
  if (typeof secret !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(secret))
    fail(`${file} has no secretKey (0x and 64 hex digits); make a key file with 'loopchain keys new'`)
  return keyPairFromSecret(fromHex(secret), nativeCrypto)
}

/** `--to` as the address of a SCORE. */
function scoreFlag(args: string[], command: string): Address {
  const to = flag(args, 'to') ?? fail(`${command} needs --to cx… (the SCORE's address)`)
  if (!isAddress(to) || !isContractAddress(to)) fail(`--to ${to} is not a SCORE address (cx and 40 lower-case hex digits)`)
  return to
}

function methodFlag(args: string[], command: string): string {
  const method = flag(args, 'method') ?? fail(`${command} needs --method NAME`)
  if (!METHOD_NAME.test(method) || method.length > 128) fail(`--method ${method} is not a method name`)
  return method
}

/** `--params` as a JSON object, or null when there is none. */
function jsonParams(args: string[]): Json {
  const raw = flag(args, 'params')
  if (raw === undefined) return null
  let j: unknown
  try {
    j = JSON.parse(raw)
  } catch (e) {
    fail(`--params is not JSON (${(e as Error).message}); give an object of named parameters, e.g. '{"_owner":"hx…"}'`)
  }
  if (j === null || typeof j !== 'object' || Array.isArray(j))
    fail(`--params must be a JSON object of named parameters, e.g. '{"_owner":"hx…"}', not ${raw}`)
  return j as Json
}

/** Converts JSON parameters to a Value, failing with the converter's message (which names the parameter). */
function toValue(convert: () => Value): Value {
  try {
    return convert()
  } catch (e) {
    fail(`--params: ${(e as Error).message}`)
  }
}

export function stepLimitFlag(args: string[], fallback: number): number {
  const raw = flag(args, 'step-limit')
  if (raw === undefined) return fallback
  if (!/^[1-9][0-9]*$/.test(raw) || !Number.isSafeInteger(Number(raw))) fail('--step-limit must be a positive integer')
  return Number(raw)
}

/**
 * Signs `tx` with `key` at the sender's next nonce and sends it to --rpc: the hash, and with
 * --wait the receipt once the transaction is committed.
 */
export async function signAndSend(
  args: string[],
  key: KeyPair,
  tx: Unsigned,
  stepLimit: number,
): Promise<{ hash: string; receipt?: ReceiptJson }> {
  const url = flag(args, 'rpc') ?? DEFAULT_RPC
  const info = (await rpcCall(url, 'lc_getNetworkInfo')) as { networkId: number }
  const account = (await rpcCall(url, 'lc_getAccount', { address: key.address })) as { nonce: number }
  const signed = signTransaction(
    {
      version: TX_VERSION,
      networkId: info.networkId,
      from: key.address,
      stepLimit,
      timestamp: Date.now() * 1000,
      nonce: account.nonce,
      ...tx,
    },
    key,
    nativeCrypto,
  )
  const hex = to0x(encode(transactionCodec, signed))
  if (!args.includes('--wait')) return { hash: (await rpcCall(url, 'lc_sendTransaction', { tx: hex })) as string }
  const receipt = (await rpcCall(url, 'lc_sendTransactionAndWait', { tx: hex })) as ReceiptJson | null
  if (receipt === null) fail(`${url} committed the transaction but has no receipt for it`)
  return { hash: receipt.txHash, receipt }
}

/** Prints `out` as JSON; a receipt that records a failure also goes to stderr and makes the exit code 1. */
export function print(out: object, receipt?: ReceiptJson): void {
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
  if (receipt?.failure) {
    process.stderr.write(`loopchain: the transaction failed: ${receipt.failure.code}: ${receipt.failure.message}\n`)
    process.exitCode = 1
  }
}

/** A transaction's value: below 2^256 (78 digits at most, checked before `BigInt` reads it). */
function valueFlag(raw: string): bigint {
  const v = /^(0|[1-9][0-9]{0,77})$/.test(raw) ? BigInt(raw) : -1n
  if (v < 0n || v >= 1n << 256n) fail('--value must be a non-negative integer below 2^256')
  return v
}

/** `tx send`: a transfer of native tokens. */
export async function txSend(args: string[]): Promise<void> {
  const keyFile = flag(args, 'key') ?? fail('tx send needs --key FILE')
  const to = flag(args, 'to') ?? fail('tx send needs --to ADDRESS')
  const value = valueFlag(flag(args, 'value') ?? fail('tx send needs --value N'))
  if (!isAddress(to)) fail(`--to ${to} is not an address (hx… or cx…, 40 hex digits)`)
  if (value === 0n) fail('--value must be a positive integer')
  const stepLimit = stepLimitFlag(args, TRANSFER_STEP_LIMIT)
  const sent = await signAndSend(args, readKey(keyFile), { kind: TxKind.Transfer, to, value, data: new Uint8Array(0) }, stepLimit)
  print(sent.receipt ?? { hash: sent.hash }, sent.receipt)
}

/** Reads a SCORE's code; a TypeScript file is compiled to one JavaScript module with esbuild first. */
async function readCode(path: string): Promise<Uint8Array> {
  let source: string
  try {
    source = readFileSync(path, 'utf8')
  } catch (e) {
    fail(`cannot read the code file ${path}: ${(e as Error).message}`)
  }
  if (!/\.[cm]?ts$/.test(path)) return utf8(source)
  // esbuild comes with tsx, which runs this CLI, so it is there wherever the CLI runs.
  let esbuild: typeof import('esbuild')
  try {
    esbuild = await import('esbuild')
  } catch {
    fail(`${path} is TypeScript and esbuild is not installed to compile it; compile it to one JavaScript module and deploy that`)
  }
  let js: string
  try {
    js = (await esbuild.transform(source, { loader: 'ts', sourcefile: path, ...TS_TARGET })).code
  } catch (e) {
    fail(`${path} does not compile: ${(e as Error).message}`)
  }
  // The chain stores the compiled bytes: whoever wants to rebuild them needs the compiler and its settings.
  process.stderr.write(`loopchain: compiled ${path} with esbuild ${esbuild.version} (${TS_TARGET.format}, ${TS_TARGET.target})\n`)
  return utf8(js)
}

/**
 * `tx deploy`: a new SCORE, or with --to a new version of an existing one. The code is loaded
 * here first, so code that would not load fails before anything is signed, and --params are typed
 * by its onInstall (or onUpdate) declaration: an `int` may be a decimal string, `bytes` 0x hex.
 */
export async function txDeploy(args: string[]): Promise<void> {
  const keyFile = flag(args, 'key') ?? fail('tx deploy needs --key FILE')
  const path = flag(args, 'code') ?? fail('tx deploy needs --code FILE (the SCORE: one JavaScript module)')
  const target = flag(args, 'to')
  if (target !== undefined && (!isAddress(target) || !isContractAddress(target)))
    fail(`--to ${target} is not a SCORE address (cx and 40 lower-case hex digits); leave --to out to deploy a new SCORE`)
  const update = target !== undefined && target !== NEW_SCORE_ADDRESS
  const json = jsonParams(args)
  const stepLimit = stepLimitFlag(args, CONTRACT_STEP_LIMIT)
  const key = readKey(keyFile)
  const code = await readCode(path)
  const loaded = loadScore(await initEngine(), code)
  if (!loaded.ok) fail(`${path} does not load as a SCORE: ${loaded.failure.code}: ${loaded.failure.message}`)
  const hook = update ? UPDATE_METHOD : INSTALL_METHOD
  const declared = Object.hasOwn(loaded.abi.methods, hook) ? loaded.abi.methods[hook] : undefined
  let params: Value = null
  if (declared === undefined) {
    if (json !== null) fail(`${path} declares no ${hook}, so it takes no --params`)
  } else {
    params = toValue(() => paramsFromJson(json, loaded.abi, hook))
    const bad = checkParams(declared, params)
    if (bad !== undefined) fail(`--params: ${bad}`)
  }
  let data: Uint8Array
  try {
    data = encode(deployDataCodec, { contentType: 'application/javascript', code, params })
  } catch (e) {
    fail(`${path} and its --params do not fit in a transaction: ${(e as Error).message}`)
  }
  const to = update ? target : NEW_SCORE_ADDRESS
  const sent = await signAndSend(args, key, { kind: TxKind.Deploy, to, value: 0n, data }, stepLimit)
  // A new SCORE's address follows from the transaction hash, so it is known before the block.
  print(sent.receipt ?? { hash: sent.hash, scoreAddress: update ? to : contractAddress(fromHex(sent.hash)) }, sent.receipt)
}

/** `tx call`: a SCORE method run in a transaction, so it may write state and receive native tokens. */
export async function txCall(args: string[]): Promise<void> {
  const keyFile = flag(args, 'key') ?? fail('tx call needs --key FILE')
  const to = scoreFlag(args, 'tx call')
  const method = methodFlag(args, 'tx call')
  const json = jsonParams(args)
  const value = valueFlag(flag(args, 'value') ?? '0')
  const stepLimit = stepLimitFlag(args, CONTRACT_STEP_LIMIT)
  const key = readKey(keyFile)
  // Typed by the SCORE's ABI from the node (lc_getScoreApi), so big integers and bytes travel as
  // strings: '{"_value":"1000000000000000000000"}'.
  const abi = (await rpcCall(flag(args, 'rpc') ?? DEFAULT_RPC, 'lc_getScoreApi', { address: to })) as {
    type: string
    name: string
    inputs: { name: string; type: string }[]
  }[]
  const declared = abi.find((e) => e.type === 'function' && e.name === method)
  if (declared === undefined)
    fail(
      `${to} has no method ${method}; its methods: ${abi
        .filter((e) => e.type === 'function')
        .map((e) => e.name)
        .join(', ')}`,
    )
  const params = toValue(() =>
    json === null
      ? null
      : Object.fromEntries(
          Object.entries(json as Record<string, Json>).map(([k, x]) => [
            k,
            to === GOVERNANCE_ADDRESS && method === 'propose' && k === 'action'
              ? governanceActionFromJson(x)
              : valueFromJson(x, declared.inputs.find((i) => i.name === k)?.type, `params.${k}`, 1),
          ]),
        ),
  )
  let data: Uint8Array
  try {
    data = encode(callDataCodec, { method, params })
  } catch (e) {
    fail(`--params do not fit in a transaction: ${(e as Error).message}`)
  }
  const sent = await signAndSend(args, key, { kind: TxKind.Call, to, value, data }, stepLimit)
  print(sent.receipt ?? { hash: sent.hash }, sent.receipt)
}

/**
 * A governance proposal's action from JSON, its fields typed by the action's declaration (governance
 * declares `action` only as a dict): `"nodeKey":"0x…"` and `"publicKey":"0x…"` become bytes.
 */
function governanceActionFromJson(j: Json): Value {
  const type = j !== null && typeof j === 'object' && !Array.isArray(j) ? j.type : undefined
  const fields = typeof type === 'string' ? governanceActionParams(type) : undefined
  if (fields === undefined) return valueFromJson(j, undefined, 'params.action', 1)
  const out: Record<string, Value> = Object.create(null)
  for (const [k, x] of Object.entries(j as Record<string, Json>))
    out[k] = valueFromJson(x, fields.find((f) => f.name === k)?.type, `params.action.${k}`, 2)
  return out
}

/** `call`: a read-only SCORE method against the node's latest state; nothing is signed or written. */
export async function call(args: string[]): Promise<void> {
  const to = scoreFlag(args, 'call')
  const method = methodFlag(args, 'call')
  const params = jsonParams(args)
  const result = await rpcCall(flag(args, 'rpc') ?? DEFAULT_RPC, 'lc_call', { to, method, ...(params === null ? {} : { params }) })
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
}
