/**
 * Admission and abuse against real node processes: four validators (`loopchain start`, libp2p
 * over TCP on 127.0.0.1) and, in this test process, libp2p hosts that play an outsider (a key
 * that is no member's node key) and a misbehaving member (the observer institution's node key,
 * whose node is not running). Also malformed JSON-RPC against a running node. Each case checks
 * what the nodes refuse, how the sender is penalised (seen through `lc_getPeers` and `/metrics`),
 * and that the chain's state is unaffected.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  type Address,
  blockCodec,
  bytes,
  commitCodec,
  consensusMessageCodec,
  decode,
  encode,
  fromHex,
  type Genesis,
  type KeyPair,
  keyPairFromSecret,
  list,
  MAX_TX_BYTES,
  parseGenesis,
  proposerOf,
  signProposal,
  signTransaction,
  signVote,
  struct,
  type Transaction,
  TxKind,
  to0x,
  transactionCodec,
  uvarint,
  type Vote,
  VoteType,
} from '@loopchain/core'
import { createNodeHost, type NodeHost, peerIdFromNodeKey, protocolName, reservePortBlock } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const CLI = fileURLToPath(new URL('../../apps/node/src/main.ts', import.meta.url))
const CHAIN = 'loopchain-devnet'
const N = 4
const dir = mkdtempSync(join(tmpdir(), 'loopchain-admission-'))
// A port range of our own; node i uses base + 10·i (tcp), +1 (ws), +2 (JSON-RPC).
const BASE = reservePortBlock()
const rpcUrl = (i: number) => `http://127.0.0.1:${BASE + 10 * i + 2}/`
const RECIPIENT = 'hx00000000000000000000000000000000000ad301' as Address

// The wire formats of p2p-network.ts that the test speaks directly (it plays a peer).
const txBatchCodec = list(bytes(MAX_TX_BYTES), 256)
const syncRequestCodec = struct('SyncRequest', { from: uvarint, max: uvarint })
const syncResponseCodec = struct('SyncResponse', {
  head: uvarint,
  blocks: list(struct('SyncedBlock', { block: blockCodec, commit: commitCodec }), 64),
})

const procs: ChildProcess[] = []
const hosts: NodeHost[] = []
let genesis: Genesis
let faucet: KeyPair
let observerKey: Uint8Array
const peerIds: string[] = []
const random32 = () => globalThis.crypto.getRandomValues(new Uint8Array(32))

interface RpcReply {
  status: number
  body: { jsonrpc?: string; id?: unknown; result?: any; error?: { code: number; message: string; data?: any } }
}

async function post(i: number, body: string): Promise<RpcReply> {
  const res = await fetch(rpcUrl(i), { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  return { status: res.status, body: (await res.json()) as RpcReply['body'] }
}

async function rpc(i: number, method: string, params: object = {}): Promise<any> {
  const { body } = await post(i, JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }))
  if (body.error) throw new Error(`${method}: ${body.error.message}`)
  return body.result
}

async function waitFor<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const v = await f()
      if (v !== undefined && v !== false) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A libp2p host in this process, dialling nobody until told to. */
async function testHost(nodeKey: Uint8Array): Promise<NodeHost> {
  const h = await createNodeHost({ chainId: CHAIN, nodeKey, isMember: () => true, wsPort: false, relay: false })
  hosts.push(h)
  return h
}
const nodeAddr = (i: number) => `/ip4/127.0.0.1/tcp/${BASE + 10 * i}/p2p/${peerIds[i]}`

function transfer(nonce: number, opts: { networkId?: number } = {}): Transaction {
  return signTransaction(
    {
      version: 1,
      networkId: opts.networkId ?? genesis.networkId,
      from: faucet.address,
      to: RECIPIENT,
      value: 1n,
      stepLimit: 100_000,
      timestamp: Date.now() * 1000,
      nonce,
      kind: TxKind.Transfer,
      data: new Uint8Array(0),
    },
    faucet,
  )
}

async function metric(i: number, name: string): Promise<number> {
  const text = await (await fetch(`${rpcUrl(i)}metrics`)).text()
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)
  if (!m) throw new Error(`node ${i} reports no ${name}`)
  return Number(m[1])
}
const faucetNonce = async (): Promise<number> => (await rpc(0, 'lc_getAccount', { address: faucet.address })).nonce
const voteMsg = (vote: Vote, key: KeyPair) => encode(consensusMessageCodec, { kind: 'vote', vote: signVote(vote, key.secretKey) })
const validator = (i: number) => genesis.validators.validators[i]?.address as Address

interface PeerView {
  peerId: string
  peers: { peerId: string; member: boolean; score: number | null }[]
  banned: { peerId: string; remainingMs: number; score: number | null }[]
}
const peerView = (i: number): Promise<PeerView> => rpc(i, 'lc_getPeers')
const scoreAt = async (i: number, peer: string) => (await peerView(i)).peers.find((p) => p.peerId === peer)

