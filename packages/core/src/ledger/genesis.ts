/**
 * The genesis: what a chain starts from and what a light client pins. It names the chain, its
 * first validator set, the member institutions with their rights (the tiered permission system),
 * initial balances and the chain's parameters. Its JSON form is what operators edit; its canonical
 * encoding is what is hashed.
 */
import {
  bigUint,
  bool,
  type Codec,
  enumeration,
  fixedBytes,
  hashEncoded,
  list,
  option,
  string,
  struct,
  u8,
  uvarint,
} from '../codec/codec.js'
import { compareBytes, fromHex, to0x, toHex } from '../codec/hex.js'
import { type Address, address, addressToBytes, isAddress } from '../crypto/address.js'
import { Domain } from '../crypto/hash.js'
import { DecodeError, LoopchainError } from '../errors.js'
import { type ValidatorSet, ValidatorSetError, validateValidatorSet, validatorSetCodec } from './validators.js'

/** Rights a member institution can hold; a member's rights are a bit set of these. */
export const Right = {
  /** May sit in the validator set. */
  Validator: 1,
  /** May run a full node admitted to the full-node protocols. */
  MemberNode: 2,
  /** May issue, renew and revoke certificates. */
  Issuer: 4,
  /** May deploy and update SCOREs. */
  Deployer: 8,
  /** May read everything the members' protocols serve. */
  Observer: 16,
} as const
/** A right's name. */
export type RightName = keyof typeof Right

const RIGHT_JSON: Record<string, number> = {
  validator: Right.Validator,
  'member-node': Right.MemberNode,
  issuer: Right.Issuer,
  deployer: Right.Deployer,
  observer: Right.Observer,
}
/** The rights' names in a genesis file (and in the CLI), in the order of their bits. */
export const RIGHT_NAMES: readonly string[] = Object.freeze(Object.keys(RIGHT_JSON))

/** A member's id: what the genesis and governance's `addMember` take. */
export const MEMBER_ID = /^[a-z0-9][a-z0-9-]{0,63}$/
/** The longest member name, in UTF-8 bytes. */
export const MEMBER_NAME_MAX_BYTES = 128

/** A member institution. */
export interface Member {
  /** Short stable identifier, e.g. `bank-a`. */
  readonly id: string
  /** Display name. */
  readonly name: string
  /** The account that acts for the institution. */
  readonly address: Address
  /** The ed25519 public key of the institution's node (its libp2p identity), if it runs one. */
  readonly nodeKey: Uint8Array | undefined
  /** Bit set of {@link Right}. */
  readonly rights: number
}

/** How governance decisions (deploy approval, validator changes, rights) are approved. */
export const ApprovalRule = { MajorityOfValidators: 0, TwoThirdsOfValidators: 1, AnyValidator: 2 } as const
/** An approval rule. */
export type ApprovalRule = (typeof ApprovalRule)[keyof typeof ApprovalRule]
const APPROVAL_JSON: Record<string, ApprovalRule> = {
  'majority-of-validators': ApprovalRule.MajorityOfValidators,
  'two-thirds-of-validators': ApprovalRule.TwoThirdsOfValidators,
  'any-validator': ApprovalRule.AnyValidator,
}

