/**
 * The chain's blocks on disk: blocks and their headers by height, heights by block hash,
 * transactions by hash, receipts, block results, commit certificates and the head. Everything of
 * one committed block — the block, its commit, its receipts and result, its transaction index, the
 * state it produced and the new head — goes into ONE write ({@link ChainStore.commitBlockOps}), so
 * a kill -9 at any instant leaves either the whole block or none of it, and a restart resumes from
 * a consistent head.
 *
 * Two kinds of key. What a block adds at its height and never changes — the block, its header,
 * commit, receipts and result, and the state-tree nodes its execution wrote — is keyed
 * `0x01 ‖ chain id ‖ 0x00 ‖ height (8 bytes) ‖ …` ({@link HEIGHT_KEYED}): it sorts by height, so
 * LevelDB never merges it into older records. On a full node it lives in a database of its own
 * (`SplitKVStore`), written before the rest of the block's write. Everything else — the indexes by
 * hash, the state's flat values, the validator-set changes, the head — is keyed
 * `chain id ‖ 0x00 ‖ kind ‖ …`, and the head in that second part is the commit point: records
 * keyed by a height above the head are not part of the chain (a crash came between the two parts),
 * are never read, and are written again when that block commits.
 *
 * Every key carries the chain id, so one node can serve several chains (loopchain's "channels")
 * from one database.
 */
import {
  type Block,
  type BlockHeader,
  type BlockResult,
  blockCodec,
  blockHash,
  blockHeaderCodec,
  blockResultCodec,
  type Commit,
  commitCodec,
  concatBytes,
  decode,
  encode,
  fixedBytes,
  type KVStore,
  list,
  type Receipt,
  receiptCodec,
  struct,
  transactionHash,
  utf8,
  uvarint,
  type ValidatorSet,
  validatorSetCodec,
  type WriteOp,
} from '@loopchain/core'
import { HEIGHT_KEYED } from './split-store.js'

const K_HEAD = 0x48 // 'H'
// Keyed by height: 0x01 ‖ chain id ‖ 0x00 ‖ height(8) ‖ kind.
const K_BLOCK = 0x62 // 'b'
/** The block's header alone, next to the block. */
const K_HEADER = 0x65 // 'e'
const K_RECEIPTS = 0x72 // 'r'
const K_RESULT = 0x78 // 'x'
const K_COMMIT = 0x63 // 'c'
// Keyed by the chain id: chain id ‖ 0x00 ‖ kind ‖ ….
const K_HASH = 0x68 // 'h' ‖ block hash → height
const K_TX = 0x74 // 't' ‖ tx hash → (height, index)
const K_VALSET = 0x76 // 'v' ‖ first height(8) → the validator set in force from that height
/** The genesis hash the database was made for. */
const K_GENESIS = 0x47 // 'G'
/** Where the state tree of this chain keeps its nodes. */
const K_STATE = 0x73 // 's'
/** The storage format the database was written in (absent: format 1). */
const K_FORMAT = 0x46 // 'F'

/**
 * The format this version writes and reads. 4 (2026-12-06): blocks and state-tree nodes keyed by
 * height (in a database of their own on a full node), state-tree nodes under their version and
 * branches naming their children's. 3 (2026-12-05): contracts' host calls cost more steps,
 * so receipts of SCORE calls (and the result roots over them) differ from those written before.
 * 2 (2026-12-04): member records carry a node key, so state written before decodes differently
 * and has other state roots. 1: databases without a mark.
 */
export const STORE_FORMAT = 4

const receiptsCodec = list(receiptCodec, 100_000)
const headCodec = struct('Head', { height: uvarint, hash: fixedBytes(32) })
const txLocationCodec = struct('TxLocation', { height: uvarint, index: uvarint })

/** The last committed block. */
export interface ChainHead {
  readonly height: number
  readonly hash: Uint8Array
}

/** Where a transaction is: the block height and its index in the block. */
export interface TxLocation {
  readonly height: number
  readonly index: number
}

