/**
 * The full node's heart: it drives the LFT consensus machine with real timers and the WAL, builds
 * proposals from the mempool, validates peers' proposals, executes committed blocks through the
 * SCORE VM and stores each block with its state in one write (`SplitKVStore`: the head lands
 * last). The network is a seam ({@link NodeNetwork}); a single validator runs without one.
 *
 * Order of work for a committed block: execute → write block, commit, receipts, result, state
 * and head in one write → prune the mempool → tell listeners → start the next height when the
 * production policy says a block is due (transactions waiting, the minimum interval passed, or
 * the empty-block interval, if configured).
 */
import {
  type AccountState,
  type Address,
  accountAddress,
  addNewest,
  admitsNode,
  applyGenesis,
  type Block,
  type BlockHeader,
  type BlockResult,
  blockCertificates,
  blockCodec,
  blockHash,
  blockLimits,
  blockProductionDue,
  blockResultHash,
  bytesEqual,
  type Commit,
  type Consensus,
  type ConsensusMessage,
  type ConsensusOutput,
  type ContractEngine,
  type CryptoProvider,
  certificateOfTransaction,
  checkBlockBody,
  checkBlockCertSignatures,
  checkBlockStructure,
  checkTransaction,
  commitHash,
  concatBytes,
  consensusMessageCodec,
  createConsensus,
  DEFAULT_TIMEOUTS,
  DecodeError,
  decode,
  decodeBlock,
  encode,
  executeBlock,
  fastVoteSignBytes,
  type Genesis,
  GOVERNANCE_ADDRESS,
  genesisHash,
  genesisHeader,
  getAccount,
  isQuorum,
  type KVStore,
  keyPairFromSecret,
  LoopchainError,
  MEMBER_LIST_KEY,
  memberKey,
  memberListCodec,
  memberRecordCodec,
  memoByIdentity,
  messageHeight,
  peekAccount,
  prefixUpperBound,
  proposalSignBytes,
  type Receipt,
  type SignedHeader,
  type StateSource,
  StateTree,
  setNewest,
  signBlockCertificates,
  signedHeaderCodec,
  stateResult,
  type TimeoutConfig,
  type Transaction,
  TxError,
  toHex,
  totalPower,
  transactionCodec,
  transactionHash,
  transactionsRoot,
  utf8,
  uvarint,
  type Validator,
  type ValidatorSet,
  validatorSetHash,
  verifyCommit,
  verifySignedHeader,
} from '@loopchain/core'
import { STALL_ENDED_MESSAGE } from '../log-messages.js'
import { Mempool, MempoolError, type MempoolOptions, readNonces } from '../mempool.js'
import { bytesKey, installNativeSha256, nativeCrypto, type OneOffKey, oneOffKey } from '../native-crypto.js'
import { decodeConsensusMessage } from '../p2p/consensus-gossip.js'
import { type NodeLogger, silentLogger } from '../p2p/logger.js'
import { ChainStore, STORE_FORMAT } from '../storage/chain-store.js'
import type { LevelStoreOptions, StoreSettings, StoreWriteStats } from '../storage/level-store.js'
import { HEIGHT_DB_DIR, SplitKVStore } from '../storage/split-store.js'
import { ConsensusWal } from './wal.js'
import { Watchtower } from './watchtower.js'

/** How the node reaches its peers. Messages are already encoded. */
export interface NodeNetwork {
  /** Sends a consensus message (proposal, vote, decision) to the validators. */
  publishConsensus(bytes: Uint8Array): void
  /** Announces a committed header: an encoded `SignedHeader` (the header and its commit; light clients follow these). */
  publishHeader?(bytes: Uint8Array): void
  /** Spreads a transaction that a client submitted to this node. */
  publishTransaction?(bytes: Uint8Array): void
  /**
   * Fetches committed blocks from `height` on (from `peer` when known) and imports them. `poll`:
   * the node is only checking that it missed nothing while the chain is idle (no cause to think it
   * is behind), so one peer in turn is enough.
   */
  requestSync?(peer: string | undefined, height: number, poll?: boolean): void
  /**
   * A peer gossiped a transaction that cannot be valid whatever the clock (a bad signature,
   * undecodable bytes): a member's node only passes on what it pooled, so this is the peer's fault.
   */
  reportPeer?(peer: string, code: string): void
  /** How many member institutions' nodes this node is connected to (for the warning of a height without a block). */
  memberConnections?(): number
  /** Whether this node has a connection to the node whose key (hex) this is. */
  connectedToNode?(nodeKeyHex: string): boolean
}

/** What {@link FullNode.consensusProgress} tells of the height in progress. */
export interface ConsensusProgress {
  readonly height: number
  readonly round: number
  /** The machine's step; `starting` until it has taken the height up. */
  readonly step: string
  /** Milliseconds since this node started the height. */
  readonly ms: number
  /**
   * Whether the height has run past the time it takes with a quorum at work ({@link stallWarningMs}),
   * while this node is not behind its peers and the height is the network's (this node votes in
   * it, or a validator has sent something for it; an observer's own pooled transaction alone
   * starts a height nobody else works on).
   */
  readonly stalled: boolean
  /** Validators whose signed votes or proposals for this height this node holds, its own included (the set's order). */
  readonly heard: readonly Address[]
  /** The set's other validators: nothing from them for this height. */
  readonly silent: readonly Address[]
  /** The member ids of {@link silent}, in its order ("(not a member)" for a validator without a member record). */
  readonly silentMembers: readonly string[]
  /**
   * Validators (not this node's own) whose member node, admitted by its node key, this node has no
   * connection to; absent without a network that can tell. A validator may have voted before its
   * node stopped: this is the list that shows it.
   */
  readonly notConnected?: readonly Address[]
  /** The member ids of {@link notConnected}, in its order. */
  readonly notConnectedMembers?: readonly string[]
  readonly powerHeard: number
  readonly totalPower: number
}

/** Options of {@link FullNode.open}. */
export interface FullNodeOptions {
  /** Directory of the node's LevelDB database. */
  readonly dataDir: string
  readonly genesis: Genesis
  /** The validator's 32-byte secret key; absent for an observer. */
  readonly validatorSecret?: Uint8Array
  /** The contract engine (calls and deploys need it). */
  readonly engine?: ContractEngine
  readonly logger?: NodeLogger
  /** Overrides of the consensus timeouts (by default derived from the genesis parameters). */
  readonly timeouts?: Partial<TimeoutConfig>
  /** The wall clock in milliseconds (injectable for tests). */
  readonly clock?: () => number
  /**
   * The mempool's limits: transactions (default 20,000), bytes (default 64 MiB) and transactions
   * per sender (default 256; the 64-nonce window caps it at 65). A full pool makes room by fair
   * share (`Mempool.add`).
   */
  readonly mempool?: Pick<MempoolOptions, 'maxTransactions' | 'maxBytes' | 'maxPerSender'>
  /** LevelDB's block cache and memtable sizes for the node's database (see {@link LevelStoreOptions}). */
  readonly storage?: Pick<LevelStoreOptions, 'cacheSize' | 'writeBufferSize'>
  /** Run a watchtower (validators only; default true), optionally holding at most `maxChannels` (default 10,000). */
  readonly watchtower?: boolean | { readonly maxChannels?: number }
  /**
   * While no block commits for this long, the node asks a peer for blocks (block sync; the next
   * peer in turn each time it passes): a node that missed a height's gossip (it connected late, a
   * message was lost) would otherwise stay behind an idle chain until the next block. Default 5 s.
   */
  readonly idleSyncMs?: number
  /**
   * After the first warning that the height in progress has no block, how often it is repeated
   * while it has none. Default {@link STALL_REPEAT_MS} (a minute).
   */
  readonly stallRepeatMs?: number
  /**
   * Senders whose next nonce, and whose right to send freely, the node keeps in memory; past this,
   * the least recently cached go (each then costs a state read again; a commit caches its block's
   * senders anew). Default 100,000.
   */
  readonly cachedSenders?: number
  /**
   * Opens the node's database (default: two LevelDB databases in `dataDir`, see `SplitKVStore`).
   * Tests wrap it to inject faults.
   */
  readonly openStore?: (dataDir: string) => Promise<NodeStore>
  /**
   * Called once when the node stops itself because it cannot go on safely (see
   * {@link FullNode.failure}); a process should exit non-zero, so that its supervisor sees it.
   */
  readonly onHalt?: (error: NodeError) => void
}

/** The node's database: a {@link KVStore} that can be closed. */
export interface NodeStore extends KVStore {
  close(): Promise<void>
  /** What the store wrote since it opened (LevelDB's does), for `/metrics`. */
  writeStats?(): StoreWriteStats
  /** The sizes it was opened with (LevelDB's block cache and memtable), for the startup log. */
  readonly settings?: StoreSettings
}

/** A committed block as listeners see it. */
export interface CommittedBlock {
  readonly block: Block
  readonly hash: Uint8Array
  readonly commit: Commit
  readonly receipts: readonly Receipt[]
  readonly result: BlockResult
}

/** The node's view of the chain tip. */
interface Tip {
  readonly header: BlockHeader
  /** Result of executing the tip block (header 0: the genesis state). */
  readonly result: BlockResult
  /** Commit certificate of the tip block (absent at height 0). */
  readonly commit: Commit | undefined
}

/** A {@link CryptoProvider} that remembers the signatures it found valid (see {@link rememberingCrypto}). */
export interface RememberingCrypto extends CryptoProvider {
  /**
   * The same memory, read only: what is remembered costs no verification, and what this view
   * verifies is not added. For callers whose successes nobody asks about again.
   */
  readonly recallOnly: CryptoProvider
}

