/**
 * The light client in real Chromium against a real node process: it syncs over libp2p WebSockets
 * on ws://127.0.0.1 through a validator-set change, proves a state value, follows a gossiped
 * header, and keeps it all in IndexedDB; after the node is killed and the page reloaded, it starts
 * from IndexedDB alone (same tip, same sets, stored headers) and reports that no node is reachable.
 */
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Address, accountKey, genesisToJson, toHex } from '@loopchain/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import lightVectors from '../../packages/core/test/vectors/light.json' with { type: 'json' }
import { startWebrtcDirectNode } from '../../packages/node/test/fixtures/webrtc-node.js'
import { bundleForBrowser, launchChromium, runInChromium, serveStatic } from '../support/chromium.js'
import { CliNetwork, waitFor } from '../support/cli-network.js'

const RECIPIENT = 'hx00000000000000000000000000000000000b0a01' as Address
let net: CliNetwork

beforeAll(async () => {
  net = await CliNetwork.start({ validators: 1 })
}, 180_000)

afterAll(() => net?.stop())

describe('the light client in headless Chromium', () => {
  it('syncs from a real node over ws://127.0.0.1, stores in IndexedDB, and after a reload with the node stopped still has it all', async () => {
    const validator = net.validatorKey('node-0')
    expect((await net.propose('node-0', { type: 'setValidatorPower', address: validator.address, power: 5n })).status).toBe('success')
    expect((await net.transfer(RECIPIENT)).status).toBe('success')
    expect((await net.transfer(RECIPIENT)).status).toBe('success')
    // A block with transactions is followed by one that commits its result; then the chain idles.
    const idleTip = (above: number) =>
      waitFor(
        async () => {
          const b = await net.rpc('node-0', 'lc_getLastBlock', { full: true })
          return b.height > above && b.transactions.length === 0 ? b : undefined
        },
        30_000,
        'the chain to idle',
      )
    const last = await idleTip(0)
    const node = await net.wsAddr('node-0')
    const key = accountKey(RECIPIENT)
    const expected = await net.rpc('node-0', 'lc_getStateProof', { key: `0x${toHex(key)}`, height: last.height - 1 })
    const header2 = await net.rpc('node-0', 'lc_getBlockByHeight', { height: 2, full: false })

    const dir = await bundleForBrowser(fileURLToPath(new URL('./light-client.entry.ts', import.meta.url)))
    const server = await serveStatic(dir)
    const browser = await launchChromium()
    try {
      const page = await browser.newPage()
      const logs: string[] = []
      page.on('console', (m) => logs.push(m.text()))
      page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`))
      const genesis = JSON.parse(readFileSync(join(net.dir, 'genesis.json'), 'utf8'))
      // The phase survives the reload in sessionStorage; the rest is the same for both.
      await page.addInitScript(
        (p) => {
          ;(globalThis as { __params?: unknown }).__params = { ...p, phase: sessionStorage.getItem('phase') ?? 'sync' }
        },
        { genesis, bootstrap: [node.addr], key: toHex(key) },
      )
      const result = async <T>(): Promise<T> => {
        await page.waitForFunction(() => '__result' in globalThis || '__error' in globalThis, undefined, { timeout: 90_000 })
        const error = await page.evaluate(() => (globalThis as { __error?: string }).__error)
        if (error !== undefined) throw new Error(`in Chromium: ${error}\n${logs.join('\n')}`)
        return (await page.evaluate(() => (globalThis as { __result?: unknown }).__result)) as T
      }

      await page.goto(server.url)
      const online = await result<Record<string, any>>()
      expect(online.userAgent).toMatch(/Chrome/)
      expect(online.resumed).toEqual({ height: 0, setChanges: 0 })
      expect(online).toMatchObject({ height: last.height, hash: last.hash.slice(2), setChanges: 1, value: expected.value.slice(2) })
      expect(online.midHash).toBe(header2.hash.slice(2))
      // The tip (3) and the header announcing the change (2): nothing else was needed.
      expect(online.storedHeaders).toBe(2)
      expect(online.storedBytes).toBeGreaterThan(0)
      // The wire formats' golden vectors, computed in Chromium, are the bytes Node pins.
      expect(online.vectors).toEqual(lightVectors)

      // Gossip: a new block's header reaches the page and is verified and stored.
      await new Promise((r) => setTimeout(r, 1500))
      const r = await net.transfer(RECIPIENT)
      const tip = await idleTip(r.height - 1)
      await waitFor(
        async () =>
          (await page.evaluate(() => (globalThis as { __client?: { height: number } }).__client?.height)) === tip.height ? true : undefined,
        20_000,
        'the gossiped headers in the page',
      )
      const tipHash = tip.hash.slice(2)

      // The node goes away; the page reloads and starts from IndexedDB.
      net.kill()
      await page.evaluate(() => sessionStorage.setItem('phase', 'offline'))
      await page.reload()
      const offline = await result<Record<string, any>>()
      expect(offline.resumed).toEqual({ height: tip.height, setChanges: 1 })
      expect(offline).toMatchObject({ height: tip.height, hash: tipHash, midHash: header2.hash.slice(2), syncError: 'NO_PEER' })
      expect(offline.validatorsAtTip).toEqual([5])
      // The first tip, the header announcing the change, and each header that arrived on gossip.
      expect(offline.storedHeaders).toBe(2 + (tip.height - last.height))
    } finally {
      await browser.close()
      await server.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 240_000)
})

describe('the light client in headless Chromium over WebRTC-direct', () => {
  it('dials a full node by its certhash address (no WebSockets at all) and syncs and proves state', async () => {
    const { genesis, node, addr, bob, stop } = await startWebrtcDirectNode('webrtc browser', 22)
    try {
      const entry = fileURLToPath(new URL('./light-client.entry.ts', import.meta.url))
      const params = {
        phase: 'sync',
        genesis: genesisToJson(genesis),
        bootstrap: [addr],
        key: toHex(accountKey(bob.address)),
        transports: ['webrtc-direct'],
      }
      const r = await runInChromium<Record<string, any>>(entry, 90_000, params)
      expect(r.remoteAddrs).toEqual([expect.stringContaining('/webrtc-direct/certhash/')])
      expect(r).toMatchObject({ height: node.height, setChanges: 0 })
      expect(r.value).not.toBeNull()
    } finally {
      await stop()
    }
  }, 180_000)
})
