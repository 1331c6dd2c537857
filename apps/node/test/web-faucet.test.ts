/**
 * The devnet page's faucet asks a node over JSON-RPC: a node that fails or does not answer fails
 * that request, told to the page, and leaves the devnet (this process) running.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { devnetFaucet } from '../src/web.js'

describe('the devnet faucet', () => {
  it('a node unreachable, or answering an error, fails the request, not the process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-faucet-'))
    const exit = vi.spyOn(process, 'exit').mockImplementation(() => {
      throw new Error('process.exit called')
    })
    // A node that refuses every call.
    const refusing = createServer((_, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32603, message: 'Internal error' } }))
    })
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', () => r()))
    try {
      writeFileSync(join(dir, 'faucet.json'), JSON.stringify({ secretKey: `0x${'11'.repeat(32)}` }))
      const gone = devnetFaucet(dir, 'http://127.0.0.1:1/')
      await expect(gone('hx0000000000000000000000000000000000000001')).rejects.toThrow(/cannot reach http:\/\/127\.0\.0\.1:1\//)
      const { port } = refusing.address() as { port: number }
      const failing = devnetFaucet(dir, `http://127.0.0.1:${port}/`)
      await expect(failing('hx0000000000000000000000000000000000000002')).rejects.toThrow('lc_getNetworkInfo: Internal error')
      // Nothing was sent, so the address may ask again at once (and the node fails it again).
      await expect(failing('hx0000000000000000000000000000000000000002')).rejects.toThrow('lc_getNetworkInfo: Internal error')
      expect(exit).not.toHaveBeenCalled()
    } finally {
      exit.mockRestore()
      refusing.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