/**
 * A crypto provider that remembers the signatures it found valid (a bounded set), so a consensus
 * message checked by the gossip validator before it is forwarded is not verified again when the
 * consensus machine handles it. Only successes are kept: a failure costs its caller every time.
 */
export function rememberingCrypto(base: CryptoProvider, size = 16_384): RememberingCrypto {
  const seen = new Set<string>()
  // Only a 64-byte signature and a 32-byte key are looked up (nothing else can verify), so the
  // boundaries in the key are fixed.
  const verifier =
    (remember: boolean): CryptoProvider['verify'] =>
    (signature, message, publicKey) => {
      const wellFormed =
        signature instanceof Uint8Array && signature.length === 64 && publicKey instanceof Uint8Array && publicKey.length === 32
      if (!wellFormed || !(message instanceof Uint8Array)) return base.verify(signature, message, publicKey)
      const k = bytesKey(signature, publicKey, message)
      if (seen.has(k)) return true
      const ok = base.verify(signature, message, publicKey)
      if (ok && remember) {
        addNewest(seen, k, size)
      }
      return ok
    }
  return {
    ...base,
    name: `${base.name}+memo`,
    verify: verifier(true),
    recallOnly: { ...base, name: `${base.name}+recall`, verify: verifier(false) },
  }
}

/** Transactions that may wait to be checked (see {@link FullNode.submitFromPeer}). */
const MAX_INTAKE = 50_000

/**
 * Whether a gossiped transaction's refusal shows its forwarder at fault: it fails a check that
 * does not depend on the clock or the pool, and a member's node passes on only what it pooled.
 */
function cannotBeHonest(e: unknown): boolean {
  if (e instanceof DecodeError) return true
  return e instanceof TxError && e.code !== 'TIMESTAMP_TOO_OLD' && e.code !== 'TIMESTAMP_IN_FUTURE'
}

/** Gossiped transactions checked per turn of the event loop (see {@link FullNode.submitFromPeer}). */
const SUBMIT_CHUNK = 32
/**
 * Checks under way at once. One whose sender's nonce is not cached waits for a store read and
 * verifies its signature when the read returns: without a bound, thousands of new senders' checks
 * would each start at once and verify in one burst when their reads came back, outside the chunks.
 */
const MAX_CHECKS_UNDER_WAY = 2 * SUBMIT_CHUNK
/** Transaction signatures remembered as valid (a few full blocks' worth). */
const TX_SIGNATURES_REMEMBERED = 20_000
/** Senders whose next nonce, and senders whose permission to transact, a node keeps cached (each). */
const CACHED_SENDERS = 100_000

/**
 * The largest block this node proposes, whatever the chain's `maxBlockBytes` allows: a proposal
 * travels as one gossipsub message, and gossipsub neither sends nor takes one above 4 MiB (its
 * length-prefix codec's limit, in both directions); the rest is room for the proposal's fields and
 * the gossip frame. A larger proposal would reach no one, and the chain would go round after
 * round without a block. Blocks from others are still checked against `maxBlockBytes` itself.
 */
export const MAX_PROPOSED_BLOCK_BYTES = 4 * 1024 * 1024 - 512 * 1024

/** After the first warning that a height has no block, how often it is repeated while it has none. */
export const STALL_REPEAT_MS = 60_000

/**
 * How long a height may go without a block before the node warns: `rounds` rounds of `t` (each
 * round's propose, prevote and precommit timeouts, growing by their deltas; the machine's
 * `base + delta · round`). See {@link roundsWithQuorum}.
 */
export function stallWarningMs(t: TimeoutConfig, rounds = 3): number {
  let ms = 0
  for (let r = 0; r < rounds; r++)
    ms += t.proposeMs + t.prevoteMs + t.precommitMs + r * (t.proposeDeltaMs + t.prevoteDeltaMs + t.precommitDeltaMs)
  return ms
}

/**
 * The rounds a height can take while validators holding more than two thirds of `set`'s power
 * are at work: each of the others may lead a round in turn and fail it, and one more round ends
 * the height; at least three (a failed leader, and one to spare).
 */
export function roundsWithQuorum(set: ValidatorSet): number {
  const total = totalPower(set)
  let rest = total
  let down = 0
  for (const p of set.validators.map((v) => v.power).sort((a, b) => a - b)) {
    if (!isQuorum(rest - p, total)) break
    rest -= p
    down++
  }
  return Math.max(3, down + 2)
}

/** Most a proposed block's timestamp may run ahead of this node's clock. */
const MAX_CLOCK_DRIFT_MS = 30_000

/**
 * Thrown when the node cannot go on safely (a store that disagrees with the genesis, say): its own
 * condition, never the fault of whoever asked it something (so never penalised).
 */
export class NodeError extends LoopchainError<
  'GENESIS_MISMATCH' | 'OTHER_CHAIN' | 'STORE_FORMAT' | 'STOPPED' | 'CORRUPT_STORE' | 'HALTED'
> {
  constructor(
    code: 'GENESIS_MISMATCH' | 'OTHER_CHAIN' | 'STORE_FORMAT' | 'STOPPED' | 'CORRUPT_STORE' | 'HALTED',
    message: string,
    opts: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(code, message, { ...opts, penalize: false })
  }
}

/**
 * The id of a chain other than `chainId` whose records a node database holds, if any: every key of
 * the index database begins with its chain's id (lower-case letters, digits and dashes) and a zero
 * byte, so one key outside this chain's range, looked up on either side of it, tells.
 */
async function otherChainIn(store: KVStore, chainId: string): Promise<string | undefined> {
  const prefix = concatBytes(utf8(chainId), Uint8Array.of(0))
  const after = prefixUpperBound(prefix) as Uint8Array
  for (const range of [
    { gte: Uint8Array.of(0x02), lt: prefix, limit: 1 },
    { gte: after, limit: 1 },
  ]) {
    for await (const [k] of store.iterate(range)) {
      const end = k.indexOf(0)
      return new TextDecoder().decode(k.subarray(0, end < 0 ? k.length : end))
    }
  }
  return undefined
}

/** A running full node (validator or observer). */
export class FullNode {
  readonly mempool: Mempool
  private machine!: Consensus
  private tip!: Tip
  private network: NodeNetwork | undefined
  private queue: Promise<void> = Promise.resolve()
  private timers = new Set<ReturnType<typeof setTimeout>>()
  /**
   * The consensus machine's pending timeouts, with their heights: a height's are cleared when it is
   * committed (the machine would ignore them), so none fires, or is logged, for a finished height.
   */
  private consensusTimers = new Map<ReturnType<typeof setTimeout>, number>()
  private heightStarted = 0
  private lastCommitMs = 0
  /** When a message too far ahead last asked for block sync (see {@link receiveConsensus}). */
  private lastAheadSyncMs = Number.NEGATIVE_INFINITY
  private productionTimer: ReturnType<typeof setTimeout> | undefined
  /** Fires while the height in progress has no block: see {@link warnStalled}. */
  private stallTimer: ReturnType<typeof setTimeout> | undefined
  /** This node's consensus timeouts (the genesis's, or the options'). */
  private timeouts: TimeoutConfig = DEFAULT_TIMEOUTS
  /** How long the height in progress may go without a block before {@link warnStalled} (set as it starts). */
  private stallAfterMs = stallWarningMs(DEFAULT_TIMEOUTS)
  /** Whether the height in progress was warned of. */
  private stallWarned = false
  private stopped = false
  /** Whether {@link start} was called: before it, the node pools transactions but makes no blocks. */
  private started = false
  private readonly nonces = new Map<Address, number>()
  private readonly cachedSenders: number
  /** Senders known to be allowed to transact (see {@link mayTransact}). */
  private readonly permitted = new Set<Address>()
  /** Transactions waiting to be checked (see {@link drainIntake}). */
  private readonly intake: {
    tx: Uint8Array | Transaction
    fromPeer: boolean
    /** The peer that gossiped it. */
    from?: string
    /** Absent for gossiped transactions: nobody waits for them (see {@link submitFromPeer}). */
    resolve?: (hash: string) => void
    reject?: (e: unknown) => void
  }[] = []
  private draining = false
  /** Checks begun and not yet settled (at most {@link MAX_CHECKS_UNDER_WAY}). */
  private checking = 0
  /** Gossiped transactions dropped because the intake was full. */
  private intakeDropped = 0
  /**
   * The consensus machine hands the same block bytes around (hash, validate, commit): each is
   * decoded once (keyed by the bytes' identity, so a different array is always decoded afresh),
   * and every transaction the pool holds exactly is the pool's object, not decoded again (see
   * {@link Mempool.known}; the same values, so the same block).
   */
  private readonly decodeBlockOnce = memoByIdentity((bytes: Uint8Array): Block => decodeBlock(bytes, undefined, this.mempool.known))
  /**
   * The hash of a peer's block bytes, for the consensus machine: the header's hash, once the
   * header is known to commit to everything else in the bytes (transactions and carried commit:
   * `checkBlockBody`; certificate signatures: `checkBlockCertSignatures`). Throws otherwise, and
   * the machine refuses the message (`MALFORMED_BLOCK`). The header hash alone would let whoever
   * relays a proposal or a decision swap its transactions under the same hash, signature and
   * votes: a node holding that copy would prevote nil on a good block or, at a precommit quorum,
   * execute other transactions than the rest of the network.
   */
  readonly hashBlockBytes = memoByIdentity((bytes: Uint8Array): Uint8Array => {
    const block = this.decodeBlockOnce(bytes)
    checkBlockBody(block)
    // Remembered: the same signatures are checked again when the block is validated and committed.
    checkBlockCertSignatures(block, this.txCrypto)
    this.checkTransactionSignatures(block)
    return blockHash(block.header)
  })

