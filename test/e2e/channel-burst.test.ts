/**
 * A burst of pipelined channel payments between two Chromium pages over a direct WebRTC link
 * (signalled through a real full node's relay), each page running the core's session and driver
 * with the browser's WebCrypto Ed25519 and saving to IndexedDB before it acknowledges — the bench's
 * pages (test/bench/channel-page.entry.ts), at a size a test can afford. Back-to-back updates are
 * taken as runs checked through their last signature: the payee countersigns every payment but
 * checks far fewer signatures, and both pages still end on the same state, signed by both, saved.
 */
import { randomBytes } from 'node:crypto'
import { checkSignedChannelState, decodeSignedChannelState, fromHex, keyPairFromSecret, to0x } from '@loopchain/core'
import { releasePortBlock, reservePortBlock } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { type ChannelPages, call, openChannelPages } from '../bench/channel.js'

const PAYMENTS = 1500
const BASE = reservePortBlock()
let pages: ChannelPages

beforeAll(async () => {
  pages = await openChannelPages(BASE)
}, 120_000)

afterAll(async () => {
  await pages?.close()
  releasePortBlock(BASE)
})

describe('pipelined channel payments between two Chromium pages', () => {
  it('every payment is countersigned and saved; runs are checked through their last signature; both sides agree', async () => {
    const { payer, payee, kind } = pages
    expect(kind).toBe('direct')
    const seeds: [string, string] = [to0x(new Uint8Array(randomBytes(32))), to0x(new Uint8Array(randomBytes(32)))]
    const channelId = to0x(new Uint8Array(randomBytes(32)))
    const deposits: [string, string] = ['1000000', '0']
    await call(payer, 'setup', 0, seeds, channelId, 'webcrypto', deposits)
    await call(payee, 'setup', 1, seeds, channelId, 'webcrypto', deposits)
    for (const p of [payer, payee]) await call(p, 'cryptoCounts')

    await call(payer, 'pipelined', PAYMENTS)
    // Every payment has resolved at the payer; its revocation of the states below the last one goes
    // out after the save that resolved it, so the payee may still be taking it in.
    expect(await call(payer, 'myRevokedBelow')).toBe(PAYMENTS)
    await vi.waitFor(async () => expect(await call(payee, 'peerRevokedBelow')).toBe(PAYMENTS), { timeout: 20_000, interval: 100 })

    const payerCrypto = await call(payer, 'cryptoCounts')
    const payeeCrypto = await call(payee, 'cryptoCounts')
    // Each side signed every state and one revocation per run it took; each checked the other's
    // signatures once per run (revocations included), and runs formed.
    for (const c of [payerCrypto, payeeCrypto]) {
      expect(c.signs).toBeGreaterThan(PAYMENTS)
      expect(c.signs - PAYMENTS).toBeLessThan(PAYMENTS / 8)
    }
    expect(payeeCrypto.verifies).toBeGreaterThan(0)
    expect(payeeCrypto.verifies).toBeLessThan(PAYMENTS / 4)
    expect(payerCrypto.verifies).toBeLessThan(PAYMENTS / 4)
    // Both end on the last payment, the same state, signed by both, and the payee's IndexedDB has it.
    const [a, b] = [
      decodeSignedChannelState(fromHex(await call(payer, 'latest'))),
      decodeSignedChannelState(fromHex(await call(payee, 'latest'))),
    ]
    expect(a.state.seq).toBe(PAYMENTS)
    expect(b).toEqual(a)
    expect(a.state.balances).toEqual([1_000_000n - BigInt(PAYMENTS), BigInt(PAYMENTS)])
    const keys = [keyPairFromSecret(fromHex(seeds[0])).publicKey, keyPairFromSecret(fromHex(seeds[1])).publicKey] as const
    expect(checkSignedChannelState(a, fromHex(channelId), 1_000_000n, keys)).toBeUndefined()
    expect(await call(payee, 'storedSeq', channelId)).toBe(PAYMENTS)
  }, 120_000)
})
