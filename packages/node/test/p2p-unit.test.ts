import {
  createPeerScoreParams,
  createPeerScoreThresholds,
  validatePeerScoreParams,
  validatePeerScoreThresholds,
} from '@libp2p/gossipsub/score'
import { keyPairFromSecret } from '@loopchain/core'
import { describe, expect, it, vi } from 'vitest'
import { readFrame } from '../src/p2p/frames.js'
import {
  createNodeHost,
  encodeFrame,
  FrameKind,
  installNodePolyfills,
  nodePrivateKey,
  P2PError,
  peerIdFromNodeKey,
  peerIdFromNodePublicKey,
  peerScoreParams,
  protocolName,
  type RedialOptions,
  RequestError,
  SCORE_THRESHOLDS,
  topicName,
  topicScoreParams,
} from '../src/p2p/index.js'
import { releasePortBlock, reservePortBlock } from '../src/testing/ports.js'

async function* chunks(bytes: Uint8Array, size: number, thenHang = false): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size)
  if (thenHang) await new Promise(() => {})
}
const tooLarge = (n: number) => new RequestError('REQUEST_TOO_LARGE', `too large: ${n}`)

describe('p2p names', () => {
  it('namespaces topics and protocols by chain id', () => {
    expect(topicName('main-1', 'vote')).toBe('/loopchain/main-1/vote/1')
    expect(topicName('main-1', 'header')).not.toBe(topicName('main-2', 'header'))
    expect(protocolName('main-1', 'blocks')).toBe('/loopchain/main-1/blocks/1')
  })

  it('refuses chain ids and names that would break or collide in a protocol id', () => {
    for (const bad of ['a/b', '', 'has space', 'x'.repeat(65)]) {
      expect(() => protocolName(bad, 'blocks')).toThrow(P2PError)
      expect(() => protocolName('main', bad)).toThrow(/must match/)
    }
    expect(() => topicName('main', 'blocks' as never)).toThrow(P2PError)
  })
})