  /**
   * Checks what the header does not commit to in each transaction (its root covers the bodies
   * only): the key is the sender's and the signature verifies. A pooled transaction was checked on
   * the way in; the rest are verified through the remembering verifier, so validating the block
   * next costs nothing more. Without this a relay, or a sync peer, could pass on a committed
   * block with another transaction's signature in place, under the same hash and commit. Throws
   * {@link TxError}.
   */
  private checkTransactionSignatures(block: Block): void {
    for (const tx of block.transactions) {
      const hash = transactionHash(tx.body)
      if (this.mempool.holds(tx, hash)) continue
      if (accountAddress(tx.publicKey) !== tx.body.from)
        throw new TxError('SENDER_MISMATCH', `a transaction's public key does not belong to its sender ${tx.body.from}`)
      if (!this.txCrypto.verify(tx.signature, hash, tx.publicKey))
        throw new TxError('BAD_SIGNATURE', `the signature of transaction ${toHex(hash).slice(0, 16)} does not verify`)
    }
  }
  /** Native crypto that remembers valid signatures (see {@link rememberingCrypto}). */
  private readonly crypto = rememberingCrypto(nativeCrypto)
  /**
   * Native crypto that knows the consensus signatures this node has verified (peers' votes and
   * proposals): those pass without OpenSSL, anything else is verified and not remembered. For a
   * light client in this process (the channel hub's), whose commit certificates are mostly the
   * precommits this node already counted.
   */
  get recallingCrypto(): CryptoProvider {
    return this.crypto.recallOnly
  }
  /** The same for transactions, apart so a flood of them cannot push out consensus signatures. */
  private readonly txCrypto = rememberingCrypto(nativeCrypto, TX_SIGNATURES_REMEMBERED)
  private nonceEpoch = 0
  /**
   * The tip block held transactions: one more block is due, because header N commits to the state
   * after block N − 1, and a light client can prove what a transaction did (a certificate's status,
   * a channel's record, a balance) only once the block after it is committed.
   */
  private resultPending = false
  /** Set while a block is between its execution and its tip: resolved when it is the tip (see {@link stateSettled}). */
  private storing: Promise<void> | undefined
  /**
   * The highest height a peer reported during the block sync in progress; back to this node's
   * height when a sync ends (0 before any sync).
   */
  syncTarget = 0
  /**
   * Blocks a second the block sync in progress has imported since its round began; 0 when no
   * sync is under way. With {@link syncTarget}, what `lc_getNetworkInfo` and `/metrics` show of it.
   */
  syncRate = 0
  /**
   * False from the moment a network with peers to ask is attached until a block-sync round has
   * asked one or a block is decided here by consensus: until then this node cannot know how far
   * behind it is, and reads as syncing.
   */
  syncChecked = true
  /** Counters for `/metrics`. */
  private readonly counters = {
    blocks: 0,
    transactions: 0,
    roundsAboveZero: 0,
    commitLatencySumMs: 0,
    /** Blocks whose latency was measured: those this node committed through consensus, from the start of their height. */
    commitLatencyCount: 0,
    lastCommitLatencyMs: 0,
    heightStartedAtMs: 0,
  }
  private readonly listeners = new Set<(b: CommittedBlock) => void>()
  private readonly evictionListeners = new Set<(hashHex: string) => void>()
  private admitted: ReadonlySet<string> = new Set()
  /** Every member's id by its address, as the committed state holds them (read with admission). */
  private memberIds: ReadonlyMap<string, string> = new Map()
  /** The node key (hex) of each member whose node is admitted, by the member's address ({@link admitted}: the keys). */
  private memberNodeKeys: ReadonlyMap<string, string> = new Map()
  private readonly admissionListeners = new Set<() => void>()
  private readonly log: NodeLogger
  private readonly clock: () => number
  /** The validator sets: each in force from `from` on (genesis first, then governance changes). */
  private readonly sets: { from: number; set: ValidatorSet }[]
  /** This validator's account address (undefined for an observer). */
  private readonly ownAddress: Address | undefined

  private constructor(
    readonly options: FullNodeOptions,
    readonly store: NodeStore,
    readonly chain: ChainStore,
    private tree: StateTree,
    private readonly wal: ConsensusWal,
  ) {
    this.log = options.logger ?? silentLogger
    this.clock = options.clock ?? (() => Date.now())
    this.cachedSenders = options.cachedSenders ?? CACHED_SENDERS
    this.sets = [{ from: 1, set: options.genesis.validators }]
    this.ownAddress = options.validatorSecret ? keyPairFromSecret(options.validatorSecret, nativeCrypto).address : undefined
    const g = options.genesis
    this.mempool = new Mempool({
      ...options.mempool,
      check: {
        networkId: g.networkId,
        timestampWindow: g.params.txTimestampWindowMs * 1000,
        maxStepLimit: g.params.maxStepLimit,
      },
      // Proposal checks remember what they verify: a transaction that first came inside a proposal
      // was verified there, and gossip brings it again a moment later. The pool only looks: what it
      // verifies is pooled, and a pooled transaction is not verified again (Mempool.pooled), so
      // remembering it too would only cost a string and a set entry per transaction.
      crypto: this.txCrypto.recallOnly,
      accountNonce: (a) => this.nextNonce(a),
      mayTransact: (a) => this.mayTransact(a),
      onEvict: (hash) => {
        for (const f of this.evictionListeners) f(hash)
      },
    })
  }

  /** Opens (or creates) the node's database, applies the genesis on first start, and restores the tip. */
  static async open(options: FullNodeOptions): Promise<FullNode> {
    // OpenSSL's SHA-256 for every protocol hash in this process (checked against the JavaScript
    // one first; the hashes are the same either way, only cheaper).
    installNativeSha256()
    const g = options.genesis
    const store = await (options.openStore ?? ((dir: string) => SplitKVStore.open(dir, options.storage)))(options.dataDir)
    const chain = new ChainStore(store, g.chainId)
    const wal = new ConsensusWal(store, g.chainId)
    const idKey = chain.genesisKey
    const other = await otherChainIn(store, g.chainId)
    if (other !== undefined) {
      await store.close()
      throw new NodeError(
        'OTHER_CHAIN',
        `the database at ${options.dataDir} holds chain ${other}, and this node's genesis is of chain ${g.chainId}: point dataDir at this chain's own directory (a database holds one chain)`,
      )
    }
    const known = await store.get(idKey)
    const gh = genesisHash(g)
    if (known && !bytesEqual(known, gh)) {
      await store.close()
      throw new NodeError('GENESIS_MISMATCH', `the database at ${options.dataDir} belongs to another genesis of chain ${g.chainId}`)
    }
    if (known) {
      const mark = await store.get(chain.formatKey)
      const format = mark === undefined ? 1 : decode(uvarint, mark)
      if (format !== STORE_FORMAT) {
        await store.close()
        if (format > STORE_FORMAT)
          throw new NodeError(
            'STORE_FORMAT',
            `the database at ${options.dataDir} was written in storage format ${format} by a newer version; this version reads format ${STORE_FORMAT}. Run that version or a newer one on it (nothing was changed)`,
          )
        throw new NodeError(
          'STORE_FORMAT',
          `the database at ${options.dataDir} was written in storage format ${format} by an earlier version; this version reads format ${STORE_FORMAT}. Move it aside and let the node sync from its peers (a devnet: npm run devnet -- --fresh). A validator's consensus WAL stays in the old database: start it on the new one only once the network has committed a block after this node stopped, or it could vote twice at the height it stopped in`,
        )
      }
    }
    const head = await chain.head()
    let tree: StateTree
    let tip: Tip
    let resultPending = false
    if (!head) {
      tree = await StateTree.open(store, undefined, { namespace: chain.stateNamespace, nodePrefix: chain.stateNodePrefix })
      // A node stopped before block 1 has the genesis state already (written with the marks above).
      if (tree.version < 0) {
        const sc = await applyGenesis(tree, g)
        await store.write([
          ...sc.ops,
          { type: 'put', key: idKey, value: gh },
          { type: 'put', key: chain.formatKey, value: encode(uvarint, STORE_FORMAT) },
        ])
        tree.markPersisted(sc)
      }
      const result = stateResult(tree.root)
      tip = { header: genesisHeader(g, result), result, commit: undefined }
    } else {
      const block = await chain.blockAt(head.height)
      const result = await chain.resultAt(head.height)
      const commit = await chain.commitAt(head.height)
      if (!block || !result || !commit) {
        await store.close()
        throw new NodeError(
          'CORRUPT_STORE',
          `the head block ${head.height} is incomplete in the database at ${options.dataDir} (its block, result or commit is missing: a lost or damaged ${HEIGHT_DB_DIR} directory?). Move the data directory aside and let the node sync from its peers (a devnet: npm run devnet -- --fresh). A validator's consensus WAL stays in the old directory: start it on a new one only once the network has committed a block after height ${head.height + 1}, or it could vote twice at the height it stopped in`,
        )
      }
      tree = await StateTree.open(store, result.stateRoot, { namespace: chain.stateNamespace, nodePrefix: chain.stateNodePrefix })
      tip = { header: block.header, result, commit }
      resultPending = block.transactions.length > 0
    }
    const node = new FullNode(options, store, chain, tree, wal)
    node.tip = tip
    // A restart right after a block with transactions still owes the block that carries its result.
    node.resultPending = resultPending
    node.sets.push(...(await chain.validatorSetChanges()))
    const admission = await node.readAdmission()
    node.admitted = new Set(admission.nodeKeys.values())
    node.memberIds = admission.ids
    node.memberNodeKeys = admission.nodeKeys
    node.warnValidatorsNotAdmitted()
    node.warnOwnKeyNotInSet()
    const timeouts: TimeoutConfig = {
      ...DEFAULT_TIMEOUTS,
      proposeMs: g.params.timeoutProposeMs,
      proposeDeltaMs: g.params.timeoutDeltaMs,
      prevoteMs: g.params.timeoutVoteMs,
      prevoteDeltaMs: g.params.timeoutDeltaMs,
      precommitMs: g.params.timeoutVoteMs,
      precommitDeltaMs: g.params.timeoutDeltaMs,
      ...options.timeouts,
    }
    node.timeouts = timeouts
    node.machine = createConsensus(
      {
        networkId: g.networkId,
        crypto: node.crypto,
        hashBlock: node.hashBlockBytes,
        timeouts,
        ...(options.validatorSecret ? { signer: { address: node.ownAddress as Address, secretKey: options.validatorSecret } } : {}),
      },
      await wal.load(),
    )
    // A validator's node keeps a watchtower for its institution's channel users; it challenges from the validator's account.
    if (options.validatorSecret && options.watchtower !== false)
      node.watchtower = await Watchtower.open(
        node,
        keyPairFromSecret(options.validatorSecret, nativeCrypto),
        node.log,
        typeof options.watchtower === 'object' ? options.watchtower.maxChannels : undefined,
      )
    return node
  }

