/**
 * The shims libp2p 3 needs on Node 20 (it declares Node >= 22; STACK.md): `Promise.withResolvers`
 * and a global `WebSocket` (from the `ws` package). Each is installed only where missing, so
 * browsers and Node 22+ keep their own. `ws` is loaded by a computed specifier, only in a runtime
 * without `WebSocket`, so browser bundles never include it.
 */

const P = Promise as PromiseConstructor & { withResolvers?: unknown }
if (typeof P.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
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
}

const g = globalThis as { WebSocket?: unknown }
if (typeof g.WebSocket !== 'function') {
  const specifier = 'ws'
  const ws = (await import(/* @vite-ignore */ specifier)) as { WebSocket: unknown }
  Object.defineProperty(globalThis, 'WebSocket', { value: ws.WebSocket, writable: true, configurable: true })
}

export {}
