/**
 * The light client: it pins a chain's genesis validator set and from there verifies everything a
 * full node tells it (DESIGN.md, "Trust for light clients"). Sync reaches the tip of a long chain
 * through the validator-set changes — one verified header per change and the tip — instead of
 * every header. Verified headers, the followed set changes and the checkpoint go to a
 * {@link LightStore} (IndexedDB in browsers), so a reload starts from there and works offline.
 * Full nodes are trusted for availability only: a header, set change or proof that does not
 * verify is a `PEER_FAULT`, and two validly signed headers at one height are a conflict.
 */
import {
  type BlockHeader,
  type BlockResult,
  blockHash,
  bytesEqual,
  type Codec,
  type CryptoProvider,
  checkHeaderLink,
  DecodeError,
  decode,
  encode,
  extendValidatorSets,
  followValidatorSets,
  headersRequestCodec,
  headersResponseCodec,
  LightError,
  type LightProtocol,
  nobleCrypto,
  RequestError,
  type SetInForce,
  type SignedHeader,
  type StateProof,
  setAt,
  setChangesPageCodec,
  setChangesRequestCodec,
  signedHeaderCodec,
  stateProofAnswerCodec,
  stateProofRequestCodec,
  type Transaction,
  transactionCodec,
  uvarint,
  type ValidatorSet,
  type ValidatorSetChange,
  validatorSetHash,
  verifySignedHeader,
  verifyStateAgainstHeader,
  ZERO_HASH,
} from '@loopchain/core'
import { LightClientError } from './errors.js'
import { Emitter, type LightLogger, silentLightLogger } from './events.js'
import { type LightCheckpoint, type LightStore, MemoryLightStore } from './store.js'
import type { HeaderVerdict, LightTransport } from './transport.js'

/** What a light client pins: the chain's identity and its genesis validator set (a `Genesis` fits). */
export interface TrustedGenesis {
  readonly chainId: string
  readonly networkId: number
  readonly validators: ValidatorSet
}

/** Options of {@link LightClient.open}. */
export interface LightClientOptions {
  /** The pinned genesis. */
  readonly genesis: TrustedGenesis
  /** Where verified data is kept; default a {@link MemoryLightStore}. */
  readonly store?: LightStore
  /** How full nodes are reached; without one the client works offline from its store. */
  readonly transport?: LightTransport
  /** Signature verification; default the core's noble ed25519. */
  readonly crypto?: CryptoProvider
  readonly logger?: LightLogger
  /** Ordinary headers kept below the tip; older ones are pruned (set-change headers stay). Default 10,000. */
  readonly keepHeaders?: number
  /** Per-request time limit. Default 10 s. */
  readonly requestTimeoutMs?: number
  /** After each sync, compare the new tip with a second connected node, when there is one. Default true. */
  readonly crossCheck?: boolean
}

/** What {@link LightClient.sync} did. */
export interface SyncResult {
  /** The full node that answered. */
  readonly peer: string
  /** The verified tip after the sync. */
  readonly height: number
  readonly hash: Uint8Array
  /** Validator-set changes newly followed. */
  readonly setChanges: number
  /** Headers whose commit signatures were verified (the set-change headers and the tip). */
  readonly verifiedHeaders: number
  /** True when the node was behind the verified tip (the tip did not move). */
  readonly behind: boolean
  /** The comparison with a second node (absent when none was connected or it is turned off). */
  readonly crossCheck?: CrossCheckResult
}

/** Two validly signed, different headers at one height: the chain forked, or a set's keys leaked. */
export interface Conflict {
  readonly height: number
  /** The header this client holds. */
  readonly ours: SignedHeader
  /** The other node's header. */
  readonly theirs: SignedHeader
  /** The node that reported `theirs`. */
  readonly peer: string
  /** The node `ours` came from, when known. */
  readonly primary: string | undefined
}

/** The outcome of {@link LightClient.crossCheck}. */
export type CrossCheckResult =
  | { readonly status: 'agree'; readonly peer: string; readonly height: number; readonly theirHeight: number }
  | { readonly status: 'conflict'; readonly peer: string; readonly conflict: Conflict }
  | { readonly status: 'faulty'; readonly peer: string; readonly error: LightClientError }
  | { readonly status: 'unavailable'; readonly error?: unknown }