  /** The node's watchtower (validators' nodes; undefined on an observer). */
  watchtower: Watchtower | undefined

  /** The validator set that votes on block `height` (governance changes apply two heights after their block). */
  validatorsAt(height: number): ValidatorSet {
    let set = this.sets[0]?.set as ValidatorSet
    for (const s of this.sets) if (s.from <= height) set = s.set
    return set
  }

  /**
   * Checks a signed header (a header and its commit) against the set in force at its height, with
   * the node's remembering native crypto: the commit's precommits are votes this node has usually
   * verified already, so they cost no verification again. Throws `LightError` when it does not hold.
   */
  verifySignedHeader(sh: SignedHeader): void {
    verifySignedHeader(sh, this.validatorsAt(sh.header.height), this.options.genesis.networkId, this.crypto)
  }

  /** Every validator-set change so far, in height order, the genesis set first (light clients follow these). */
  get validatorSetChanges(): readonly { readonly from: number; readonly set: ValidatorSet }[] {
    return this.sets
  }

  /** The last committed height (0 before the first block). */
  get height(): number {
    return this.tip.header.height
  }

  /** The last committed header. */
  get head(): BlockHeader {
    return this.tip.header
  }

  /**
   * The result of executing the last committed block (its state root among others), read with
   * {@link height} in the same turn. Not `state.root`: the tree moves to a block's root while the
   * block is still being stored, before the tip does.
   */
  get tipResult(): BlockResult {
    return this.tip.result
  }

  /** The current state tree (after the last committed block). */
  get state(): StateTree {
    return this.tree
  }

  /**
   * A snapshot of the state after the last committed block, for readers outside consensus
   * (JSON-RPC). The tree itself shows a block's writes while it executes (some of its transactions
   * applied, others not yet) and its new root while it is stored, before the block is the tip;
   * this view shows neither, and every read through it answers for the same block however many
   * commit meanwhile.
   */
  committedState(): StateSource {
    return this.tree.at(this.tip.result.stateRoot)
  }

  /**
   * Resolves once no block is being executed or stored. The committed state is then the state
   * tree's latest, which reads answer on the spot; in between, a snapshot of the tip reads a root
   * the tree has moved past, by waiting for the store (see `StateTree.at`).
   */
  async stateSettled(): Promise<void> {
    while (this.storing !== undefined) await this.storing
  }

  /** Connects the node to its peers. */
  attachNetwork(network: NodeNetwork): void {
    this.network = network
  }

  /** Detaches `network` if it is the one attached (its host stopped): nothing is sent through it after. */
  detachNetwork(network: NodeNetwork): void {
    if (this.network === network) this.network = undefined
  }

  /**
   * The node keys (hex) of the member nodes the committed state admits to the members' protocols:
   * registered by the genesis or by governance (`addMember`, `setNodeKey`), with the member-node or
   * validator right (core `admitsNode`). Read again after every block that calls governance.
   */
  get admittedNodeKeys(): ReadonlySet<string> {
    return this.admitted
  }

  /** Calls `f` when {@link admittedNodeKeys} changes. Returns an unsubscribe function. */
  onAdmissionChange(f: () => void): () => void {
    this.admissionListeners.add(f)
    return () => this.admissionListeners.delete(f)
  }

  /**
   * The validators of the latest set whose institution's node the state does not admit (no node
   * key on record: a genesis may name one so). Their votes cannot reach the other nodes, so each
   * counts toward the quorum but never votes: the set tolerates that much fewer failures.
   */
  get validatorsNotAdmitted(): Address[] {
    return this.notAdmitted().map((v) => v.address)
  }

  /** The latest set's validators (genesis first in `sets`, then governance's changes) whose node is not admitted. */
  private notAdmitted(): Validator[] {
    return this.latestSet().validators.filter((v) => !this.memberNodeKeys.has(v.address))
  }

  private latestSet(): ValidatorSet {
    return (this.sets[this.sets.length - 1] as { set: ValidatorSet }).set
  }

  /**
   * What this node is: `validator` (its key is in the latest validator set), `standby` (it holds
   * a validator key the set does not name: it votes once governance adds it, or its config names
   * the wrong key), or `observer` (no validator key).
   */
  get role(): 'validator' | 'standby' | 'observer' {
    if (this.ownAddress === undefined) return 'observer'
    return this.latestSet().validators.some((v) => v.address === this.ownAddress) ? 'validator' : 'standby'
  }

  private warnOwnKeyNotInSet(): void {
    if (this.role !== 'standby') return
    this.log.warn(
      "this node's validator key is not in the validator set at this node's height: it will not vote until governance adds it (check validatorKey in its config if it should). A node behind the chain may find it added in a later block: it says so once it has synced that far",
      { address: this.ownAddress as Address, height: this.height },
    )
  }

  private warnValidatorsNotAdmitted(): void {
    const out = this.notAdmitted()
    if (out.length === 0) return
    const power = (vs: readonly Validator[]) => vs.reduce((p, v) => p + v.power, 0)
    this.log.warn(
      'validators whose node the chain does not admit cannot vote over the network; record their node keys (governance setNodeKey)',
      { validators: out.map((v) => v.address), power: power(out), totalPower: power(this.latestSet().validators) },
    )
  }

  /** Every member's id, and the node key (hex) of each member whose node the committed state admits, by address. */
  private async readAdmission(): Promise<{ ids: Map<string, string>; nodeKeys: Map<string, string> }> {
    const ids = new Map<string, string>()
    const nodeKeys = new Map<string, string>()
    const list = await this.tree.get(MEMBER_LIST_KEY)
    for (const a of list === undefined ? [] : decode(memberListCodec, list)) {
      const raw = await this.tree.get(memberKey(a))
      const record = raw === undefined ? undefined : decode(memberRecordCodec, raw)
      if (record) ids.set(a, record.id)
      if (admitsNode(record)) nodeKeys.set(a, toHex(record.nodeKey))
    }
    return { ids, nodeKeys }
  }

  /** After a block that called governance: takes the admitted node keys from the new state, and tells listeners if they changed. */
  private async refreshAdmission(height: number): Promise<void> {
    let next: Set<string>
    try {
      const read = await this.readAdmission()
      next = new Set(read.nodeKeys.values())
      const notBefore = this.validatorsNotAdmitted.join()
      this.memberIds = read.ids
      this.memberNodeKeys = read.nodeKeys
      if (this.validatorsNotAdmitted.join() !== notBefore) this.warnValidatorsNotAdmitted()
    } catch (e) {
      // The block is committed; admission stays as it was until the next governance block reads it.
      this.log.error('reading the admitted member nodes failed', { height, error: String(e) })
      return
    }
    const before = this.admitted
    if (next.size === before.size && [...next].every((k) => before.has(k))) return
    this.admitted = next
    this.log.info('member nodes admitted to the network changed', {
      height,
      admitted: [...next].filter((k) => !before.has(k)).map((k) => k.slice(0, 16)),
      removed: [...before].filter((k) => !next.has(k)).map((k) => k.slice(0, 16)),
    })
    for (const f of this.admissionListeners) {
      try {
        f()
      } catch (e) {
        this.log.warn('an admission listener failed', { error: String(e) })
      }
    }
  }

  /** Calls `f` for every block this node commits. Returns an unsubscribe function. */
  onBlock(f: (b: CommittedBlock) => void): () => void {
    this.listeners.add(f)
    return () => this.listeners.delete(f)
  }

  /**
   * Calls `f` with the hash (hex) of every transaction the full pool evicts to make room for
   * another sender's (see `Mempool.add`). Returns an unsubscribe function.
   */
  onEvicted(f: (hashHex: string) => void): () => void {
    this.evictionListeners.add(f)
    return () => this.evictionListeners.delete(f)
  }

  /** Starts consensus at the next height. */
  start(): void {
    this.started = true
    this.lastCommitMs = this.clock()
    // Expired transactions leave the pool even when no block comes to prune it (say, all behind a
    // nonce gap, which never makes a block): a few times per timestamp window, at most every 10 s.
    const every = Math.min(10_000, Math.max(200, this.options.genesis.params.txTimestampWindowMs / 4))
    const expiry = setInterval(() => {
      if (this.stopped) return
      this.mempool.prune(this.clock() * 1000).catch((e: unknown) => this.log.warn('mempool: expiry failed', { error: String(e) }))
    }, every)
    expiry.unref?.()
    this.timers.add(expiry)
    const idle = this.options.idleSyncMs ?? 5_000
    const idleSync = setInterval(() => {
      if (!this.stopped && this.clock() - this.lastCommitMs >= idle) this.network?.requestSync?.(undefined, this.height, true)
    }, idle)
    idleSync.unref?.()
    this.timers.add(idleSync)
    this.maybeStartHeight()
  }

