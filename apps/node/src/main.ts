/**
 * `loopchain`: the command line of a loopchain node.
 *
 *   loopchain init --validators 4 --out ./net      keys, a genesis and one config per node
 *   loopchain start --config ./net/node-0/config.json
 *   loopchain keys new
 *   loopchain example token --out token.js
 *   loopchain tx deploy --key ./net/faucet.json --code token.js --wait
 *   loopchain --help
 *
 * The client commands (status, tx, call, cert) talk to a node's JSON-RPC; see tx.ts and cert.ts.
 */
import { spawn } from 'node:child_process'
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  DEFAULT_PARAMS,
  ESCROW_SOURCE,
  fromHex,
  type Genesis,
  genesisToJson,
  initEngine,
  keyPairFromSecret,
  makeValidatorSet,
  parseGenesis,
  Right,
  TOKEN_SOURCE,
  to0x,
} from '@loopchain/core'
// The node runtime (libp2p, LevelDB), the hub and the web server load only in the commands that
// run them (init, start, devnet): loading them took ~1.7 s of every status, tx or cert command.
import type { NodeLogger } from '@loopchain/node'
import { nativeCrypto, verifiesWithSodium } from '@loopchain/node/client'
import { certExport, certIssue, certRenew, certRevoke, certVerify } from './cert.js'
import { checkArgs, fail, flag, wholeFlag, writeNewFile } from './cli.js'
import { type NodeConfig, pathFrom, readNodeConfig } from './config.js'
import { genesisCheck, genesis as genesisFromCards, member } from './consortium.js'
import { type DevnetShown, devnetLine } from './devnet-output.js'
import { COMMAND_FLAGS, HELP, helpFor } from './help.js'
import { status } from './status.js'
import { call, txCall, txDeploy, txSend } from './tx.js'
import type { WebServer } from './web.js'

const random32 = () => globalThis.crypto.getRandomValues(new Uint8Array(32))

/** Whether the node's logs still go to stdout: once a write there fails (its reader is gone), they go to stderr. */
let stdoutOpen = true

/** JSON-lines logger for operators and log shippers. */
function jsonLogger(node: string): NodeLogger {
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    const text = `${JSON.stringify({ t: new Date().toISOString(), level, node, msg, ...fields })}\n`
    if (stdoutOpen) process.stdout.write(text)
    else process.stderr.write(text)
  }
  const debug = process.env.LOOPCHAIN_LOG === 'debug' ? line('debug') : () => {}
  return { info: line('info'), warn: line('warn'), error: line('error'), debug }
}

/**
 * How often a network made by `init` produces a block when no transaction waits. Channel challenge
 * periods and payment expiries count blocks: on a chain that only makes blocks for transactions,
 * an idle chain would hold a unilateral close, and the money in it, until someone else transacts.
 * An empty block costs each node about 1.5 KB of records (measured on a 4-validator devnet: the
 * block 500 bytes, its header 283, commit 259, result 346, the rest 78): some 25 MB a day at 5 s.
 */
const INIT_EMPTY_BLOCK_INTERVAL_MS = 5000

