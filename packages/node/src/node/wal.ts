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
  type WriteOp,
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

/**
 * The WAL of one chain in a store. It learns the entries already there from {@link load}, which
 * {@link append} and {@link truncateBelow} run first when nobody has (an append that did not know
 * them could overwrite one); {@link trimOps}, which cannot wait for it, refuses until then.
 */
export class ConsensusWal {
  private readonly prefix: Uint8Array
  private seq = 0
  private loaded = false
  private loading: Promise<unknown> | undefined
  /** The key and height of every entry in the store, oldest first: what to delete is known without a scan. */
  private kept: { height: number; key: Uint8Array }[] = []

  constructor(
    private readonly store: KVStore,
    chainId: string,
  ) {
    this.prefix = concatBytes(utf8(chainId), Uint8Array.of(0, 0x77)) // 'w'
  }

  /** Every entry kept, oldest first (the machine restores from these). */
  async load(): Promise<WalEntry[]> {
    const out: WalEntry[] = []
    const kept: { height: number; key: Uint8Array }[] = []
    for await (const [k, v] of this.store.iterate(prefixRange(this.prefix))) {
      out.push(decode(walEntryCodec, v))
      const view = new DataView(k.buffer, k.byteOffset, k.length)
      kept.push({ height: Number(view.getBigUint64(this.prefix.length)), key: k.slice() })
      this.seq = Math.max(this.seq, Number(view.getBigUint64(k.length - 8)) + 1)
    }
    this.kept = kept
    this.loaded = true
    return out
  }

  /** One {@link load} for the appends and truncations that find the WAL not loaded, however many come at once. */
  private loadOnce(): Promise<unknown> {
    // A load that failed (a read error) is not kept: the next append tries again.
    this.loading ??= this.load().catch((e: unknown) => {
      this.loading = undefined
      throw e
    })
    return this.loading
  }

  /** Appends an entry durably (the store syncs each write). */
  async append(e: WalEntry): Promise<void> {
    if (!this.loaded) await this.loadOnce()
    const height = entryHeight(e)
    const key = concatBytes(this.prefix, be64(height), be64(this.seq++))
    await this.store.write([{ type: 'put', key, value: encode(walEntryCodec, e) }])
    this.kept.push({ height, key })
  }

  /**
   * The deletions of the entries of heights below `height`, which the block at `height` settles:
   * for the write that commits that block to carry, so that the trim is part of it, not a write of
   * its own. Once that write is done, {@link trimmed} forgets them.
   */
  trimOps(height: number): WriteOp[] {
    if (!this.loaded) throw new Error('ConsensusWal: load() the WAL before trimming it (the entries already stored would stay)')
    return this.kept.filter((e) => e.height < height).map((e) => ({ type: 'del', key: e.key }))
  }

  /** The deletions {@link trimOps} gave were written: those entries are gone. */
  trimmed(ops: readonly WriteOp[]): void {
    if (ops.length === 0) return
    const gone = new Set(ops.map((op) => op.key))
    this.kept = this.kept.filter((e) => !gone.has(e.key))
  }

  /** Drops entries of heights below `height` (they are settled by committed blocks) in a write of its own. */
  async truncateBelow(height: number): Promise<void> {
    if (!this.loaded) await this.loadOnce()
    const ops = this.trimOps(height)
    if (ops.length > 0) await this.store.write(ops)
    this.trimmed(ops)
  }
}
