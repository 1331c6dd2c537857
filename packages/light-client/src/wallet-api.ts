/**
 * What a page sees of the channel wallet (channel-wallet.ts): plain, immutable views it renders,
 * and the actions it can take. Amounts are bigints in the chain's smallest unit.
 */
import type { ChannelPhase, StoredMessage } from './channel-store.js'

/** How the link to a channel's peer runs. */
export type LinkKind = 'direct' | 'relayed' | 'none'

/** The chain's record of a channel, read with a state proof against a verified header. */
export interface OnChainChannel {
  /** 'opening' | 'open' | 'closing' | 'closed'. */
  readonly status: string
  /** Height of the verified header the proof was checked against. */
  readonly provenAt: number
  /** For a closing channel: who closed (0 or 1), with which seq, and the last height for a challenge. */
  readonly closer?: 0 | 1
  readonly closedSeq?: number
  readonly deadline?: number
  /** For a closed channel: how it ended ('cooperative' | 'unilateral' | 'penalised' | 'cancelled'). */
  readonly outcome?: string
}

/** One channel as the page shows it. */
export interface WalletChannel {
  /** 0x hex channel id (a local id before the open transaction). */
  readonly id: string
  readonly phase: ChannelPhase
  /** My party: 0 opened the channel, 1 joined. */
  readonly me: 0 | 1
  readonly peer: { readonly address: string; readonly publicKey: string; readonly label?: string }
  readonly deposits: readonly [bigint, bigint]
  readonly myBalance: bigint
  readonly peerBalance: bigint
  /** Number of the latest state both signed (0: the deposits). */
  readonly seq: number
  /** Payments in flight (hash-locked), both ways. */
  readonly pendingPayments: number
  /** The peer revoked its states below this number: a close by the peer with one of them is penalised (absent: none yet). */
  readonly peerRevokedBelow?: number
  readonly link: LinkKind
  readonly messages: readonly StoredMessage[]
  readonly onChain?: OnChainChannel
  /** The latest seq handed to my institution's watchtower, if any. */
  readonly watchedSeq?: number
  /** The last thing that went wrong on this channel, in words. */
  readonly error?: string
}

/** The wallet as the page shows it. */
export interface WalletState {
  readonly address: string
  /** 0x hex of the wallet's public key. */
  readonly publicKey: string
  /** Account balance proven against a verified header, and that header's height. */
  readonly balance?: bigint
  readonly balanceAt?: number
  /** The text another person pastes (or scans) to open a channel with this wallet; undefined until a relay reservation is made. */
  readonly invite?: string
  /** 'webcrypto' (native Ed25519) or 'noble' (pure JavaScript). */
  readonly signer: string
  readonly channels: readonly WalletChannel[]
}

/** The actions a page can take. Every method rejects with a `WalletError` saying what went wrong. */
export interface WalletActions {
  readonly state: WalletState
  /** Calls `cb` with every new state (and once at once); returns the unsubscribe. */
  subscribe(cb: (s: WalletState) => void): () => void
  /** Opens a channel with the wallet whose invite this is: my deposit, the deposit I ask of the peer, blocks to challenge a close. */
  openChannel(invite: string, opts: { deposit: bigint; peerDeposit?: bigint; challengePeriod?: number; label?: string }): Promise<string>
  pay(id: string, amount: bigint): Promise<void>
  sendMessage(id: string, text: string): Promise<void>
  closeCooperative(id: string): Promise<void>
  /** Closes alone with my latest co-signed state; the challenge period starts. */
  closeUnilateral(id: string): Promise<void>
  /** Takes back my deposit from a channel I opened that the peer has not joined; it closes as cancelled. */
  cancelOpen(id: string): Promise<void>
  /** Pays out a closed channel whose challenge period is over. */
  withdraw(id: string): Promise<void>
  /** Hands my latest co-signed state to my institution's watchtower. */
  watch(id: string): Promise<void>
}

/** Why a wallet action failed: a stable code and a sentence for the page. */
export class WalletError extends Error {
  override readonly name = 'WalletError'
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message)
  }
}
