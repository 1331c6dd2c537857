/**
 * Private payment channels between two browsers (two Chromium contexts: two people) against a
 * devnet of real node processes, driven through the channels page as a person would: test funds
 * from the devnet's faucet, an invite, a channel opened on chain, 100 payments each way over the
 * direct WebRTC link, messages each way, forged and replayed updates and messages refused, a
 * reload mid-channel, a cooperative close with the right balances on chain. Then a cheater closes
 * alone with an old state: the other browser challenges and takes the channel; and again while the
 * honest browser is closed, where its institution's watchtower does it. Screenshots go to
 * test-results/channels/.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  CHANNEL_ADDRESS,
  type ChannelWire,
  channelCallTransaction,
  decodeChannelWire,
  encode,
  encodeChannelWire,
  encodeSignedChannelState,
  fromHex,
  keyPairFromSecret,
  parseGenesis,
  type SignedChannelState,
  to0x,
  transactionCodec,
} from '@loopchain/core'
import { reservePortBlock } from '@loopchain/node'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../support/chromium.js'
import { startTestDevnet, type TestDevnet } from '../support/devnet.js'
import { installRtcTap, tapped, tapRecording, tapSend } from '../support/rtc-tap.js'

const SHOTS = fileURLToPath(new URL('../../test-results/channels', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'loopchain-channels-'))
const BASE = reservePortBlock()

let devnet: TestDevnet
let url = ''
let browser: Browser

const rpc = (method: string, params: object = {}) => devnet.rpc(method, params)
const waitFor = <T>(f: () => T | undefined | Promise<T | undefined>, ms: number, what: string) => devnet.waitFor(f, ms, what)

const balanceOf = async (address: string) => BigInt((await rpc('lc_getAccount', { address })).balance)

/** One person: a browser context with the channels page open. */
interface Person {
  ctx: BrowserContext
  page: Page
  address: string
}

async function person(name: string): Promise<Person> {
  const ctx = await browser.newContext({ viewport: name === 'bob' ? { width: 390, height: 844 } : { width: 1280, height: 900 } })
  // Records what the page sends on its WebRTC data channels when a test turns it on (support/rtc-tap.ts).
  await ctx.addInitScript(installRtcTap)
  const page = await ctx.newPage()
  page.on('pageerror', (e) => console.log(`${name} page error: ${e.message}`))
  await page.goto(`${url}#/channels`)
  const address = await waitFor(
    async () => (await page.getByTestId('wallet-address').textContent()) || undefined,
    60_000,
    `${name}'s wallet`,
  )
  return { ctx, page, address }
}

async function fund(p: Person): Promise<void> {
  await p.page.getByTestId('faucet').click()
  await waitFor(async () => ((await balanceOf(p.address)) > 0n ? true : undefined), 30_000, 'test funds')
  await p.page.waitForFunction(
    () => !['…', '0'].includes(document.querySelector('[data-testid=wallet-balance]')?.textContent ?? '…'),
    null,
    {
      timeout: 30_000,
    },
  )
}

/** Opens a channel from `a` to `b` through the page; resolves with its id once both pages show it open. */
async function openChannel(a: Person, b: Person, deposit: number, peerDeposit: number, label: string): Promise<string> {
  await b.page.waitForFunction(
    () => (document.querySelector('[data-testid=invite-text]') as HTMLTextAreaElement | null)?.value.startsWith('lcch1.'),
    null,
    {
      timeout: 60_000,
    },
  )
  const invite = await b.page.getByTestId('invite-text').inputValue()
  const channels = () => a.page.locator('[data-testid=channel]').evaluateAll((els) => els.map((e) => e.getAttribute('data-channel') ?? ''))
  const before = new Set(await channels())
  await a.page.getByTestId('open-invite').fill(invite)
  await a.page.getByTestId('open-deposit').fill(String(deposit))
  await a.page.getByTestId('open-peer-deposit').fill(String(peerDeposit))
  await a.page.getByTestId('open-period').fill('6')
  await a.page.getByTestId('open-label').fill(label)
  await a.page.getByTestId('open-submit').click()
  // The channel's card shows a local id while the peer answers, then the chain's id once the open transaction is sent.
  const id = await waitFor(async () => (await channels()).find((c) => c.startsWith('0x') && !before.has(c)), 60_000, 'the channel id')
  for (const p of [a, b]) await p.page.waitForSelector(`[data-channel="${id}"][data-phase=open]`, { timeout: 60_000 })
  return id
}