/** Chain parameters fixed at genesis (governance may change some later). */
export interface ChainParams {
  /** Least time between two blocks, in milliseconds. */
  readonly blockIntervalMs: number
  /** When no transaction waits, make an empty block this often (0: never). */
  readonly emptyBlockIntervalMs: number
  readonly maxBlockTxs: number
  readonly maxBlockBytes: number
  /** How far a transaction's timestamp may be from a node's clock, in milliseconds. */
  readonly txTimestampWindowMs: number
  /** Most steps one transaction may declare (its `stepLimit`); at most `maxBlockSteps`. */
  readonly maxStepLimit: number
  /**
   * Most steps a block's transactions may use together, counted before they run: each one's step
   * limit, or for a transfer or message (no code) the fixed cost of its size
   * (`transactionStepBound`). Blocks run after they commit, so this bounds how long a block can
   * keep every node busy. Pure computation runs about 40 million steps a second here, storage
   * writes about 10 million, so the default block's transactions run in 10 s at worst — for code
   * whose steps mean what they say (core docs/score-engine.md §6); upgrade hooks that fall due run
   * on their own budget besides.
   */
  readonly maxBlockSteps: number
  /** Native tokens charged per step. */
  readonly stepPrice: bigint
  /** Base consensus timeouts and their growth per round, in milliseconds. */
  readonly timeoutProposeMs: number
  readonly timeoutVoteMs: number
  readonly timeoutDeltaMs: number
  /** Whether a deployed SCORE serves only after governance accepts its audit. */
  readonly requireAudit: boolean
  readonly approvalRule: ApprovalRule
}

/** Parameters used where a genesis file leaves one out. */
export const DEFAULT_PARAMS: ChainParams = {
  blockIntervalMs: 100,
  emptyBlockIntervalMs: 0,
  maxBlockTxs: 10_000,
  maxBlockBytes: 8 * 1024 * 1024,
  // loopchain's own window: five minutes either way.
  txTimestampWindowMs: 5 * 60 * 1000,
  maxStepLimit: 50_000_000,
  maxBlockSteps: 100_000_000,
  stepPrice: 0n,
  timeoutProposeMs: 1000,
  timeoutVoteMs: 500,
  timeoutDeltaMs: 500,
  requireAudit: false,
  approvalRule: ApprovalRule.MajorityOfValidators,
}

/** An initial balance. */
export interface Allocation {
  readonly address: Address
  readonly amount: bigint
}

/** A chain's genesis. */
export interface Genesis {
  readonly chainId: string
  readonly networkId: number
  /** Genesis time, microseconds since the Unix epoch. */
  readonly timestamp: number
  readonly validators: ValidatorSet
  readonly members: readonly Member[]
  readonly balances: readonly Allocation[]
  readonly params: ChainParams
}

const paramsCodec = struct('ChainParams', {
  blockIntervalMs: uvarint,
  emptyBlockIntervalMs: uvarint,
  maxBlockTxs: uvarint,
  maxBlockBytes: uvarint,
  txTimestampWindowMs: uvarint,
  maxStepLimit: uvarint,
  maxBlockSteps: uvarint,
  stepPrice: bigUint(32),
  timeoutProposeMs: uvarint,
  timeoutVoteMs: uvarint,
  timeoutDeltaMs: uvarint,
  requireAudit: bool,
  approvalRule: enumeration('ApprovalRule', [0, 1, 2]),
})

/** Codec of {@link Member}. */
export const memberCodec: Codec<Member> = struct('Member', {
  id: string(64),
  name: string(MEMBER_NAME_MAX_BYTES),
  address,
  nodeKey: option(fixedBytes(32)),
  rights: u8,
})

/** Codec of {@link Genesis}. */
export const genesisCodec: Codec<Genesis> = struct('Genesis', {
  chainId: string(64),
  networkId: uvarint,
  timestamp: uvarint,
  validators: validatorSetCodec,
  members: list(memberCodec, 4096),
  balances: list(struct('Allocation', { address, amount: bigUint(32) }), 1 << 20),
  params: paramsCodec,
})

/** The genesis hash: the chain's identity, pinned by light clients. */
export function genesisHash(g: Genesis): Uint8Array {
  return hashEncoded(Domain.Genesis, genesisCodec, g)
}

/** Why a genesis is not acceptable; `details.path` names the offending field. */
export class GenesisError extends LoopchainError<'INVALID'> {
  constructor(path: string, message: string) {
    super('INVALID', `genesis ${path}: ${message}`, { penalize: false, details: { path } })
  }
}

const CHAIN_ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/

