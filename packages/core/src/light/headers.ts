/**
 * What a light client trusts, and how it moves that trust forward (DESIGN.md, "Trust for light
 * clients"). It pins the genesis validator set. A header is accepted when a commit certificate
 * from more than 2/3 of the set in force at its height signs it. Sets change by governance: a
 * change made by block K is announced by header K + 1 (`nextValidatorsHash`) and votes from K + 2
 * (core docs/governance.md). A {@link ValidatorSetChange} is that announcing header with its
 * commit and the new set, so a client that verifies the changes in order knows the set at every
 * height, and reaches the tip of a long chain with one verified header per change.
 */
import { type Codec, decode, encode, list, struct } from '../codec/codec.js'
import { bytesEqual } from '../codec/hex.js'
import { type CryptoProvider, nobleCrypto } from '../crypto/provider.js'
import { LoopchainError } from '../errors.js'
import { type BlockHeader, type BlockResult, blockHash, blockHeaderCodec, blockResultHash } from '../ledger/block.js'
import { type ValidatorSet, validatorSetCodec, validatorSetHash } from '../ledger/validators.js'
import { type Commit, commitCodec, verifyCommit } from '../ledger/vote.js'
import { StateProofError } from '../state/errors.js'
import { type StateProof, verifyStateProof } from '../state/proof.js'

/** A header with the commit certificate that finalised it. */
export interface SignedHeader {
  readonly header: BlockHeader
  readonly commit: Commit
}

/** Codec of {@link SignedHeader}. */
export const signedHeaderCodec: Codec<SignedHeader> = struct('SignedHeader', { header: blockHeaderCodec, commit: commitCodec })

/**
 * A validator-set change as a light client receives it: header K + 1, which announces the new set
 * as its `nextValidatorsHash`, signed by the set in force at K + 1; and the new set, in force from
 * K + 2 (`signed.header.height + 1`).
 */
export interface ValidatorSetChange {
  readonly signed: SignedHeader
  readonly next: ValidatorSet
}

/** Most changes one message may carry. */
export const MAX_SET_CHANGES = 4096

/** Codec of {@link ValidatorSetChange}. */
export const validatorSetChangeCodec: Codec<ValidatorSetChange> = struct('ValidatorSetChange', {
  signed: signedHeaderCodec,
  next: validatorSetCodec,
})
/** Codec of a list of {@link ValidatorSetChange} (a certificate file carries one). */
export const validatorSetChangesCodec: Codec<ValidatorSetChange[]> = list(validatorSetChangeCodec, MAX_SET_CHANGES)

/** A validator set and the first height it votes on. */
export interface SetInForce {
  readonly from: number
  readonly set: ValidatorSet
}

/** Why a light client refused a header or a set change. */
export type LightErrorCode =
  | 'WRONG_NETWORK'
  | 'WRONG_SET'
  | 'BAD_COMMIT'
  | 'NOT_A_CHANGE'
  | 'WRONG_NEXT_SET'
  | 'OUT_OF_ORDER'
  | 'UNKNOWN_HEIGHT'
  | 'BROKEN_LINK'
  | 'WRONG_RESULT'
  | 'BAD_PROOF'

/** A header, set change or proof a light client refuses; `code` says why. */
export class LightError extends LoopchainError<LightErrorCode> {}

/** The set voting on `height`, from sets sorted by `from` (the genesis set first, from 1). */
export function setAt(sets: readonly SetInForce[], height: number): ValidatorSet {
  let found: ValidatorSet | undefined
  for (const s of sets) if (s.from <= height) found = s.set
  if (found === undefined) throw new LightError('UNKNOWN_HEIGHT', `no validator set is known for height ${height}`)
  return found
}

/**
 * Checks that `sh` is a header of network `networkId` voted on by `set` and finalised by it: the
 * header names the set's hash, and the commit is for this header with more than 2/3 of the
 * set's power. Returns the signing power. Throws {@link LightError}.
 */
export function verifySignedHeader(sh: SignedHeader, set: ValidatorSet, networkId: number, crypto: CryptoProvider = nobleCrypto): number {
  const h = sh.header
  if (h.networkId !== networkId) throw new LightError('WRONG_NETWORK', `header ${h.height} is for network ${h.networkId}, not ${networkId}`)
  if (!bytesEqual(h.validatorsHash, validatorSetHash(set))) {
    throw new LightError('WRONG_SET', `header ${h.height} is not voted on by the validator set in force at that height`)
  }
  try {
    return verifyCommit(sh.commit, { networkId, height: h.height, blockHash: blockHash(h) }, set, crypto)
  } catch (cause) {
    throw new LightError('BAD_COMMIT', `header ${h.height} is not committed by the set in force: ${(cause as Error).message}`, { cause })
  }
}

/**
 * Follows validator-set changes from the pinned genesis set: each change must come after the
 * previous one, be signed by the set in force at its header's height, and name the new set's
 * hash as `nextValidatorsHash`. Returns every set with the height it votes from, genesis first.
 */
