/**
 * A light client against real full nodes: a one-validator network and an observer as two OS
 * processes (`loopchain start`, LevelDB on disk), governance changing the validator set three
 * times, and a light client in this process speaking libp2p over real WebSockets to both: it
 * syncs through the set changes, checks a state proof, cross-checks the tip with the observer,
 * follows a new header on gossip, and resumes offline from its store once the nodes are gone.
 */
import { type Address, accountKey, accountStateCodec, blockHash, decode, type SignedHeader, to0x, toHex } from '@loopchain/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLibp2pTransport, LightClient, MemoryLightStore } from '../../packages/light-client/src/index.js'
import { CliNetwork, waitFor } from '../support/cli-network.js'

const RECIPIENT = 'hx00000000000000000000000000000000000e2e02' as Address
let net: CliNetwork

beforeAll(async () => {
  net = await CliNetwork.start({ validators: 1, observer: true })
}, 180_000)

afterAll(() => net?.stop())

describe('a light client over libp2p WebSockets to real nodes', () => {
  it('syncs through three validator-set changes, proves state, cross-checks, follows gossip and resumes offline', async () => {
    const genesis = net.genesis()
    const validator = net.validatorKey('node-0')
    const faucet = net.faucet()

    // Three set changes: governance sets the one validator's power to 2, 3, 4 (one validator
    // approves alone), each followed by a transfer so that the next header announces it.
    for (const power of [2n, 3n, 4n]) {
      expect((await net.propose('node-0', { type: 'setValidatorPower', address: validator.address, power })).status).toBe('success')
      expect((await net.transfer(RECIPIENT)).status).toBe('success')
    }
    // The last transfer's block is followed by one more that commits its result; then the chain idles.
    const last = await waitFor(
      async () => {
        const b = await net.rpc('node-0', 'lc_getLastBlock', { full: true })
        return b.transactions.length === 0 ? b : undefined
      },
      30_000,
      'the chain to idle',
    )
    await waitFor(
      async () => ((await net.rpc('observer', 'lc_getLastBlock', { full: false })).height >= last.height ? true : undefined),
      30_000,
      'observer sync',
    )

    const [node, observer] = await Promise.all([net.wsAddr('node-0'), net.wsAddr('observer')])
    const transport = await createLibp2pTransport({
      chainId: genesis.chainId,
      bootstrap: [node.addr, observer.addr],
      allowLocal: true,
      transports: ['websockets'],
    })
    expect(transport.peers().sort()).toEqual([node.peerId, observer.peerId].sort())
    const store = new MemoryLightStore()
    const client = await LightClient.open({ genesis, transport, store })

    const synced = await client.sync({ peer: node.peerId })
    expect(synced).toMatchObject({ peer: node.peerId, height: last.height, setChanges: 3, verifiedHeaders: 4 })
    expect(`0x${toHex(synced.hash)}`).toBe(last.hash)
    // The sync compared the new tip with the observer by itself.
    expect(synced.crossCheck).toMatchObject({ status: 'agree', peer: observer.peerId })
    expect(client.validatorSets.map((s) => s.set.validators[0]?.power)).toEqual([1, 2, 3, 4])
    // The last change votes from the height its set says (two after the block that made it), at or before the tip.
    const from = client.validatorSets[3]?.from as number
    expect(from).toBeLessThanOrEqual(last.height + 1)
    expect(client.validatorsAt(from - 1).validators.map((v) => v.power)).toEqual([3])
    expect(client.validatorsAt(from).validators.map((v) => v.power)).toEqual([4])

    // A verified header in the middle, fetched by range and checked against the set of its height.
    const mid = await client.verifiedHeaderAt(3)
    expect(`0x${toHex(blockHash(mid.header))}`).toBe((await net.rpc('node-0', 'lc_getBlockByHeight', { height: 3, full: false })).hash)

    // The faucet's account, proven against the verified tip: the state after block tip − 1.
    const proven = await client.getStateProof(accountKey(faucet.address))
    const expected = await net.rpc('node-0', 'lc_getStateProof', { key: to0x(accountKey(faucet.address)), height: last.height - 1 })
    expect(to0x(proven.value as Uint8Array)).toBe(expected.value)
    // The tip is the block after the faucet's last transfer (it commits its result): that state includes every transfer.
    expect(decode(accountStateCodec, proven.value as Uint8Array).nonce).toBe(net.sent(faucet))

    expect(await client.crossCheck()).toMatchObject({ status: 'agree', peer: observer.peerId, height: last.height })

    // A new block's header arrives on gossip, verified against the current set.
    client.follow()
    const next = new Promise<SignedHeader>((resolve) => client.on('header', resolve))
    await new Promise((r) => setTimeout(r, 1500)) // let the nodes learn of the subscription
    const r = await net.transfer(RECIPIENT)
    const gossiped = await next
    expect(gossiped.header.height).toBe(r.height)
    expect(client.height).toBe(r.height)

    // The nodes go away; a reload from the store still knows the tip, the sets and stored headers.
    await client.close()
    net.kill()
    const offline = await LightClient.open({ genesis, store })
    expect(offline.height).toBe(r.height)
    expect((await offline.verifiedHeaderAt(3)).header.height).toBe(3)
    await expect(offline.sync()).rejects.toMatchObject({ code: 'NO_PEER' })
  }, 180_000)
})
