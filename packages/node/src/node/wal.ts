/**
 * The consensus write-ahead log on the node's store. The state machine emits `wal-write` before
 * any message that depends on it; the driver appends the entry here — one synced LevelDB write —
 * and only then carries out the next output, so a validator killed at any instant restarts
 * knowing every vote, proposal and lock it ever sent, and cannot sign a conflicting one.
 */
import {
  bytes,
  type Codec,
  concatBytes,
  DecodeError,
  decode,
  encode,
  fixedBytes,
  type KVStore,
  list,
  MAX_PROPOSAL_BLOCK_BYTES,
  prefixRange,
  signedProposalCodec,
  signedVoteCodec,
  struct,
  utf8,
  uvarint,
  type WalEntry,
} from '@loopchain/core'
import { be64 } from '../storage/chain-store.js'

const lockCodec = struct('WalLock', {
  height: uvarint,
  round: uvarint,
  blockHash: fixedBytes(32),
  block: bytes(MAX_PROPOSAL_BLOCK_BYTES),
  polka: list(signedVoteCodec, 4096),
})

/** Codec of a WAL entry: a tag byte (1 vote, 2 proposal, 3 lock) and the entry. */
export const walEntryCodec: Codec<WalEntry> = {
  name: 'WalEntry',
  minSize: 1,
  write(w, e) {
    if (e.kind === 'vote') {
      w.u8(1)
      signedVoteCodec.write(w, e.vote)
    } else if (e.kind === 'proposal') {
      w.u8(2)
      signedProposalCodec.write(w, e.proposal)
    } else {
      w.u8(3)
      lockCodec.write(w, { height: e.height, round: e.round, blockHash: e.blockHash, block: e.block, polka: [...e.polka] })
    }
  },
  read(r) {
    const tag = r.u8()
    if (tag === 1) return { kind: 'vote', vote: signedVoteCodec.read(r) }
    if (tag === 2) return { kind: 'proposal', proposal: signedProposalCodec.read(r) }
    if (tag === 3) return { kind: 'lock', ...lockCodec.read(r) }
    throw new DecodeError('INVALID_TAG', `WAL entry has tag ${tag}`)
  },
}

function entryHeight(e: WalEntry): number {
  return e.kind === 'vote' ? e.vote.vote.height : e.kind === 'proposal' ? e.proposal.proposal.height : e.height
}

/** The WAL of one chain in a store. */
export class ConsensusWal {
  private readonly prefix: Uint8Array
  private seq = 0
  /** No entry below this height is left: truncation starts here, not at the deleted keys below. */
  private floor = 0

  constructor(
    private readonly store: KVStore,
    chainId: string,
  ) {
    this.prefix = concatBytes(utf8(chainId), Uint8Array.of(0, 0x77)) // 'w'
  }

  /** Every entry kept, oldest first (the machine restores from these). */
  async load(): Promise<WalEntry[]> {
    const out: WalEntry[] = []
    for await (const [k, v] of this.store.iterate(prefixRange(this.prefix))) {
      out.push(decode(walEntryCodec, v))
      this.seq = Math.max(this.seq, Number(new DataView(k.buffer, k.byteOffset + k.length - 8).getBigUint64(0)) + 1)
    }
    return out
  }

  /** Appends an entry durably (the store syncs each write). */
  async append(e: WalEntry): Promise<void> {
    const height = entryHeight(e)
    if (height < this.floor) this.floor = height
    const key = concatBytes(this.prefix, be64(height), be64(this.seq++))
    await this.store.write([{ type: 'put', key, value: encode(walEntryCodec, e) }])
  }

  /** Drops entries of heights below `height` (they are settled by committed blocks). */
  async truncateBelow(height: number): Promise<void> {
    if (height <= this.floor) return
    // Starting at the floor keeps LevelDB from stepping over the tombstones of every height
    // already truncated (until a compaction drops them) at each commit.
    const ops: { type: 'del'; key: Uint8Array }[] = []
    const range = { gte: concatBytes(this.prefix, be64(this.floor)), lt: concatBytes(this.prefix, be64(height)) }
    for await (const [k] of this.store.iterate(range)) ops.push({ type: 'del', key: k })
    if (ops.length) await this.store.write(ops)
    this.floor = height
  }
}
