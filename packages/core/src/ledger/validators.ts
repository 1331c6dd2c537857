/**
 * Validator sets: who votes, with how much power. A set is sorted by address with no repeats, so
 * it has one encoding and one hash; headers carry that hash, and a light client follows changes of
 * the set from the pinned genesis.
 */
import { type Codec, fixedBytes, hashEncoded, list, struct, uvarint } from '../codec/codec.js'
import { compareBytes } from '../codec/hex.js'
import { type Address, accountAddress, address, addressToBytes } from '../crypto/address.js'
import { Domain } from '../crypto/hash.js'
import { LoopchainError } from '../errors.js'

/** Most validators in one set; bounds every loop over a set and a commit's size. */
export const MAX_VALIDATORS = 1024
/**
 * Largest total voting power: 2^50 keeps `3 * power` (the quorum test) an exact JavaScript
 * integer.
 */
export const MAX_TOTAL_POWER = 2 ** 50

/** One validator: its account address, ed25519 public key and voting power. */
export interface Validator {
  readonly address: Address
  readonly publicKey: Uint8Array
  readonly power: number
}

/** Codec of {@link Validator}. */
export const validatorCodec = struct('Validator', { address, publicKey: fixedBytes(32), power: uvarint })

/** A validator set, sorted by address. */
export interface ValidatorSet {
  readonly validators: readonly Validator[]
}

/** Codec of {@link ValidatorSet}. */
export const validatorSetCodec: Codec<ValidatorSet> = struct('ValidatorSet', {
  validators: list(validatorCodec, MAX_VALIDATORS),
}) as unknown as Codec<ValidatorSet>

/** Why a validator set is not acceptable. */
export class ValidatorSetError extends LoopchainError<'EMPTY' | 'UNSORTED' | 'BAD_POWER' | 'KEY_MISMATCH' | 'TOO_MANY'> {}

/**
 * Checks the rules every set obeys: non-empty, at most {@link MAX_VALIDATORS}, sorted by address
 * without repeats, powers positive with a total at most {@link MAX_TOTAL_POWER}, and each address
 * the account address of its public key. Returns the set.
 */
export function validateValidatorSet(set: ValidatorSet): ValidatorSet {
  const vs = set.validators
  if (vs.length === 0) throw new ValidatorSetError('EMPTY', 'a validator set needs at least one validator')
  if (vs.length > MAX_VALIDATORS) throw new ValidatorSetError('TOO_MANY', `${vs.length} validators, above ${MAX_VALIDATORS}`)
  let total = 0
  let prev: Uint8Array | undefined
  for (const v of vs) {
    const a = addressToBytes(v.address)
    if (prev && compareBytes(prev, a) >= 0) {
      throw new ValidatorSetError('UNSORTED', `validators must be sorted by address without repeats (at ${v.address})`)
    }
    prev = a
    if (!Number.isSafeInteger(v.power) || v.power < 1)
      throw new ValidatorSetError('BAD_POWER', `validator ${v.address} has power ${v.power}`)
    total += v.power
    if (accountAddress(v.publicKey) !== v.address) {
      throw new ValidatorSetError('KEY_MISMATCH', `validator ${v.address} does not match its public key`)
    }
  }
  if (total > MAX_TOTAL_POWER) throw new ValidatorSetError('BAD_POWER', `total power ${total} above ${MAX_TOTAL_POWER}`)
  return set
}

/** Builds a valid set from validators in any order. */
export function makeValidatorSet(validators: readonly Validator[]): ValidatorSet {
  const sorted = [...validators].sort((a, b) => compareBytes(addressToBytes(a.address), addressToBytes(b.address)))
  return validateValidatorSet({ validators: sorted })
}

/** The hash headers carry for a set. */
export function validatorSetHash(set: ValidatorSet): Uint8Array {
  return hashEncoded(Domain.ValidatorSet, validatorSetCodec, set)
}

/** Sum of the set's voting power. */
export function totalPower(set: ValidatorSet): number {
  let t = 0
  for (const v of set.validators) t += v.power
  return t
}

/** True when `power` is strictly more than two thirds of `total`: a quorum. */
export function isQuorum(power: number, total: number): boolean {
  return 3 * power > 2 * total
}

/** Index of `addr` in the set, or -1. */
export function validatorIndex(set: ValidatorSet, addr: Address): number {
  return set.validators.findIndex((v) => v.address === addr)
}
