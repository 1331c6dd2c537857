import { beforeAll, describe, expect, it } from 'vitest'
import {
  type Address,
  ApprovalRule,
  admitsNode,
  approvalThreshold,
  type ContractEngine,
  decode,
  encodableText,
  executeBlock,
  GOVERNANCE_ADDRESS,
  getAccount,
  hasLoneSurrogate,
  initEngine,
  MEMBER_LIST_KEY,
  memberKey,
  memberRecordCodec,
  PROPOSAL_COUNT_KEY,
  proposalKey,
  Right,
  StateTree,
  type Transaction,
  toHex,
  VALIDATORS_KEY,
  validatorSetCodec,
} from '../../src/index.js'
import { executionBlock } from '../fixtures/exec/chain.js'
import { COUNTER_V1, dev, govGenesis, key, member, newcomer, outsider, T0, TestChain, v1, v2, v3 } from '../fixtures/exec/governed.js'

const chainBlock = (height: number, txs: Transaction[]) =>
  executionBlock({ networkId: 7, height, timestamp: T0 + height * 1_000_000, proposer: v1.address }, txs)

let engine: ContractEngine
beforeAll(async () => {
  engine = await initEngine()
})

const codes = TestChain.codes
const addMember = (rights: number) => ({ type: 'addMember', address: newcomer.address, id: 'newcomer', rights: BigInt(rights) })

async function rights(c: TestChain, who: string): Promise<unknown> {
  return c.read(GOVERNANCE_ADDRESS, 'getRights', { address: who })
}