/** A height as 8 big-endian bytes: LevelDB's byte order is then height order (range scans for sync). */
export function be64(n: number): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, BigInt(n))
  return out
}

/** Blocks and their companions for one chain in a {@link KVStore}. */
export class ChainStore {
  private readonly prefix: Uint8Array
  private readonly heightPrefix: Uint8Array

  constructor(
    readonly store: KVStore,
    readonly chainId: string,
  ) {
    this.prefix = concatBytes(utf8(chainId), Uint8Array.of(0))
    this.heightPrefix = concatBytes(Uint8Array.of(HEIGHT_KEYED), this.prefix)
  }

  private key(kind: number, ...parts: Uint8Array[]): Uint8Array {
    return concatBytes(this.prefix, Uint8Array.of(kind), ...parts)
  }

  /** The key of the block's record of `kind` at `height`. */
  private atHeight(height: number, kind: number): Uint8Array {
    return concatBytes(this.heightPrefix, be64(height), Uint8Array.of(kind))
  }

  /** Where the node records which genesis this database belongs to. */
  get genesisKey(): Uint8Array {
    return this.key(K_GENESIS)
  }

  /** Where the node records the storage format it wrote the database in ({@link STORE_FORMAT}). */
  get formatKey(): Uint8Array {
    return this.key(K_FORMAT)
  }

  /** The namespace the chain's state tree uses in the same store. */
  get stateNamespace(): Uint8Array {
    return this.key(K_STATE)
  }

  /**
   * Where the state tree keeps its nodes (`StateTreeOptions.nodePrefix`): among the records keyed
   * by height, under the version the executor commits them at, the block's height.
   */
  get stateNodePrefix(): Uint8Array {
    return this.heightPrefix
  }

  /** The last committed block, or undefined for a chain with no block yet. */
  async head(): Promise<ChainHead | undefined> {
    const raw = await this.store.get(this.key(K_HEAD))
    return raw === undefined ? undefined : decode(headCodec, raw)
  }

  /** The block at `height`. */
  async blockAt(height: number): Promise<Block | undefined> {
    const raw = await this.store.get(this.atHeight(height, K_BLOCK))
    return raw === undefined ? undefined : decode(blockCodec, raw)
  }

  /**
   * The header of the block at `height`. Light clients ask for many headers (256 a request), and
   * reading each from its whole block read up to `maxBlockBytes` from disk for ~300 bytes: the
   * header has its own record.
   */
  async headerAt(height: number): Promise<BlockHeader | undefined> {
    const raw = await this.store.get(this.atHeight(height, K_HEADER))
    return raw === undefined ? undefined : decode(blockHeaderCodec, raw)
  }

  /** The height of the block with hash `hash`. */
  async heightOf(hash: Uint8Array): Promise<number | undefined> {
    const raw = await this.store.get(this.key(K_HASH, hash))
    return raw === undefined ? undefined : decode(uvarint, raw)
  }

  /** The commit certificate of the block at `height`. */
  async commitAt(height: number): Promise<Commit | undefined> {
    const raw = await this.store.get(this.atHeight(height, K_COMMIT))
    return raw === undefined ? undefined : decode(commitCodec, raw)
  }

  /** The receipts of the block at `height`, in transaction order. */
  async receiptsAt(height: number): Promise<Receipt[] | undefined> {
    const raw = await this.store.get(this.atHeight(height, K_RECEIPTS))
    return raw === undefined ? undefined : decode(receiptsCodec, raw)
  }

  /** The result of executing the block at `height`. */
  async resultAt(height: number): Promise<BlockResult | undefined> {
    const raw = await this.store.get(this.atHeight(height, K_RESULT))
    return raw === undefined ? undefined : decode(blockResultCodec, raw)
  }

  /** Where the transaction with hash `txHash` was committed. */
  async locate(txHash: Uint8Array): Promise<TxLocation | undefined> {
    const raw = await this.store.get(this.key(K_TX, txHash))
    return raw === undefined ? undefined : decode(txLocationCodec, raw)
  }

