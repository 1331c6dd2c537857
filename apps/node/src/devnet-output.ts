/**
 * What `loopchain devnet` shows of its nodes' JSON log lines: each node's `node ready`, each
 * height once (from whichever node commits it first, so the log goes on when node-0 is down),
 * every warning and error, and the info lines that say a warned condition has ended (a stalled
 * height has its block, an unreachable peer is back). Every line is in the node's log file.
 */
import { ENDED_WARNING_MESSAGES } from '@loopchain/node/client'

/** The highest height shown so far, shared by every node's reader. */
export interface DevnetShown {
  height: number
}

/** The terminal line (without its newline) for one log line of node `name`, or undefined to hide it. */
export function devnetLine(name: string, line: string, shown: DevnetShown): string | undefined {
  let j: { msg?: unknown; rpc?: unknown; height?: unknown; level?: unknown }
  try {
    j = JSON.parse(line)
  } catch {
    // Not a log line (a crash's stack trace, a library writing to stdout): shown as it is.
    return `${name.padEnd(8)} ${line}`
  }
  if (j === null || typeof j !== 'object') return `${name.padEnd(8)} ${line}`
  if (j.msg === 'node ready') {
    const rpc = String(j.rpc)
    return `${name.padEnd(8)} ready at height ${j.height}  JSON-RPC ${rpc}  (ws ${rpc.replace('http', 'ws')}ws)`
  }
  if (j.msg === 'block committed' && typeof j.height === 'number') {
    if (j.height <= shown.height) return undefined
    shown.height = j.height
    return `block ${j.height} committed`
  }
  if (j.level === 'warn' || j.level === 'error' || (typeof j.msg === 'string' && ENDED_WARNING_MESSAGES.has(j.msg))) {
    // The node's name leads the line already, and the terminal needs no timestamp: the level, the
    // message, then the other fields as JSON.
    const { t: _t, node: _node, level, msg, ...fields } = j as Record<string, unknown>
    const rest = Object.keys(fields).length > 0 ? `  ${JSON.stringify(fields)}` : ''
    return `${name.padEnd(8)} ${String(level)}: ${String(msg)}${rest}`
  }
  return undefined
}
