/**
 * The state module's public surface: the {@link KVStore} persistence seam and its in-memory twin,
 * the authenticated {@link StateTree}, and pure proof verification for light clients. Node
 * internals (records, binary-string helpers, the tree's hashing over strings) stay private.
 */

export { binaryStringToBytes } from './binary.js'
export { StateProofError, type StateProofErrorCode, StateTreeError, type StateTreeErrorCode } from './errors.js'
export { defaultStateHasher, type Sha256, StateHasher } from './hasher.js'
export { type IterateOptions, type KVStore, prefixRange, prefixUpperBound, type WriteOp } from './kv-store.js'
export { checkKVStoreContract } from './kv-store-contract.js'
export { MemoryKVStore } from './memory-store.js'
export {
  decodeStateProof,
  encodeStateProof,
  type ForeignLeaf,
  isValidStateProof,
  MAX_PROOF_DEPTH,
  type StateProof,
  type StateProofResult,
  stateProofCodec,
  stateProofSize,
  verifyStateProof,
} from './proof.js'
export { type BinarySha256, fastSha256, jsSha256, jsSha256Binary, useSha256Backend } from './sha256.js'
export {
  DEFAULT_STATE_NAMESPACE,
  EMPTY_STATE_ROOT,
  MAX_STATE_KEY_LENGTH,
  MAX_STATE_VALUE_LENGTH,
  type StateCommit,
  type StateSource,
  StateTree,
  type StateTreeOptions,
} from './state-tree.js'
