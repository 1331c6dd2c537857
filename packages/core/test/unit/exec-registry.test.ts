import { beforeAll, describe, expect, it } from 'vitest'
import {
  AuditStatus,
  type ContractEngine,
  GOVERNANCE_ADDRESS,
  getScoreApi,
  getScoreInfo,
  initEngine,
  sha256,
  toHex,
  utf8,
  VersionStatus,
} from '../../src/index.js'
import { COUNTER_V1, COUNTER_V2, COUNTER_V2_BROKEN, dev, govGenesis, member, TestChain, v1, v2, v3 } from '../fixtures/exec/governed.js'

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

const codes = TestChain.codes

describe('SCORE registry: deploy with and without audit', () => {
  it('without audit a deploy serves at once, and the registry records version 1 as accepted and active', async () => {
    const c = await TestChain.start(engine, govGenesis())
    const { tx, address } = c.deploy(dev, COUNTER_V1, { start: 5n })
    const ex = await c.block([tx, c.call(dev, address, 'increment')])
    expect(codes(ex)).toEqual(['OK', 'OK'])
    expect(ex.receipts[0]?.scoreAddress).toBe(address)
    expect(await c.read(address, 'count')).toBe(6n)
    const info = await getScoreInfo(c.tree, address)
    expect(info).toMatchObject({ address, deployer: dev.address, serving: 1 })
    expect(info?.versions).toHaveLength(1)
    expect(info?.versions[0]).toMatchObject({
      version: 1,
      deployer: dev.address,
      deployedAt: 1,
      audit: AuditStatus.Accepted,
      status: VersionStatus.Active,
      activeFrom: 1,
    })
    expect(toHex(info?.versions[0]?.codeHash ?? new Uint8Array())).toBe(toHex(sha256(utf8(COUNTER_V1))))
    // The ABI for getScoreApi.
    const api = (await getScoreApi(c.tree, engine, address)) as { name: string }[]
    expect(api.map((e) => e.name).sort()).toEqual(['count', 'increment', 'onInstall', 'version'])
    // Its code (up to 512 KB) is read only while no loaded SCORE has it: asked again, the ABI
    // reads the registry record alone.
    const keys: string[] = []
    const counting = {
      get: (k: Uint8Array) => {
        keys.push(toHex(k))
        return c.tree.get(k)
      },
    }
    expect(await getScoreApi(counting, engine, address)).toEqual(api)
    expect(keys).toHaveLength(1)
  })

  it('with audit a deploy is pending: calls fail SCORE_NOT_ACTIVE until a majority of validators accepts it', async () => {
    const c = await TestChain.start(engine, govGenesis({ requireAudit: true }))
    const { tx, address } = c.deploy(dev, COUNTER_V1, { start: 5n })
    let ex = await c.block([tx, c.call(dev, address, 'increment')])
    expect(codes(ex)).toEqual(['OK', 'SCORE_NOT_ACTIVE'])
    expect((await getScoreInfo(c.tree, address))?.versions[0]).toMatchObject({ audit: AuditStatus.Pending, status: VersionStatus.Pending })
    expect((await c.query(address, 'count')).ok ? 'ok' : 'refused').toBe('refused')
    // One validator's proposal is one vote of the two a majority of three needs: still refused.
    ex = await c.block([c.propose(v1, { type: 'acceptScore', score: address, version: 1n }), c.call(dev, address, 'increment')])
    expect(codes(ex)).toEqual(['OK', 'SCORE_NOT_ACTIVE'])
    // The second vote accepts it; the first version serves at once (its onInstall ran at deploy).
    ex = await c.block([c.vote(v2, 1), c.call(dev, address, 'increment')])
    expect(codes(ex)).toEqual(['OK', 'OK'])
    expect(await c.read(address, 'count')).toBe(6n)
    expect((await getScoreInfo(c.tree, address))?.versions[0]).toMatchObject({
      audit: AuditStatus.Accepted,
      status: VersionStatus.Active,
      activeFrom: 3,
    })
  })

  it('a rejected deploy stays unusable, for calls and queries alike', async () => {
    const c = await TestChain.start(engine, govGenesis({ requireAudit: true }))
    const { tx, address } = c.deploy(dev, COUNTER_V1, { start: 5n })
    await c.block([tx])
    const ex = await c.block([
      c.propose(v1, { type: 'rejectScore', score: address, version: 1n }),
      c.vote(v3, 1),
      c.call(dev, address, 'increment'),
    ])
    expect(codes(ex)).toEqual(['OK', 'OK', 'SCORE_NOT_ACTIVE'])
    const info = await getScoreInfo(c.tree, address)
    expect(info?.serving).toBe(0)
    expect(info?.versions[0]).toMatchObject({ audit: AuditStatus.Rejected, status: VersionStatus.Rejected })
    const q = await c.query(address, 'count')
    expect(q.ok ? 'ok' : q.failure.code).toBe('SCORE_NOT_ACTIVE')
    // A rejected version cannot be accepted later, and a SCORE with nothing serving cannot be updated.
    const late = await c.block([
      c.propose(v1, { type: 'acceptScore', score: address, version: 1n }),
      c.update(dev, address, COUNTER_V2, { factor: 2n }),
    ])
    expect(codes(late)).toEqual(['INVALID_ARGUMENT', 'SCORE_NOT_ACTIVE'])
  })

  it('bad deploys fail with typed codes: malformed code, no deployer right', async () => {
    const c = await TestChain.start(engine, govGenesis())
    const ex = await c.block([c.deploy(dev, 'export const manifest = {', null).tx, c.deploy(member, COUNTER_V1, { start: 1n }).tx])
    expect(codes(ex)).toEqual(['INVALID_CODE', 'PERMISSION_DENIED'])
  })
})

