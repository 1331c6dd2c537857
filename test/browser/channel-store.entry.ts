// Runs in Chromium: the wallet's IndexedDB channel store asks for strict durability (flushed to
// disk) unless told nothing waits for a write, and records survive reopening the database. Every
// readwrite transaction's own `durability`, as Chromium reports it, is recorded.
import { IndexedDbChannelStore } from '../../packages/light-client/src/index.js'
import { report } from '../support/browser-report.js'

report(async () => {
  const seen: string[] = []
  const open = IDBDatabase.prototype.transaction
  IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: Parameters<typeof open>) {
    const tx = open.apply(this, args)
    if (tx.mode === 'readwrite') seen.push((tx as IDBTransaction & { durability: string }).durability)
    return tx
  } as typeof open
  const record = (id: string, n: number) => ({
    id,
    me: 0 as const,
    phase: 'open' as const,
    peer: { address: 'hx00', publicKey: '' },
    deposits: [BigInt(n), 0n] as const,
    challengePeriod: 20,
    messages: [],
    updatedAt: n,
  })
  const chainId = `durability-${Math.random()}`
  let store = await IndexedDbChannelStore.open({ chainId })
  const steps: Record<string, string[]> = {}
  const step = async (name: string, f: () => Promise<void>) => {
    seen.length = 0
    await f()
    steps[name] = [...seen]
  }
  await step('put', () => store.put(record('a', 1)))
  await step('putDurable', () => store.put(record('a', 2), { durable: true }))
  await step('putRelaxed', () => store.put(record('b', 3), { durable: false }))
  await step('rename', () => store.rename('b', record('c', 4)))
  await store.close()
  store = await IndexedDbChannelStore.open({ chainId })
  const back = (await store.list()).map((r) => [r.id, r.deposits[0].toString()])
  await store.close()
  return { steps, back }
})
