/**
 * A full node on its real libp2p host, in this process: what happens around the host's lifetime.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { connectNode, FullNode, type NodeLogger } from '../src/index.js'
import { releasePortBlock, reservePortBlock } from '../src/testing/ports.js'
import { testGenesis, testKey, testTransfer } from './fixtures/test-chain.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f()
})

describe('full node on its libp2p host', () => {
  it('a gossip publish after the host stopped is logged, never an unhandled rejection', async () => {
    const unhandled: unknown[] = []
    const onUnhandled = (e: unknown) => unhandled.push(e)
    process.on('unhandledRejection', onUnhandled)
    cleanups.push(() => void process.off('unhandledRejection', onUnhandled))
    const logged: { message: string; fields?: Record<string, unknown> }[] = []
    const logger: NodeLogger = {
      info: () => {},
      warn: () => {},
      error: () => {},
      debug: (message, fields) => logged.push({ message, ...(fields ? { fields } : {}) }),
    }
    const validator = testKey('stopping host validator')
    const alice = testKey('stopping host alice')
    const genesis = testGenesis({ chainId: 'stopping-host', networkId: 31, validators: [validator], funded: alice })
    const dataDir = mkdtempSync(join(tmpdir(), 'loopchain-node-net-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const node = await FullNode.open({ dataDir, genesis, validatorSecret: validator.secretKey })
    cleanups.push(() => node.stop())
    const port = reservePortBlock()
    cleanups.push(() => releasePortBlock(port))
    const host = await connectNode(node, { nodeKey: testKey('stopping host key').secretKey, tcpPort: port, wsPort: false, logger })
    await host.stop()
    // Pooled, then passed on in a gossip batch a moment later: on a host that is gone.
    await node.submit(testTransfer(31, alice, validator.address, 0, 1n))
    expect(node.mempool.size).toBe(1)
    await new Promise((r) => setTimeout(r, 300))
    expect(unhandled).toEqual([])
    // The transaction batch (and the votes of the height it started) failed to go out, quietly.
    expect(logged.filter((l) => l.message === 'gossip: publish failed').map((l) => l.fields?.topic)).toContain('tx')
  })
})