/** A state value (or its absence) verified against a verified header. */
export interface VerifiedState {
  /** The header whose `resultRoot` commits to the state (the state after block `height − 1`). */
  readonly height: number
  readonly header: BlockHeader
  readonly key: Uint8Array
  /** The value, or `undefined` when the key is absent (proven absent). */
  readonly value: Uint8Array | undefined
  readonly result: BlockResult
  readonly proof: StateProof
  /** The node that supplied the proof. */
  readonly peer: string
}

/** Events of a {@link LightClient}. */
export interface LightClientEvents extends Record<string, unknown> {
  /** A new verified tip (from sync or gossip). */
  header: SignedHeader
  /** Two validly signed headers at one height. */
  conflict: Conflict
  /** A full node sent something that does not verify. */
  fault: { readonly peer: string; readonly error: LightClientError }
}

const EMPTY = new Uint8Array(0)
// Set-change pages a sync follows before giving up on a node that keeps saying "more".
const MAX_SET_PAGES = 1024
// Ordinary headers kept below the tip: about 10 MB with small validator sets.
const DEFAULT_KEEP_HEADERS = 10_000

const sameHeader = (a: SignedHeader, b: SignedHeader): boolean => bytesEqual(blockHash(a.header), blockHash(b.header))

/**
 * A light client of one chain. Create with {@link LightClient.open}.
 *
 * @example
 * ```ts
 * const client = await LightClient.open({ genesis, store: await IndexedDbLightStore.open({ chainId }), transport })
 * await client.sync()
 * const { value } = await client.getStateProof(key)
 * ```
 */
export class LightClient {
  private sets: SetInForce[]
  private changes: ValidatorSetChange[]
  private tipHeader: SignedHeader | undefined
  private setsKnownThrough: number
  private lastPeer: string | undefined
  private queue: Promise<unknown> = Promise.resolve()
  private readonly emitter = new Emitter<LightClientEvents>()
  private readonly unsubscribers = new Set<() => void>()
  private syncQueued = false
  private prunedBelow = 0
  private closed = false
  private readonly crypto: CryptoProvider
  private readonly log: LightLogger
  private readonly genesisSetHash: Uint8Array
  /** Conflicts found so far (also emitted as `conflict`). */
  readonly conflicts: Conflict[] = []

  private constructor(
    private readonly options: LightClientOptions,
    readonly store: LightStore,
    state: { sets: SetInForce[]; changes: ValidatorSetChange[]; tip: SignedHeader | undefined; known: number },
  ) {
    this.crypto = options.crypto ?? nobleCrypto
    this.log = options.logger ?? silentLightLogger
    this.genesisSetHash = validatorSetHash(options.genesis.validators)
    this.sets = state.sets
    this.changes = state.changes
    this.tipHeader = state.tip
    this.setsKnownThrough = state.known
  }

  /**
   * Opens a client on `options.store`, resuming from what it holds: the stored set changes are
   * followed again from the pinned genesis and the stored tip re-verified, so a tampered or
   * foreign store is refused (`STORE_MISMATCH`) instead of trusted. Needs no network.
   */
  static async open(options: LightClientOptions): Promise<LightClient> {
    const g = options.genesis
    const crypto = options.crypto ?? nobleCrypto
    const store = options.store ?? new MemoryLightStore()
    let snapshot: Awaited<ReturnType<LightStore['load']>>
    try {
      snapshot = await store.load()
    } catch (cause) {
      // Records this version cannot read (written by another, or damaged) are a store to start
      // over, like a foreign one: the page offers that for STORE_MISMATCH, and would stay stuck.
      if (!(cause instanceof DecodeError)) throw cause
      throw new LightClientError('STORE_MISMATCH', `the store holds records this version cannot read: ${cause.message}`, {
        penalize: false,
        cause,
      })
    }
    if (snapshot === undefined) {
      return new LightClient(options, store, { sets: [{ from: 1, set: g.validators }], changes: [], tip: undefined, known: 0 })
    }
    const c = snapshot.checkpoint
    if (c.chainId !== g.chainId || c.networkId !== g.networkId || !bytesEqual(c.genesisSetHash, validatorSetHash(g.validators))) {
      throw new LightClientError('STORE_MISMATCH', `the store belongs to chain ${c.chainId} (network ${c.networkId}) or another genesis`, {
        penalize: false,
      })
    }
    try {
      const sets = followValidatorSets(g, snapshot.changes, crypto)
      let tip: SignedHeader | undefined
      if (c.height > 0) {
        tip = await store.header(c.height)
        if (tip === undefined || !bytesEqual(blockHash(tip.header), c.hash)) {
          throw new LightClientError('STORE_MISMATCH', `the store lacks its checkpoint header ${c.height}`, { penalize: false })
        }
        verifySignedHeader(tip, setAt(sets, c.height), g.networkId, crypto)
      }
      return new LightClient(options, store, { sets, changes: [...snapshot.changes], tip, known: c.setsKnownThrough })
    } catch (cause) {
      if (cause instanceof LightClientError) throw cause
      throw new LightClientError('STORE_MISMATCH', `the stored headers do not verify: ${(cause as Error).message}`, {
        penalize: false,
        cause,
      })
    }
  }