/** Checks a genesis's rules and returns it: ids, sorting, rights, balances. */
export function validateGenesis(g: Genesis): Genesis {
  if (!CHAIN_ID_RE.test(g.chainId)) throw new GenesisError('chainId', 'must be 1-63 lower-case letters, digits or dashes')
  try {
    validateValidatorSet(g.validators)
  } catch (e) {
    if (e instanceof ValidatorSetError) throw new GenesisError('validators', e.message)
    throw e
  }
  const ids = new Set<string>()
  const byAddress = new Map<string, Member>()
  const nodeKeys = new Map<string, string>()
  g.members.forEach((m, i) => {
    if (!MEMBER_ID.test(m.id)) throw new GenesisError(`members[${i}].id`, 'must be lower-case letters, digits or dashes')
    if (ids.has(m.id)) throw new GenesisError(`members[${i}].id`, `repeats ${m.id}`)
    if (byAddress.has(m.address)) throw new GenesisError(`members[${i}].address`, `repeats ${m.address}`)
    if (m.rights < 0 || m.rights > 31) throw new GenesisError(`members[${i}].rights`, 'has unknown bits')
    if (m.nodeKey !== undefined) {
      if (m.nodeKey.length !== 32) throw new GenesisError(`members[${i}].nodeKey`, 'must be 32 bytes')
      const k = toHex(m.nodeKey)
      if (nodeKeys.has(k)) throw new GenesisError(`members[${i}].nodeKey`, `is also ${nodeKeys.get(k)}'s node key`)
      nodeKeys.set(k, m.id)
    }
    ids.add(m.id)
    byAddress.set(m.address, m)
  })
  g.validators.validators.forEach((v, i) => {
    const m = byAddress.get(v.address)
    if (!m || (m.rights & Right.Validator) === 0) {
      throw new GenesisError(`validators[${i}]`, `${v.address} is not a member with the validator right`)
    }
  })
  let prev: Uint8Array | undefined
  g.balances.forEach((b, i) => {
    const a = addressToBytes(b.address)
    if (prev && compareBytes(prev, a) >= 0) throw new GenesisError(`balances[${i}]`, 'must be sorted by address without repeats')
    prev = a
    if (b.amount <= 0n) throw new GenesisError(`balances[${i}].amount`, 'must be positive')
  })
  return g
}

// ---------------------------------------------------------------------------------------------
// JSON form

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

function obj(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new GenesisError(path, 'must be an object')
  return v as Record<string, unknown>
}
function arr(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw new GenesisError(path, 'must be an array')
  return v
}
function str(v: unknown, path: string): string {
  if (typeof v !== 'string') throw new GenesisError(path, 'must be a string')
  return v
}
function int(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new GenesisError(path, 'must be a non-negative integer')
  return v
}
function big(v: unknown, path: string): bigint {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]*)$/.test(v)) throw new GenesisError(path, 'must be a decimal integer in a string')
  return BigInt(v)
}
function addr(v: unknown, path: string): Address {
  if (!isAddress(v)) throw new GenesisError(path, 'must be an address (hx… or cx…, 40 lower-case hex digits)')
  return v
}
function key32(v: unknown, path: string): Uint8Array {
  try {
    const b = fromHex(str(v, path))
    if (b.length === 32) return b
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e
  }
  throw new GenesisError(path, 'must be 32 bytes of 0x-prefixed hex')
}