  /**
   * The write ops of one committed block: the block, its commit certificate, its receipts and
   * result, its transactions' index, the state ops of its execution, and the new head. Write them
   * in one `store.write` (see {@link commitBlock}).
   */
  commitBlockOps(
    block: Block,
    commit: Commit,
    receipts: readonly Receipt[],
    result: BlockResult,
    stateOps: readonly WriteOp[],
    nextValidators?: ValidatorSet,
  ): WriteOp[] {
    const h = block.header.height
    const hash = blockHash(block.header)
    const ops: WriteOp[] = [
      ...stateOps,
      { type: 'put', key: this.atHeight(h, K_BLOCK), value: encode(blockCodec, block) },
      { type: 'put', key: this.atHeight(h, K_HEADER), value: encode(blockHeaderCodec, block.header) },
      { type: 'put', key: this.key(K_HASH, hash), value: encode(uvarint, h) },
      { type: 'put', key: this.atHeight(h, K_COMMIT), value: encode(commitCodec, commit) },
      { type: 'put', key: this.atHeight(h, K_RECEIPTS), value: encode(receiptsCodec, [...receipts]) },
      { type: 'put', key: this.atHeight(h, K_RESULT), value: encode(blockResultCodec, result) },
    ]
    // A set changed by block K votes from K + 2 (core docs/governance.md).
    if (nextValidators) ops.push({ type: 'put', key: this.key(K_VALSET, be64(h + 2)), value: encode(validatorSetCodec, nextValidators) })
    block.transactions.forEach((tx, index) => {
      ops.push({ type: 'put', key: this.key(K_TX, transactionHash(tx.body)), value: encode(txLocationCodec, { height: h, index }) })
    })
    // The head goes last in the list: with the other keys by chain id it is written after the records
    // keyed by height (SplitKVStore), and it is what makes the block part of the chain.
    ops.push({ type: 'put', key: this.key(K_HEAD), value: encode(headCodec, { height: h, hash }) })
    return ops
  }

  /**
   * Writes a committed block and everything that goes with it, the head last (see the file
   * comment), and in the same write `settled`: records the block makes obsolete (deletions).
   */
  async commitBlock(
    block: Block,
    commit: Commit,
    receipts: readonly Receipt[],
    result: BlockResult,
    stateOps: readonly WriteOp[],
    nextValidators?: ValidatorSet,
    settled: readonly WriteOp[] = [],
  ): Promise<void> {
    const head = await this.head()
    const expected = head === undefined ? 1 : head.height + 1
    if (block.header.height !== expected) {
      throw new RangeError(`block ${block.header.height} does not follow the head ${head?.height ?? 0}`)
    }
    const ops = this.commitBlockOps(block, commit, receipts, result, stateOps, nextValidators)
    // What the block settles (the consensus WAL's entries below it) goes in the same write, before the head.
    if (settled.length > 0) ops.splice(ops.length - 1, 0, ...settled)
    await this.store.write(ops)
  }

  /** Every validator-set change stored, in height order: the set in force from `from` on. */
  async validatorSetChanges(): Promise<{ from: number; set: ValidatorSet }[]> {
    const out: { from: number; set: ValidatorSet }[] = []
    const lo = this.key(K_VALSET)
    const hi = this.key(K_VALSET + 1)
    for await (const [k, v] of this.store.iterate({ gte: lo, lt: hi })) {
      const from = Number(new DataView(k.buffer, k.byteOffset + k.length - 8, 8).getBigUint64(0))
      out.push({ from, set: decode(validatorSetCodec, v) })
    }
    return out
  }

  /**
   * Blocks from `from` to `to` inclusive, in height order, as stored (for sync by range); it ends
   * at the head and at the first height with no block. One read a height: a scan of the heights'
   * range would also walk every state-tree node written there.
   */
  async *blocks(from: number, to: number): AsyncIterable<Block> {
    const last = Math.min(to, (await this.head())?.height ?? 0)
    for (let h = from; h <= last; h++) {
      const block = await this.blockAt(h)
      if (block === undefined) return
      yield block
    }
  }
}
