/**
 * The {@link KVStore} contract as a runnable check, so every implementation — the in-memory twin
 * here, LevelDB on the node, IndexedDB in the browser — is held to the same behaviour by the same
 * code. It needs no test framework: it resolves when the store behaves and rejects with an `Error`
 * naming the first broken rule otherwise. Call it with a factory of fresh, empty stores.
 */
import { bytesEqual, toHex } from '../codec/hex.js'
import type { KVStore } from './kv-store.js'

const b = (...xs: number[]) => Uint8Array.from(xs)

function fail(rule: string, detail: string): never {
  throw new Error(`KVStore contract: ${rule} (${detail})`)
}

function expectBytes(rule: string, got: Uint8Array | undefined, want: Uint8Array | undefined): void {
  if (want === undefined ? got !== undefined : got === undefined || !bytesEqual(got, want)) {
    fail(rule, `got ${got === undefined ? 'undefined' : toHex(got)}, want ${want === undefined ? 'undefined' : toHex(want)}`)
  }
}

async function keysOf(store: KVStore, opts?: Parameters<KVStore['iterate']>[0]): Promise<string> {
  const out: string[] = []
  for await (const [k] of store.iterate(opts)) out.push(toHex(k))
  return out.join(',')
}

/** Checks that stores made by `make` keep the {@link KVStore} contract; rejects on the first violation. */
export async function checkKVStoreContract(make: () => Promise<KVStore> | KVStore): Promise<void> {
  const s = await make()
  expectBytes('an empty store has no values', await s.get(b(1)), undefined)

  await s.write([
    { type: 'put', key: b(1), value: b(10) },
    { type: 'put', key: b(2), value: b() },
    { type: 'put', key: b(3), value: b(30) },
    { type: 'del', key: b(3) },
    { type: 'put', key: b(4), value: b(40) },
    { type: 'put', key: b(4), value: b(41) },
  ])
  expectBytes('a put value reads back', await s.get(b(1)), b(10))
  expectBytes('an empty value is present, not absent', await s.get(b(2)), b())
  expectBytes('a later del in a batch wins', await s.get(b(3)), undefined)
  expectBytes('a later put in a batch wins', await s.get(b(4)), b(41))

  const v = b(7, 7)
  await s.write([{ type: 'put', key: b(5), value: v }])
  v[0] = 0
  expectBytes('the store keeps its own copy of a written value', await s.get(b(5)), b(7, 7))
  const read = (await s.get(b(5))) as Uint8Array
  read[0] = 0
  expectBytes('a value read out is the caller’s to mutate', await s.get(b(5)), b(7, 7))

  const t = await make()
  const keys = [b(0xff), b(1), b(1, 0), b(0x80), b(0), b(2, 5), b(0x7f, 0xff)]
  await t.write(keys.map((key) => ({ type: 'put' as const, key, value: key })))
  const all = await keysOf(t)
  if (all !== '00,01,0100,0205,7fff,80,ff') fail('iteration is in unsigned byte order', all)
  const range = await keysOf(t, { gte: b(1), lt: b(0x80) })
  if (range !== '01,0100,0205,7fff') fail('gte is inclusive and lt exclusive', range)
  const rev = await keysOf(t, { gte: b(1), lt: b(0x80), reverse: true, limit: 2 })
  if (rev !== '7fff,0205') fail('reverse walks down from lt and limit counts yielded entries', rev)
  for await (const [k, val] of t.iterate({ gte: b(2, 5), limit: 1 })) {
    if (!bytesEqual(k, val)) fail('iteration yields each key with its value', `${toHex(k)} → ${toHex(val)}`)
  }
  await t.write([{ type: 'del', key: b(1, 0) }])
  const afterDel = await keysOf(t, { lt: b(2) })
  if (afterDel !== '00,01') fail('a deleted key is not iterated', afterDel)
}
