/**
 * Where everything lives in the authenticated state. One tree holds all of a chain's state, so
 * every key starts with a one-byte namespace; the namespaces never overlap because each key's
 * length after its namespace byte is fixed or self-delimiting (an address is always 21 bytes).
 *
 * | namespace | key                                  | value                                  |
 * | --------- | ------------------------------------ | -------------------------------------- |
 * | `a`       | `a ‖ address(21)`                    | {@link AccountState}: balance, nonce   |
 * | `s`       | `s ‖ contract address(21) ‖ key`     | a contract's own storage               |
 * | `c`       | `c ‖ contract address(21)`           | the contract's registry record         |
 * | `k`       | `k ‖ sha256(code)(32)`               | contract code, stored once per hash    |
 * | `m`       | `m ‖ address(21)`                    | a member institution's id, rights, node key |
 * | `g`       | `g ‖ v`                              | the current validator set              |
 * | `g`       | `g ‖ m`                              | every member's address (sorted)        |
 * | `g`       | `g ‖ n`                              | how many proposals were ever made      |
 * | `g`       | `g ‖ p ‖ id(u32 BE)`                 | a governance {@link GovernanceProposal}          |
 * | `g`       | `g ‖ u`                              | SCORE updates waiting for their height |
 * | `r`       | `r ‖ certificate id(32)`             | a {@link CertificateRecord}: issuer, status |
 * | `h`       | `h ‖ channel id(32)`                 | a {@link ChannelRecord}: parties, deposits, status, close |
 * | `p`       | `p ‖ hash lock(32)`                  | a preimage a channel's `redeem` revealed (32 bytes) |
 *
 * Every `g` key is one tag byte after the namespace, then a fixed-length suffix (or none), so the
 * governance keys cannot meet either. The validator set lives in state so that a light client can
 * prove it against a verified header's state root.
 */

import { type Htlc, htlcCodec, MAX_HTLCS, type Party } from '../channel/state.js'
import { bigUint, bool, type Codec, enumeration, fixedBytes, list, option, pairOf, string, struct, u8, uvarint } from '../codec/codec.js'
import { concatBytes } from '../codec/hex.js'
import { type Value, value } from '../codec/value.js'
import { type Address, address, addressToBytes } from '../crypto/address.js'
import { MAX_VALIDATORS, validatorSetCodec } from '../ledger/validators.js'

const NS_ACCOUNT = 0x61 // 'a'
const NS_STORAGE = 0x73 // 's'
const NS_CONTRACT = 0x63 // 'c'
const NS_CODE = 0x6b // 'k'
const NS_MEMBER = 0x6d // 'm'
const NS_GOVERNANCE = 0x67 // 'g'
const NS_CERTIFICATE = 0x72 // 'r' (the certificate registry)
const NS_CHANNEL = 0x68 // 'h' (the payment channel SCORE)
const NS_PREIMAGE = 0x70 // 'p' (preimages the payment channel SCORE's redeems revealed)

/** An account's balance and the count of transactions it has sent (its next nonce). */
export interface AccountState {
  readonly balance: bigint
  readonly nonce: number
}

/** Codec of {@link AccountState}. */
export const accountStateCodec: Codec<AccountState> = struct('AccountState', { balance: bigUint(32), nonce: uvarint })

/** An account with nothing in it: how an absent account reads. */
export const EMPTY_ACCOUNT: AccountState = { balance: 0n, nonce: 0 }

/** State key of an account. */
export function accountKey(a: Address): Uint8Array {
  return concatBytes(Uint8Array.of(NS_ACCOUNT), addressToBytes(a))
}

/** State key of `key` in contract `a`'s storage. */
export function storageKey(a: Address, key: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(NS_STORAGE), addressToBytes(a), key)
}

/** State key of a contract's registry record. */
export function contractKey(a: Address): Uint8Array {
  return concatBytes(Uint8Array.of(NS_CONTRACT), addressToBytes(a))
}