describe('governance: approval rule', () => {
  it('thresholds: a majority of 3 is 2, two thirds of 3 is 2 and of 4 is 3, any validator is 1', () => {
    expect(approvalThreshold(ApprovalRule.MajorityOfValidators, 3)).toBe(2)
    expect(approvalThreshold(ApprovalRule.MajorityOfValidators, 4)).toBe(3)
    expect(approvalThreshold(ApprovalRule.TwoThirdsOfValidators, 3)).toBe(2)
    expect(approvalThreshold(ApprovalRule.TwoThirdsOfValidators, 4)).toBe(3)
    expect(approvalThreshold(ApprovalRule.AnyValidator, 3)).toBe(1)
  })

  it('the genesis writes the validator set and the members, and governance reads them', async () => {
    const g = govGenesis()
    const c = await TestChain.start(engine, g)
    const raw = await c.tree.get(VALIDATORS_KEY)
    expect(raw && decode(validatorSetCodec, raw)).toEqual(g.validators)
    const vs = (await c.read(GOVERNANCE_ADDRESS, 'getValidators')) as { address: string; power: bigint }[]
    expect(vs.map((v) => v.address)).toEqual(g.validators.validators.map((v) => v.address))
    const ms = (await c.read(GOVERNANCE_ADDRESS, 'getMembers')) as { id: string }[]
    expect(ms.map((m) => m.id).sort()).toEqual(['dev-bank', 'observer', 'val-1', 'val-2', 'val-3'])
    expect(await c.read(GOVERNANCE_ADDRESS, 'getApprovalRule')).toEqual({ rule: 'majority-of-validators', validators: 3n, threshold: 2n })
  })

  it('majority of 3 validators: a member is added at the second vote, not the first', async () => {
    const c = await TestChain.start(engine, govGenesis())
    let ex = await c.block([c.propose(v1, addMember(Right.Observer))])
    expect(codes(ex)).toEqual(['OK'])
    expect(ex.receipts[0]?.logs.map((l) => l.event)).toEqual(['Proposed(int,Address,str)'])
    expect(await c.read(GOVERNANCE_ADDRESS, 'getMember', { address: newcomer.address })).toBeNull()
    expect(((await c.read(GOVERNANCE_ADDRESS, 'getProposal', { id: 1n })) as { status: string }).status).toBe('open')
    ex = await c.block([c.vote(v2, 1)])
    expect(codes(ex)).toEqual(['OK'])
    expect(ex.receipts[0]?.logs.map((l) => l.event)).toEqual(['Voted(int,Address,bool)', 'Decided(int,str)'])
    expect(await c.read(GOVERNANCE_ADDRESS, 'getMember', { address: newcomer.address })).toEqual({
      address: newcomer.address,
      id: 'newcomer',
      rights: BigInt(Right.Observer),
      nodeKey: null,
    })
    const p = (await c.read(GOVERNANCE_ADDRESS, 'getProposal', { id: 1n })) as { status: string; closedAt: bigint; yes: string[] }
    expect(p).toMatchObject({ status: 'executed', closedAt: 2n, yes: [v1.address, v2.address] })
    // A closed proposal takes no more votes.
    ex = await c.block([c.vote(v3, 1)])
    expect(codes(ex)).toEqual(['INVALID_ARGUMENT'])
  })

  it('any-validator: one proposal is enough; rights are changed, then the member is removed', async () => {
    const c = await TestChain.start(engine, govGenesis({ approvalRule: ApprovalRule.AnyValidator }))
    await c.block([c.propose(v3, addMember(Right.Observer))])
    expect(await rights(c, newcomer.address)).toBe(BigInt(Right.Observer))
    await c.block([c.propose(v1, { type: 'setRights', address: newcomer.address, rights: BigInt(Right.Issuer | Right.Observer) })])
    expect(await rights(c, newcomer.address)).toBe(BigInt(Right.Issuer | Right.Observer))
    await c.block([c.propose(v2, { type: 'removeMember', address: newcomer.address })])
    expect(await rights(c, newcomer.address)).toBe(0n)
    expect(await c.read(GOVERNANCE_ADDRESS, 'getMember', { address: newcomer.address })).toBeNull()
    const ps = (await c.read(GOVERNANCE_ADDRESS, 'getProposals', { status: 'executed' })) as unknown[]
    expect(ps).toHaveLength(3)
  })

  it('a failure message cut inside a surrogate pair still makes an encodable receipt (the block halted every node)', async () => {
    const c = await TestChain.start(engine, govGenesis())
    // The message quotes the method name, cut at 70 characters: between the two halves of the emoji.
    const ex = await c.block([c.gov(outsider, `${'a'.repeat(68)}😀`, null), c.gov(outsider, 'getValidators', null)])
    expect(codes(ex)).toEqual(['UNKNOWN_METHOD', 'OK'])
    const message = ex.receipts[0]?.failure?.message as string
    expect(message).toContain('\ufffd')
    expect(hasLoneSurrogate(message)).toBe(false)
    expect(encodableText(`x${'😀'.repeat(3)}\udc00y`, 9)).toBe('x😀😀')
    expect(encodableText('a\ud800b', 16)).toBe('a\ufffdb')
  })

  it('a call from the deepest frame fails the same whether this process has the callee loaded or not', async () => {
    const RELAY = `export const manifest = { name: 'Relay', methods: { relay: { params: [['path', 'list']], returns: 'str' } } }
export function relay({ path }) {
  const [next, ...rest] = path
  try { loopchain.call(next, rest.length > 0 ? 'relay' : 'ping', rest.length > 0 ? { path: rest } : null); return 'ok' }
  catch (e) { return String(e.message) }
}`
    const TARGET = `export const manifest = { name: 'Target', methods: { ping: { returns: 'int' } } }
export function ping() { return 1n }`
    const c = await TestChain.start(engine, govGenesis())
    const relays = [0, 1, 2, 3].map(() => c.deploy(dev, RELAY, null))
    const target = c.deploy(dev, TARGET, null)
    expect(codes(await c.block([...relays.map((r) => r.tx), target.tx]))).toEqual(['OK', 'OK', 'OK', 'OK', 'OK'])
    // R0 → R1 → R2 → R3 → target: the last call is one frame too deep.
    const path = [...relays.slice(1).map((r) => r.address), target.address]
    const tx = c.call(outsider, relays[0]?.address as Address, 'relay', { path })
    const at = c.tree.root
    // A process that never loaded the target's code (a node restarted since it was deployed).
    const fresh = await initEngine()
    const cold = await executeBlock(await StateTree.open(c.store, at), chainBlock(c.height + 1, [tx]), {
      params: c.genesis.params,
      engine: fresh,
    })
    const warm = await c.block([tx])
    expect(toHex(cold.result.stateRoot)).toBe(toHex(warm.result.stateRoot))
    expect(cold.receipts[0]?.stepUsed).toBe(warm.receipts[0]?.stepUsed)
  })

  it('a proposal is rejected once enough validators vote no that the threshold is out of reach', async () => {
    const c = await TestChain.start(engine, govGenesis())
    const status = async () => ((await c.read(GOVERNANCE_ADDRESS, 'getProposal', { id: 1n })) as { status: string }).status
    // 1 yes, 1 no of 3: two votes can still be reached.
    let ex = await c.block([c.propose(v1, addMember(Right.Observer)), c.vote(v2, 1, false)])
    expect(codes(ex)).toEqual(['OK', 'OK'])
    expect(await status()).toBe('open')
    ex = await c.block([c.vote(v3, 1, false), c.vote(v3, 1, true)])
    expect(codes(ex)).toEqual(['OK', 'INVALID_ARGUMENT'])
    expect(await status()).toBe('rejected')
    expect(await rights(c, newcomer.address)).toBe(0n)
  })
})

