/**
 * Governance adds a validator to a running network of separate processes, and the new node takes
 * part over libp2p: four validators (`loopchain start`), a fifth institution registered by
 * governance with its node key and then put in the validator set, its node started from a config
 * written here. With five validators of power 1 a commit needs four; once one of the first four is
 * killed, the chain can only go on with the new node's votes, which the others must admit.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { callDataCodec, encode, GOVERNANCE_ADDRESS, keyPairFromSecret, Right, TxKind, to0x, type Value } from '@loopchain/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { peerIdFromNodeKey } from '../../packages/node/src/index.js'
import { CliNetwork, waitFor } from '../support/cli-network.js'

let net: CliNetwork
beforeAll(async () => {
  net = await CliNetwork.start({ validators: 4 })
}, 120_000)
afterAll(() => net?.stop())

const random32 = () => globalThis.crypto.getRandomValues(new Uint8Array(32))

/** Proposes `action` from node-0's validator and has node-1 and node-2 vote yes: 3 of 4 approve it. */
async function approve(action: Value): Promise<void> {
  const proposed = await net.propose('node-0', action)
  expect(proposed).toMatchObject({ status: 'success' })
  // Proposed(int,Address,str): the proposal's id is the first indexed field.
  const id = BigInt(proposed.logs[0].indexed[0])
  for (const voter of ['node-1', 'node-2']) {
    const data = encode(callDataCodec, { method: 'vote', params: { id, approve: true } })
    const receipt = await net.send(net.sign(net.validatorKey(voter), GOVERNANCE_ADDRESS, TxKind.Call, data))
    expect(receipt).toMatchObject({ status: 'success' })
  }
  const proposal = await net.rpc('node-0', 'lc_call', { to: GOVERNANCE_ADDRESS, method: 'getProposal', params: { id: id.toString() } })
  expect(proposal).toMatchObject({ status: 'executed' })
}

describe('a validator added by governance', () => {
  it('is admitted by its node key, votes over libp2p, and carries the chain when one of the first four is killed', async () => {
    const account = keyPairFromSecret(random32())
    const nodeSecret = random32()
    const nodeKey = keyPairFromSecret(nodeSecret).publicKey
    await approve({
      type: 'addMember',
      address: account.address,
      id: 'institution-5',
      rights: BigInt(Right.Validator | Right.MemberNode),
      nodeKey,
    })
    await approve({ type: 'addValidator', address: account.address, publicKey: account.publicKey, power: 1n })
    await waitFor(async () => ((await net.rpc('node-0', 'lc_getValidators')).length === 5 ? true : undefined), 30_000, 'the set of five')

    // Its node: a config like the ones init writes, bootstrapped to the four.
    const name = 'node-5'
    const { tcpPort, rpcPort } = { tcpPort: net.base + 50, rpcPort: net.node(name).rpcPort }
    const bootstrap = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const { peerId } = await net.wsAddr(`node-${i}`)
        return `/ip4/127.0.0.1/tcp/${net.base + 10 * i}/p2p/${peerId}`
      }),
    )
    mkdirSync(join(net.dir, name))
    const config = {
      genesis: '../genesis.json',
      dataDir: 'data',
      validatorKey: to0x(account.secretKey),
      nodeKey: to0x(nodeSecret),
      p2p: { tcpPort, wsPort: tcpPort + 1, bootstrap },
      rpc: { port: rpcPort },
    }
    writeFileSync(join(net.dir, name, 'config.json'), JSON.stringify(config), { mode: 0o600 })
    net.logToFiles = true // its log is read below
    net.startNode(name)
    // It syncs the chain, and the others list it as a member peer.
    const tip = (await net.rpc('node-0', 'lc_getNetworkInfo')).height
    await waitFor(async () => ((await net.rpc(name, 'lc_getNetworkInfo')).height >= tip ? true : undefined), 90_000, 'node-5 to sync')
    const peerId = await peerIdFromNodeKey(nodeSecret)
    // Its own state admits it once synced past the block that registered its key (status shows it).
    const info = await waitFor(
      async () => {
        const i = await net.rpc(name, 'lc_getNetworkInfo')
        return i.admitted ? i : undefined
      },
      30_000,
      'node-5 to admit itself',
    )
    expect(info).toMatchObject({ peerId, admitted: true, memberNodes: 6 }) // four validators, the observer, itself
    // Its log: at genesis neither in the set nor admitted (warned), and then, synced past the blocks
    // that added it, each said once, in the order the blocks came.
    const said = readFileSync(join(net.dir, `${name}.log`), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; level: string })
    const at = (start: string, level: string) => said.findIndex((l) => l.msg.startsWith(start) && l.level === level)
    const notInSet = at("this node's validator key is not in the validator set at this node's height", 'warn')
    const notAdmitted = at('admission: this validator’s node key is not admitted by the state', 'warn')
    const admitted = at('admission: the state admits this node now', 'info')
    const inSet = at("this node's validator key is in the validator set now", 'info')
    expect([notInSet, notAdmitted].every((i) => i >= 0)).toBe(true)
    expect(admitted).toBeGreaterThan(notAdmitted)
    expect(inSet).toBeGreaterThan(notInSet)
    expect(said.filter((l) => l.msg.startsWith('admission: the state admits this node now'))).toHaveLength(1)
    const metrics = await (await fetch(`http://127.0.0.1:${rpcPort}/metrics`)).text()
    expect(metrics).toMatch(/^loopchain_node_admitted 1$/m)
    expect(metrics).toMatch(/^loopchain_member_nodes 6$/m)
    await waitFor(
      async () => ((await net.rpc('node-0', 'lc_getPeers')).peers.some((p: any) => p.peerId === peerId && p.member) ? true : undefined),
      30_000,
      'node-0 to list node-5 as a member',
    )

    // Four of five must sign now. Kill one of the first four: only node-5's votes make the fourth.
    net.kill('node-3')
    const receipt = await net.transfer(account.address, 5n)
    expect(receipt).toMatchObject({ status: 'success' })
    const height = receipt.height as number
    // The block's commit (carried by the next block) holds node-5's signature.
    const next = await waitFor(() => net.rpc('node-0', 'lc_getBlockByHeight', { height: height + 1 }), 30_000, 'the next block')
    const set = (await net.rpc('node-0', 'lc_getValidators')) as { address: string }[]
    const index = set.findIndex((v) => v.address === account.address)
    expect(index).toBeGreaterThanOrEqual(0)
    const signers = (next.lastCommit.signatures as { index: number }[]).map((s) => s.index)
    expect(signers).toContain(index)
    expect(signers.length).toBeGreaterThanOrEqual(4)
    // And node-5 holds the same block.
    await waitFor(
      async () => ((await net.rpc(name, 'lc_getBlockByHeight', { height }))?.hash === next.prevHash ? true : undefined),
      30_000,
      'node-5 to hold the block',
    )
  }, 300_000)
})
