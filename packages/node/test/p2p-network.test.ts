import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { toHex } from '@loopchain/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { peerIdFromNodeKey, REQUEST_FAULTS_TO_BAN } from '../src/p2p/index.js'

// Every node runs in its own OS process (test/fixtures/p2p-node.ts), talking over real TCP and
// WebSocket sockets on 127.0.0.1; the test drives each through a JSON line protocol.

const fixture = fileURLToPath(new URL('./fixtures/p2p-node.ts', import.meta.url))
const CHAIN = 'p2ptest'

interface Reply {
  ok: boolean
  result?: unknown
  error?: { name: string; code?: string; message: string; details?: Record<string, unknown> }
}
interface Event {
  event: string
  kind?: string
  data?: string
  from?: string
  peerId?: string
  addrs?: string[]
}

class NodeProc {
  readonly events: Event[] = []
  peerId = ''
  addrs: string[] = []
  #nextId = 1
  readonly #pending = new Map<number, (r: Reply) => void>()
  readonly #waiters = new Set<() => void>()

  constructor(
    readonly name: string,
    readonly child: ChildProcessWithoutNullStreams,
  ) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      let msg: (Reply & { id?: number }) | Event
      try {
        msg = JSON.parse(line)
      } catch {
        return
      }
      if ('id' in msg && typeof msg.id === 'number') {
        this.#pending.get(msg.id)?.(msg as Reply)
        this.#pending.delete(msg.id)
      } else {
        this.events.push(msg as Event)
        for (const w of this.#waiters) w()
      }
    })
  }

  static async start(name: string, config: Record<string, unknown>): Promise<NodeProc> {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, JSON.stringify({ chainId: CHAIN, ...config })], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    child.stderr.on('data', (d: Buffer) => process.stderr.write(`[${name}] ${d}`))
    const proc = new NodeProc(name, child)
    procs.push(proc)
    const ready = await proc.waitEvent((e) => e.event === 'ready', 45_000)
    proc.peerId = ready.peerId as string
    proc.addrs = ready.addrs as string[]
    return proc
  }

  addr(transport: 'tcp' | 'ws'): string {
    const a = this.addrs.find((x) => (transport === 'ws' ? x.includes('/ws/') : !x.includes('/ws/')))
    if (a === undefined) throw new Error(`${this.name} has no ${transport} address`)
    return a
  }

  call(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<Reply> {
    const id = this.#nextId++
    return new Promise<Reply>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: ${cmd} got no reply in ${timeoutMs} ms`)), timeoutMs)
      this.#pending.set(id, (r) => {
        clearTimeout(t)
        resolve(r)
      })
      this.child.stdin.write(`${JSON.stringify({ id, cmd, ...args })}\n`)
    })
  }

  /** Calls and returns the result, failing the test on an error reply. */
  async ok<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const r = await this.call(cmd, args)
    if (!r.ok) throw new Error(`${this.name}: ${cmd} failed: ${JSON.stringify(r.error)}`)
    return r.result as T
  }

  waitEvent(pred: (e: Event) => boolean, timeoutMs = 10_000): Promise<Event> {
    return new Promise<Event>((resolve, reject) => {
      const check = () => {
        const e = this.events.find(pred)
        if (e === undefined) return
        cleanup()
        resolve(e)
      }
      const onExit = () => {
        cleanup()
        reject(new Error(`${this.name} exited`))
      }
      const t = setTimeout(() => {
        cleanup()
        reject(new Error(`${this.name}: event not seen in ${timeoutMs} ms`))
      }, timeoutMs)
      const cleanup = () => {
        clearTimeout(t)
        this.#waiters.delete(check)
        this.child.off('exit', onExit)
      }
      this.#waiters.add(check)
      this.child.once('exit', onExit)
      check()
    })
  }

  received(kind: string, data: string): boolean {
    return this.events.some((e) => e.event === 'message' && e.kind === kind && e.data === data)
  }
}

const procs: NodeProc[] = []

/** Polls until `probe` returns true; bounded so a broken network fails the test instead of hanging. */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await probe()) return
    await new Promise((r) => setTimeout(r, 150))
  }
  throw new Error(`timed out waiting for ${what}`)
}

const key = (i: number) => new Uint8Array(32).fill(i)
// a: the hub validator; b: a validator over TCP; d: a validator over WebSockets; m: a member that
// will misbehave; n: the only non-member (a light client), over WebSockets. Five processes keep the
// suite fast on a 2-core machine (each node takes seconds of CPU to load libp2p under tsx).
const names = ['a', 'b', 'd', 'm', 'n'] as const
type Name = (typeof names)[number]
const ids = {} as Record<Name, string>
const p = {} as Record<Name, NodeProc>

beforeAll(async () => {
  for (const [i, n] of names.entries()) ids[n] = await peerIdFromNodeKey(key(i + 1))
  const members = [ids.a, ids.b, ids.d, ids.m]
  const cfg = (n: Name, extra: Record<string, unknown>) => ({ keyHex: toHex(key(names.indexOf(n) + 1)), members, ...extra })
  p.a = await NodeProc.start('a', cfg('a', { subscribe: ['tx', 'vote', 'header'] }))
  const [b, d, m, n] = await Promise.all([
    NodeProc.start('b', cfg('b', { bootstrap: [p.a.addr('tcp')], subscribe: ['tx', 'vote', 'header'] })),
    NodeProc.start('d', cfg('d', { bootstrap: [p.a.addr('ws')], subscribe: ['tx', 'header'] })),
    NodeProc.start('m', cfg('m', { bootstrap: [p.a.addr('tcp')] })),
    // The light client dials once by hand (no redial), like a browser page, over WebSockets.
    NodeProc.start('n', cfg('n', { subscribe: ['header'], wsPort: false })),
  ])
  Object.assign(p, { b, d, m, n })
  await p.n.ok('dial', { addr: p.a.addr('ws') })
  // The hub forwards along its meshes once gossipsub has grafted the subscribers.
  await until('a tx mesh of b, d', async () => (await p.a.ok<string[]>('mesh', { kind: 'tx' })).length >= 2, 20_000)
  await until('a header mesh of b, d, n', async () => (await p.a.ok<string[]>('mesh', { kind: 'header' })).length >= 3, 20_000)
}, 90_000)

afterAll(async () => {
  await Promise.all(
    procs.map(
      (proc) =>
        new Promise<void>((resolve) => {
          if (proc.child.exitCode !== null) return resolve()
          const t = setTimeout(() => proc.child.kill('SIGKILL'), 3000)
          proc.child.once('exit', () => {
            clearTimeout(t)
            resolve()
          })
          proc.child.stdin.end()
        }),
    ),
  )
})

describe('p2p host across OS processes', () => {
  it('over TCP, a gossip message published by one process reaches the other two', async () => {
    const viaM = (await p.m.ok<{ peerId: string; remoteAddr: string }[]>('connections')).find((c) => c.peerId === ids.a)
    expect(viaM?.remoteAddr).toMatch(/\/tcp\/\d+\/p2p\//)
    expect(viaM?.remoteAddr).not.toContain('/ws')
    await until('m sees a subscribed', async () => (await p.m.ok<string[]>('subscribers', { kind: 'vote' })).includes(ids.a))
    await until('a vote mesh with b', async () => (await p.a.ok<string[]>('mesh', { kind: 'vote' })).includes(ids.b))
    expect(await p.m.ok<number>('publish', { kind: 'vote', data: 'tcp-hello' })).toBeGreaterThanOrEqual(1)
    const atA = await p.a.waitEvent((e) => e.kind === 'vote' && e.data === 'tcp-hello')
    expect(atA.from).toBe(ids.m)
    const atB = await p.b.waitEvent((e) => e.kind === 'vote' && e.data === 'tcp-hello')
    // b is connected only to a, so a forwarded it.
    expect(atB.from).toBe(ids.a)
  })

  it('a message its validator keeps local is delivered there and forwarded to no one', async () => {
    await until('m sees a subscribed', async () => (await p.m.ok<string[]>('subscribers', { kind: 'vote' })).includes(ids.a))
    await until('a vote mesh with b', async () => (await p.a.ok<string[]>('mesh', { kind: 'vote' })).includes(ids.b))
    expect(await p.m.ok<number>('publish', { kind: 'vote', data: 'local-too-far-ahead' })).toBeGreaterThanOrEqual(1)
    expect((await p.a.waitEvent((e) => e.kind === 'vote' && e.data === 'local-too-far-ahead')).from).toBe(ids.m)
    // The same path carries an ordinary vote on to b (see the TCP test); this one stays at a.
    expect(await p.m.ok<number>('publish', { kind: 'vote', data: 'after-local' })).toBeGreaterThanOrEqual(1)
    await p.b.waitEvent((e) => e.kind === 'vote' && e.data === 'after-local')
    expect(p.b.received('vote', 'local-too-far-ahead')).toBe(false)
  })

  it('transactions go from their publisher to the peers it is connected to, and are not forwarded', async () => {
    await until('m sees a subscribed', async () => (await p.m.ok<string[]>('subscribers', { kind: 'tx' })).includes(ids.a))
    expect(await p.m.ok<number>('publish', { kind: 'tx', data: 'direct-from-m' })).toBe(1)
    const atA = await p.a.waitEvent((e) => e.kind === 'tx' && e.data === 'direct-from-m')
    expect(atA.from).toBe(ids.m)
    // a publishes its own: b and d, each connected to a, get it from a.
    expect(await p.a.ok<number>('publish', { kind: 'tx', data: 'direct-from-a' })).toBeGreaterThanOrEqual(2)
    expect((await p.b.waitEvent((e) => e.kind === 'tx' && e.data === 'direct-from-a')).from).toBe(ids.a)
    expect((await p.d.waitEvent((e) => e.kind === 'tx' && e.data === 'direct-from-a')).from).toBe(ids.a)
    // m's batch reached a, which has b and d in its tx mesh, but a passed it on to neither.
    expect(await p.a.ok<string[]>('mesh', { kind: 'tx' })).toEqual(expect.arrayContaining([ids.b, ids.d]))
    await new Promise((r) => setTimeout(r, 1500))
    expect(p.b.received('tx', 'direct-from-m')).toBe(false)
    expect(p.d.received('tx', 'direct-from-m')).toBe(false)
  })

  it('over WebSockets, a gossip message published by one process reaches the other two', async () => {
    const viaD = (await p.d.ok<{ peerId: string; remoteAddr: string }[]>('connections')).find((c) => c.peerId === ids.a)
    expect(viaD?.remoteAddr).toContain('/ws')
    const viaN = (await p.n.ok<{ peerId: string; remoteAddr: string }[]>('connections')).find((c) => c.peerId === ids.a)
    expect(viaN?.remoteAddr).toContain('/ws')
    await until('d sees a subscribed', async () => (await p.d.ok<string[]>('subscribers', { kind: 'header' })).includes(ids.a))
    await p.d.ok('publish', { kind: 'header', data: 'ws-hello' })
    const atA = await p.a.waitEvent((e) => e.kind === 'header' && e.data === 'ws-hello')
    expect(atA.from).toBe(ids.d)
    const atN = await p.n.waitEvent((e) => e.kind === 'header' && e.data === 'ws-hello')
    expect(atN.from).toBe(ids.a)
    // Our own message is not delivered back to us (emitSelf off).
    await new Promise((r) => setTimeout(r, 300))
    expect(p.d.received('header', 'ws-hello')).toBe(false)
  })

  it('a request-response round trip returns the handler’s bytes', async () => {
    expect(await p.b.ok('request', { peer: ids.a, name: 'echo', data: 'ping' })).toBe('ping')
    expect(await p.b.ok('request', { peer: ids.a, name: 'member-echo', data: 'hi' })).toBe(`member ${ids.b}: hi`)
  })

  it('an oversized request is refused with REQUEST_TOO_LARGE and the handler keeps serving', async () => {
    const r = await p.b.call('request', { peer: ids.a, name: 'echo', size: 5000 })
    expect(r.ok).toBe(false)
    expect(r.error).toMatchObject({ name: 'RequestError', code: 'REQUEST_TOO_LARGE', details: { remote: true } })
    expect(await p.b.ok('request', { peer: ids.a, name: 'echo', data: 'still here' })).toBe('still here')
  })

  it('an oversized response is refused by the requester with RESPONSE_TOO_LARGE', async () => {
    const r = await p.b.call('request', { peer: ids.a, name: 'echo', data: 'x'.repeat(500), maxResponseBytes: 100 })
    expect(r.error).toMatchObject({ name: 'RequestError', code: 'RESPONSE_TOO_LARGE' })
  })

  it('a throwing handler reaches the requester as HANDLER_FAILED, with its code but no internals', async () => {
    const typed = await p.b.call('request', { peer: ids.a, name: 'fail', data: 'x' })
    expect(typed.error).toMatchObject({
      name: 'RequestError',
      code: 'HANDLER_FAILED',
      message: 'no such block',
      details: { remoteCode: 'NOT_FOUND' },
    })
    const untyped = await p.b.call('request', { peer: ids.a, name: 'crash', data: 'x' })
    expect(untyped.error).toMatchObject({ name: 'RequestError', code: 'HANDLER_FAILED' })
    expect(untyped.error?.message).not.toContain('secret')
    const missing = await p.b.call('request', { peer: ids.a, name: 'no-such-protocol', data: 'x' })
    expect(missing.error).toMatchObject({ name: 'RequestError', code: 'NO_HANDLER' })
  })

  it('a request that outlives its timeout fails with TIMEOUT', async () => {
    const started = Date.now()
    const r = await p.b.call('request', { peer: ids.a, name: 'slow', data: 'x', timeoutMs: 300 })
    expect(r.error).toMatchObject({ name: 'RequestError', code: 'TIMEOUT' })
    expect(Date.now() - started).toBeLessThan(2500)
  })

  it('a bootstrap peer that is disconnected is redialled', async () => {
    await p.a.ok('hangup', { peer: ids.b })
    await until('b gone from a', async () => !(await p.a.ok<{ peerId: string }[]>('connections')).some((x) => x.peerId === ids.b), 5000)
    await until('b back at a', async () => (await p.a.ok<{ peerId: string }[]>('connections')).some((x) => x.peerId === ids.b), 10_000)
  })

  it('serves the circuit-relay hop protocol for browsers', async () => {
    expect(await p.a.ok<string[]>('protocols')).toContain('/libp2p/circuit/relay/0.2.0/hop')
  })

  it('the Node 20 shims are installed in a node process', async () => {
    expect(await p.a.ok('polyfills')).toEqual({ withResolvers: 'function', WebSocket: 'function' })
  })
})

describe('admission of non-members (light clients)', () => {
  it('a non-member is refused the member-only protocol but can use a read-only one', async () => {
    const refused = await p.n.call('request', { peer: ids.a, name: 'member-echo', data: 'let me in' })
    expect(refused.error).toMatchObject({ name: 'RequestError', code: 'NOT_MEMBER' })
    expect(await p.n.ok('request', { peer: ids.a, name: 'echo', data: 'read-only' })).toBe('read-only')
  })

  it("a non-member's stream that sends no request does not hold a place: another request is served", async () => {
    await p.n.ok('stall', { peer: ids.a, name: 'one-echo' })
    await new Promise((r) => setTimeout(r, 300))
    // The only non-member place is free: the silent stream was never counted.
    expect(await p.n.ok('request', { peer: ids.a, name: 'one-echo', data: 'served' })).toBe('served')
  })

  it('a non-member receives headers', async () => {
    await until('a sees n on header', async () => (await p.a.ok<string[]>('subscribers', { kind: 'header' })).includes(ids.n))
    await p.a.ok('publish', { kind: 'header', data: 'header-1' })
    await p.n.waitEvent((e) => e.kind === 'header' && e.data === 'header-1')
  })

  it('a non-member that grafts onto a member-only topic without subscribing is taken out of the mesh and disconnected', async () => {
    await until('n sees a on vote', async () => (await p.n.ok<string[]>('subscribers', { kind: 'vote' })).includes(ids.a))
    expect(await p.a.ok<number>('score', { peer: ids.n })).toBeGreaterThanOrEqual(0) // gossipsub itself would take the GRAFT
    await p.n.ok('graft', { peer: ids.a, kind: 'vote' })
    await until('a hangs up on n', async () => !(await p.n.ok<{ peerId: string }[]>('connections')).some((c) => c.peerId === ids.a))
    expect(await p.a.ok<string[]>('mesh', { kind: 'vote' })).not.toContain(ids.n)
    // Back, as a light client would come back, for the tests that follow.
    await p.n.ok('dial', { addr: p.a.addr('ws') })
    await until('a sees n on header again', async () => (await p.a.ok<string[]>('subscribers', { kind: 'header' })).includes(ids.n))
  })

  it("a non-member's gossip on a member-only topic is not delivered", async () => {
    await until('n sees a on vote', async () => (await p.n.ok<string[]>('subscribers', { kind: 'vote' })).includes(ids.a))
    expect(await p.n.ok<number>('publish', { kind: 'vote', data: 'vote-from-non-member' })).toBe(1)
    await until('b sees a on vote', async () => (await p.b.ok<string[]>('subscribers', { kind: 'vote' })).includes(ids.a))
    await p.b.ok('publish', { kind: 'vote', data: 'vote-from-member' })
    await p.a.waitEvent((e) => e.kind === 'vote' && e.data === 'vote-from-member')
    await new Promise((r) => setTimeout(r, 500))
    expect(p.a.received('vote', 'vote-from-non-member')).toBe(false)
    // Gossipsub caches scores for a heartbeat, so poll.
    await until('score of n below zero at a', async () => (await p.a.ok<number>('score', { peer: ids.n })) < 0, 5000)
  })

  it('a non-member that subscribes to a member-only topic is disconnected', async () => {
    expect((await p.n.ok<{ peerId: string }[]>('connections')).map((c) => c.peerId)).toContain(ids.a)
    await p.n.ok('subscribe', { kind: 'vote' })
    await until('a hangs up on n', async () => !(await p.n.ok<{ peerId: string }[]>('connections')).some((c) => c.peerId === ids.a))
  })
})

describe('gossip peer scoring', () => {
  it('a peer publishing invalid messages drops below zero, is graylisted and disconnected, and is not heard after', async () => {
    await until('m sees a on tx', async () => (await p.m.ok<string[]>('subscribers', { kind: 'tx' })).includes(ids.a))
    await p.m.ok('publish', { kind: 'tx', data: 'bad-1' })
    await until('score of m below zero at a', async () => (await p.a.ok<number>('score', { peer: ids.m })) < 0)
    // Keep misbehaving (each message distinct, as duplicates are not re-validated) until a bans m.
    let i = 2
    await until('a bans m', async () => {
      if (await p.a.ok<boolean>('banned', { peer: ids.m })) return true
      await p.m.call('publish', { kind: 'tx', data: `bad-${i++}` })
      return false
    })
    expect(i).toBeLessThan(30)
    await until('m disconnected from a', async () => !(await p.a.ok<{ peerId: string }[]>('connections')).some((c) => c.peerId === ids.m))
    // m's reconnect loop keeps trying; a's gater refuses it, and a valid message from m goes nowhere.
    await p.m.call('publish', { kind: 'tx', data: 'good-after-ban' })
    await new Promise((r) => setTimeout(r, 1000))
    await p.b.ok('publish', { kind: 'tx', data: 'marker-after-ban' })
    await p.a.waitEvent((e) => e.kind === 'tx' && e.data === 'marker-after-ban')
    expect(p.a.received('tx', 'good-after-ban')).toBe(false)
    expect(p.a.events.some((e) => e.kind === 'tx' && e.data?.startsWith('bad-'))).toBe(false)
    expect(await p.a.ok<boolean>('banned', { peer: ids.m })).toBe(true)
  })
})

describe('membership changes', () => {
  it('a peer removed from the members is disconnected from member-only topics', async () => {
    expect(await p.a.ok<string[]>('subscribers', { kind: 'tx' })).toContain(ids.d)
    const dropped = await p.a.ok<string[]>('setMembers', { members: [ids.a, ids.b, ids.m] })
    expect(dropped).toEqual([ids.d])
    await until('d gone from a', async () => !(await p.a.ok<{ peerId: string }[]>('connections')).some((x) => x.peerId === ids.d), 5000)
  })
})

describe('request protocols', () => {
  it('a non-member that keeps sending faulty requests is banned and disconnected; refusals that are not its fault do not count, nor members', async () => {
    // A fresh light client, so the peers the other tests use stay as they are.
    const x = await NodeProc.start('x', { keyHex: toHex(key(names.length + 1)), members: [ids.a, ids.b, ids.d, ids.m], wsPort: false })
    const idX = await peerIdFromNodeKey(key(names.length + 1))
    await x.ok('dial', { addr: p.d.addr('ws') })
    // Five refusals of the node's own kind (NOT_FOUND, no penalty) cost x nothing.
    for (let i = 0; i < 5; i++)
      expect((await x.call('request', { peer: ids.d, name: 'fail', data: 'x' })).error?.code).toBe('HANDLER_FAILED')
    // Oversized requests are x's fault: two are tolerated...
    for (let i = 0; i < REQUEST_FAULTS_TO_BAN - 1; i++)
      expect((await x.call('request', { peer: ids.d, name: 'echo', size: 5000 })).error?.code).toBe('REQUEST_TOO_LARGE')
    expect(await p.d.ok<boolean>('banned', { peer: idX })).toBe(false)
    expect(await x.ok('request', { peer: ids.d, name: 'echo', data: 'still served' })).toBe('still served')
    // ...the third bans it, once it has read why: d hangs up and refuses it.
    expect((await x.call('request', { peer: ids.d, name: 'echo', size: 5000 })).error?.code).toBe('REQUEST_TOO_LARGE')
    await until('d bans x', async () => p.d.ok<boolean>('banned', { peer: idX }))
    await until('x disconnected from d', async () => !(await p.d.ok<{ peerId: string }[]>('connections')).some((c) => c.peerId === idX))
    expect((await x.call('request', { peer: ids.d, name: 'echo', data: 'let me back' })).ok).toBe(false)
    // A member's node is not cut off for its requests (its votes travel on the same connection).
    await p.b.ok('dial', { addr: p.d.addr('ws') })
    for (let i = 0; i < REQUEST_FAULTS_TO_BAN + 1; i++)
      expect((await p.b.call('request', { peer: ids.d, name: 'echo', size: 5000 })).error?.code).toBe('REQUEST_TOO_LARGE')
    expect(await p.d.ok<boolean>('banned', { peer: ids.b })).toBe(false)
    expect(await p.b.ok('request', { peer: ids.d, name: 'echo', data: 'member' })).toBe('member')
  })
})
