/**
 * `loopchain status`: a node's view of its chain (`lc_getNetworkInfo`) as JSON, and with `--watch`
 * one line every two seconds — height, block sync under way (blocks a second, time left), a height
 * that has stalled (for how long, which validators are silent, whose node is not connected), pool —
 * for following a node that catches up, until Ctrl-C. A node that does not answer (not started
 * yet, restarting) is said so on its line, and watched on.
 */
import { DEFAULT_RPC, flag, rpcCall, rpcOutcome } from './cli.js'

/** How often `--watch` asks. */
const WATCH_INTERVAL_MS = 2000

/** What `lc_getNetworkInfo` answers, as far as the status line reads it. */
interface NetworkInfo {
  readonly height?: number
  readonly role?: string
  readonly mempool?: number
  readonly sync?: {
    readonly target?: number
    readonly syncing?: boolean
    readonly blocksPerSecond?: number
    readonly secondsLeft?: number | null
  }
  readonly consensus?: {
    readonly height?: number
    readonly seconds?: number
    readonly stalled?: boolean
    readonly heard?: readonly string[]
    readonly silentMembers?: readonly string[]
    readonly notConnectedMembers?: readonly string[]
    readonly powerHeard?: number
    readonly totalPower?: number
  } | null
}

const count = (n: number) => n.toLocaleString('en-US')

/** "52 s", "3 min 20 s", "2 h 5 min": a duration for a person. */
export function humanSeconds(s: number): string {
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`
  return `${Math.floor(s / 3600)} h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)} min` : ''}`
}

/** One line of a node's state, for `status --watch` and after the JSON of `status` while it syncs or a height stalls. */
export function statusLine(info: NetworkInfo): string {
  const height = info.height ?? 0
  const sync = info.sync ?? {}
  const role = info.role ? `${info.role}, ` : ''
  const pool = `${count(info.mempool ?? 0)} waiting in the pool`
  const c = info.consensus
  if (!sync.syncing && c?.stalled) {
    const heard = c.heard?.length ?? 0
    const of = heard + (c.silentMembers?.length ?? 0)
    const silent = c.silentMembers?.length ? `; silent: ${c.silentMembers.join(', ')}` : ''
    const cut = c.notConnectedMembers?.length ? `; no connection to the node of: ${c.notConnectedMembers.join(', ')}` : ''
    const why = silent || cut ? `${silent}${cut}` : '; every validator heard and connected: their votes do not agree yet'
    return `${role}height ${count(height)}, no block for height ${count(c.height ?? height + 1)} in ${humanSeconds(c.seconds ?? 0)}: heard from ${heard} of ${of} validators (power ${c.powerHeard ?? 0} of ${c.totalPower ?? 0}; a block needs more than two thirds)${why}; ${pool}`
  }
  if (!sync.syncing) return `${role}height ${count(height)}, in step with its peers; ${pool}`
  const target = Math.max(sync.target ?? height, height)
  const rate = sync.blocksPerSecond ?? 0
  if (target === height && rate === 0) return `${role}height ${count(height)}, asking its peers how far the chain is; ${pool}`
  const pct = target > 0 ? ` (${((100 * height) / target).toFixed(1)}%)` : ''
  const pace =
    rate > 0
      ? `${count(rate)} blocks/s${typeof sync.secondsLeft === 'number' ? `, about ${humanSeconds(sync.secondsLeft)} left` : ''}`
      : 'waiting for blocks from its peers'
  return `${role}syncing: height ${count(height)} of ${count(target)}${pct}, ${pace}; ${pool}`
}

export async function status(args: string[]): Promise<void> {
  const url = flag(args, 'rpc') ?? DEFAULT_RPC
  if (!args.includes('--watch')) {
    const info = (await rpcCall(url, 'lc_getNetworkInfo')) as NetworkInfo
    process.stdout.write(`${JSON.stringify(info, null, 2)}\n`)
    if (info.sync?.syncing || info.consensus?.stalled) process.stderr.write(`${statusLine(info)}\n`)
    return
  }
  for (;;) {
    // One line every interval or so, also from a node that takes the connection and does not answer.
    const out = await rpcOutcome(url, 'lc_getNetworkInfo', {}, WATCH_INTERVAL_MS)
    const time = new Date().toISOString().slice(11, 19)
    process.stdout.write(`${time} ${'error' in out ? `not answering: ${out.error}` : statusLine(out.result as NetworkInfo)}\n`)
    await new Promise((r) => setTimeout(r, WATCH_INTERVAL_MS))
  }
}