  /** The chain this client follows. */
  get chainId(): string {
    return this.options.genesis.chainId
  }

  /** The verified tip, or undefined before the first sync. */
  get tip(): SignedHeader | undefined {
    return this.tipHeader
  }

  /** Height of the verified tip (0 before the first sync). */
  get height(): number {
    return this.tipHeader?.header.height ?? 0
  }

  /** Every validator set known, each with the first height it votes on, genesis first. */
  get validatorSets(): readonly SetInForce[] {
    return this.sets
  }

  /** The validator-set changes followed so far, in height order. */
  get setChanges(): readonly ValidatorSetChange[] {
    return this.changes
  }

  /** Calls `listener` on each `event`; returns the function that removes it. */
  on<E extends keyof LightClientEvents>(event: E, listener: (value: LightClientEvents[E]) => void): () => void {
    return this.emitter.on(event, listener)
  }

  /** Whether the set voting on `height` is known: set changes are followed through header `height − 1`. */
  knowsValidatorsAt(height: number): boolean {
    return height - 1 <= this.setsKnownThrough
  }

  /**
   * The validator set voting on `height`. Known up to one height past the last header whose set
   * changes were followed; above that it throws `NOT_VERIFIED` (sync first).
   */
  validatorsAt(height: number): ValidatorSet {
    if (!this.knowsValidatorsAt(height)) {
      throw new LightClientError('NOT_VERIFIED', `set changes are followed through header ${this.setsKnownThrough}, not ${height - 1}`, {
        penalize: false,
      })
    }
    return setAt(this.sets, height)
  }

  /**
   * Verifies a signed header offline against the validator sets already followed (a header from a
   * certificate file, say) and returns it; throws `LightError` when it does not verify and
   * `NOT_VERIFIED` when its height's set is not known yet. Nothing is stored.
   */
  checkHeader(sh: SignedHeader): SignedHeader {
    verifySignedHeader(sh, this.validatorsAt(sh.header.height), this.options.genesis.networkId, this.crypto)
    return sh
  }

  /**
   * Verifies a state value offline (a certificate's revocation status from a file, say): `signed`
   * against the validator sets already followed, then `answer` against that header. Throws
   * `LightError` when either does not verify and `NOT_VERIFIED` when the header's set is unknown.
   */
  checkState(
    signed: SignedHeader,
    key: Uint8Array,
    answer: { readonly result: BlockResult; readonly value: Uint8Array | undefined; readonly proof: StateProof },
  ): Omit<VerifiedState, 'peer'> {
    this.checkHeader(signed)
    verifyStateAgainstHeader(signed.header, key, answer)
    return { height: signed.header.height, header: signed.header, key, value: answer.value, result: answer.result, proof: answer.proof }
  }