/** Runs `f`; when it fails, adds what each page's channel cards say, and screenshots them. */
async function explained(people: Person[], shot: string, f: () => Promise<void>): Promise<void> {
  try {
    await f()
  } catch (e) {
    const said = await Promise.all(
      people.map(async (p, i) => {
        await p.page.screenshot({ path: join(SHOTS, `${shot}-${i}.png`), fullPage: true }).catch(() => undefined)
        const cards = await p.page.locator('[data-testid=channel]').allInnerTexts()
        return `page ${i} (${p.address}):\n${cards.join('\n---\n')}`
      }),
    )
    throw new Error(`${(e as Error).message}\n${said.join('\n')}`)
  }
}

/** A channel-protocol frame on a peer link (TAG_WIRE in packages/light-client/src/channel-wallet.ts). */
const WIRE_FRAME = 1
const wireFrame = (m: ChannelWire) => Uint8Array.from([WIRE_FRAME, ...encodeChannelWire(m)])

const card = (p: Person, id: string) => p.page.locator(`[data-channel="${id}"]`)
const seqOf = async (p: Person, id: string) => Number(await card(p, id).getByTestId('state-seq').getAttribute('data-seq'))

async function pay(p: Person, id: string, amount: number): Promise<void> {
  const c = card(p, id)
  const before = await seqOf(p, id)
  await c.getByTestId('pay-amount').fill(String(amount))
  await c.getByTestId('pay-submit').click()
  await p.page.waitForFunction(
    ([cid, n]) => Number(document.querySelector(`[data-channel="${cid}"] [data-testid=state-seq]`)?.getAttribute('data-seq')) > Number(n),
    [id, before] as const,
    { timeout: 20_000 },
  )
}

async function chat(from: Person, to: Person, id: string, text: string): Promise<void> {
  await card(from, id).getByTestId('chat-input').fill(text)
  await card(from, id).getByTestId('chat-send').click()
  await to.page.waitForFunction(
    ([cid, t]) => document.querySelector(`[data-channel="${cid}"] [data-testid=chat-list]`)?.textContent?.includes(t),
    [id, text] as const,
    {
      timeout: 20_000,
    },
  )
}

/** The wallet's secret key and the channel's latest co-signed state, read from the page's IndexedDB (what a cheater has). */
async function cheatKit(p: Person, id: string): Promise<{ secret: string; signed: SignedChannelState }> {
  const chainId = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8'))).chainId
  // The payer saves a countersigned state a moment after it shows (with the revocation that follows it).
  const shown = await seqOf(p, id)
  const raw = await waitFor(
    async () => {
      const r = await read()
      return r?.state.seq === shown ? r : undefined
    },
    10_000,
    'the shown state to be saved',
  )
  return {
    secret: raw.secret,
    signed: {
      state: {
        channelId: fromHex(raw.state.channelId),
        seq: raw.state.seq,
        balances: [BigInt(raw.state.balances[0]), BigInt(raw.state.balances[1])],
        htlcs: [],
        final: raw.state.final,
      },
      signatures: [fromHex(raw.signatures[0]), fromHex(raw.signatures[1])],
    },
  }

  function read() {
    return p.page.evaluate(
      async ([name, cid]) => {
        const db = await new Promise<IDBDatabase>((res, rej) => {
          const r = indexedDB.open(name)
          r.onsuccess = () => res(r.result)
          r.onerror = () => rej(r.error)
        })
        const get = (store: string, key: string) =>
          new Promise<any>((res, rej) => {
            const r = db.transaction(store).objectStore(store).get(key)
            r.onsuccess = () => res(r.result)
            r.onerror = () => rej(r.error)
          })
        const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
        const rec = await get('channels', cid)
        const secret = await get('wallet', 'secretKey')
        if (rec?.snapshot === undefined) return undefined
        const l = rec.snapshot.latest
        return {
          secret: hex(secret),
          state: { channelId: hex(l.state.channelId), seq: l.state.seq, balances: l.state.balances.map(String), final: l.state.final },
          signatures: l.signatures.map(hex),
        }
      },
      [`loopchain-wallet-${chainId}`, id] as const,
    )
  }
}

