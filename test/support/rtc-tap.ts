/**
 * A tap on a page's WebRTC data channels, for tests that play a hostile peer over a real direct
 * link: the page records what it sends while the tap is on, and the test sends bytes of its own
 * choosing on the same data channel (a replay, or a message it forged).
 *
 * What crosses a libp2p WebRTC data channel: a varint length, then a protobuf `Message` whose field
 * 2 holds stream bytes. Our peer links put frames of [u32 big-endian length][frame] in those bytes
 * (packages/light-client/src/peer-link.ts).
 */
import type { Page } from 'playwright-core'

declare global {
  interface Window {
    __rtcTap?: {
      on: boolean
      sent: { channel: RTCDataChannel; bytes: Uint8Array }[]
      send(i: number, bytes: number[]): void
    }
  }
}

/** Installs the tap; pass to `context.addInitScript`. Runs in the page, so it must stand alone. */
export function installRtcTap(): void {
  const sent: { channel: RTCDataChannel; bytes: Uint8Array }[] = []
  const original = RTCDataChannel.prototype.send
  const tap = {
    on: false,
    sent,
    send(i: number, bytes: number[]) {
      const at = sent[i]
      if (at === undefined) throw new Error(`no recorded message ${i}`)
      original.call(at.channel, new Uint8Array(bytes))
    },
  }
  RTCDataChannel.prototype.send = function (this: RTCDataChannel, data: unknown) {
    if (tap.on && sent.length < 10_000) {
      const copy =
        data instanceof ArrayBuffer
          ? new Uint8Array(data.slice(0))
          : ArrayBuffer.isView(data)
            ? new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength))
            : undefined
      if (copy !== undefined) sent.push({ channel: this, bytes: copy })
    }
    return Reflect.apply(original, this, [data])
  } as typeof RTCDataChannel.prototype.send
  window.__rtcTap = tap
}

/** Link frames the page sent on one data channel; `index` names a recorded message on that channel. */
export interface Tapped {
  index: number
  frames: Uint8Array[]
}

/** Turns the page's tap on (clearing what it holds) or off. */
export async function tapRecording(page: Page, on: boolean): Promise<void> {
  await page.evaluate((v) => {
    const t = window.__rtcTap
    if (t === undefined) throw new Error('the RTC tap is not installed')
    if (v) t.sent.length = 0
    t.on = v
  }, on)
}

/**
 * What the page sent while the tap was on, as link frames. libp2p may write a message's length
 * and its body in separate sends, so each channel's bytes are joined before they are read.
 */
export async function tapped(page: Page): Promise<Tapped[]> {
  const raw = await page.evaluate(() => {
    const channels: RTCDataChannel[] = []
    return (window.__rtcTap?.sent ?? []).map((s) => {
      if (!channels.includes(s.channel)) channels.push(s.channel)
      return { channel: channels.indexOf(s.channel), bytes: Array.from(s.bytes) }
    })
  })
  const out: Tapped[] = []
  for (const channel of new Set(raw.map((r) => r.channel))) {
    const mine = raw.map((r, index) => ({ ...r, index })).filter((r) => r.channel === channel)
    const joined = Uint8Array.from(mine.flatMap((r) => r.bytes))
    for (let at = 0; at < joined.length; ) {
      const [len, start] = readVarint(joined, at)
      if (len < 0 || start + len > joined.length) break
      const frames = linkFrames(joined.subarray(at, start + len))
      if (frames !== undefined) out.push({ index: mine[0]?.index ?? 0, frames })
      at = start + len
    }
  }
  return out
}

/** Sends `frames` as one message on the data channel that carried recorded message `index`. */
export async function tapSend(page: Page, index: number, frames: Uint8Array[]): Promise<void> {
  await page.evaluate(([i, bytes]) => window.__rtcTap?.send(i, bytes), [index, Array.from(dataChannelMessage(frames))] as const)
}

function readVarint(b: Uint8Array, at: number): [number, number] {
  let v = 0
  let shift = 0
  for (let i = at; i < b.length && shift < 35; i++) {
    const byte = b[i] ?? 0
    v += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) return [v, i + 1]
    shift += 7
  }
  return [-1, b.length]
}

function varint(n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}

/** The link frames in one data-channel message, or undefined when it holds no whole frames. */
export function linkFrames(message: Uint8Array): Uint8Array[] | undefined {
  const [len, start] = readVarint(message, 0)
  if (len < 0 || start + len !== message.length) return undefined
  let data: Uint8Array | undefined
  for (let at = start; at < message.length; ) {
    const [tag, next] = readVarint(message, at)
    if (tag < 0) return undefined
    if ((tag & 7) === 0) at = readVarint(message, next)[1]
    else if ((tag & 7) === 2) {
      const [n, from] = readVarint(message, next)
      if (tag >> 3 === 2) data = message.subarray(from, from + n)
      at = from + n
    } else return undefined
  }
  if (data === undefined || data.length === 0) return undefined
  const frames: Uint8Array[] = []
  for (let at = 0; at < data.length; ) {
    if (at + 4 > data.length) return undefined
    const n = new DataView(data.buffer, data.byteOffset + at, 4).getUint32(0, false)
    if (at + 4 + n > data.length) return undefined
    frames.push(data.slice(at + 4, at + 4 + n))
    at += 4 + n
  }
  return frames
}

/** A data-channel message carrying `frames`, as our peer links and libp2p would write it. */
export function dataChannelMessage(frames: Uint8Array[]): Uint8Array {
  const data: number[] = []
  for (const f of frames) data.push((f.length >>> 24) & 0xff, (f.length >>> 16) & 0xff, (f.length >>> 8) & 0xff, f.length & 0xff, ...f)
  const body = [0x12, ...varint(data.length), ...data]
  return Uint8Array.from([...varint(body.length), ...body])
}