function parseParams(v: unknown): ChainParams {
  if (v === undefined) return DEFAULT_PARAMS
  const o = obj(v, 'params')
  const known = new Set(Object.keys(DEFAULT_PARAMS))
  for (const k of Object.keys(o)) if (!known.has(k)) throw new GenesisError(`params.${k}`, 'is not a known parameter')
  const out: Record<string, unknown> = { ...DEFAULT_PARAMS }
  for (const [k, d] of Object.entries(DEFAULT_PARAMS)) {
    const x = o[k]
    if (x === undefined) continue
    const path = `params.${k}`
    if (typeof d === 'bigint') out[k] = big(x, path)
    else if (typeof d === 'boolean') {
      if (typeof x !== 'boolean') throw new GenesisError(path, 'must be true or false')
      out[k] = x
    } else if (k === 'approvalRule') {
      const rule = APPROVAL_JSON[str(x, path)]
      if (rule === undefined) throw new GenesisError(path, `must be one of ${Object.keys(APPROVAL_JSON).join(', ')}`)
      out[k] = rule
    } else out[k] = int(x, path)
  }
  const params = out as unknown as ChainParams
  if (params.maxStepLimit < 1) throw new GenesisError('params.maxStepLimit', 'must be at least 1')
  if (params.maxStepLimit > params.maxBlockSteps) {
    throw new GenesisError(
      'params.maxStepLimit',
      `must not exceed params.maxBlockSteps (${params.maxBlockSteps}): a transaction must fit in a block`,
    )
  }
  return params
}

/**
 * Parses and validates a genesis from its JSON form (already `JSON.parse`d). Throws
 * {@link GenesisError} naming the first bad field.
 */
export function parseGenesis(json: unknown): Genesis {
  const o = obj(json, '(root)')
  const validators = arr(o.validators, 'validators').map((x, i) => {
    const v = obj(x, `validators[${i}]`)
    return {
      address: addr(v.address, `validators[${i}].address`),
      publicKey: key32(v.publicKey, `validators[${i}].publicKey`),
      power: int(v.power, `validators[${i}].power`),
    }
  })
  const members = arr(o.members, 'members').map((x, i): Member => {
    const m = obj(x, `members[${i}]`)
    let rights = 0
    for (const [j, r] of arr(m.rights, `members[${i}].rights`).entries()) {
      const bit = RIGHT_JSON[str(r, `members[${i}].rights[${j}]`)]
      if (bit === undefined) throw new GenesisError(`members[${i}].rights[${j}]`, `must be one of ${Object.keys(RIGHT_JSON).join(', ')}`)
      rights |= bit
    }
    return {
      id: str(m.id, `members[${i}].id`),
      name: str(m.name, `members[${i}].name`),
      address: addr(m.address, `members[${i}].address`),
      nodeKey: m.nodeKey === undefined ? undefined : key32(m.nodeKey, `members[${i}].nodeKey`),
      rights,
    }
  })
  const balances = arr(o.balances ?? [], 'balances').map((x, i) => {
    const b = obj(x, `balances[${i}]`)
    return { address: addr(b.address, `balances[${i}].address`), amount: big(b.amount, `balances[${i}].amount`) }
  })
  return validateGenesis({
    chainId: str(o.chainId, 'chainId'),
    networkId: int(o.networkId, 'networkId'),
    timestamp: int(o.timestamp, 'timestamp'),
    validators: { validators },
    members,
    balances,
    params: parseParams(o.params),
  })
}

/** The JSON form of a genesis (for `JSON.stringify`). */
export function genesisToJson(g: Genesis): Json {
  const rightNames = (bits: number) =>
    Object.entries(RIGHT_JSON)
      .filter(([, b]) => (bits & b) !== 0)
      .map(([n]) => n)
  const params: Record<string, Json> = {}
  for (const [k, v] of Object.entries(g.params)) {
    if (typeof v === 'bigint') params[k] = v.toString()
    else if (k === 'approvalRule') params[k] = Object.entries(APPROVAL_JSON).find(([, r]) => r === v)?.[0] ?? null
    else params[k] = v as Json
  }
  return {
    chainId: g.chainId,
    networkId: g.networkId,
    timestamp: g.timestamp,
    validators: g.validators.validators.map((v) => ({ address: v.address, publicKey: to0x(v.publicKey), power: v.power })),
    members: g.members.map((m) => ({
      id: m.id,
      name: m.name,
      address: m.address,
      ...(m.nodeKey ? { nodeKey: to0x(m.nodeKey) } : {}),
      rights: rightNames(m.rights),
    })),
    balances: g.balances.map((b) => ({ address: b.address, amount: b.amount.toString() })),
    params,
  }
}