  /**
   * Submits a transaction; returns its hash (hex). A client's transaction is passed on to the
   * peers; one that came from a peer (`fromPeer`) is not, since gossip already spreads it.
   */
  submit(tx: Uint8Array | Transaction, fromPeer = false): Promise<string> {
    if (this.intake.length + this.checking >= MAX_INTAKE)
      return Promise.reject(
        new MempoolError('POOL_FULL', `the node has ${this.intake.length} transactions waiting to be checked; retry later`),
      )
    return new Promise((resolve, reject) => {
      this.intake.push({ tx, fromPeer, resolve, reject })
      this.scheduleDrain()
    })
  }

  /**
   * Queues transactions that peers gossiped, to be pooled like the rest (already spread, so not
   * passed on again). Refusals are normal under gossip (duplicates, used nonces) and nobody's
   * fault, and nobody waits for the outcome, so these get no promise each: at a thousand and more
   * a second, a promise, its callbacks and a settled copy per transaction were garbage that lived
   * as long as the queue.
   */
  submitFromPeer(txs: readonly Uint8Array[], from?: string): void {
    // Bounded: past it, gossip is dropped (a block brings what matters) instead of queued without end.
    if (this.intake.length + this.checking + txs.length > MAX_INTAKE) {
      this.intakeDropped += txs.length
      return
    }
    for (const tx of txs) this.intake.push(from === undefined ? { tx, fromPeer: true } : { tx, fromPeer: true, from })
    this.scheduleDrain()
  }

  /** Transactions waiting to be checked (arrived, not yet pooled or refused). */
  get intakeSize(): number {
    return this.intake.length
  }

  private scheduleDrain(): void {
    if (!this.draining) {
      this.draining = true
      setImmediate(() => this.drainIntake())
    }
  }

  /**
   * Checks queued transactions a few dozen at a time, one chunk per turn of the event loop.
   * Arrivals (JSON-RPC requests, gossip batches) only queue: so between two chunks the loop
   * handles whatever consensus is waiting for (votes, proposals, store reads and writes) instead
   * of finding it behind thousands of signature checks. Under load consensus keeps its pace and
   * intake slows, which is the order a chain needs.
   */
  private drainIntake(): void {
    const room = Math.min(SUBMIT_CHUNK, MAX_CHECKS_UNDER_WAY - this.checking)
    if (room <= 0) {
      // Resumed when a check under way settles.
      this.draining = false
      return
    }
    const chunk = this.intake.splice(0, room)
    const now = this.clock() * 1000
    for (const item of chunk) {
      if (this.stopped) {
        item.reject?.(new NodeError('STOPPED', 'the node is stopping'))
        continue
      }
      this.checking++
      this.mempool.add(item.tx, now).then(
        (hash) => {
          this.checkSettled()
          if (!item.fromPeer)
            this.network?.publishTransaction?.(item.tx instanceof Uint8Array ? item.tx : encode(transactionCodec, item.tx))
          this.maybeStartHeight()
          item.resolve?.(hash)
        },
        (e: unknown) => {
          this.checkSettled()
          if (item.from !== undefined && cannotBeHonest(e)) this.network?.reportPeer?.(item.from, (e as LoopchainError<string>).code)
          item.reject?.(e)
        },
      )
    }
    if (this.intake.length > 0) setImmediate(() => this.drainIntake())
    else this.draining = false
  }

  /** A check under way ended: draining goes on if it had stopped at {@link MAX_CHECKS_UNDER_WAY}. */
  private checkSettled(): void {
    this.checking--
    if (this.intake.length > 0) this.scheduleDrain()
  }

  /** Delivers a consensus message from the network. */
  receiveConsensus(bytes: Uint8Array, from?: string): void {
    let message: ConsensusMessage
    try {
      message = decodeConsensusMessage(bytes)
    } catch (e) {
      this.log.debug('consensus: undecodable message', { from, error: String(e) })
      return
    }
    // Too far ahead to check (the validator set of its height is not known yet): this node fell
    // behind, or someone sends junk. Either way it is not kept — unchecked, a peer could fill the
    // machine's buffer with large proposals — but it asks for block sync, at most once a second,
    // of every member peer: an unchecked message must not choose whom this node syncs from.
    if (!this.knowsValidatorsAt(messageHeight(message))) {
      const now = this.clock()
      if (now - this.lastAheadSyncMs >= 1000) {
        this.lastAheadSyncMs = now
        this.network?.requestSync?.(undefined, this.height)
      }
      return
    }
    // Peers moved on to the next height: join them even if this node had nothing to propose. (A
    // late vote for a height already committed must not start one: idle chains would tick; nor
    // may a message whose signatures do not verify: anyone could make the chain tick.)
    if (this.heightStarted <= this.height && messageHeight(message) > this.height && this.consensusSignaturesValid(message) === true) {
      this.startHeightNow()
    }
    this.enqueue({ type: 'message', message, ...(from ? { from } : {}) })
  }

  /**
   * Whether this node knows the validator set in force at `height`: up to two heights past its
   * tip (a change in block K applies from K + 2). Beyond, nothing signed for that height can be
   * checked here.
   */
  knowsValidatorsAt(height: number): boolean {
    return height <= this.height + 2
  }

  /**
   * Whether the block a proposal or decision carries is the one its signed hash names, the whole
   * of it (see {@link hashBlockBytes}); true for a vote. Nothing here depends on the chain, so a
   * mismatch is invalid for every node and the peer that forwarded it is to blame.
   */
  consensusBlockMatches(m: ConsensusMessage): boolean {
    if (m.kind === 'vote') return true
    const [bytes, signed] =
      m.kind === 'proposal' ? [m.proposal.block, m.proposal.proposal.blockHash] : [m.decision.block, m.decision.commit.blockHash]
    try {
      return bytesEqual(this.hashBlockBytes(bytes), signed)
    } catch {
      return false
    }
  }

  /**
   * Whether a consensus message's signatures verify against the validator set of its height:
   * `undefined` when that set is not known yet (more than two heights ahead). Successes are
   * remembered, so the consensus machine does not verify the same signature again.
   */
  consensusSignaturesValid(m: ConsensusMessage): boolean | undefined {
    const height = messageHeight(m)
    if (!this.knowsValidatorsAt(height)) return undefined
    const set = this.validatorsAt(height)
    const keyOf = (a: Address) => set.validators.find((v) => v.address === a)?.publicKey
    try {
      switch (m.kind) {
        case 'vote': {
          const pk = keyOf(m.vote.vote.validator)
          return pk !== undefined && this.crypto.verify(m.vote.signature, fastVoteSignBytes(m.vote.vote, nativeCrypto.sha256), pk)
        }
        case 'proposal': {
          const pk = keyOf(m.proposal.proposal.proposer)
          return pk !== undefined && this.crypto.verify(m.proposal.signature, proposalSignBytes(m.proposal.proposal), pk)
        }
        default: {
          const c = m.decision.commit
          verifyCommit(c, { networkId: this.options.genesis.networkId, height: c.height, blockHash: c.blockHash }, set, this.crypto)
          return true
        }
      }
    } catch {
      return false
    }
  }

  /** The account (balance and nonce) of `a` in the latest state. */
  account(a: Address): Promise<AccountState> {
    return getAccount(this.tree, a)
  }

  /**
   * The next nonce of `a` for the mempool, cached: only a transaction `a` sends changes its
   * nonce, so a commit refreshes just the block's senders (from the state its execution left,
   * see {@link commitBlock}). A read that a commit overtook is not cached (the epoch moved).
   */
  private nextNonce(a: Address): number | Promise<number> {
    const cached = this.nonces.get(a)
    return cached !== undefined ? cached : this.readNonce(a)
  }

  /** {@link nextNonce} from the state, cached unless a commit overtook the read. */
  private async readNonce(a: Address): Promise<number> {
    const epoch = this.nonceEpoch
    const n = (await this.account(a)).nonce
    if (epoch === this.nonceEpoch) this.cacheNonce(a, n)
    return n
  }

  /**
   * Who may send transactions freely: a member institution, or an account that holds funds. Steps
   * cost nothing by default, so a key nobody funded is free to make; the pool limits the others
   * (one transaction waiting each, a small share of the pool), or anyone could fill it and the
   * blocks from keys made on the spot. A sender found free is remembered (a cache: one that spends
   * all it holds stays free until the cache is cleared).
   */
  private mayTransact(a: Address): boolean | Promise<boolean> {
    return this.permitted.has(a) || this.readPermission(a)
  }

  private async readPermission(a: Address): Promise<boolean> {
    if ((await this.account(a)).balance > 0n || (await this.tree.get(memberKey(a))) !== undefined) return this.permit(a)
    return false
  }

  private permit(a: Address): true {
    // The least recently found go first, not everyone at once: senders nobody funded, each read
    // once, would otherwise wipe every active sender's entry with each 100,000.
    addNewest(this.permitted, a, this.cachedSenders)
    return true
  }

  /** Caches `a`'s next nonce as the most recent entry; past `cachedSenders`, the least recently cached goes. */
  private cacheNonce(a: Address, n: number): void {
    setNewest(this.nonces, a, n, this.cachedSenders)
  }

