import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fromHex, keyPairFromSecret, TOKEN_SOURCE } from '@loopchain/core'
import { parseInvite } from '@loopchain/light-client'
import { nativeCrypto, peerIdFromNodeKey, reservePortBlock } from '@loopchain/node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type OneNode, runCli, startOneNode } from './fixtures/one-node.js'

const fixture = (name: string) => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url))
const run = runCli

// A block of ports no other test on this machine holds.
const basePort = reservePortBlock()
const url = `http://127.0.0.1:${basePort + 2}/`
const bob = `hx${'b0'.repeat(20)}`
let dir: string
let one: OneNode
let faucet: { address: string; secretKey: string }
let keyFile: string
/** The node's secrets, which its config names the key files of. */
let secrets: { validatorKey: string; nodeKey: string }

const rpc = (method: string, params: object = {}) => one.rpc(method, params)

/** Runs a `tx` command against the node with a key file: the faucet's unless said otherwise. */
const txAs = (key: string, sub: string, ...args: string[]) => run('tx', sub, '--key', key, '--rpc', url, ...args)
const tx = (sub: string, ...args: string[]) => txAs(keyFile, sub, ...args)
/** Runs `call` against the node and parses its result. */
const call = (to: string, method: string, params?: object) =>
  JSON.parse(run('call', '--rpc', url, '--to', to, '--method', method, ...(params ? ['--params', JSON.stringify(params)] : [])).stdout)
/** The same query straight over JSON-RPC: a CLI run costs seconds on a busy machine. */
const query = (to: string, method: string, params?: object) => rpc('lc_call', { to, method, ...(params ? { params } : {}) })

beforeAll(async () => {
  // A smaller step limit for read-only calls than the default, read from the config file; and the
  // node's two secrets in key files of their own, as an institution would keep them.
  one = await startOneNode('cli-tx', basePort, {
    config: ({ validatorKey, nodeKey, ...c }, nodeDir) => {
      secrets = { validatorKey, nodeKey }
      mkdirSync(join(nodeDir, 'keys'))
      writeFileSync(join(nodeDir, 'keys', 'validator.json'), JSON.stringify({ secretKey: validatorKey }), { mode: 0o600 })
      writeFileSync(join(nodeDir, 'keys', 'node.json'), JSON.stringify({ secretKey: nodeKey }), { mode: 0o400 })
      return {
        ...c,
        validatorKeyFile: 'keys/validator.json',
        nodeKeyFile: join(nodeDir, 'keys', 'node.json'),
        // Where other nodes and browsers are told to reach it: a TLS proxy in front of its WebSocket port.
        p2p: { ...c.p2p, announce: ['/dns4/node.bank-a.example/tcp/443/wss'] },
        rpc: { ...c.rpc, query: { stepLimit: 1_000_000 } },
      }
    },
  })
  dir = one.dir
  keyFile = join(dir, 'faucet.json')
  faucet = JSON.parse(readFileSync(keyFile, 'utf8'))
  // The example token as a newcomer gets it: from the CLI, into a file of its own.
  const example = run('example', 'token', '--out', join(dir, 'token.js'))
  expect(example.status).toBe(0)
  expect(readFileSync(join(dir, 'token.js'), 'utf8')).toBe(`${TOKEN_SOURCE.trim()}\n`)
  expect(run('example', 'token', '--out', join(dir, 'token.js')).stderr).toMatch(/token\.js exists; example never overwrites a file\n$/)
  expect(run('example', 'escrow').stdout).toContain("name: 'Escrow'")
  writeFileSync(
    join(dir, 'spin.js'),
    `export const manifest = { name: 'Spin', methods: { spin: { readonly: true, params: [['n', 'int']], returns: 'int' } } }
export function spin({ n }) { let i = 0n; while (i < n) i++; return i }
`,
  )
})

afterAll(() => one?.stop())