describe('node identity', () => {
  it('derives the peer id from the 32-byte ed25519 node key, the same public key as the core', async () => {
    const secret = new Uint8Array(32).fill(7)
    const key = await nodePrivateKey(secret)
    expect(key.type).toBe('Ed25519')
    expect(key.publicKey.raw).toEqual(keyPairFromSecret(secret).publicKey)
    expect(await peerIdFromNodeKey(secret)).toBe(await peerIdFromNodeKey(secret.slice()))
    expect(await peerIdFromNodeKey(secret)).not.toBe(await peerIdFromNodeKey(new Uint8Array(32).fill(8)))
    // From the public half alone, as another institution derives it from a genesis or member card.
    for (const fill of [7, 8, 200])
      expect(peerIdFromNodePublicKey(keyPairFromSecret(new Uint8Array(32).fill(fill)).publicKey)).toBe(
        await peerIdFromNodeKey(new Uint8Array(32).fill(fill)),
      )
  })

  it('refuses a bootstrap or announce address that is not a multiaddr, naming the list, before anything listens', async () => {
    const host = (o: { bootstrap?: string[]; announce?: string[] }) =>
      createNodeHost({ chainId: 'unit', nodeKey: new Uint8Array(32).fill(3), isMember: () => true, tcpPort: 0, wsPort: false, ...o })
    await expect(host({ announce: ['/dns4/'] })).rejects.toMatchObject({
      name: 'P2PError',
      code: 'INVALID_ADDRESS',
      message: expect.stringMatching(/^the announce address \/dns4\/ is not a multiaddr: /),
    })
    await expect(host({ bootstrap: ['/ip4/127.0.0.1/tcp/x'] })).rejects.toMatchObject({
      code: 'INVALID_ADDRESS',
      message: expect.stringMatching(/^the bootstrap address \/ip4\/127\.0\.0\.1\/tcp\/x is not a multiaddr/),
    })
  })

  /** A host on `port` whose one bootstrap peer is `peer`, redialling as `redial` says, and what it logged (with the time). */
  async function redialing(port: number, nodeKey: Uint8Array, peer: string, redial: RedialOptions) {
    const said: { level: string; msg: string; f: Record<string, unknown>; at: number }[] = []
    const record =
      (level: string) =>
      (msg: string, f: Record<string, unknown> = {}) =>
        void said.push({ level, msg, f, at: Date.now() })
    const logger = { debug() {}, error() {}, info: record('info'), warn: record('warn') }
    const host = await createNodeHost({
      chainId: 'unit',
      nodeKey,
      isMember: () => true,
      tcpPort: port,
      wsPort: false,
      bootstrap: [peer],
      redial,
      logger,
    })
    return { host, about: (m: string) => said.filter((x) => x.msg.startsWith(m)) }
  }

  it('warns once of a bootstrap peer it cannot reach for warnAfterMs, and says when it reaches it', async () => {
    const base = reservePortBlock()
    const bKey = new Uint8Array(32).fill(21)
    const bAddr = `/ip4/127.0.0.1/tcp/${base + 1}/p2p/${await peerIdFromNodeKey(bKey)}`
    const { host: a, about } = await redialing(base, new Uint8Array(32).fill(20), bAddr, {
      minBackoffMs: 50,
      maxBackoffMs: 100,
      warnAfterMs: 600,
    })
    let b: Awaited<ReturnType<typeof createNodeHost>> | undefined
    try {
      await vi.waitFor(() => expect(about('cannot reach a configured peer')).toHaveLength(1), { timeout: 5_000, interval: 50 })
      expect(about('cannot reach a configured peer')[0]).toMatchObject({ level: 'warn', f: { addr: bAddr } })
      expect(about('cannot reach a configured peer')[0]?.f.error).toMatch(/ECONNREFUSED|connect/i)
      // Still failing: not warned again.
      await new Promise((r) => setTimeout(r, 800))
      expect(about('cannot reach a configured peer')).toHaveLength(1)
      expect(about('reached a configured peer again')).toEqual([])
      b = await createNodeHost({ chainId: 'unit', nodeKey: bKey, isMember: () => true, tcpPort: base + 1, wsPort: false })
      await vi.waitFor(() => expect(about('reached a configured peer again')).toHaveLength(1), { timeout: 5_000, interval: 50 })
      expect(about('reached a configured peer again')[0]).toMatchObject({ level: 'info', f: { addr: bAddr } })
    } finally {
      await b?.stop()
      await a.stop()
      releasePortBlock(base)
    }
  })

  it('a configured peer that comes back and dials first is reached at once, not at the next dial of a long backoff', async () => {
    const base = reservePortBlock()
    const aKey = new Uint8Array(32).fill(22)
    const bKey = new Uint8Array(32).fill(23)
    const aAddr = `/ip4/127.0.0.1/tcp/${base}/p2p/${await peerIdFromNodeKey(aKey)}`
    const bAddr = `/ip4/127.0.0.1/tcp/${base + 1}/p2p/${await peerIdFromNodeKey(bKey)}`
    // a's next dial after its first failure is 3.75 s or more away.
    const { host: a, about } = await redialing(base, aKey, bAddr, { minBackoffMs: 5_000, maxBackoffMs: 20_000, warnAfterMs: 0 })
    let b: Awaited<ReturnType<typeof createNodeHost>> | undefined
    try {
      await vi.waitFor(() => expect(about('cannot reach a configured peer')).toHaveLength(1), { timeout: 5_000, interval: 20 })
      const warned = about('cannot reach a configured peer')[0]?.at as number
      b = await createNodeHost({
        chainId: 'unit',
        nodeKey: bKey,
        isMember: () => true,
        tcpPort: base + 1,
        wsPort: false,
        bootstrap: [aAddr],
      })
      await vi.waitFor(() => expect(about('reached a configured peer again')).toHaveLength(1), { timeout: 3_000, interval: 20 })
      expect((about('reached a configured peer again')[0]?.at as number) - warned).toBeLessThan(3_750)
      expect(a.libp2p.getConnections().length).toBeGreaterThan(0)
    } finally {
      await b?.stop()
      await a.stop()
      releasePortBlock(base)
    }
  })

  it('rejects a node key that is not 32 bytes', async () => {
    await expect(nodePrivateKey(new Uint8Array(64))).rejects.toMatchObject({ name: 'P2PError', code: 'INVALID_KEY' })
    expect(() => peerIdFromNodePublicKey(new Uint8Array(33))).toThrow(expect.objectContaining({ name: 'P2PError', code: 'INVALID_KEY' }))
  })
})