describe('SCORE registry: updates', () => {
  async function deployed(requireAudit = false) {
    const c = await TestChain.start(engine, govGenesis({ requireAudit }))
    const { tx, address } = c.deploy(dev, COUNTER_V1, { start: 10n })
    await c.block([tx])
    if (requireAudit) await c.block([c.propose(v1, { type: 'acceptScore', score: address, version: 1n }), c.vote(v2, 1)])
    return { c, address }
  }

  it('v2 with an onUpdate migration takes effect exactly at the next block: a call in the same block still runs v1', async () => {
    const { c, address } = await deployed()
    const ex = await c.block([c.update(dev, address, COUNTER_V2, { factor: 10n }), c.call(dev, address, 'increment')])
    expect(codes(ex)).toEqual(['OK', 'OK'])
    expect(ex.receipts[0]?.scoreAddress).toBe(address)
    // End of the update's block: v1 still serves, and counted the increment in 'count'.
    expect(await c.read(address, 'version')).toBe(1n)
    expect(await c.read(address, 'count')).toBe(11n)
    let info = await getScoreInfo(c.tree, address)
    expect(info?.serving).toBe(1)
    expect(info?.versions[1]).toMatchObject({ version: 2, audit: AuditStatus.Accepted, status: VersionStatus.Scheduled, activeFrom: 3 })
    // Next block: onUpdate migrated 11 × 10 into 'total' before the block's first transaction.
    const next = await c.block([c.call(dev, address, 'increment')])
    expect(codes(next)).toEqual(['OK'])
    expect(await c.read(address, 'version')).toBe(2n)
    expect(await c.read(address, 'count')).toBe(111n)
    info = await getScoreInfo(c.tree, address)
    expect(info?.serving).toBe(2)
    expect(info?.versions.map((v) => v.status)).toEqual([VersionStatus.Retired, VersionStatus.Active])
    // A query may address v1 while it stays registered: old code over current storage ('count' was migrated away).
    expect(await c.read(address, 'version', null, 1)).toBe(1n)
    expect(await c.read(address, 'count', null, 1)).toBe(0n)
    const missing = await c.query(address, 'count', null, 3)
    expect(missing.ok ? 'ok' : missing.failure.code).toBe('SCORE_NOT_ACTIVE')
  })

  it('a failing onUpdate leaves v1 serving with its storage untouched, and the failure is in the registry', async () => {
    const { c, address } = await deployed()
    await c.block([c.update(dev, address, COUNTER_V2_BROKEN, null)])
    const ex = await c.block([c.call(dev, address, 'increment')])
    expect(codes(ex)).toEqual(['OK'])
    expect(await c.read(address, 'version')).toBe(1n)
    // The hook's writes (count := 999) were dropped; v1 counted on from 10.
    expect(await c.read(address, 'count')).toBe(11n)
    const info = await getScoreInfo(c.tree, address)
    expect(info?.serving).toBe(1)
    expect(info?.versions[1]?.status).toBe(VersionStatus.Failed)
    expect(info?.versions[1]?.failure?.code).toBe('CONTRACT_ERROR')
    expect(info?.versions[1]?.failure?.message).toContain('migration refused')
    // The failed version is not queryable, and a new update may follow.
    const q = await c.query(address, 'version', null, 2)
    expect(q.ok ? 'ok' : q.failure.code).toBe('SCORE_NOT_ACTIVE')
    const again = await c.block([c.update(dev, address, COUNTER_V2, { factor: 2n })])
    expect(codes(again)).toEqual(['OK'])
    await c.block()
    expect(await c.read(address, 'count')).toBe(22n)
    expect((await getScoreInfo(c.tree, address))?.serving).toBe(3)
  })

  it('refuses bad updates with typed codes and leaves the registry unchanged', async () => {
    const { c, address } = await deployed()
    const before = await getScoreInfo(c.tree, address)
    const ex = await c.block([
      c.update(v1, address, COUNTER_V2, { factor: 2n }), // no deployer right
      c.update(dev, address, COUNTER_V2, { factor: 'x' }), // wrong parameter type for onUpdate
      c.update(dev, address, COUNTER_V1, { start: 1n }), // v1 declares no onUpdate: no parameters allowed
      c.update(dev, address, 'not javascript(', null),
      c.call(dev, address, 'onUpdate', { factor: 2n }), // hooks are not callable
      c.call(dev, address, 'onInstall', { start: 2n }),
    ])
    expect(codes(ex)).toEqual([
      'PERMISSION_DENIED',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_CODE',
      'UNKNOWN_METHOD',
      'UNKNOWN_METHOD',
    ])
    expect(await getScoreInfo(c.tree, address)).toEqual(before)
    // One update at a time.
    const two = await c.block([c.update(dev, address, COUNTER_V2, { factor: 2n }), c.update(dev, address, COUNTER_V2, { factor: 3n })])
    expect(codes(two)).toEqual(['OK', 'UPDATE_IN_PROGRESS'])
  })

  it('only the creator may update, even another member with the deployer right', async () => {
    const c = await TestChain.start(engine, govGenesis({ approvalRule: 2 }))
    // v1 gives itself the deployer right (any-validator rule: one vote).
    await c.block([c.propose(v1, { type: 'setRights', address: v1.address, rights: 1n | 8n })])
    const { tx, address } = c.deploy(dev, COUNTER_V1, { start: 1n })
    const ex = await c.block([tx, c.update(v1, address, COUNTER_V2, { factor: 2n })])
    expect(codes(ex)).toEqual(['OK', 'PERMISSION_DENIED'])
    expect(ex.receipts[1]?.failure?.message).toContain('may update')
  })

  it('with audit an update waits for acceptance, activates the block after it, and a rejected one leaves v1 serving', async () => {
    const { c, address } = await deployed(true)
    await c.block([c.update(dev, address, COUNTER_V2, { factor: 3n })])
    expect((await getScoreInfo(c.tree, address))?.versions[1]).toMatchObject({ audit: AuditStatus.Pending, status: VersionStatus.Pending })
    await c.block()
    expect(await c.read(address, 'version')).toBe(1n)
    // Accepted at block K: a call later in K still runs v1; v2 serves from K+1.
    const k = await c.block([
      c.propose(v1, { type: 'acceptScore', score: address, version: 2n }),
      c.vote(v2, 1 + 1),
      c.call(dev, address, 'increment'),
    ])
    expect(codes(k)).toEqual(['OK', 'OK', 'OK'])
    expect(await c.read(address, 'version')).toBe(1n)
    expect((await getScoreInfo(c.tree, address))?.versions[1]).toMatchObject({ status: VersionStatus.Scheduled, activeFrom: c.height + 1 })
    await c.block()
    expect(await c.read(address, 'version')).toBe(2n)
    expect(await c.read(address, 'count')).toBe(33n)
    // A rejected third version: v2 keeps serving.
    await c.block([c.update(dev, address, COUNTER_V1, null)])
    await c.block([c.propose(v3, { type: 'rejectScore', score: address, version: 3n }), c.vote(v1, 3)])
    await c.block()
    expect(await c.read(address, 'version')).toBe(2n)
    const info = await getScoreInfo(c.tree, address)
    expect(info?.serving).toBe(2)
    expect(info?.versions[2]?.status).toBe(VersionStatus.Rejected)
  })

  it('the governance SCORE answers getScoreInfo and getScoreApi', async () => {
    const { c, address } = await deployed()
    const v = (await c.read(GOVERNANCE_ADDRESS, 'getScoreInfo', { address })) as { serving: bigint; versions: { status: string }[] }
    expect(v.serving).toBe(1n)
    expect(v.versions.map((x) => x.status)).toEqual(['active'])
    const api = (await getScoreApi(c.tree, engine, GOVERNANCE_ADDRESS)) as { name: string; readonly: boolean }[]
    expect(api.filter((e) => !e.readonly).map((e) => e.name)).toEqual(['propose', 'vote'])
  })
})

