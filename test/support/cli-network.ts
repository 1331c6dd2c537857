/**
 * A small network of real nodes for end-to-end tests: `loopchain init` in a temporary directory,
 * then `loopchain start` per node as separate OS processes (libp2p on 127.0.0.1, LevelDB on
 * disk), with helpers to sign and send transactions over JSON-RPC and to address the nodes'
 * libp2p WebSockets listeners.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type Address,
  callDataCodec,
  encode,
  fromHex,
  type Genesis,
  GOVERNANCE_ADDRESS,
  type KeyPair,
  keyPairFromSecret,
  parseGenesis,
  signTransaction,
  TxKind,
  to0x,
  transactionCodec,
  type Value,
} from '@loopchain/core'
import { reservePortBlock } from '@loopchain/node'
import { peerIdFromNodeKey } from '../../packages/node/src/index.js'

const CLI = fileURLToPath(new URL('../../apps/node/src/main.ts', import.meta.url))

function cli(args: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Polls `f` until it returns a value (errors count as "not yet"). */
export async function waitFor<T>(f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    try {
      const v = await f()
      if (v !== undefined) return v
    } catch {
      // not up yet
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** A node of a {@link CliNetwork}: its config directory name and ports. */
export interface CliNode {
  readonly name: string
  readonly rpcPort: number
  readonly wsPort: number
}

/** A running network made by `loopchain init`; stop it with {@link CliNetwork.stop}. */
export class CliNetwork {
  private readonly procs = new Map<string, ChildProcess>()
  private readonly nonces = new Map<string, number>()
  /** Every node process that ended, in order: its exit code, or the signal that ended it. */
  readonly exits: { name: string; code: number | null; signal: NodeJS.Signals | null; killed: boolean }[] = []
  /** Processes this harness sent SIGKILL to (`killed` in {@link exits}). */
  private readonly killing = new WeakSet<ChildProcess>()
  /** Append each node's log lines to `<dir>/<name>.log` (kept across restarts). */
  logToFiles = false
  /** Node name → config, as `init` wrote it. */
  private constructor(
    readonly dir: string,
    readonly base: number,
    readonly validators: number,
  ) {}

  /**
   * Initialises `validators` validators and an observer in a temporary directory on a random
   * port range, and starts the named nodes (default all validators).
   */
  static async start(opts: {
    validators: number
    observer?: boolean
    log?: boolean
    logToFiles?: boolean
    /** The chain's empty-block interval; 0 (the default here): blocks only for transactions, so a test's tip stays put. */
    emptyBlockIntervalMs?: number
  }): Promise<CliNetwork> {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-e2e-'))
    // A block of ports no other test holds; node i uses base + 10·i (+1 ws, +2 rpc).
    const base = reservePortBlock()
    const net = new CliNetwork(dir, base, opts.validators)
    net.logToFiles = opts.logToFiles ?? false
    const init = cli([
      'init',
      '--validators',
      String(opts.validators),
      '--out',
      dir,
      '--base-port',
      String(base),
      '--empty-block-interval-ms',
      String(opts.emptyBlockIntervalMs ?? 0),
    ])
    await new Promise((resolve) => init.once('exit', resolve))
    const names = [...Array.from({ length: opts.validators }, (_, i) => `node-${i}`), ...(opts.observer ? ['observer'] : [])]
    for (const name of names) net.startNode(name, opts.log ?? Boolean(process.env.LOOPCHAIN_E2E_LOG))
    for (const name of names) await waitFor(() => net.rpc(name, 'lc_getNetworkInfo'), 90_000, name)
    return net
  }

  /** A node's ports (the observer sits after the validators). */
  node(name: string): CliNode {
    const i = name === 'observer' ? this.validators : Number(name.replace('node-', ''))
    const port = this.base + 10 * i
    return { name, rpcPort: port + 2, wsPort: port + 1 }
  }

  /** Starts `loopchain start` for the node whose config is at `<dir>/<name>/config.json`. */
  startNode(name: string, log = Boolean(process.env.LOOPCHAIN_E2E_LOG)): void {
    const p = cli(['start', '--config', join(this.dir, name, 'config.json')])
    const file = this.logToFiles ? join(this.dir, `${name}.log`) : undefined
    const toFile = (d: Buffer | string) => {
      try {
        if (file) appendFileSync(file, d)
      } catch (e) {
        // Once the network is stopped its directory is gone; the last lines have nowhere to go.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
      }
    }
    p.stdout?.on('data', (d: Buffer) => {
      if (log) process.stderr.write(`[${name}] ${d}`)
      toFile(d)
    })
    p.stderr?.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`))
    p.once('exit', (code, signal) => {
      this.exits.push({ name, code, signal, killed: this.killing.has(p) })
      toFile(`${JSON.stringify({ t: new Date().toISOString(), harness: 'process exited', code, signal })}\n`)
    })
    this.procs.set(name, p)
  }

  /** The genesis every node runs. */
  genesis(): Genesis {
    return parseGenesis(JSON.parse(readFileSync(join(this.dir, 'genesis.json'), 'utf8')))
  }

  private config(name: string): { nodeKey: string; validatorKey?: string } {
    return JSON.parse(readFileSync(join(this.dir, name, 'config.json'), 'utf8'))
  }

  /** The validator key of a validator node. */
  validatorKey(name: string): KeyPair {
    return keyPairFromSecret(fromHex(this.config(name).validatorKey as string))
  }

  /** The faucet's key (it holds the genesis balance). */
  faucet(): KeyPair {
    return keyPairFromSecret(fromHex(JSON.parse(readFileSync(join(this.dir, 'faucet.json'), 'utf8')).secretKey))
  }

  /** A node's libp2p WebSockets address, with its peer id. */
  async wsAddr(name: string): Promise<{ addr: string; peerId: string }> {
    const peerId = await peerIdFromNodeKey(fromHex(this.config(name).nodeKey))
    return { addr: `/ip4/127.0.0.1/tcp/${this.node(name).wsPort}/ws/p2p/${peerId}`, peerId }
  }

  /** Calls a JSON-RPC method on a node; a JSON-RPC error throws. */
  async rpc(name: string, method: string, params: object = {}): Promise<any> {
    const res = await fetch(`http://127.0.0.1:${this.node(name).rpcPort}/`, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    })
    const j = (await res.json()) as { result?: unknown; error?: { message: string } }
    if (j.error) throw new Error(`${method}: ${j.error.message}`)
    return j.result
  }

  /** Signs a transaction with the sender's next nonce (as this helper counts them). */
  sign(from: KeyPair, to: Address, kind: TxKind, data: Uint8Array, value = 0n): string {
    const nonce = this.nonces.get(from.address) ?? 0
    this.nonces.set(from.address, nonce + 1)
    const tx = signTransaction(
      { version: 1, networkId: 1, from: from.address, to, value, stepLimit: 10_000_000, timestamp: Date.now() * 1000, nonce, kind, data },
      from,
    )
    return to0x(encode(transactionCodec, tx))
  }

  /** Transactions this helper signed for `from`. */
  sent(from: KeyPair): number {
    return this.nonces.get(from.address) ?? 0
  }

  /** Sends a transaction to `node` and waits for its receipt. */
  send(tx: string, node = 'node-0'): Promise<any> {
    return this.rpc(node, 'lc_sendTransactionAndWait', { tx, timeoutMs: 30_000 })
  }

  /** A transfer from the faucet, committed. */
  transfer(to: Address, value = 1n): Promise<any> {
    return this.send(this.sign(this.faucet(), to, TxKind.Transfer, new Uint8Array(0), value))
  }

  /** A governance proposal by validator `name` (approved at once on a one-validator network), committed. */
  propose(name: string, action: Value): Promise<any> {
    const data = encode(callDataCodec, { method: 'propose', params: { action } })
    return this.send(this.sign(this.validatorKey(name), GOVERNANCE_ADDRESS, TxKind.Call, data))
  }

  /** Whether a node's process is running (started and not exited). */
  running(name: string): boolean {
    const p = this.procs.get(name)
    return p !== undefined && p.exitCode === null && p.signalCode === null
  }

  /** Kills one node (SIGKILL) or all. */
  kill(name?: string): void {
    for (const n of this.procs.keys()) if (name === undefined || n === name) this.signal(n, 'SIGKILL')
  }

  /** Sends a signal to one node's process (SIGSTOP / SIGCONT freeze and thaw it; SIGKILL is recorded as the harness's kill). */
  signal(name: string, signal: NodeJS.Signals): void {
    const p = this.procs.get(name)
    if (p === undefined) return
    if (signal === 'SIGKILL') this.killing.add(p)
    p.kill(signal)
  }

  /** Kills every node and removes the directory. */
  stop(): void {
    this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
