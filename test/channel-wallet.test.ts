/**
 * Two channel wallets against a real full node (in this process, LevelDB on disk), each with its
 * own light client verifying headers and state proofs; the links between the wallets are the
 * in-memory twin (test/e2e/channels.test.ts runs the same over WebRTC between two Chromium pages).
 * Open on chain, pay both ways, chat, close cooperatively; a stale unilateral close is challenged
 * by the other wallet and penalised; a wallet reopened from its store resumes the channel.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Address,
  accountKey,
  accountStateCodec,
  CHANNEL_ADDRESS,
  CHANNEL_PROTOCOL_VERSION,
  ChannelSession,
  type ChannelSnapshot,
  ChannelStatus,
  channelCallTransaction,
  channelHelloDigest,
  channelIdOf,
  channelKey,
  channelRecordCodec,
  createLightHandlers,
  DEFAULT_PARAMS,
  decode,
  decodeChannelWire,
  decodeTransaction,
  encodeSignedChannelState,
  fromHex,
  type Genesis,
  keyPairFromSecret,
  makeValidatorSet,
  providerSigner,
  Right,
  type SignedChannelState,
  STEP_COSTS,
  sha256,
  signTransaction,
  type TransactionBody,
  TX_VERSION,
  TxKind,
  to0x,
  toHex,
  transactionHash,
  utf8,
} from '@loopchain/core'
import {
  type ChainAccess,
  type ChannelRecord,
  type ChannelStore,
  ChannelWallet,
  type ChannelWalletOptions,
  encodeInvite,
  encodeInvoice,
  LightClient,
  MemoryChannelStore,
  MemoryLightStore,
  MemoryLinkNetwork,
  MemoryTransport,
  parseInvoice,
  REDEEM_MARGIN,
  RESEND_BLOCKS,
  type WalletLink,
  type WalletLinks,
  type WalletState,
} from '@loopchain/light-client'
import { FullNode, fullNodeLightBackend, LevelKVStore } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LevelChannelStore } from '../apps/node/src/hub.js'

const key = (label: string) => keyPairFromSecret(sha256(utf8(label)))
const validator = key('wallet-test validator')
const alice = key('wallet-test alice')
const bob = key('wallet-test bob')
const carol = key('wallet-test carol')
const hubKey = key('wallet-test hub')
const NET = 7
const genesis: Genesis = {
  chainId: 'wallet-test',
  networkId: NET,
  timestamp: Date.now() * 1000 - 1_000_000,
  validators: makeValidatorSet([{ address: validator.address, publicKey: validator.publicKey, power: 1 }]),
  members: [{ id: 'bank', name: 'Bank', address: validator.address, nodeKey: undefined, rights: Right.Validator }],
  balances: [
    { address: alice.address, amount: 1_000_000n },
    { address: bob.address, amount: 1_000_000n },
    { address: carol.address, amount: 1_000_000n },
    { address: hubKey.address, amount: 1_000_000n },
  ],
  params: { ...DEFAULT_PARAMS },
}

/** The wallets' `routedPaymentWait` (blocks). */
const ROUTED_WAIT = 40

let node: FullNode
const dir = mkdtempSync(join(tmpdir(), 'loopchain-wallet-'))
const timers: ReturnType<typeof setInterval>[] = []

/** A light client on the node (in-memory requests, real verification) that keeps syncing, as the page's does. */
async function chainFor(): Promise<ChainAccess & { client: LightClient; stop: () => void }> {
  const transport = new MemoryTransport({ n1: createLightHandlers(fullNodeLightBackend(node)) })
  const client = await LightClient.open({ genesis, transport, store: new MemoryLightStore() })
  await client.sync()
  const timer = setInterval(() => void client.sync().catch(() => undefined), 100)
  timers.push(timer)
  return {
    client,
    stop: () => clearInterval(timer),
    get height() {
      return client.height
    },
    getStateProof: (k, o) => client.getStateProof(k, o),
    // The light protocols' `submit` (and the wallet's `watch`), served by the node's own handlers.
    submitTransaction: (tx) => client.submitTransaction(tx),
  }
}

async function walletOf(
  k: typeof alice,
  links: MemoryLinkNetwork,
  name: string,
  store: ChannelStore = new MemoryChannelStore(),
  hub = false,
  more: Partial<ChannelWalletOptions> = {},
) {
  const chain = await chainFor()
  const w = await ChannelWallet.open({
    hub,
    watch: async (request) => {
      await chain.client.watchChannel(request)
    },
    key: k,
    signer: providerSigner(k.secretKey),
    store,
    chain,
    // (An endpoint registers its name: one given in `more` must be the only one of that name.)
    links: more.links ?? links.endpoint(name),
    networkId: NET,
    stepPrice: 0n,
    pollMs: 100,
    // Fewer blocks than the default 100 for a routed payment's expiry: the tests that wait for one
    // to pass (or near it) make blocks one transaction at a time.
    routedPaymentWait: ROUTED_WAIT,
    ...more,
  }).catch((e) => {
    chain.stop()
    throw e
  })
  // A closed page's light client stops syncing too: dozens left running slowed the node's blocks.
  const close = w.close.bind(w)
  w.close = async () => {
    await close()
    chain.stop()
  }
  return w
}

/** Waits until `w` holds `balance` on channel `id` with no payment pending. */
const settled = (w: ChannelWallet, id: string, balance: bigint, what: string) =>
  until(w, (s) => s.channels.find((x) => x.id === id && x.myBalance === balance && x.pendingPayments === 0), what)

/** A store that keeps a copy of every record written, in order: what a crash right after any write leaves. */
class RecordingStore extends MemoryChannelStore {
  readonly puts: ChannelRecord[] = []
  override async put(record: ChannelRecord): Promise<void> {
    this.puts.push(structuredClone(record))
    return super.put(record)
  }
}

/**
 * A store that dies as a process killed with -9 would, right after the write `fatal` picks: that
 * write is kept, every later one is lost, and `dead.on` is set (see {@link cutOff}).
 */
class CrashingStore extends MemoryChannelStore {
  constructor(
    private readonly fatal: (record: ChannelRecord) => boolean,
    private readonly dead: { on: boolean },
  ) {
    super()
  }
  override async put(record: ChannelRecord): Promise<void> {
    if (this.dead.on) return
    await super.put(record)
    if (this.fatal(record)) this.dead.on = true
  }
  override async rename(oldId: string, record: ChannelRecord): Promise<void> {
    if (!this.dead.on) await super.rename(oldId, record)
  }
}

/** `name`'s links, which send and hear nothing once `dead.on` (its process is gone). */
function cutOff(links: MemoryLinkNetwork, name: string, dead: { on: boolean }): WalletLinks {
  return wrappedLinks(links, name, (l) =>
    filteredLink(
      l,
      () => !dead.on,
      () => !dead.on,
    ),
  )
}

/** {@link cutOff}'s links, which also set `dead.on` (a kill) right after sending a proposal of a change of `kind`. */
function deadAfterSending(links: MemoryLinkNetwork, name: string, dead: { on: boolean }, kind: 'add' | 'settle'): WalletLinks {
  return wrappedLinks(links, name, (l) => {
    const live = filteredLink(
      l,
      () => !dead.on,
      () => !dead.on,
    )
    return {
      ...live,
      send: (f) => {
        live.send(f)
        if (proposedKind(f) === kind) dead.on = true
      },
    }
  })
}

/** The kind of change a channel frame proposes (tag 1, an update), if it is one. */
function proposedKind(frame: Uint8Array): string | undefined {
  if (frame[0] !== 1) return undefined
  const m = decodeChannelWire(frame.subarray(1))
  return m.t === 'update' ? m.change.kind : undefined
}

/** `name`'s links, each passed through `wrap`. */
function wrappedLinks(links: MemoryLinkNetwork, name: string, wrap: (l: WalletLink) => WalletLink): WalletLinks {
  const inner = links.endpoint(name)
  return {
    myAddresses: () => inner.myAddresses(),
    selfId: () => inner.selfId(),
    onLink: (cb) => inner.onLink((l) => cb(wrap(l))),
    dial: async (address) => wrap(await inner.dial(address)),
  }
}

/** `l`, sending only the frames `send` passes and handing on only the frames `hear` passes. */
function filteredLink(l: WalletLink, send: (frame: Uint8Array) => boolean, hear: (frame: Uint8Array) => boolean): WalletLink {
  return {
    remotePeer: l.remotePeer,
    kind: l.kind,
    send: (f) => {
      if (send(f)) l.send(f)
    },
    onMessage: (cb) => l.onMessage((f) => (hear(f) ? cb(f) : undefined)),
    onClose: (cb) => l.onClose(cb),
    close: () => l.close(),
  }
}

/** Sends a wallet control message (tag 2, JSON) on `link`, as a page would. */
function sendControl(link: WalletLink, c: unknown): void {
  link.send(new Uint8Array([2, ...utf8(JSON.stringify(c))]))
}

/** A hello in Bob's name, as a page says it on a link (no proof unless given). */
function bobsHello(o: { protocol?: number; proof?: string; links?: string[] } = {}) {
  return { type: 'hi', address: bob.address, publicKey: to0x(bob.publicKey), links: o.links ?? [], ...o }
}

/**
 * Waits until `f` holds on `w`'s state, for `ms` at most; with `progress`, for `ms` since its value
 * last changed (a wait for blocks goes on as long as the chain moves, however slow the machine),
 * and ten times `ms` at most.
 */
