import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr'
import { PEER_REACHED_MESSAGE } from '../log-messages.js'
import type { NodeLogger } from './logger.js'

/** Backoff of the reconnect loop. */
export interface RedialOptions {
  /** First retry delay, and the delay after a disconnect. Default 500 ms. */
  minBackoffMs?: number
  /** The delay doubles per failure up to this. Default 30 s. */
  maxBackoffMs?: number
  /** One dial attempt gives up after this. Default 10 s. */
  dialTimeoutMs?: number
  /** A peer not reached for this long is warned of, once until it is reached again. Default 60 s. */
  warnAfterMs?: number
}

interface Target {
  addr: Multiaddr
  peerId: string | undefined
  backoffMs: number
  timer: ReturnType<typeof setTimeout> | undefined
  dialing: boolean
  /** When the dials began to fail (unset while connected). */
  failingSince: number | undefined
  /** Whether that was warned of. */
  warned: boolean
}

/**
 * Keeps the node connected to a fixed set of peers (validators, bootstrap nodes): dials each at
 * start, redials on disconnect, and retries failures with exponential backoff and jitter so a
 * restarted network does not dial in lock-step. A peer that cannot be reached for `warnAfterMs`
 * (a peer's node down, a firewall, a wrong address in the config) is warned of once, and its
 * return is said, so an operator sees it without debug logs.
 */
export class Redialer {
  readonly #libp2p: Libp2p
  readonly #targets: Target[]
  readonly #min: number
  readonly #max: number
  readonly #dialTimeoutMs: number
  readonly #warnAfterMs: number
  readonly #log: NodeLogger
  readonly #banRemainingMs: (peerId: string) => number
  #stopped = false

  /**
   * @param banRemainingMs - how long a peer is still refused (0 when not), so a banned peer is retried only after its ban
   */
  constructor(libp2p: Libp2p, addrs: readonly string[], opts: RedialOptions, log: NodeLogger, banRemainingMs: (peerId: string) => number) {
    this.#libp2p = libp2p
    this.#min = opts.minBackoffMs ?? 500
    this.#max = opts.maxBackoffMs ?? 30_000
    this.#dialTimeoutMs = opts.dialTimeoutMs ?? 10_000
    this.#warnAfterMs = opts.warnAfterMs ?? 60_000
    this.#log = log
    this.#banRemainingMs = banRemainingMs
    const self = libp2p.peerId.toString()
    this.#targets = addrs
      .map((a) => multiaddr(a))
      .filter((addr) => addr.getComponents().findLast((c) => c.name === 'p2p')?.value !== self)
      .map((addr) => ({
        addr,
        peerId: addr.getComponents().findLast((c) => c.name === 'p2p')?.value,
        backoffMs: this.#min,
        timer: undefined,
        dialing: false,
        failingSince: undefined,
        warned: false,
      }))
  }

  /** Starts dialling every target and watching for disconnects. */
  start(): void {
    this.#libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    this.#libp2p.addEventListener('peer:connect', this.#onConnect)
    for (const t of this.#targets) this.#schedule(t, 0)
  }

  /** Stops all timers; dials in flight are left to the node's own shutdown. */
  stop(): void {
    this.#stopped = true
    this.#libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.#libp2p.removeEventListener('peer:connect', this.#onConnect)
    for (const t of this.#targets) clearTimeout(t.timer)
  }

  /** A target that connects to this node (it came back, and dialled first) needs no dial: its backoff ends. */
  readonly #onConnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    for (const t of this.#targets) {
      if (t.peerId !== id) continue
      clearTimeout(t.timer)
      t.timer = undefined
      t.backoffMs = this.#min
      this.#reached(t)
    }
  }

  readonly #onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const id = evt.detail.toString()
    for (const t of this.#targets) if (t.peerId === id) this.#schedule(t, t.backoffMs)
  }

  #schedule(t: Target, delayMs: number): void {
    if (this.#stopped) return
    clearTimeout(t.timer)
    t.timer = setTimeout(() => void this.#attempt(t), delayMs)
    t.timer.unref()
  }

  async #attempt(t: Target): Promise<void> {
    if (this.#stopped || t.dialing) return
    if (t.peerId !== undefined) {
      if (this.#libp2p.getConnections(peerIdFromString(t.peerId)).length > 0) {
        t.backoffMs = this.#min
        this.#reached(t)
        return
      }
      const banned = this.#banRemainingMs(t.peerId)
      if (banned > 0) {
        this.#schedule(t, banned)
        return
      }
    }
    t.dialing = true
    try {
      const conn = await this.#libp2p.dial(t.addr, { signal: AbortSignal.timeout(this.#dialTimeoutMs) })
      t.peerId = conn.remotePeer.toString()
      t.backoffMs = this.#min
      this.#log.debug('connected to a configured peer', { addr: t.addr.toString() })
      this.#reached(t)
    } catch (err) {
      if (this.#stopped) return
      const delay = Math.round(t.backoffMs * (0.75 + Math.random() * 0.5))
      this.#log.debug('dial failed; will retry', { addr: t.addr.toString(), retryInMs: delay, error: String(err) })
      const now = Date.now()
      t.failingSince ??= now
      if (!t.warned && now - t.failingSince >= this.#warnAfterMs) {
        t.warned = true
        this.#log.warn('cannot reach a configured peer; still trying (is its node up, and its address in bootstrap right?)', {
          addr: t.addr.toString(),
          seconds: Math.floor((now - t.failingSince) / 1000),
          error: String(err),
        })
      }
      t.backoffMs = Math.min(t.backoffMs * 2, this.#max)
      this.#schedule(t, delay)
    } finally {
      t.dialing = false
    }
  }

  /** `t` is connected: if it was warned of, says it is back. */
  #reached(t: Target): void {
    if (t.warned)
      this.#log.info(PEER_REACHED_MESSAGE, {
        addr: t.addr.toString(),
        seconds: Math.floor((Date.now() - (t.failingSince ?? Date.now())) / 1000),
      })
    t.failingSince = undefined
    t.warned = false
  }
}
