/**
 * Validator-set changes in running nodes: governance adds a validator in block K; header K + 1
 * announces the new set, which votes from K + 2 on. Shown by stopping an old validator afterwards:
 * the three left (one of them the new one) still commit, which the old set of three could not
 * with one of them down. The change survives a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Address, bytesEqual, type Genesis, type KeyPair, Right, type Value, validatorSetHash } from '@loopchain/core'
import { afterEach, describe, expect, it } from 'vitest'
import { FullNode } from '../src/index.js'
import { governanceTx, nextBlock, testGenesis, testKey, testTransfer } from './fixtures/test-chain.js'

const NETWORK = 12
const alice = testKey('valset alice')
const bob = testKey('valset bob')
const dirs: string[] = []
const nodes: FullNode[] = []
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.stop().catch(() => undefined)
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function open(g: Genesis, secret: Uint8Array, dataDir: string): Promise<FullNode> {
  const n = await FullNode.open({ dataDir, genesis: g, validatorSecret: secret })
  nodes.push(n)
  return n
}

const governance = (from: KeyPair, nonce: number, method: string, params: Value) => governanceTx(NETWORK, from, nonce, method, params)

/** Links nodes in memory: every consensus message reaches every other running node. */
function link(all: FullNode[], running: () => FullNode[]): void {
  all.forEach((n, i) => {
    n.attachNetwork({
      publishConsensus: (bytes) => {
        for (const m of running()) if (m !== n) setTimeout(() => m.receiveConsensus(bytes, `peer-${i}`), 1)
      },
    })
  })
}

describe('validator-set changes in running nodes', () => {
  it('a validator added by governance in block K votes from K + 2, announced by header K + 1, and the change survives a restart', async () => {
    const keys = [0, 1, 2, 3].map((i) => testKey(`valset validator ${i}`))
    const base = testGenesis({
      chainId: 'valset-test',
      networkId: NETWORK,
      validators: keys.slice(0, 3),
      funded: alice,
      params: { blockIntervalMs: 20, timeoutProposeMs: 400, timeoutVoteMs: 200, timeoutDeltaMs: 200 },
    })
    // The fourth institution is a member with the validator right, not yet in the set.
    const g: Genesis = {
      ...base,
      members: [
        ...base.members,
        {
          id: 'bank-3',
          name: 'Bank 3',
          address: keys[3]?.address as Address,
          nodeKey: testKey('node 3').publicKey,
          rights: Right.Validator,
        },
      ],
    }
    const dataDirs = keys.map(() => mkdtempSync(join(tmpdir(), 'loopchain-valset-')))
    dirs.push(...dataDirs)
    const all = await Promise.all(keys.map((k, i) => open(g, k.secretKey, dataDirs[i] as string)))
    let running = all
    link(all, () => running)
    for (const n of all) n.start()
    const submitAll = async (tx: Parameters<FullNode['submit']>[0]) => {
      for (const n of running) await n.submit(tx).catch(() => undefined)
    }

    const [v0, v1, v2, v3] = keys as [KeyPair, KeyPair, KeyPair, KeyPair]
    const add = { type: 'addValidator', address: v3.address, publicKey: v3.publicKey, power: 1n }
    await submitAll(governance(v0, 0, 'propose', { action: add }))
    await nextBlock(all[0] as FullNode, () => (all[0] as FullNode).mempool.size === 0)
    // The second yes of three applies the change, in block K.
    const applied = nextBlock(all[0] as FullNode, (b) => b.block.transactions.some((t) => t.body.from === v1.address))
    await submitAll(governance(v1, 0, 'vote', { id: 1n, approve: true }))
    const k = (await applied).block.header.height
    const newSet = (all[0] as FullNode).validatorsAt(k + 2)
    expect(newSet.validators.map((v) => v.address).sort()).toEqual([v0, v1, v2, v3].map((x) => x.address).sort())
    expect((all[0] as FullNode).validatorsAt(k + 1).validators).toHaveLength(3)

    // Two more blocks: K + 1 announces the set, K + 2 is voted on by it.
    for (let nonce = 0; nonce < 2; nonce++) {
      const done = nextBlock(all[0] as FullNode, (b) =>
        b.block.transactions.some((t) => t.body.from === alice.address && t.body.nonce === nonce),
      )
      await submitAll(testTransfer(NETWORK, alice, bob.address, nonce, 1n))
      await done
    }
    const h1 = (await (all[0] as FullNode).chain.blockAt(k + 1))?.header
    const h2 = (await (all[0] as FullNode).chain.blockAt(k + 2))?.header
    expect(h1 && bytesEqual(h1.nextValidatorsHash, validatorSetHash(newSet))).toBe(true)
    expect(h1 && bytesEqual(h1.validatorsHash, validatorSetHash(newSet))).toBe(false)
    expect(h2 && bytesEqual(h2.validatorsHash, validatorSetHash(newSet))).toBe(true)

    // Validator 0 goes down. Three of the four still hold more than 2/3 only with the new one voting.
    await (all[0] as FullNode).stop()
    running = all.slice(1)
    const committed = nextBlock(all[1] as FullNode, (b) =>
      b.block.transactions.some((t) => t.body.from === alice.address && t.body.nonce === 2),
    )
    await submitAll(testTransfer(NETWORK, alice, bob.address, 2, 1n))
    const b = await committed
    const v3Index = newSet.validators.findIndex((v) => v.address === v3.address)
    const certificate = await (all[1] as FullNode).chain.commitAt(b.block.header.height)
    expect(certificate?.signatures.map((s) => s.index)).toContain(v3Index)
    // Every running node reaches it (and the block after it, which carries its result, may follow).
    const agreed = () => running.every((n) => n.height >= b.block.header.height && n.height === running[0]?.height)
    for (let i = 0; i < 100 && !agreed(); i++) await new Promise((r) => setTimeout(r, 50))
    expect(running.map((n) => n.height >= b.block.header.height)).toEqual(running.map(() => true))
    expect(new Set(running.map((n) => n.height)).size).toBe(1)

    // A restart reads the change back from the store.
    await (all[2] as FullNode).stop()
    const again = await open(g, v2.secretKey, dataDirs[2] as string)
    expect(again.validatorsAt(k + 2).validators).toHaveLength(4)
    expect(again.validatorsAt(k + 1).validators).toHaveLength(3)
    expect(again.validatorSetChanges.map((s) => s.from)).toEqual([1, k + 2])
  }, 90_000)
})
