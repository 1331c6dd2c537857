import { WebSocket as WsWebSocket } from 'ws'

/**
 * The Node 20 shims libp2p 3 needs (it declares Node >= 22): `Promise.withResolvers`, which libp2p
 * calls everywhere, and a global `WebSocket`, which the websockets transport dials with. Each is
 * installed only when missing, so Node 22+ (and browsers) run on their own implementations.
 *
 * @param target - the global object to patch; a parameter so tests can check both branches
 * @returns the names of the shims that were installed (empty on Node 22+)
 */
export function installNodePolyfills(target: object = globalThis): string[] {
  const installed: string[] = []
  const g = target as { Promise?: unknown; WebSocket?: unknown }
  const promiseCtor = (g.Promise ?? Promise) as PromiseConstructor & { withResolvers?: unknown }
  if (typeof promiseCtor.withResolvers !== 'function') {
    Object.defineProperty(promiseCtor, 'withResolvers', {
      value: function withResolvers<T>(this: PromiseConstructor) {
        let resolve!: (value: T | PromiseLike<T>) => void
        let reject!: (reason?: unknown) => void
        const promise = new this<T>((res, rej) => {
          resolve = res
          reject = rej
        })
        return { promise, resolve, reject }
      },
      writable: true,
      configurable: true,
    })
    installed.push('Promise.withResolvers')
  }
  if (typeof g.WebSocket !== 'function') {
    Object.defineProperty(target, 'WebSocket', { value: WsWebSocket, writable: true, configurable: true })
    installed.push('WebSocket')
  }
  return installed
}

// Installed on import: the p2p entry imports this module before anything from libp2p.
installNodePolyfills()