/** State key of code by its hash. */
export function codeKey(codeHash: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(NS_CODE), codeHash)
}

/** State key of a member institution's record. */
export function memberKey(a: Address): Uint8Array {
  return concatBytes(Uint8Array.of(NS_MEMBER), addressToBytes(a))
}

/** A version's audit: governance's verdict, or pending while the chain requires audit and none is given yet. */
export const AuditStatus = { Pending: 0, Accepted: 1, Rejected: 2 } as const
/** An audit status. */
export type AuditStatus = (typeof AuditStatus)[keyof typeof AuditStatus]

/** Where a SCORE version is in its life (see docs/writing-a-score.md, "Deploying, auditing and updating"). */
export const VersionStatus = {
  /** Waiting for governance to accept or reject its audit. */
  Pending: 0,
  /** Accepted; becomes the serving version at the start of block `activeFrom` (its `onUpdate` runs then). */
  Scheduled: 1,
  /** The version that serves calls. */
  Active: 2,
  /** Served once and was replaced by a later version; read-only queries may still address it. */
  Retired: 3,
  /** Its `onUpdate` failed at activation; `failure` says why and the previous version kept serving. */
  Failed: 4,
  /** Governance rejected its audit; it never serves. */
  Rejected: 5,
} as const
/** A version status. */
export type VersionStatus = (typeof VersionStatus)[keyof typeof VersionStatus]

/** Why a version failed to activate (its `onUpdate`'s failure). */
export interface VersionFailure {
  readonly code: string
  readonly message: string
}

/** One registered version of a SCORE. */
export interface ScoreVersion {
  /** 1 for the deploy that created the SCORE, then 2, 3, … per update. */
  readonly version: number
  readonly codeHash: Uint8Array
  /** The account that deployed this version. */
  readonly deployer: Address
  /** Height of the block whose transaction registered it. */
  readonly deployedAt: number
  readonly audit: AuditStatus
  readonly status: VersionStatus
  /** The height from which it serves (or was due to serve), once accepted. */
  readonly activeFrom: number | undefined
  /** Parameters for the new code's `onUpdate` (null for version 1, whose `onInstall` ran at deploy). */
  readonly params: Value
  readonly failure: VersionFailure | undefined
}

/** Most versions one SCORE may register: bounds the record's size. */
export const MAX_SCORE_VERSIONS = 256

/** A SCORE's registry record: its creator, the version that serves (0: none) and every version ever registered. */
export interface ContractRecord {
  /** The account that created the SCORE; only it may register updates (holding the deployer right at the time). */
  readonly deployer: Address
  /** The serving version's number, 0 while no version serves (pending or rejected audit). */
  readonly serving: number
  /** Every version, oldest first; `versions[i].version === i + 1`. */
  readonly versions: readonly ScoreVersion[]
}

const scoreVersionCodec = struct('ScoreVersion', {
  version: uvarint,
  codeHash: fixedBytes(32),
  deployer: address,
  deployedAt: uvarint,
  audit: enumeration('AuditStatus', [0, 1, 2]),
  status: enumeration('VersionStatus', [0, 1, 2, 3, 4, 5]),
  activeFrom: option(uvarint),
  params: value,
  failure: option(struct('VersionFailure', { code: string(64), message: string(1024) })),
})

/** Codec of {@link ContractRecord}. */
export const contractRecordCodec: Codec<ContractRecord> = struct('ContractRecord', {
  deployer: address,
  serving: uvarint,
  versions: list(scoreVersionCodec, MAX_SCORE_VERSIONS),
}) as unknown as Codec<ContractRecord>

/** A member institution as the state holds it (the genesis's members, then governance's changes). */
export interface MemberRecord {
  readonly id: string
  /** Bit set of `Right`. */
  readonly rights: number
  /**
   * The ed25519 public key of the member's node (its libp2p identity), if it runs one. With the
   * member-node or validator right, that node is admitted to the members' protocols.
   */
  readonly nodeKey: Uint8Array | undefined
}