describe('governance: refusals', () => {
  it('non-validators cannot propose or vote, and bad input fails typed: nothing but fees and nonces change', async () => {
    const c = await TestChain.start(engine, govGenesis())
    await c.block([c.propose(v1, addMember(Right.Observer))])
    const keys = [VALIDATORS_KEY, MEMBER_LIST_KEY, PROPOSAL_COUNT_KEY, proposalKey(1), proposalKey(2), memberKey(newcomer.address)]
    const snapshot = async () => Promise.all(keys.map(async (k) => toHex((await c.tree.get(k)) ?? new Uint8Array())))
    const before = await snapshot()
    const balances = await Promise.all([outsider, member, dev, v2].map((k) => getAccount(c.tree, k.address)))
    const ex = await c.block([
      c.propose(outsider, addMember(Right.Observer)), // not a member
      c.vote(member, 1), // a member, but not a validator
      c.vote(dev, 1), // a deployer, not a validator
      c.propose(v2, { type: 'addMember', address: newcomer.address, id: 'Bad Id', rights: 1n }), // bad id
      c.propose(v2, { type: 'grantEverything' }), // unknown action
      c.propose(v2, { type: 'setRights', address: v3.address, rights: 0n }), // a sitting validator must keep the right
      c.propose(v2, { type: 'removeValidator', address: newcomer.address }), // not a validator
      c.gov(v2, 'vote', { id: 1n, approve: 'yes' }), // wrong parameter type
      c.gov(v2, 'vote', { id: 99n, approve: true }), // no such proposal
      c.gov(v2, 'selfDestruct', null),
      c.call(v2, GOVERNANCE_ADDRESS, 'vote', { id: 1n, approve: true }, 5n), // value sent
    ])
    expect(codes(ex)).toEqual([
      'PERMISSION_DENIED',
      'PERMISSION_DENIED',
      'PERMISSION_DENIED',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'INVALID_ARGUMENT',
      'UNKNOWN_METHOD',
      'NOT_PAYABLE',
    ])
    expect(await snapshot()).toEqual(before)
    // Fees were charged and nonces advanced, nothing else: the value of the last call did not move.
    const after = await Promise.all([outsider, member, dev, v2].map((k) => getAccount(c.tree, k.address)))
    expect(after.map((a, i) => a.nonce - (balances[i]?.nonce ?? 0))).toEqual([1, 1, 1, 8])
    const v2Fees = ex.receipts.slice(3).reduce((s, r) => s + r.fee, 0n)
    expect(after[3]?.balance).toBe((balances[3]?.balance ?? 0n) - v2Fees)
    expect((await getAccount(c.tree, GOVERNANCE_ADDRESS)).balance).toBe(0n)
    // A query cannot write.
    const q = await c.query(GOVERNANCE_ADDRESS, 'vote', { id: 1n, approve: true })
    expect(q.ok ? 'ok' : q.failure.code).toBe('READONLY_VIOLATION')
  })

  it('a proposal whose action no longer applies when approved is marked failed and changes nothing', async () => {
    const c = await TestChain.start(engine, govGenesis())
    // Two proposals to add the same member: the first executes, the second then no longer applies.
    await c.block([c.propose(v1, addMember(Right.Observer)), c.propose(v2, { ...addMember(Right.Issuer), id: 'other-id' })])
    const ex = await c.block([c.vote(v2, 1), c.vote(v1, 2)])
    expect(codes(ex)).toEqual(['OK', 'OK'])
    const p2 = (await c.read(GOVERNANCE_ADDRESS, 'getProposal', { id: 2n })) as { status: string; failure: string }
    expect(p2.status).toBe('failed')
    expect(p2.failure).toContain('already a member')
    expect(await rights(c, newcomer.address)).toBe(BigInt(Right.Observer))
  })
})