  /**
   * Moves the verified tip to a full node's tip: asks its tip, follows the set changes it
   * announces since the last sync (each verified against the set before it), verifies the tip
   * against the set in force at its height, and stores the lot in one write. Tries the connected
   * nodes in turn (`opts.peer`: only that one), then cross-checks the new tip with another node
   * when one is connected. Throws `PEER_FAULT` when a node's answers do not verify, `CONFLICT`
   * when its tip contradicts the verified one, `NO_PEER` offline, `UNAVAILABLE` when none answered.
   */
  async sync(opts: { peer?: string } = {}): Promise<SyncResult> {
    const synced = await this.exclusive(async () => {
      const peers = this.candidatePeers(opts.peer)
      const errors: unknown[] = []
      // A node whose tip is not past the verified one (it lags, or holds back the chain) does not
      // end the sync: the next may be ahead. Otherwise one stale node, asked first, would keep the
      // client on an old tip (and an old certificate status) with an honest node connected.
      let notAhead: SyncResult | undefined
      for (const peer of peers) {
        try {
          const r = await this.syncFrom(peer)
          if (!r.behind) return r
          notAhead ??= r
        } catch (err) {
          if (err instanceof LightClientError && err.code === 'CLOSED') throw err
          this.log.warn('sync: a node failed', { peer, error: String(err) })
          errors.push(err)
        }
      }
      if (notAhead !== undefined) return notAhead
      throw this.failure('sync', errors)
    })
    if (this.options.crossCheck === false || (this.options.transport?.peers() ?? []).every((p) => p === synced.peer)) return synced
    // Outside the exclusive section: the check may fetch (and store) a header of our own.
    return { ...synced, crossCheck: await this.crossCheck() }
  }

  /**
   * The verified header at `height` (at most the verified tip): from the store, or fetched from a
   * node and verified against the set in force at that height. Offline, only stored headers.
   */
  async verifiedHeaderAt(height: number): Promise<SignedHeader> {
    this.live()
    if (!Number.isSafeInteger(height) || height < 1) throw new RangeError(`height must be a positive integer, got ${height}`)
    const tip = this.tipHeader
    if (tip === undefined || height > tip.header.height) {
      throw new LightClientError('NOT_VERIFIED', `header ${height} is above the verified tip ${this.height}: sync first`, {
        penalize: false,
      })
    }
    if (height === tip.header.height) return tip
    const stored = (await this.store.header(height)) ?? this.changes.find((c) => c.signed.header.height === height)?.signed
    if (stored !== undefined) return stored
    if (this.options.transport === undefined) {
      throw new LightClientError('NOT_VERIFIED', `header ${height} is not stored and the client is offline`, { penalize: false })
    }
    const errors: unknown[] = []
    for (const peer of this.candidatePeers()) {
      try {
        const got = await this.ask(peer, 'headers', encode(headersRequestCodec, { from: height, count: 1 }), headersResponseCodec)
        const sh = got[0]
        if (sh === undefined || sh.header.height !== height) {
          throw this.fault(peer, 'WRONG_HEIGHT', new Error(`asked for header ${height}, got ${sh ? `header ${sh.header.height}` : 'none'}`))
        }
        this.verifyFrom(peer, sh, this.sets)
        await this.exclusive(() => this.store.save({ headers: [sh], changes: [], checkpoint: this.checkpoint() }))
        return sh
      } catch (err) {
        errors.push(err)
      }
    }
    throw this.failure(`header ${height}`, errors)
  }

  /**
   * The value under state `key` — or its proven absence — verified against a verified header:
   * `opts.height` (default the verified tip), which commits to the state after block `height − 1`.
   * A node whose proof does not hold is a `PEER_FAULT`, and the next node is asked.
   */
  /**
   * Submits a signed transaction to a connected full node (the next one when a node cannot be
   * reached); resolves with its hash once a node admitted it to its pool. A refusal (bad nonce,
   * full pool, bad signature…) is {@link LightClientError} `REFUSED` with the node's code. What the
   * transaction did is read later with {@link getStateProof}: a node cannot fake it.
   */
  async submitTransaction(tx: Transaction | Uint8Array): Promise<Uint8Array> {
    const hash = await this.write('submit', tx instanceof Uint8Array ? tx : encode(transactionCodec, tx))
    if (hash.length !== 32)
      throw new LightClientError('UNAVAILABLE', 'a node answered a submission with no transaction hash', { penalize: false })
    return hash
  }

  /**
   * Hands an encoded co-signed channel state, optionally followed by the peer's revocations (an
   * encoded `WatchRequest`), to a connected node's watchtower; resolves with the seq it holds.
   */
  async watchChannel(request: Uint8Array): Promise<number> {
    return decode(uvarint, await this.write('watch', request))
  }