/** Codec of {@link MemberRecord}. */
export const memberRecordCodec: Codec<MemberRecord> = struct('MemberRecord', {
  id: string(64),
  rights: u8,
  nodeKey: option(fixedBytes(32)),
})

/** The governance system SCORE's fixed address (native code in the executor; see governance.ts). */
export const GOVERNANCE_ADDRESS = 'cx0000000000000000000000000000000000000001' as Address

/** State key of the current validator set (a `ValidatorSet`), which governance changes. */
export const VALIDATORS_KEY: Uint8Array = Uint8Array.of(NS_GOVERNANCE, 0x76)
/**
 * State key of the validator set a block started with, and that block's height (a
 * {@link blockStartValidatorsCodec} value), written at the block's first set change: a change made
 * in block K votes from K+2 on, so K+1 is still voted by this set (see governance.ts).
 */
export const BLOCK_START_VALIDATORS_KEY: Uint8Array = Uint8Array.of(NS_GOVERNANCE, 0x73)
/** Codec of the value at {@link BLOCK_START_VALIDATORS_KEY}. */
export const blockStartValidatorsCodec = struct('BlockStartValidators', { height: uvarint, set: validatorSetCodec })
/** State key of the list of every member's address, sorted (so governance can list members). */
export const MEMBER_LIST_KEY: Uint8Array = Uint8Array.of(NS_GOVERNANCE, 0x6d)
/** State key of the count of proposals ever made (the last proposal's id). */
export const PROPOSAL_COUNT_KEY: Uint8Array = Uint8Array.of(NS_GOVERNANCE, 0x6e)
/** State key of the SCORE updates accepted and waiting for their activation height. */
export const SCHEDULED_UPDATES_KEY: Uint8Array = Uint8Array.of(NS_GOVERNANCE, 0x75)

/** State key of governance proposal `id` (1, 2, …). */
export function proposalKey(id: number): Uint8Array {
  const k = new Uint8Array(6)
  k[0] = NS_GOVERNANCE
  k[1] = 0x70
  new DataView(k.buffer).setUint32(2, id)
  return k
}

/** Codec of the member list at {@link MEMBER_LIST_KEY}. */
export const memberListCodec: Codec<Address[]> = list(address, 1 << 16)

/** A SCORE version waiting to serve from `activeFrom`. */
export interface ScheduledUpdate {
  readonly score: Address
  readonly version: number
  readonly activeFrom: number
}

/** Codec of the list at {@link SCHEDULED_UPDATES_KEY}. */
export const scheduledUpdatesCodec: Codec<ScheduledUpdate[]> = list(
  struct('ScheduledUpdate', { score: address, version: uvarint, activeFrom: uvarint }),
  1 << 16,
)

/** Where a governance proposal stands. */
export const GovernanceProposalStatus = {
  /** Collecting votes. */
  Open: 0,
  /** Reached its approval threshold and its action was applied in block `closedAt`. */
  Executed: 1,
  /** Enough validators voted no that the threshold can no longer be reached. */
  Rejected: 2,
  /** Reached its threshold, but its action no longer applied to the state of that block (see `failure`). */
  Failed: 3,
} as const
/** A proposal status. */
export type GovernanceProposalStatus = (typeof GovernanceProposalStatus)[keyof typeof GovernanceProposalStatus]

/** A governance proposal: an action, and the validators' votes on it. */
export interface GovernanceProposal {
  readonly id: number
  readonly proposer: Address
  /** Height of the block that made it. */
  readonly createdAt: number
  /** The action as given to `propose` (a map with `type`; see docs/governance.md). */
  readonly action: Value
  readonly yes: readonly Address[]
  readonly no: readonly Address[]
  readonly status: GovernanceProposalStatus
  readonly closedAt: number | undefined
  readonly failure: string | undefined
}

