/**
 * The light client against in-memory full nodes serving synthetic chains through the core's
 * light-protocol handlers (the same bytes a real node sends): sync through set changes, stored
 * state across a reload, offline use, proofs, gossip, cross-checks, and every lie a node can tell.
 */

import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  blockHash,
  bytesEqual,
  decode,
  encode,
  headersResponseCodec,
  type LightHandlers,
  type SignedHeader,
  setChangesPageCodec,
  signedHeaderCodec,
  stateProofAnswerCodec,
  stateProofRequestCodec,
  utf8,
  type ValidatorSetChange,
} from '@loopchain/core'
import { multiaddr } from '@multiformats/multiaddr'
import { describe, expect, it } from 'vitest'
import {
  type Conflict,
  isLocalAddress,
  LightClient,
  LightClientError,
  localDevGater,
  MemoryLightStore,
  type MemoryPeer,
  MemoryTransport,
} from '../src/index.js'
import { SyntheticChain, spreadChanges } from './fixtures/synthetic-chain.js'

const STATE = new Map([
  ['cert:alpha', utf8('issued by bank-a')],
  ['cert:beta', utf8('revoked')],
])

async function chain(height: number, changes = 0, extra: { fork?: number; validators?: number } = {}) {
  return SyntheticChain.create({ height, changesAt: spreadChanges(height, changes), state: STATE, ...extra })
}

/** Handlers of `c` with some replaced: a node that lies about one thing. */
function lying(c: SyntheticChain, overrides: Partial<MemoryPeer>): MemoryPeer {
  return { ...c.handlers(), ...overrides }
}

async function faultOf(p: Promise<unknown>): Promise<LightClientError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(LightClientError)
  return err as LightClientError
}

