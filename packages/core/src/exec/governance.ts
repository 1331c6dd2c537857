/**
 * The governance system SCORE: native TypeScript inside the executor (not sandboxed), at the fixed
 * address {@link GOVERNANCE_ADDRESS}. It holds the member institutions and their rights, the
 * current validator set, and proposals that the validators vote on under the chain's approval
 * rule: add or remove a member, set a member's rights or node key, change the validator set, accept or reject
 * a pending SCORE version. A proposal's action is applied in the block whose vote reaches the
 * threshold. See docs/governance.md.
 */
import { decode, encode, uvarint } from '../codec/codec.js'
import { bytesEqual } from '../codec/hex.js'
import type { Value } from '../codec/value.js'
import { type Address, isAddress } from '../crypto/address.js'
import { ApprovalRule, type ChainParams, MEMBER_ID, Right } from '../ledger/genesis.js'
import type { EventLog } from '../ledger/receipt.js'
import { makeValidatorSet, type Validator, type ValidatorSet, ValidatorSetError, validatorSetCodec } from '../ledger/validators.js'
import { type AbiMethod, type AbiParam, type AbiType, checkParams, type ScoreAbi } from '../score/abi.js'
import type { StateOverlay } from '../score/overlay.js'
import {
  BLOCK_START_VALIDATORS_KEY,
  blockStartValidatorsCodec,
  GOVERNANCE_ADDRESS,
  type GovernanceProposal,
  GovernanceProposalStatus,
  governanceProposalCodec,
  MEMBER_LIST_KEY,
  type MemberRecord,
  memberKey,
  memberListCodec,
  memberRecordCodec,
  PROPOSAL_COUNT_KEY,
  proposalKey,
  VALIDATORS_KEY,
} from './layout.js'
import { decideAudit, readRecord, scoreInfoToValue } from './registry.js'

/** Steps a governance call costs beyond the transaction's base: native code, priced like a small contract call. */
export const GOVERNANCE_STEPS = 20_000

/** Most proposals `getProposals` returns (the newest ones): bounds a query's work. */
export const MAX_LISTED_PROPOSALS = 256

/** The outcome of a governance call: a result and its logs, or a typed failure (nothing written). */
export type GovernanceResult =
  | { readonly ok: true; readonly result: Value; readonly logs: readonly EventLog[] }
  | { readonly ok: false; readonly failure: { readonly code: string; readonly message: string } }

/** What a governance call is made with. */
export interface GovernanceCall {
  readonly from: Address
  readonly method: string
  readonly params: Value
  readonly value: bigint
  readonly height: number
  /** A read-only query: writing methods are refused (`READONLY_VIOLATION`). */
  readonly query: boolean
}

const p = (name: string, type: AbiType, optional = false): AbiParam => ({ name, type, optional })
const m = (name: string, params: AbiParam[], readonly: boolean, returns?: AbiType): AbiMethod => ({
  name,
  params,
  readonly,
  payable: false,
  returns,
})

const METHODS: Record<string, AbiMethod> = Object.assign(Object.create(null), {
  propose: m('propose', [p('action', 'dict')], false, 'int'),
  vote: m('vote', [p('id', 'int'), p('approve', 'bool')], false, 'str'),
  getMembers: m('getMembers', [], true, 'list'),
  getMember: m('getMember', [p('address', 'Address')], true),
  getRights: m('getRights', [p('address', 'Address')], true, 'int'),
  getValidators: m('getValidators', [], true, 'list'),
  getApprovalRule: m('getApprovalRule', [], true, 'dict'),
  getProposal: m('getProposal', [p('id', 'int')], true),
  getProposals: m('getProposals', [p('status', 'str', true)], true, 'list'),
  getScoreInfo: m('getScoreInfo', [p('address', 'Address')], true),
})