describe("governance: member node keys (admission to the members' protocols)", () => {
  const nodeKey = (label: string) => key(`node ${label}`).publicKey
  /** The genesis with a node key for val-1 and for the observer (which holds no member-node right). */
  const keyedGenesis = () => {
    const g = govGenesis({ approvalRule: ApprovalRule.AnyValidator })
    return { ...g, members: g.members.map((m) => (m.id === 'val-1' || m.id === 'observer' ? { ...m, nodeKey: nodeKey(m.id) } : m)) }
  }
  const record = async (c: TestChain, a: Address) => {
    const raw = await c.tree.get(memberKey(a))
    return raw && decode(memberRecordCodec, raw)
  }

  it('the genesis writes node keys; a node is admitted with the member-node or validator right, not without', async () => {
    const c = await TestChain.start(engine, keyedGenesis())
    expect(await c.read(GOVERNANCE_ADDRESS, 'getMember', { address: v1.address })).toMatchObject({ nodeKey: nodeKey('val-1') })
    expect(admitsNode(await record(c, v1.address))).toBe(true)
    // A validator's node is admitted on the validator right alone (it must reach the others to vote).
    expect(admitsNode({ id: 'v', rights: Right.Validator, nodeKey: nodeKey('v') })).toBe(true)
    // The observer registered a node key but holds no member-node right; val-2 holds the right but no key.
    expect(admitsNode(await record(c, member.address))).toBe(false)
    expect(admitsNode(await record(c, v2.address))).toBe(false)
    expect(admitsNode(undefined)).toBe(false)
  })

  it('addMember and setNodeKey register, change and clear a node key; setRights keeps it; removeMember drops it', async () => {
    const c = await TestChain.start(engine, keyedGenesis())
    let ex = await c.block([c.propose(v2, { ...addMember(Right.MemberNode), nodeKey: nodeKey('newcomer') })])
    expect(codes(ex)).toEqual(['OK'])
    expect(await record(c, newcomer.address)).toEqual({ id: 'newcomer', rights: Right.MemberNode, nodeKey: nodeKey('newcomer') })
    expect(admitsNode(await record(c, newcomer.address))).toBe(true)
    ex = await c.block([c.propose(v2, { type: 'setNodeKey', address: newcomer.address, nodeKey: nodeKey('rotated') })])
    expect(codes(ex)).toEqual(['OK'])
    expect((await record(c, newcomer.address))?.nodeKey).toEqual(nodeKey('rotated'))
    // Taking the member-node right away keeps the key on record but no longer admits the node.
    await c.block([c.propose(v2, { type: 'setRights', address: newcomer.address, rights: BigInt(Right.Observer) })])
    expect(await record(c, newcomer.address)).toEqual({ id: 'newcomer', rights: Right.Observer, nodeKey: nodeKey('rotated') })
    expect(admitsNode(await record(c, newcomer.address))).toBe(false)
    // setNodeKey without a key clears it.
    await c.block([c.propose(v2, { type: 'setNodeKey', address: newcomer.address })])
    expect((await record(c, newcomer.address))?.nodeKey).toBeUndefined()
    expect((await c.read(GOVERNANCE_ADDRESS, 'getMembers')) as unknown[]).toContainEqual({
      address: newcomer.address,
      id: 'newcomer',
      rights: BigInt(Right.Observer),
      nodeKey: null,
    })
    await c.block([c.propose(v2, { type: 'removeMember', address: newcomer.address })])
    expect(await record(c, newcomer.address)).toBeUndefined()
  })

  it("a node key that is another member's, or not 32 bytes, or for a non-member is refused and changes nothing", async () => {
    const c = await TestChain.start(engine, keyedGenesis())
    const before = await Promise.all([v1, v2, member].map((k) => record(c, k.address)))
    const ex = await c.block([
      c.propose(v2, { type: 'setNodeKey', address: v2.address, nodeKey: nodeKey('val-1') }), // val-1's
      c.propose(v2, { ...addMember(Right.MemberNode), nodeKey: nodeKey('observer') }), // the observer's
      c.propose(v2, { type: 'setNodeKey', address: v2.address, nodeKey: new Uint8Array(31) }), // too short
      c.propose(v2, { type: 'setNodeKey', address: v2.address, nodeKey: 'ab'.repeat(32) }), // a string, not bytes
      c.propose(v2, { type: 'setNodeKey', address: outsider.address, nodeKey: nodeKey('outsider') }), // not a member
    ])
    expect(codes(ex)).toEqual(['INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT'])
    expect(ex.receipts.map((r) => r.failure?.message)).toEqual([
      expect.stringContaining("already val-1's"),
      expect.stringContaining("already observer's"),
      expect.stringContaining('32 bytes'),
      expect.stringContaining('must be bytes'),
      expect.stringContaining('is not a member'),
    ])
    expect(await Promise.all([v1, v2, member].map((k) => record(c, k.address)))).toEqual(before)
    expect(await record(c, newcomer.address)).toBeUndefined()
    // A member may set its own key again (no conflict with itself).
    expect(codes(await c.block([c.propose(v2, { type: 'setNodeKey', address: v1.address, nodeKey: nodeKey('val-1') })]))).toEqual(['OK'])
  })
})

