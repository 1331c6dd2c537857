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
 * | `m`       | `m ‖ address(21)`                    | a member institution's id and rights   |
 */
import { bigUint, type Codec, fixedBytes, string, struct, u8, uvarint } from '../codec/codec.js'
import { concatBytes } from '../codec/hex.js'
import { type Address, address, addressToBytes } from '../crypto/address.js'

const NS_ACCOUNT = 0x61 // 'a'
const NS_STORAGE = 0x73 // 's'
const NS_CONTRACT = 0x63 // 'c'
const NS_CODE = 0x6b // 'k'
const NS_MEMBER = 0x6d // 'm'

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

/** A deployed SCORE: who deployed it, which code serves, and its version number. */
export interface ContractRecord {
  readonly deployer: Address
  readonly codeHash: Uint8Array
  readonly version: number
}

/** Codec of {@link ContractRecord}. */
export const contractRecordCodec: Codec<ContractRecord> = struct('ContractRecord', {
  deployer: address,
  codeHash: fixedBytes(32),
  version: uvarint,
})

/** A member institution as the state holds it (the genesis's members, then governance's changes). */
export interface MemberRecord {
  readonly id: string
  /** Bit set of `Right`. */
  readonly rights: number
}

/** Codec of {@link MemberRecord}. */
export const memberRecordCodec: Codec<MemberRecord> = struct('MemberRecord', { id: string(64), rights: u8 })
