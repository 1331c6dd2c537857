/**
 * A node's config file (what `loopchain init` writes and `loopchain start` reads): its reading
 * and checking, in one place for the commands and the devnet's web server.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fromHex, keyPairFromSecret, toHex } from '@loopchain/core'
import { nativeCrypto, RPC_LIMIT_DEFAULTS, type RpcLimitName, type RpcLimits } from '@loopchain/node/client'

/**
 * A node's config file. Paths are relative to the file.
 *
 * The two secrets — `validatorKey`, the institution's validator account (absent on a node that
 * does not vote), and `nodeKey`, the node's libp2p identity — are written in the file itself (as
 * `init` does) or each in a key file of its own, named by `validatorKeyFile` / `nodeKeyFile`: JSON
 * with `secretKey` (0x and 64 hex digits), as `loopchain keys new --out` writes it. A file holding
 * a secret — a key file, or the config while it holds one — must not be readable by other users
 * (mode 600 or 400): `start` refuses it otherwise, as ssh refuses a private key. {@link readNodeConfig}
 * reads the key files into `validatorKey` and `nodeKey`, so whoever reads a config finds both there.
 */
export interface NodeConfig {
  genesis: string
  dataDir: string
  validatorKey?: string
  nodeKey: string
  /** Where `validatorKey` is kept instead, relative to the config; read into `validatorKey`. */
  validatorKeyFile?: string
  /** Where `nodeKey` is kept instead, relative to the config; read into `nodeKey`. */
  nodeKeyFile?: string
  /**
   * `webrtcDirectPort`: a UDP port for browsers' WebRTC-direct (no TLS certificate needed); absent: off.
   * `announce`: the multiaddrs other nodes and browsers are told to reach this node at, in place of
   * the listen addresses: its public name (`/dns4/node.bank-a.example/tcp/7100`), or a TLS proxy in
   * front of the WebSocket port (`/dns4/node.bank-a.example/tcp/443/wss`); absent: the listen addresses.
   * `relay`: the circuit relay browsers use to reach each other: `false` for none, or limits
   * (`maxReservations`; `dataLimitBytes` and `durationLimitMs` per relayed connection;
   * `connectionsPerSlot` relayed connections from one address to slot holders at one address
   * within `connectionsPerSlotWindowMs`); absent: on, with 1,024 slots, 4 MiB and 30 min, 30
   * connections an hour. `connections`: connections of non-members (light clients,
   * browsers) held at once, in all (`maxNonMembers`, default 1,024) and from one IP address
   * (`maxNonMembersPerIp`, default 64; raise it behind a proxy that makes every browser one address).
   */
  p2p: {
    host?: string
    tcpPort: number
    wsPort: number
    webrtcDirectPort?: number
    bootstrap: string[]
    announce?: string[]
    relay?:
      | false
      | {
          maxReservations?: number
          dataLimitBytes?: number
          durationLimitMs?: number
          connectionsPerSlot?: number
          connectionsPerSlotWindowMs?: number
        }
    connections?: { maxNonMembers?: number; maxNonMembersPerIp?: number }
  }
  /**
   * `rateLimit`: JSON-RPC calls per second per client address and the burst above it (default 200
   * and 400); raise it for a trusted gateway that submits in bulk from one address. `query`: the
   * steps one read-only call (`lc_call`) may use (default 5,000,000) and the steps of read-only
   * calls the node runs per second, all clients together (default 2,000,000): the same thread runs
   * consensus; and for one client address (`stepsPerSecondPerClient`, default a quarter of that;
   * raise it for a trusted gateway). `limits`: what one client and all clients may hold at once
   * (`RPC_LIMIT_DEFAULTS` names them, with their defaults; README, "JSON-RPC limits"); a gateway that
   * serves many users from one address may need more WebSocket connections per client.
   */
  rpc: {
    host?: string
    port: number
    rateLimit?: { perSecond: number; burst: number }
    query?: { stepLimit?: number; stepsPerSecond?: number; stepsPerSecondPerClient?: number }
    limits?: RpcLimits
  }
  /**
   * The mempool's limits: `maxTransactions` (default 20,000), `maxBytes` (default 64 MiB) and
   * `maxPerSender` (default 256; a sender's transactions must also lie within 64 nonces of its
   * next, so at most 65 wait in any case). A full pool takes a funded newcomer at the expense of
   * the sender holding the most (its last transactions), down to an even share.
   */
  mempool?: { maxTransactions?: number; maxBytes?: number; maxPerSender?: number }
  /**
   * The node database's memory, in bytes: LevelDB's block cache (`cacheSize`, default 64 MiB) and
   * its memtable (`writeBufferSize`, default 32 MiB; up to twice that while a full one is written
   * out; LevelDB keeps it within 64 KiB and 1 GiB). A larger memtable means fewer compactions.
   */
  storage?: { cacheSize?: number; writeBufferSize?: number }
  /** Run a payment-channel hub with the validator's account (apps/node/src/hub.ts); validators only. */
  hub?: boolean
}