async function until<T>(
  w: ChannelWallet,
  f: (s: WalletState) => T | undefined,
  what: string,
  ms = 20_000,
  progress?: () => unknown,
): Promise<T> {
  let end = Date.now() + ms
  // Progress or not, never longer than ten times `ms`.
  const cap = Date.now() + 10 * ms
  let seen = progress?.()
  for (;;) {
    const v = f(w.state)
    if (v !== undefined && v !== false) return v
    const now = progress?.()
    if (now !== seen) {
      seen = now
      end = Math.min(cap, Date.now() + ms)
    }
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}${progress ? ` (no progress in ${ms} ms)` : ''}: ${JSON.stringify(w.state, (_k, x) => (typeof x === 'bigint' ? String(x) : x)).slice(0, 1500)}`,
      )
    await new Promise((r) => setTimeout(r, 50))
  }
}

const proven = async (a: string) => {
  const raw = await node.state.get(accountKey(a as never))
  return raw === undefined ? 0n : decode(accountStateCodec, raw).balance
}

/** Alice and Bob (wallets named by `tag`) with a channel in which Alice paid twice; `old` is the state after her first payment. */
async function paidTwice(tag: string, deposits: [bigint, bigint], first: bigint, second: bigint) {
  const links = new MemoryLinkNetwork()
  const a = await walletOf(alice, links, `alice${tag}`)
  const b = await walletOf(bob, links, `bob${tag}`)
  const id = await openPair(links, a, b, deposits[0], deposits[1])
  await a.pay(id, first)
  const old = a.latestState(id) as SignedChannelState
  await a.pay(id, second)
  // Alice's revocation of the states below 2 follows her save of state 2: with it, her close with state 1 is penalised.
  await until(b, (s) => s.channels.find((c) => c.id === id && c.peerRevokedBelow === 2), 'alice’s revocation')
  return { links, a, b, id, old }
}

/** A transfer of `value` from `k` to `to` at nonce 0 (the caller sets the nonce). */
function transferBody(k: typeof alice, to: Address, value: bigint): TransactionBody {
  const timestamp = Date.now() * 1000
  const data = new Uint8Array(0)
  return {
    version: TX_VERSION,
    networkId: NET,
    from: k.address,
    to,
    value,
    stepLimit: STEP_COSTS.base,
    timestamp,
    nonce: 0,
    kind: TxKind.Transfer,
    data,
  }
}

/** Waits until `address`'s balance on the node is no longer `from`. */
async function untilMoved(address: string, from: bigint, what: string): Promise<void> {
  const end = Date.now() + 20_000
  while ((await proven(address)) === from) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Transfers from `k` every 100 ms, through `submit` (the node's own unless told): blocks come only
 * with transactions here, so this moves the chain towards deadlines. The returned function stops it.
 */
function traffic(k: typeof alice, submit: FullNode['submit'] = (tx) => node.submit(tx)): () => Promise<void> {
  let moving = true
  const running = (async () => {
    const from = decode(accountStateCodec, (await node.state.get(accountKey(k.address))) as Uint8Array).nonce
    for (let nonce = from; moving; nonce++) {
      await submit(signTransaction({ ...transferBody(k, validator.address, 1n), nonce }, k))
      await new Promise((r) => setTimeout(r, 100))
    }
  })()
  return () => {
    moving = false
    return running
  }
}

/** Alice and Bob's wallets on `links` (named `alice<n>`, `bob<n>`) with a channel open and one payment made. */
async function paidPair(n: number): Promise<{ a: ChannelWallet; b: ChannelWallet; id: string }> {
  const links = new MemoryLinkNetwork()
  const a = await walletOf(alice, links, `alice${n}`)
  const b = await walletOf(bob, links, `bob${n}`)
  const id = await openPair(links, a, b, 1_000n, 500n)
  await a.pay(id, 100n)
  return { a, b, id }
}

/** Alice → hub → Carol on fresh links (wallets named `alice<n>`, `hub<n>`, `carol<n>`): two channels of 1,000 from the payer's side. */
async function hubRoute(n: number, storeA = new MemoryChannelStore(), hubOptions: Partial<ChannelWalletOptions> = {}) {
  const links = new MemoryLinkNetwork()
  const a = await walletOf(alice, links, `alice${n}`, storeA)
  const hub = await walletOf(hubKey, links, `hub${n}`, new MemoryChannelStore(), true, hubOptions)
  const c = await walletOf(carol, links, `carol${n}`)
  const ah = await openPair(links, a, hub, 1_000n, 0n)
  const hc = await openPair(links, hub, c, 1_000n, 0n)
  return { links, a, hub, c, ah, hc }
}

/**
 * Alice (`a`) pays `invoice` through channel `ah` and the hub holds the payment; then her page
 * closes, and the call that waited on the payment hears why it will not see it settle.
 */
async function payHeldThenClose(a: ChannelWallet, hub: ChannelWallet, ah: string, invoice: string): Promise<void> {
  const paying = a.payInvoice(ah, invoice)
  await until(hub, (s) => s.channels.find((x) => x.id === ah && x.pendingPayments === 1), 'the hub to hold Alice’s payment')
  const told = expect(paying).rejects.toMatchObject({ code: 'WALLET_CLOSED' })
  await a.close()
  await told
}

/**
 * Alice → hub → Carol (wallets `<name><n>`), Carol's link down when Alice pays `amount`: the hub
 * holds Alice's payment, and Alice's page closes for good. Then Carol's link comes back: the hub
 * forwards, Carol settles, and the hub holds the preimage of a payment Alice cannot settle.
 */
async function preimageHeldByHub(
  n: number,
  amount: bigint,
  storeA = new MemoryChannelStore(),
  hubOptions: Partial<ChannelWalletOptions> = {},
) {
  const { links, a, hub, c, ah, hc } = await hubRoute(n, storeA, hubOptions)
  links.cut(`hub${n}`, `carol${n}`)
  await until(hub, (s) => s.channels.find((x) => x.id === hc && x.link === 'none'), 'the hub to see the link to Carol down')
  const invoice = c.createInvoice(amount)
  await payHeldThenClose(a, hub, ah, invoice)
  links.remove(`alice${n}`)
  await until(c, (s) => s.channels.find((x) => x.id === hc && x.myBalance === amount), 'Carol to be paid', 30_000)
  return { links, hub, c, ah, invoice }
}

/**
 * Endpoint `name` of `links`, deaf to `from` while `mute.on`: every frame from it is dropped (its
 * settlements never arrive), or those `mute.only` picks.
 */
function deafTo(
  links: MemoryLinkNetwork,
  name: string,
  from: string,
  mute: { on: boolean; only?: (frame: Uint8Array) => boolean },
): WalletLinks {
  return wrappedLinks(links, name, (l) =>
    l.remotePeer !== `mem/${from}`
      ? l
      : filteredLink(
          l,
          () => true,
          (f) => !(mute.on && (mute.only?.(f) ?? true)),
        ),
  )
}

/**
 * Endpoint `name` of `links` that cannot dial the addresses `blocked` says (a page whose network
 * is down, its wallet still open with its invoices): two such ends stay unlinked.
 */
function awayable(links: MemoryLinkNetwork, name: string, blocked: (address: string) => boolean): WalletLinks {
  return beforeDials(links, name, (address) => {
    if (blocked(address)) throw new Error(`${name} cannot reach ${address}`)
  })
}

/** Endpoint `name` of `links` whose every dial first runs `before` (which may count it, hold it, or fail it). */
function beforeDials(links: MemoryLinkNetwork, name: string, before: (address: string) => void | Promise<void>): WalletLinks {
  const inner = links.endpoint(name)
  return {
    myAddresses: () => inner.myAddresses(),
    selfId: () => inner.selfId(),
    onLink: (cb) => inner.onLink(cb),
    dial: async (address) => {
      await before(address)
      return inner.dial(address)
    },
  }
}

/**
 * Alice → hub → Carol (wallets `<name><n>`, channels `ah` and `hc` open), the hub deaf to Carol once
 * `mute.on` is set: Carol's answers to its offers, and her settlements, never reach it.
 */
async function deafHubRoute(n: number, aliceOptions: Partial<ChannelWalletOptions> = {}) {
  const links = new MemoryLinkNetwork()
  const mute = { on: false }
  const a = await walletOf(alice, links, `alice${n}`, new MemoryChannelStore(), false, aliceOptions)
  const hub = await walletOf(hubKey, links, `hub${n}`, new MemoryChannelStore(), true, {
    links: deafTo(links, `hub${n}`, `carol${n}`, mute),
  })
  const c = await walletOf(carol, links, `carol${n}`)
  const ah = await openPair(links, a, hub, 1_000n, 0n)
  const hc = await openPair(links, hub, c, 1_000n, 0n)
  return { links, mute, a, hub, c, ah, hc }
}

/** `k` closes channel `id` alone with `old` (a cheat when a newer state exists), straight to the node. */
async function closeAlone(k: typeof alice, id: string, old: SignedChannelState): Promise<void> {
  const nonce = decode(accountStateCodec, (await node.state.get(accountKey(k.address))) as Uint8Array).nonce
  const params = { id: fromHex(id), state: encodeSignedChannelState(old) }
  await node.submit(channelCallTransaction({ key: k, networkId: NET, nonce, method: 'close', params, timestamp: Date.now() * 1000 }))
}

beforeAll(async () => {
  node = await FullNode.open({ dataDir: dir, genesis, validatorSecret: validator.secretKey })
  node.start()
  // Light clients need a committed block to start from.
  await node.submit(
    signTransaction(
      {
        version: TX_VERSION,
        networkId: NET,
        from: alice.address,
        to: validator.address,
        value: 1n,
        stepLimit: STEP_COSTS.base,
        timestamp: Date.now() * 1000,
        nonce: 0,
        kind: TxKind.Transfer,
        data: new Uint8Array(0),
      },
      alice,
    ),
  )
  while (node.height < 2) await new Promise((r) => setTimeout(r, 50))
})

afterAll(async () => {
  for (const t of timers) clearInterval(t)
  await node?.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function openPair(links: MemoryLinkNetwork, a: ChannelWallet, b: ChannelWallet, deposit = 10_000n, peerDeposit = 5_000n) {
  const invite = await until(b, (s) => s.invite, 'an invite')
  const id = await a.openChannel(invite, { deposit, peerDeposit, challengePeriod: 5 })
  await until(a, (s) => s.channels.find((c) => c.id === id && c.phase === 'open'), 'A to see the channel open')
  await until(b, (s) => s.channels.find((c) => c.id === id && c.phase === 'open'), 'B to see the channel open')
  void links
  return id
}

describe('channel wallets on a real node', () => {
  it('a routed payment wait too short for a hub to pass it on and still redeem it is refused at open', async () => {
    const links = new MemoryLinkNetwork()
    for (const bad of [30, 40.5, -1, Number.NaN, 10_001])
      await expect(walletOf(alice, links, 'alice-bad', undefined, false, { routedPaymentWait: bad })).rejects.toMatchObject({
        code: 'BAD_OPTION',
      })
    const w = await walletOf(alice, links, 'alice-ok', undefined, false, { routedPaymentWait: 31 })
    await w.close()
    for (const bad of [0, 1.5, -5])
      await expect(walletOf(hubKey, links, 'hub-bad', undefined, true, { forwardWaitMs: bad })).rejects.toMatchObject({
        code: 'BAD_OPTION',
      })
  })

  it('open, 100 payments each way, messages, cooperative close with the right balances on chain', async () => {
    const links = new MemoryLinkNetwork()
    const a = await walletOf(alice, links, 'alice')
    const storeB = new RecordingStore()
    const b = await walletOf(bob, links, 'bob', storeB)
    const before = [await proven(alice.address), await proven(bob.address)]
    const id = await openPair(links, a, b)
    for (let i = 0; i < 100; i++) await a.pay(id, 7n)
    const pays: Promise<void>[] = []
    for (let i = 0; i < 100; i++) pays.push(b.pay(id, 3n))
    await Promise.all(pays)
    await a.sendMessage(id, 'hello bob')
    await b.sendMessage(id, 'hi alice ✓')
    await until(
      b,
      (s) => s.channels.find((c) => c.id === id)?.messages.some((m) => m.from === 'peer' && m.text === 'hello bob'),
      'bob to get the message',
    )
    await until(a, (s) => s.channels.find((c) => c.id === id)?.messages.some((m) => m.text === 'hi alice ✓'), 'alice to get the message')
    // The write that counts Alice's message received holds its text: a crash right after it keeps
    // the message (the peer never sends a message again once it is counted). Once, not twice.
    const counted = storeB.puts.find((r) => ((r.snapshot as ChannelSnapshot | undefined)?.messagesIn ?? 0) >= 1)
    expect(counted?.messages.filter((m) => m.from === 'peer').map((m) => m.text)).toEqual(['hello bob'])
    expect(b.state.channels.find((c) => c.id === id)?.messages.filter((m) => m.from === 'peer')).toHaveLength(1)
    const ca = a.state.channels.find((c) => c.id === id)
    expect(ca?.seq).toBe(200)
    expect(ca?.myBalance).toBe(10_000n - 700n + 300n)
    expect(ca?.peerBalance).toBe(5_000n + 700n - 300n)
    await a.closeCooperative(id)
    await until(a, (s) => s.channels.find((c) => c.id === id && c.phase === 'closed'), 'the close on chain')
    expect(a.state.channels.find((c) => c.id === id)?.onChain?.outcome).toBe('cooperative')
    // Fees are zero on this chain: the balances moved by exactly the channel's payments.
    expect(await proven(alice.address)).toBe((before[0] as bigint) - 400n)
    expect(await proven(bob.address)).toBe((before[1] as bigint) + 400n)
    expect(await proven(CHANNEL_ADDRESS)).toBe(0n)
    await a.close()
    await b.close()
  }, 90_000)

  it('a peer with no funds at all joins a channel someone else funds (its one waiting transaction)', async () => {
    const links = new MemoryLinkNetwork()
    const dora = key('wallet-test dora, never funded')
    expect(await proven(dora.address)).toBe(0n)
    const a = await walletOf(alice, links, 'alice')
    const d = await walletOf(dora, links, 'dora')
    const id = await openPair(links, a, d, 1_000n, 0n)
    await a.pay(id, 250n)
    await until(d, (s) => s.channels.find((c) => c.id === id && c.myBalance === 250n), 'dora to be paid')
    await a.close()
    await d.close()
  }, 90_000)

  it('a peer asked to deposit more than it holds declines, and says what it holds', async () => {
    const links = new MemoryLinkNetwork()
    const a = await walletOf(alice, links, 'alice')
    const b = await walletOf(bob, links, 'bob')
    const held = (await proven(bob.address)) as bigint
    const invite = await until(b, (s) => s.invite, 'an invite')
    await expect(a.openChannel(invite, { deposit: 10n, peerDeposit: held + 1n, challengePeriod: 5 })).rejects.toThrow(
      `I cannot deposit ${held + 1n}: I hold ${held}`,
    )
    await a.close()
    await b.close()
  }, 60_000)

  it('a wallet exchanges nothing with a wallet of another channel protocol version, and says which side must update', async () => {
    const links = new MemoryLinkNetwork()
    const a = await walletOf(alice, links, 'alice-v')
    /** A peer page at endpoint `name` whose hello says `protocol` (absent: a page from before it was sent). */
    const peerPage = (name: string, protocol?: number) => {
      const heard: { type: string; localId?: string; protocol?: number }[] = []
      const ep = links.endpoint(name)
      ep.onLink((link) => {
        sendControl(link, bobsHello({ links: [`mem/${name}`], ...(protocol ? { protocol } : {}) }))
        link.onMessage((frame) => {
          if (frame[0] !== 2) return
          const c = JSON.parse(new TextDecoder().decode(frame.subarray(1)))
          heard.push(c)
          if (c.type === 'propose') sendControl(link, { type: 'decline', localId: c.localId, reason: 'only a test' })
        })
      })
      return { heard, invite: encodeInvite({ address: bob.address, publicKey: to0x(bob.publicKey), links: [`mem/${name}`] }) }
    }
    const later = peerPage('later-page', CHANNEL_PROTOCOL_VERSION + 1)
    await expect(a.openChannel(later.invite, { deposit: 100n })).rejects.toMatchObject({
      code: 'INCOMPATIBLE_PEER',
      message: expect.stringMatching(/reload this page/),
    })
    // It told its own version, and proposed nothing.
    expect(later.heard.map((c) => [c.type, c.protocol])).toEqual([['hi', CHANNEL_PROTOCOL_VERSION]])
    expect(a.state.channels).toHaveLength(0)
    // A page from before versions were sent speaks version 1, whose hello proves nothing.
    const earlier = peerPage('earlier-page')
    await expect(a.openChannel(earlier.invite, { deposit: 100n })).rejects.toMatchObject({
      code: 'INCOMPATIBLE_PEER',
      message: expect.stringMatching(/the peer must reload its page/),
    })
    expect(earlier.heard.map((c) => c.type)).toEqual(['hi'])
    await a.close()
  })

  it('a hello in a wallet’s name that does not prove its key for this link is ignored: nothing of its channels goes there', async () => {
    const links = new MemoryLinkNetwork()
    const a = await walletOf(alice, links, 'alice-i')
    const b = await walletOf(bob, links, 'bob-i')
    const id = await openPair(links, a, b, 1_000n, 500n)
    /** Mallory's page dials Alice and says it is Bob, with `proof`; returns what reaches it. */
    const impersonate = async (name: string, proof?: string) => {
      const heard: (number | 'closed')[] = []
      const link = await links.endpoint(name).dial('mem/alice-i')
      link.onMessage((f) => heard.push(f[0] as number))
      link.onClose(() => heard.push('closed'))
      sendControl(link, bobsHello({ protocol: CHANNEL_PROTOCOL_VERSION, ...(proof ? { proof } : {}) }))
      // And a control frame that is no message at all.
      sendControl(link, null)
      return heard
    }
    // No proof; a proof Bob made for another link (Mallory's own, say), taken to Alice; Mallory's
    // own key's proof for Alice's end, under Bob's address and key; Bob's proof for Alice's end on
    // another chain.
    const otherChain = to0x(
      providerSigner(bob.secretKey).sign(channelHelloDigest(NET + 1, bob.address, 'mem/alice-i', CHANNEL_PROTOCOL_VERSION)) as Uint8Array,
    )
    const bobsForMallory = to0x(
      providerSigner(bob.secretKey).sign(channelHelloDigest(NET, bob.address, 'mem/mallory-2', CHANNEL_PROTOCOL_VERSION)) as Uint8Array,
    )
    const mallorys = to0x(
      providerSigner(carol.secretKey).sign(channelHelloDigest(NET, bob.address, 'mem/alice-i', CHANNEL_PROTOCOL_VERSION)) as Uint8Array,
    )
    const heard = [
      ...(await Promise.all([
        impersonate('mallory-1'),
        impersonate('mallory-2', bobsForMallory),
        impersonate('mallory-3', mallorys),
        impersonate('mallory-4', otherChain),
      ])),
    ]
    await new Promise((r) => setTimeout(r, 300))
    // Alice still speaks to Bob: a payment and a private message reach him, and only him.
    await a.pay(id, 10n)
    await a.sendMessage(id, 'for Bob only')
    await until(
      b,
      (s) => s.channels.find((c) => c.id === id && c.messages.some((m) => m.text === 'for Bob only')),
      'Bob to get the message',
    )
    expect(b.state.channels.find((c) => c.id === id)?.myBalance).toBe(510n)
    // Mallory's pages got no channel frame (tag 1), and their links were closed.
    for (const h of heard) {
      expect(h).not.toContain(1)
      expect(h).toContain('closed')
    }
    for (const w of [a, b]) await w.close()
  }, 60_000)

  it('a channel whose peer’s page is of another protocol version says so, dials it no more for a while, and stops saying so once it is of this one', async () => {
    const links = new MemoryLinkNetwork()
    const storeB = new MemoryChannelStore()
    // Alice's reconnect loop every 500 ms, not 3 s: the rounds below pass sooner.
    const a = await walletOf(alice, links, 'alice-v2', new MemoryChannelStore(), false, { redial: { everyMs: 500 } })
    let b = await walletOf(bob, links, 'bob-v2', storeB)
    const id = await openPair(links, a, b, 1_000n, 500n)
    // Bob's page goes, and a page of a later version answers where Alice last reached him.
    await b.close()
    links.remove('bob-v2')
    let dialled = 0
    links.endpoint('bob-v2').onLink((link) => {
      dialled++
      sendControl(link, bobsHello({ protocol: CHANNEL_PROTOCOL_VERSION + 1 }))
    })
    await until(
      a,
      (s) => s.channels.find((c) => c.id === id && /reload this page/.test(c.error ?? '')),
      'Alice to show the mismatch',
      30_000,
    )
    // Four more rounds of Alice's reconnect loop pass, and she does not dial that page again (each
    // dial would come to nothing, and through a relay spend its budget).
    await new Promise((r) => setTimeout(r, 2_200))
    expect(dialled).toBe(1)
    links.remove('bob-v2')
    b = await walletOf(bob, links, 'bob-v2', storeB)
    // Bob's page (this version) links up again: the channel goes on, and the message is gone.
    await until(
      a,
      (s) => s.channels.find((c) => c.id === id && c.link === 'direct' && c.error === undefined),
      'the mismatch to clear',
      30_000,
    )
    // A hello of another version in Bob's name on a link Alice did not dial proves nothing and
    // changes nothing of Bob's channels.
    const stray = await links.endpoint('stray').dial('mem/alice-v2')
    sendControl(stray, bobsHello({ protocol: CHANNEL_PROTOCOL_VERSION + 1 }))
    await new Promise((r) => setTimeout(r, 300))
    expect(a.state.channels.find((c) => c.id === id)?.error).toBeUndefined()
    await a.pay(id, 10n)
    expect(a.state.channels.find((c) => c.id === id)?.myBalance).toBe(990n)
    for (const w of [a, b]) await w.close()
  }, 90_000)

  it('a wallet dials a peer it cannot reach less and less often, links up at once when the peer’s page dials it, and then dials fast again', async () => {
    const links = new MemoryLinkNetwork()
    const storeB = new MemoryChannelStore()
    // Alice's dials to Bob, counted; her loop runs every 200 ms and backs off after two failures.
    let dials = 0
    const counting = beforeDials(links, 'alice-far', (address) => {
      if (address === 'mem/bob-far') dials++
    })
    const a = await walletOf(alice, links, 'alice-far', new MemoryChannelStore(), false, {
      links: counting,
      redial: { everyMs: 200, fastDials: 2, maxWaitMs: 20_000 },
    })
    let b = await walletOf(bob, links, 'bob-far', storeB)
    const id = await openPair(links, a, b, 1_000n, 500n)
    const bobGoes = async () => {
      await b.close()
      links.remove('bob-far')
      await until(a, (s) => s.channels.find((c) => c.id === id && c.link === 'none'), 'Alice to see Bob gone')
      dials = 0
    }
    await bobGoes()
    // Every 200 ms that would be 20 dials in 4 s; backing off (0.2, 0.4, then waits of 0.4, 0.8,
    // 1.6, 3.2 s) it is about five.
    await new Promise((r) => setTimeout(r, 4_000))
    expect(dials).toBeGreaterThanOrEqual(3)
    expect(dials).toBeLessThanOrEqual(7)
    // Bob's page comes back and dials Alice: linked at once, whatever Alice's wait.
    b = await walletOf(bob, links, 'bob-far', storeB)
    const back = Date.now()
    await until(a, (s) => s.channels.find((c) => c.id === id && c.link === 'direct'), 'Alice and Bob linked again', 3_000)
    expect(Date.now() - back).toBeLessThan(3_000)
    await a.pay(id, 10n)
    // A link made starts the count again: Bob gone once more, Alice dials every 200 ms at first
    // (her first two dials by ~0.4 s; backing off from before, the second would come 6 s later).
    await bobGoes()
    await new Promise((r) => setTimeout(r, 1_400))
    expect(dials).toBeGreaterThanOrEqual(2)
    await a.close()
  }, 60_000)

  it('a wallet that closes closes every link: one still waiting for its hello, one a dial under way brings, one dialled in later', async () => {
    const links = new MemoryLinkNetwork()
    // Alice's dials to Bob wait, once Bob is gone, until the test lets them through.
    const gate = { on: false }
    let dialling = () => {}
    const started = new Promise<void>((r) => {
      dialling = r
    })
    let release = () => {}
    const held = new Promise<void>((r) => {
      release = r
    })
    const slow = beforeDials(links, 'alice-shut', async (address) => {
      if (address === 'mem/bob-shut' && gate.on) {
        dialling()
        await held
      }
    })
    const a = await walletOf(alice, links, 'alice-shut', new MemoryChannelStore(), false, { links: slow, redial: { everyMs: 300 } })
    const b = await walletOf(bob, links, 'bob-shut')
    await openPair(links, a, b, 1_000n, 500n)
    gate.on = true
    await b.close()
    links.remove('bob-shut')
    // Where Bob was, a page that says nothing: it only records the links that reach it.
    const closedLinks = new Set<WalletLink>()
    const watch = (l: WalletLink) => l.onClose(() => closedLinks.add(l))
    const reached: WalletLink[] = []
    links.endpoint('bob-shut').onLink((l) => {
      reached.push(l)
      watch(l)
    })
    // A stranger's link to Alice, with no hello: never named.
    const stray = await links.endpoint('stray-shut').dial('mem/alice-shut')
    watch(stray)
    await started
    await a.close()
    expect(closedLinks.has(stray)).toBe(true)
    // The dial under way when Alice closed gets through: its link is closed at once.
    release()
    await new Promise((r) => setTimeout(r, 300))
    expect(reached).toHaveLength(1)
    expect(closedLinks.has(reached[0] as WalletLink)).toBe(true)
    // So is one dialled in after she closed.
    const late = await links.endpoint('late-shut').dial('mem/alice-shut')
    watch(late)
    await new Promise((r) => setTimeout(r, 50))
    expect(closedLinks.has(late)).toBe(true)
  }, 60_000)

  it('a wallet closes while its peer keeps paying: its last saves wait at most a moment, then it is closed', async () => {
    const links = new MemoryLinkNetwork()
    // Alice's saves take a while (a slow disk), so Bob's next payments arrive during each.
    const slow = new (class extends MemoryChannelStore {
      override async put(record: ChannelRecord): Promise<void> {
        await new Promise((r) => setTimeout(r, 20))
        return super.put(record)
      }
    })()
    const a = await walletOf(alice, links, 'alice-busy', slow)
    const b = await walletOf(bob, links, 'bob-busy')
    // Enough for Bob to pay 1 at a time for minutes.
    const id = await openPair(links, a, b, 1_000n, 100_000n)
    // Bob pays without pause: Alice's session always has something new to save.
    let paying = true
    // Bob keeps 64 payments in flight: as one is acknowledged the next goes.
    const stream = Promise.all(
      Array.from({ length: 64 }, async () => {
        while (paying) {
          // A turn of the event loop each time: a refusal comes back at once.
          await Promise.all([b.pay(id, 1n).catch(() => undefined), new Promise((r) => setImmediate(r))])
        }
      }),
    )
    await until(a, (s) => s.channels.find((c) => c.id === id && c.peerBalance < 99_990n), 'Bob’s payments to flow')
    // Closes (before, a save that always had more to cover kept close() waiting for ever).
    await a.close()
    paying = false
    await b.close()
    await stream
  }, 60_000)

  it('a close with an old state is challenged by the other wallet, which takes everything; a reopened wallet resumes', async () => {
    const links = new MemoryLinkNetwork()
    const storeB = new MemoryChannelStore()
    const a = await walletOf(alice, links, 'alice2')
    let b = await walletOf(bob, links, 'bob2', storeB)
    const id = await openPair(links, a, b, 1_000n, 1_000n)
    await a.pay(id, 100n)
    const old = a.latestState(id) as SignedChannelState
    await a.pay(id, 300n)
    // Bob's page closes and reopens from its store: the channel resumes and payments go on.
    await b.close()
    links.cutAll()
    b = await walletOf(bob, links, 'bob2', storeB)
    expect(b.state.channels.find((c) => c.id === id)?.seq).toBe(2)
    await until(a, (s) => s.channels.find((c) => c.id === id)?.link === 'direct' && s, 'the link back')
    await b.pay(id, 50n)
    expect(b.state.channels.find((c) => c.id === id)?.myBalance).toBe(1_350n)

    // Alice cheats: a unilateral close with state 1 (she had 900 then; she has 650 now).
    const before = [await proven(alice.address), await proven(bob.address)]
    await closeAlone(alice, id, old)
    // Bob's wallet sees the stale close and challenges: he receives the whole channel (2,000).
    await until(b, (s) => s.channels.find((c) => c.id === id && c.phase === 'closed'), 'the challenge to settle')
    expect(b.state.channels.find((c) => c.id === id)?.onChain?.outcome).toBe('penalised')
    expect(await proven(bob.address)).toBe((before[1] as bigint) + 2_000n)
    expect(await proven(alice.address)).toBe(before[0] as bigint)
    await a.close()
    await b.close()
  }, 90_000)

  it('the wallet that accepted a channel, reopened where the proposer cannot find it, links back to the proposer itself', async () => {
    const links = new MemoryLinkNetwork()
    const storeB = new MemoryChannelStore()
    const a = await walletOf(alice, links, 'alice5')
    let b = await walletOf(bob, links, 'bob5', storeB)
    const id = await openPair(links, a, b, 1_000n, 1_000n)
    await a.pay(id, 100n)
    // Bob's page comes back at another address (a reloaded page on another relay): Alice's
    // redials find nobody at the old one, so only Bob can make the link.
    await b.close()
    links.remove('bob5')
    b = await walletOf(bob, links, 'bob5 moved', storeB)
    await until(b, (s) => s.channels.find((c) => c.id === id)?.link === 'direct' && s, 'Bob to link back to Alice')
    await b.pay(id, 50n)
    await until(a, (s) => s.channels.find((c) => c.id === id)?.myBalance === 950n && s, 'the payment at Alice')
    await a.close()
    await b.close()
  }, 60_000)

  it('the watchtower challenges a stale close while the honest wallet is closed', async () => {
    const { links, a, b, id, old } = await paidTwice('3', [1_000n, 1_000n], 100n, 200n)
    // Bob hands his latest state to his institution's node, then his page closes.
    await b.watch(id)
    expect(b.state.channels.find((c) => c.id === id)?.watchedSeq).toBe(2)
    expect(node.watchtower?.size).toBeGreaterThanOrEqual(1)
    await b.close()
    links.remove('bob3')
    // A forged state is refused by the watchtower with a typed error, and changes nothing.
    const forged = encodeSignedChannelState({ ...old, signatures: [old.signatures[0], new Uint8Array(64)] })
    await expect(node.watchtower?.watch(forged)).rejects.toMatchObject({ code: 'BAD_STATE' })

    const before = await proven(bob.address)
    const challenges = node.watchtower?.challengesSent ?? 0
    await closeAlone(alice, id, old)
    await untilMoved(bob.address, before, 'the watchtower to challenge')
    expect(await proven(bob.address)).toBe(before + 2_000n)
    expect(node.watchtower?.challengesSent).toBe(challenges + 1)
    await a.close()
  }, 90_000)

  it('a final state both signed whose cooperative close did not land is sent again until it does', async () => {
    const { a, b, id } = await paidPair(7)
    // The node refuses the wallets' transactions for a while (a full pool, say): both submissions of the final state fail.
    const submit = node.submit.bind(node)
    let refusing = true
    let refused = 0
    node.submit = async (tx, fromPeer) => {
      const from = (tx instanceof Uint8Array ? decodeTransaction(tx) : tx).body.from
      if (refusing && (from === alice.address || from === bob.address)) {
        refused++
        throw new Error('the mempool is full; retry later')
      }
      return submit(tx, fromPeer)
    }
    try {
      await a.closeCooperative(id)
      await until(b, (s) => s.channels.find((c) => c.id === id && c.phase === 'closing'), 'Bob to agree the final state')
      await new Promise((r) => setTimeout(r, 500))
      expect(refused).toBeGreaterThanOrEqual(2)
      refusing = false
      for (const w of [a, b]) await until(w, (s) => s.channels.find((c) => c.id === id && c.phase === 'closed'), 'the cooperative close')
    } finally {
      node.submit = submit
    }
    expect(a.state.channels.find((c) => c.id === id)?.onChain?.outcome).toBe('cooperative')
    for (const w of [a, b]) await w.close()
  }, 60_000)

  it('a cooperative close the node took but that never reached a block is sent again after RESEND_BLOCKS blocks', async () => {
    const { a, b, id } = await paidPair(8)
    // The node answers the wallets' first submissions as admitted, then loses them (a pool that
    // dropped them, a node that restarted): nothing says no, the close just never shows.
    // Calls counting their nonces on from the lost ones would wait behind the gap for good: a call
    // sent again starts from the proven nonce.
    const submit = node.submit.bind(node)
    let lost = 0
    node.submit = async (tx, fromPeer) => {
      const t = tx instanceof Uint8Array ? decodeTransaction(tx) : tx
      if ((t.body.from === alice.address || t.body.from === bob.address) && lost < 2) {
        lost++
        return toHex(transactionHash(t.body))
      }
      return submit(tx, fromPeer)
    }
    const stopTraffic = traffic(carol, submit)
    try {
      const lostAt = node.height
      await a.closeCooperative(id)
      // Within seconds (some 10 blocks a second here): without the fix the calls waited behind the
      // gap until it grew past the pool's nonce window, about half a minute later.
      for (const w of [a, b])
        await until(w, (s) => s.channels.find((c) => c.id === id && c.phase === 'closed'), 'the cooperative close', 15_000)
      expect(lost).toBe(2)
      // What landed was sent again, once RESEND_BLOCKS blocks passed without the close.
      expect(node.height).toBeGreaterThanOrEqual(lostAt + RESEND_BLOCKS)
    } finally {
      node.submit = submit
      await stopTraffic()
    }
    expect(a.state.channels.find((c) => c.id === id)?.onChain?.outcome).toBe('cooperative')
    for (const w of [a, b]) await w.close()
  }, 90_000)

  it('a two-hop payment through a hub: A → hub → C, locked by C’s invoice and settled back hop by hop', async () => {
    const storeA = new RecordingStore()
    const { links, a: first, hub, c, ah, hc } = await hubRoute(4, storeA)
    let a = first
    const invoice = c.createInvoice(300n)
    await a.payInvoice(ah, invoice)
    const bal = (w: ChannelWallet, id: string) => w.state.channels.find((x) => x.id === id)
    expect(bal(a, ah)?.myBalance).toBe(700n)
    // The write that stored the settled state also says the invoice is paid: a crash right after
    // it leaves a wallet that refuses to pay it again (two writes before, and the crash between them
    // left it payable).
    const settled = storeA.puts.find((r) => {
      const s = (r.snapshot as ChannelSnapshot | undefined)?.latest.state
      return r.id === ah && s?.balances[0] === 700n && s.htlcs.length === 0
    })
    expect(settled?.paid).toEqual([to0x(parseInvoice(invoice).hashLock)])
    const crashed = new MemoryChannelStore()
    await crashed.put(settled as ChannelRecord)
    const after = await walletOf(alice, new MemoryLinkNetwork(), 'alice4-crashed', crashed)
    await expect(after.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'ALREADY_PAID' })
    await after.close()
    // The same invoice again would pay Carol twice: refused, also by the wallet reopened from its store.
    await expect(a.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'ALREADY_PAID' })
    await a.close()
    links.remove('alice4')
    a = await walletOf(alice, links, 'alice4', storeA)
    await until(a, (s) => s.channels.find((x) => x.id === ah && x.link === 'direct'), 'Alice to link up with the hub again')
    await expect(a.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'ALREADY_PAID' })
    expect(bal(a, ah)?.myBalance).toBe(700n)
    // The hub's own settlement with A is countersigned a moment later.
    await until(hub, (s) => s.channels.find((x) => x.id === ah && x.myBalance === 300n), 'the hub to be paid')
    await until(c, (s) => s.channels.find((x) => x.id === hc && x.myBalance === 300n), 'carol to be paid')
    expect(bal(hub, hc)?.myBalance).toBe(700n)
    expect(bal(a, ah)?.pendingPayments).toBe(0)
    // The hub's link to Carol is down when Alice pays again: the hub holds the payment until the
    // wallets link up again (they redial every few seconds), then forwards it.
    links.cut('hub4', 'carol4')
    await until(hub, (s) => s.channels.find((x) => x.id === hc && x.link === 'none'), 'the hub to see the link to Carol down')
    await a.payInvoice(ah, c.createInvoice(40n))
    await until(c, (s) => s.channels.find((x) => x.id === hc && x.myBalance === 340n), 'carol to be paid after the link came back')
    expect(bal(a, ah)?.myBalance).toBe(660n)
    // An invoice nobody can settle (the payee is unknown to the hub) comes back, and nothing moves.
    const stranger = encodeInvoice({ address: bob.address, amount: 5n, hashLock: sha256(utf8('nobody knows')) })
    await expect(a.payInvoice(ah, stranger)).rejects.toMatchObject({ code: 'PAYMENT_FAILED' })
    expect(bal(a, ah)?.myBalance).toBe(660n)
    // An invoice altered to ask less, with the same lock: Carol gives the payment back (settled,
    // it would show her secret for 1 of 50), and the real invoice is still payable.
    const real = c.createInvoice(50n)
    await expect(a.payInvoice(ah, encodeInvoice({ ...parseInvoice(real), amount: 1n }))).rejects.toMatchObject({ code: 'PAYMENT_FAILED' })
    expect(bal(a, ah)?.myBalance).toBe(660n)
    await a.payInvoice(ah, real)
    await until(c, (s) => s.channels.find((x) => x.id === hc && x.myBalance === 390n), 'Carol paid the real invoice')
    for (const w of [a, hub, c]) await w.close()
  }, 90_000)

  it('a hub whose payer went silent redeems the payment on chain before it expires, once the payee was paid', async () => {
    const storeA = new MemoryChannelStore()
    const { links, hub, c, ah, invoice } = await preimageHeldByHub(6, 300n, storeA)
    // Before the payment expires the hub closes alone and redeems on chain.
    // The node makes blocks only for transactions: other traffic moves the chain towards the expiry.
    const expiry = hub.latestState(ah)?.state.htlcs[0]?.expiry as number
    const stopTraffic = traffic(bob)
    // About 30 blocks: the wait runs while the chain moves (a loaded CI machine made 1.5 a second),
    // and fails once the chain is well past the expiry (the hub no longer closes for it then).
    await until(
      hub,
      (s) => {
        const closing = s.channels.find((x) => x.id === ah && x.onChain?.status === 'closing')
        if (closing === undefined && node.height > expiry + 10) throw new Error(`the hub did not close by height ${expiry + 10}`)
        return closing
      },
      'the hub to close alone',
      20_000,
      () => node.height,
    )
    // Alice comes back now. The hub signs nothing more for the channel it closed: had it sent its
    // settlement again and taken her acknowledgement, its revocation of the state it closed with
    // would have let her wallet take the whole channel.
    const back = await walletOf(alice, links, 'alice6', storeA)
    await until(back, (s) => s.channels.find((x) => x.id === ah && x.phase === 'closing'), 'Alice to see the close')
    const closed = await until(
      hub,
      (s) => s.channels.find((x) => x.id === ah && x.phase === 'closed'),
      'the hub to redeem',
      20_000,
      () => node.height,
    ).finally(stopTraffic)
    expect(closed.onChain?.outcome).toBe('unilateral')
    const rec = decode(channelRecordCodec, (await node.state.get(channelKey(fromHex(ah)))) as Uint8Array)
    expect(rec.closer).toBe(1)
    // The hub held the preimage about ROUTED_WAIT blocks before the expiry and closed halfway
    // there, not in the last REDEEM_MARGIN blocks, which a busy chain passes in a second.
    const closedAt = (rec.deadline as number) - rec.challengePeriod
    expect(closedAt).toBeLessThanOrEqual(expiry - REDEEM_MARGIN)
    expect(rec.htlcs.map((h) => h.redeemed)).toEqual([true])
    expect(rec.balances).toEqual([700n, 300n])
    // Alice's wallet reads the redeem in the closed record: her payment was made, on chain.
    await until(back, (s) => s.channels.find((x) => x.id === ah && x.phase === 'closed'), 'Alice to see the channel closed')
    await expect(back.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'ALREADY_PAID' })
    for (const w of [hub, c, back]) await w.close()
  }, 300_000)

  /**
   * Alice → hub → Carol (wallets `<name><n>`), the hub deaf to Carol's frames that `only` picks (all
   * when not given) once Alice pays `amount`; the hub restarts from its store once `offered` holds
   * after the payment. Carol's settlement reaches the restarted hub: all three end paid.
   */
  async function hubRestartsWithForward(
    n: number,
    amount: bigint,
    offered: (c: ChannelWallet, hub: ChannelWallet, hc: string) => Promise<unknown>,
    only?: (frame: Uint8Array) => boolean,
  ) {
    const links = new MemoryLinkNetwork()
    const mute = { on: false, ...(only ? { only } : {}) }
    const hubStore = new MemoryChannelStore()
    const a = await walletOf(alice, links, `alice${n}`)
    const hub = await walletOf(hubKey, links, `hub${n}`, hubStore, true, { links: deafTo(links, `hub${n}`, `carol${n}`, mute) })
    const c = await walletOf(carol, links, `carol${n}`)
    const ah = await openPair(links, a, hub, 1_000n, 0n)
    const hc = await openPair(links, hub, c, 1_000n, 0n)
    mute.on = true
    const paying = a.payInvoice(ah, c.createInvoice(amount))
    await offered(c, hub, hc)
    await hub.close()
    // What the hub's store holds of the channel to Carol: whether a session, and how many payments in it.
    const snapshot = (await hubStore.get(hc))?.snapshot as ChannelSnapshot | undefined
    const restored = snapshot && ChannelSession.restore(snapshot, providerSigner(hubKey.secretKey)).latest.state.htlcs.length
    const again = await walletOf(hubKey, links, `hub${n}`, hubStore, true)
    await settled(a, ah, 1_000n - amount, 'Alice to have paid')
    await paying
    await settled(c, hc, amount, 'Carol paid')
    await settled(again, ah, amount, 'the hub paid by Alice')
    for (const w of [a, again, c]) await w.close()
    return { restored }
  }

  it('a hub restarted with a forward pending settles with the payer once the next hop settles after the restart', async () => {
    // What a hub forwarded is kept in memory; after a restart it is read back from the channels'
    // states. Before, the next hop's settlement after a restart paid it, and the payer's payment
    // stayed with the hub until it expired and went back to the payer. Here Carol takes the hub's
    // offer and settles it, the hub hears neither and restarts: the peer syncs the offer back.
    const { restored } = await hubRestartsWithForward(19, 120n, (c, _hub, hc) =>
      until(c, (s) => s.channels.find((x) => x.id === hc && x.pendingPayments === 1), 'Carol to hold the offer'),
    )
    // The session was saved when the channel opened (before, not until its first countersigned
    // state): the restarted hub restores it, and syncs before it proposes anything. The offer is
    // not in it: it comes back by that sync.
    expect(restored).toBe(0)
  }, 120_000)

  it('a hub restarted after the next hop took its offer settles with the payer once the next hop’s settlement comes', async () => {
    // Carol's acknowledgement reaches the hub, her settlement (an update) does not: the offer is in
    // the session the hub restores from its store.
    const { restored } = await hubRestartsWithForward(
      20,
      130n,
      (_c, hub, hc) =>
        until(hub, (s) => s.channels.find((x) => x.id === hc && x.pendingPayments === 1), 'the hub to see Carol take the offer'),
      (f) => proposedKind(f) !== undefined,
    )
    expect(restored).toBe(1)
  }, 120_000)

  /** Alice → hub → Carol (wallets `<name><n>`), each channel with 1,000 from its opener and `back` from the other side. */
  async function route(n: number, back: bigint, hubStore = new MemoryChannelStore()) {
    const links = new MemoryLinkNetwork()
    const a = await walletOf(alice, links, `alice${n}`)
    const hub = await walletOf(hubKey, links, `hub${n}`, hubStore, true)
    const c = await walletOf(carol, links, `carol${n}`)
    const ah = await openPair(links, a, hub, 1_000n, back)
    const hc = await openPair(links, hub, c, 1_000n, back)
    return { a, hub, c, ah, hc }
  }

  it('payments sent together through a hub all settle: a proposal never overtakes the acknowledgement it builds on', async () => {
    // Carol countersigns the hub's offers and settles each at once. Before, a settlement built on an
    // offer could leave before that offer's acknowledgement (held for its save), and the hub refused
    // it as out of order: the payments hung, and at their expiry went to the chain.
    const hubStore = new MemoryChannelStore()
    const { a, hub, c, ah, hc } = await route(22, 0n, hubStore)
    const amounts = [10n, 11n, 12n, 13n, 14n, 15n, 16n, 17n]
    const total = amounts.reduce((x, y) => x + y)
    await Promise.all(amounts.map((amount) => a.payInvoice(ah, c.createInvoice(amount))))
    await settled(a, ah, 1_000n - total, 'Alice to have paid them all')
    await settled(c, hc, total, 'Carol paid them all')
    await settled(hub, hc, 1_000n - total, 'the hub to have paid Carol')
    await settled(hub, ah, total, 'the hub paid by Alice')
    for (const w of [a, hub, c]) expect(w.state.channels.every((x) => x.error === undefined)).toBe(true)
    // Settled both ways, the hub keeps none of the eight preimages: not in Alice's session, not
    // with Carol's channel. (Written by each channel's next save: a plain payment on each.)
    await a.pay(ah, 1n)
    await hub.pay(hc, 1n)
    await settled(hub, ah, total + 1n, 'the hub paid 1 by Alice')
    await settled(c, hc, total + 1n, 'Carol paid 1 by the hub')
    await until(hub, () => hub.state.channels.every((x) => x.pendingPayments === 0) || undefined, 'the hub to settle down')
    await hub.close()
    const payerSide = (await hubStore.get(ah))?.snapshot as ChannelSnapshot | undefined
    expect(payerSide?.latest.state.balances).toEqual([1_000n - total - 1n, total + 1n])
    expect(Object.keys(payerSide?.preimages ?? { missing: 1 })).toEqual([])
    expect((await hubStore.get(hc))?.forwarded ?? []).toEqual([])
    // Nor which payment each offer forwarded: all eight were settled back.
    expect((await hubStore.get(hc))?.forwardedFrom ?? []).toEqual([])
    for (const w of [a, c]) await w.close()
  }, 120_000)

  it('payments both ways through a hub at once all settle (a hub saving one channel never waits for another’s save)', async () => {
    const { a, hub, c, ah, hc } = await route(23, 1_000n)
    const amounts = [10n, 11n, 12n, 13n, 14n, 15n, 16n, 17n]
    const total = amounts.reduce((x, y) => x + y)
    // Both ways at once: each channel's two sides propose at the same time.
    await Promise.all([
      ...amounts.map((amount) => a.payInvoice(ah, c.createInvoice(amount))),
      ...amounts.map((amount) => c.payInvoice(hc, a.createInvoice(amount + 1n))),
    ])
    // Alice paid `total` and was paid `total` and one for each payment; Carol the other way round.
    const back = total + BigInt(amounts.length)
    await settled(a, ah, 1_000n - total + back, 'Alice')
    await settled(c, hc, 1_000n + total - back, 'Carol')
    await settled(hub, ah, 1_000n + total - back, 'the hub, with Alice')
    await settled(hub, hc, 1_000n - total + back, 'the hub, with Carol')
    for (const w of [a, hub, c]) expect(w.state.channels.every((x) => x.error === undefined)).toBe(true)
    for (const w of [a, hub, c]) await w.close()
  }, 120_000)

  it('a hub killed right after it saved the next hop’s settlement still collects from the payer after its restart', async () => {
    // The settlement of the hub's offer to Carol carries the preimage. Before, it reached the
    // payer's session only by a second write after the first: a crash between the two kept Carol
    // paid and lost what collects from Alice, whose payment went back to her at its expiry. The
    // crash: every write after the one that saved Carol's settlement is lost, and nothing more is
    // sent or heard.
    const n = 21
    const amount = 140n
    const links = new MemoryLinkNetwork()
    const dead = { on: false }
    let hc = ''
    const hubStore = new CrashingStore((r) => {
      const state = (r.snapshot as ChannelSnapshot | undefined)?.latest.state
      return r.id === hc && state !== undefined && state.seq >= 2 && state.htlcs.length === 0 && state.balances[1] === amount
    }, dead)
    const a = await walletOf(alice, links, `alice${n}`)
    const hub = await walletOf(hubKey, links, `hub${n}`, hubStore, true, { links: cutOff(links, `hub${n}`, dead) })
    const c = await walletOf(carol, links, `carol${n}`)
    const ah = await openPair(links, a, hub, 1_000n, 0n)
    hc = await openPair(links, hub, c, 1_000n, 0n)
    const paying = a.payInvoice(ah, c.createInvoice(amount))
    await until(hub, () => dead.on || undefined, 'the hub to save Carol’s settlement, and die')
    await hub.close()
    // What a kill -9 leaves on disk: the channel to Carol settled; Alice's payment still pending.
    // Written to the hub's own LevelDB store and opened again, as a restarted hub opens it.
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-hub-store-'))
    const written = new LevelChannelStore(await LevelKVStore.open(dir))
    for (const r of await hubStore.list()) await written.put(r)
    await written.close()
    const disk = new LevelChannelStore(await LevelKVStore.open(dir))
    expect((await disk.get(hc))?.forwarded).toHaveLength(1)
    const again = await walletOf(hubKey, links, `hub${n}`, disk, true)
    await settled(again, ah, amount, 'the restarted hub paid by Alice')
    await settled(a, ah, 1_000n - amount, 'Alice to have paid')
    await paying
    await settled(c, hc, amount, 'Carol paid')
    await settled(again, hc, 1_000n - amount, 'the hub to have paid Carol')
    for (const w of [a, again, c]) await w.close()
    await disk.close()
    rmSync(dir, { recursive: true, force: true })
  }, 120_000)

  it('a payer that crashed right after its payment left, before saving it, and pays the invoice again gets the second payment back: the payee takes one', async () => {
    // Alice's proposal leaves before its save (the hub saves it before acknowledging; a restarted
    // Alice gets it back by sync). A crash in between leaves her store without the payment, so the
    // restarted wallet does not know the invoice is paid and can pay it again before the sync.
    const n = 22
    const links = new MemoryLinkNetwork()
    const dead = { on: false }
    const storeA = new CrashingStore(() => false, dead)
    const a = await walletOf(alice, links, `alice${n}`, storeA, false, { links: deadAfterSending(links, `alice${n}`, dead, 'add') })
    const hub = await walletOf(hubKey, links, `hub${n}`, new MemoryChannelStore(), true)
    const c = await walletOf(carol, links, `carol${n}`)
    const ah = await openPair(links, a, hub, 1_000n, 0n)
    const hc = await openPair(links, hub, c, 1_000n, 0n)
    const invoice = c.createInvoice(300n)
    const first = a.payInvoice(ah, invoice)
    first.catch(() => undefined)
    await settled(c, hc, 300n, 'Carol paid once')
    expect(dead.on).toBe(true)
    await a.close()
    await expect(first).rejects.toThrow(/the wallet closed/)
    links.cut(`alice${n}`, `hub${n}`)
    const disk = new MemoryChannelStore()
    for (const r of await storeA.list()) await disk.put(r)
    const onDisk = (await disk.get(ah))?.snapshot as ChannelSnapshot
    expect(onDisk.latest.state.htlcs).toHaveLength(0)
    // Restarted: pays again as soon as its channel links up, before the hub's sync says anything.
    const again = await walletOf(alice, links, `alice${n}`, disk)
    await until(again, (s) => s.channels.find((x) => x.id === ah && x.link === 'direct'), 'Alice to link up again')
    // It resolves: the invoice is paid, by the first payment; the second one came back.
    await again.payInvoice(ah, invoice)
    await settled(again, ah, 700n, 'Alice to have paid once')
    await settled(c, hc, 300n, 'Carol still paid once')
    await settled(hub, ah, 300n, 'the hub paid once by Alice')
    await settled(hub, hc, 700n, 'the hub to have paid Carol once')
    // The first payment settled in the state the sync brought: the invoice is paid.
    await expect(again.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'ALREADY_PAID' })
    for (const w of [again, hub, c]) await w.close()
  }, 90_000)

  it('two payers paying one invoice through a hub at once: one pays it, the other gets its payment back, and the hub collects from the one', async () => {
    const n = 23
    const { links, a, hub, c, ah, hc } = await hubRoute(n)
    const b = await walletOf(bob, links, `bob${n}`)
    const bh = await openPair(links, b, hub, 1_000n, 0n)
    const invoice = c.createInvoice(250n)
    const outcomes = await Promise.all(
      [
        [a, ah],
        [b, bh],
      ].map(([w, id]) =>
        (w as ChannelWallet).payInvoice(id as string, invoice).then(
          () => 'paid',
          (e) => e.code,
        ),
      ),
    )
    expect([...outcomes].sort()).toEqual(['PAYMENT_FAILED', 'paid'])
    const [payer, id] = outcomes[0] === 'paid' ? [a, ah] : [b, bh]
    const [other, otherId] = payer === a ? [b, bh] : [a, ah]
    await settled(payer, id, 750n, 'the payer to have paid')
    await settled(other, otherId, 1_000n, 'the other payer to have its payment back')
    await settled(hub, id, 250n, 'the hub to collect from the payer')
    await settled(hub, otherId, 0n, 'nothing pending from the other payer')
    await settled(c, hc, 250n, 'Carol paid once')
    for (const w of [a, b, hub, c]) await w.close()
  }, 90_000)

  it('a payee killed right after its settlement left, restarted, gives back a second payment of the invoice', async () => {
    // The settlement shows the secret; the payee marks the invoice received on disk before it
    // leaves. Before, the mark rode with the save after the hub's acknowledgement: killed in
    // between, the restarted payee took a second payment of the same invoice from another payer.
    const n = 25
    const links = new MemoryLinkNetwork()
    const dead = { on: false }
    const storeC = new CrashingStore(() => false, dead)
    const a = await walletOf(alice, links, `alice${n}`)
    const b = await walletOf(bob, links, `bob${n}`)
    const hub = await walletOf(hubKey, links, `hub${n}`, new MemoryChannelStore(), true)
    const c = await walletOf(carol, links, `carol${n}`, storeC, false, { links: deadAfterSending(links, `carol${n}`, dead, 'settle') })
    const ah = await openPair(links, a, hub, 1_000n, 0n)
    const bh = await openPair(links, b, hub, 1_000n, 0n)
    const hc = await openPair(links, hub, c, 1_000n, 0n)
    const invoice = c.createInvoice(300n)
    await a.payInvoice(ah, invoice)
    expect(dead.on).toBe(true)
    await c.close()
    links.cut(`carol${n}`, `hub${n}`)
    const disk = new MemoryChannelStore()
    for (const r of await storeC.list()) await disk.put(r)
    expect((await disk.get(hc))?.received).toEqual([to0x(parseInvoice(invoice).hashLock)])
    const again = await walletOf(carol, links, `carol${n}`, disk)
    await settled(again, hc, 300n, 'Carol paid once, by the sync')
    await expect(b.payInvoice(bh, invoice)).rejects.toMatchObject({ code: 'PAYMENT_FAILED' })
    await settled(b, bh, 1_000n, 'Bob to have his payment back')
    await settled(again, hc, 300n, 'Carol still paid once')
    await settled(a, ah, 700n, 'Alice to have paid')
    for (const w of [a, b, hub, again]) await w.close()
  }, 90_000)

  it('a hub restarted with a stale copy of a payment it gave back settles with the payer it forwarded for', async () => {
    // Alice and Bob pay one invoice at the same height (same amount and expiry). The hub forwards
    // Alice's and gives Bob's back at once, and is killed before it saved the give-back. Restarted,
    // it reads which payment its offer to Carol forwards from that channel's record. Before, it
    // guessed by lock, amount and expiry, took Bob's (first in its store), settled nobody's when
    // Carol settled, and paid Carol out of its own pocket.
    const n = 26
    const links = new MemoryLinkNetwork()
    const hubStore = new RecordingStore()
    const hold = { on: true }
    const holdingSettlements = wrappedLinks(links, `carol${n}`, (l) =>
      filteredLink(
        l,
        (f) => !(hold.on && proposedKind(f) === 'settle'),
        () => true,
      ),
    )
    const a = await walletOf(alice, links, `alice${n}`)
    const storeB = new MemoryChannelStore()
    let b = await walletOf(bob, links, `bob${n}`, storeB)
    const hub = await walletOf(hubKey, links, `hub${n}`, hubStore, true)
    const c = await walletOf(carol, links, `carol${n}`, new MemoryChannelStore(), false, { links: holdingSettlements })
    const bh = await openPair(links, b, hub, 1_000n, 0n)
    const ah = await openPair(links, a, hub, 1_000n, 0n)
    const hc = await openPair(links, hub, c, 1_000n, 0n)
    const invoice = c.createInvoice(300n)
    const alicePaid = a.payInvoice(ah, invoice)
    alicePaid.catch(() => undefined)
    await until(hub, (s) => s.channels.find((x) => x.id === hc && x.pendingPayments === 1), 'Alice’s payment forwarded to Carol')
    await expect(b.payInvoice(bh, invoice)).rejects.toMatchObject({ code: 'PAYMENT_FAILED' })
    await settled(hub, bh, 0n, 'Bob’s payment given back')
    // The hub's disk as a kill before its save of the give-back leaves it: Bob's channel as saved
    // with his payment pending, the others as last saved.
    const stale = hubStore.puts.findLast((r) => r.id === bh && (r.snapshot as ChannelSnapshot | undefined)?.latest.state.htlcs.length === 1)
    expect(stale).toBeDefined()
    const disk = new MemoryChannelStore()
    await disk.put(stale as ChannelRecord)
    for (const id of [ah, hc]) await disk.put(hubStore.puts.findLast((r) => r.id === id) as ChannelRecord)
    await hub.close()
    await b.close()
    links.remove(`bob${n}`)
    hold.on = false
    const again = await walletOf(hubKey, links, `hub${n}`, disk, true)
    await settled(c, hc, 300n, 'Carol paid by the restarted hub')
    b = await walletOf(bob, links, `bob${n}`, storeB)
    await settled(again, ah, 300n, 'the hub paid by Alice')
    await alicePaid.catch(() => undefined)
    await settled(a, ah, 700n, 'Alice to have paid')
    await settled(b, bh, 1_000n, 'Bob to have paid nothing')
    await settled(again, bh, 0n, 'nothing from Bob at the hub')
    for (const w of [a, b, again, c]) await w.close()
  }, 90_000)

  it('an opener killed right after its open transaction left finds the channel after a restart, and takes its deposit back when the peer is gone for good', async () => {
    // The open transaction's hash is saved before it leaves; the rename to the channel's id (and
    // the message that tells the peer) come after. Killed in between: the peer never hears of the
    // channel, and the deposit sits on chain in it.
    const n = 24
    const links = new MemoryLinkNetwork()
    const dead = { on: false }
    const storeA = new CrashingStore((r) => r.phase === 'proposed' && r.openTx !== undefined, dead)
    const a = await walletOf(alice, links, `alice${n}`, storeA, false, { links: cutOff(links, `alice${n}`, dead) })
    const b = await walletOf(bob, links, `bob${n}`)
    const before = await proven(alice.address)
    const invite = await until(b, (s) => s.invite, 'an invite')
    const opening = a.openChannel(invite, { deposit: 400n, peerDeposit: 0n, challengePeriod: 5 })
    opening.catch(() => undefined)
    await until(a, () => dead.on || undefined, 'the open transaction to be saved, and Alice to die')
    await untilMoved(alice.address, before, 'the deposit to leave Alice’s account')
    await a.close()
    // Bob's page is gone too: nobody to tell which channel opened.
    await b.close()
    const disk = new MemoryChannelStore()
    for (const r of await storeA.list()) await disk.put(r)
    const [left] = await disk.list()
    expect(left?.phase).toBe('proposed')
    const again = await walletOf(alice, links, `alice${n}-again`, disk)
    const id = to0x(channelIdOf(fromHex(left?.openTx as string)))
    await until(
      again,
      (s) => s.channels.find((c) => c.id === id && c.phase === 'opening' && c.onChain?.status === 'opening'),
      'the channel found on chain',
    )
    await again.cancelOpen(id)
    await until(
      again,
      (s) => s.channels.find((c) => c.id === id && c.phase === 'closed' && c.onChain?.outcome === 'cancelled'),
      'the channel cancelled',
    )
    expect(await proven(alice.address)).toBe(before)
    expect((await disk.get(id))?.phase).toBe('closed')
    await expect(again.cancelOpen(id)).rejects.toMatchObject({ code: 'NOT_OPENING' })
    await again.close()
  }, 90_000)

  it('an opener killed right after its open transaction left, restarted, tells the peer which channel opened, and the peer joins', async () => {
    const n = 28
    const links = new MemoryLinkNetwork()
    const dead = { on: false }
    const storeA = new CrashingStore((r) => r.phase === 'proposed' && r.openTx !== undefined, dead)
    const a = await walletOf(alice, links, `alice${n}`, storeA, false, { links: cutOff(links, `alice${n}`, dead) })
    const b = await walletOf(bob, links, `bob${n}`)
    const invite = await until(b, (s) => s.invite, 'an invite')
    const before = await proven(alice.address)
    a.openChannel(invite, { deposit: 400n, peerDeposit: 0n, challengePeriod: 5 }).catch(() => undefined)
    await until(a, () => dead.on || undefined, 'the open transaction to be saved, and Alice to die')
    await untilMoved(alice.address, before, 'the deposit to leave Alice’s account')
    await a.close()
    // Bob accepted the proposal, and never heard which channel it opened.
    expect(b.state.channels.map((c) => c.phase)).toEqual(['proposed'])
    const disk = new MemoryChannelStore()
    for (const r of await storeA.list()) await disk.put(r)
    const again = await walletOf(alice, links, `alice${n}-again`, disk)
    const id = to0x(channelIdOf(fromHex((await disk.list())[0]?.openTx as string)))
    await until(again, (s) => s.channels.find((c) => c.id === id && c.phase === 'open'), 'the channel open for Alice')
    await until(b, (s) => s.channels.find((c) => c.id === id && c.phase === 'open'), 'the channel open for Bob')
    await again.pay(id, 25n)
    await settled(b, id, 25n, 'Bob paid in the channel')
    for (const w of [again, b]) await w.close()
  }, 90_000)

  it('an open whose first try reached the chain though its answer said its nonce was used: the retry names the channel, the first is cancelled', async () => {
    // A light client that gave its open to one node, lost the answer, and heard from the next
    // that the nonce is used retries with the next nonce: both opens can land. The wallet keeps
    // every try and cancels the channel nobody knows of, so the second deposit comes back.
    const chain = await chainFor()
    let stray: Uint8Array | undefined
    const lostAnswer: ChainAccess = {
      get height() {
        return chain.height
      },
      getStateProof: (k, o) => chain.getStateProof(k, o),
      submitTransaction: async (tx) => {
        const hash = await chain.submitTransaction(tx)
        if (stray === undefined) {
          stray = transactionHash(tx.body)
          throw Object.assign(new Error('nonce already used'), { code: 'NONCE_TOO_LOW' })
        }
        return hash
      },
    }
    const links = new MemoryLinkNetwork()
    const a = await walletOf(alice, links, 'alice27', new MemoryChannelStore(), false, { chain: lostAnswer })
    const b = await walletOf(bob, links, 'bob27')
    const before = await proven(alice.address)
    const id = await openPair(links, a, b, 400n, 0n)
    expect(stray).toBeDefined()
    const strayId = channelIdOf(stray as Uint8Array)
    expect(to0x(strayId)).not.toBe(id)
    const strayRecord = async () => {
      const raw = await node.state.get(channelKey(strayId))
      return raw === undefined ? undefined : decode(channelRecordCodec, raw)
    }
    const end = Date.now() + 20_000
    while ((await strayRecord())?.status !== ChannelStatus.Closed) {
      if (Date.now() > end)
        throw new Error(
          `timed out waiting for the stray channel to be cancelled: ${JSON.stringify(await strayRecord(), (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`,
        )
      await new Promise((r) => setTimeout(r, 100))
    }
    expect((await strayRecord())?.outcome).toBe(0) // ChannelOutcome.Cancelled
    // One deposit left Alice's account, in the channel she and Bob use.
    expect(await proven(alice.address)).toBe(before - 400n)
    await a.close()
    await b.close()
    chain.stop()
  }, 90_000)

  it('a hub wallet closed while it closes a channel alone for a payment first hands the close and the redeem to the node', async () => {
    // The hub's node takes a while to accept each transaction. When the hub's first call for the
    // channel leaves (the close), the wallet is closed at once: it must still send the redeem behind it.
    const chain = await chainFor()
    let watching = false
    let handed = 0
    let closing: Promise<void> | undefined
    let hub: ChannelWallet | undefined
    const slow: ChainAccess = {
      get height() {
        return chain.height
      },
      getStateProof: (k, o) => chain.getStateProof(k, o),
      submitTransaction: async (tx) => {
        if (watching && closing === undefined) closing = Promise.resolve().then(() => hub?.close())
        // Slow, but well inside the 2 s a closing wallet gives its last work (CLOSE_SAVE_MS).
        await new Promise((r) => setTimeout(r, 100))
        const hash = await chain.submitTransaction(tx)
        if (watching) handed++
        return hash
      },
    }
    try {
      const route = await preimageHeldByHub(18, 300n, new MemoryChannelStore(), { chain: slow })
      hub = route.hub
      const { c, ah } = route
      watching = true
      const stopTraffic = traffic(bob)
      try {
        await until(
          c,
          () => closing !== undefined,
          'the hub to close the channel for the payment',
          20_000,
          () => node.height,
        )
        await closing
        // Both calls were with the node when close() returned: the close and the redeem.
        expect(handed).toBe(2)
        const end = Date.now() + 60_000
        for (;;) {
          const rec = decode(channelRecordCodec, (await node.state.get(channelKey(fromHex(ah)))) as Uint8Array)
          if (rec.closer === 1 && rec.htlcs.length === 1 && rec.htlcs.every((h) => h.redeemed)) break
          if (Date.now() > end) throw new Error(`the close and the redeem not on chain by height ${node.height}`)
          await new Promise((r) => setTimeout(r, 100))
        }
      } finally {
        await stopTraffic()
      }
      await c.close()
    } finally {
      await hub?.close()
      chain.stop()
    }
  }, 300_000)

  it('a hub whose next hop redeemed on chain without settling with it learns the preimage there and settles with the payer', async () => {
    // Alice's longer wait (her option sets the expiry) leaves the hub ~90 blocks for a sync, a poll,
    // two proofs and her acknowledgement on a loaded machine, not ~35.
    const { mute, a, hub, c, ah, hc } = await deafHubRoute(14, { routedPaymentWait: 100 })
    // The hub hears nothing from Carol from now on: she countersigns its offer and settles, and
    // neither reaches it.
    mute.on = true
    const paying = a.payInvoice(ah, c.createInvoice(250n))
    await until(c, (s) => s.channels.find((x) => x.id === hc && x.pendingPayments === 1), 'Carol to hold the payment')
    // She closes alone with the state that holds it and redeems it on chain (what her wallet does
    // by itself halfway to the expiry). Off chain the hub sees only its offer go unanswered and the
    // channel go on chain: it must not give Alice her payment back.
    await c.closeUnilateral(hc)
    const expiry = hub.latestState(ah)?.state.htlcs[0]?.expiry as number
    const stopTraffic = traffic(bob)
    try {
      await until(
        a,
        (s) => {
          if (node.height > expiry) throw new Error(`Alice's payment was not settled by its expiry ${expiry}`)
          return s.channels.find((x) => x.id === ah && x.myBalance === 750n && x.pendingPayments === 0)
        },
        'the hub to settle with Alice',
        20_000,
        () => node.height,
      )
    } finally {
      await stopTraffic()
    }
    await paying
    const rec = decode(channelRecordCodec, (await node.state.get(channelKey(fromHex(hc)))) as Uint8Array)
    expect(rec.htlcs.map((h) => h.redeemed)).toEqual([true])
    expect(hub.state.channels.find((x) => x.id === ah)?.myBalance).toBe(250n)
    for (const w of [a, hub, c]) await w.close()
  }, 120_000)

  it('a hub whose offer went unanswered into a channel that went on chain gives the payment back only once that channel is closed', async () => {
    const { links, mute, a, hub, c, ah, hc } = await deafHubRoute(15)
    mute.on = true
    const paying = a.payInvoice(ah, c.createInvoice(250n))
    const told = expect(paying).rejects.toMatchObject({ code: 'PAYMENT_FAILED' })
    // Carol holds the hub's signed offer, then her page is gone for good: she will not redeem it.
    await until(c, (s) => s.channels.find((x) => x.id === hc && x.pendingPayments === 1), 'Carol to hold the payment')
    await c.close()
    links.remove('carol15')
    const expiry = hub.latestState(ah)?.state.htlcs[0]?.expiry as number
    expect(expiry).toBeGreaterThan(node.height)
    // The hub, its offer unanswered, closes alone. Alice's payment stays with the hub while Carol
    // could still redeem the offer on chain...
    await hub.closeUnilateral(hc)
    await new Promise((r) => setTimeout(r, 500))
    expect(a.state.channels.find((x) => x.id === ah)?.pendingPayments).toBe(1)
    // ...and goes back to Alice once the channel is closed (the hub withdraws by itself).
    const record = async () => decode(channelRecordCodec, (await node.state.get(channelKey(fromHex(hc)))) as Uint8Array)
    const stopTraffic = traffic(bob)
    try {
      for (let end = Date.now() + 60_000; (await record()).status !== ChannelStatus.Closed; ) {
        if (Date.now() > end) throw new Error(`the hub's channel with Carol did not close: ${JSON.stringify(hub.state.channels)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      expect((await record()).balances).toEqual([1_000n, 0n])
      // Back before the payment's expiry: the close released it, not the expiry (see the next test).
      await until(
        a,
        (s) => {
          if (node.height >= expiry) throw new Error(`not given back before its expiry ${expiry}`)
          return s.channels.find((x) => x.id === ah && x.myBalance === 1_000n && x.pendingPayments === 0)
        },
        'the payment back with Alice',
        20_000,
      )
    } finally {
      await stopTraffic()
    }
    await told
    for (const w of [a, hub]) await w.close()
  }, 120_000)

  it('a payment past its expiry that its recipient cannot claim is given back off chain', async () => {
    const { links, mute, a, hub, c, ah, hc } = await deafHubRoute(16)
    // The hub's offer to Carol goes unanswered and Carol leaves: the hub can neither settle Alice's
    // payment nor, while Carol could still redeem its offer, give it back.
    mute.on = true
    const invoice = c.createInvoice(250n)
    const paying = a.payInvoice(ah, invoice)
    const told = expect(paying).rejects.toMatchObject({ code: 'PAYMENT_FAILED' })
    await until(c, (s) => s.channels.find((x) => x.id === hc && x.pendingPayments === 1), 'Carol to hold the payment')
    await c.close()
    links.remove('carol16')
    const expiry = hub.latestState(ah)?.state.htlcs[0]?.expiry as number
    const stopTraffic = traffic(bob)
    try {
      // Once the chain is past the expiry, the hub gives it back: off chain, both online.
      await until(
        a,
        (s) => {
          if (node.height > expiry + 20) throw new Error(`not given back by height ${expiry + 20}`)
          return s.channels.find((x) => x.id === ah && x.myBalance === 1_000n && x.pendingPayments === 0)
        },
        'the payment back with Alice',
        20_000,
        () => node.height,
      )
    } finally {
      await stopTraffic()
    }
    await told
    expect(a.state.channels.find((x) => x.id === ah)?.onChain?.status).toBe('open')
    expect(hub.latestState(ah)?.state.htlcs).toEqual([])
    for (const w of [a, hub]) await w.close()
  }, 120_000)

  it('a hub’s late answer about an expired payment leaves alone the newer payment that took its id', async () => {
    // Carol and Bob are away. The hub waits for Carol to forward Alice's first payment, long enough
    // for that payment to expire and go back; Alice's second payment, for Bob, then takes the same
    // id in her channel and waits for Bob. When Carol comes back, the first payment's wait ends in
    // "expired, give it back": that must not give back the second one, which then goes to Bob.
    const links = new MemoryLinkNetwork()
    const carolAway = { on: false }
    const bobAway = { on: false }
    const a = await walletOf(alice, links, 'alice17')
    const hub = await walletOf(hubKey, links, 'hub17', new MemoryChannelStore(), true, {
      forwardWaitMs: 60_000,
      links: awayable(links, 'hub17', (to) => (to === 'mem/carol17' && carolAway.on) || (to === 'mem/bob17' && bobAway.on)),
    })
    const c = await walletOf(carol, links, 'carol17', new MemoryChannelStore(), false, {
      links: awayable(links, 'carol17', () => carolAway.on),
    })
    const b = await walletOf(bob, links, 'bob17', new MemoryChannelStore(), false, { links: awayable(links, 'bob17', () => bobAway.on) })
    const ah = await openPair(links, a, hub, 1_000n, 0n)
    const hc = await openPair(links, hub, c, 1_000n, 0n)
    const hb = await openPair(links, hub, b, 1_000n, 0n)
    carolAway.on = true
    bobAway.on = true
    links.cut('hub17', 'carol17')
    links.cut('hub17', 'bob17')
    await until(hub, (s) => s.channels.every((x) => x.id === ah || x.link === 'none'), 'the hub to see Carol and Bob away')

    const first = a.payInvoice(ah, c.createInvoice(100n))
    const firstFailed = expect(first).rejects.toMatchObject({ code: 'PAYMENT_FAILED' })
    await until(hub, (s) => s.channels.find((x) => x.id === ah && x.pendingPayments === 1), 'the hub to hold the first payment')
    const firstHtlc = hub.latestState(ah)?.state.htlcs[0]
    if (firstHtlc === undefined) throw new Error('no first payment in the channel')
    const stopTraffic = traffic(carol)
    try {
      await until(
        hub,
        (s) => s.channels.find((x) => x.id === ah && x.pendingPayments === 0),
        'the expired first payment given back',
        20_000,
        () => node.height,
      )
    } finally {
      await stopTraffic()
    }
    await firstFailed

    const second = a.payInvoice(ah, b.createInvoice(250n))
    await until(hub, (s) => s.channels.find((x) => x.id === ah && x.pendingPayments === 1), 'the hub to hold the second payment')
    const secondHtlc = hub.latestState(ah)?.state.htlcs[0]
    if (secondHtlc === undefined) throw new Error('no second payment in the channel')
    // The case this test is about: the second payment took the first one's id.
    expect(secondHtlc.id).toBe(firstHtlc.id)
    expect(to0x(secondHtlc.hashLock)).not.toBe(to0x(firstHtlc.hashLock))

    // Carol back: the first payment's wait ends (it polls every 50 ms) in a late "give it back".
    carolAway.on = false
    await until(hub, (s) => s.channels.find((x) => x.id === hc && x.link !== 'none'), 'the hub to see Carol back')
    await new Promise((r) => setTimeout(r, 1_000))
    expect(hub.latestState(ah)?.state.htlcs.map((h) => to0x(h.hashLock))).toEqual([to0x(secondHtlc.hashLock)])

    bobAway.on = false
    await second
    await until(b, (s) => s.channels.find((x) => x.id === hb && x.myBalance === 250n && x.pendingPayments === 0), 'Bob paid')
    await until(a, (s) => s.channels.find((x) => x.id === ah && x.myBalance === 750n && x.pendingPayments === 0), 'Alice to have paid')
    for (const w of [a, hub, c, b]) await w.close()
  }, 120_000)

  it('a wallet that closes alone sends the redeem of each payment it holds the preimage of right behind the close', async () => {
    const { hub, c, ah } = await preimageHeldByHub(12, 200n)
    const sent = async () =>
      decode(accountStateCodec, (await node.state.get(accountKey(hubKey.address))) as Uint8Array).nonce +
      node.mempool.pendingFrom(hubKey.address)
    const before = await sent()
    await hub.closeUnilateral(ah)
    // Both are with the node when the close returns: the close, and the redeem at the next nonce,
    // not one a poll sends once the close shows on chain, blocks later. The hub's page closes at
    // once: no poll of its sends anything after.
    expect(await sent()).toBe(before + 2)
    await hub.close()
    const redeemed = async () => decode(channelRecordCodec, (await node.state.get(channelKey(fromHex(ah)))) as Uint8Array).htlcs
    const done = (hs: readonly { redeemed: boolean }[]) => hs.length > 0 && hs.every((h) => h.redeemed)
    for (let end = Date.now() + 20_000; !done(await redeemed()) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 50))
    expect((await redeemed()).map((h) => h.redeemed)).toEqual([true])
    await c.close()
  }, 90_000)

  it('a payer that reloads while its payment is held still refuses to pay the invoice again, and records it paid when it settles', async () => {
    const storeA = new MemoryChannelStore()
    const { links, a, hub, c, ah, hc } = await hubRoute(8, storeA)
    links.cut('hub8', 'carol8')
    await until(hub, (s) => s.channels.find((x) => x.id === hc && x.link === 'none'), 'the hub to see the link to Carol down')
    const invoice = c.createInvoice(100n)
    await payHeldThenClose(a, hub, ah, invoice)
    links.remove('alice8')
    // Reloaded: nothing in memory waits on the payment, but the channel's state holds it.
    const back = await walletOf(alice, links, 'alice8', storeA)
    await expect(back.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'IN_FLIGHT' })
    // Carol's link comes back, she settles, the hub settles with Alice: paid, for good.
    await until(c, (s) => s.channels.find((x) => x.id === hc && x.myBalance === 100n), 'Carol to be paid', 30_000)
    await until(
      back,
      (s) => s.channels.find((x) => x.id === ah && x.myBalance === 900n && x.pendingPayments === 0),
      'Alice’s side to settle',
    )
    await expect(back.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'ALREADY_PAID' })
    expect((await storeA.get(ah))?.paid).toEqual([to0x(parseInvoice(invoice).hashLock)])
    // Another invoice of Carol's goes through the same channel.
    await back.payInvoice(ah, c.createInvoice(50n))
    expect(back.state.channels.find((x) => x.id === ah)?.myBalance).toBe(850n)
    for (const w of [back, hub, c]) await w.close()
  }, 90_000)

  it('a payment past its expiry, stuck in its channel while the hub is away, no longer holds its invoice as in flight', async () => {
    const storeA = new MemoryChannelStore()
    const { links, a, hub, c, ah } = await hubRoute(10, storeA)
    // Carol makes an invoice and leaves for good: the hub can only hold what is paid to her.
    const invoice = c.createInvoice(100n)
    await c.close()
    links.remove('carol10')
    await payHeldThenClose(a, hub, ah, invoice)
    // Alice comes back on another link name and the hub is out of reach: with both online, an
    // expired payment is taken out of the channel together, and this is about one left in it.
    links.remove('alice10')
    links.remove('hub10')
    const back = await walletOf(alice, links, 'alice10b', storeA)
    await expect(back.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'IN_FLIGHT' })
    const expiry = back.latestState(ah)?.state.htlcs[0]?.expiry as number
    // The payer's option set it, from the height it paid at.
    expect(expiry).toBeGreaterThan(0)
    expect(expiry).toBeLessThanOrEqual(node.height + ROUTED_WAIT)
    // Blocks pass (other people's transfers) until the expiry is behind Alice's verified height.
    const stopTraffic = traffic(bob)
    try {
      // About 100 blocks: the wait runs while Alice's verified height moves.
      await until(
        back,
        (s) => ((s.balanceAt ?? 0) > expiry ? true : undefined),
        `Alice's height past ${expiry}`,
        20_000,
        () => back.state.balanceAt,
      )
    } finally {
      await stopTraffic()
    }
    // Nobody can settle or redeem it now, so the invoice is no longer in flight (another channel
    // may pay it), though the channel's state still holds it; this channel fails for what it is:
    // its peer is away.
    expect(back.latestState(ah)?.state.htlcs.map((h) => h.expiry)).toEqual([expiry])
    await expect(back.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'PEER_OFFLINE' })
    for (const w of [back, hub]) await w.close()
  }, 300_000)

  it('a payment in flight when its payer closes the channel alone ends its wait with CHANNEL_ON_CHAIN, not never', async () => {
    const storeA = new MemoryChannelStore()
    const { links, a, hub, c, ah, hc } = await hubRoute(7, storeA)
    links.cut('hub7', 'carol7')
    await until(hub, (s) => s.channels.find((x) => x.id === hc && x.link === 'none'), 'the hub to see the link to Carol down')
    const invoice = c.createInvoice(200n)
    const paying = a.payInvoice(ah, invoice)
    await until(hub, (s) => s.channels.find((x) => x.id === ah && x.pendingPayments === 1), 'the hub to hold Alice’s payment')
    const told = expect(paying).rejects.toMatchObject({ code: 'CHANNEL_ON_CHAIN', message: expect.stringMatching(/redeems it there/) })
    await a.closeUnilateral(ah)
    await told
    // Paying the same invoice again could pay it twice: refused while the first settles on chain,
    // also by the wallet reopened from its store.
    await expect(a.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'SETTLING_ON_CHAIN' })
    await a.close()
    links.remove('alice7')
    const back = await walletOf(alice, links, 'alice7', storeA)
    await expect(back.payInvoice(ah, invoice)).rejects.toMatchObject({ code: 'SETTLING_ON_CHAIN' })
    for (const w of [back, hub, c]) await w.close()
  }, 60_000)

  // Last in the file: it restarts the node the others share.
  it('the watchtower keeps what it watches across a restart of its node (LevelDB) and challenges after it', async () => {
    const { a, b, id, old } = await paidTwice('5', [1_000n, 500n], 50n, 70n)
    await b.watch(id)
    for (const w of [a, b]) await w.close()
    const watched = node.watchtower?.size ?? 0
    expect(watched).toBeGreaterThanOrEqual(1)

    await node.stop()
    node = await FullNode.open({ dataDir: dir, genesis, validatorSecret: validator.secretKey })
    node.start()
    expect(node.watchtower?.size).toBe(watched)

    const before = await proven(bob.address)
    await closeAlone(alice, id, old)
    await untilMoved(bob.address, before, 'the restarted watchtower to challenge')
    expect(await proven(bob.address)).toBe(before + 1_500n)
    expect(node.watchtower?.challengesSent).toBe(1)
  }, 90_000)
})
