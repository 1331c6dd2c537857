/**
 * What a full node serves light clients (node/light-server.ts over core wire/light.ts), read from
 * its real stores: the tip with its commit, headers by range (read from the front of stored
 * blocks), the validator-set changes governance made, state proofs that verify against the
 * header that commits to them; and the `header` topic's gossip check.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  accountKey,
  blockHash,
  bytesEqual,
  callDataCodec,
  createLightHandlers,
  decode,
  encode,
  followValidatorSets,
  GOVERNANCE_ADDRESS,
  headersRequestCodec,
  headersResponseCodec,
  type KeyPair,
  LIGHT_PROTOCOLS,
  type SignedHeader,
  setChangesPageCodec,
  setChangesRequestCodec,
  signedHeaderCodec,
  signTransaction,
  stateProofAnswerCodec,
  stateProofRequestCodec,
  TxKind,
  type Value,
  verifySignedHeader,
  verifyStateAgainstHeader,
} from '@loopchain/core'
import { afterAll, describe, expect, it } from 'vitest'
import {
  type CommittedBlock,
  checkHeaderGossip,
  FullNode,
  fullNodeLightBackend,
  type HandleOptions,
  LIGHT_NON_MEMBERS,
  serveLightClients,
} from '../src/index.js'
import { idle, testGenesis, testKey, testTransfer } from './fixtures/test-chain.js'

const NET = 31
const validator = testKey('light-server validator')
const alice = testKey('light-server alice')
const bob = testKey('light-server bob')
const dir = mkdtempSync(join(tmpdir(), 'loopchain-light-server-'))
let node: FullNode
afterAll(async () => {
  await node?.stop()
  rmSync(dir, { recursive: true, force: true })
})

function committed(pred: (b: CommittedBlock) => boolean): Promise<CommittedBlock> {
  return new Promise((resolve) => {
    const off = node.onBlock((b) => {
      if (pred(b)) {
        off()
        resolve(b)
      }
    })
  })
}

async function send(tx: Parameters<FullNode['submit']>[0], from: KeyPair, nonce: number): Promise<CommittedBlock> {
  const done = committed((b) => b.block.transactions.some((t) => t.body.from === from.address && t.body.nonce === nonce))
  await node.submit(tx)
  return done
}

describe('the light-client protocols of a full node', () => {
  it('serves tip, headers, set changes and proofs that verify from the pinned genesis', async () => {
    const genesis = testGenesis({
      chainId: 'light-server',
      networkId: NET,
      validators: [validator],
      funded: alice,
      params: { blockIntervalMs: 20 },
    })
    node = await FullNode.open({ dataDir: dir, genesis, validatorSecret: validator.secretKey })
    const published: Uint8Array[] = []
    node.attachNetwork({ publishConsensus: () => {}, publishHeader: (b) => published.push(b) })
    node.start()
    // One validator approves alone: its power goes to 3, a validator-set change.
    const action: Value = { type: 'setValidatorPower', address: validator.address, power: 3n }
    const propose = signTransaction(
      {
        version: 1,
        networkId: NET,
        from: validator.address,
        to: GOVERNANCE_ADDRESS,
        value: 0n,
        stepLimit: 10_000_000,
        timestamp: Date.now() * 1000,
        nonce: 0,
        kind: TxKind.Call,
        data: encode(callDataCodec, { method: 'propose', params: { action } }),
      },
      validator,
    )
    const k = (await send(propose, validator, 0)).block.header.height
    for (let nonce = 0; nonce < 3; nonce++) await send(testTransfer(NET, alice, bob.address, nonce, 7n), alice, nonce)
    await idle([node])
    const handlers = createLightHandlers(fullNodeLightBackend(node))

    // Each committed header was published with its commit, as light clients receive it on gossip.
    expect(published).toHaveLength(node.height)
    const lastPublished = decode(signedHeaderCodec, published[published.length - 1] as Uint8Array)
    expect(bytesEqual(blockHash(lastPublished.header), blockHash(node.head))).toBe(true)

    const tip = decode(signedHeaderCodec, await handlers.tip(new Uint8Array(0)))
    expect(tip.header.height).toBe(node.height)
    const page = decode(setChangesPageCodec, await handlers.sets(encode(setChangesRequestCodec, { after: 0 })))
    expect(page.changes.map((c) => c.signed.header.height)).toEqual([k + 1])
    const sets = followValidatorSets(genesis, page.changes)
    expect(sets.map((s) => s.from)).toEqual([1, k + 2])
    verifySignedHeader(tip, sets[1]?.set as never, NET)

    const range = decode(headersResponseCodec, await handlers.headers(encode(headersRequestCodec, { from: 1, count: 256 })))
    expect(range.map((s) => s.header.height)).toEqual(Array.from({ length: node.height }, (_, i) => i + 1))
    for (const sh of range) expect(sh.header).toEqual((await node.chain.blockAt(sh.header.height))?.header)

    const answer = decode(
      stateProofAnswerCodec,
      await handlers.proof(encode(stateProofRequestCodec, { key: accountKey(bob.address), height: 0 })),
    )
    expect(answer.height).toBe(node.height)
    verifyStateAgainstHeader(tip.header, accountKey(bob.address), answer)
    const older = decode(
      stateProofAnswerCodec,
      await handlers.proof(encode(stateProofRequestCodec, { key: accountKey(bob.address), height: 2 })),
    )
    // Header 2 commits the state after block 1 (the proposal): bob is proven absent there.
    verifyStateAgainstHeader((range[1] as SignedHeader).header, accountKey(bob.address), older)
    expect(older.value).toBeUndefined()
  }, 60_000)
})

describe('serving light clients', () => {
  it('opens every light protocol to non-members, with bounded requests and at most LIGHT_NON_MEMBERS served at once', async () => {
    const served = new Map<string, HandleOptions | undefined>()
    await serveLightClients({ handle: async (protocol, _handler, opts) => void served.set(protocol, opts) }, node)
    expect(served.size).toBe(LIGHT_PROTOCOLS.length)
    for (const [protocol, opts] of served) {
      expect(protocol).toContain(node.options.genesis.chainId)
      expect(opts).toMatchObject({ memberOnly: false, maxConcurrentNonMembers: LIGHT_NON_MEMBERS })
      expect(opts?.maxRequestBytes).toBeTypeOf('number')
    }
  })
})

describe('header gossip check', () => {
  it('accepts a committed header, rejects a forged or malformed one, ignores one too far ahead or below the tip', async () => {
    const handlers = createLightHandlers(fullNodeLightBackend(node))
    const bytes = await handlers.tip(new Uint8Array(0))
    expect(checkHeaderGossip(node, bytes)).toBe('accept')
    const sh = decode(signedHeaderCodec, bytes)
    const forged: SignedHeader = { ...sh, header: { ...sh.header, round: sh.header.round + 1 } }
    expect(checkHeaderGossip(node, encode(signedHeaderCodec, forged))).toBe('reject')
    expect(checkHeaderGossip(node, new Uint8Array([1, 2, 3]))).toBe('reject')
    const ahead: SignedHeader = { ...sh, header: { ...sh.header, height: node.height + 5 } }
    expect(checkHeaderGossip(node, encode(signedHeaderCodec, ahead))).toBe('ignore')
    // Below the tip: dropped without a check, so a replay of history costs no signature checks
    // (this one is forged too: were it checked, it would be rejected).
    expect(node.height).toBeGreaterThan(1)
    const old: SignedHeader = { ...sh, header: { ...sh.header, height: node.height - 1 } }
    expect(checkHeaderGossip(node, encode(signedHeaderCodec, old))).toBe('ignore')
  })

  it('passes on one header a block: another commit of the same block (a different quorum subset) is dropped unchecked, another block of the height is checked', async () => {
    const handlers = createLightHandlers(fullNodeLightBackend(node))
    const bytes = await handlers.tip(new Uint8Array(0))
    const sh = decode(signedHeaderCodec, bytes)
    const forwarded = { height: 0, hash: new Uint8Array(32) }
    expect(checkHeaderGossip(node, bytes, forwarded)).toBe('accept')
    expect(forwarded.height).toBe(sh.header.height)
    // The same header and commit, encoded again: gossip's own seen-cache would drop the same bytes,
    // so this stands for any other valid variant of the height.
    expect(checkHeaderGossip(node, Uint8Array.from(bytes), forwarded)).toBe('ignore')
    // Another block at this height would be evidence of a fork: checked (this one is forged: refused).
    const forged: SignedHeader = { ...sh, header: { ...sh.header, round: sh.header.round + 1 } }
    expect(checkHeaderGossip(node, encode(signedHeaderCodec, forged), forwarded)).toBe('reject')
    expect(forwarded.height).toBe(sh.header.height)
    // Without the record of what was passed on, each is checked again.
    expect(checkHeaderGossip(node, Uint8Array.from(bytes))).toBe('accept')
  })
})