describe('loopchain tx deploy, tx call and call against a running node', () => {
  it("runs a node whose secrets are in key files of their own, announcing the config's address; tx --key its config signs with the validator key", async () => {
    const validator = keyPairFromSecret(fromHex(secrets.validatorKey.slice(2)), nativeCrypto)
    const config = JSON.parse(readFileSync(join(dir, 'node-0', 'config.json'), 'utf8'))
    expect(config.validatorKey).toBeUndefined()
    expect(config.nodeKey).toBeUndefined()
    // The node's libp2p identity is the node key's, and its blocks are the validator key's.
    const peerId = await peerIdFromNodeKey(fromHex(secrets.nodeKey.slice(2)))
    expect((await rpc('lc_getNetworkInfo')).peerId).toBe(peerId)
    // It announces the config's address in place of its listen addresses (what identify tells peers).
    const ready = readFileSync(join(dir, 'node.log'), 'utf8')
      .split('\n')
      .map((l) => (l.startsWith('{') ? JSON.parse(l) : {}))
      .find((l) => l.msg === 'node ready')
    expect(ready.p2p).toEqual([`/dns4/node.bank-a.example/tcp/443/wss/p2p/${peerId}`])
    // The channel hub's invite tells browsers the same address.
    expect(parseInvite(ready.hubInvite).links).toEqual([`/dns4/node.bank-a.example/tcp/443/wss/p2p/${peerId}`])
    const sent = txAs(join(dir, 'node-0', 'config.json'), 'send', '--to', bob, '--value', '7', '--wait')
    expect(sent.stderr).toBe('')
    const receipt = JSON.parse(sent.stdout)
    expect(receipt.status).toBe('success')
    expect((await rpc('lc_getTransactionByHash', { hash: receipt.txHash })).from).toBe(validator.address)
    expect((await rpc('lc_getBlockByHeight', { height: receipt.height })).proposer).toBe(validator.address)
  })

  it('deploys the example token with the faucet key, moves tokens with tx call and reads them back with call', async () => {
    // An int above 2^53 goes as a decimal string: deploy types --params by the code's onInstall.
    const supply = 10n ** 24n
    const params = { _name: 'Loop', _symbol: 'LOOP', _decimals: 18, _initialSupply: supply.toString() }
    const deployed = tx('deploy', '--code', join(dir, 'token.js'), '--params', JSON.stringify(params), '--wait')
    expect(deployed.stderr).toBe('')
    expect(deployed.status).toBe(0)
    const receipt = JSON.parse(deployed.stdout)
    expect(receipt).toMatchObject({ status: 'success', failure: null })
    const token = receipt.scoreAddress as string
    expect(token).toMatch(/^cx[0-9a-f]{40}$/)
    expect(await query(token, 'name')).toBe('Loop')

    // 10^21 + 250 is beyond 2^53: typed as an int by the SCORE's ABI, it arrives exactly.
    const amount = 10n ** 21n + 250n
    const sent = tx(
      'call',
      '--to',
      token,
      '--method',
      'transfer',
      '--params',
      JSON.stringify({ _to: bob, _value: amount.toString() }),
      '--wait',
    )
    expect(sent.status).toBe(0)
    const transfer = JSON.parse(sent.stdout)
    expect(transfer).toMatchObject({ status: 'success', logs: [{ score: token, event: 'Transfer(Address,Address,int,bytes)' }] })
    expect(call(token, 'balanceOf', { _owner: bob })).toBe(amount.toString())
    expect(await query(token, 'balanceOf', { _owner: faucet.address })).toBe((supply - amount).toString())
    const unknown = tx('call', '--to', token, '--method', 'mint', '--params', '{}')
    expect(unknown.status).toBe(2)
    expect(unknown.stderr).toContain('has no method mint')

    // A call the contract refuses is committed with a failed receipt: printed, and exit 1.
    const poor = join(dir, 'poor.json')
    writeFileSync(poor, run('keys', 'new').stdout)
    // An account without funds may use at most 100,000 steps: the default limit of a call is refused at once.
    const transferOne = ['--to', token, '--method', 'transfer', '--params', `{"_to":"${bob}","_value":1}`, '--wait']
    const unfunded = txAs(poor, 'call', ...transferOne)
    expect(unfunded.status).toBe(2)
    expect(unfunded.stderr).toMatch(/holds no funds and is not a member: its transaction may use at most 100000 steps, not 10000000/)
    const refused = txAs(poor, 'call', ...transferOne, '--step-limit', '100000')
    expect(refused.status).toBe(1)
    expect(JSON.parse(refused.stdout)).toMatchObject({ status: 'failure', failure: { code: 'CONTRACT_ERROR' } })
    expect(refused.stderr).toContain('the transaction failed: CONTRACT_ERROR: insufficient balance')
    expect(await query(token, 'balanceOf', { _owner: bob })).toBe(amount.toString())
  })

  it("stops a read-only call at the config's step limit for a call", async () => {
    const deployed = tx('deploy', '--code', join(dir, 'spin.js'), '--wait')
    expect(deployed.status).toBe(0)
    const spin = JSON.parse(deployed.stdout).scoreAddress as string
    expect(await query(spin, 'spin', { n: '1000' })).toBe('1000')
    // About 2,000,000 steps: within the default 5,000,000, above the 1,000,000 configured.
    const res = await fetch(url, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'lc_call', params: { to: spin, method: 'spin', params: { n: '2000000' } } }),
    })
    expect(((await res.json()) as { error?: unknown }).error).toMatchObject({ code: -32010, data: { code: 'OUT_OF_STEPS' } })
  })

  it('compiles a TypeScript SCORE, and registers a new version of it with --to', async () => {
    const deployed = tx('deploy', '--code', fixture('counter.score.ts'), '--params', '{"start":41}', '--wait')
    expect(deployed.status).toBe(0)
    expect(deployed.stderr).toMatch(/compiled .*counter\.score\.ts with esbuild \d+\.\d+\.\d+/)
    const counter = JSON.parse(deployed.stdout).scoreAddress as string
    expect(tx('call', '--to', counter, '--method', 'increment', '--wait').status).toBe(0)
    expect(await query(counter, 'count')).toBe('42')

    const updated = tx('deploy', '--to', counter, '--code', fixture('counter-v2.score.js'), '--params', '{"step":10}', '--wait')
    expect(updated.status).toBe(0)
    expect(JSON.parse(updated.stdout)).toMatchObject({ status: 'success', scoreAddress: counter })
    // The new version serves from the next block: this call's block runs its onUpdate first.
    expect(tx('call', '--to', counter, '--method', 'increment', '--wait').status).toBe(0)
    expect(call(counter, 'count')).toBe('52')

    // Without --wait, deploy prints the hash and the address the SCORE will have.
    const early = tx('deploy', '--code', fixture('counter.score.ts'), '--params', '{"start":0}')
    expect(early.status).toBe(0)
    const { hash, scoreAddress } = JSON.parse(early.stdout)
    let receipt: any
    for (let i = 0; i < 100 && !receipt; i++) {
      receipt = await rpc('lc_getTransactionResult', { hash })
      if (!receipt) await new Promise((r) => setTimeout(r, 100))
    }
    expect(receipt).toMatchObject({ status: 'success', scoreAddress })
  })

  it("a validator proposes through tx call: an action's bytes fields go as 0x hex (a member node key), approved at once on one validator", async () => {
    const governance = `cx${'0'.repeat(39)}1`
    const validatorKey = join(dir, 'node-0', 'keys', 'validator.json') // the node's own key file
    const carol = `hx${'c0'.repeat(20)}`
    const nodeKey = `0x${'5a'.repeat(32)}`
    const action = { type: 'addMember', address: carol, id: 'bank-c', rights: 2, nodeKey }
    const proposed = txAs(validatorKey, 'call', '--to', governance, '--method', 'propose', '--params', JSON.stringify({ action }), '--wait')
    expect(proposed.stderr).toBe('')
    expect(proposed.status).toBe(0)
    expect(JSON.parse(proposed.stdout)).toMatchObject({ status: 'success' })
    expect(await query(governance, 'getMember', { address: carol })).toEqual({ address: carol, id: 'bank-c', rights: '2', nodeKey })
    // A key of the wrong length is refused by governance (committed, failed: exit 1).
    const short = { type: 'setNodeKey', address: carol, nodeKey: '0x1234' }
    const refused = txAs(
      validatorKey,
      'call',
      '--to',
      governance,
      '--method',
      'propose',
      '--params',
      JSON.stringify({ action: short }),
      '--wait',
    )
    expect(refused.status).toBe(1)
    expect(refused.stderr).toContain('nodeKey must be 32 bytes')
    expect((await query(governance, 'getMember', { address: carol })).nodeKey).toBe(nodeKey)
  })

  it('refuses bad input and reports JSON-RPC errors with exit 2 and a clear message', () => {
    const governance = `cx${'0'.repeat(39)}1`
    const fails = (r: ReturnType<typeof run>, message: string | RegExp) => {
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(message)
      expect(r.stdout).toBe('')
    }
    fails(tx('call', '--to', governance, '--method', 'vote', '--params', '[1, 2]'), /--params must be a JSON object of named parameters/)
    fails(tx('call', '--to', governance, '--method', 'vote', '--params', '{oops'), /--params is not JSON/)
    fails(tx('call', '--to', governance, '--method', 'vote', '--params', '{"id":1.5}'), /--params: params\.id must be an integer/)
    fails(tx('call', '--to', bob, '--method', 'vote'), /--to hx.* is not a SCORE address/)
    // Numbers a transaction cannot carry: a clear refusal, not an encoder's stack trace.
    const tooBig = (1n << 256n).toString()
    fails(tx('send', '--to', bob, '--value', tooBig), /--value must be a non-negative integer below 2\^256/)
    fails(tx('send', '--to', bob, '--value', '0'), /--value must be a positive integer/)
    fails(tx('call', '--to', governance, '--method', 'vote', '--value', tooBig), /--value must be a non-negative integer below 2\^256/)
    fails(
      tx('call', '--to', governance, '--method', 'vote', '--params', `{"id":"${tooBig}"}`),
      /--params: params\.id is outside the integers/,
    )
    fails(
      tx('call', '--to', governance, '--method', 'vote', '--params', `{"note":${'['.repeat(40)}${']'.repeat(40)}}`),
      /--params: params\.note(\[0\])+ is nested in lists or maps deeper than a value may be \(32 levels\)/,
    )
    fails(run('tx', 'deploy', '--key', keyFile), /tx deploy needs --code FILE/)
    fails(tx('deploy', '--code', join(dir, 'missing.js')), /cannot read the code file .*missing\.js/)
    fails(
      tx('deploy', '--code', join(dir, 'token.js'), '--params', '{"_symbol":"X"}'),
      /--params: onInstall: parameter _name \(str\) is missing/,
    )
    fails(tx('deploy', '--code', join(dir, 'node.log')), /does not load as a SCORE: INVALID_CODE/)
    fails(run('tx', 'call', '--key', join(dir, 'genesis.json'), '--to', governance, '--method', 'vote'), /has no secretKey/)
    // The node's own refusal: lc_call's error message and data.
    fails(run('call', '--rpc', url, '--to', governance, '--method', 'nope'), /lc_call: .*nope.* \{"code":"UNKNOWN_METHOD"\}/)
  })
})
