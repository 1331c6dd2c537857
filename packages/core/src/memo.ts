/**
 * `f` remembered per argument object, by identity (a WeakMap: nothing is kept alive by it). For
 * pure functions of objects that are never changed once made — a transaction body, a channel
 * state, the bytes of a block: a different object is always computed afresh.
 */
export function memoByIdentity<K extends object, V>(f: (k: K) => V): (k: K) => V {
  const seen = new WeakMap<K, V>()
  return (k: K): V => {
    let v = seen.get(k)
    if (v === undefined && !seen.has(k)) {
      v = f(k)
      seen.set(k, v)
    }
    return v as V
  }
}
