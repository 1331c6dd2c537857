/**
 * A network of two institutions made the way banks would make one: each makes its own keys and
 * member card, one assembles the genesis from the cards, and each starts its node from a config
 * that names its key files — real `loopchain` processes over TCP, no secret ever leaving the
 * institution that made it.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { keyPairFromSecret, parseGenesis, Right, to0x } from '@loopchain/core'
import { releasePortBlock, reservePortBlock } from '@loopchain/node'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { genesis, member } from '../src/consortium.js'
import { runCli as run } from './fixtures/one-node.js'

const CLI = fileURLToPath(new URL('../src/main.ts', import.meta.url))
const base = reservePortBlock()
const dir = mkdtempSync(join(tmpdir(), 'loopchain-consortium-'))
const nodes: ChildProcess[] = []

afterAll(async () => {
  for (const n of nodes) if (n.exitCode === null) n.kill('SIGKILL')
  await new Promise((r) => setTimeout(r, 200))
  rmSync(dir, { recursive: true, force: true })
  releasePortBlock(base)
})

const rpc = async (port: number, method: string): Promise<any> => {
  const res = await fetch(`http://127.0.0.1:${port}/`, {
    method: 'POST',
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: {} }),
  })
  return ((await res.json()) as { result?: unknown }).result
}

async function until<T>(f: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await f().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

/** `run` that must succeed: its stdout parsed as JSON. */
const ok = (...args: string[]) => {
  const r = run(...args)
  expect(r.stderr).toBe('')
  expect(r.status).toBe(0)
  return JSON.parse(r.stdout)
}
/** `run` that must be refused with exit 2 and one line. */
const refused = (...args: string[]) => {
  const r = run(...args)
  expect(r.status).toBe(2)
  expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1)
  return r.stderr
}

class Exited extends Error {
  constructor(readonly code: number) {
    super(`exited with ${code}`)
  }
}

/** Runs a command's function in this process, as the CLI would run it: what it printed, and its exit code. */
async function inProcess(command: (args: string[]) => unknown, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((t) => out.push(String(t)) > 0)
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((t) => err.push(String(t)) > 0)
  const x = vi.spyOn(process, 'exit').mockImplementation(((code?: number) => {
    throw new Exited(code ?? 0)
  }) as never)
  try {
    await command(args)
    return { code: 0, out: out.join(''), err: err.join('') }
  } catch (y) {
    if (y instanceof Exited) return { code: y.code, out: out.join(''), err: err.join('') }
    throw y
  } finally {
    o.mockRestore()
    e.mockRestore()
    x.mockRestore()
  }
}
/** {@link inProcess} that must succeed: its output. */
const okIn = async (command: (args: string[]) => unknown, ...args: string[]) => {
  const r = await inProcess(command, args)
  expect([r.code, r.err]).toEqual([0, ''])
  return r.out
}
/** {@link inProcess} that must be refused, as the CLI refuses: exit 2 and one line. */
const refusedIn = async (command: (args: string[]) => unknown, ...args: string[]) => {
  const r = await inProcess(command, args)
  expect(r.code).toBe(2)
  expect(r.err.split('\n').filter(Boolean)).toHaveLength(1)
  return r.err
}

