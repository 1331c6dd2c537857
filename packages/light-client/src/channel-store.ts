/**
 * Where a channel wallet keeps its key and its channels: the session snapshot (latest co-signed
 * state, own pending proposals, counters), what it knows of the peer and of the chain, and the
 * private messages. In a browser it is IndexedDB (one database per chain and wallet); the
 * in-memory twin serves unit tests and Node tools.
 *
 * The wallet writes a channel's record before it acknowledges anything the record reflects
 * (docs/channels.md, "Saved before acknowledged"), so a reload or a crash resumes from the last
 * acknowledged state. Values are stored by structured clone (Uint8Array and bigint included).
 */
import { type DBSchema, type IDBPDatabase, openDB } from 'idb'

/** Where a channel stands, from the wallet's view. */
export type ChannelPhase = 'proposed' | 'opening' | 'open' | 'closing' | 'closed'

/** One private message as the wallet keeps it. */
export interface StoredMessage {
  /** 'me' or 'peer'. */
  readonly from: 'me' | 'peer'
  readonly seq: number
  readonly text: string
  /** Wall-clock milliseconds when it was sent or received (display only). */
  readonly at: number
}

/** A channel as the wallet keeps it. `snapshot` is the protocol session's own plain snapshot. */
export interface ChannelRecord {
  /** 0x hex of the channel id once known; before the open transaction, a local id. */
  readonly id: string
  /** My party index: 0 opened it, 1 joined. */
  readonly me: 0 | 1
  readonly phase: ChannelPhase
  readonly peer: {
    readonly address: string
    /** 0x hex of the peer's ed25519 public key. */
    readonly publicKey: string
    /** Where the peer's page was last reached (a /p2p-circuit/webrtc multiaddr), if known. */
    readonly link?: string
    /** A name the user gave the peer. */
    readonly label?: string
  }
  readonly deposits: readonly [bigint, bigint]
  readonly challengePeriod: number
  /** 0x hash of the open transaction, when sent (the last try: see `openTries`). */
  readonly openTx?: string
  /**
   * Every open transaction tried, as `0x<hash>@<nonce>`, each saved before it left: a try whose
   * answer was lost may reach the chain beside the retry, and its channel is then cancelled.
   */
  readonly openTries?: readonly string[]
  /** My proposal's local id, by which the peer knows it until told the channel ({@link ChannelRecord.openTx}). */
  readonly proposedAs?: string
  /** The protocol session's snapshot (absent until the channel is open). */
  readonly snapshot?: unknown
  /** Latest private messages, oldest first (bounded). */
  readonly messages: readonly StoredMessage[]
  /** How it ended, when it did. */
  readonly outcome?: string
  /**
   * 0x hash locks of payments I offered here that the peer settled off chain or redeemed on chain
   * (the newest {@link MAX_PAID_LOCKS}): paying the same invoice again would pay it twice.
   */
  readonly paid?: readonly string[]
  /**
   * A hub's: 0x preimages of the payments it offered here that the peer settled (the newest
   * {@link MAX_PAID_LOCKS}), kept in the same write as the state that settled them. Each collects
   * the payment the hub was paid on another channel; read after a restart that came before it did.
   */
  readonly forwarded?: readonly string[]
  /**
   * A hub's: which payment each of its offers here forwards, as `0x<hash lock>=<channel id>:<payment
   * id>`, written by the save that records the offer (a proposal leaves before its save) and dropped
   * once it is settled, given back or expired, or read back at a restart without its offer: a
   * restarted hub settles with the right payer.
   */
  readonly forwardedFrom?: readonly string[]
  /**
   * 0x hash locks of my invoices whose payment I settled here (the newest {@link MAX_PAID_LOCKS}),
   * written durably before the settlement leaves: another payment of one of them is given back,
   * not taken (a payer that lost its state in a crash, or paid twice, is not charged twice).
   */
  readonly received?: readonly string[]
  /**
   * My invoices made while this channel was open, as `0x<hash lock>=<amount>` (the newest
   * {@link MAX_PAID_LOCKS}), written with the session that remembers their preimages: a payment
   * of less than its invoice asks is given back, also after a reload.
   */
  readonly invoices?: readonly string[]
  /** 0x hash locks of my payments left in the channel when it went on chain: settled there, or not at all. */
  readonly settlingOnChain?: readonly string[]
  /** Wall-clock milliseconds of the last change (display only). */
  readonly updatedAt: number
}