describe('request-response frames', () => {
  it('reads a frame delivered one byte at a time', async () => {
    const payload = new TextEncoder().encode('hello frames')
    const frame = await readFrame(chunks(encodeFrame(FrameKind.Response, payload), 1), 100, tooLarge)
    expect(frame.kind).toBe(FrameKind.Response)
    expect(new TextDecoder().decode(frame.payload)).toBe('hello frames')
  })

  it('refuses an oversized frame from its header, without waiting for the payload', async () => {
    const header = encodeFrame(FrameKind.Request, new Uint8Array(5000)).subarray(0, 5)
    await expect(readFrame(chunks(header, 5, true), 1024, tooLarge)).rejects.toMatchObject({ code: 'REQUEST_TOO_LARGE' })
  })

  it('reports a truncated frame and an unknown kind as typed errors', async () => {
    const whole = encodeFrame(FrameKind.Request, new Uint8Array(10))
    await expect(readFrame(chunks(whole.subarray(0, 9), 4), 100, tooLarge)).rejects.toMatchObject({ code: 'STREAM_FAILED' })
    const bad = whole.slice()
    bad[0] = 9
    await expect(readFrame(chunks(bad, 16), 100, tooLarge)).rejects.toMatchObject({ name: 'RequestError', code: 'BAD_FRAME' })
  })
})

describe('Node 20 shims', () => {
  it('installs Promise.withResolvers and WebSocket only where missing', async () => {
    // A constructor without Promise's statics stands in for Node 20's Promise.
    const BarePromise = function BarePromise(executor: (res: (v: unknown) => void, rej: (e: unknown) => void) => void) {
      return new Promise(executor)
    }
    const bare = { Promise: BarePromise }
    expect(installNodePolyfills(bare).sort()).toEqual(['Promise.withResolvers', 'WebSocket'])
    const { promise, resolve } = (
      BarePromise as unknown as { withResolvers: () => { promise: Promise<unknown>; resolve: (v: unknown) => void } }
    ).withResolvers()
    resolve(5)
    await expect(promise).resolves.toBe(5)
    expect(typeof (bare as { WebSocket?: unknown }).WebSocket).toBe('function')

    const ownWs = class {}
    const modern = {
      Promise: class extends Promise<unknown> {
        static withResolvers = () => 'native'
      },
      WebSocket: ownWs,
    }
    expect(installNodePolyfills(modern)).toEqual([])
    expect(modern.WebSocket).toBe(ownWs)
    expect(modern.Promise.withResolvers()).toBe('native')
  })
})

describe('gossip scoring parameters', () => {
  it('are accepted by gossipsub and graylist a peer after three invalid messages, not one', () => {
    const params = createPeerScoreParams(peerScoreParams(['/loopchain/t/tx/1']))
    expect(() => validatePeerScoreParams(params)).not.toThrow()
    expect(() => validatePeerScoreThresholds(createPeerScoreThresholds(SCORE_THRESHOLDS))).not.toThrow()
    const t = topicScoreParams()
    const penalty = (invalid: number) => invalid * invalid * t.invalidMessageDeliveriesWeight * t.topicWeight
    expect(penalty(1)).toBeLessThan(0)
    expect(penalty(1)).toBeGreaterThanOrEqual(SCORE_THRESHOLDS.graylistThreshold)
    // The most positive score a peer can bank cannot absorb three invalid messages.
    expect(penalty(3) + params.topicScoreCap).toBeLessThan(SCORE_THRESHOLDS.graylistThreshold)
  })
})