describe('SCORE registry: determinism', () => {
  async function scenario(e: ContractEngine) {
    const c = await TestChain.start(e, govGenesis({ requireAudit: true }))
    const { tx, address } = c.deploy(dev, COUNTER_V1, { start: 4n })
    const roots: string[] = []
    const run = async (txs: Parameters<TestChain['block']>[0]) => {
      const ex = await c.block(txs)
      roots.push(`${toHex(ex.result.stateRoot)}:${toHex(ex.result.receiptsRoot)}`)
    }
    await run([tx])
    await run([c.propose(v1, { type: 'acceptScore', score: address, version: 1n }), c.vote(v2, 1)])
    await run([c.update(dev, address, COUNTER_V2, { factor: 7n }), c.call(dev, address, 'increment')])
    await run([c.propose(v3, { type: 'acceptScore', score: address, version: 2n }), c.vote(v1, 2)])
    await run([c.call(dev, address, 'increment')])
    return { roots, count: await c.read(address, 'count') }
  }

  it('the same audited deploy, update and migration give the same roots on a fresh engine and store', async () => {
    const one = await scenario(engine)
    const two = await scenario(await initEngine())
    expect(one.count).toBe(36n)
    expect(two).toEqual(one)
    expect(new Set(one.roots).size).toBe(one.roots.length)
  })
})