  private async write(protocol: 'submit' | 'watch', bytes: Uint8Array): Promise<Uint8Array> {
    const transport = this.options.transport
    const errors: unknown[] = []
    for (const peer of this.candidatePeers()) {
      try {
        return await (transport as LightTransport).request(peer, protocol, bytes, { timeoutMs: this.options.requestTimeoutMs ?? 10_000 })
      } catch (err) {
        const remote = err instanceof RequestError ? (err.details as { remote?: boolean; remoteCode?: string }) : undefined
        // The node judged it (not "I do not serve this"): every node would; say why.
        if (remote?.remote === true && remote.remoteCode !== undefined && remote.remoteCode !== 'NOT_FOUND')
          throw new LightClientError('REFUSED', (err as Error).message, { penalize: false, details: { peer, code: remote.remoteCode } })
        errors.push(err)
      }
    }
    throw this.failure(protocol, errors)
  }

  async getStateProof(key: Uint8Array, opts: { height?: number } = {}): Promise<VerifiedState> {
    this.live()
    if (opts.height === undefined && this.tipHeader === undefined) {
      throw new LightClientError('NOT_VERIFIED', 'no verified header yet: sync first', { penalize: false })
    }
    const height = opts.height ?? this.height
    const sh = await this.verifiedHeaderAt(height)
    const errors: unknown[] = []
    for (const peer of this.candidatePeers()) {
      try {
        const answer = await this.ask(peer, 'proof', encode(stateProofRequestCodec, { key, height }), stateProofAnswerCodec)
        if (answer.height !== height) {
          throw this.fault(peer, 'WRONG_HEIGHT', new Error(`asked for the state at header ${height}, got ${answer.height}`))
        }
        try {
          verifyStateAgainstHeader(sh.header, key, answer)
        } catch (err) {
          if (err instanceof LightError) throw this.fault(peer, err.code, err)
          throw err
        }
        return { height, header: sh.header, key, value: answer.value, result: answer.result, proof: answer.proof, peer }
      } catch (err) {
        errors.push(err)
      }
    }
    throw this.failure(`state proof at ${height}`, errors)
  }

  /**
   * Compares the verified tip with another full node's (`opts.peer`, or a connected node other
   * than the one the tip came from): both headers at the lower of the two heights must be the
   * same. A validly signed different header is a {@link Conflict} (emitted as `conflict`); a
   * header that does not verify makes the node `faulty`. Read-only: nothing is stored.
   */
  async crossCheck(opts: { peer?: string } = {}): Promise<CrossCheckResult> {
    this.live()
    const ours = this.tipHeader
    if (ours === undefined) throw new LightClientError('NOT_VERIFIED', 'nothing to cross-check before the first sync', { penalize: false })
    const transport = this.options.transport
    const peers = opts.peer !== undefined ? [opts.peer] : (transport?.peers() ?? []).filter((p) => p !== this.lastPeer)
    let lastError: unknown
    for (const peer of peers) {
      try {
        const theirs = await this.ask(peer, 'tip', EMPTY, signedHeaderCodec)
        let sets = this.sets
        // Their tip may be past set changes this client has not followed yet: follow them from the
        // same node (each still verified from the pinned genesis on).
        if (theirs.header.height - 1 > this.setsKnownThrough) sets = (await this.fetchChanges(peer, sets, this.setsKnownThrough)).sets
        this.verifyFrom(peer, theirs, sets)
        const height = Math.min(ours.header.height, theirs.header.height)
        const oursAt = height === ours.header.height ? ours : await this.verifiedHeaderAt(height)
        let theirsAt = theirs
        if (height !== theirs.header.height) {
          const got = await this.ask(peer, 'headers', encode(headersRequestCodec, { from: height, count: 1 }), headersResponseCodec)
          const sh = got[0]
          if (sh === undefined || sh.header.height !== height)
            throw this.fault(peer, 'WRONG_HEIGHT', new Error(`no header ${height} in the answer`))
          this.verifyFrom(peer, sh, sets)
          theirsAt = sh
        }
        if (sameHeader(oursAt, theirsAt)) return { status: 'agree', peer, height, theirHeight: theirs.header.height }
        return {
          status: 'conflict',
          peer,
          conflict: this.reportConflict({ height, ours: oursAt, theirs: theirsAt, peer, primary: this.lastPeer }),
        }
      } catch (err) {
        // A fault of this node settles the check; one of the primary (fetching our own header) does not.
        if (err instanceof LightClientError && err.code === 'PEER_FAULT' && err.details.peer === peer)
          return { status: 'faulty', peer, error: err }
        lastError = err
      }
    }
    return lastError === undefined ? { status: 'unavailable' } : { status: 'unavailable', error: lastError }
  }