async function init(args: string[]): Promise<void> {
  const n = wholeFlag(args, 'validators', 4)
  const out = flag(args, 'out') ?? fail('init needs --out DIR')
  const chainId = flag(args, 'chain-id') ?? 'loopchain-devnet'
  const basePort = wholeFlag(args, 'base-port', 27600)
  const emptyBlockIntervalMs = wholeFlag(args, 'empty-block-interval-ms', INIT_EMPTY_BLOCK_INTERVAL_MS)
  if (!Number.isInteger(n) || n < 1 || n > 64) fail('--validators must be 1 to 64')
  if (!Number.isSafeInteger(emptyBlockIntervalMs) || emptyBlockIntervalMs < 0)
    fail('--empty-block-interval-ms must be a whole number of milliseconds (0: no empty blocks)')
  // Each node takes three ports from basePort + 10·i, the observer the last three.
  const lastPort = basePort + 10 * n + 2
  if (!Number.isInteger(basePort) || basePort < 1 || lastPort > 65535)
    fail(
      `--base-port must be a port from 1 to ${65535 - 10 * n - 2}: ${n} validators and an observer use it up to ${n * 10 + 2} ports above`,
    )
  // A network's keys are made once: writing over them would leave its data directories (and
  // anyone who holds its keys) with a genesis that no longer exists, and the old secrets gone.
  for (const file of [
    'genesis.json',
    'faucet.json',
    'observer/config.json',
    ...Array.from({ length: 64 }, (_, i) => `node-${i}/config.json`),
  ]) {
    if (existsSync(join(out, file)))
      fail(`${join(out, file)} exists: ${out} holds a network already; choose another --out, or delete that directory to start over`)
  }
  const nodes = Array.from({ length: n }, (_, i) => ({ i, validator: keyPairFromSecret(random32(), nativeCrypto), nodeSecret: random32() }))
  const faucet = keyPairFromSecret(random32(), nativeCrypto)
  // An observer institution: a member node that follows the chain and serves reads, never votes.
  const observer = { account: keyPairFromSecret(random32(), nativeCrypto), nodeSecret: random32() }
  const genesis: Genesis = {
    chainId,
    networkId: 1,
    timestamp: Date.now() * 1000,
    validators: makeValidatorSet(nodes.map((x) => ({ address: x.validator.address, publicKey: x.validator.publicKey, power: 1 }))),
    members: [
      ...nodes.map((x) => ({
        id: `institution-${x.i}`,
        name: `Institution ${x.i}`,
        address: x.validator.address,
        nodeKey: keyPairFromSecret(x.nodeSecret, nativeCrypto).publicKey,
        rights: Right.Validator | Right.MemberNode | Right.Issuer | Right.Deployer,
      })),
      {
        id: 'observer',
        name: 'Observer',
        address: observer.account.address,
        nodeKey: keyPairFromSecret(observer.nodeSecret, nativeCrypto).publicKey,
        rights: Right.MemberNode | Right.Observer,
      },
      // Deploying needs a member with the deployer right: the faucet is one, so that a developer on a
      // fresh network deploys with the one key it hands out. It runs no node and never votes.
      { id: 'faucet', name: 'Faucet', address: faucet.address, nodeKey: undefined, rights: Right.Deployer },
    ],
    // Institutions' accounts hold working funds too: fees, watchtower challenges, a hub's channel deposits.
    // Sorted by address, as the genesis requires.
    balances: [
      { address: faucet.address, amount: 10n ** 30n },
      ...nodes.map((x) => ({ address: x.validator.address, amount: 10n ** 24n })),
    ].sort((a, b) => (a.address < b.address ? -1 : 1)),
    params: { ...DEFAULT_PARAMS, emptyBlockIntervalMs },
  }
  // Checked as `start` will read it (the chain id's form, say) before anything is written.
  try {
    parseGenesis(genesisToJson(genesis))
  } catch (e) {
    fail(`init would write a genesis that nodes refuse: ${(e as Error).message}`)
  }
  // Made whole first, then written; a write that fails takes back the ones before it.
  const files: { path: string; text: string; mode: number }[] = [
    { path: 'genesis.json', text: `${JSON.stringify(genesisToJson(genesis), null, 2)}\n`, mode: 0o644 },
    {
      path: 'faucet.json',
      text: `${JSON.stringify({ secretKey: to0x(faucet.secretKey), address: faucet.address }, null, 2)}\n`,
      mode: 0o600,
    },
  ]
  const { peerIdFromNodeKey } = await import('@loopchain/node')
  const peerIds = await Promise.all(nodes.map((x) => peerIdFromNodeKey(x.nodeSecret)))
  for (const x of nodes) {
    const tcp = basePort + 10 * x.i
    const config: NodeConfig = {
      genesis: '../genesis.json',
      dataDir: 'data',
      validatorKey: to0x(x.validator.secretKey),
      nodeKey: to0x(x.nodeSecret),
      p2p: {
        tcpPort: tcp,
        wsPort: tcp + 1,
        bootstrap: nodes.filter((y) => y.i !== x.i).map((y) => `/ip4/127.0.0.1/tcp/${basePort + 10 * y.i}/p2p/${peerIds[y.i]}`),
      },
      rpc: { port: tcp + 2 },
      // The first institution's node is the network's channel hub.
      ...(x.i === 0 ? { hub: true } : {}),
    }
    files.push({ path: `node-${x.i}/config.json`, text: `${JSON.stringify(config, null, 2)}\n`, mode: 0o600 })
  }
  const observerDir = join(out, 'observer')
  const obsPort = basePort + 10 * n
  const observerConfig: NodeConfig = {
    genesis: '../genesis.json',
    dataDir: 'data',
    nodeKey: to0x(observer.nodeSecret),
    p2p: {
      tcpPort: obsPort,
      wsPort: obsPort + 1,
      bootstrap: nodes.map((y) => `/ip4/127.0.0.1/tcp/${basePort + 10 * y.i}/p2p/${peerIds[y.i]}`),
    },
    rpc: { port: obsPort + 2 },
  }
  files.push({ path: 'observer/config.json', text: `${JSON.stringify(observerConfig, null, 2)}\n`, mode: 0o600 })
  writeAllOrNone(out, files)
  process.stdout.write(`${JSON.stringify({ out: resolve(out), chainId, validators: n, observer: observerDir, faucet: faucet.address })}\n`)
}

