/**
 * @packageDocumentation
 *
 * The loopchain light client, for browsers and Node. It pins a chain's genesis validator set and
 * verifies what full nodes send against it: signed headers (commit signatures of more than 2/3
 * of the set in force), validator-set changes in order, state proofs against verified headers. It
 * reaches the tip of a long chain through the set changes alone, keeps what it verified in a
 * store (IndexedDB in browsers) so a reload resumes offline, follows new headers on gossipsub,
 * and cross-checks its tip with a second node. It never imports the full node.
 *
 * @example
 * ```ts
 * import { createLibp2pTransport, IndexedDbLightStore, LightClient } from '@loopchain/light-client'
 * const transport = await createLibp2pTransport({ chainId: genesis.chainId, bootstrap: ['/dns4/node.example/tcp/443/wss/p2p/12D3Koo…'] })
 * const client = await LightClient.open({ genesis, transport, store: await IndexedDbLightStore.open({ chainId: genesis.chainId }) })
 * await client.sync()
 * client.follow()
 * const { value } = await client.getStateProof(key)
 * ```
 */

export { type ChainAccess, ChannelCaller, chainAccessOf, type Proven, provenAccount, provenChannel } from './channel-chain.js'
export {
  type ChannelPhase,
  type ChannelRecord,
  type ChannelStore,
  IndexedDbChannelStore,
  MAX_PAID_LOCKS,
  MAX_STORED_MESSAGES,
  MemoryChannelStore,
  type StoredMessage,
} from './channel-store.js'
export {
  ChannelWallet,
  type ChannelWalletOptions,
  DEFAULT_CHALLENGE_PERIOD,
  encodeInvite,
  encodeInvoice,
  HOP_DELTA,
  type Invite,
  type Invoice,
  parseInvite,
  parseInvoice,
  REDEEM_MARGIN,
  RESEND_BLOCKS,
  ROUTED_PAYMENT_WAIT,
  type WalletLink,
  type WalletLinks,
} from './channel-wallet.js'
export {
  type Conflict,
  type CrossCheckResult,
  LightClient,
  type LightClientEvents,
  type LightClientOptions,
  type SyncResult,
  type TrustedGenesis,
  type VerifiedState,
} from './client.js'
export { LightClientError, type LightClientErrorCode } from './errors.js'
export { type LightLogger, silentLightLogger } from './events.js'
export { IndexedDbLightStore } from './idb-store.js'
export {
  createLibp2pTransport,
  isLocalAddress,
  type Libp2pTransport,
  type Libp2pTransportOptions,
  type LightTransportKind,
  localDevGater,
} from './libp2p-transport.js'
export { MemoryLinkNetwork } from './memory-links.js'
export { channelLinkProtocol, MAX_LINK_FRAME, openPeerLinks, type PeerLinkOptions, type PeerLinks } from './peer-link.js'
export {
  type LightCheckpoint,
  type LightSnapshot,
  type LightStore,
  type LightStoreUpdate,
  lightCheckpointCodec,
  MemoryLightStore,
} from './store.js'
export {
  type HeaderHandler,
  type HeaderVerdict,
  type LightRequestOptions,
  type LightTransport,
  type MemoryPeer,
  MemoryTransport,
} from './transport.js'
export * from './wallet-api.js'
export { bestSigner, hasWebCryptoEd25519, nobleSigner, webCryptoSigner } from './webcrypto-ed25519.js'