/** Closes channel `id` alone with `old`, signed with the cheater's key, straight to a node. */
async function cheat(secret: string, id: string, old: SignedChannelState): Promise<void> {
  const key = keyPairFromSecret(fromHex(secret))
  const genesis = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
  const { nonce } = await rpc('lc_getAccount', { address: key.address })
  const tx = channelCallTransaction({
    key,
    networkId: genesis.networkId,
    nonce,
    method: 'close',
    params: { id: fromHex(id), state: encodeSignedChannelState(old) },
    timestamp: Date.now() * 1000,
  })
  const receipt = await rpc('lc_sendTransactionAndWait', { tx: to0x(encode(transactionCodec, tx)), timeoutMs: 30_000 })
  expect(receipt.status).toBe('success')
}

const channelRecord = async (id: string) => rpc('lc_call', { to: CHANNEL_ADDRESS, method: 'get', params: { id } })

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true })
  devnet = await startTestDevnet(dir, BASE)
  url = devnet.url
  browser = await launchChromium()
}, 300_000)

afterAll(async () => {
  await browser?.close()
  await devnet?.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('payment channels between two browsers on a devnet', () => {
  let alice: Person
  let bob: Person

  it('open, 100 payments each way, messages, forged and replayed updates refused, a reload mid-channel, cooperative close with the right balances on chain', async () => {
    alice = await person('alice')
    bob = await person('bob')
    await fund(alice)
    await fund(bob)
    const a0 = await balanceOf(alice.address)
    const b0 = await balanceOf(bob.address)
    const id = await openChannel(alice, bob, 5000, 1000, 'Bob')
    expect(await card(alice, id).getByTestId('link-kind').getAttribute('data-kind')).toBe('direct')
    expect((await channelRecord(id)).status).toBe('open')

    for (let i = 0; i < 100; i++) await pay(alice, id, 7)
    for (let i = 0; i < 100; i++) await pay(bob, id, 3)
    expect(await seqOf(alice, id)).toBe(200)
    await chat(alice, bob, id, 'hello Bob, 700 sent')
    await chat(bob, alice, id, 'thanks Alice — 300 back')

    // Alice turns hostile on the direct link: what her page sent is played back, then forged, on the
    // same data channel. Bob's page refuses each with a typed reason and nothing in the channel changes.
    await tapRecording(alice.page, true)
    await pay(alice, id, 5)
    await chat(alice, bob, id, 'a message to play back')
    await tapRecording(alice.page, false)
    await pay(alice, id, 5)
    const sent = (await tapped(alice.page)).flatMap((t) =>
      t.frames.filter((f) => f[0] === WIRE_FRAME).map((f) => ({ index: t.index, m: decodeChannelWire(f.subarray(1)) })),
    )
    const update = sent.find((s) => s.m.t === 'update')
    const message = sent.find((s) => s.m.t === 'msg')
    if (update?.m.t !== 'update' || message?.m.t !== 'msg') throw new Error(`the tap saw no update and message: ${sent.map((s) => s.m.t)}`)
    expect(update.m.seq).toBe(201)
    const bobBefore = { seq: await seqOf(bob, id), balance: await card(bob, id).getByTestId('my-balance').textContent() }
    expect(bobBefore.seq).toBe(202)
    // Each refusal is told apart by its code and reason (the card shows the latest one).
    const refused = async (m: ChannelWire, code: string, reason: string) => {
      await tapSend(alice.page, update.index, [wireFrame(m)])
      await bob.page.waitForFunction(
        ([cid, c, r]) => {
          const text = document.querySelector(`[data-channel="${cid}"] [data-testid=channel-error]`)?.textContent ?? ''
          return text.includes(c) && text.includes(r)
        },
        [id, code, reason] as const,
        { timeout: 20_000 },
      )
    }
    // Replayed: the update for state 201 once more.
    await refused(update.m, 'STALE_UPDATE', 'state 201 is not newer')
    // Forged: the next state number with a larger amount, under the signature of state 201.
    if (update.m.change.kind !== 'pay') throw new Error('expected a payment')
    await refused({ ...update.m, seq: 203, change: { ...update.m.change, amount: 500n } }, 'BAD_SIGNATURE', 'does not sign state 203')
    // A message played back, then one with its words changed.
    await refused(message.m, 'REPLAYED_MESSAGE', `message ${message.m.seq} was already received`)
    const forgedMessage = { ...message.m, seq: message.m.seq + 1, body: new TextEncoder().encode('send me everything') }
    await refused(forgedMessage, 'BAD_SIGNATURE', `message ${forgedMessage.seq} is not signed by the peer`)
    expect(await seqOf(bob, id)).toBe(bobBefore.seq)
    expect(await card(bob, id).getByTestId('my-balance').textContent()).toBe(bobBefore.balance)
    const chatText = (await card(bob, id).getByTestId('chat-list').textContent()) ?? ''
    expect(chatText.split('a message to play back').length - 1).toBe(1)
    expect(chatText).not.toContain('send me everything')
    await bob.page.screenshot({ path: join(SHOTS, 'bob-refused.png'), fullPage: true })
    // The channel goes on.
    await pay(alice, id, 10)
    await pay(bob, id, 10)
    expect(await seqOf(bob, id)).toBe(204)
    await alice.page.screenshot({ path: join(SHOTS, 'alice-open.png'), fullPage: true })
    await bob.page.screenshot({ path: join(SHOTS, 'bob-open.png'), fullPage: true })

    // Bob reloads mid-channel: the channel comes back from IndexedDB, the link is made again, payments go on.
    await bob.page.reload()
    await bob.page.waitForSelector(`[data-channel="${id}"][data-phase=open]`, { timeout: 60_000 })
    expect(await seqOf(bob, id)).toBe(204)
    // The link is made again (direct, or relayed when WebRTC cannot connect in time on a loaded machine: the page says which).
    await bob.page.waitForSelector(`[data-channel="${id}"] [data-testid=link-kind]:is([data-kind=direct], [data-kind=relayed])`, {
      timeout: 60_000,
    })
    expect(await card(bob, id).getByTestId('chat-list').textContent()).toContain('hello Bob')
    await pay(bob, id, 50)
    await pay(alice, id, 1)
    expect(await card(bob, id).getByTestId('my-balance').textContent()).toBe((1000 + 700 - 300 + 10 - 50 + 1).toLocaleString('en-US'))

    await card(alice, id).getByTestId('close-coop').click()
    for (const p of [alice, bob]) await p.page.waitForSelector(`[data-channel="${id}"][data-phase=closed]`, { timeout: 60_000 })
    const rec = await channelRecord(id)
    expect(rec.status).toBe('closed')
    expect(rec.outcome).toBe('cooperative')
    // Fees are zero on the devnet: each account moved by exactly what the channel paid.
    const aliceFinal = 5000 - 700 + 300 - 10 + 50 - 1
    expect(await balanceOf(alice.address)).toBe(a0 - 5000n + BigInt(aliceFinal))
    expect(await balanceOf(bob.address)).toBe(b0 - 1000n + BigInt(6000 - aliceFinal))
    expect(await card(alice, id).getByTestId('onchain-status').textContent()).toContain('Settled together')
  }, 600_000)

  it('a close with an old state is challenged by the other browser, which receives the whole channel', async () => {
    const id = await openChannel(alice, bob, 2000, 500, 'Bob again')
    await pay(alice, id, 100)
    const { secret, signed: old } = await cheatKit(alice, id)
    expect(old.state.seq).toBe(1)
    await pay(alice, id, 400)
    // Alice's revocation of states 0 and 1 reaches Bob once her page saved state 2.
    await bob.page.waitForSelector(`[data-channel="${id}"][data-peer-revoked="2"]`, { timeout: 20_000 })
    const b0 = await balanceOf(bob.address)
    await cheat(secret, id, old)
    await bob.page.waitForSelector(`[data-channel="${id}"][data-phase=closed]`, { timeout: 60_000 })
    const rec = await channelRecord(id)
    expect(rec.outcome).toBe('penalised')
    expect(await balanceOf(bob.address)).toBe(b0 + 2500n)
    expect(await card(bob, id).getByTestId('onchain-status').textContent()).toContain('penalised')
    await bob.page.screenshot({ path: join(SHOTS, 'bob-penalty.png'), fullPage: true })
  }, 300_000)

  it('the watchtower challenges the stale close while the honest browser is closed', async () => {
    const id = await openChannel(alice, bob, 1500, 500, 'Bob, watched')
    await pay(alice, id, 100)
    const { secret, signed: old } = await cheatKit(alice, id)
    await pay(alice, id, 200)
    await bob.page.waitForSelector(`[data-channel="${id}"][data-peer-revoked="2"]`, { timeout: 20_000 })
    await card(bob, id).getByTestId('watch').click()
    await bob.page.waitForFunction(
      (cid) => document.querySelector(`[data-channel="${cid}"] [data-testid=watch]`)?.textContent?.includes('#2'),
      id,
      {
        timeout: 20_000,
      },
    )
    // Bob closes his browser.
    await bob.ctx.close()
    const b0 = await balanceOf(bob.address)
    await cheat(secret, id, old)
    await waitFor(async () => ((await channelRecord(id)).status === 'closed' ? true : undefined), 60_000, 'the watchtower’s challenge')
    expect((await channelRecord(id)).outcome).toBe('penalised')
    expect(await balanceOf(bob.address)).toBe(b0 + 2000n)
  }, 300_000)

  it('a two-hop payment through the devnet’s hub node: Alice pays Carol’s invoice, the hub forwards it', async () => {
    const carol = await person('carol')
    await fund(carol)
    const viaHub = async (p: Person) => {
      const channels = () =>
        p.page.locator('[data-testid=channel]').evaluateAll((els) => els.map((e) => e.getAttribute('data-channel') ?? ''))
      const before = new Set(await channels())
      await p.page.getByTestId('use-hub').click()
      await p.page.getByTestId('open-deposit').fill('3000')
      await p.page.getByTestId('open-peer-deposit').fill('3000')
      await p.page.getByTestId('open-submit').click()
      const id = await waitFor(
        async () => (await channels()).find((c) => c.startsWith('0x') && !before.has(c)),
        60_000,
        'the hub channel id',
      )
      await p.page.waitForSelector(`[data-channel="${id}"][data-phase=open]`, { timeout: 60_000 })
      return id
    }
    const aliceHub = await viaHub(alice)
    const carolHub = await viaHub(carol)
    expect((await channelRecord(aliceHub)).status).toBe('open')
    // Carol asks for 250; Alice pays the invoice through her channel with the hub.
    await card(carol, carolHub).locator('summary').click()
    await card(carol, carolHub).getByTestId('invoice-amount').fill('250')
    await card(carol, carolHub).getByTestId('invoice-create').click()
    const invoice = await card(carol, carolHub).getByTestId('invoice-text').inputValue()
    expect(invoice).toMatch(/^lcinv1\./)
    await card(alice, aliceHub).locator('summary').click()
    await card(alice, aliceHub).getByTestId('pay-invoice-text').fill(invoice)
    await card(alice, aliceHub).getByTestId('pay-invoice').click()
    await explained([alice, carol], 'hub-failure', async () => {
      await carol.page.waitForFunction(
        (cid) => document.querySelector(`[data-channel="${cid}"] [data-testid=my-balance]`)?.textContent === '3,250',
        carolHub,
        { timeout: 30_000 },
      )
      await alice.page.waitForFunction(
        (cid) => document.querySelector(`[data-channel="${cid}"] [data-testid=my-balance]`)?.textContent === '2,750',
        aliceHub,
        { timeout: 30_000 },
      )
    })
    await carol.page.screenshot({ path: join(SHOTS, 'carol-hub.png'), fullPage: true })
  }, 300_000)
})