  /**
   * The height this node works on past its tip, while it has one: its round and step, how long it
   * has run (`ms`), whether it has stalled (see {@link ConsensusProgress.stalled}), the validators
   * whose votes or proposals for it this node holds and those it has nothing from, the validators
   * whose node it has no connection to (each with their member ids), and the power heard against
   * the set's. Undefined while the node waits for something to propose (an idle chain) or is not started.
   */
  consensusProgress(): ConsensusProgress | undefined {
    if (!this.started || this.heightStarted <= this.height) return undefined
    const st = this.machine.status()
    // Between the height's start and the machine taking it up, the machine still shows the last one.
    const taken = st.height === this.heightStarted
    const set = this.validatorsAt(this.heightStarted).validators
    const heard = new Set(taken ? this.machine.heard() : [])
    const power = (vs: readonly Validator[]) => vs.reduce((p, v) => p + v.power, 0)
    const ms = Math.max(0, this.clock() - this.counters.heightStartedAtMs)
    const silent = set.filter((v) => !heard.has(v.address))
    const connected = this.network?.connectedToNode
    const notConnected =
      connected === undefined
        ? undefined
        : set.filter((v) => {
            const key = this.memberNodeKeys.get(v.address)
            return v.address !== this.ownAddress && key !== undefined && !connected(key)
          })
    // Behind its peers (as far as they said), this node's height is not the network's. One that
    // could ask no peer yet is not known to be behind: cut off, it should say so.
    const behind = this.syncTarget > this.height
    const ours = set.some((v) => v.address === this.ownAddress || heard.has(v.address))
    const id = (v: Validator) => this.memberIds.get(v.address) ?? '(not a member)'
    const total = power(set)
    return {
      height: this.heightStarted,
      round: taken ? st.round : 0,
      step: taken ? st.step : 'starting',
      ms,
      stalled: ms >= this.stallAfterMs && !behind && ours,
      heard: set.filter((v) => heard.has(v.address)).map((v) => v.address),
      silent: silent.map((v) => v.address),
      silentMembers: silent.map(id),
      ...(notConnected ? { notConnected: notConnected.map((v) => v.address), notConnectedMembers: notConnected.map(id) } : {}),
      powerHeard: total - power(silent),
      totalPower: total,
    }
  }

  /**
   * Prometheus text-format metrics: height, consensus round, blocks and transactions committed,
   * leader changes (blocks that needed more than round 0), mempool size, commit latency.
   * `extra` adds figures, each with its help text, gauges unless `type` says `counter` (the CLI
   * adds peers).
   */
  metrics(extra: Record<string, { value: number; help: string; type?: 'gauge' | 'counter' }> = {}): string {
    const st = this.machine.status()
    const c = this.counters
    const lines: [string, string, string, number][] = [
      ['loopchain_height', 'gauge', 'Last committed block height.', this.height],
      [
        'loopchain_sync_target_height',
        'gauge',
        'Highest height a peer reported during block sync.',
        Math.max(this.syncTarget, this.height),
      ],
      ['loopchain_sync_blocks_per_second', 'gauge', 'Blocks a second the block sync in progress imports (0: none).', this.syncRate],
      ['loopchain_consensus_round', 'gauge', 'Round of the height in progress.', st.round],
      ['loopchain_blocks_committed_total', 'counter', 'Blocks committed since start.', c.blocks],
      ['loopchain_transactions_committed_total', 'counter', 'Transactions committed since start.', c.transactions],
      ['loopchain_leader_changes_total', 'counter', 'Blocks committed after round 0: a leader failed or was late.', c.roundsAboveZero],
      ['loopchain_mempool_transactions', 'gauge', 'Transactions waiting.', this.mempool.size],
      ['loopchain_mempool_bytes', 'gauge', 'Bytes waiting.', this.mempool.bytes],
      [
        'loopchain_mempool_evicted_total',
        'counter',
        'Transactions a full pool evicted to make room for another sender (the last ones of the sender holding the most).',
        this.mempool.evicted,
      ],
      ['loopchain_intake_transactions', 'gauge', 'Transactions arrived and waiting to be checked.', this.intake.length],
      ['loopchain_intake_dropped_total', 'counter', 'Gossiped transactions dropped because the intake was full.', this.intakeDropped],
      ['loopchain_commit_latency_last_ms', 'gauge', 'Start of the last height to its commit, milliseconds.', c.lastCommitLatencyMs],
      ['loopchain_commit_latency_ms_sum', 'counter', 'Sum of commit latencies, milliseconds.', c.commitLatencySumMs],
      [
        'loopchain_commit_latency_ms_count',
        'counter',
        'Blocks in that sum: committed through consensus here (not block sync), from the start of their height.',
        c.commitLatencyCount,
      ],
      ['loopchain_signature_verifications_total', 'counter', 'Signatures verified by consensus.', st.verifications],
      [
        'loopchain_validators_not_admitted',
        'gauge',
        'Validators of the latest set whose node the state does not admit (no node key on record): they cannot vote over the network.',
        this.validatorsNotAdmitted.length,
      ],
    ]
    const w = this.store.writeStats?.()
    if (w) {
      lines.push(
        [
          'loopchain_store_written_bytes_total',
          'counter',
          'Bytes of keys and values the node wrote to its database since it opened it.',
          w.writtenBytes,
        ],
        [
          'loopchain_store_table_written_bytes_total',
          'counter',
          "Bytes LevelDB wrote to its table files since the node opened its database (memtable flushes and compactions, in MiB rounded per level): over loopchain_store_written_bytes_total, the database's write amplification.",
          w.tableBytesWritten,
        ],
      )
    }
    for (const [name, { value, help, type }] of Object.entries(extra)) lines.push([name, type ?? 'gauge', help, value])
    return lines.map(([n, t, h, v]) => `# HELP ${n} ${h}\n# TYPE ${n} ${t}\n${n} ${v}\n`).join('')
  }

  /**
   * Why the node stopped itself, if it did: a committed block it could not execute or write, or a
   * consensus step whose WAL entry it could not write (voting without it could sign twice after a
   * restart). Its memory was then ahead of its database, so it takes no more part; the database
   * still holds every block before, whole (one atomic batch per block), and a restart once the
   * cause is fixed (a full disk, say) resumes from there and catches up by sync.
   */
  get failure(): NodeError | undefined {
    return this.halted
  }

  private halted: NodeError | undefined

  private halt(what: string, e: unknown): void {
    if (this.halted) return
    const reason = e instanceof Error ? e.message : String(e)
    this.halted = new NodeError(
      'HALTED',
      `${what} failed (${reason}); the node stopped: the database keeps every block up to height ${this.height}; fix the cause and restart`,
      { details: { height: this.height }, cause: e },
    )
    this.stopped = true
    this.clearTimers()
    this.log.error('node halted', { what, error: reason, height: this.height })
    this.options.onHalt?.(this.halted)
  }

  /** Stops timers and closes the database (after in-flight work). */
  async stop(): Promise<void> {
    this.stopped = true
    this.clearTimers()
    await this.queue.catch(() => undefined)
    // The work the queue was doing may have set one (a proposal judged later, say).
    this.clearTimers()
    await this.watchtower?.close()
    await this.store.close()
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    for (const t of this.consensusTimers.keys()) clearTimeout(t)
    this.consensusTimers.clear()
    if (this.productionTimer) clearTimeout(this.productionTimer)
    if (this.stallTimer) clearTimeout(this.stallTimer)
  }

  // -------------------------------------------------------------------------------------------

  private maybeStartHeight(): void {
    if (!this.started || this.stopped || this.heightStarted > this.height) return
    const p = this.options.genesis.params
    const d = blockProductionDue(
      { minIntervalMs: p.blockIntervalMs, emptyBlocks: p.emptyBlockIntervalMs > 0, emptyBlockIntervalMs: p.emptyBlockIntervalMs },
      { pendingTxs: this.mempool.hasReady || this.resultPending ? 1 : 0, lastCommitTimeMs: this.lastCommitMs, nowMs: this.clock() },
    )
    if (d.due) {
      this.startHeightNow()
      return
    }
    if (this.productionTimer) clearTimeout(this.productionTimer)
    if (d.recheckAtMs !== undefined) {
      this.productionTimer = setTimeout(() => this.maybeStartHeight(), Math.max(0, d.recheckAtMs - this.clock()))
    }
  }

  private startHeightNow(): void {
    if (!this.started || this.stopped || this.heightStarted > this.height) return
    if (this.productionTimer) clearTimeout(this.productionTimer)
    this.heightStarted = this.height + 1
    this.counters.heightStartedAtMs = this.clock()
    this.stallWarned = false
    if (this.stallTimer) clearTimeout(this.stallTimer)
    const validators = this.validatorsAt(this.heightStarted)
    this.stallAfterMs = stallWarningMs(this.timeouts, roundsWithQuorum(validators))
    this.stallTimer = setTimeout(() => this.warnStalled(), this.stallAfterMs)
    this.enqueue({ type: 'start-height', height: this.heightStarted, validators })
  }

  /**
   * The height in progress has had no block for {@link stallAfterMs} (then each further
   * {@link FullNodeOptions.stallRepeatMs}): if it has stalled ({@link ConsensusProgress.stalled}), says so, naming
   * the validators this node has nothing from for it and those whose node it cannot reach. A height
   * ends within a few rounds when more than two thirds of the power can talk; past that, validators
   * are stopped, cut off or behind, or their votes do not agree, and an operator needs to know which.
   */
  private warnStalled(): void {
    this.stallTimer = undefined
    const p = this.consensusProgress()
    if (this.stopped || p === undefined) return
    this.stallTimer = setTimeout(() => this.warnStalled(), this.options.stallRepeatMs ?? STALL_REPEAT_MS)
    if (!p.stalled) return
    const connected = this.network?.memberConnections?.()
    this.stallWarned = true
    const named = p.silent.length > 0 || (p.notConnected?.length ?? 0) > 0
    this.log.warn(
      named
        ? 'consensus: no block for this height yet. A block needs votes from validators holding more than two thirds of the power: this node has nothing for this height from those named silent, and no connection to the nodes of those named notConnected (stopped, cut off from this node, or behind; or this node is cut off)'
        : "consensus: no block for this height yet, though every validator has sent something for it and every validator's node is connected: their votes do not agree yet (a proposal some of them refuse, or clocks too far apart), or validators stopped after voting; see their own logs",
      {
        height: p.height,
        round: p.round,
        step: p.step,
        seconds: Math.floor(p.ms / 1000),
        heard: p.heard,
        silent: p.silent,
        silentMembers: p.silentMembers,
        ...(p.notConnected ? { notConnected: p.notConnected, notConnectedMembers: p.notConnectedMembers } : {}),
        powerHeard: p.powerHeard,
        totalPower: p.totalPower,
        ...(connected !== undefined ? { memberNodesConnected: connected } : {}),
      },
    )
  }