/**
 * Writes `files` (paths relative to `out`) as new files, making the directories they need; when
 * one cannot be written (a full disk, a path through a file), what was written and made is removed
 * and the command fails with one line: a half-written network could not be used, nor made again.
 */
function writeAllOrNone(out: string, files: readonly { path: string; text: string; mode: number }[]): void {
  const made: string[] = []
  try {
    for (const f of files) {
      const file = join(out, f.path)
      const first = mkdirSync(dirname(file), { recursive: true })
      if (first !== undefined) made.push(first)
      const existed = existsSync(file)
      try {
        writeFileSync(file, f.text, { flag: 'wx', mode: f.mode })
      } finally {
        // Made, whole or not (a disk that filled while writing leaves it empty); not one that was there before.
        if (!existed && existsSync(file)) made.push(file)
      }
    }
  } catch (e) {
    for (const p of made.reverse()) rmSync(p, { recursive: true, force: true })
    fail(`cannot write the network to ${out}: ${(e as Error).message}; nothing was left behind`)
  }
}

/** One line for an operator from a start-up failure (a locked database, a port in use) instead of a stack. */
function startupProblem(e: unknown, file: string): string {
  const message = e instanceof Error ? e.message : String(e)
  const inUse = /EADDRINUSE\D*?((?:\d+\.){3}\d+:\d+|\[[0-9a-f:]*\]:\d+)/.exec(message)
  if (inUse) return `${inUse[1]} is already in use (another node, or another program, on that port?); the ports are set in ${file}`
  return message.split('\n')[0] as string
}