/** Codec of {@link GovernanceProposal}. */
export const governanceProposalCodec: Codec<GovernanceProposal> = struct('GovernanceProposal', {
  id: uvarint,
  proposer: address,
  createdAt: uvarint,
  action: value,
  yes: list(address, MAX_VALIDATORS),
  no: list(address, MAX_VALIDATORS),
  status: enumeration('GovernanceProposalStatus', [0, 1, 2, 3]),
  closedAt: option(uvarint),
  failure: option(string(1024)),
}) as unknown as Codec<GovernanceProposal>

/** The payment channel system SCORE's fixed address (native code in the executor; see channels.ts). */
export const CHANNEL_ADDRESS = 'cx0000000000000000000000000000000000000003' as Address

/** The certificate registry system SCORE's fixed address (native code in the executor; see certificates.ts). */
export const CERTIFICATE_REGISTRY_ADDRESS = 'cx0000000000000000000000000000000000000002' as Address

/** Where a certificate stands (docs/certificates.md). */
export const CertificateStatus = {
  /** Issued and neither revoked nor renewed. */
  Active: 0,
  /** Revoked by its issuer in block `changedAt`. */
  Revoked: 1,
  /** Renewed in block `changedAt`: the certificate `supersededBy` replaces it. */
  Superseded: 2,
} as const
/** A certificate status. */
export type CertificateStatus = (typeof CertificateStatus)[keyof typeof CertificateStatus]

/**
 * The registry's record of one certificate, under {@link certificateStatusKey}: enough to find the
 * issuing transaction (height and hash) and to prove the current status to a light client. The
 * certificate's content stays in its block: the id is the digest of that content.
 */
export interface CertificateRecord {
  /** The member that issued it (the transaction's sender). */
  readonly issuer: Address
  /** Height of the block that issued it. */
  readonly height: number
  /** Hash of the issuing transaction. */
  readonly txHash: Uint8Array
  readonly status: CertificateStatus
  /** Height of the block that revoked or renewed it. */
  readonly changedAt: number | undefined
  /** The id of the certificate that renewed it. */
  readonly supersededBy: Uint8Array | undefined
  /** The id of the certificate it renews. */
  readonly replaces: Uint8Array | undefined
  /** The issuer's reason for a revocation. */
  readonly reason: string | undefined
}

/** Longest revocation reason, in UTF-8 bytes. */
export const MAX_REVOCATION_REASON = 256

/** Codec of {@link CertificateRecord}. */
export const certificateRecordCodec: Codec<CertificateRecord> = struct('CertificateRecord', {
  issuer: address,
  height: uvarint,
  txHash: fixedBytes(32),
  status: enumeration('CertificateStatus', [0, 1, 2]),
  changedAt: option(uvarint),
  supersededBy: option(fixedBytes(32)),
  replaces: option(fixedBytes(32)),
  reason: option(string(MAX_REVOCATION_REASON)),
}) as unknown as Codec<CertificateRecord>

/** State key of the record of certificate `id` (32 bytes): what a light client asks a proof of. */
export function certificateStatusKey(id: Uint8Array): Uint8Array {
  if (!(id instanceof Uint8Array) || id.length !== 32) throw new RangeError('a certificate id is 32 bytes')
  return concatBytes(Uint8Array.of(NS_CERTIFICATE), id)
}

/** Where a payment channel is in its life (docs/channels.md, "On chain"). */
export const ChannelStatus = {
  /** Opened with A's deposit; waiting for B to join (or A to cancel). */
  Opening: 0,
  /** Both deposits locked; the parties exchange states off chain. */
  Open: 1,
  /** A party closed alone: the challenge period runs until `deadline`. */
  Closing: 2,
  /** Paid out; nothing more happens to it. */
  Closed: 3,
} as const
/** A channel status. */
export type ChannelStatus = (typeof ChannelStatus)[keyof typeof ChannelStatus]

