import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  blockHash,
  blockHeaderCodec,
  type Commit,
  encode,
  logsBloom,
  receiptsRoot,
  toHex,
  transactionHash,
  utf8,
  ZERO_HASH,
} from '@loopchain/core'
import { afterEach, describe, expect, it } from 'vitest'
import { sampleBlocks, sampleReceipt } from '../../core/test/vectors/samples.js'
import { ChainStore, HEIGHT_KEYED, SplitKVStore } from '../src/index.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A chain store on a fresh pair of LevelDB databases (as a node has), and an empty block result to store blocks with. */
async function emptyChain() {
  const dir = mkdtempSync(join(tmpdir(), 'loopchain-chain-'))
  dirs.push(dir)
  const store = await SplitKVStore.open(dir)
  const chain = new ChainStore(store, 'loopchain-sample')
  return { store, chain, result: { stateRoot: ZERO_HASH, receiptsRoot: ZERO_HASH, logsBloom: new Uint8Array(256) } }
}

describe('chain store on LevelDB', () => {
  it('stores a block with its commit, receipts, result, tx index and state in one batch, and reads them back after reopening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-chain-'))
    dirs.push(dir)
    const { block1, commit1 } = sampleBlocks()
    const receipts = block1.transactions.map(sampleReceipt)
    const result = { stateRoot: ZERO_HASH, receiptsRoot: receiptsRoot(receipts), logsBloom: logsBloom(receipts) }
    let store = await SplitKVStore.open(dir)
    let chain = new ChainStore(store, 'loopchain-sample')
    expect(await chain.head()).toBeUndefined()
    const stateOp = { type: 'put' as const, key: utf8('state-node'), value: utf8('x') }
    await chain.commitBlock(block1, commit1, receipts, result, [stateOp])
    await store.close()

    store = await SplitKVStore.open(dir)
    chain = new ChainStore(store, 'loopchain-sample')
    const h1 = blockHash(block1.header)
    expect(await chain.head()).toEqual({ height: 1, hash: h1 })
    expect(await chain.blockAt(1)).toEqual(block1)
    expect(await chain.heightOf(h1)).toBe(1)
    expect(await chain.commitAt(1)).toEqual(commit1)
    expect(await chain.receiptsAt(1)).toEqual(receipts)
    expect(await chain.resultAt(1)).toEqual(result)
    const tx2 = block1.transactions[2]
    if (!tx2) throw new Error('sample has 3 transactions')
    expect(await chain.locate(transactionHash(tx2.body))).toEqual({ height: 1, index: 2 })
    expect(toHex((await store.get(utf8('state-node'))) as Uint8Array)).toBe(toHex(utf8('x')))
    // Another chain in the same database sees nothing of this one.
    expect(await new ChainStore(store, 'other-chain').head()).toBeUndefined()
    // The block's own records are keyed by height, in their database; the indexes and the head are not.
    let inHeights = 0
    for await (const [k] of store.heights.iterate()) {
      expect(k[0]).toBe(HEIGHT_KEYED)
      inHeights++
    }
    expect(inHeights).toBe(5) // block, header, commit, receipts, result
    for await (const [k] of store.index.iterate()) expect(k[0]).not.toBe(HEIGHT_KEYED)
    await store.close()
  })

  it('reads a header from its own record, not from the whole block', async () => {
    const { store, chain, result } = await emptyChain()
    const { block1, commit1 } = sampleBlocks()
    await chain.commitBlock(block1, commit1, [], result, [])
    let read = 0
    const get = store.get.bind(store)
    store.get = async (key: Uint8Array) => {
      const v = await get(key)
      read += v?.length ?? 0
      return v
    }
    expect(await chain.headerAt(1)).toEqual(block1.header)
    expect(read).toBe(encode(blockHeaderCodec, block1.header).length)
    expect(await chain.headerAt(2)).toBeUndefined()
    await store.close()
  })

  it('refuses a block that does not follow the head, and serves ranges in height order', async () => {
    const { store, chain, result } = await emptyChain()
    const { block1, commit1, block2 } = sampleBlocks()
    await expect(chain.commitBlock(block2, commit1, [], result, [])).rejects.toThrow(/does not follow/)
    await chain.commitBlock(block1, commit1, [], result, [])
    const commit2: Commit = { ...commit1, height: 2, blockHash: blockHash(block2.header) }
    await chain.commitBlock(block2, commit2, [], result, [])
    const heights: number[] = []
    for await (const b of chain.blocks(1, 5)) heights.push(b.header.height)
    expect(heights).toEqual([1, 2])
    expect((await chain.head())?.height).toBe(2)
    await store.close()
  })
})