/** The fields of each proposal action (besides `type`). */
const ACTIONS: Record<string, AbiMethod> = Object.assign(Object.create(null), {
  addMember: m('addMember', [p('address', 'Address'), p('id', 'str'), p('rights', 'int'), p('nodeKey', 'bytes', true)], false),
  removeMember: m('removeMember', [p('address', 'Address')], false),
  setRights: m('setRights', [p('address', 'Address'), p('rights', 'int')], false),
  setNodeKey: m('setNodeKey', [p('address', 'Address'), p('nodeKey', 'bytes', true)], false),
  addValidator: m('addValidator', [p('address', 'Address'), p('publicKey', 'bytes'), p('power', 'int')], false),
  removeValidator: m('removeValidator', [p('address', 'Address')], false),
  setValidatorPower: m('setValidatorPower', [p('address', 'Address'), p('power', 'int')], false),
  acceptScore: m('acceptScore', [p('score', 'Address'), p('version', 'int')], false),
  rejectScore: m('rejectScore', [p('score', 'Address'), p('version', 'int')], false),
})

/**
 * The fields of governance proposal action `type` (besides `type` itself), or undefined for an
 * unknown one: how a client types an action's fields from JSON (`bytes` from 0x hex, `int` from a
 * decimal string), since `propose` declares the action only as a `dict`.
 */
export function governanceActionParams(type: string): readonly AbiParam[] | undefined {
  return Object.hasOwn(ACTIONS, type) ? ACTIONS[type]?.params : undefined
}

/** The governance SCORE's ABI (for `getScoreApi`); events are listed in docs/governance.md. */
export const GOVERNANCE_ABI: ScoreAbi = Object.freeze({
  name: 'Governance',
  methods: Object.freeze(METHODS),
  events: Object.freeze(Object.create(null)),
})

const STATUS_NAMES = ['open', 'executed', 'rejected', 'failed'] as const
const RULE_NAMES = ['majority-of-validators', 'two-thirds-of-validators', 'any-validator'] as const

/** Votes needed to approve under `rule` with `n` validators: more than half, at least two thirds, or one. */
export function approvalThreshold(rule: ApprovalRule, n: number): number {
  switch (rule) {
    case ApprovalRule.MajorityOfValidators:
      return Math.floor(n / 2) + 1
    case ApprovalRule.TwoThirdsOfValidators:
      return Math.max(1, Math.ceil((2 * n) / 3))
    case ApprovalRule.AnyValidator:
      return 1
  }
}

/** The current validator set in `state` (empty before a genesis wrote one). */
export function readValidators(state: StateOverlay): ValidatorSet {
  const raw = state.get(VALIDATORS_KEY)
  return raw === undefined ? { validators: [] } : decode(validatorSetCodec, raw)
}

/** A member's record, or undefined. */
export function readMember(state: StateOverlay, a: Address): MemberRecord | undefined {
  const raw = state.get(memberKey(a))
  return raw === undefined ? undefined : decode(memberRecordCodec, raw)
}

function readMemberList(state: StateOverlay): Address[] {
  const raw = state.get(MEMBER_LIST_KEY)
  return raw === undefined ? [] : decode(memberListCodec, raw)
}

/**
 * Whether a member's node is admitted to the members' protocols (transactions, proposals and votes
 * gossip, block sync as a member): the member has registered a node key and holds the member-node
 * right, or the validator right (a validator's node must reach the others to vote).
 */
export function admitsNode(r: MemberRecord | undefined): r is MemberRecord & { readonly nodeKey: Uint8Array } {
  return r?.nodeKey !== undefined && (r.rights & (Right.MemberNode | Right.Validator)) !== 0
}

/** Checks a node key given to `addMember` or `setNodeKey` for `a`; returns why it is refused, or undefined. */
function checkNodeKey(state: StateOverlay, a: Address, key: Value | undefined): string | undefined {
  if (key === undefined || key === null) return undefined
  if (!(key instanceof Uint8Array) || key.length !== 32) return 'nodeKey must be 32 bytes (an ed25519 public key)'
  for (const other of readMemberList(state)) {
    if (other === a) continue
    const r = readMember(state, other)
    if (r?.nodeKey !== undefined && bytesEqual(r.nodeKey, key)) return `that node key is already ${r.id}'s`
  }
  return undefined
}