/** How a closed channel ended. */
export const ChannelOutcome = {
  /** A took its deposit back before B joined. */
  Cancelled: 0,
  /** Paid out on a final state both signed. */
  Cooperative: 1,
  /** A challenge showed the closer's revocation of the state it closed with: the other party took everything. */
  Penalised: 2,
  /** Paid out after the challenge period, on the closer's state or the newest one a challenge showed. */
  Unilateral: 3,
} as const
/** A channel outcome. */
export type ChannelOutcome = (typeof ChannelOutcome)[keyof typeof ChannelOutcome]

/** A conditional payment of a closing state as the channel SCORE records it. */
export interface RecordedHtlc {
  readonly htlc: Htlc
  /** Its preimage was shown in time: the amount went to the recipient's balance. */
  readonly redeemed: boolean
}

/**
 * The channel SCORE's record of one channel, under {@link channelKey}. Index 0 is the opener (A),
 * 1 the peer (B). `balances` are the deposits while the channel is opening or open; the closer's
 * state (plus redeemed payments) while it is closing; what each party was paid once closed.
 */
export interface ChannelRecord {
  readonly status: ChannelStatus
  readonly parties: readonly [Address, Address]
  /** The parties' ed25519 public keys, which sign the channel's states. */
  readonly keys: readonly [Uint8Array, Uint8Array]
  readonly deposits: readonly [bigint, bigint]
  /** Blocks a unilateral close waits for a challenge. */
  readonly challengePeriod: number
  /** Height of the block that opened it. */
  readonly openedAt: number
  /** The party that closed alone. */
  readonly closer: Party | undefined
  /** Sequence number of the recorded state (0: the opening state). */
  readonly seq: number
  readonly balances: readonly [bigint, bigint]
  /** The recorded state's conditional payments. */
  readonly htlcs: readonly RecordedHtlc[]
  /** Last height at which a challenge is accepted, while closing. */
  readonly deadline: number | undefined
  /** Height of the block that paid it out. */
  readonly closedAt: number | undefined
  readonly outcome: ChannelOutcome | undefined
}

/** Codec of {@link ChannelRecord}. */
export const channelRecordCodec: Codec<ChannelRecord> = struct('ChannelRecord', {
  status: enumeration('ChannelStatus', [0, 1, 2, 3]),
  parties: pairOf('Parties', address),
  keys: pairOf('Keys', fixedBytes(32)),
  deposits: pairOf('Deposits', bigUint(32)),
  challengePeriod: uvarint,
  openedAt: uvarint,
  closer: option(enumeration('Party', [0, 1])),
  seq: uvarint,
  balances: pairOf('Balances', bigUint(32)),
  htlcs: list(struct('RecordedHtlc', { htlc: htlcCodec, redeemed: bool }), MAX_HTLCS),
  deadline: option(uvarint),
  closedAt: option(uvarint),
  outcome: option(enumeration('ChannelOutcome', [0, 1, 2, 3])),
}) as unknown as Codec<ChannelRecord>

/** State key of the record of channel `id` (32 bytes). */
export function channelKey(id: Uint8Array): Uint8Array {
  if (!(id instanceof Uint8Array) || id.length !== 32) throw new RangeError('a channel id is 32 bytes')
  return concatBytes(Uint8Array.of(NS_CHANNEL), id)
}

/**
 * State key of the preimage of `hashLock` (32 bytes), written by the channel SCORE's `redeem`: a
 * hub whose next hop redeemed a payment on chain proves the preimage here, and settles or redeems
 * the payment it was paid with the same lock (the chain's record of the channel keeps only that it
 * was redeemed).
 */
export function preimageKey(hashLock: Uint8Array): Uint8Array {
  if (!(hashLock instanceof Uint8Array) || hashLock.length !== 32) throw new RangeError('a hash lock is 32 bytes')
  return concatBytes(Uint8Array.of(NS_PREIMAGE), hashLock)
}