  private enqueue(input: Parameters<Consensus['handle']>[0]): void {
    this.queue = this.queue
      .then(async () => {
        if (this.stopped) return
        for (const out of this.machine.handle(input)) await this.carryOut(out)
      })
      .catch((e: unknown) => {
        if (!this.halted) this.log.error('consensus: driver failed', { error: String(e), stack: (e as Error)?.stack })
      })
  }

  private async carryOut(out: ConsensusOutput): Promise<void> {
    switch (out.type) {
      case 'wal-write':
        try {
          await this.wal.append(out.entry)
        } catch (e) {
          // Thrown on: the outputs after it (the vote's broadcast) are not carried out.
          this.halt('writing the consensus WAL', e)
          throw e
        }
        return
      case 'broadcast':
        this.network?.publishConsensus(encode(consensusMessageCodec, out.message))
        return
      case 'schedule-timeout': {
        // A node stopping has cleared its timers already: none may start after (it would hold the process).
        if (this.stopped) return
        const t = setTimeout(() => {
          this.consensusTimers.delete(t)
          this.log.debug('consensus: timeout', { ...out.timeout })
          this.enqueue({ type: 'timeout', timeout: out.timeout })
        }, out.delayMs)
        this.consensusTimers.set(t, out.timeout.height)
        return
      }
      case 'request-block':
        this.enqueue({ type: 'block', height: out.height, round: out.round, block: encode(blockCodec, await this.buildBlock(out.round)) })
        return
      case 'validate-block': {
        // A block timestamped further ahead of this node's clock than the drift allowed is judged
        // when the clock gets there, not refused: the machine keeps a verdict for the whole height,
        // so a "no" that only this clock gave would stand against every re-proposal of the block,
        // and a proposer that times a block between two validators' clocks could split them, lock
        // some on it, and stall the height.
        await this.judgeWhenDue(out)
        return
      }
      case 'commit':
        if (out.height <= this.height) {
          // Block sync already stored this height (late precommits completed the machine's quorum after):
          // committing it again would fail the store's check and halt the node.
          const stored = await this.chain.blockAt(out.height)
          if (stored && !bytesEqual(blockHash(stored.header), out.blockHash))
            this.log.error('consensus: committed another block than the one stored at this height', { height: out.height })
          else this.log.debug('consensus: height already stored by sync', { height: out.height })
          return
        }
        {
          const block = this.decodeBlockOnce(out.block)
          if (this.resultFollows(block, 'decided') === undefined) await this.commitBlock(block, out.commit, 'consensus')
        }
        return
      case 'evidence':
        this.log.warn('consensus: evidence of a faulty validator', { kind: out.evidence.kind })
        return
      case 'rejected':
        this.log.debug('consensus: message rejected', { from: out.from, code: out.error.code })
        return
      case 'sync-needed':
        this.network?.requestSync?.(out.from, out.height)
        return
      case 'peer-behind':
        // The peer that is behind notices by itself (sync-needed) and fetches by block sync.
        return
    }
  }

  private async buildBlock(round: number): Promise<Block> {
    const p = this.options.genesis.params
    const parent = this.tip.header
    const room = Math.min(p.maxBlockBytes, MAX_PROPOSED_BLOCK_BYTES) - 64 * 1024
    // Taken first: the transactions are chosen for this timestamp, the one validators check them at.
    const timestamp = Math.max(this.clock() * 1000, parent.timestamp + 1)
    let txs = await this.mempool.select(p.maxBlockTxs, room, timestamp, p.maxBlockSteps)
    const me = this.ownAddress as Address
    const height = parent.height + 1
    // The per-block certificate key (DESIGN.md, "Certificates"; core docs/certificates.md): fresh
    // for every proposal. Its secret exists only here: it signs the id of every certificate the
    // block issues — computable from the transactions and the height alone — and is wiped at once,
    // so no later compromise of this node can sign a certificate into a past block. It never
    // enters the native key cache, which keeps keys for thousands of blocks (see `oneOffKey`).
    const blockSecret = globalThis.crypto.getRandomValues(new Uint8Array(32))
    let blockKey: Uint8Array
    let certSignatures: Uint8Array[]
    let key: OneOffKey | undefined
    try {
      key = oneOffKey(blockSecret)
      blockKey = key.publicKey
      certSignatures = signBlockCertificates(txs, height, blockSecret, key.crypto)
    } finally {
      key?.destroy()
      blockSecret.fill(0)
    }
    // The signatures (64 bytes and a little each) must fit in the block too: drop transactions from
    // the end (each sender's nonces stay in order) until they do, and the signatures of dropped ones.
    const over =
      certSignatures.length === 0
        ? 0
        : txs.reduce((n, tx) => n + encode(transactionCodec, tx).length, 0) + 66 * certSignatures.length - room
    if (over > 0) {
      let freed = 0
      while (txs.length > 0 && freed < over) {
        const last = txs[txs.length - 1] as Transaction
        freed += encode(transactionCodec, last).length + (certificateOfTransaction(last, height) ? 66 : 0)
        txs = txs.slice(0, -1)
      }
      certSignatures = certSignatures.slice(0, blockCertificates(txs, height).length)
    }
    const header: BlockHeader = {
      version: 1,
      networkId: parent.networkId,
      height: parent.height + 1,
      prevHash: blockHash(parent),
      timestamp,
      proposer: me,
      round,
      txRoot: transactionsRoot(txs),
      resultRoot: blockResultHash(this.tip.result),
      validatorsHash: validatorSetHash(this.validatorsAt(height)),
      nextValidatorsHash: validatorSetHash(this.validatorsAt(height + 1)),
      blockKey,
      lastCommitHash: this.tip.commit ? commitHash(this.tip.commit) : new Uint8Array(32),
    }
    return { header, transactions: txs, lastCommit: this.tip.commit, certSignatures }
  }

  /**
   * Judges a proposed block now, or when this node's clock reaches its timestamp less the drift
   * allowed. The clock is read again when the timer fires, and the wait begins anew if it is still
   * short: a timer may fire a little early by the wall clock, and the clock may have been stepped
   * back meanwhile, and a verdict given early would be a "no" kept for the whole height.
   */
  private async judgeWhenDue(out: Extract<ConsensusOutput, { type: 'validate-block' }>): Promise<void> {
    const early = this.blockEarlyMs(out.block)
    if (early === 0) return this.judge(out)
    this.log.debug('consensus: a proposal is ahead of this clock; judged later', { height: out.height, ms: early })
    const t = setTimeout(
      () => {
        this.consensusTimers.delete(t)
        this.queue = this.queue
          .then(() => (this.stopped || out.height !== this.height + 1 ? undefined : this.judgeWhenDue(out)))
          .catch((e: unknown) => this.log.error('consensus: judging a proposal failed', { error: String(e) }))
      },
      Math.min(early, 2 ** 31 - 1),
    )
    t.unref?.()
    this.consensusTimers.set(t, out.height)
  }

  /** Tells the machine whether the block it asked about is valid, while its height is still the one running. */
  private async judge(out: Extract<ConsensusOutput, { type: 'validate-block' }>): Promise<void> {
    if (this.stopped || out.height !== this.height + 1) return
    this.enqueue({ type: 'block-validity', height: out.height, blockHash: out.blockHash, valid: await this.isValidProposal(out.block) })
  }

  /** How long until a proposed block's timestamp is within the drift allowed of this node's clock (0: it is, or the bytes do not decode). */
  private blockEarlyMs(bytes: Uint8Array): number {
    try {
      return Math.max(0, Math.ceil(this.decodeBlockOnce(bytes).header.timestamp / 1000 - MAX_CLOCK_DRIFT_MS - this.clock()))
    } catch {
      return 0
    }
  }

  private async isValidProposal(bytes: Uint8Array): Promise<boolean> {
    const p = this.options.genesis.params
    try {
      if (bytes.length > p.maxBlockBytes) throw new Error(`the block is ${bytes.length} bytes, above ${p.maxBlockBytes}`)
      const block = this.decodeBlockOnce(bytes)
      const h = block.header
      checkBlockStructure(block, this.tip.header, blockLimits(p))
      if (!bytesEqual(h.resultRoot, blockResultHash(this.tip.result))) throw new Error('resultRoot is not the result of the parent block')
      if (
        !bytesEqual(h.validatorsHash, validatorSetHash(this.validatorsAt(h.height))) ||
        !bytesEqual(h.nextValidatorsHash, validatorSetHash(this.validatorsAt(h.height + 1)))
      )
        throw new Error('validator set hashes do not match')
      if (h.timestamp > (this.clock() + MAX_CLOCK_DRIFT_MS) * 1000) throw new Error('timestamp is too far in the future')
      // The previous height's precommits: votes this node has usually verified already (remembered).
      if (block.lastCommit) {
        verifyCommit(
          block.lastCommit,
          { networkId: h.networkId, height: h.height - 1, blockHash: h.prevHash },
          this.validatorsAt(h.height - 1),
          this.crypto,
        )
      }
      const ctx = {
        networkId: h.networkId,
        now: h.timestamp,
        timestampWindow: p.txTimestampWindowMs * 1000,
        maxStepLimit: p.maxStepLimit,
        // Pooled transactions were verified on the way in; only the others cost a verification.
        alreadyVerified: (tx: Transaction, hash: Uint8Array) => this.mempool.holds(tx, hash),
      }
      for (const tx of block.transactions) checkTransaction(tx, ctx, this.txCrypto)
      // Every certificate the block issues must carry the block key's signature, or no one could verify it.
      checkBlockCertSignatures(block, this.txCrypto)
      await this.checkNonceOrder(block)
      return true
    } catch (e) {
      this.log.warn('consensus: invalid proposal', { error: (e as Error).message })
      return false
    }
  }