  /**
   * Follows new headers gossiped on the chain's `header` topic: each is verified against the set
   * in force at its height (and linked to the tip when it is the next one), stored, and emitted
   * as `header`. A header past set changes not yet followed starts a sync. Returns the function
   * that stops following.
   */
  follow(): () => void {
    this.live()
    const transport = this.options.transport
    if (transport === undefined) throw new LightClientError('NO_PEER', 'the client has no transport: it is offline', { penalize: false })
    const off = transport.subscribeHeaders((data, from) => this.onGossip(data, from))
    this.unsubscribers.add(off)
    return () => {
      off()
      this.unsubscribers.delete(off)
    }
  }

  /** Stops following gossip and closes the store and the transport. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const off of this.unsubscribers) off()
    this.unsubscribers.clear()
    await this.queue.catch(() => undefined)
    await this.store.close()
    await this.options.transport?.close()
  }

  // -------------------------------------------------------------------------------------------

  private async syncFrom(peer: string): Promise<SyncResult> {
    this.live()
    // The tip first, then the changes: the node's change list then covers every header up to the
    // tip (and maybe beyond), so a change the tip itself announces cannot slip between the two.
    const tip = await this.ask(peer, 'tip', EMPTY, signedHeaderCodec)
    const followed = await this.fetchChanges(peer, this.sets, this.setsKnownThrough)
    const h = tip.header.height
    this.verifyFrom(peer, tip, followed.sets)
    // A node that keeps back the change its tip announces would leave this client with the wrong
    // set for the next height.
    if (!bytesEqual(tip.header.nextValidatorsHash, validatorSetHash(setAt(followed.sets, h + 1)))) {
      throw this.fault(peer, 'WRONG_NEXT_SET', new Error(`the set changes sent do not include the one header ${h} announces`))
    }
    const known = Math.max(followed.through, h)
    const ours = this.tipHeader
    const verifiedHeaders = followed.changes.length + 1
    let next = tip
    if (ours !== undefined && h <= ours.header.height) {
      const mine = h === ours.header.height ? ours : await this.store.header(h)
      if (mine !== undefined && !sameHeader(mine, tip)) {
        const conflict = this.reportConflict({ height: h, ours: mine, theirs: tip, peer, primary: this.lastPeer })
        throw new LightClientError('CONFLICT', `node ${peer} reports a different header ${h} than the verified one`, {
          penalize: false,
          details: { peer, height: conflict.height },
        })
      }
      next = ours
    } else if (ours !== undefined && h === ours.header.height + 1) {
      try {
        checkHeaderLink(ours.header, tip.header)
      } catch (err) {
        throw this.fault(peer, 'BROKEN_LINK', err as Error)
      }
    }
    await this.commit(
      next === tip ? [tip, ...followed.changes.map((c) => c.signed)] : followed.changes.map((c) => c.signed),
      followed,
      next,
      known,
    )
    // A node behind the verified tip is not asked first next time.
    if (ours === undefined || h >= ours.header.height) this.lastPeer = peer
    this.log.info('sync: verified tip', { peer, height: next.header.height, setChanges: followed.changes.length })
    return {
      peer,
      height: next.header.height,
      hash: blockHash(next.header),
      setChanges: followed.changes.length,
      verifiedHeaders,
      behind: next !== tip,
    }
  }

  /** Follows a node's set changes announced after header `after`, page by page, verifying each. */
  private async fetchChanges(
    peer: string,
    sets: readonly SetInForce[],
    after: number,
  ): Promise<{ sets: SetInForce[]; changes: ValidatorSetChange[]; through: number }> {
    let current = [...sets]
    const changes: ValidatorSetChange[] = []
    let through = after
    for (let page = 0; page < MAX_SET_PAGES; page++) {
      const got = await this.ask(peer, 'sets', encode(setChangesRequestCodec, { after: through }), setChangesPageCodec)
      for (const c of got.changes) {
        if (c.signed.header.height <= through) {
          throw this.fault(peer, 'OUT_OF_ORDER', new Error(`set change at ${c.signed.header.height} is not after ${through}`))
        }
      }
      try {
        current = extendValidatorSets(current, this.options.genesis.networkId, got.changes, this.crypto)
      } catch (err) {
        if (err instanceof LightError) throw this.fault(peer, err.code, err)
        throw err
      }
      changes.push(...got.changes)
      const last = got.changes[got.changes.length - 1]
      if (last !== undefined) through = last.signed.header.height
      if (!got.more) return { sets: current, changes, through }
      if (last === undefined) throw this.fault(peer, 'MALFORMED', new Error('a set-change page says "more" but carries none'))
    }
    throw this.fault(peer, 'MALFORMED', new Error(`more than ${MAX_SET_PAGES} pages of set changes`))
  }