export function followValidatorSets(
  genesis: { readonly networkId: number; readonly validators: ValidatorSet },
  changes: readonly ValidatorSetChange[],
  crypto: CryptoProvider = nobleCrypto,
): SetInForce[] {
  return extendValidatorSets([{ from: 1, set: genesis.validators }], genesis.networkId, changes, crypto)
}

/**
 * {@link followValidatorSets} from sets already verified (a light client's stored sets): returns
 * `sets` followed by the sets the later `changes` bring in. `sets` is not modified.
 */
export function extendValidatorSets(
  sets: readonly SetInForce[],
  networkId: number,
  changes: readonly ValidatorSetChange[],
  crypto: CryptoProvider = nobleCrypto,
): SetInForce[] {
  const out = [...sets]
  for (const c of changes) {
    const h = c.signed.header
    const last = out[out.length - 1]
    if (last === undefined) throw new LightError('UNKNOWN_HEIGHT', 'no validator set to follow changes from')
    if (h.height < last.from) {
      throw new LightError('OUT_OF_ORDER', `a set change announced at height ${h.height} comes before the set in force from ${last.from}`)
    }
    verifySignedHeader(c.signed, last.set, networkId, crypto)
    if (bytesEqual(h.nextValidatorsHash, h.validatorsHash)) {
      throw new LightError('NOT_A_CHANGE', `header ${h.height} announces no validator-set change`)
    }
    if (!bytesEqual(h.nextValidatorsHash, validatorSetHash(c.next))) {
      throw new LightError('WRONG_NEXT_SET', `the set given for height ${h.height + 1} is not the one header ${h.height} announces`)
    }
    out.push({ from: h.height + 1, set: c.next })
  }
  return out
}

/**
 * Checks that `child` directly extends `parent`: the next height, `prevHash` is the parent's
 * hash, and it is voted on by the set the parent announced. Throws {@link LightError}
 * `BROKEN_LINK`.
 */
export function checkHeaderLink(parent: BlockHeader, child: BlockHeader): void {
  if (child.height !== parent.height + 1) {
    throw new LightError('BROKEN_LINK', `header ${child.height} does not follow header ${parent.height}`)
  }
  if (!bytesEqual(child.prevHash, blockHash(parent))) {
    throw new LightError('BROKEN_LINK', `header ${child.height} does not name header ${parent.height} as its parent`)
  }
  if (!bytesEqual(child.validatorsHash, parent.nextValidatorsHash)) {
    throw new LightError('BROKEN_LINK', `header ${child.height} is not voted on by the set header ${parent.height} announced`)
  }
}

/**
 * Verifies consecutive signed headers: each against the set in force at its height, each linked
 * to the one before (and the first to `parent`, when given). Returns the headers.
 */
export function verifyHeaderChain(
  sets: readonly SetInForce[],
  networkId: number,
  headers: readonly SignedHeader[],
  parent?: BlockHeader,
  crypto: CryptoProvider = nobleCrypto,
): readonly SignedHeader[] {
  let prev = parent
  for (const sh of headers) {
    if (prev !== undefined) checkHeaderLink(prev, sh.header)
    verifySignedHeader(sh, setAt(sets, sh.header.height), networkId, crypto)
    prev = sh.header
  }
  return headers
}

/**
 * Checks a state value (or its absence) against a verified header: `result` must be the block
 * result `header` carries as `resultRoot` (the state after block `height − 1`), and `proof` must
 * prove `value` for `key` against its state root. Throws {@link LightError} `WRONG_RESULT` or
 * `BAD_PROOF`.
 */
export function verifyStateAgainstHeader(
  header: BlockHeader,
  key: Uint8Array,
  answer: { readonly result: BlockResult; readonly value: Uint8Array | undefined; readonly proof: StateProof },
): void {
  if (!bytesEqual(blockResultHash(answer.result), header.resultRoot)) {
    throw new LightError('WRONG_RESULT', `the block result given is not the one header ${header.height} commits to`)
  }
  try {
    verifyStateProof(answer.result.stateRoot, key, answer.value, answer.proof)
  } catch (cause) {
    if (!(cause instanceof StateProofError)) throw cause
    throw new LightError('BAD_PROOF', `the state proof does not hold against header ${header.height}: ${cause.message}`, {
      cause,
      details: { proofCode: cause.code },
    })
  }
}

/** Encodes changes for the wire or a certificate file. */
export function encodeSetChanges(changes: readonly ValidatorSetChange[]): Uint8Array {
  return encode(validatorSetChangesCodec, [...changes])
}

/** Decodes changes from the wire or a certificate file (throws DecodeError). */
export function decodeSetChanges(bytes: Uint8Array): ValidatorSetChange[] {
  return decode(validatorSetChangesCodec, bytes)
}