/** What must not move when nothing is committed: every node's tip, state root, pool and the faucet's account. */
async function chainState(i: number) {
  const info = await rpc(i, 'lc_getNetworkInfo')
  const proof = await rpc(i, 'lc_getStateProof', { key: '0x00' })
  const account = await rpc(i, 'lc_getAccount', { address: faucet.address })
  return { height: info.height, lastBlockHash: info.lastBlockHash, stateRoot: proof.stateRoot, mempool: info.mempool, account }
}
const allStates = () => Promise.all(Array.from({ length: N }, (_, i) => chainState(i)))

/**
 * Waits until every node is at the same height with an empty pool, past the block that commits the
 * last transactions' result (a block with transactions is always followed by one more), and returns that state.
 */
async function settled() {
  return waitFor('the nodes to agree and idle', async () => {
    const s = await allStates()
    const same = s.every((x) => x.lastBlockHash === s[0]?.lastBlockHash && x.stateRoot === s[0]?.stateRoot && x.mempool === 0)
    if (!same) return undefined
    const last = await rpc(0, 'lc_getLastBlock')
    if (last.transactions.length > 0) return undefined
    // And still so a moment later: a block being executed can show in the state before its height does.
    await sleep(500)
    return JSON.stringify(await allStates()) === JSON.stringify(s) ? s : undefined
  })
}