  private async onGossip(data: Uint8Array, from: string): Promise<HeaderVerdict> {
    if (this.closed) return 'ignore'
    let sh: SignedHeader
    try {
      sh = decode(signedHeaderCodec, data)
    } catch {
      return 'reject'
    }
    return this.exclusive(async (): Promise<HeaderVerdict> => {
      const h = sh.header.height
      const tip = this.tipHeader
      if (tip !== undefined && h <= tip.header.height) {
        const mine = h === tip.header.height ? tip : await this.store.header(h)
        if (mine === undefined || sameHeader(mine, sh)) return 'ignore'
        try {
          this.checkHeader(sh)
        } catch {
          return 'reject'
        }
        this.reportConflict({ height: h, ours: mine, theirs: sh, peer: from, primary: this.lastPeer })
        return 'ignore'
      }
      if (h < 1) return 'reject'
      if (h - 1 > this.setsKnownThrough) {
        // Set changes may lie between: follow them first (a sync), then this height is judged.
        this.queueSync()
        return 'ignore'
      }
      try {
        verifySignedHeader(sh, setAt(this.sets, h), this.options.genesis.networkId, this.crypto)
        if (tip !== undefined && h === tip.header.height + 1) checkHeaderLink(tip.header, sh.header)
      } catch (err) {
        this.log.debug('gossip: dropped a header that does not verify', { from, height: h, error: String(err) })
        return 'reject'
      }
      let followed = { sets: this.sets, changes: [] as ValidatorSetChange[], through: this.setsKnownThrough }
      let known = h
      if (!bytesEqual(sh.header.nextValidatorsHash, sh.header.validatorsHash)) {
        // The header announces a new set; its content comes from a node (gossip carries headers only).
        known = h - 1
        try {
          followed = await this.fetchChanges(from, this.sets, this.setsKnownThrough)
          if (followed.through >= h) known = followed.through
        } catch (err) {
          this.log.warn('gossip: could not follow the announced set change', { from, height: h, error: String(err) })
          followed = { sets: this.sets, changes: [], through: this.setsKnownThrough }
        }
      }
      await this.commit([sh, ...followed.changes.map((c) => c.signed)], followed, sh, Math.max(known, this.setsKnownThrough))
      return 'accept'
    })
  }

  /** Stores headers, changes and the new checkpoint in one write, then updates memory and tells listeners. */
  private async commit(
    headers: readonly SignedHeader[],
    followed: { sets: SetInForce[]; changes: readonly ValidatorSetChange[] },
    tip: SignedHeader,
    known: number,
  ): Promise<void> {
    const moved = this.tipHeader === undefined || !sameHeader(this.tipHeader, tip)
    const checkpoint: LightCheckpoint = {
      ...this.checkpoint(),
      height: tip.header.height,
      hash: blockHash(tip.header),
      setsKnownThrough: known,
    }
    await this.store.save({ headers, changes: followed.changes, checkpoint })
    this.sets = followed.sets
    this.changes = [...this.changes, ...followed.changes]
    this.tipHeader = tip
    this.setsKnownThrough = known
    if (moved) this.emitter.emit('header', tip, (err) => this.log.warn('a header listener failed', { error: String(err) }))
    const keep = this.options.keepHeaders ?? DEFAULT_KEEP_HEADERS
    const below = tip.header.height - keep
    // Pruning in steps of a tenth keeps it from running on every header.
    if (below > this.prunedBelow + Math.max(1, Math.floor(keep / 10))) {
      await this.store.pruneBelow(below)
      this.prunedBelow = below
    }
  }

