import { spawn, spawnSync } from 'node:child_process'
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { request } from 'node:http'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isAddress, parseGenesis, Right } from '@loopchain/core'
import { LevelKVStore, releasePortBlock, reservePortBlock } from '@loopchain/node'
import { describe, expect, it, vi } from 'vitest'
import { readNodeConfig } from '../src/config.js'
import { COMMAND_FLAGS, helpFor } from '../src/help.js'
import { startOneNode } from './fixtures/one-node.js'

const CLI = fileURLToPath(new URL('../src/main.ts', import.meta.url))
const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { encoding: 'utf8' })

describe('loopchain CLI', () => {
  it('prints help a newcomer can follow', () => {
    const r = run('--help')
    expect(r.status).toBe(0)
    for (const cmd of [
      'init',
      'start',
      'devnet',
      'status',
      'tx send',
      'tx deploy',
      'tx call',
      'call',
      'keys new',
      'example token',
      'cert issue',
      'cert verify',
    ]) {
      expect(r.stdout).toContain(`loopchain ${cmd} `)
      expect(r.stdout).toContain(`e.g.  loopchain ${cmd} `)
    }
  })

  it("prints one command's help for `<command> --help`, and everything for an unknown one", () => {
    const send = run('tx', 'send', '--key', 'nowhere.json', '--help')
    expect(send.status).toBe(0)
    expect(send.stdout).toContain('loopchain tx send --key FILE')
    expect(send.stdout).not.toContain('loopchain tx deploy')
    expect(send.stdout).toContain('Each also takes --rpc URL') // its group's note holds for it too
    const tx = run('tx', '-h')
    expect(tx.stdout).toContain('loopchain tx deploy')
    expect(tx.stdout).toContain('Each also takes --rpc URL')
    expect(tx.stdout).not.toContain('loopchain cert issue')
    const unknown = run('frobnicate', '--help')
    expect(unknown.status).toBe(0)
    expect(unknown.stdout).toContain('loopchain cert issue')
  })

  it('each command takes exactly the flags its help shows', () => {
    const flagsIn = (text: string) => new Set([...text.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1] as string))
    for (const [command, spec] of Object.entries(COMMAND_FLAGS)) {
      const accepted = new Set([...spec.values, ...(spec.switches ?? [])])
      const entry = helpFor(command.split(' '))
      expect(entry, command).not.toBe('')
      // What its usage line and example show, it takes (the usage may wrap onto an indented line).
      const usage = entry
        .split('\n')
        .filter(
          (l) => l.startsWith(`  loopchain ${command} `) || /^ {20,}\[--/.test(l) || l.trim().startsWith(`e.g.  loopchain ${command} `),
        )
      for (const f of flagsIn(usage.join('\n'))) expect(accepted.has(f), `${command} --${f} is shown but refused`).toBe(true)
      // What it takes, its help tells ('renew' takes "the same flags as issue").
      const told = flagsIn(command === 'cert renew' ? entry + helpFor(['cert', 'issue']) : entry)
      for (const f of accepted) expect(told.has(f), `${command} takes --${f} but its help does not say so`).toBe(true)
    }
  })

  it('init writes a valid genesis, one config per validator, an observer and a faucet key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-cli-'))
    try {
      const r = run('init', '--validators', '3', '--out', dir, '--chain-id', 'cli-test', '--base-port', '31000')
      expect(r.status).toBe(0)
      const g = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
      expect(g.chainId).toBe('cli-test')
      expect(g.validators.validators).toHaveLength(3)
      // Three validators, the observer, and the faucet with the deployer right.
      expect(g.members).toHaveLength(5)
      const faucet = JSON.parse(readFileSync(join(dir, 'faucet.json'), 'utf8'))
      expect(g.members.find((m) => m.address === faucet.address)?.rights).toBe(Right.Deployer)
      for (const i of [0, 1, 2]) {
        const c = JSON.parse(readFileSync(join(dir, `node-${i}`, 'config.json'), 'utf8'))
        expect(c.p2p.tcpPort).toBe(31000 + 10 * i)
        expect(c.p2p.bootstrap).toHaveLength(2)
        expect(c.validatorKey).toMatch(/^0x[0-9a-f]{64}$/)
      }
      expect(JSON.parse(readFileSync(join(dir, 'observer', 'config.json'), 'utf8')).validatorKey).toBeUndefined()
      expect(isAddress(JSON.parse(readFileSync(join(dir, 'faucet.json'), 'utf8')).address)).toBe(true)
      // An idle chain still makes blocks, so that challenge periods and payment expiries go on.
      expect(g.params.emptyBlockIntervalMs).toBe(5000)
      rmSync(dir, { recursive: true, force: true })
      expect(run('init', '--validators', '1', '--out', dir, '--empty-block-interval-ms', '0').status).toBe(0)
      expect(parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8'))).params.emptyBlockIntervalMs).toBe(0)
      const bad = run('init', '--validators', '1', '--out', join(dir, 'x'), '--empty-block-interval-ms', '-5')
      expect(bad.status).toBe(2)
      expect(bad.stderr).toMatch(/--empty-block-interval-ms must be a whole number/)
      expect(existsSync(join(dir, 'x'))).toBe(false)
      // Values \`start\` would refuse are refused before a key is made, and nothing is written.
      const refused = (extra: string[], message: RegExp) => {
        const r = run('init', '--validators', '2', '--out', join(dir, 'x'), ...extra)
        expect(r.status).toBe(2)
        expect(r.stderr).toMatch(message)
        expect(existsSync(join(dir, 'x'))).toBe(false)
      }
      refused(['--base-port', 'abc'], /--base-port must be a whole number, not 'abc'/)
      refused(['--base-port', '31000.0'], /--base-port must be a whole number, not '31000\.0'/)
      // An unset shell variable: '' is not 0 (no empty blocks, a permanent chain parameter).
      refused(['--empty-block-interval-ms', ''], /--empty-block-interval-ms must be a whole number, not ''/)
      const hex = run('init', '--validators', '0x2', '--out', join(dir, 'x'))
      expect([hex.status, hex.stderr]).toEqual([2, "loopchain: --validators must be a whole number, not '0x2'\n"])
      refused(['--base-port', '65514'], /--base-port must be a port from 1 to 65513/)
      refused(['--chain-id', 'Upper'], /init would write a genesis that nodes refuse: .*chainId/)
      refused(['--chain-id', 'x'.repeat(300)], /init would write a genesis that nodes refuse: .*chainId/)
      // A network's keys are never written over: the first genesis and its secrets stay.
      const before = readFileSync(join(dir, 'genesis.json'), 'utf8')
      const again = run('init', '--validators', '1', '--out', dir)
      expect(again.status).toBe(2)
      expect(again.stderr).toMatch(/genesis\.json exists: .* holds a network already/)
      expect(readFileSync(join(dir, 'genesis.json'), 'utf8')).toBe(before)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('init that cannot write part of a network takes back what it wrote, and says why in one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-init-fail-'))
    try {
      // node-1 is a file: genesis, faucet and node-0 are written before node-1's directory fails.
      writeFileSync(join(dir, 'node-1'), 'in the way')
      const r = run('init', '--validators', '2', '--out', dir)
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(/^loopchain: cannot write the network to .*: E(EXIST|NOTDIR)[^\n]*; nothing was left behind\n$/)
      expect(readdirSync(dir)).toEqual(['node-1'])
      expect(readFileSync(join(dir, 'node-1'), 'utf8')).toBe('in the way')
      // Once the way is clear, the same command makes the network.
      rmSync(join(dir, 'node-1'))
      expect(run('init', '--validators', '2', '--out', dir).status).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('makes keys, and refuses bad commands and unreachable nodes with a clear message and exit 2', () => {
    const k = JSON.parse(run('keys', 'new').stdout)
    expect(isAddress(k.address)).toBe(true)
    expect(k.secretKey).toMatch(/^0x[0-9a-f]{64}$/)
    const bad = run('frobnicate')
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain('unknown command')
    const down = run('status', '--rpc', 'http://127.0.0.1:1/')
    expect(down.status).toBe(2)
    expect(down.stderr).toContain('cannot reach')
    expect(run('start', '--config', '/nonexistent/config.json').stderr).toContain('no config')
    expect(existsSync('/nonexistent')).toBe(false)
    expect(run('tx', 'send', '--key', 'x.json', '--to', 'nope', '--value', '1').stderr).toContain('not an address')
  })
  it('a client command gives up on a node that takes the connection and never answers, after 10 s, with exit 2', async () => {
    const held: Socket[] = []
    const silent = createServer((socket) => void held.push(socket))
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()))
    try {
      const { port } = silent.address() as { port: number }
      const t0 = Date.now()
      const r = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
        const p = spawn(process.execPath, ['--import', 'tsx', CLI, 'status', '--rpc', `http://127.0.0.1:${port}/`])
        let stderr = ''
        p.stderr.on('data', (d) => {
          stderr += d
        })
        p.on('exit', (status) => resolve({ status, stderr }))
      })
      expect(r.status).toBe(2)
      expect(r.stderr).toBe(`loopchain: no answer from http://127.0.0.1:${port}/ within 10 s (lc_getNetworkInfo)\n`)
      expect(Date.now() - t0).toBeLessThan(30_000)
    } finally {
      for (const s of held) s.destroy()
      silent.close()
    }
  }, 60_000)

  it('keys new --out writes the key only to a new file of its own, and prints only the public part', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-keys-'))
    try {
      const file = join(dir, 'me.json')
      const r = run('keys', 'new', '--out', file)
      expect(r.status).toBe(0)
      const printed = JSON.parse(r.stdout)
      const saved = JSON.parse(readFileSync(file, 'utf8'))
      expect(printed).toEqual({ file, publicKey: saved.publicKey, address: saved.address })
      expect(r.stdout).not.toContain(saved.secretKey.slice(2))
      expect(saved.secretKey).toMatch(/^0x[0-9a-f]{64}$/)
      expect(statSync(file).mode & 0o777).toBe(0o600)
      const again = run('keys', 'new', '--out', file)
      expect(again.status).toBe(2)
      expect(again.stderr).toMatch(/me\.json exists; keys new never overwrites a key file\n$/)
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(saved)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses an unknown option, a flag without its value, a flag given twice and a stray word, before doing anything', () => {
    const refused = (args: string[], message: RegExp) => {
      const r = run(...args)
      expect(r.status).toBe(2)
      expect(r.stdout).toBe('')
      expect(r.stderr).toMatch(message)
    }
    refused(['keys', 'new', '--outt', 'me.json'], /^loopchain: keys new has no option --outt; see 'loopchain keys new --help'\n$/)
    refused(['tx', 'send', '--key', 'x.json', '--to', '--value', '1'], /^loopchain: tx send: --to needs a value/)
    refused(['tx', 'send', '--key', 'x.json', '--to', 'hx1', '--to', 'hx2', '--value', '1'], /^loopchain: tx send: --to is given twice\n$/)
    refused(['status', 'http://127.0.0.1:27602/'], /^loopchain: status: unexpected argument 'http:\/\/127\.0\.0\.1:27602\/'/)
    refused(['devnet', '--fresh', '--validators'], /^loopchain: devnet: --validators needs a value/)
    refused(['init', '--validators', '1', '--out', '/nonexistent/x', '--wait'], /^loopchain: init has no option --wait/)
    expect(existsSync('/nonexistent')).toBe(false)
  })

  it('devnet refuses a directory whose genesis an earlier version wrote, says how to start over, and starts no node', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-old-devnet-'))
    try {
      expect(run('init', '--validators', '1', '--out', dir).status).toBe(0)
      // What a genesis written before `maxBlockSteps` existed reads as: the old per-transaction cap.
      const file = join(dir, 'genesis.json')
      const g = JSON.parse(readFileSync(file, 'utf8'))
      g.params.maxStepLimit = 1_000_000_000
      delete g.params.maxBlockSteps
      writeFileSync(file, JSON.stringify(g))
      const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'devnet', '--dir', dir, '--no-web', '--base-port', '1'], {
        encoding: 'utf8',
        timeout: 60_000,
      })
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(/cannot start: its genesis cannot be used \(genesis params\.maxStepLimit: must not exceed/)
      expect(r.stderr).toContain('npm run devnet -- --fresh')
      expect(r.stdout).not.toContain('ready at height')
      expect(existsSync(join(dir, 'node-0', 'data'))).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('devnet --fresh deletes only a devnet: a directory holding anything else is refused, and left as it was', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-fresh-'))
    try {
      expect(run('init', '--validators', '1', '--out', dir).status).toBe(0)
      writeFileSync(join(dir, 'report.csv'), 'quarterly ledger export')
      const r = run('devnet', '--fresh', '--dir', dir, '--no-web')
      expect(r.status).toBe(2)
      expect(r.stderr).toMatch(
        /--fresh deletes a devnet's directory, and .* does not look like one \(it holds report\.csv\): nothing was deleted/,
      )
      expect(readFileSync(join(dir, 'report.csv'), 'utf8')).toBe('quarterly ledger export')
      expect(existsSync(join(dir, 'genesis.json'))).toBe(true)
      // Nor a directory without a genesis: not a devnet at all.
      rmSync(join(dir, 'genesis.json'))
      rmSync(join(dir, 'report.csv'))
      expect(run('devnet', '--fresh', '--dir', dir, '--no-web').stderr).toMatch(/does not look like one \(no genesis\.json\)/)
      expect(existsSync(join(dir, 'faucet.json'))).toBe(true)
      // A stop wait of nothing would kill the nodes mid-write on every Ctrl-C: refused before anything is deleted.
      const zero = run('devnet', '--fresh', '--dir', dir, '--no-web', '--stop-wait', '0')
      expect([zero.status, zero.stderr]).toEqual([2, 'loopchain: --stop-wait must be from 1 to 3600 seconds, not 0\n'])
      expect(existsSync(join(dir, 'faucet.json'))).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('client commands start without loading the node runtime (LevelDB, libp2p); init and start load it', () => {
    // A preload that reports, at exit, how many of classic-level's CommonJS files were loaded.
    const probe = `data:text/javascript,import{createRequire}from"node:module";const r=createRequire(${JSON.stringify(`${process.cwd()}/`)});process.on("exit",()=>process.stderr.write("classic-level files: "+Object.keys(r.cache).filter((k)=>k.includes("classic-level")).length+"\\n"))`
    const loaded = (...args: string[]) => {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', probe, CLI, ...args], { encoding: 'utf8' })
      const m = /classic-level files: (\d+)/.exec(r.stderr)
      if (!m) throw new Error(`no probe line in: ${r.stderr}`)
      return Number(m[1])
    }
    expect(loaded('--help')).toBe(0)
    expect(loaded('keys', 'new')).toBe(0)
    expect(loaded('status', '--rpc', 'http://127.0.0.1:9/')).toBe(0)
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-cli-'))
    try {
      expect(loaded('init', '--validators', '1', '--out', dir)).toBeGreaterThan(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
  it('start refuses a database another process holds and a port in use with one line and exit 1, and closes what it opened', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-cli-'))
    const base = reservePortBlock()
    const blockers: Server[] = []
    try {
      expect(run('init', '--validators', '1', '--out', dir, '--base-port', String(base)).status).toBe(0)
      const config = join(dir, 'node-0', 'config.json')
      const startOnce = () =>
        spawnSync(process.execPath, ['--import', 'tsx', CLI, 'start', '--config', config], { encoding: 'utf8', timeout: 60_000 })
      const oneLine = (r: ReturnType<typeof startOnce>, what: RegExp) => {
        expect(r.status).toBe(1)
        expect(r.stderr).toMatch(what)
        expect(r.stderr).not.toMatch(/\n\s+at /)
      }

      // The node's database, held by this process (LevelDB's lock), as a running node holds it.
      const held = await LevelKVStore.open(join(dir, 'node-0', 'data'))
      try {
        oneLine(
          startOnce(),
          /^loopchain: cannot start: the database at .*node-0\/data is in use by another process \(is this node already running\?\)\n$/,
        )
      } finally {
        await held.close()
      }

      // Its p2p port, then its JSON-RPC port, taken by another program.
      const listen = (port: number) =>
        new Promise<void>((resolve, reject) => {
          const s = createServer()
          blockers.push(s)
          s.once('error', reject).listen(port, '127.0.0.1', () => resolve())
        })
      await listen(base)
      oneLine(
        startOnce(),
        new RegExp(`^loopchain: cannot start: 127\\.0\\.0\\.1:${base} is already in use .*the ports are set in .*config\\.json\\n$`),
      )
      await new Promise((r) => (blockers.pop() as Server).close(r))
      await listen(base + 2)
      oneLine(startOnce(), new RegExp(`^loopchain: cannot start: 127\\.0\\.0\\.1:${base + 2} is already in use`))
      // Each failed start closed the database it had opened: this process can open it.
      await (await LevelKVStore.open(join(dir, 'node-0', 'data'))).close()
    } finally {
      for (const s of blockers) s.close()
      releasePortBlock(base)
      rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
  it("start applies the config's rpc.rateLimit: a client above it gets 429 with JSON-RPC error -32005", async () => {
    const base = reservePortBlock()
    const one = await startOneNode('cli-rate', base, {
      config: (c) => ({ ...c, rpc: { ...c.rpc, rateLimit: { perSecond: 1, burst: 3 } } }),
    })
    try {
      const call = () =>
        fetch(one.url, { method: 'POST', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'lc_getNetworkInfo' }) }).then(
          async (r) => ({
            status: r.status,
            body: (await r.json()) as { error?: { code: number } },
          }),
        )
      // The default (200 a second, bursts of 400) would answer all ten.
      const replies = await Promise.all(Array.from({ length: 10 }, call))
      const limited = replies.filter((r) => r.status === 429)
      expect(limited.length).toBeGreaterThanOrEqual(6)
      for (const r of limited) expect(r.body.error?.code).toBe(-32005)
      await new Promise((r) => setTimeout(r, 1_100))
      expect((await call()).status).toBe(200) // the budget refills
    } finally {
      await one.stop()
      releasePortBlock(base)
    }
  }, 120_000)

  it("start applies the config's rpc.limits: a smaller request body and fewer WebSocket connections per client", async () => {
    const base = reservePortBlock()
    const one = await startOneNode('cli-limits', base, {
      config: (c) => ({ ...c, rpc: { ...c.rpc, limits: { maxBodyBytes: 4_096, maxWebSocketsPerClient: 1 } } }),
    })
    try {
      const post = (padding: number) =>
        fetch(one.url, {
          method: 'POST',
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'lc_getNetworkInfo', params: {}, pad: 'x'.repeat(padding) }),
        })
      expect((await post(3_000)).status).toBe(200)
      // The default (2 MiB) would take it.
      const big = await post(5_000)
      expect(big.status).toBe(413)
      expect(((await big.json()) as { error?: { message: string } }).error?.message).toBe('request body above 4096 bytes')
      // A WebSocket opening over plain HTTP: 101 for the first, 429 for the second while the first is open.
      const { port } = new URL(one.url)
      const open = () =>
        new Promise<{ status: number; socket?: Socket }>((resolve, reject) => {
          const req = request({
            port: Number(port),
            host: '127.0.0.1',
            path: '/ws',
            headers: {
              connection: 'Upgrade',
              upgrade: 'websocket',
              'sec-websocket-version': '13',
              'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
            },
          })
          req.on('upgrade', (res, socket) => resolve({ status: res.statusCode ?? 0, socket }))
          req.on('response', (res) => {
            res.resume()
            resolve({ status: res.statusCode ?? 0 })
          })
          req.on('error', reject)
          req.end()
        })
      const first = await open()
      expect(first.status).toBe(101)
      expect((await open()).status).toBe(429)
      first.socket?.destroy()
      await vi.waitFor(async () => expect((await open()).status).toBe(101), { timeout: 5_000 })
    } finally {
      await one.stop()
      releasePortBlock(base)
    }
  }, 120_000)

  it("start applies the config's p2p.relay: its limits, or no relay at all, show in lc_getNetworkInfo and /metrics", async () => {
    const base = reservePortBlock()
    const limited = await startOneNode('cli-relay', base, {
      config: (c) => ({ ...c, p2p: { ...c.p2p, relay: { maxReservations: 8, dataLimitBytes: 65_536, connectionsPerSlot: 5 } } }),
    })
    try {
      const info = await limited.rpc('lc_getNetworkInfo')
      expect(info.relay).toEqual({
        reservations: 0,
        limits: {
          maxReservations: 8,
          dataLimitBytes: 65_536,
          durationLimitMs: 30 * 60_000,
          reservationTtlMs: 2 * 60 * 60_000,
          connectionsPerSlot: 5,
          connectionsPerSlotWindowMs: 60 * 60_000,
        },
        refusedConnections: 0,
      })
      const metrics = await (await fetch(new URL('/metrics', limited.url))).text()
      expect(metrics).toMatch(/^loopchain_relay_reservations 0$/m)
      expect(metrics).toMatch(/^# TYPE loopchain_relay_refused_total counter\nloopchain_relay_refused_total 0$/m)
    } finally {
      await limited.stop()
    }
    const none = await startOneNode('cli-relay-off', base, { config: (c) => ({ ...c, p2p: { ...c.p2p, relay: false } }) })
    try {
      expect((await none.rpc('lc_getNetworkInfo')).relay).toBeNull()
    } finally {
      await none.stop()
      releasePortBlock(base)
    }
  }, 120_000)

  it('status --watch prints a line every 2 s: a node not answering yet, then the running node in step', async () => {
    const base = reservePortBlock()
    const url = `http://127.0.0.1:${base + 2}/`
    const watch = spawn(process.execPath, ['--import', 'tsx', CLI, 'status', '--rpc', url, '--watch'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    watch.stdout.on('data', (d) => {
      out += d
    })
    try {
      // Nothing listens there yet: a line says so, and the watch goes on.
      await vi.waitFor(() => expect(out).toMatch(/^\d\d:\d\d:\d\d not answering: cannot reach /m), { timeout: 30_000 })
      const one = await startOneNode('cli-watch', base)
      try {
        // A lone validator has no peers to ask: in step, at its height.
        await vi.waitFor(
          () => expect(out).toMatch(/^\d\d:\d\d:\d\d validator, height \d+, in step with its peers; \d+ waiting in the pool$/m),
          {
            timeout: 30_000,
          },
        )
        expect(watch.exitCode).toBeNull()
      } finally {
        await one.stop()
      }
    } finally {
      watch.kill()
      releasePortBlock(base)
    }
  }, 120_000)

  it('SIGTERM to the loopchain command stops its node cleanly (exit 0), leaving nothing running on its ports', async () => {
    const base = reservePortBlock()
    // What a process manager runs, and signals: the installed command, not the TypeScript entry.
    const one = await startOneNode('cli-signal', base, { viaBin: true })
    const rpcUp = () =>
      one.rpc('lc_getNetworkInfo').then(
        (r) => r !== undefined,
        () => false,
      )
    try {
      const exited = new Promise<number | null>((resolve) => one.process.once('exit', (code) => resolve(code)))
      one.process.kill('SIGTERM')
      expect(await exited).toBe(0)
      // A CLI that ran the node in a child it did not pass the signal to would leave it serving here.
      await new Promise((r) => setTimeout(r, 1_000))
      expect(await rpcUp()).toBe(false)
      // And the database is free: another start could open it.
      await (await LevelKVStore.open(join(one.dir, 'node-0', 'data'))).close()
    } finally {
      one.process.kill('SIGKILL')
      await one.stop()
      releasePortBlock(base)
    }
  }, 120_000)

  it.runIf(existsSync('/dev/full'))(
    'start with its logs on a full disk stops cleanly: exit 1, the reason on stderr, no stack trace',
    () => {
      const base = reservePortBlock()
      const dir = mkdtempSync(join(tmpdir(), 'loopchain-cli-full-'))
      try {
        expect(run('init', '--validators', '1', '--out', dir, '--base-port', String(base)).status).toBe(0)
        // /dev/full: every write fails with ENOSPC, as on a full disk.
        const full = openSync('/dev/full', 'w')
        const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'start', '--config', join(dir, 'node-0', 'config.json')], {
          encoding: 'utf8',
          timeout: 90_000,
          stdio: ['ignore', full, 'pipe'],
        })
        closeSync(full)
        expect(r.status).toBe(1)
        expect(r.stderr).toContain('"msg":"writing to standard output failed; the node stops","error":"ENOSPC"')
        expect(r.stderr).toContain('"msg":"stopping","exitCode":1')
        expect(r.stderr).not.toMatch(/\n\s+at [^\n]*\(/)
      } finally {
        releasePortBlock(base)
        rmSync(dir, { recursive: true, force: true })
      }
    },
    120_000,
  )

  it('start names what is wrong in a config or its genesis, with exit 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'loopchain-cli-'))
    try {
      expect(run('init', '--validators', '1', '--out', dir, '--base-port', '31000').status).toBe(0)
      const file = join(dir, 'node-0', 'config.json')
      const good = JSON.parse(readFileSync(file, 'utf8'))
      const startWith = (config: unknown) => {
        writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config))
        const r = run('start', '--config', file)
        expect(r.status).toBe(2)
        expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1)
        return r.stderr
      }
      // The same check in this process (the config reader start calls), as start would print it:
      // each spawn costs about a second, and the three above and below show the exit and the line.
      const refused = (config: unknown) => {
        writeFileSync(file, JSON.stringify(config))
        try {
          readNodeConfig(file)
        } catch (e) {
          return `loopchain: ${(e as Error).message}\n`
        }
        throw new Error('the config was accepted')
      }
      expect(startWith('{"genesis": ')).toMatch(/^loopchain: the config .*config\.json is not JSON: /)
      expect(startWith({ ...good, nodeKey: '0x12' })).toMatch(
        /: nodeKey must be a 32-byte secret as 0x and 64 hex digits \(or nodeKeyFile: the path of a key file\)\n$/,
      )
      expect(refused({ ...good, p2p: { ...good.p2p, tcpPort: 70_000 } })).toMatch(/: p2p\.tcpPort must be a port number \(0 to 65535\)\n$/)
      expect(refused({ ...good, rpc: {} })).toMatch(/: rpc\.port must be a port number/)
      expect(refused({ ...good, rpc: { ...good.rpc, rateLimit: { perSecond: 0, burst: 10 } } })).toMatch(
        /: rpc\.rateLimit must be an object with perSecond and burst/,
      )
      expect(refused({ ...good, rpc: { ...good.rpc, rateLimt: { perSecond: 1000, burst: 2000 } } })).toMatch(
        /: rpc\.rateLimt is not a config field \(rpc takes host, port, rateLimit, query, limits\)\n$/,
      )
      expect(refused({ ...good, rpc: { ...good.rpc, limits: { maxSockets: 10 } } })).toMatch(
        /: rpc\.limits\.maxSockets is not a config field \(rpc\.limits takes maxBodyBytes, requestTimeoutMs, .*maxWebSockets, /,
      )
      expect(refused({ ...good, rpc: { ...good.rpc, limits: { requestTimeoutMs: 0 } } })).toMatch(
        /: rpc\.limits\.requestTimeoutMs must be a positive integer, or absent\n$/,
      )
      expect(refused({ ...good, rpc: { ...good.rpc, limits: 5 } })).toMatch(/: rpc\.limits must be an object with any of maxBodyBytes, /)
      // A body limit above what one client may hold at once would refuse the largest requests it allows.
      expect(refused({ ...good, rpc: { ...good.rpc, limits: { maxBodyBytes: 16_777_216 } } })).toMatch(
        /: rpc\.limits\.maxBodyBytesInProgressPerClient \(8388608, the default\) is below rpc\.limits\.maxBodyBytes \(16777216\): /,
      )
      // Fewer connections than WebSockets: the WebSockets allowed could never be opened.
      expect(refused({ ...good, rpc: { ...good.rpc, limits: { maxConnectionsPerClient: 8 } } })).toMatch(
        /: rpc\.limits\.maxConnectionsPerClient \(8\) is below rpc\.limits\.maxWebSocketsPerClient \(16, the default\): /,
      )
      expect(refused({ ...good, rpc: { ...good.rpc, query: { stepLimit: 0 } } })).toMatch(
        /: rpc\.query must be an object with stepLimit, stepsPerSecond and stepsPerSecondPerClient \(positive integers, each optional\), or absent\n$/,
      )
      expect(refused({ ...good, rpc: { ...good.rpc, query: { steps: 10 } } })).toMatch(
        /: rpc\.query\.steps is not a config field \(rpc\.query takes stepLimit, stepsPerSecond, stepsPerSecondPerClient\)\n$/,
      )
      expect(refused({ ...good, mempool: { maxTransactions: 0 } })).toMatch(
        /: mempool must be an object with maxTransactions, maxBytes and maxPerSender \(positive integers, each optional\), or absent\n$/,
      )
      expect(refused({ ...good, mempool: { maxTxs: 10 } })).toMatch(
        /: mempool\.maxTxs is not a config field \(mempool takes maxTransactions, maxBytes, maxPerSender\)\n$/,
      )
      expect(refused({ ...good, storage: { writeBufferSize: 2.5 } })).toMatch(
        /: storage must be an object with cacheSize and writeBufferSize \(positive integers of bytes, each optional\), or absent\n$/,
      )
      expect(refused({ ...good, storage: { memtable: 1 } })).toMatch(
        /: storage\.memtable is not a config field \(storage takes cacheSize, writeBufferSize\)\n$/,
      )
      expect(refused({ ...good, datadir: 'elsewhere' })).toMatch(/: datadir is not a config field \(fields: genesis, dataDir, /)
      expect(refused({ ...good, dataDir: '' })).toMatch(/: dataDir must be a directory path\n$/)
      const { validatorKey: _, ...observerLike } = good
      expect(refused({ ...observerLike, hub: true })).toMatch(/: hub must be false or absent on a node without validatorKey/)
      expect(refused({ ...good, p2p: { ...good.p2p, relay: { dataLimit: 1024 } } })).toMatch(
        /: p2p\.relay\.dataLimit is not a config field \(p2p\.relay takes maxReservations, dataLimitBytes, durationLimitMs, connectionsPerSlot, connectionsPerSlotWindowMs\)\n$/,
      )
      expect(refused({ ...good, p2p: { ...good.p2p, announce: ['dns4/node.example/tcp/7100'] } })).toMatch(
        /: p2p\.announce must be a list of multiaddrs to announce \(strings such as \/dns4\/node\.example\/tcp\/7100\), or absent\n$/,
      )
      expect(refused({ ...good, p2p: { ...good.p2p, connections: { maxNonMembers: 0 } } })).toMatch(
        /: p2p\.connections must be an object with maxNonMembers and maxNonMembersPerIp \(positive integers, each optional\), or absent\n$/,
      )
      expect(refused({ ...good, p2p: { ...good.p2p, connections: { perIp: 8 } } })).toMatch(
        /: p2p\.connections\.perIp is not a config field \(p2p\.connections takes maxNonMembers, maxNonMembersPerIp\)\n$/,
      )
      for (const relay of [{ dataLimitBytes: -1 }, { durationLimitMs: 1.5 }, { connectionsPerSlot: 0 }, true])
        expect(refused({ ...good, p2p: { ...good.p2p, relay } })).toMatch(
          /: p2p\.relay must be false, absent, or an object with maxReservations, dataLimitBytes, durationLimitMs, connectionsPerSlot, connectionsPerSlotWindowMs/,
        )
      // The secrets in key files of their own (a node started that way: cli-tx.test.ts), which other
      // users may not read, as ssh refuses such a private key; nor the config while it holds one.
      const { nodeKey, validatorKey, ...keyless } = good
      const keyFile = (name: string, body: object, mode: number) => {
        writeFileSync(join(dir, name), JSON.stringify(body), { mode })
        chmodSync(join(dir, name), mode) // whatever the umask
        return join(dir, name)
      }
      const nodeKeyFile = keyFile('node-key.json', { secretKey: nodeKey }, 0o600)
      const withFiles = { ...keyless, nodeKeyFile, validatorKeyFile: keyFile('validator.json', { secretKey: validatorKey }, 0o400) }
      const accepted = (config: unknown) => {
        writeFileSync(file, JSON.stringify(config))
        return readNodeConfig(file)
      }
      expect(accepted(withFiles)).toMatchObject({ nodeKey, validatorKey }) // read into the fields every reader uses
      expect(accepted({ ...withFiles, nodeKeyFile: '../node-key.json' }).nodeKey).toBe(nodeKey) // relative to the config
      chmodSync(file, 0o640)
      expect(readNodeConfig(file).nodeKey).toBe(nodeKey) // this config holds no secret itself
      expect(refused(good)).toBe(
        `loopchain: the config ${file}, which holds a secret key (validatorKey, nodeKey), is open to other users (mode 640): run chmod 600 ${file}, or move each key to a file of its own (validatorKeyFile, nodeKeyFile)\n`,
      )
      chmodSync(file, 0o600)
      const readable = keyFile('readable.json', { secretKey: nodeKey }, 0o644)
      expect(startWith({ ...keyless, nodeKeyFile: readable })).toBe(
        `loopchain: the key file ${readable} (nodeKeyFile of ${file}) is open to other users (mode 644): run chmod 600 ${readable}\n`,
      )
      expect(refused({ ...withFiles, nodeKey })).toMatch(/: nodeKey must be given once: in the config or in nodeKeyFile, not both\n$/)
      expect(refused({ ...withFiles, validatorKeyFile: '' })).toMatch(
        /: validatorKeyFile must be the path of a key file \(JSON with secretKey\)\n$/,
      )
      expect(refused({ ...withFiles, nodeKeyFile: join(dir, 'absent.json') })).toMatch(
        /^loopchain: the key file .*absent\.json \(nodeKeyFile of .*config\.json\) cannot be read: ENOENT/,
      )
      // A key file that is not JSON: the message says so without quoting the file (V8's would quote
      // the secret). The secret is written after a letter, so V8's message is one that quotes it.
      writeFileSync(join(dir, 'broken.json'), `{"secretKey": x${nodeKey.slice(2)}}`, { mode: 0o600 })
      const broken = refused({ ...withFiles, nodeKeyFile: join(dir, 'broken.json') })
      expect(broken).toMatch(/broken\.json \(nodeKeyFile of .*\) is not JSON \(the parser’s message is not shown: it quotes the file\)\n$/)
      expect(broken).not.toContain(nodeKey.slice(2, 8))
      // A message of grammar alone quotes nothing, and is shown.
      writeFileSync(join(dir, 'broken.json'), '{"secretKey": 1e}', { mode: 0o600 })
      expect(refused({ ...withFiles, nodeKeyFile: join(dir, 'broken.json') })).toMatch(
        /broken\.json \(nodeKeyFile of .*\) is not JSON: Exponent part is missing a number in JSON at position 16\n$/,
      )
      const noSecret = keyFile('public.json', { publicKey: good.nodeKey }, 0o600)
      expect(refused({ ...withFiles, nodeKeyFile: noSecret })).toMatch(
        /public\.json \(nodeKeyFile of .*\) has no secretKey \(0x and 64 hex digits\); make one with: loopchain keys new --out FILE\n$/,
      )
      const other = JSON.parse(run('keys', 'new').stdout)
      const mixed = keyFile('mixed.json', { ...other, secretKey: validatorKey }, 0o600)
      expect(refused({ ...withFiles, validatorKeyFile: mixed })).toMatch(
        /mixed\.json \(validatorKeyFile of .*\): its publicKey is not its secretKey's\n$/,
      )
      const { publicKey: _p, ...otherAddress } = other
      const wrongAddress = keyFile('address.json', { ...otherAddress, secretKey: validatorKey }, 0o600)
      expect(refused({ ...withFiles, validatorKeyFile: wrongAddress })).toMatch(/: its address is not its secretKey's\n$/)
      expect(startWith({ ...good, genesis: 'missing.json' })).toMatch(
        /^loopchain: the genesis .*missing\.json \(from .*config\.json\) cannot be used: ENOENT/,
      )
      // Nothing was started: no database was made.
      expect(existsSync(join(dir, 'node-0', 'data'))).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
