import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { signVote, utf8, VoteType, type WalEntry } from '@loopchain/core'
import { describe, expect, it, vi } from 'vitest'
import { ConsensusWal, LevelKVStore } from '../src/index.js'
import { testKey } from './fixtures/test-chain.js'

const validator = testKey('wal validator')
/** A signed vote of the test's validator (prevote unless said). */
const vote = (height: number, round = 0, type: VoteType = VoteType.Prevote) =>
  signVote(
    { networkId: 1, type, height, round, blockHash: new Uint8Array(32).fill(height), validator: validator.address },
    validator.secretKey,
  )

describe('consensus WAL on LevelDB', () => {
  it('keeps votes and locks across a reopen, in order, and drops settled heights', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-wal-'))
    try {
      const entries: WalEntry[] = [
        { kind: 'vote', vote: vote(4, 0) },
        { kind: 'lock', height: 5, round: 1, blockHash: new Uint8Array(32).fill(5), block: utf8('block five'), polka: [vote(5, 1)] },
        { kind: 'vote', vote: vote(5, 1) },
      ]
      let store = await LevelKVStore.open(dir)
      let wal = new ConsensusWal(store, 'wal-chain')
      for (const e of entries) await wal.append(e)
      await store.close()

      store = await LevelKVStore.open(dir)
      wal = new ConsensusWal(store, 'wal-chain')
      expect(await wal.load()).toEqual(entries)
      expect(await new ConsensusWal(store, 'other-chain').load()).toEqual([])
      await wal.truncateBelow(5)
      expect(await wal.load()).toEqual(entries.slice(1))
      // Appends after a reopen go after what was there.
      await wal.append({ kind: 'vote', vote: vote(5, 2) })
      expect((await wal.load()).at(-1)).toEqual({ kind: 'vote', vote: vote(5, 2) })
      // What is below the new height goes, even an entry appended below an earlier truncation.
      await wal.append({ kind: 'vote', vote: vote(7, 0) })
      await wal.truncateBelow(6)
      expect(await wal.load()).toEqual([{ kind: 'vote', vote: vote(7, 0) }])
      await wal.append({ kind: 'vote', vote: vote(3, 0) })
      await wal.truncateBelow(6)
      await wal.truncateBelow(8)
      expect(await wal.load()).toEqual([])
      await store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('reads what a store holds before its first append or trim: a WAL nobody loaded overwrites no entry and leaves none behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-wal-'))
    try {
      let store = await LevelKVStore.open(dir)
      await new ConsensusWal(store, 'wal-chain').append({ kind: 'vote', vote: vote(3, 0) })
      await store.close()
      store = await LevelKVStore.open(dir)
      // The same height and the first sequence number: without reading the store first, the same key.
      await new ConsensusWal(store, 'wal-chain').append({ kind: 'vote', vote: vote(3, 1) })
      expect(await new ConsensusWal(store, 'wal-chain').load()).toEqual([
        { kind: 'vote', vote: vote(3, 0) },
        { kind: 'vote', vote: vote(3, 1) },
      ])
      expect(() => new ConsensusWal(store, 'wal-chain').trimOps(4)).toThrow(/load\(\) the WAL before trimming/)
      // A truncation not preceded by a load finds what is stored.
      await new ConsensusWal(store, 'wal-chain').truncateBelow(4)
      expect(await new ConsensusWal(store, 'wal-chain').load()).toEqual([])
      // Two appends at once on a WAL nobody loaded: one load, and both entries known to the trim.
      const fresh = new ConsensusWal(store, 'wal-chain')
      const loads = vi.spyOn(fresh, 'load')
      await Promise.all([fresh.append({ kind: 'vote', vote: vote(5, 0) }), fresh.append({ kind: 'vote', vote: vote(5, 1) })])
      expect(loads).toHaveBeenCalledTimes(1)
      expect(fresh.trimOps(6)).toHaveLength(2)
      await store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('gives the deletions of settled entries for another write to carry, and forgets them once written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-wal-'))
    try {
      const precommit = (height: number) => vote(height, 0, VoteType.Precommit)
      let store = await LevelKVStore.open(dir)
      let wal = new ConsensusWal(store, 'wal-chain')
      await wal.append({ kind: 'vote', vote: precommit(3) })
      await wal.append({ kind: 'vote', vote: precommit(4) })
      await store.close()
      // After a reopen it knows what was there, and what is appended since.
      store = await LevelKVStore.open(dir)
      wal = new ConsensusWal(store, 'wal-chain')
      expect(await wal.load()).toHaveLength(2)
      await wal.append({ kind: 'vote', vote: precommit(5) })
      await wal.append({ kind: 'vote', vote: precommit(2) })
      const trim = wal.trimOps(5)
      expect(trim.map((op) => op.type)).toEqual(['del', 'del', 'del'])
      // Written with something else, in one write.
      await store.write([...trim, { type: 'put', key: utf8('other'), value: utf8('record') }])
      wal.trimmed(trim)
      expect(wal.trimOps(5)).toEqual([])
      expect(await new ConsensusWal(store, 'wal-chain').load()).toEqual([{ kind: 'vote', vote: precommit(5) }])
      expect(await store.get(utf8('other'))).toEqual(utf8('record'))
      // Nothing given, nothing forgotten: the entry at 5 still goes with the next height's write.
      wal.trimmed([])
      expect(wal.trimOps(6)).toHaveLength(1)
      await store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