/** The JSON-RPC server's limits a config may set (`rpc.limits`), each a positive integer and each optional. */
export const RPC_LIMIT_FIELDS = Object.keys(RPC_LIMIT_DEFAULTS) as RpcLimitName[]

/** Reads and checks a node's config file; throws an `Error` whose one-line message names the field that is wrong. */
export function readNodeConfig(file: string): NodeConfig {
  let c: Record<string, unknown>
  let mode: number
  try {
    ;({ json: c, mode } = openJson(file) as { json: Record<string, unknown>; mode: number })
  } catch (e) {
    throw new Error(`the config ${file} ${e instanceof NotJson ? 'is' : 'cannot be read:'} ${(e as Error).message}`)
  }
  const bad = (field: string, want: string): never => {
    throw new Error(`the config ${file}: ${field} must be ${want}`)
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
  const port = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 65535
  const key = (v: unknown) => typeof v === 'string' && /^0x[0-9a-fA-F]{64}$/.test(v)
  if (!isObject(c)) bad('the file', 'a JSON object')
  // A misspelt field would otherwise be ignored and its default used without a word.
  const only = (o: Record<string, unknown>, at: string, known: readonly string[]) => {
    const extra = Object.keys(o).find((k) => !known.includes(k))
    if (extra !== undefined)
      throw new Error(
        `the config ${file}: ${at}${extra} is not a config field (${at ? `${at.slice(0, -1)} takes` : 'fields:'} ${known.join(', ')})`,
      )
  }
  only(c, '', [
    'genesis',
    'dataDir',
    'validatorKey',
    'validatorKeyFile',
    'nodeKey',
    'nodeKeyFile',
    'p2p',
    'rpc',
    'mempool',
    'storage',
    'hub',
  ])
  if (isObject(c.p2p))
    only(c.p2p, 'p2p.', ['host', 'tcpPort', 'wsPort', 'webrtcDirectPort', 'bootstrap', 'announce', 'relay', 'connections'])
  if (isObject(c.p2p) && isObject(c.p2p.connections)) only(c.p2p.connections, 'p2p.connections.', ['maxNonMembers', 'maxNonMembersPerIp'])
  if (isObject(c.rpc)) only(c.rpc, 'rpc.', ['host', 'port', 'rateLimit', 'query', 'limits'])
  if (isObject(c.rpc) && isObject(c.rpc.limits)) only(c.rpc.limits, 'rpc.limits.', RPC_LIMIT_FIELDS)
  if (isObject(c.rpc) && isObject(c.rpc.rateLimit)) only(c.rpc.rateLimit, 'rpc.rateLimit.', ['perSecond', 'burst'])
  if (isObject(c.rpc) && isObject(c.rpc.query)) only(c.rpc.query, 'rpc.query.', ['stepLimit', 'stepsPerSecond', 'stepsPerSecondPerClient'])
  if (typeof c.genesis !== 'string') bad('genesis', 'the path of the genesis file')
  if (typeof c.dataDir !== 'string' || c.dataDir.trim() === '') bad('dataDir', 'a directory path')
  for (const name of ['nodeKey', 'validatorKey'] as const) {
    const named = c[`${name}File`]
    if (named === undefined) continue
    if (c[name] !== undefined) bad(name, `given once: in the config or in ${name}File, not both`)
    const path =
      typeof named === 'string' && named.trim() !== '' ? named : bad(`${name}File`, 'the path of a key file (JSON with secretKey)')
    c[name] = readSecretKeyFile(pathFrom(file, path), `${name}File of ${file}`)
  }
  if (!key(c.nodeKey)) bad('nodeKey', 'a 32-byte secret as 0x and 64 hex digits (or nodeKeyFile: the path of a key file)')
  if (c.validatorKey !== undefined && !key(c.validatorKey))
    bad('validatorKey', 'a 32-byte secret as 0x and 64 hex digits (or validatorKeyFile: the path of a key file), or absent')
  const p2p = c.p2p
  if (!isObject(p2p)) bad('p2p', 'an object with tcpPort, wsPort and bootstrap')
  else {
    if (!port(p2p.tcpPort)) bad('p2p.tcpPort', 'a port number (0 to 65535)')
    if (!port(p2p.wsPort)) bad('p2p.wsPort', 'a port number (0 to 65535)')
    if (p2p.webrtcDirectPort !== undefined && !port(p2p.webrtcDirectPort)) bad('p2p.webrtcDirectPort', 'a port number, or absent')
    if (!Array.isArray(p2p.bootstrap) || !p2p.bootstrap.every((a) => typeof a === 'string'))
      bad('p2p.bootstrap', 'a list of multiaddrs (strings)')
    if (p2p.host !== undefined && typeof p2p.host !== 'string') bad('p2p.host', 'an address to listen on, or absent')
    if (
      p2p.announce !== undefined &&
      !(Array.isArray(p2p.announce) && p2p.announce.every((a) => typeof a === 'string' && a.startsWith('/')))
    )
      bad('p2p.announce', 'a list of multiaddrs to announce (strings such as /dns4/node.example/tcp/7100), or absent')
    const relay = p2p.relay
    const relayFields = ['maxReservations', 'dataLimitBytes', 'durationLimitMs', 'connectionsPerSlot', 'connectionsPerSlotWindowMs']
    if (isObject(relay)) only(relay, 'p2p.relay.', relayFields)
    const count = (v: unknown) => v === undefined || (Number.isSafeInteger(v) && (v as number) > 0)
    if (relay !== undefined && relay !== false && !(isObject(relay) && relayFields.every((f) => count(relay[f]))))
      bad('p2p.relay', `false, absent, or an object with ${relayFields.join(', ')} (positive integers, each optional)`)
    const conns = p2p.connections
    if (conns !== undefined && !(isObject(conns) && count(conns.maxNonMembers) && count(conns.maxNonMembersPerIp)))
      bad('p2p.connections', 'an object with maxNonMembers and maxNonMembersPerIp (positive integers, each optional), or absent')
  }
  const rpc = c.rpc
  if (!isObject(rpc) || !port(rpc.port)) bad('rpc.port', 'a port number (0 to 65535)')
  else {
    if (rpc.host !== undefined && typeof rpc.host !== 'string') bad('rpc.host', 'an address to listen on, or absent')
    const limit = rpc.rateLimit
    const positive = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0
    if (limit !== undefined && !(isObject(limit) && positive(limit.perSecond) && positive(limit.burst) && (limit.burst as number) >= 1))
      bad('rpc.rateLimit', 'an object with perSecond and burst (positive numbers, burst at least 1), or absent')
    const query = rpc.query
    const steps = (v: unknown) => v === undefined || (Number.isSafeInteger(v) && (v as number) > 0)
    if (
      query !== undefined &&
      !(isObject(query) && steps(query.stepLimit) && steps(query.stepsPerSecond) && steps(query.stepsPerSecondPerClient))
    )
      bad('rpc.query', 'an object with stepLimit, stepsPerSecond and stepsPerSecondPerClient (positive integers, each optional), or absent')
    const limits = rpc.limits
    if (limits !== undefined && !isObject(limits)) bad('rpc.limits', `an object with any of ${RPC_LIMIT_FIELDS.join(', ')}, or absent`)
    else if (limits !== undefined) checkRpcLimits(limits, file, bad)
  }
  const pool = c.mempool
  if (isObject(pool)) only(pool, 'mempool.', ['maxTransactions', 'maxBytes', 'maxPerSender'])
  const limit = (v: unknown) => v === undefined || (Number.isSafeInteger(v) && (v as number) > 0)
  if (pool !== undefined && !(isObject(pool) && limit(pool.maxTransactions) && limit(pool.maxBytes) && limit(pool.maxPerSender)))
    bad('mempool', 'an object with maxTransactions, maxBytes and maxPerSender (positive integers, each optional), or absent')
  const storage = c.storage
  if (isObject(storage)) only(storage, 'storage.', ['cacheSize', 'writeBufferSize'])
  if (storage !== undefined && !(isObject(storage) && limit(storage.cacheSize) && limit(storage.writeBufferSize)))
    bad('storage', 'an object with cacheSize and writeBufferSize (positive integers of bytes, each optional), or absent')
  if (c.hub !== undefined && typeof c.hub !== 'boolean') bad('hub', 'true, false or absent')
  if (c.hub === true && c.validatorKey === undefined)
    bad('hub', "false or absent on a node without validatorKey (a hub runs with the validator's account)")
  // Last, so that what is wrong in a config is named first: a secret in the config itself.
  const inline = (['validatorKey', 'nodeKey'] as const).filter((k) => c[k] !== undefined && c[`${k}File`] === undefined)
  if (inline.length > 0) {
    keptFromOthers(
      mode,
      file,
      `the config ${file}, which holds a secret key (${inline.join(', ')}),`,
      `, or move ${inline.length > 1 ? 'each key to a file of its own' : 'the key to a file of its own'} (${inline.map((k) => `${k}File`).join(', ')})`,
    )
  }
  return c as unknown as NodeConfig
}

/**
 * The secret of a key file (JSON with `secretKey`, as `keys new --out` writes; its `publicKey`
 * and `address`, when there, must be the secret's), which other users may not read. `what` says
 * where the file was named. Throws an `Error` with a one-line message.
 */
export function readSecretKeyFile(path: string, what: string): string {
  return secretKeyIn(readKeyFile(path, what), path, what)
}

/** A key file's JSON and mode, from one open file ({@link openJson}); throws an `Error` naming the file and `what` it is. */
export function readKeyFile(path: string, what: string): { json: unknown; mode: number } {
  try {
    return openJson(path)
  } catch (e) {
    throw new Error(`the key file ${path} (${what}) ${e instanceof NotJson ? 'is' : 'cannot be read:'} ${(e as Error).message}`)
  }
}

/** The secret in a key file as {@link readKeyFile} read it: refused if other users may read the file, or its parts disagree. */
export function secretKeyIn(file: { json: unknown; mode: number }, path: string, what: string): string {
  keptFromOthers(file.mode, path, `the key file ${path} (${what})`, '')
  const j = file.json
  const o = (typeof j === 'object' && j !== null ? j : {}) as { secretKey?: unknown; publicKey?: unknown; address?: unknown }
  if (typeof o.secretKey !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(o.secretKey))
    throw new Error(`the key file ${path} (${what}) has no secretKey (0x and 64 hex digits); make one with: loopchain keys new --out FILE`)
  const pair = keyPairFromSecret(fromHex(o.secretKey), nativeCrypto)
  // A hand-edited file whose parts disagree: which one was meant cannot be told.
  if (o.publicKey !== undefined && String(o.publicKey).toLowerCase() !== `0x${toHex(pair.publicKey)}`)
    throw new Error(`the key file ${path} (${what}): its publicKey is not its secretKey's`)
  if (o.address !== undefined && o.address !== pair.address)
    throw new Error(`the key file ${path} (${what}): its address is not its secretKey's`)
  return o.secretKey
}

/**
 * Refuses a file holding a secret that users other than its owner may read or write (any of the
 * mode's group and other bits), as ssh refuses such a private key. Not on Windows, whose
 * permissions are not modes.
 */
function keptFromOthers(mode: number, path: string, what: string, orElse: string): void {
  if (process.platform === 'win32') return
  if ((mode & 0o077) !== 0) {
    throw new Error(`${what} is open to other users (mode ${mode.toString(8).padStart(3, '0')}): run chmod 600 ${path}${orElse}`)
  }
}

/** `path` as a config (or key file) at `file` names it: relative to the file's directory. */
export function pathFrom(file: string, path: string): string {
  return isAbsolute(path) ? path : join(dirname(resolve(file)), path)
}

/** A file that is not JSON; its message never quotes the file. */
class NotJson extends Error {}

/**
 * A JSON file's value and its mode (permission bits), both from one open file: no other file can
 * take its place between the two. Throws {@link NotJson} for text that is not JSON, with the
 * parser's message only when it quotes none of the text: V8's quotes the characters around the
 * error, and the file may hold a secret. Other errors (no such file, no permission) as they come.
 */
function openJson(path: string): { json: unknown; mode: number } {
  const fd = openSync(path, 'r')
  try {
    const mode = fstatSync(fd).mode & 0o777
    const text = readFileSync(fd, 'utf8')
    try {
      return { json: JSON.parse(text), mode }
    } catch (e) {
      const m = (e as Error).message
      // Every form of V8's message that quotes the text has it in double quotes; "Expected ',' or
      // '}'" and its kin hold only grammar, and are worth showing.
      if (!m.includes('"')) throw new NotJson(`not JSON: ${m}`)
      const at = /position (\d+)/.exec(m)
      throw new NotJson(
        `not JSON (${at ? `at character ${Number(at[1]) + 1}; ` : ''}the parser’s message is not shown: it quotes the file)`,
      )
    }
  } finally {
    closeSync(fd)
  }
}

/** A JSON file's value, as {@link openJson} reads it; throws an `Error` with a one-line message that never quotes the file. */
export function readJsonFile(path: string): unknown {
  try {
    return openJson(path).json
  } catch (e) {
    throw new Error(e instanceof NotJson ? `it is ${e.message}` : (e as Error).message)
  }
}

/** Each limit a positive integer, and none below one it must hold (checked with the defaults of those left out). */
function checkRpcLimits(limits: Record<string, unknown>, file: string, bad: (field: string, want: string) => never): void {
  for (const f of RPC_LIMIT_FIELDS) {
    const v = limits[f]
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) > 0)) bad(`rpc.limits.${f}`, 'a positive integer, or absent')
  }
  // A limit set below one it must hold would refuse every request it is meant to let through.
  const at = (f: RpcLimitName) => (limits[f] as number | undefined) ?? RPC_LIMIT_DEFAULTS[f]
  const named = (f: RpcLimitName) => `rpc.limits.${f} (${at(f)}${limits[f] === undefined ? ', the default' : ''})`
  const atLeast = (big: RpcLimitName, small: RpcLimitName) => {
    if (at(big) < at(small))
      throw new Error(`the config ${file}: ${named(big)} is below ${named(small)}: one request or client would be refused whatever it sent`)
  }
  atLeast('maxBodyBytesInProgressPerClient', 'maxBodyBytes')
  atLeast('maxBodyBytesInProgress', 'maxBodyBytesInProgressPerClient')
  atLeast('maxWebSockets', 'maxWebSocketsPerClient')
  atLeast('maxConnections', 'maxConnectionsPerClient')
  // Left out, the connection caps make room for the WebSocket ones (the server's defaults).
  if (limits.maxConnectionsPerClient !== undefined) atLeast('maxConnectionsPerClient', 'maxWebSocketsPerClient')
  if (limits.maxConnections !== undefined) atLeast('maxConnections', 'maxWebSockets')
  atLeast('maxBufferedBytesPerClient', 'maxBufferedBytes')
}

/** Where a local client reaches a node listening on `host` (an unspecified address means loopback). */
export function localHost(host: string | undefined): string {
  return host && host !== '0.0.0.0' ? host : '127.0.0.1'
}
