import { beforeAll, describe, expect, it } from 'vitest'
import {
  accountKey,
  accountStateCodec,
  applyGenesis,
  BlockState,
  type ContractEngine,
  contractAddress,
  contractKey,
  encode,
  executeBlock,
  getAccount,
  initEngine,
  MemoryKVStore,
  peekAccount,
  queryScore,
  ReceiptStatus,
  STEP_COSTS,
  StateCache,
  StateTree,
  TxKind,
  toHex,
  transactionHash,
  utf8,
  type WriteOp,
} from '../../src/index.js'
import { alice, blocks, bob, carol, executionBlock, genesis, key, PARAMS, runChain, T0, tx } from '../fixtures/exec/chain.js'

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

describe('block execution', () => {
  it('runs transfers, messages, a deploy and token calls with the receipts a user expects', async () => {
    const { blocks: out } = await runChain(engine)
    const codes = out.map((b) => b.receipts.map((r) => r.failure ?? 'OK'))
    expect(codes).toEqual([
      ['OK', 'OK', 'OK'],
      ['OK', 'BAD_NONCE', 'PERMISSION_DENIED'],
      ['OK', 'CONTRACT_ERROR', 'OK', 'UNKNOWN_METHOD', 'INSUFFICIENT_BALANCE'],
    ])
    // The deploy and the successful transfers emitted Transfer events; failures emit nothing.
    expect(out[1]?.receipts[0]?.logs).toBe(0)
    expect(out[2]?.receipts.map((r) => r.logs)).toEqual([1, 0, 1, 0, 0])
    // Refused before running (replay, unaffordable): no steps, no fee.
    expect(out[1]?.receipts[1]).toMatchObject({ steps: 0, fee: '0' })
    expect(out[2]?.receipts[4]).toMatchObject({ steps: 0, fee: '0' })
    // A failed contract call still costs its steps.
    const failed = out[2]?.receipts[1]
    expect(failed?.steps).toBeGreaterThan(1000)
    expect(failed?.fee).toBe(String(BigInt(failed?.steps ?? 0) * PARAMS.stepPrice))
    // Every block changed the state.
    expect(new Set(out.map((b) => b.stateRoot)).size).toBe(3)
  })

  it('value transfers and messages: to oneself, of nothing, out of steps, to a new account, to a SCORE', async () => {
    const store = new MemoryKVStore()
    const tree = await StateTree.open(store)
    const gc = await applyGenesis(tree, genesis())
    await store.write(gc.ops)
    tree.markPersisted(gc)
    const dave = key('exec dave')
    const erin = key('exec erin')
    const base = BigInt(STEP_COSTS.base)
    const price = PARAMS.stepPrice
    const txs = [
      tx(alice, { kind: TxKind.Transfer, to: alice.address, value: 7n }, 0), // to oneself: only the fee
      tx(alice, { kind: TxKind.Transfer, to: erin.address, value: 0n }, 1), // nothing: erin gets no account
      tx(alice, { kind: TxKind.Transfer, to: bob.address, value: 3n, stepLimit: STEP_COSTS.base - 1 }, 2), // out of steps
      tx(alice, { kind: TxKind.Message, to: dave.address, value: 2n, data: utf8('hi') }, 3), // a new account, a payload
      tx(alice, { kind: TxKind.Transfer, to: contractAddress(new Uint8Array(32)), value: 1n }, 4), // a SCORE: refused, fee charged
      tx(bob, { kind: TxKind.Transfer, to: carol.address, value: 11n }, 0),
    ]
    const ex = await executeBlock(
      tree,
      executionBlock({ networkId: 3, height: 1, timestamp: T0 + 1_000_000, proposer: alice.address }, txs),
      {
        params: PARAMS,
        engine,
      },
    )
    const summary = ex.receipts.map((r) => ({
      status: r.status,
      failure: r.failure?.code,
      steps: r.stepUsed,
      fee: r.fee,
      logs: r.logs.length,
    }))
    const ok = (steps: number) => ({ status: ReceiptStatus.Success, failure: undefined, steps, fee: BigInt(steps) * price, logs: 0 })
    expect(summary).toEqual([
      ok(STEP_COSTS.base),
      ok(STEP_COSTS.base),
      { status: ReceiptStatus.Failure, failure: 'OUT_OF_STEPS', steps: STEP_COSTS.base - 1, fee: (base - 1n) * price, logs: 0 },
      ok(STEP_COSTS.base + 2 * STEP_COSTS.dataByte),
      { status: ReceiptStatus.Failure, failure: 'BAD_RECIPIENT', steps: STEP_COSTS.base, fee: base * price, logs: 0 },
      ok(STEP_COSTS.base),
    ])
    const fees = ex.receipts.slice(0, 5).reduce((a, r) => a + r.fee, 0n)
    await store.write(ex.commit.ops)
    tree.markPersisted(ex.commit)
    expect(await getAccount(tree, alice.address)).toEqual({ balance: 1_000_000_000n - 2n - fees, nonce: 5 })
    expect(await getAccount(tree, bob.address)).toEqual({ balance: 1_000_000_000n - 11n - base * price, nonce: 1 })
    expect(await getAccount(tree, carol.address)).toEqual({ balance: 1_000_000_000n + 11n, nonce: 0 })
    expect(await getAccount(tree, dave.address)).toEqual({ balance: 2n, nonce: 0 })
    // A transfer of nothing and a refused one create no account.
    expect(await tree.get(accountKey(erin.address))).toBeUndefined()
    expect(await tree.get(accountKey(contractAddress(new Uint8Array(32))))).toBeUndefined()
  })

  it('moves balances and charges exactly steps × price, and advances nonces for all but a replayed nonce', async () => {
    const { blocks: out, tree } = await runChain(engine)
    const fees = (i: number, j: number) => BigInt(out[i]?.receipts[j]?.fee ?? 'x')
    const a = await getAccount(tree, alice.address)
    const b = await getAccount(tree, bob.address)
    const c = await getAccount(tree, carol.address)
    expect(a.balance).toBe(1_000_000_000n - 5_000n - fees(0, 0) - fees(1, 0) - fees(2, 0))
    expect(b.balance).toBe(1_000_000_000n + 5_000n - 7n - fees(0, 1) - fees(2, 1) - fees(2, 2))
    expect(c.balance).toBe(1_000_000_000n + 7n - fees(0, 2) - fees(1, 2) - fees(2, 3))
    // alice: transfer, deploy, call (the replay did not count). carol's unaffordable transfer used
    // its nonce, charged nothing: signed and failed, it can never run later.
    expect([a.nonce, b.nonce, c.nonce]).toEqual([3, 3, 4])
  })

  it('a transaction that failed for its balance never runs later, when a balance would cover it', async () => {
    const { tree } = await runChain(engine)
    const unaffordable = blocks()[2]?.[4] // carol's, refused for its balance
    if (!unaffordable) throw new Error('fixture')
    // Carol is rich now (written outside execution, as a grant would be), with her nonce as it stands.
    const carolNow = await getAccount(tree, carol.address)
    tree.put(accountKey(carol.address), encode(accountStateCodec, { balance: 10n ** 30n, nonce: carolNow.nonce }))
    // Committed under version 4, so the block that follows it is 5 (a version only goes up).
    await tree.commit()
    const ex = await executeBlock(
      tree,
      executionBlock({ networkId: 3, height: 5, timestamp: T0 + 5_000_000, proposer: alice.address }, [unaffordable]),
      { params: PARAMS, engine },
    )
    expect(ex.receipts[0]?.failure?.code).toBe('BAD_NONCE')
  })

  it('token state after the calls: the failed transfer left no trace', async () => {
    const { tree } = await runChain(engine)
    const deploy = blocks()[1]?.[0]
    if (!deploy) throw new Error('no deploy')
    const token = contractAddress(transactionHash(deploy.body))
    const balanceOf = async (who: string) => {
      const r = await queryScore(
        tree,
        { params: PARAMS, engine },
        { from: who as never, to: token, method: 'balanceOf', params: { _owner: who }, height: 4, timestamp: T0 },
      )
      if (!r.ok) throw new Error(r.failure.message)
      return r.result
    }
    expect(await balanceOf(alice.address)).toBe(1_000_000n - 250n)
    expect(await balanceOf(bob.address)).toBe(200n)
    expect(await balanceOf(carol.address)).toBe(50n)
    // A query cannot write, even through a writing method.
    const w = await queryScore(
      tree,
      { params: PARAMS, engine },
      { from: alice.address, to: token, method: 'transfer', params: { _to: bob.address, _value: 1n }, height: 4, timestamp: T0 },
    )
    expect(w.ok ? 'ok' : w.failure.code).toBe('READONLY_VIOLATION')
  })

  it('a query over a committed root answers for that state: writes staged or committed after it do not show', async () => {
    const { tree } = await runChain(engine)
    const deploy = blocks()[1]?.[0]
    if (!deploy) throw new Error('no deploy')
    const token = contractAddress(transactionHash(deploy.body))
    const q = { from: alice.address, to: token, method: 'balanceOf', params: { _owner: bob.address }, height: 4, timestamp: T0 }
    const snapshot = tree.at(tree.root)
    // Staged over the tree (as a block being executed would leave it): the SCORE is gone there.
    tree.delete(contractKey(token))
    const live = await queryScore(tree, { params: PARAMS, engine }, q)
    expect(live.ok ? 'ok' : live.failure.code).not.toBe('ok')
    expect(await queryScore(snapshot, { params: PARAMS, engine }, q)).toMatchObject({ ok: true, result: 200n })
    await tree.commit()
    expect(await queryScore(snapshot, { params: PARAMS, engine }, q)).toMatchObject({ ok: true, result: 200n })
  })

  it('is deterministic: the same chain from a fresh store gives the same roots and receipts', async () => {
    const one = await runChain(engine)
    const two = await runChain(await initEngine(), new MemoryKVStore())
    expect(two.blocks).toEqual(one.blocks)
  })

  it('gives the same roots and receipts over a store without synchronous reads, where every cold read reruns its transaction', async () => {
    const withSync = await runChain(engine)
    // IndexedDB's case: no getSync, so a read the caches miss throws, loads and runs the call again.
    const store = new MemoryKVStore()
    const asyncOnly = {
      get: (k: Uint8Array) => store.get(k),
      write: (ops: readonly WriteOp[]) => store.write(ops),
      iterate: () => store.iterate(),
    }
    const without = await runChain(engine, asyncOnly as unknown as MemoryKVStore)
    expect(without.blocks).toEqual(withSync.blocks)
  })

  it('the loaded view carried from one block to the next is dropped when the tree changed in between', async () => {
    const { tree } = await runChain(engine)
    const before = await getAccount(tree, bob.address)
    // Someone writes the tree outside execution and commits: the carried view must not be used.
    expect(before.nonce).toBeGreaterThan(0)
    tree.put(accountKey(bob.address), encode(accountStateCodec, { balance: 7n, nonce: 0 }))
    await tree.commit()
    const b = blocks()[0]?.[1] // bob → carol, 7 units, nonce 0
    if (!b) throw new Error('fixture')
    const ex = await executeBlock(
      tree,
      executionBlock({ networkId: 3, height: 9, timestamp: T0 + 9_000_000, proposer: alice.address }, [b]),
      { params: PARAMS, engine },
    )
    // A fresh read sees nonce 0 and a balance of 7, too little for the value plus the fee; the
    // stale view would have said BAD_NONCE (bob's nonce was 3).
    expect(ex.receipts[0]?.failure?.code).toBe('INSUFFICIENT_BALANCE')
    expect((await getAccount(tree, bob.address)).balance).toBe(7n)
  })

  it("peekAccount answers from the last block's view only while that view still matches the tree", async () => {
    const { tree } = await runChain(engine)
    // What the last block left, without a store read: the same account getAccount reads.
    expect(peekAccount(tree, alice.address)).toEqual(await getAccount(tree, alice.address))
    expect(peekAccount(tree, alice.address)?.nonce).toBe(3)
    // An account the chain never touched is not in the view: the caller must read the tree.
    expect(peekAccount(tree, key('nobody').address)).toBeUndefined()
    // A staged write outside execution, then its commit: the view no longer provably matches.
    tree.put(accountKey(bob.address), encode(accountStateCodec, { balance: 7n, nonce: 0 }))
    expect(peekAccount(tree, alice.address)).toBeUndefined()
    await tree.commit()
    expect(peekAccount(tree, alice.address)).toBeUndefined()
    expect(peekAccount(tree, bob.address)).toBeUndefined()
  })

  it('an attempt that reads only loaded state returns at once; a miss loads the key and runs it again', async () => {
    const { tree } = await runChain(engine)
    // A source that can only be read by waiting (IndexedDB's case).
    const state = new StateCache({ get: (key) => tree.get(key) })
    const k = accountKey(alice.address)
    let runs = 0
    const attempt = () => {
      runs++
      return state.read(k)
    }
    // Nothing loaded yet: the first run misses, the result comes after the load and a second run.
    const first = state.retrying(attempt)
    expect(first).toBeInstanceOf(Promise)
    expect(await first).toEqual(await tree.get(k))
    expect(runs).toBe(2)
    // Now loaded: the result itself, no promise, one run.
    const again = state.retrying(attempt)
    expect(again).not.toBeInstanceOf(Promise)
    expect(again).toEqual(await tree.get(k))
    expect(runs).toBe(3)
    // Any other failure is thrown as is, at once.
    expect(() =>
      state.retrying(() => {
        throw new RangeError('not a miss')
      }),
    ).toThrow(RangeError)
  })

  it('a key no view has loaded is read from a store with synchronous reads at once: one run, no promise', async () => {
    const { store, tree } = await runChain(engine)
    // Reopened: nothing of the state is in memory, so the read goes to the store.
    const cold = await StateTree.open(store, tree.root)
    const gets = { n: 0 }
    const counting = Object.assign(Object.create(store) as MemoryKVStore, {
      get: (key: Uint8Array) => {
        gets.n++
        return store.get(key)
      },
    })
    const state = new BlockState(await StateTree.open(counting, cold.root))
    gets.n = 0 // opening read the root
    let runs = 0
    const keys = [accountKey(alice.address), accountKey(bob.address), accountKey(key('nobody').address)]
    const r = state.retrying(() => {
      runs++
      return keys.map((k) => state.read(k))
    })
    expect(r).not.toBeInstanceOf(Promise)
    expect(runs).toBe(1)
    expect(gets.n).toBe(0)
    expect(r).toEqual([await cold.get(keys[0] as Uint8Array), await cold.get(keys[1] as Uint8Array), undefined])
  })

  it('a tree reopened from the store at a block root reads the same accounts', async () => {
    const { store, tree } = await runChain(engine)
    const again = await StateTree.open(store, tree.root)
    expect(await getAccount(again, alice.address)).toEqual(await getAccount(tree, alice.address))
    expect(toHex(again.root)).toBe(toHex(tree.root))
  })
})