async function start(args: string[]): Promise<void> {
  // For --exit-with-parent: the starter's pid as it passed it (devnet and the benchmark do, so a
  // starter killed before this line runs is seen too), else the parent's now, before anything slow.
  const parent = Number(process.env.LOOPCHAIN_PARENT_PID) || process.ppid
  const file = flag(args, 'config') ?? fail('start needs --config FILE')
  if (!existsSync(file)) fail(`no config at ${file}`)
  const at = (p: string) => pathFrom(file, p)
  let config: NodeConfig
  try {
    config = readNodeConfig(file)
  } catch (e) {
    fail((e as Error).message)
  }
  const genesisFile = at(config.genesis)
  let genesis: Genesis
  try {
    genesis = parseGenesis(JSON.parse(readFileSync(genesisFile, 'utf8')))
  } catch (e) {
    fail(`the genesis ${genesisFile} (from ${file}) cannot be used: ${(e as Error).message}`)
  }
  const log = jsonLogger(dirname(resolve(file)).split('/').pop() ?? 'node')
  // A promise nobody awaited (here or in a library) is a bug to fix, not a reason to take a
  // validator down: it is logged with its stack and the node goes on. A synchronous exception
  // still ends the process; the WAL and the atomic block writes make the restart safe.
  process.on('unhandledRejection', (e) =>
    log.error('unhandled rejection (a bug; the node goes on)', { error: String(e), stack: (e as Error | undefined)?.stack }),
  )
  const { connectNode, FullNode, memberPeerIds, nodeRpcMethods, RpcDispatcher, startRpcServer } = await import('@loopchain/node')
  // What is running so far, stopped from the outside in (by Ctrl-C, SIGTERM, or the node halting).
  const parts: {
    rpc?: { close(): Promise<void> }
    hub?: { stop(): Promise<void> }
    host?: { stop(): Promise<void> }
    node?: { stop(): Promise<void> }
  } = {}
  let stopping = false
  const stop = async (code: number) => {
    if (stopping) return
    stopping = true
    log.info('stopping', code ? { exitCode: code } : {})
    try {
      await parts.rpc?.close()
      await parts.hub?.stop()
      await parts.host?.stop()
      await parts.node?.stop()
    } catch (e) {
      log.error('stop failed', { error: String(e) })
      process.exit(1)
    }
    process.exit(code)
  }
  // A second Ctrl-C (or SIGTERM) does not wait for the first: what is committed is safe, as after
  // kill -9. One that comes within a second of the first is the same request delivered twice (a
  // terminal signals the whole group while npm, or the devnet, passes it on too), not a second one.
  let firstSignalAt: number | undefined
  const onSignal = (signal: string) => {
    const now = Date.now()
    if (firstSignalAt === undefined) {
      firstSignalAt = now
      return void stop(0)
    }
    if (now - firstSignalAt < REPEATED_SIGNAL_MS) return
    log.warn(`${signal} again: the node exits now`)
    process.exit(1)
  }
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  // The logs cannot be written: whoever read them is gone (a closed pipe, EPIPE: `loopchain start
  // | head`, a killed supervisor), or their file's disk is full. Stop as on Ctrl-C, saying why on
  // stderr, instead of crashing on the next log line with a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (!stdoutOpen) return
    stdoutOpen = false
    const why = e.code === 'EPIPE' ? 'standard output is closed' : 'writing to standard output failed'
    log.warn(`${why}; the node stops`, { error: e.code ?? e.message })
    void stop(1)
  })
  // Nowhere left to say anything: nothing to do but go on stopping.
  process.stderr.on('error', () => {})
  if (args.includes('--exit-with-parent')) {
    // A node run by `devnet` (or a benchmark) stops with it, even when it is killed with -9 and
    // cannot stop its nodes: they would hold their databases and ports for the next run.
    const watch = setInterval(() => {
      if (process.ppid === parent) return
      clearInterval(watch)
      if (stopping) return
      log.warn('the process that started this node has exited; the node stops', { parentPid: parent })
      void stop(0)
    }, 1000)
    watch.unref()
  }
  const { startHub } = await import('./hub.js')
  try {
    const engine = await initEngine()
    const node = await FullNode.open({
      dataDir: at(config.dataDir),
      genesis,
      engine,
      logger: log,
      ...(config.validatorKey ? { validatorSecret: fromHex(config.validatorKey) } : {}),
      ...(config.mempool ? { mempool: config.mempool } : {}),
      ...(config.storage ? { storage: config.storage } : {}),
      // The node stopped itself (a block it could not write: a full disk, say): the process exits 1
      // so that its supervisor sees it; the database is whole up to the last block it wrote.
      onHalt: () => void stop(1),
    })
    parts.node = node
    const host = await connectNode(node, {
      nodeKey: fromHex(config.nodeKey),
      ...(config.p2p.host ? { listenHost: config.p2p.host } : {}),
      tcpPort: config.p2p.tcpPort,
      wsPort: config.p2p.wsPort,
      ...(config.p2p.webrtcDirectPort !== undefined ? { webrtcDirectPort: config.p2p.webrtcDirectPort } : {}),
      bootstrap: config.p2p.bootstrap,
      ...(config.p2p.announce !== undefined ? { announce: config.p2p.announce } : {}),
      ...(config.p2p.relay !== undefined ? { relay: config.p2p.relay } : {}),
      ...(config.p2p.connections !== undefined ? { connections: config.p2p.connections } : {}),
      logger: log,
    })
    parts.host = host
    const rpc = await startRpcServer({
      dispatcher: new RpcDispatcher(
        nodeRpcMethods(node, host, {
          ...(config.rpc.query?.stepLimit !== undefined ? { queryStepLimit: config.rpc.query.stepLimit } : {}),
          ...(config.rpc.query?.stepsPerSecond !== undefined ? { queryStepsPerSecond: config.rpc.query.stepsPerSecond } : {}),
          ...(config.rpc.query?.stepsPerSecondPerClient !== undefined
            ? { queryStepsPerSecondPerClient: config.rpc.query.stepsPerSecondPerClient }
            : {}),
        }),
        {
          title: 'loopchain',
          version: '0.1.0',
          onError: (e, m) => log.error('rpc method failed', { method: m, error: String(e) }),
        },
      ),
      ...(config.rpc.host ? { host: config.rpc.host } : {}),
      ...(config.rpc.rateLimit ? { rateLimit: config.rpc.rateLimit } : {}),
      ...config.rpc.limits,
      port: config.rpc.port,
      health: () => ({
        ok: node.failure === undefined,
        height: node.height,
        peers: host.connections().length,
        ...(node.failure ? { error: node.failure.message } : {}),
      }),
      metrics: () =>
        node.metrics({
          loopchain_peers: { value: host.connections().length, help: 'Open libp2p connections (full nodes and light clients).' },
          loopchain_peers_banned: {
            value: host.bannedPeers().length,
            help: 'Peers refused for now: graylisted for invalid gossip, or banned for a sync answer that cannot be honest.',
          },
          loopchain_member_nodes: {
            value: node.admittedNodeKeys.size,
            help: 'Member nodes the committed state admits to the members’ topics.',
          },
          loopchain_relay_reservations: {
            value: host.relay()?.reservations ?? 0,
            help: 'Circuit-relay slots held by light clients (browsers reachable through this node).',
          },
          loopchain_relay_refused_total: {
            value: host.relay()?.refusedConnections ?? 0,
            help: 'Relayed connection attempts refused since the start between two addresses that used their budget (p2p.relay.connectionsPerSlot).',
            type: 'counter',
          },
          loopchain_node_admitted: {
            value: memberPeerIds(node).has(host.peerId) ? 1 : 0,
            help: '1 while the committed state admits this node to the members’ topics; 0: it follows by block sync (alert on a validator at 0).',
          },
        }),
      logger: log,
    })
    parts.rpc = rpc
    node.start()
    const hub =
      config.hub && config.validatorKey
        ? await startHub(node, host, keyPairFromSecret(fromHex(config.validatorKey), nativeCrypto), genesis, log)
        : undefined
    if (hub) parts.hub = hub
    log.info('node ready', {
      height: node.height,
      rpc: rpc.url,
      p2p: host.multiaddrs(),
      peerId: host.peerId,
      signatureChecks: verifiesWithSodium()
        ? 'libsodium (OpenSSL decides where the two may differ: R or key of small order, or not canonical)'
        : 'OpenSSL',
      ...(node.store.settings ? { storage: node.store.settings } : {}),
      ...(hub ? { hubInvite: hub.invite() } : {}),
    })
  } catch (e) {
    // A locked database or a port in use is the operator's to fix: one line, not a stack.
    const problem = startupProblem(e, file)
    log.error('start failed', { error: problem })
    process.stderr.write(`loopchain: cannot start: ${problem}\n`)
    await stop(1)
  }
}