describe('a network of institutions from member cards', () => {
  it('two institutions make keys and cards, one makes the genesis, and both nodes run from their key files', async () => {
    const banks = ['a', 'b'].map((b, i) => {
      const home = join(dir, `bank-${b}`)
      mkdirSync(home)
      ok('keys', 'new', '--out', join(home, 'validator.json'))
      ok('keys', 'new', '--out', join(home, 'node.json'))
      return { id: `bank-${b}`, home, tcp: base + 10 * i, rpc: base + 10 * i + 2 }
    })
    const [a, b] = banks as [(typeof banks)[number], (typeof banks)[number]]
    const memberArgs = (bank: typeof a, name: string, key = join(bank.home, 'validator.json'), node = join(bank.home, 'node.json')) => [
      'member',
      '--id',
      bank.id,
      '--name',
      name,
      '--key',
      key,
      '--node-key',
      node,
    ]
    ok(...memberArgs(a, 'Bank A'), '--rights', 'validator,member-node,issuer', '--out', join(dir, 'a.card.json'))
    // Bank B makes its card from the public parts alone (what keys new --out printed): the same card.
    const publicParts = (file: string) => {
      const { secretKey: _, ...rest } = JSON.parse(readFileSync(file, 'utf8'))
      writeFileSync(`${file}.pub`, JSON.stringify(rest))
      return `${file}.pub`
    }
    const bCard = run(...memberArgs(b, 'Bank B'))
    const bFromPublic = run(...memberArgs(b, 'Bank B', publicParts(join(b.home, 'validator.json')), publicParts(join(b.home, 'node.json'))))
    expect([bCard.status, bCard.stderr, bFromPublic.status]).toEqual([0, '', 0])
    expect(bFromPublic.stdout).toBe(bCard.stdout)
    writeFileSync(join(dir, 'b.card.json'), bCard.stdout)

    // No card carries a secret.
    for (const bank of banks) {
      for (const key of ['validator.json', 'node.json']) {
        const secret = JSON.parse(readFileSync(join(bank.home, key), 'utf8')).secretKey.slice(2)
        for (const card of ['a.card.json', 'b.card.json']) expect(readFileSync(join(dir, card), 'utf8')).not.toContain(secret)
      }
    }
    const cards = ['a.card.json', 'b.card.json'].map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')))
    expect(cards.map((c) => Object.keys(c).sort())).toEqual([
      ['address', 'format', 'id', 'name', 'nodeKey', 'peerId', 'power', 'publicKey', 'rights'],
      ['address', 'format', 'id', 'name', 'nodeKey', 'peerId', 'power', 'publicKey', 'rights'],
    ])

    // An empty block every 200 ms, so the two nodes below reach height 2 soon.
    const common = ['--chain-id', 'consortium-1', '--balance', `${cards[0].address}=1000`, '--empty-block-interval-ms', '200']
    const members = (...files: string[]) => files.flatMap((f) => ['--member', join(dir, f)])
    const made = ok('genesis', 'new', ...common, ...members('a.card.json', 'b.card.json'), '--out', join(dir, 'genesis.json'))
    const g = parseGenesis(JSON.parse(readFileSync(join(dir, 'genesis.json'), 'utf8')))
    expect(refused('genesis', 'new', ...common, ...members('a.card.json', 'b.card.json'), '--out', join(dir, 'genesis.json'))).toMatch(
      /genesis\.json exists; genesis never overwrites a file\n$/,
    )
    // The same cards at the same time, in another order, make the same genesis.
    const at = ['--timestamp', new Date(g.timestamp / 1000).toISOString()]
    const again = async (out: string, ...files: string[]) =>
      JSON.parse(await okIn(genesis, ...common, ...members(...files), ...at, '--out', join(dir, out))).genesisHash
    expect(await again('ba.json', 'b.card.json', 'a.card.json')).toBe(made.genesisHash)
    expect(await again('ab.json', 'a.card.json', 'b.card.json')).toBe(made.genesisHash)
    expect(readFileSync(join(dir, 'ba.json'), 'utf8')).toBe(readFileSync(join(dir, 'genesis.json'), 'utf8'))
    expect(made).toMatchObject({ chainId: 'consortium-1', validators: 2, members: 2 })
    expect(g.validators.validators.map((v) => v.address).sort()).toEqual(cards.map((c) => c.address).sort())
    expect(g.members.find((m) => m.id === 'bank-a')?.rights).toBe(Right.Validator | Right.MemberNode | Right.Issuer)
    expect(g.balances).toEqual([{ address: cards[0].address, amount: 1000n }])

    // Each node's config names its key files (kept from other users) and bootstraps to the other's peer id.
    for (const [i, bank] of banks.entries()) {
      const other = banks[1 - i] as typeof bank
      writeFileSync(
        join(bank.home, 'config.json'),
        JSON.stringify({
          genesis: '../genesis.json',
          dataDir: 'data',
          validatorKeyFile: 'validator.json',
          nodeKeyFile: 'node.json',
          p2p: { tcpPort: bank.tcp, wsPort: bank.tcp + 1, bootstrap: [`/ip4/127.0.0.1/tcp/${other.tcp}/p2p/${cards[1 - i].peerId}`] },
          rpc: { port: bank.rpc },
        }),
      )
      const log = openSync(join(bank.home, 'node.log'), 'w')
      nodes.push(
        spawn(process.execPath, ['--import', 'tsx', CLI, 'start', '--config', join(bank.home, 'config.json')], {
          stdio: ['ignore', log, log],
        }),
      )
      closeSync(log)
    }
    // Two validators of power 1: every block needs both, so a block at height 2 shows they found each other.
    const heads = await Promise.all(
      banks.map((bank) =>
        until(
          async () => {
            const info = await rpc(bank.rpc, 'lc_getNetworkInfo')
            return info.height >= 2 ? info : undefined
          },
          60_000,
          `${bank.id} at height 2`,
        ),
      ),
    )
    for (const info of heads) expect(info.genesisHash).toBe(made.genesisHash)
    // What each institution reads offline from the file it was sent: the same hash, and the cards' parts.
    const checked = ok('genesis', 'check', '--file', join(dir, 'genesis.json'))
    expect(checked.genesisHash).toBe(made.genesisHash)
    expect(checked.members.map((m: { id: string; peerId: string; rights: string[] }) => [m.id, m.peerId, m.rights]).sort()).toEqual(
      cards.map((c) => [c.id, c.peerId, c.rights]).sort(),
    )
    expect(checked.validators.map((v: { id: string }) => v.id).sort()).toEqual(['bank-a', 'bank-b'])
    expect(checked.params).toMatchObject({ emptyBlockIntervalMs: 200, approvalRule: 'majority-of-validators' })
    const peers = await rpc(a.rpc, 'lc_getNetworkInfo')
    expect(peers.validatorsNotAdmitted).toEqual([])
  }, 120_000)

  it('refuses a card with a secret or a wrong address, the same institution twice, no validator, and never overwrites', async () => {
    const home = join(dir, 'bank-c')
    mkdirSync(home)
    // In this process (each CLI run costs a second; the test above runs the commands themselves).
    for (const name of ['validator.json', 'node.json']) {
      const k = keyPairFromSecret(globalThis.crypto.getRandomValues(new Uint8Array(32)))
      writeFileSync(join(home, name), JSON.stringify({ secretKey: to0x(k.secretKey), publicKey: to0x(k.publicKey), address: k.address }), {
        mode: 0o600,
      })
    }
    const key = join(home, 'validator.json')
    const card = JSON.parse(await okIn(member, '--id', 'bank-c', '--name', 'Bank C', '--key', key, '--node-key', join(home, 'node.json')))
    const write = (name: string, body: object) => {
      writeFileSync(join(home, name), JSON.stringify(body))
      return join(home, name)
    }
    const genesisOf = (...cards: string[]) =>
      refusedIn(genesis, '--chain-id', 'c-1', ...cards.flatMap((c) => ['--member', c]), '--out', join(home, 'g.json'))
    const good = write('c.card.json', card)
    expect(await genesisOf(write('secret.json', { ...card, secretKey: JSON.parse(readFileSync(key, 'utf8')).secretKey }))).toMatch(
      /secret\.json: it holds a secretKey: a card must never carry one/,
    )
    expect(await genesisOf(write('moved.json', { ...card, address: `hx${'1'.repeat(40)}` }))).toMatch(
      /moved\.json: address is not its publicKey's address\n$/,
    )
    expect(await genesisOf(good, write('again.json', { ...card, id: 'bank-c2' }))).toMatch(
      /c\.card\.json and .*again\.json share an id, an account or a node key/,
    )
    expect(await genesisOf(write('issuer.json', { ...card, rights: ['issuer'] }))).toMatch(/no member card asks for the validator right/)
    // Any field a card does not hold (a secret under another name), and a node key that is the account key.
    expect(await genesisOf(write('extra.json', { ...card, validatorKey: card.publicKey }))).toMatch(
      /extra\.json: validatorKey is not a field of a member card/,
    )
    expect(await genesisOf(write('same.json', { ...card, nodeKey: card.publicKey }))).toMatch(/same\.json: its nodeKey is its account key/)
    const { nodeKey: _n, peerId: _p, ...nodeless } = card
    expect(await genesisOf(write('nodeless.json', nodeless))).toMatch(/nodeless\.json: it asks for the validator right without a nodeKey/)
    // A config's secret nodeKey pasted in place of the public one: its peer id gives it away, and it is not published.
    const pasted = { ...card, nodeKey: JSON.parse(readFileSync(join(home, 'node.json'), 'utf8')).secretKey }
    expect(await genesisOf(write('pasted.json', pasted))).toMatch(
      /pasted\.json: its peerId is not its nodeKey's: the nodeKey must be the node's public key/,
    )
    expect(await genesisOf(write('long.json', { ...card, name: 'x'.repeat(200) }))).toMatch(
      /long\.json: name must be 1 to 128 bytes of text\n$/,
    )
    expect(existsSync(join(home, 'g.json'))).toBe(false)
    expect(
      await refusedIn(genesis, '--chain-id', 'c-1', '--member', good, '--timestamp', '2027-01-04T09:00:00', '--out', join(home, 'g.json')),
    ).toMatch(/--timestamp 2027-01-04T09:00:00 needs its zone/)
    // A SCORE's account funded too: sorted by the address's bytes (every hx… before a cx…), as the genesis must be.
    const withBalances = (out: string, ...balances: string[]) => [
      '--chain-id',
      'c-1',
      '--member',
      good,
      ...balances.flatMap((b) => ['--balance', b]),
      '--out',
      join(home, out),
    ]
    const funded = JSON.parse(await okIn(genesis, ...withBalances('funded.json', `cx${'0'.repeat(39)}5=7`, `${card.address}=9`)))
    expect(parseGenesis(JSON.parse(readFileSync(funded.file, 'utf8'))).balances.map((b) => b.address)).toEqual([
      card.address,
      `cx${'0'.repeat(39)}5`,
    ])
    expect(await genesisOf(write('other.json', { ...card, format: 'x' }))).toMatch(
      /not a member card \(its format must be loopchain-member\/1/,
    )
    expect(await genesisOf(write('root.json', { ...card, rights: ['validator', 'root'] }))).toMatch(
      /not valid: genesis members\[0\]\.rights\[1\]: must be one of .* \(the member card .*root\.json\)\n$/,
    )
    expect(await refusedIn(genesis, ...withBalances('g.json', `${card.address}=1`, `${card.address}=2`))).toMatch(
      /--balance names hx[0-9a-f]{40} twice\n$/,
    )
    expect(await refusedIn(genesis, ...withBalances('g.json', 'hx12=5'))).toMatch(/--balance hx12=5 must be ADDRESS=AMOUNT/)
    // The member command's own checks.
    expect(await refusedIn(member, '--id', 'bank-c', '--name', 'C', '--key', key)).toMatch(
      /the validator right is for a member that runs a node .*: give its key with --node-key/,
    )
    expect(await refusedIn(member, '--id', 'bank-c', '--name', 'C', '--key', key, '--rights', 'member-node,issuer')).toMatch(
      /the member-node right is for a member that runs a node/,
    )
    expect(await refusedIn(member, '--id', 'bank-c', '--name', 'C', '--key', key, '--node-key', key)).toMatch(
      /--node-key is the account key/,
    )
    expect(await refusedIn(member, '--id', 'Bank C', '--name', 'C', '--key', key, '--rights', 'issuer')).toMatch(
      /--id Bank C must be 1-64 lower-case/,
    )
    chmodSync(key, 0o644)
    expect(await refusedIn(member, '--id', 'bank-c', '--name', 'C', '--key', key, '--rights', 'issuer')).toMatch(
      /validator\.json \(the account key file\) is open to other users \(mode 644\): run chmod 600/,
    )
    chmodSync(key, 0o600)
    // Written once: a second genesis or card over the first is refused, and the first is unchanged.
    await okIn(genesis, '--chain-id', 'c-1', '--member', good, '--out', join(home, 'genesis.json'))
    const first = readFileSync(join(home, 'genesis.json'), 'utf8')
    expect(await refusedIn(genesis, '--chain-id', 'c-2', '--member', good, '--out', join(home, 'genesis.json'))).toMatch(
      /genesis\.json exists; genesis never overwrites a file/,
    )
    expect(readFileSync(join(home, 'genesis.json'), 'utf8')).toBe(first)
  }, 120_000)
})