// `.patches/@libp2p+yamux+8.0.3.patch`: the library answered every data frame with a window update.
describe('yamux window updates', () => {
  // A yamux stream as the muxer builds it, with its outgoing frames captured instead of sent.
  const stream = async () => {
    const { StreamState, YamuxStream } = await import('@libp2p/yamux/stream')
    const frames: { type: number; length: number; flag: number }[] = []
    const log = Object.assign(() => {}, { error() {}, trace() {}, newScope: () => log })
    const s = new YamuxStream({
      id: '1',
      streamId: 1,
      state: StreamState.Established,
      direction: 'inbound',
      log: log as never,
      // A window update is a header alone; data frames would carry a body.
      sendFrame: (header: { type: number; length: number; flag: number }) => {
        frames.push(header)
        return true
      },
      getRTT: () => -1,
    } as never)
    const receive = (bytes: number) =>
      s.handleData({ header: { type: 0, flag: 0, streamID: 1, length: bytes }, data: new Uint8Array(bytes) } as never)
    return { frames, receive, window: () => (s as unknown as { recvWindow: number }).recvWindow }
  }

  it('grant credit once half the receive window is used, not after every frame', async () => {
    const { frames, receive, window } = await stream()
    const w = window()
    // 100 small messages (votes, transaction batches) use well under half of the window: no update.
    for (let i = 0; i < 100; i++) receive(200)
    expect(frames).toEqual([])
    // Past half of the window, one update gives back everything used so far.
    let used = 100 * 200
    while (used + 200 <= w / 2) {
      receive(200)
      used += 200
    }
    expect(frames).toEqual([])
    receive(200)
    used += 200
    expect(frames).toEqual([{ type: 1, flag: 0, streamID: 1, length: used }])
  })

  it('a sender that fills the window is never left without credit', async () => {
    const { frames, receive, window } = await stream()
    const w = window()
    // Frames as large as the window allows, back to back: each one past half is answered at once.
    let credit = w
    for (let i = 0; i < 50; i++) {
      const n = Math.min(64 * 1024, credit)
      receive(n)
      credit -= n
      for (const f of frames.splice(0)) credit += f.length
      expect(credit).toBeGreaterThan(w / 2 - 64 * 1024)
    }
  })
})

// `.patches/@libp2p+utils+7.4.1.patch`: noise's frame decoder asked its length decoder for the length
// of an empty buffer after every chunk that ended on a frame boundary, and the length decoder
// answers that with a thrown RangeError (an Error and its stack trace per chunk read).
describe('noise frame decoding', () => {
  it('does not ask for a length when a chunk ends on a frame boundary, and still waits for a split one', async () => {
    const { LengthPrefixedDecoder } = await import('@libp2p/utils')
    let asked = 0
    let short = 0
    // Noise's own length decoder: two bytes, big-endian, a RangeError when fewer are buffered.
    const lengthDecoder = (buf: { byteLength: number; getUint16(i: number): number }) => {
      asked++
      if (buf.byteLength < 2) {
        short++
        throw new RangeError('Could not decode int16BE')
      }
      return buf.getUint16(0)
    }
    const d = new LengthPrefixedDecoder({ lengthDecoder: lengthDecoder as never, encodingLength: () => 2 })
    const frames = (chunk: number[]) => [...d.decode(Uint8Array.from(chunk))].map((f) => [...f.subarray()])
    // Two whole frames in one chunk: two lengths asked, none of an empty buffer.
    expect(frames([0, 3, 1, 2, 3, 0, 1, 9])).toEqual([[1, 2, 3], [9]])
    expect([asked, short]).toEqual([2, 0])
    // A chunk that ends inside a length prefix, then the rest: one frame, once it is whole.
    expect(frames([0])).toEqual([])
    expect(short).toBe(1)
    expect(frames([2, 7])).toEqual([])
    expect(frames([8])).toEqual([[7, 8]])
    expect(short).toBe(1)
  })
})