describe('the package', () => {
  it('never imports the full node or a Node built-in (it runs in browsers)', () => {
    const src = fileURLToPath(new URL('../src', import.meta.url))
    for (const f of readdirSync(src)) {
      const code = readFileSync(join(src, f), 'utf8')
      expect(code, f).not.toMatch(/from\s+['"](@loopchain\/node|node:)/)
    }
  })
})

describe('the dial gater for local devnets', () => {
  it('allows loopback and private addresses (plain ws:// too) and refuses plain ws:// to public hosts', async () => {
    const deny = (a: string) => localDevGater.denyDialMultiaddr?.(multiaddr(a))
    expect(await deny('/ip4/127.0.0.1/tcp/27601/ws')).toBe(false)
    expect(await deny('/ip4/192.168.1.20/tcp/27601/ws')).toBe(false)
    expect(await deny('/ip6/::1/tcp/27601/ws')).toBe(false)
    expect(await deny('/dns4/localhost/tcp/27601/ws')).toBe(false)
    expect(await deny('/ip4/8.8.8.8/tcp/27601/ws')).toBe(true)
    expect(await deny('/dns4/node.example.org/tcp/443/tls/ws')).toBe(false)
    expect(await deny('/ip4/8.8.8.8/udp/4001/webrtc-direct')).toBe(false)
    expect(isLocalAddress(multiaddr('/ip4/172.20.0.1/tcp/1'))).toBe(true)
    expect(isLocalAddress(multiaddr('/ip4/172.32.0.1/tcp/1'))).toBe(false)
  })
})

describe('sync', () => {
  it('reaches the tip of a 20,000-block chain through 6 set changes with one tip and one set-change request', async () => {
    const c = await chain(20_000, 6)
    const transport = new MemoryTransport({ honest: c.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    const r = await client.sync()
    expect(r).toMatchObject({ peer: 'honest', height: 20_000, setChanges: 6, verifiedHeaders: 7, behind: false })
    expect(bytesEqual(r.hash, blockHash(c.headers[19_999] as SignedHeader['header']))).toBe(true)
    expect(transport.requests).toEqual({ tip: 1, headers: 0, sets: 1, proof: 0, submit: 0, watch: 0 })
    expect(client.validatorSets.map((s) => s.from)).toEqual(c.sets.map((s) => s.from))
    // The set in force at every height is now known, up to the one after the tip.
    for (const s of c.sets) expect(client.validatorsAt(s.from)).toEqual(s.set)
    expect(() => client.validatorsAt(20_002)).toThrow(LightClientError)
    expect([client.knowsValidatorsAt(20_001), client.knowsValidatorsAt(20_002)]).toEqual([true, false])
  })

  it('a second sync follows only the changes announced since the first', async () => {
    const c = await chain(2_000, 4)
    const short = await SyntheticChain.create({ height: 1_000, changesAt: spreadChanges(2_000, 4), state: STATE })
    const transport = new MemoryTransport({ node: short.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    expect((await client.sync()).setChanges).toBe(2)
    transport.setPeer('node', c.handlers())
    const r = await client.sync()
    expect(r).toMatchObject({ height: 2_000, setChanges: 2 })
    expect(client.setChanges).toHaveLength(4)
  })

  it('follows more set changes than fit on one page', async () => {
    const c = await SyntheticChain.create({ height: 700, changesAt: Array.from({ length: 300 }, (_, i) => 2 * i + 2), validators: 1 })
    const transport = new MemoryTransport({ n: c.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    expect(await client.sync()).toMatchObject({ height: 700, setChanges: 300 })
    expect(transport.requests.sets).toBe(2)
  })

  it('does not move back when a node is behind the verified tip', async () => {
    const c = await chain(500, 2)
    const behind = await SyntheticChain.create({ height: 300, changesAt: spreadChanges(500, 2), state: STATE })
    const transport = new MemoryTransport({ ahead: c.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    await client.sync()
    transport.setPeer('ahead', behind.handlers())
    expect(await client.sync()).toMatchObject({ height: 500, behind: true })
    expect(client.height).toBe(500)
  })

  it('is not kept on an old tip by a node that lags: the next node moves it on, and the lagging one is not asked first again', async () => {
    const c = await chain(500, 2)
    const stale = await SyntheticChain.create({ height: 300, changesAt: spreadChanges(500, 2), state: STATE })
    // The stale node is asked first (the transport lists it first).
    const transport = new MemoryTransport({ stale: stale.handlers(), honest: c.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    expect(await client.sync()).toMatchObject({ peer: 'stale', height: 300, behind: false })
    // Next time the stale node (the last that served) says 300 again: the honest one is asked too.
    expect(await client.sync()).toMatchObject({ peer: 'honest', height: 500, behind: false })
    expect(client.height).toBe(500)
    // And now the honest node is asked first; with every node at or below the tip, the sync says so.
    expect(await client.sync({ peer: 'stale' })).toMatchObject({ peer: 'stale', height: 500, behind: true })
    expect(await client.sync()).toMatchObject({ peer: 'honest', height: 500, behind: true })
  })

  it('tries the next node when one lies, and reports the liar', async () => {
    const c = await chain(300, 1)
    const forged = forgeSignature(c.signedHeader(300) as SignedHeader)
    const transport = new MemoryTransport({
      liar: lying(c, { tip: async () => encode(signedHeaderCodec, forged) }),
      honest: c.handlers(),
    })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    const faults: string[] = []
    client.on('fault', (f) => faults.push(`${f.peer}:${f.error.details.code}`))
    const r = await client.sync()
    expect(r).toMatchObject({ peer: 'honest', height: 300 })
    // Then the cross-check with the other node finds the same lie.
    expect(r.crossCheck).toMatchObject({ status: 'faulty', peer: 'liar' })
    expect(faults).toEqual(['liar:BAD_COMMIT', 'liar:BAD_COMMIT'])
  })

  it('is offline without a transport or reachable node: sync says NO_PEER', async () => {
    const c = await chain(10)
    const offline = await LightClient.open({ genesis: c.genesis })
    expect((await faultOf(offline.sync())).code).toBe('NO_PEER')
    const transport = new MemoryTransport({ n: c.handlers() })
    transport.setOnline('n', false)
    const unreachable = await LightClient.open({ genesis: c.genesis, transport })
    expect((await faultOf(unreachable.sync())).code).toBe('NO_PEER')
  })
})

function forgeSignature(sh: SignedHeader): SignedHeader {
  const signatures = sh.commit.signatures.map((s, i) => {
    if (i !== 0) return s
    const sig = s.signature.slice()
    sig[5] = (sig[5] as number) ^ 1
    return { ...s, signature: sig }
  })
  return { ...sh, commit: { ...sh.commit, signatures } }
}

describe('a node that lies is caught', () => {
  const rejects = async (c: SyntheticChain, peer: MemoryPeer, code: string) => {
    const store = new MemoryLightStore()
    const client = await LightClient.open({ genesis: c.genesis, transport: new MemoryTransport({ liar: peer }), store })
    const err = await faultOf(client.sync())
    expect(err.code).toBe('PEER_FAULT')
    expect(err.details).toMatchObject({ peer: 'liar', code })
    // Nothing that failed verification was kept.
    expect(client.height).toBe(0)
    expect(await store.load()).toBeUndefined()
    expect(await store.headerCount()).toBe(0)
  }

  it('a forged header (a signature that does not verify)', async () => {
    const c = await chain(50)
    await rejects(
      c,
      lying(c, { tip: async () => encode(signedHeaderCodec, forgeSignature(c.signedHeader(50) as SignedHeader)) }),
      'BAD_COMMIT',
    )
  })

  it('a header changed after signing (the commit is for another block)', async () => {
    const c = await chain(50)
    const sh = c.signedHeader(50) as SignedHeader
    const changed = { ...sh, header: { ...sh.header, txRoot: new Uint8Array(32).fill(9) } }
    await rejects(c, lying(c, { tip: async () => encode(signedHeaderCodec, changed) }), 'BAD_COMMIT')
  })

  it('too little signing power (2 of 4 validators, 21 of 46)', async () => {
    const c = await chain(50)
    const header = c.headers[49] as SignedHeader['header']
    const weak: SignedHeader = { header, commit: c.sign(header, [0, 1]) }
    const err = await faultOf(
      (
        await LightClient.open({
          genesis: c.genesis,
          transport: new MemoryTransport({ liar: lying(c, { tip: async () => encode(signedHeaderCodec, weak) }) }),
        })
      ).sync(),
    )
    expect(err.details.code).toBe('BAD_COMMIT')
    expect(String((err.cause as Error).message)).toMatch(/not more than 2\/3/)
  })

  it('a header voted on by a wrong validator set (validly signed by impostors)', async () => {
    const c = await chain(50)
    const impostors = await SyntheticChain.create({ height: 50, seed: 'impostors', chainId: 'synthetic', networkId: 7 })
    await rejects(c, impostors.handlers(), 'WRONG_SET')
  })

  it('a set change that announces one set and delivers another', async () => {
    const c = await chain(400, 2)
    const other = await chain(400, 2, { validators: 5 })
    const sets = async (req: Uint8Array) => {
      const page = decode(setChangesPageCodec, await c.handlers().sets(req))
      const changes: ValidatorSetChange[] = page.changes.map((ch, i) => (i === 1 ? { ...ch, next: other.sets[2]?.set ?? ch.next } : ch))
      return encode(setChangesPageCodec, { ...page, changes })
    }
    await rejects(c, lying(c, { sets }), 'WRONG_NEXT_SET')
  })

  it('a withheld set change (the tip is then signed by a set the client does not know)', async () => {
    const c = await chain(400, 2)
    const sets = async (req: Uint8Array) => {
      const page = decode(setChangesPageCodec, await c.handlers().sets(req))
      return encode(setChangesPageCodec, { ...page, changes: page.changes.slice(0, 1) })
    }
    await rejects(c, lying(c, { sets }), 'WRONG_SET')
  })

  it('a withheld change that the tip itself announces', async () => {
    const c = await SyntheticChain.create({ height: 100, changesAt: [100] })
    const sets = async () => encode(setChangesPageCodec, { changes: [], more: false })
    await rejects(c, lying(c, { sets }), 'WRONG_NEXT_SET')
  })

  it('a status (tip) for another network', async () => {
    const c = await chain(50)
    const elsewhere = await SyntheticChain.create({ height: 50, networkId: 8 })
    await rejects(c, lying(c, { tip: elsewhere.handlers().tip }), 'WRONG_NETWORK')
  })

  it('a status that is not a signed header at all', async () => {
    const c = await chain(50)
    await rejects(c, lying(c, { tip: async () => utf8('height: 1000000') }), 'MALFORMED')
  })
})

describe('verified headers, reloads and offline use', () => {
  it('fetches and verifies a header below the tip, and keeps it', async () => {
    const c = await chain(1_000, 2)
    const transport = new MemoryTransport({ n: c.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    await client.sync()
    const sh = await client.verifiedHeaderAt(777)
    expect(sh.header).toEqual(c.headers[776])
    await client.verifiedHeaderAt(777)
    expect(transport.requests.headers).toBe(1)
    await expect(client.verifiedHeaderAt(1_001)).rejects.toMatchObject({ code: 'NOT_VERIFIED' })
  })

  it('refuses a header below the tip that a node forged', async () => {
    const c = await chain(100)
    const headers = async () => encode(headersResponseCodec, [forgeSignature(c.signedHeader(40) as SignedHeader)])
    const client = await LightClient.open({ genesis: c.genesis, transport: new MemoryTransport({ liar: lying(c, { headers }) }) })
    await client.sync()
    expect((await faultOf(client.verifiedHeaderAt(40))).details.code).toBe('BAD_COMMIT')
  })

  it('a reload resumes from the store, offline: tip, sets and stored headers, re-verified', async () => {
    const c = await chain(5_000, 3)
    const store = new MemoryLightStore()
    const online = await LightClient.open({ genesis: c.genesis, store, transport: new MemoryTransport({ n: c.handlers() }) })
    await online.sync()
    await online.verifiedHeaderAt(1_234)
    const reloaded = await LightClient.open({ genesis: c.genesis, store })
    expect(reloaded.height).toBe(5_000)
    expect(reloaded.validatorSets).toEqual(online.validatorSets)
    expect((await reloaded.verifiedHeaderAt(1_234)).header).toEqual(c.headers[1_233])
    // A set-change header is kept with its change.
    const changeAt = c.sets[1]?.from ? (c.sets[1].from as number) - 1 : 0
    expect((await reloaded.verifiedHeaderAt(changeAt)).header.height).toBe(changeAt)
    // Offline, a header from elsewhere (a certificate file, say) is still verified against the stored sets.
    expect(reloaded.checkHeader(c.signedHeader(4_000) as SignedHeader).header.height).toBe(4_000)
    expect(() => reloaded.checkHeader(forgeSignature(c.signedHeader(4_000) as SignedHeader))).toThrow(/does not verify|not committed/)
    // So is a state proof that comes with it (a certificate's status, say).
    const key = utf8('cert:beta')
    const answer = decode(stateProofAnswerCodec, await c.handlers().proof(encode(stateProofRequestCodec, { key, height: 4_000 })))
    expect(new TextDecoder().decode(reloaded.checkState(c.signedHeader(4_000) as SignedHeader, key, answer).value)).toBe('revoked')
    expect(() => reloaded.checkState(c.signedHeader(4_000) as SignedHeader, key, { ...answer, value: utf8('valid') })).toThrow(
      expect.objectContaining({ code: 'BAD_PROOF' }),
    )
    await expect(reloaded.verifiedHeaderAt(999)).rejects.toMatchObject({ code: 'NOT_VERIFIED' })
    await expect(reloaded.getStateProof(utf8('cert:alpha'))).rejects.toMatchObject({ code: 'NO_PEER' })
  })

  it('refuses a store of another chain, and a store whose headers were tampered with', async () => {
    const c = await chain(100)
    const store = new MemoryLightStore()
    await (await LightClient.open({ genesis: c.genesis, store, transport: new MemoryTransport({ n: c.handlers() }) })).sync()
    const other = await SyntheticChain.create({ height: 1, seed: 'other' })
    await expect(LightClient.open({ genesis: other.genesis, store })).rejects.toMatchObject({ code: 'STORE_MISMATCH' })
    const snap = await store.load()
    const tampered = new MemoryLightStore()
    await tampered.save({
      headers: [forgeSignature(c.signedHeader(100) as SignedHeader)],
      changes: [],
      checkpoint: snap?.checkpoint as never,
    })
    await expect(LightClient.open({ genesis: c.genesis, store: tampered })).rejects.toMatchObject({ code: 'STORE_MISMATCH' })
    // Records this version cannot read (another version's, or damaged) are a mismatch too, so the
    // page offers to start over instead of staying stuck; any other failure of the store is not.
    class Unreadable extends MemoryLightStore {
      override async load(): ReturnType<MemoryLightStore['load']> {
        return decode(signedHeaderCodec, Uint8Array.of(1, 2, 3)) as never
      }
    }
    await expect(LightClient.open({ genesis: c.genesis, store: new Unreadable() })).rejects.toMatchObject({ code: 'STORE_MISMATCH' })
    class Failing extends MemoryLightStore {
      override async load(): ReturnType<MemoryLightStore['load']> {
        throw new Error('QuotaExceededError')
      }
    }
    await expect(LightClient.open({ genesis: c.genesis, store: new Failing() })).rejects.toThrow('QuotaExceededError')
  })

  it('prunes ordinary headers below the kept window', async () => {
    const c = await SyntheticChain.create({ height: 160, validators: 1 })
    const store = new MemoryLightStore()
    const transport = new MemoryTransport({ n: (await SyntheticChain.create({ height: 10, validators: 1 })).handlers() })
    const client = await LightClient.open({ genesis: c.genesis, store, transport, keepHeaders: 50 })
    await client.sync()
    client.follow()
    for (let h = 11; h <= 160; h++)
      expect(await transport.publishHeader(encode(signedHeaderCodec, c.signedHeader(h) as SignedHeader), 'n')).toEqual(['accept'])
    expect(client.height).toBe(160)
    expect(await store.headerCount()).toBeLessThanOrEqual(60)
    expect(await store.header(150)).toBeDefined()
    expect(await store.header(50)).toBeUndefined()
  })
})

describe('state proofs', () => {
  it('verifies a present value and a proven absence against the verified tip', async () => {
    const c = await chain(300, 1)
    const client = await LightClient.open({ genesis: c.genesis, transport: new MemoryTransport({ n: c.handlers() }) })
    await client.sync()
    const present = await client.getStateProof(utf8('cert:alpha'))
    expect(present.height).toBe(300)
    expect(new TextDecoder().decode(present.value)).toBe('issued by bank-a')
    const absent = await client.getStateProof(utf8('cert:gamma'), { height: 120 })
    expect(absent).toMatchObject({ height: 120, value: undefined })
  })

  it('catches a node lying about a value, or about the state root, and asks another', async () => {
    const c = await chain(300, 1)
    const wrongValue = async (req: Uint8Array) => {
      const a = decode(stateProofAnswerCodec, await c.handlers().proof(req))
      return encode(stateProofAnswerCodec, { ...a, value: utf8('valid, not revoked') })
    }
    const wrongRoot = async (req: Uint8Array) => {
      const a = decode(stateProofAnswerCodec, await c.handlers().proof(req))
      return encode(stateProofAnswerCodec, { ...a, result: { ...a.result, stateRoot: new Uint8Array(32).fill(1) } })
    }
    for (const [proof, code] of [
      [wrongValue, 'BAD_PROOF'],
      [wrongRoot, 'WRONG_RESULT'],
    ] as const) {
      const transport = new MemoryTransport({ liar: lying(c, { proof }) })
      const client = await LightClient.open({ genesis: c.genesis, transport })
      await client.sync()
      const err = await faultOf(client.getStateProof(utf8('cert:beta')))
      expect(err).toMatchObject({ code: 'PEER_FAULT', details: { peer: 'liar', code } })
      transport.setPeer('honest', c.handlers())
      expect(new TextDecoder().decode((await client.getStateProof(utf8('cert:beta'))).value)).toBe('revoked')
    }
  })
})

describe('cross-checking the tip with a second node', () => {
  it('agrees with an honest second node, ahead or behind', async () => {
    const c = await chain(600, 2)
    const behind = await SyntheticChain.create({ height: 450, changesAt: spreadChanges(600, 2), state: STATE })
    const transport = new MemoryTransport({ primary: behind.handlers(), second: c.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    await client.sync({ peer: 'primary' })
    expect(await client.crossCheck()).toMatchObject({ status: 'agree', peer: 'second', height: 450, theirHeight: 600 })
    await client.sync({ peer: 'second' })
    expect(await client.crossCheck()).toMatchObject({ status: 'agree', peer: 'primary', height: 450, theirHeight: 450 })
  })

  it('reports a conflict when the second node has a different, validly signed tip', async () => {
    const c = await chain(200, 1)
    const fork = await chain(200, 1, { fork: 1 })
    const transport = new MemoryTransport({ primary: c.handlers(), second: fork.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    const seen: Conflict[] = []
    client.on('conflict', (x) => seen.push(x))
    // The sync compares the new tip with the other node by itself.
    const synced = await client.sync({ peer: 'primary' })
    expect(synced.crossCheck?.status).toBe('conflict')
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({ height: 200, peer: 'second', primary: 'primary' })
    expect(
      bytesEqual(blockHash(seen[0]?.theirs.header as SignedHeader['header']), blockHash(fork.headers[199] as SignedHeader['header'])),
    ).toBe(true)
    expect(client.conflicts).toHaveLength(1)
    expect((await client.crossCheck()).status).toBe('conflict')
    expect(client.conflicts).toHaveLength(2)
    // A sync from the forked node does not replace the verified tip: it fails with CONFLICT.
    expect((await faultOf(client.sync({ peer: 'second' }))).code).toBe('CONFLICT')
    expect(client.conflicts).toHaveLength(3)
  })

  it('reports a conflict below the tip when the second node is behind', async () => {
    const c = await chain(200)
    const fork = await SyntheticChain.create({ height: 150, state: STATE, fork: 3 })
    const transport = new MemoryTransport({ primary: c.handlers(), second: fork.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    await client.sync({ peer: 'primary' })
    expect(await client.crossCheck()).toMatchObject({ status: 'conflict', conflict: { height: 150 } })
  })

  it('marks a second node faulty when its tip does not verify, and is unavailable without one', async () => {
    const c = await chain(100)
    const transport = new MemoryTransport({
      primary: c.handlers(),
      second: lying(c, { tip: async () => encode(signedHeaderCodec, forgeSignature(c.signedHeader(100) as SignedHeader)) }),
    })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    await client.sync({ peer: 'primary' })
    const r = await client.crossCheck()
    expect(r).toMatchObject({ status: 'faulty', peer: 'second' })
    transport.setOnline('second', false)
    expect(await client.crossCheck()).toMatchObject({ status: 'unavailable' })
  })
})

describe('gossip', () => {
  it('verifies, stores and emits the next header; rejects a forged one; ignores old ones and waits for a sync after a gap', async () => {
    const c = await chain(100)
    const short = await SyntheticChain.create({ height: 90, state: STATE })
    const transport = new MemoryTransport({ n: short.handlers() })
    const store = new MemoryLightStore()
    const client = await LightClient.open({ genesis: c.genesis, transport, store })
    await client.sync()
    const seen: number[] = []
    client.on('header', (sh) => seen.push(sh.header.height))
    client.follow()
    const gossip = (sh: SignedHeader) => transport.publishHeader(encode(signedHeaderCodec, sh), 'n')
    expect(await gossip(forgeSignature(c.signedHeader(91) as SignedHeader))).toEqual(['reject'])
    expect(await gossip(c.signedHeader(91) as SignedHeader)).toEqual(['accept'])
    expect(await gossip(c.signedHeader(91) as SignedHeader)).toEqual(['ignore'])
    expect(await gossip(c.signedHeader(92) as SignedHeader)).toEqual(['accept'])
    expect(await transport.publishHeader(utf8('garbage'), 'n')).toEqual(['reject'])
    expect(seen).toEqual([91, 92])
    expect(client.height).toBe(92)
    expect((await store.load())?.checkpoint.height).toBe(92)
    // After a gap, set changes may lie between: the header waits for a sync instead of being trusted.
    const tips = transport.requests.tip
    expect(await gossip(c.signedHeader(95) as SignedHeader)).toEqual(['ignore'])
    for (let end = Date.now() + 5_000; transport.requests.tip === tips && Date.now() < end; ) await new Promise((r) => setTimeout(r, 5))
    expect(transport.requests.tip).toBe(tips + 1)
  })

  it('follows a set change a gossiped header announces, then verifies headers of the new set', async () => {
    const c = await SyntheticChain.create({ height: 60, changesAt: [50] })
    // The same chain as the node had it at height 45, before the change.
    const early = await SyntheticChain.create({ height: 45, changesAt: [50] })
    const transport = new MemoryTransport({ n: early.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    await client.sync()
    transport.setPeer('n', c.handlers())
    client.follow()
    for (let h = 46; h <= 52; h++) {
      expect(await transport.publishHeader(encode(signedHeaderCodec, c.signedHeader(h) as SignedHeader), 'n')).toEqual(['accept'])
    }
    expect(client.setChanges.map((ch) => ch.signed.header.height)).toEqual([50])
    expect(client.validatorsAt(52)).toEqual(c.sets[1]?.set)
    expect(client.height).toBe(52)
  })

  it('detects a conflicting gossiped header at a stored height', async () => {
    const c = await chain(100)
    const fork = await chain(100, 0, { fork: 9 })
    const transport = new MemoryTransport({ n: c.handlers() })
    const client = await LightClient.open({ genesis: c.genesis, transport })
    await client.sync()
    client.follow()
    expect(await transport.publishHeader(encode(signedHeaderCodec, fork.signedHeader(100) as SignedHeader), 'x')).toEqual(['ignore'])
    expect(client.conflicts).toHaveLength(1)
    expect(client.conflicts[0]?.peer).toBe('x')
  })
})

/** Exported for the type checker: a handler record must satisfy {@link MemoryPeer}. */
export const handlersAreMemoryPeers = (h: LightHandlers): MemoryPeer => h