/** Private messages kept per channel; older ones are dropped. */
export const MAX_STORED_MESSAGES = 500
/** Hash locks of paid payments kept per channel; older ones are dropped (and could be paid again). */
export const MAX_PAID_LOCKS = 10_000

/** A wallet's persistent store. */
export interface ChannelStore {
  /** The wallet's 32-byte secret key, if one was made or loaded. */
  loadKey(): Promise<Uint8Array | undefined>
  saveKey(secretKey: Uint8Array): Promise<void>
  list(): Promise<ChannelRecord[]>
  get(id: string): Promise<ChannelRecord | undefined>
  /**
   * Writes a record (whole). `durable` (the default) means on disk before it resolves — a write that an
   * acknowledgement waits for; `durable: false` may resolve once the system has it (a browser
   * crash keeps it, a power loss may not) — a write nothing waits for.
   */
  put(record: ChannelRecord, opts?: { durable?: boolean }): Promise<void>
  /** Replaces the record under `oldId` by `record` (a local id becoming the chain's id), atomically. */
  rename(oldId: string, record: ChannelRecord): Promise<void>
  close(): Promise<void>
}

/** The in-memory {@link ChannelStore} (structured clones in and out, like IndexedDB). */
export class MemoryChannelStore implements ChannelStore {
  private key: Uint8Array | undefined
  private readonly records = new Map<string, ChannelRecord>()

  async loadKey(): Promise<Uint8Array | undefined> {
    return this.key?.slice()
  }
  async saveKey(secretKey: Uint8Array): Promise<void> {
    this.key = secretKey.slice()
  }
  async list(): Promise<ChannelRecord[]> {
    return [...this.records.values()].map((r) => structuredClone(r))
  }
  async get(id: string): Promise<ChannelRecord | undefined> {
    const r = this.records.get(id)
    return r === undefined ? undefined : structuredClone(r)
  }
  async put(record: ChannelRecord): Promise<void> {
    this.records.set(record.id, structuredClone(record))
  }
  async rename(oldId: string, record: ChannelRecord): Promise<void> {
    this.records.delete(oldId)
    this.records.set(record.id, structuredClone(record))
  }
  async close(): Promise<void> {}
}

interface WalletDB extends DBSchema {
  channels: { key: string; value: ChannelRecord }
  wallet: { key: string; value: Uint8Array }
}

const DB_VERSION = 1

/**
 * The browser's {@link ChannelStore} in IndexedDB. Writes ask for strict durability (flushed to
 * disk before they complete: a state is on disk before the wallet acknowledges it) unless the
 * caller says nothing waits for them; Chromium's own default has been relaxed since version 121.
 */
export class IndexedDbChannelStore implements ChannelStore {
  private constructor(private readonly db: IDBPDatabase<WalletDB>) {}

  /** Opens (or creates) `loopchain-wallet-<chainId>` (or `name`). */
  static async open(opts: { chainId: string; name?: string }): Promise<IndexedDbChannelStore> {
    const db = await openDB<WalletDB>(opts.name ?? `loopchain-wallet-${opts.chainId}`, DB_VERSION, {
      upgrade(db) {
        if (!db.objectStoreNames.contains('channels')) db.createObjectStore('channels', { keyPath: 'id' })
        if (!db.objectStoreNames.contains('wallet')) db.createObjectStore('wallet')
      },
    })
    return new IndexedDbChannelStore(db)
  }

  async loadKey(): Promise<Uint8Array | undefined> {
    return this.db.get('wallet', 'secretKey')
  }
  async saveKey(secretKey: Uint8Array): Promise<void> {
    await this.db.put('wallet', secretKey.slice(), 'secretKey')
  }
  async list(): Promise<ChannelRecord[]> {
    return this.db.getAll('channels')
  }
  async get(id: string): Promise<ChannelRecord | undefined> {
    return this.db.get('channels', id)
  }
  async put(record: ChannelRecord, opts?: { durable?: boolean }): Promise<void> {
    const tx = this.db.transaction('channels', 'readwrite', { durability: opts?.durable === false ? 'relaxed' : 'strict' })
    await Promise.all([tx.store.put(record), tx.done])
  }
  async rename(oldId: string, record: ChannelRecord): Promise<void> {
    const tx = this.db.transaction('channels', 'readwrite', { durability: 'strict' })
    await Promise.all([tx.store.delete(oldId), tx.store.put(record), tx.done])
  }
  async close(): Promise<void> {
    this.db.close()
  }
}