  private checkpoint(): LightCheckpoint {
    const g = this.options.genesis
    const tip = this.tipHeader
    return {
      chainId: g.chainId,
      networkId: g.networkId,
      genesisSetHash: this.genesisSetHash,
      height: tip?.header.height ?? 0,
      hash: tip ? blockHash(tip.header) : ZERO_HASH,
      setsKnownThrough: this.setsKnownThrough,
    }
  }

  private verifyFrom(peer: string, sh: SignedHeader, sets: readonly SetInForce[]): void {
    try {
      verifySignedHeader(sh, setAt(sets, sh.header.height), this.options.genesis.networkId, this.crypto)
    } catch (err) {
      if (err instanceof LightError) throw this.fault(peer, err.code, err)
      throw err
    }
  }

  private async ask<T>(peer: string, protocol: LightProtocol, request: Uint8Array, codec: Codec<T>): Promise<T> {
    this.live()
    const transport = this.options.transport
    if (transport === undefined) throw new LightClientError('NO_PEER', 'the client has no transport: it is offline', { penalize: false })
    const bytes = await transport.request(peer, protocol, request, { timeoutMs: this.options.requestTimeoutMs ?? 10_000 })
    try {
      return decode(codec, bytes)
    } catch (err) {
      if (err instanceof DecodeError) throw this.fault(peer, 'MALFORMED', err)
      throw err
    }
  }

  private fault(peer: string, code: string, cause: Error): LightClientError {
    const error = new LightClientError('PEER_FAULT', `node ${peer}: ${cause.message}`, { details: { peer, code }, cause })
    this.log.warn('a node sent data that does not verify', { peer, code, error: cause.message })
    this.emitter.emit('fault', { peer, error }, (err) => this.log.warn('a fault listener failed', { error: String(err) }))
    return error
  }

  private reportConflict(conflict: Conflict): Conflict {
    this.conflicts.push(conflict)
    this.log.warn('conflicting headers', { height: conflict.height, peer: conflict.peer, primary: conflict.primary })
    this.emitter.emit('conflict', conflict, (err) => this.log.warn('a conflict listener failed', { error: String(err) }))
    return conflict
  }

  /** Picks the error to throw after every node failed: a fault first (it says the most), else `UNAVAILABLE`. */
  private failure(what: string, errors: unknown[]): Error {
    const fault =
      errors.find((e) => e instanceof LightClientError && e.code === 'CONFLICT') ??
      errors.find((e) => e instanceof LightClientError && e.code === 'PEER_FAULT')
    if (fault !== undefined) return fault as LightClientError
    if (errors.length === 1 && errors[0] instanceof LightClientError) return errors[0]
    return new LightClientError('UNAVAILABLE', `${what}: no node answered (${errors.map(String).join('; ')})`, {
      penalize: false,
      details: { errors: errors.map((e) => (e instanceof RequestError ? e.code : String(e))) },
    })
  }

  private candidatePeers(only?: string): string[] {
    this.live()
    const transport = this.options.transport
    if (transport === undefined) throw new LightClientError('NO_PEER', 'the client has no transport: it is offline', { penalize: false })
    const peers = only !== undefined ? [only] : transport.peers()
    if (peers.length === 0) throw new LightClientError('NO_PEER', 'no full node is connected', { penalize: false })
    // The node that served the last sync first: its answers fit the verified tip.
    return this.lastPeer !== undefined && peers.includes(this.lastPeer)
      ? [this.lastPeer, ...peers.filter((p) => p !== this.lastPeer)]
      : peers
  }

  private queueSync(): void {
    if (this.syncQueued) return
    this.syncQueued = true
    void this.sync()
      .catch((err: unknown) => this.log.warn('sync after gossip failed', { error: String(err) }))
      .finally(() => {
        this.syncQueued = false
      })
  }

  /** Runs `f` after every earlier state change: sync, gossip and stores never interleave. */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.queue.then(f)
    this.queue = run.catch(() => undefined)
    return run
  }

  private live(): void {
    if (this.closed) throw new LightClientError('CLOSED', 'the light client is closed', { penalize: false })
  }
}