describe('governance: validator set and deploy rights', () => {
  it('a validator-set change appears in nextValidators of the block that approved it, and only there', async () => {
    const c = await TestChain.start(engine, govGenesis())
    await c.block([
      c.propose(v1, { ...addMember(Right.Validator | Right.MemberNode), nodeKey: key('node newcomer').publicKey }),
      c.vote(v2, 1),
    ])
    const add = { type: 'addValidator', address: newcomer.address, publicKey: newcomer.publicKey, power: 2n }
    let ex = await c.block([c.propose(v1, add)])
    expect(ex.nextValidators).toBeUndefined()
    ex = await c.block([c.vote(v3, 2)])
    expect(ex.nextValidators?.validators.map((v) => [v.address, v.power])).toContainEqual([newcomer.address, 2])
    expect(ex.nextValidators?.validators).toHaveLength(4)
    // The state holds the new set; now 3 of 4 votes are a majority.
    expect(((await c.read(GOVERNANCE_ADDRESS, 'getValidators')) as unknown[]).length).toBe(4)
    expect(await c.read(GOVERNANCE_ADDRESS, 'getApprovalRule')).toMatchObject({ threshold: 3n })
    ex = await c.block()
    expect(ex.nextValidators).toBeUndefined()
    // Power change and removal, each in the block of its last vote.
    ex = await c.block([c.propose(newcomer, { type: 'setValidatorPower', address: v1.address, power: 5n }), c.vote(v2, 3), c.vote(v3, 3)])
    expect(ex.nextValidators?.validators.find((v) => v.address === v1.address)?.power).toBe(5)
    ex = await c.block([c.propose(v1, { type: 'removeValidator', address: newcomer.address }), c.vote(v2, 4), c.vote(v3, 4)])
    expect(ex.nextValidators?.validators.map((v) => v.address).sort()).toEqual([v1.address, v2.address, v3.address].sort())
  })

  it('a validator must be a member with the validator right and a node key on record, and its key must match its address', async () => {
    const c = await TestChain.start(engine, govGenesis({ approvalRule: ApprovalRule.AnyValidator }))
    const join = { type: 'addValidator', address: newcomer.address, publicKey: newcomer.publicKey, power: 1n }
    const ex = await c.block([
      c.propose(v1, { type: 'addValidator', address: dev.address, publicKey: dev.publicKey, power: 1n }), // no validator right
      c.propose(v1, addMember(Right.Validator)),
      c.propose(v1, join), // no node key: its node could not vote
      c.propose(v1, { type: 'setNodeKey', address: newcomer.address, nodeKey: key('node newcomer').publicKey }),
      c.propose(v1, { ...join, publicKey: dev.publicKey }), // wrong key
      c.propose(v1, { ...join, power: 0n }), // no power
    ])
    expect(codes(ex)).toEqual(['INVALID_ARGUMENT', 'OK', 'INVALID_ARGUMENT', 'OK', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT'])
    expect(ex.receipts[2]?.failure?.message).toContain('no node key on record')
    expect(ex.receipts[4]?.failure?.message).toContain('does not match its public key')
    expect(ex.nextValidators).toBeUndefined()
    // With its node key, it joins; sitting in the set, it cannot clear the key.
    expect(codes(await c.block([c.propose(v1, join)]))).toEqual(['OK'])
    const clear = await c.block([c.propose(v1, { type: 'setNodeKey', address: newcomer.address })])
    expect(codes(clear)).toEqual(['INVALID_ARGUMENT'])
    expect(clear.receipts[0]?.failure?.message).toContain('must keep a node key')
  })

  it('a validator removed in a block keeps its membership, validator right and node key through that block: it still votes on the next', async () => {
    const g = govGenesis({ approvalRule: ApprovalRule.AnyValidator })
    const c = await TestChain.start(engine, {
      ...g,
      members: g.members.map((m) => (m.id === 'val-1' ? { ...m, nodeKey: key('node val-1').publicKey } : m)),
    })
    const leave = { type: 'removeValidator', address: v1.address }
    const ex = await c.block([
      c.propose(v2, leave),
      // Each would shut v1's node out when this block commits, while v1 still votes on the next.
      c.propose(v2, { type: 'removeMember', address: v1.address }),
      c.propose(v2, { type: 'setRights', address: v1.address, rights: BigInt(Right.MemberNode) }),
      c.propose(v2, { type: 'setNodeKey', address: v1.address }),
    ])
    expect(codes(ex)).toEqual(['OK', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT', 'INVALID_ARGUMENT'])
    expect(ex.receipts[1]?.failure?.message).toContain('left the validator set in this block and still votes on the next')
    expect(ex.nextValidators?.validators.map((v) => v.address).sort()).toEqual([v2.address, v3.address].sort())
    expect(admitsNode(decode(memberRecordCodec, (await c.tree.get(memberKey(v1.address))) as Uint8Array))).toBe(true)
    // From the next block on, the set that votes no longer holds it: it may go.
    expect(codes(await c.block([c.propose(v2, { type: 'removeMember', address: v1.address })]))).toEqual(['OK'])
    expect(await c.tree.get(memberKey(v1.address))).toBeUndefined()
  })

  it('deploy permission follows the current rights: a right granted by governance lets a member deploy in a later block', async () => {
    const c = await TestChain.start(engine, govGenesis())
    let ex = await c.block([
      c.deploy(member, COUNTER_V1, { start: 1n }).tx,
      c.propose(v1, { type: 'setRights', address: member.address, rights: BigInt(Right.Observer | Right.Deployer) }),
    ])
    expect(codes(ex)).toEqual(['PERMISSION_DENIED', 'OK'])
    ex = await c.block([c.vote(v2, 1)])
    const { tx, address } = c.deploy(member, COUNTER_V1, { start: 1n })
    ex = await c.block([tx])
    expect(codes(ex)).toEqual(['OK'])
    expect(await c.read(address, 'count')).toBe(1n)
    // And taking the right away stops the next deploy.
    await c.block([c.propose(v1, { type: 'setRights', address: member.address, rights: BigInt(Right.Observer) }), c.vote(v3, 2)])
    ex = await c.block([c.deploy(member, COUNTER_V1, { start: 2n }).tx])
    expect(codes(ex)).toEqual(['PERMISSION_DENIED'])
  })
})