beforeAll(async () => {
  const init = spawn(process.execPath, [
    '--import',
    'tsx',
    CLI,
    'init',
    '--validators',
    String(N),
    '--out',
    dir,
    '--base-port',
    String(BASE),
    // These tests compare the whole chain before and after: it must stay idle between them.
    '--empty-block-interval-ms',
    '0',
  ])
  init.stdout.resume()
  init.stderr.resume()
  expect(await new Promise((resolve) => init.once('exit', resolve))).toBe(0)
  genesis = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
  faucet = keyPairFromSecret(fromHex(JSON.parse(readFileSync(join(dir, 'faucet.json'), 'utf8')).secretKey))
  observerKey = fromHex(JSON.parse(readFileSync(join(dir, 'observer', 'config.json'), 'utf8')).nodeKey)
  for (let i = 0; i < N; i++) {
    const config = join(dir, `node-${i}`, 'config.json')
    peerIds.push(await peerIdFromNodeKey(fromHex(JSON.parse(readFileSync(config, 'utf8')).nodeKey)))
    const p = spawn(process.execPath, ['--import', 'tsx', CLI, 'start', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
    p.stdout?.resume()
    p.stderr?.on('data', (d: Buffer) => process.stderr.write(`[node-${i}] ${d}`))
    procs.push(p)
  }
  // Up, and each validator connected to the other three (lc_getPeers lists members among them).
  for (let i = 0; i < N; i++) {
    await waitFor(`node ${i} meshed`, async () => (await peerView(i)).peers.filter((p) => p.member).length >= N - 1, 90_000)
  }
}, 150_000)

afterAll(async () => {
  await Promise.allSettled(hosts.map((h) => h.stop()))
  for (const p of procs) p.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

describe('a peer that is not a member', () => {
  it('connects and may sync blocks, but its transactions and votes are not delivered and it is penalised', async () => {
    const outsider = await testHost(random32())
    expect(await outsider.dial(nodeAddr(0))).toBe(peerIds[0])
    // Read-only block sync is open to everyone (light clients and new nodes use it).
    const head = (await rpc(0, 'lc_getNetworkInfo')).height as number
    const sync = decode(
      syncResponseCodec,
      await outsider.request(peerIds[0] as string, protocolName(CHAIN, 'sync'), encode(syncRequestCodec, { from: 1, max: 1 })),
    )
    expect(sync.head).toBeGreaterThanOrEqual(head)

    await waitFor('node 0 seen on tx', () => outsider.subscribers('tx').includes(peerIds[0] as string) || undefined)
    await waitFor('node 0 seen on vote', () => outsider.subscribers('vote').includes(peerIds[0] as string) || undefined)
    const before = await settled()
    // A valid, signed transfer: from a member it would be pooled and committed (see below).
    const tx = transfer(before[0]?.account.nonce)
    expect(await outsider.publish('tx', encode(txBatchCodec, [encode(transactionCodec, tx)]))).toBe(1)
    // A vote of the next height: delivered, it would make the validators start that height.
    const next = before[0]?.height + 1
    const forged = keyPairFromSecret(random32())
    expect(
      await outsider.publish(
        'vote',
        voteMsg(
          { networkId: 1, type: VoteType.Prevote, height: next, round: 0, blockHash: new Uint8Array(32), validator: validator(0) },
          forged,
        ),
      ),
    ).toBe(1)
    const seen = await waitFor('a negative score for the outsider at node 0', async () => {
      const p = await scoreAt(0, outsider.peerId)
      return p && p.score !== null && p.score < 0 ? p : undefined
    })
    expect(seen.member).toBe(false)
    await sleep(1000)
    expect(await allStates()).toEqual(before)
  })

  it('is disconnected when it subscribes to a member-only topic', async () => {
    const outsider = await testHost(random32())
    await outsider.dial(nodeAddr(1))
    await waitFor('outsider listed at node 1', async () => (await scoreAt(1, outsider.peerId)) !== undefined)
    outsider.subscribe('vote', () => {})
    await waitFor('node 1 hangs up', () => !outsider.connections().some((c) => c.peerId === peerIds[1]) || undefined)
    expect(await scoreAt(1, outsider.peerId)).toBeUndefined()
  })
})

describe('a member that sends forged and malformed consensus messages', () => {
  let member: NodeHost
  const published: number[] = []
  const publish = async (topic: 'vote' | 'proposal', data: Uint8Array) => published.push(await member.publish(topic, data))

  beforeAll(async () => {
    member = await testHost(observerKey)
    await member.dial(nodeAddr(0))
    for (const t of ['tx', 'vote', 'proposal'] as const) {
      await waitFor(`node 0 seen on ${t}`, () => member.subscribers(t).includes(peerIds[0] as string) || undefined)
    }
  })

  it('its valid transaction is delivered and committed (the gossip path works)', async () => {
    const before = await settled()
    const nonce = before[0]?.account.nonce as number
    expect(await member.publish('tx', encode(txBatchCodec, [encode(transactionCodec, transfer(nonce))]))).toBe(1)
    await waitFor('the transfer committed everywhere', async () => {
      const s = await allStates()
      return s.every((x) => x.account.nonce === nonce + 1) || undefined
    })
    const p = await scoreAt(0, member.peerId)
    expect(p?.member).toBe(true)
    expect(p?.score).toBeGreaterThanOrEqual(0)
  })

  it('a vote whose signature does not verify for a real validator is rejected at the first hop: penalised, not forwarded, no tick', async () => {
    const before = await settled()
    const height = before[0]?.height as number
    const forger = keyPairFromSecret(random32())
    const verified = await Promise.all(Array.from({ length: N }, (_, i) => metric(i, 'loopchain_signature_verifications_total')))
    // For the next height: were it believed, an idle chain would start that height (and tick).
    const forged = voteMsg(
      { networkId: 1, type: VoteType.Prevote, height: height + 1, round: 0, blockHash: new Uint8Array(32), validator: validator(0) },
      forger,
    )
    await publish('vote', forged)
    await waitFor('a negative score for the member at node 0', async () => {
      const p = await scoreAt(0, member.peerId)
      return p?.score != null && p.score < 0 ? true : undefined
    })
    await sleep(1500)
    const after = await allStates()
    // Nobody started a height, and no consensus machine ever saw the vote (node 0 checked it in
    // gossip and did not forward it).
    expect(after.map((x) => x.height)).toEqual(before.map((x) => x.height))
    const now = await Promise.all(Array.from({ length: N }, (_, i) => metric(i, 'loopchain_signature_verifications_total')))
    expect(now).toEqual(verified)
    expect((await peerView(0)).banned.map((b) => b.peerId)).not.toContain(member.peerId)
  })

  it('a vote that cannot be valid (unknown signer) is rejected and lowers its score further', async () => {
    const { height } = (await settled())[0] as { height: number }
    const scoreBefore = (await scoreAt(0, member.peerId))?.score as number
    const stranger = keyPairFromSecret(random32())
    const base = { type: VoteType.Prevote, height: height + 1, round: 0, blockHash: new Uint8Array(32) }
    await publish('vote', voteMsg({ ...base, networkId: 1, validator: stranger.address }, stranger))
    expect(published.every((n) => n === 1)).toBe(true)
    await waitFor('a lower score for the member at node 0', async () => {
      const p = await scoreAt(0, member.peerId)
      return p?.score != null && p.score < scoreBefore ? true : undefined
    })
    expect((await peerView(0)).banned.map((b) => b.peerId)).not.toContain(member.peerId)
  })

  it('malformed messages get it graylisted, disconnected and reported in /metrics; the chain goes on', async () => {
    const { height } = (await settled())[0] as { height: number }
    const stranger = keyPairFromSecret(random32())
    const wrongLeader = genesis.validators.validators.find((v) => v.address !== proposerOf(genesis.validators, height + 1, 0).address)
    const junk = (k: number): [topic: 'vote' | 'proposal', data: Uint8Array][] => [
      [
        'vote',
        voteMsg(
          { type: VoteType.Prevote, height: height + 1, round: 0, blockHash: new Uint8Array(32), networkId: 2, validator: validator(0) },
          stranger,
        ),
      ],
      ['vote', new Uint8Array([0xff, k, 1, 2, 3])],
      ['proposal', new Uint8Array([1, k])],
      // A well-formed proposal by a validator that does not lead the round.
      [
        'proposal',
        encode(consensusMessageCodec, {
          kind: 'proposal',
          proposal: signProposal(
            {
              networkId: 1,
              height: height + 1,
              round: k,
              blockHash: new Uint8Array(32).fill(k),
              validRound: -1,
              proposer: wrongLeader?.address as Address,
            },
            new Uint8Array([k]),
            stranger.secretKey,
          ),
        }),
      ],
    ]
    // Four more invalid messages take it below the graylist threshold; no more are sent.
    for (const [topic, data] of junk(1)) expect(await member.publish(topic, data)).toBe(1)
    await waitFor(
      'node 0 bans the member',
      async () => (await peerView(0)).banned.some((b) => b.peerId === member.peerId) || undefined,
      10_000,
    )
    const banned = (await peerView(0)).banned.find((b) => b.peerId === member.peerId)
    expect(banned?.score).toBeLessThan(-80)
    expect(banned?.remainingMs).toBeGreaterThan(60_000)
    await waitFor('node 0 hangs up on the member', () => !member.connections().some((c) => c.peerId === peerIds[0]) || undefined)
    expect(await metric(0, 'loopchain_peers_banned')).toBeGreaterThanOrEqual(1)
    expect(await (await fetch(`${rpcUrl(0)}metrics`)).text()).toContain('# HELP loopchain_peers_banned Peers refused for now: graylisted')
    // The chain still commits, and every node agrees on the block and the state after it.
    const r = await rpc(3, 'lc_sendTransactionAndWait', {
      tx: to0x(encode(transactionCodec, transfer(await faucetNonce()))),
      timeoutMs: 30_000,
    })
    expect(r.status).toBe('success')
    const after = await settled()
    expect(after[0]?.height).toBeGreaterThanOrEqual(r.height)
  })
})

describe('malformed JSON-RPC requests to a running node', () => {
  it('each gets its JSON-RPC error, and neither the chain nor the sender’s account changes', async () => {
    const before = await settled()
    const nonce = before[1]?.account.nonce as number
    const call = (method: string, params: unknown, id: unknown = 7) => post(1, JSON.stringify({ jsonrpc: '2.0', id, method, params }))
    const expectError = (r: RpcReply, code: number, status = 200) => {
      expect(r.status).toBe(status)
      expect(r.body.jsonrpc).toBe('2.0')
      expect(r.body.result).toBeUndefined()
      expect(r.body.error?.code).toBe(code)
      return r.body.error
    }

    expectError(await post(1, '{"jsonrpc":"2.0","id":1,"method":'), -32700)
    expectError(await post(1, JSON.stringify({ jsonrpc: '1.0', id: 1, method: 'lc_getNetworkInfo' })), -32600)
    expectError(await post(1, JSON.stringify({ id: 1, method: 'lc_getNetworkInfo' })), -32600)
    expectError(await call('lc_noSuchMethod', {}), -32601)
    expectError(await call('lc_getAccount', { address: 'not-an-address' }), -32602)
    expectError(await call('lc_getBlockByHeight', { height: -1 }), -32602)
    expectError(await call('lc_sendTransaction', {}), -32602)
    expectError(await call('lc_sendTransaction', { tx: 'zz' }), -32602)
    expectError(await call('lc_sendTransaction', { tx: to0x(encode(transactionCodec, transfer(nonce))), extra: 1 }), -32602)
    expectError(
      await post(1, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'lc_sendTransaction', params: { tx: `0x${'00'.repeat(1_600_000)}` } })),
      -32003,
      413,
    )

    const malformed = expectError(await call('lc_sendTransaction', { tx: '0x0102ff' }), -32000)
    expect(typeof malformed?.data?.code).toBe('string')
    const good = transfer(nonce)
    const badSig = { ...good, signature: good.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) }
    expect(expectError(await call('lc_sendTransaction', { tx: to0x(encode(transactionCodec, badSig)) }), -32000)?.data).toEqual({
      code: 'BAD_SIGNATURE',
    })
    expect(
      expectError(
        await call('lc_sendTransactionAndWait', { tx: to0x(encode(transactionCodec, transfer(nonce, { networkId: 9 }))) }),
        -32000,
      )?.data,
    ).toEqual({ code: 'WRONG_NETWORK' })

    // Nothing was pooled, so nothing is gossiped or committed: every node is byte-for-byte where it was.
    await sleep(1500)
    expect(await allStates()).toEqual(before)
  })
})