  /**
   * Each sender's transactions in a proposal must carry its next nonces in order, from the one its
   * account holds after the parent block: what an honest proposer's pool selects. The executor
   * fails any other with `BAD_NONCE` and changes no state, but the block would still carry it: a
   * faulty proposer could put a committed transaction into a block again (its `BAD_NONCE` receipt
   * then answered lookups by hash in place of the real one), or a user's later transaction without
   * the one before (a failure receipt, and gone from every pool, for a transaction that never
   * ran). Throws, like the other checks of {@link isValidProposal}.
   */
  private async checkNonceOrder(block: Block): Promise<void> {
    const height = this.height
    const next = await readNonces(
      block.transactions.map((tx) => tx.body.from),
      (a) => this.nextNonce(a),
    )
    if (this.height !== height) throw new Error('a block was stored while the proposal was checked')
    for (const tx of block.transactions) {
      const expected = next.get(tx.body.from) as number
      if (tx.body.nonce !== expected)
        throw new Error(`transaction nonce ${tx.body.nonce} of ${tx.body.from} is not its next nonce ${expected} in this block`)
      next.set(tx.body.from, expected + 1)
    }
  }

  /**
   * Imports a block that peers already committed (block sync): checks that it follows the tip and
   * that its commit certificate carries more than 2/3 of the validators' power, then executes and
   * stores it like a block this node committed itself, and moves consensus to the next height.
   * Runs in the driver's queue, so it never interleaves with consensus work.
   */
  importBlock(block: Block, commit: Commit): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.stopped || block.header.height !== this.height + 1) return
      checkBlockStructure(block, this.tip.header, blockLimits(this.options.genesis.params))
      const h = block.header
      verifyCommit(commit, { networkId: h.networkId, height: h.height, blockHash: blockHash(h) }, this.validatorsAt(h.height), nativeCrypto)
      // The header's hash does not cover the certificate signatures nor the transactions'
      // signatures and keys: a peer could swap them.
      checkBlockCertSignatures(block, this.txCrypto)
      this.checkTransactionSignatures(block)
      const diverged = this.resultFollows(block, 'synced')
      if (diverged) throw diverged
      await this.commitBlock(block, commit, 'sync')
    })
    this.queue = run.catch(() => undefined)
    return run
  }

  /**
   * A committed block names the result of the block before it (`resultRoot`), as the validators
   * that signed it computed it. One this node computed differently means its state is not the
   * network's (a bug, a tampered store, another software version): it halts instead of building on
   * it or asking peers again forever. A peer cannot cause this: the header is under the commit.
   */
  private resultFollows(block: Block, what: 'synced' | 'decided'): NodeError | undefined {
    if (bytesEqual(block.header.resultRoot, blockResultHash(this.tip.result))) return undefined
    const e = new NodeError(
      'CORRUPT_STORE',
      `${what} block ${block.header.height} names another result of block ${this.height} than this node computed: its state differs from the network's`,
    )
    this.halt(`following block ${block.header.height}`, e)
    return e
  }

  /** The stored block at `height` with its commit certificate (for serving sync). */
  async committedBlock(height: number): Promise<{ block: Block; commit: Commit } | undefined> {
    const [block, commit] = await Promise.all([this.chain.blockAt(height), this.chain.commitAt(height)])
    return block && commit ? { block, commit } : undefined
  }

  /** `via` says whether this node ran the block's height (consensus) or imported it (sync): only the former has a latency. */
  private async commitBlock(block: Block, commit: Commit, via: 'consensus' | 'sync'): Promise<void> {
    try {
      checkBlockCertSignatures(block, this.txCrypto)
    } catch (e) {
      // Consensus takes a block's bytes only when its certificate signatures verify (hashBlockBytes)
      // and sync checks them before it gets here, so this is a last guard. Consensus decided, so
      // the block is kept; its certificates are served from another node's copy
      // (lc_getCertificate refuses this one's).
      this.log.error('committed block carries bad certificate signatures', { height: block.header.height, error: (e as Error).message })
    }
    const t0 = performance.now()
    let ex: Awaited<ReturnType<typeof executeBlock>>
    let t1: number
    // From here until the block is the tip, the tree holds state the tip does not (stateSettled).
    let stored = () => {}
    this.storing = new Promise<void>((r) => {
      stored = r
    })
    try {
      try {
        ex = await executeBlock(this.tree, block, {
          params: this.options.genesis.params,
          crypto: nativeCrypto,
          ...(this.options.engine ? { engine: this.options.engine } : {}),
        })
        t1 = performance.now()
        // The WAL's entries below this height are settled by the block: trimmed in its write.
        const trim = this.wal.trimOps(block.header.height)
        await this.chain.commitBlock(block, commit, ex.receipts, ex.result, ex.commit.ops, ex.nextValidators, trim)
        this.wal.trimmed(trim)
      } catch (e) {
        // The state tree holds the block's state and the store does not: nothing after may run on it.
        this.halt(`committing block ${block.header.height}`, e)
        throw e
      }
      this.tree.markPersisted(ex.commit)
      if (ex.nextValidators) {
        const from = block.header.height + 2
        const was = this.role
        this.sets.push({ from, set: ex.nextValidators })
        this.log.info('validator set changes', { from, validators: ex.nextValidators.validators.map((v) => v.address) })
        if (was === 'standby' && this.role === 'validator')
          this.log.info("this node's validator key is in the validator set now: it votes from the height the set takes over", { from })
        else if (was === 'validator' && this.role === 'standby')
          this.log.warn("this node's validator key has left the validator set: it stops voting from the height the new set takes over", {
            from,
          })
      }
      this.nonceEpoch++
      // The block's senders' nonces changed: take them from the state its execution left (no store
      // read), or forget them when that view cannot say.
      for (const tx of block.transactions) {
        const acc = peekAccount(this.tree, tx.body.from)
        if (acc === undefined) this.nonces.delete(tx.body.from)
        else this.cacheNonce(tx.body.from, acc.nonce)
      }
      // The new tip shows together with the state it committed (no await between them), so a reader
      // never sees the block's state under the previous height.
      this.tip = { header: block.header, result: ex.result, commit }
    } finally {
      this.storing = undefined
      stored()
    }
    this.resultPending = block.transactions.length > 0
    if (this.stallTimer && this.heightStarted <= block.header.height) {
      clearTimeout(this.stallTimer)
      this.stallTimer = undefined
    }
    for (const [t, height] of this.consensusTimers)
      if (height <= block.header.height) {
        clearTimeout(t)
        this.consensusTimers.delete(t)
      }
    const t2 = performance.now()
    if (block.transactions.some((tx) => tx.body.to === GOVERNANCE_ADDRESS)) await this.refreshAdmission(block.header.height)
    this.lastCommitMs = this.clock()
    const c = this.counters
    c.blocks++
    c.transactions += block.transactions.length
    if (commit.round > 0) c.roundsAboveZero++
    // Decided with the network at its latest height: in step, whether or not a sync round has run.
    if (via === 'consensus') this.syncChecked = true
    // A synced block's height never started here (or started long ago, before this node fell behind).
    const measured = via === 'consensus' && this.heightStarted === block.header.height
    if (measured) {
      c.lastCommitLatencyMs = Math.max(0, this.lastCommitMs - c.heightStartedAtMs)
      c.commitLatencySumMs += c.lastCommitLatencyMs
      c.commitLatencyCount++
    }
    // The block is stored: what follows (its listeners, the watchtower among them, its header to
    // light clients, the next height) must run even if the pool cannot be pruned now (a nonce read
    // from the store failed). The next block's prune, or the expiry timer's, drops what is stale.
    await this.mempool
      .prune(this.clock() * 1000, block.transactions)
      .catch((e: unknown) => this.log.warn('mempool: pruning after a block failed', { height: block.header.height, error: String(e) }))
    const hash = blockHash(block.header)
    this.log.info('block committed', {
      height: block.header.height,
      round: commit.round,
      txs: block.transactions.length,
      hash: toHex(hash).slice(0, 16),
      ...(measured ? { latencyMs: c.lastCommitLatencyMs } : { via }),
      executeMs: Math.round(t1 - t0),
      storeMs: Math.round(t2 - t1),
    })
    if (this.stallWarned && block.header.height === this.heightStarted) {
      this.stallWarned = false
      this.log.info(STALL_ENDED_MESSAGE, {
        height: block.header.height,
        round: commit.round,
        seconds: Math.floor((this.lastCommitMs - c.heightStartedAtMs) / 1000),
        via,
      })
    }
    this.network?.publishHeader?.(encode(signedHeaderCodec, { header: block.header, commit }))
    const committed: CommittedBlock = { block, hash, commit, receipts: ex.receipts, result: ex.result }
    for (const f of this.listeners) {
      try {
        f(committed)
      } catch (e) {
        this.log.warn('a block listener failed', { error: String(e) })
      }
    }
    // A synced block can land while consensus still works on it: move consensus past it.
    if (this.heightStarted <= block.header.height) this.heightStarted = block.header.height
    // Let the machine's own outputs (it already moved to `committed`) finish before the next height.
    queueMicrotask(() => this.maybeStartHeight())
  }
}
