/**
 * Bounded caches on a Map's or Set's insertion order: the newest entry goes last, and past the
 * bound the oldest (first) goes. Where every use of a key calls these, the oldest is the least
 * recently used; where only inserting does (a read that hits leaves the order), first in, first out.
 */

/** Sets `key` to `value` as the newest entry of `map`, dropping the oldest past `max` entries. */
export function setNewest<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key)
  map.set(key, value)
  if (map.size > max) map.delete(map.keys().next().value as K)
}

/** Adds `key` as the newest entry of `set`, dropping the oldest past `max` entries. */
export function addNewest<K>(set: Set<K>, key: K, max: number): void {
  set.delete(key)
  set.add(key)
  if (set.size > max) set.delete(set.values().next().value as K)
}