function nodeKeyOf(v: Value | undefined): Uint8Array | undefined {
  return v instanceof Uint8Array ? v : undefined
}

function memberToValue(a: Address, r: MemberRecord): Value {
  return { address: a, id: r.id, rights: BigInt(r.rights), nodeKey: r.nodeKey ?? null }
}

function isMap(v: Value | undefined): v is { [key: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function smallInt(v: Value | undefined, what: string, min: number, max: number): number | string {
  if (typeof v !== 'bigint' || v < BigInt(min) || v > BigInt(max)) return `${what} must be an int in ${min}..${max}`
  return Number(v)
}

/** Checks an action's shape; returns the reason it is malformed, or undefined. */
function checkAction(action: Value): string | undefined {
  if (!isMap(action)) return 'action must be a map'
  const type = action.type
  if (typeof type !== 'string' || !Object.hasOwn(ACTIONS, type)) return `action.type must be one of ${Object.keys(ACTIONS).join(', ')}`
  const { type: _, ...fields } = action
  return checkParams(ACTIONS[type] as AbiMethod, fields)
}

/**
 * Writes a new validator set in block `height`. The first change of a block also records the set
 * the block started with ({@link BLOCK_START_VALIDATORS_KEY}): the change votes from height + 2
 * on, and height + 1 is still voted by that set (see {@link stillVotes}).
 */
function writeValidators(state: StateOverlay, validators: readonly Validator[], height: number): string | undefined {
  let set: ValidatorSet
  try {
    set = makeValidatorSet(validators)
  } catch (e) {
    if (e instanceof ValidatorSetError) return `the new validator set is not valid: ${e.message}`
    throw e
  }
  const start = state.get(BLOCK_START_VALIDATORS_KEY)
  if (start === undefined || decode(blockStartValidatorsCodec, start).height !== height)
    state.set(BLOCK_START_VALIDATORS_KEY, encode(blockStartValidatorsCodec, { height, set: readValidators(state) }))
  state.set(VALIDATORS_KEY, encode(validatorSetCodec, set))
  return undefined
}

/**
 * Whether `a` left the validator set in block `height` itself: it still votes on the next block
 * (the set a block started with votes on the block after it), so its node must stay admitted
 * through that block. Nodes re-read admission when a block commits: taking its membership, its
 * validator right or its node key in the same block would shut its votes out of a height that
 * needs them, and with too few others left, halt the chain.
 */
function stillVotes(state: StateOverlay, a: Address, height: number): boolean {
  const raw = state.get(BLOCK_START_VALIDATORS_KEY)
  if (raw === undefined) return false
  const start = decode(blockStartValidatorsCodec, raw)
  return start.height === height && start.set.validators.some((v) => v.address === a)
}

/**
 * Applies a well-formed action to `state` in block `height`; returns why it does not apply to this
 * state (nothing should then be kept: callers run it in a child overlay), or undefined.
 */
function applyAction(state: StateOverlay, action: { [key: string]: Value }, height: number): string | undefined {
  const a = action.address as Address
  const set = readValidators(state).validators
  const inSet = set.some((v) => v.address === a)
  // Its node must stay admitted: in the set, or out of it only from this block on.
  const voting = inSet
    ? 'is in the validator set'
    : stillVotes(state, a, height)
      ? 'left the validator set in this block and still votes on the next'
      : undefined
  switch (action.type) {
    case 'addMember': {
      if (readMember(state, a) !== undefined) return `${a} is already a member`
      const id = action.id as string
      if (!MEMBER_ID.test(id)) return 'id must be 1-64 lower-case letters, digits or dashes'
      const rights = smallInt(action.rights, 'rights', 0, 31)
      if (typeof rights === 'string') return rights
      const list = readMemberList(state)
      for (const other of list) if (readMember(state, other)?.id === id) return `member id ${id} is taken`
      const badKey = checkNodeKey(state, a, action.nodeKey)
      if (badKey !== undefined) return badKey
      state.set(memberKey(a), encode(memberRecordCodec, { id, rights, nodeKey: nodeKeyOf(action.nodeKey) }))
      state.set(MEMBER_LIST_KEY, encode(memberListCodec, [...list, a].sort()))
      return undefined
    }
    case 'removeMember': {
      if (readMember(state, a) === undefined) return `${a} is not a member`
      if (voting) return `${a} ${voting}; remove it from the set first, and the member in a later block`
      state.delete(memberKey(a))
      state.set(
        MEMBER_LIST_KEY,
        encode(
          memberListCodec,
          readMemberList(state).filter((x) => x !== a),
        ),
      )
      return undefined
    }
    case 'setRights': {
      const member = readMember(state, a)
      if (member === undefined) return `${a} is not a member`
      const rights = smallInt(action.rights, 'rights', 0, 31)
      if (typeof rights === 'string') return rights
      if (voting && (rights & Right.Validator) === 0) return `${a} ${voting} and must keep the validator right until a later block`
      state.set(memberKey(a), encode(memberRecordCodec, { ...member, rights }))
      return undefined
    }
    case 'setNodeKey': {
      const member = readMember(state, a)
      if (member === undefined) return `${a} is not a member`
      const badKey = checkNodeKey(state, a, action.nodeKey)
      if (badKey !== undefined) return badKey
      if (voting && nodeKeyOf(action.nodeKey) === undefined) return `${a} ${voting} and must keep a node key until a later block`
      state.set(memberKey(a), encode(memberRecordCodec, { ...member, nodeKey: nodeKeyOf(action.nodeKey) }))
      return undefined
    }
    case 'addValidator': {
      const member = readMember(state, a)
      if (((member?.rights ?? 0) & Right.Validator) === 0) return `${a} is not a member with the validator right`
      if (inSet) return `${a} is already a validator`
      // Its votes travel over the members' topics: a validator whose node is not admitted would only
      // raise the quorum the others must reach without it.
      if (member?.nodeKey === undefined) return `${a} has no node key on record (setNodeKey first): its node could not vote`
      const power = smallInt(action.power, 'power', 1, Number.MAX_SAFE_INTEGER)
      if (typeof power === 'string') return power
      return writeValidators(state, [...set, { address: a, publicKey: action.publicKey as Uint8Array, power }], height)
    }
    case 'removeValidator':
      if (!inSet) return `${a} is not a validator`
      return writeValidators(
        state,
        set.filter((v) => v.address !== a),
        height,
      )
    case 'setValidatorPower': {
      if (!inSet) return `${a} is not a validator`
      const power = smallInt(action.power, 'power', 1, Number.MAX_SAFE_INTEGER)
      if (typeof power === 'string') return power
      return writeValidators(
        state,
        set.map((v) => (v.address === a ? { ...v, power } : v)),
        height,
      )
    }
    case 'acceptScore':
    case 'rejectScore': {
      const version = smallInt(action.version, 'version', 1, Number.MAX_SAFE_INTEGER)
      if (typeof version === 'string') return version
      return decideAudit(state, action.score as Address, version, action.type === 'acceptScore', height)
    }
    default:
      return `unknown action ${String(action.type)}`
  }
}

function readProposal(state: StateOverlay, id: number): GovernanceProposal | undefined {
  const raw = state.get(proposalKey(id))
  return raw === undefined ? undefined : decode(governanceProposalCodec, raw)
}

function proposalCount(state: StateOverlay): number {
  const raw = state.get(PROPOSAL_COUNT_KEY)
  return raw === undefined ? 0 : decode(uvarint, raw)
}

function proposalToValue(pr: GovernanceProposal): Value {
  return {
    id: BigInt(pr.id),
    proposer: pr.proposer,
    createdAt: BigInt(pr.createdAt),
    action: pr.action,
    yes: [...pr.yes],
    no: [...pr.no],
    status: STATUS_NAMES[pr.status],
    closedAt: pr.closedAt === undefined ? null : BigInt(pr.closedAt),
    failure: pr.failure ?? null,
  }
}

function log(event: string, indexed: Value[], data: Value[] = []): EventLog {
  return { score: GOVERNANCE_ADDRESS, event, indexed, data }
}

/**
 * Counts the votes of validators in the current set; at the threshold the action applies (in a
 * child overlay, so an action that no longer fits the state changes nothing but the proposal's
 * status); when too many voted no for the threshold to be reachable, the proposal is rejected.
 * Writes the proposal and returns its new status's logs.
 */
function tally(
  state: StateOverlay,
  pr: GovernanceProposal,
  height: number,
  params: ChainParams,
): { proposal: GovernanceProposal; logs: EventLog[] } {
  const set = readValidators(state).validators
  const member = (x: Address) => set.some((v) => v.address === x)
  const yes = pr.yes.filter(member).length
  const no = pr.no.filter(member).length
  const t = approvalThreshold(params.approvalRule, set.length)
  let next = pr
  if (yes >= t) {
    const child = state.child()
    const err = applyAction(child, pr.action as { [key: string]: Value }, height)
    if (err === undefined) {
      child.commit()
      next = { ...pr, status: GovernanceProposalStatus.Executed, closedAt: height }
    } else {
      child.discard()
      next = { ...pr, status: GovernanceProposalStatus.Failed, closedAt: height, failure: err.slice(0, 256) }
    }
  } else if (set.length - no < t) next = { ...pr, status: GovernanceProposalStatus.Rejected, closedAt: height }
  state.set(proposalKey(pr.id), encode(governanceProposalCodec, next))
  const logs = next.status === GovernanceProposalStatus.Open ? [] : [log('Decided(int,str)', [BigInt(pr.id)], [STATUS_NAMES[next.status]])]
  return { proposal: next, logs }
}

/**
 * Runs a governance method. Writes go into `state` only on success; a failure (`UNKNOWN_METHOD`,
 * `NOT_PAYABLE`, `PERMISSION_DENIED`, `INVALID_ARGUMENT`, `READONLY_VIOLATION`) writes nothing.
 */
export function governanceCall(state: StateOverlay, params: ChainParams, call: GovernanceCall): GovernanceResult {
  const fail = (code: string, message: string): GovernanceResult => ({ ok: false, failure: { code, message: message.slice(0, 256) } })
  const method = Object.hasOwn(METHODS, call.method) ? METHODS[call.method] : undefined
  if (method === undefined) return fail('UNKNOWN_METHOD', `Governance has no method ${JSON.stringify(call.method).slice(0, 70)}`)
  if (call.value !== 0n) return fail('NOT_PAYABLE', `Governance.${method.name} does not accept a value`)
  if (!method.readonly) {
    if (call.query) return fail('READONLY_VIOLATION', `Governance.${method.name} writes state and cannot run in a query`)
    if (!readValidators(state).validators.some((v) => v.address === call.from))
      return fail('PERMISSION_DENIED', `${call.from} is not in the validator set; only validators propose and vote`)
  }
  const bad = checkParams(method, call.params)
  if (bad !== undefined) return fail('INVALID_ARGUMENT', bad)
  const args = (call.params ?? {}) as { [key: string]: Value }
  switch (method.name) {
    case 'propose': {
      const action = args.action as Value
      const malformed = checkAction(action)
      if (malformed !== undefined) return fail('INVALID_ARGUMENT', malformed)
      const dry = state.child()
      const err = applyAction(dry, action as { [key: string]: Value }, call.height)
      dry.discard()
      if (err !== undefined) return fail('INVALID_ARGUMENT', err)
      const id = proposalCount(state) + 1
      state.set(PROPOSAL_COUNT_KEY, encode(uvarint, id))
      const pr: GovernanceProposal = {
        id,
        proposer: call.from,
        createdAt: call.height,
        action,
        yes: [call.from],
        no: [],
        status: GovernanceProposalStatus.Open,
        closedAt: undefined,
        failure: undefined,
      }
      const { logs } = tally(state, pr, call.height, params)
      return {
        ok: true,
        result: BigInt(id),
        logs: [log('Proposed(int,Address,str)', [BigInt(id), call.from], [String((action as { type: string }).type)]), ...logs],
      }
    }
    case 'vote': {
      const id = smallInt(args.id, 'id', 1, 0xffff_ffff)
      const pr = typeof id === 'number' ? readProposal(state, id) : undefined
      if (pr === undefined) return fail('INVALID_ARGUMENT', `no proposal ${String(args.id)}`)
      if (pr.status !== GovernanceProposalStatus.Open)
        return fail('INVALID_ARGUMENT', `proposal ${pr.id} is ${STATUS_NAMES[pr.status]}, not open`)
      if (pr.yes.includes(call.from) || pr.no.includes(call.from))
        return fail('INVALID_ARGUMENT', `${call.from} already voted on proposal ${pr.id}`)
      const approve = args.approve === true
      const voted = approve ? { ...pr, yes: [...pr.yes, call.from] } : { ...pr, no: [...pr.no, call.from] }
      const { proposal, logs } = tally(state, voted, call.height, params)
      return {
        ok: true,
        result: STATUS_NAMES[proposal.status],
        logs: [log('Voted(int,Address,bool)', [BigInt(pr.id), call.from], [approve]), ...logs],
      }
    }
    case 'getMembers':
      return {
        ok: true,
        result: readMemberList(state).map((a) => memberToValue(a, readMember(state, a) ?? { id: '', rights: 0, nodeKey: undefined })),
        logs: [],
      }
    case 'getMember': {
      const a = args.address as Address
      const r = readMember(state, a)
      return { ok: true, result: r === undefined ? null : memberToValue(a, r), logs: [] }
    }
    case 'getRights':
      return { ok: true, result: BigInt(readMember(state, args.address as Address)?.rights ?? 0), logs: [] }
    case 'getValidators':
      return {
        ok: true,
        result: readValidators(state).validators.map((v) => ({ address: v.address, publicKey: v.publicKey, power: BigInt(v.power) })),
        logs: [],
      }
    case 'getApprovalRule': {
      const n = readValidators(state).validators.length
      return {
        ok: true,
        result: {
          rule: RULE_NAMES[params.approvalRule],
          validators: BigInt(n),
          threshold: BigInt(approvalThreshold(params.approvalRule, n)),
        },
        logs: [],
      }
    }
    case 'getProposal': {
      const id = smallInt(args.id, 'id', 1, 0xffff_ffff)
      const pr = typeof id === 'number' ? readProposal(state, id) : undefined
      return { ok: true, result: pr === undefined ? null : proposalToValue(pr), logs: [] }
    }
    case 'getProposals': {
      const status = args.status
      if (status !== undefined && status !== null && !(STATUS_NAMES as readonly Value[]).includes(status))
        return fail('INVALID_ARGUMENT', `status must be one of ${STATUS_NAMES.join(', ')}`)
      const count = proposalCount(state)
      const out: Value[] = []
      for (let id = Math.max(1, count - MAX_LISTED_PROPOSALS + 1); id <= count; id++) {
        const pr = readProposal(state, id)
        if (pr !== undefined && (status === undefined || status === null || STATUS_NAMES[pr.status] === status))
          out.push(proposalToValue(pr))
      }
      return { ok: true, result: out, logs: [] }
    }
    case 'getScoreInfo': {
      const a = args.address as Address
      if (!isAddress(a)) return fail('INVALID_ARGUMENT', 'address must be an address')
      const r = readRecord(state, a)
      return { ok: true, result: r === undefined ? null : scoreInfoToValue({ address: a, ...r }), logs: [] }
    }
    default:
      return fail('UNKNOWN_METHOD', `Governance has no method ${method.name}`)
  }
}
