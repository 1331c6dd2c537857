/**
 * `loopchain devnet` as end-to-end tests run it: a separate process with its four validators, an
 * observer and the web app, on a port block of the test's own, stopped with its node processes at
 * the end. Shared by the web app's and the channels' tests.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const CLI = join(REPO, 'apps/node/src/main.ts')

/** A running devnet. */
export interface TestDevnet {
  /** The web app's URL. */
  readonly url: string
  /** node-0's JSON-RPC URL. */
  readonly rpcUrl: string
  /** Everything the devnet printed so far (for failure messages). */
  output(): string
  /** Calls node-0's JSON-RPC; throws the method's error. */
  rpc(method: string, params?: object): Promise<any>
  /** Polls `f` until it gives a value; the error names `what` and ends with the devnet's output. */
  waitFor<T>(f: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T>
  /** The node processes (`loopchain start`) the devnet runs now. */
  nodePids(): number[]
  stop(): Promise<void>
}

/** Runs the CLI to completion; resolves with its stdout, throws with its stderr on a non-zero exit. */
export function runLoopchain(args: string[], okCodes = [0]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d) => {
      out += d
    })
    p.stderr.on('data', (d) => {
      err += d
    })
    p.once('exit', (code) =>
      okCodes.includes(code ?? -1) ? resolve(out) : reject(new Error(`loopchain ${args.join(' ')}: exit ${code}\n${err}`)),
    )
  })
}

/** True while process `pid` exists. */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The `loopchain start` processes whose parent is `pid` (Linux /proc): a devnet's nodes. */
export function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
      // Field 4 (after the parenthesised command name) is the parent's pid.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      // Node processes only (`loopchain start`): building the page may leave an esbuild service beside them.
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0')
      if (ppid === pid && cmd.includes('start') && cmd.includes('--config')) out.push(Number(e))
    } catch {
      // The process ended while we looked.
    }
  }
  return out
}

/** Starts `loopchain devnet --dir dir --base-port base` and waits for the page and five nodes. */
export async function startTestDevnet(dir: string, base: number): Promise<TestDevnet> {
  let out = ''
  const devnet: ChildProcess = spawn(process.execPath, ['--import', 'tsx', CLI, 'devnet', '--dir', dir, '--base-port', String(base)], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  devnet.stdout?.on('data', (d) => {
    out += d
  })
  devnet.stderr?.on('data', (d) => {
    out += d
  })
  const rpcUrl = `http://127.0.0.1:${base + 2}/`
  const waitFor = async <T>(f: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> => {
    const until = Date.now() + ms
    for (;;) {
      const v = await f()
      if (v !== undefined) return v
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n${out.slice(-3000)}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  const stop = async () => {
    const nodes = devnet.pid ? childrenOf(devnet.pid) : []
    devnet.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 500))
    for (const pid of nodes) if (alive(pid)) process.kill(pid, 'SIGKILL')
    devnet.kill('SIGKILL')
  }
  try {
    const url = await waitFor(
      () => {
        if (out.includes('web app: not served')) throw new Error(`the devnet did not serve the page:\n${out}`)
        return /web app: (http\S+)/.exec(out)?.[1]
      },
      180_000,
      'the web app URL',
    )
    await waitFor(() => ((out.match(/ready at height/g) ?? []).length >= 5 ? true : undefined), 120_000, 'five nodes')
    return {
      url,
      rpcUrl,
      output: () => out,
      async rpc(method, params = {}) {
        const res = await fetch(rpcUrl, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
        const j = (await res.json()) as { result?: unknown; error?: { message: string } }
        if (j.error) throw new Error(`${method}: ${j.error.message}`)
        return j.result
      },
      waitFor,
      nodePids: () => (devnet.pid ? childrenOf(devnet.pid) : []),
      stop,
    }
  } catch (e) {
    await stop()
    throw e
  }
}
