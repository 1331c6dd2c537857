import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { signVote, utf8, VoteType, type WalEntry } from '@loopchain/core'
import { describe, expect, it } from 'vitest'
import { ConsensusWal, LevelKVStore } from '../src/index.js'
import { testKey } from './fixtures/test-chain.js'

describe('consensus WAL on LevelDB', () => {
  it('keeps votes and locks across a reopen, in order, and drops settled heights', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-wal-'))
    try {
      const k = testKey('wal validator')
      const vote = (height: number, round: number) =>
        signVote(
          { networkId: 1, type: VoteType.Prevote, height, round, blockHash: new Uint8Array(32).fill(height), validator: k.address },
          k.secretKey,
        )
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
      // Each truncation starts where the last one ended; what is below the new height still goes,
      // even an entry appended below an earlier truncation.
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
})
