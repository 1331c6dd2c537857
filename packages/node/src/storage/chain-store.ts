/**
 * The chain's blocks on disk: blocks and their headers by height, heights by block hash,
 * transactions by hash, receipts, block results, commit certificates and the head. Everything of one committed block — the block, its
 * commit, its receipts and result, its transaction index, the state it produced and the new head —
 * goes into ONE atomic batch ({@link ChainStore.commitBlockOps}), so a kill -9 at any instant leaves
 * either the whole block or none of it, and a restart resumes from a consistent head.
 *
 * Every key starts with the chain's namespace (`chain id ‖ 0x00`), so one node can serve several
 * chains (loopchain's "channels") from one database.
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
  Reader,
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

const K_HEAD = 0x48 // 'H'
const K_BLOCK = 0x62 // 'b' ‖ height(8)
/** The block's header alone, next to the block (since 2026-12-05; blocks stored before have none). */
const K_HEADER = 0x65 // 'e' ‖ height(8)
const K_HASH = 0x68 // 'h' ‖ block hash → height
const K_TX = 0x74 // 't' ‖ tx hash → (height, index)
const K_RECEIPTS = 0x72 // 'r' ‖ height(8)
const K_RESULT = 0x78 // 'x' ‖ height(8)
const K_COMMIT = 0x63 // 'c' ‖ height(8)
const K_VALSET = 0x76 // 'v' ‖ first height(8) → the validator set in force from that height
/** The genesis hash the database was made for. */
const K_GENESIS = 0x47 // 'G'
/** Where the state tree of this chain keeps its nodes. */
const K_STATE = 0x73 // 's'
/** The storage format the database was written in (absent: format 1). */
const K_FORMAT = 0x46 // 'F'

/**
 * The format this version writes and reads. 3 (2026-12-05): contracts' host calls cost more steps,
 * so receipts of SCORE calls (and the result roots over them) differ from those written before.
 * 2 (2026-12-04): member records carry a node key, so state written before decodes differently
 * and has other state roots. 1: databases without a mark.
 */
export const STORE_FORMAT = 3

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

  constructor(
    readonly store: KVStore,
    readonly chainId: string,
  ) {
    this.prefix = concatBytes(utf8(chainId), Uint8Array.of(0))
  }

  private key(kind: number, ...parts: Uint8Array[]): Uint8Array {
    return concatBytes(this.prefix, Uint8Array.of(kind), ...parts)
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

  /** The last committed block, or undefined for a chain with no block yet. */
  async head(): Promise<ChainHead | undefined> {
    const raw = await this.store.get(this.key(K_HEAD))
    return raw === undefined ? undefined : decode(headCodec, raw)
  }

  /** The block at `height`. */
  async blockAt(height: number): Promise<Block | undefined> {
    const raw = await this.store.get(this.key(K_BLOCK, be64(height)))
    return raw === undefined ? undefined : decode(blockCodec, raw)
  }

  /**
   * The header of the block at `height`. Light clients ask for many headers (256 a request), and
   * reading each from its whole block read up to `maxBlockBytes` from disk for ~300 bytes: the
   * header has its own record. A block stored before that record existed is read from the front
   * of the block (the header is a block's first field) without decoding its transactions.
   */
  async headerAt(height: number): Promise<BlockHeader | undefined> {
    const raw = await this.store.get(this.key(K_HEADER, be64(height)))
    if (raw !== undefined) return decode(blockHeaderCodec, raw)
    const block = await this.store.get(this.key(K_BLOCK, be64(height)))
    return block === undefined ? undefined : blockHeaderCodec.read(new Reader(block))
  }

  /** The height of the block with hash `hash`. */
  async heightOf(hash: Uint8Array): Promise<number | undefined> {
    const raw = await this.store.get(this.key(K_HASH, hash))
    return raw === undefined ? undefined : decode(uvarint, raw)
  }

  /** The commit certificate of the block at `height`. */
  async commitAt(height: number): Promise<Commit | undefined> {
    const raw = await this.store.get(this.key(K_COMMIT, be64(height)))
    return raw === undefined ? undefined : decode(commitCodec, raw)
  }

  /** The receipts of the block at `height`, in transaction order. */
  async receiptsAt(height: number): Promise<Receipt[] | undefined> {
    const raw = await this.store.get(this.key(K_RECEIPTS, be64(height)))
    return raw === undefined ? undefined : decode(receiptsCodec, raw)
  }

  /** The result of executing the block at `height`. */
  async resultAt(height: number): Promise<BlockResult | undefined> {
    const raw = await this.store.get(this.key(K_RESULT, be64(height)))
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
      { type: 'put', key: this.key(K_BLOCK, be64(h)), value: encode(blockCodec, block) },
      { type: 'put', key: this.key(K_HEADER, be64(h)), value: encode(blockHeaderCodec, block.header) },
      { type: 'put', key: this.key(K_HASH, hash), value: encode(uvarint, h) },
      { type: 'put', key: this.key(K_COMMIT, be64(h)), value: encode(commitCodec, commit) },
      { type: 'put', key: this.key(K_RECEIPTS, be64(h)), value: encode(receiptsCodec, [...receipts]) },
      { type: 'put', key: this.key(K_RESULT, be64(h)), value: encode(blockResultCodec, result) },
    ]
    // A set changed by block K votes from K + 2 (core docs/governance.md).
    if (nextValidators) ops.push({ type: 'put', key: this.key(K_VALSET, be64(h + 2)), value: encode(validatorSetCodec, nextValidators) })
    block.transactions.forEach((tx, index) => {
      ops.push({ type: 'put', key: this.key(K_TX, transactionHash(tx.body)), value: encode(txLocationCodec, { height: h, index }) })
    })
    // The head goes last in the list; the batch is atomic anyway, but readers of a log see it last.
    ops.push({ type: 'put', key: this.key(K_HEAD), value: encode(headCodec, { height: h, hash }) })
    return ops
  }

  /** Writes a committed block and everything that goes with it atomically. */
  async commitBlock(
    block: Block,
    commit: Commit,
    receipts: readonly Receipt[],
    result: BlockResult,
    stateOps: readonly WriteOp[],
    nextValidators?: ValidatorSet,
  ): Promise<void> {
    const head = await this.head()
    const expected = head === undefined ? 1 : head.height + 1
    if (block.header.height !== expected) {
      throw new RangeError(`block ${block.header.height} does not follow the head ${head?.height ?? 0}`)
    }
    await this.store.write(this.commitBlockOps(block, commit, receipts, result, stateOps, nextValidators))
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

  /** Blocks from `from` to `to` inclusive, in height order, as stored (for sync by range). */
  async *blocks(from: number, to: number): AsyncIterable<Block> {
    for await (const [, v] of this.store.iterate({ gte: this.key(K_BLOCK, be64(from)), lt: this.key(K_BLOCK, be64(to + 1)) })) {
      yield decode(blockCodec, v)
    }
  }
}