/** `path` relative to the working directory when it is inside it, else as it is. */
const shortPath = (path: string): string => {
  const r = relative(process.cwd(), path)
  return r === '' || r.startsWith('..') || isAbsolute(r) ? path : r
}

/** Signals within this long of the first are one request to stop, delivered twice (see `start`). */
const REPEATED_SIGNAL_MS = 1000

/** What `init` and the devnet's web server put in a devnet's directory (what `--fresh` may delete). */
const DEVNET_ENTRIES = /^(genesis\.json|faucet\.json|observer|web|node-\d+)$/

async function devnet(args: string[]): Promise<void> {
  const dir = resolve(flag(args, 'dir') ?? '.devnet')
  const n = flag(args, 'validators') ?? '4'
  const basePort = wholeFlag(args, 'base-port', 27600)
  const stopWait = wholeFlag(args, 'stop-wait', 20)
  if (stopWait < 1 || stopWait > 3600) fail(`--stop-wait must be from 1 to 3600 seconds, not ${stopWait}`)
  if (args.includes('--fresh') && existsSync(dir)) {
    // Only what a devnet made: a mistyped --dir must not take anything else with it.
    const foreign = readdirSync(dir).filter((e) => !DEVNET_ENTRIES.test(e))
    if (foreign.length > 0 || !existsSync(join(dir, 'genesis.json')))
      fail(
        `--fresh deletes a devnet's directory, and ${shortPath(dir)} does not look like one (${foreign.length > 0 ? `it holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}` : 'no genesis.json'}): nothing was deleted`,
      )
    rmSync(dir, { recursive: true, force: true })
  } else if (existsSync(join(dir, 'genesis.json')) && (flag(args, 'validators') !== undefined || flag(args, 'base-port') !== undefined)) {
    process.stdout.write(
      `devnet: ${shortPath(dir)} holds a network already, started as it was made: --validators and --base-port apply to a new one (--fresh, or another --dir)\n`,
    )
  }
  if (!existsSync(join(dir, 'genesis.json'))) await init(['--validators', n, '--out', dir, '--base-port', String(basePort)])
  try {
    parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
  } catch (e) {
    // Most likely made by an earlier version (a chain parameter added since): say what to do,
    // before five nodes each fail with the same message.
    fail(
      `the devnet in ${shortPath(dir)} cannot start: its genesis cannot be used (${(e as Error).message}). ` +
        `If an earlier version of loopchain made it, start over with: npm run devnet -- --fresh (this deletes ${shortPath(dir)})`,
    )
  }
  const configs = [
    ...Array.from({ length: 64 }, (_, i) => join(dir, `node-${i}`, 'config.json')),
    join(dir, 'observer', 'config.json'),
  ].filter((f) => existsSync(f))
  const self = fileURLToPath(import.meta.url)
  const nameOf = (config: string) => config.split('/').slice(-2, -1)[0] ?? 'node'
  const shown: DevnetShown = { height: 0 }
  let stopping = false
  const children = configs.map((config) => {
    const name = nameOf(config)
    // tsx as this command resolves it: `--import tsx` alone resolves from the working directory.
    const child = spawn(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), self, 'start', '--config', config, '--exit-with-parent'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, LOOPCHAIN_PARENT_PID: String(process.pid) },
      },
    )
    // The whole log, for when the terminal's excerpt is not enough; the previous run's is kept beside it.
    const logPath = join(dirname(config), 'node.log')
    if (existsSync(logPath)) renameSync(logPath, `${logPath}.1`)
    const logFile = createWriteStream(logPath)
    logFile.on('error', (e) => process.stdout.write(`${name.padEnd(8)} cannot write ${shortPath(logPath)}: ${e.message}\n`))
    let buffered = ''
    child.stdout.on('data', (d: Buffer) => {
      logFile.write(d)
      buffered += d.toString()
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        const out = devnetLine(name, line, shown)
        if (out !== undefined) process.stdout.write(`${out}\n`)
      }
    })
    // Its output has all arrived once its pipes close: the file is ended then, not cut short.
    child.once('close', () => logFile.end())
    child.on('exit', (code, signal) => {
      if (stopping) process.stdout.write(`${name} stopped\n`)
      else {
        process.stdout.write(
          `${name} exited (${signal ?? code}); its log: ${shortPath(logPath)}. To restart it: npx loopchain start --config ${shortPath(config)}\n`,
        )
        // Every node gone and none of them stopped cleanly (each failed, or was killed): the devnet
        // failed. Nodes stopped on purpose (exit 0) leave it running, serving the page.
        if (children.every((c) => c.exitCode !== null || c.signalCode !== null) && children.every((c) => c.exitCode !== 0)) {
          process.stdout.write('devnet: every node has exited, none cleanly\n')
          process.exit(1)
        }
      }
    })
    return child
  })
  const validators = configs.filter((c) => nameOf(c).startsWith('node-')).length
  process.stdout.write(
    `devnet: ${validators} validators${configs.length > validators ? ' and an observer' : ''} from ${dir}; faucet key in ${join(dir, 'faucet.json')}; Ctrl-C stops\n`,
  )
  let web: WebServer | undefined
  if (!args.includes('--no-web')) {
    // The page is a convenience next to the nodes: if it cannot be built or served, the network still runs.
    const webPort = wholeFlag(args, 'web-port', basePort + 100)
    import('./web.js')
      .then(({ startDevnetWeb }) => startDevnetWeb(dir, configs, webPort))
      .then(
        (w) => {
          web = w
          process.stdout.write(`web app: ${w.url}\n`)
        },
        (e: unknown) => process.stdout.write(`web app: not served (${(e as Error).message})\n`),
      )
  }
  const running = () => children.filter((c) => c.exitCode === null && c.signalCode === null)
  let stopAskedAt = 0
  const stop = () => {
    if (stopping) {
      // The same Ctrl-C delivered twice (by the terminal and by npm): keep waiting.
      if (Date.now() - stopAskedAt < REPEATED_SIGNAL_MS) return
      // Ctrl-C again: do not wait.
      for (const c of running()) c.kill('SIGKILL')
      process.exit(1)
    }
    stopping = true
    stopAskedAt = Date.now()
    for (const c of children) c.kill('SIGTERM')
    web?.close().catch(() => undefined)
    // Exit once every node has stopped and closed its database, so that the next `devnet` finds
    // them free; a node still running after --stop-wait (20 s) is killed (its database is safe:
    // see the WAL).
    void Promise.all(running().map((c) => new Promise((r) => c.once('exit', r)))).then(() => process.exit(0))
    setTimeout(() => {
      for (const c of running()) {
        process.stdout.write(
          `${nameOf(c.spawnargs[c.spawnargs.indexOf('--config') + 1] ?? '')} did not stop within ${stopWait} s: killed\n`,
        )
        c.kill('SIGKILL')
      }
      process.exit(1)
    }, stopWait * 1000).unref()
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

/**
 * `keys new`: a fresh key pair. With `--out FILE` the secret goes only to that file (created for
 * its owner alone; an existing file is never overwritten) and the public part is printed.
 */
function keysNew(args: string[]): void {
  const k = keyPairFromSecret(random32(), nativeCrypto)
  const pair = { secretKey: to0x(k.secretKey), publicKey: to0x(k.publicKey), address: k.address }
  const out = flag(args, 'out')
  if (out === undefined) {
    process.stdout.write(`${JSON.stringify(pair, null, 2)}\n`)
    return
  }
  writeNewFile(out, `${JSON.stringify(pair, null, 2)}\n`, 'keys new never overwrites a key file', 0o600)
  process.stdout.write(`${JSON.stringify({ file: resolve(out), publicKey: pair.publicKey, address: pair.address }, null, 2)}\n`)
}

/** `example token|escrow`: an example SCORE's source, printed or written to a new file. */
function example(name: 'token' | 'escrow', args: string[]): void {
  const source = `${(name === 'token' ? TOKEN_SOURCE : ESCROW_SOURCE).trim()}\n`
  const out = flag(args, 'out')
  if (out === undefined) {
    process.stdout.write(source)
    return
  }
  writeNewFile(out, source, 'example never overwrites a file')
  process.stdout.write(`${JSON.stringify({ file: resolve(out), bytes: Buffer.byteLength(source) })}\n`)
}

async function main(args: string[]): Promise<void> {
  const [cmd, sub] = args
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP)
    return
  }
  const asked = args.findIndex((a) => a === '--help' || a === '-h')
  if (asked > 0) {
    // `loopchain tx send --help`: that command's entry, or all of them for an unknown one.
    process.stdout.write(helpFor(args.slice(0, Math.min(asked, 2)).filter((a) => !a.startsWith('-'))) || HELP)
    return
  }
  // Two-word commands (`tx send`) first; an unknown one falls through to the message below.
  const pair = `${cmd} ${sub}`
  const [command, rest] = COMMAND_FLAGS[pair] ? [pair, args.slice(2)] : [cmd, args.slice(1)]
  const spec = COMMAND_FLAGS[command]
  if (spec !== undefined) checkArgs(command, rest, spec)
  if (cmd === 'init') return init(args.slice(1))
  if (cmd === 'start') return start(args.slice(1))
  if (cmd === 'devnet') return devnet(args.slice(1))
  if (cmd === 'status') return status(args.slice(1))
  if (cmd === 'tx' && sub === 'send') return txSend(args.slice(2))
  if (cmd === 'tx' && sub === 'deploy') return txDeploy(args.slice(2))
  if (cmd === 'tx' && sub === 'call') return txCall(args.slice(2))
  if (cmd === 'call') return call(args.slice(1))
  if (cmd === 'cert' && sub === 'issue') return certIssue(args.slice(2))
  if (cmd === 'cert' && sub === 'renew') return certRenew(args.slice(2))
  if (cmd === 'cert' && sub === 'revoke') return certRevoke(args.slice(2))
  if (cmd === 'cert' && sub === 'export') return certExport(args.slice(2))
  if (cmd === 'cert' && sub === 'verify') return certVerify(args.slice(2))
  if (cmd === 'keys' && sub === 'new') return keysNew(args.slice(2))
  if (cmd === 'member') return member(args.slice(1))
  if (cmd === 'genesis' && sub === 'check') return genesisCheck(args.slice(2))
  if (cmd === 'genesis' && sub === 'new') return genesisFromCards(args.slice(2))
  if (cmd === 'example' && (sub === 'token' || sub === 'escrow')) return example(sub, args.slice(2))
  fail(`unknown command '${args.join(' ')}'; try --help`)
}

await main(process.argv.slice(2))
