/**
 * Re-sent consensus messages on gossip: gossipsub drops a publish of bytes it has seen, so a
 * second publish of the same message must go out as something new, and every receiver must read
 * the same message from it. (node-network.test.ts checks the effect: a chain that lost quorum
 * goes on once its validators are back.)
 */
import { consensusMessageCodec, encode, signVote, VoteType } from '@loopchain/core'
import { describe, expect, it } from 'vitest'
import {
  ConsensusPublisher,
  checkConsensusGossip,
  consensusMessageBytes,
  decodeConsensusMessage,
  RESEND_FORWARD_MIN_MS,
  RESEND_MARK,
  ResendFilter,
} from '../src/p2p/consensus-gossip.js'
import { testKey } from './fixtures/test-chain.js'

const v = testKey('resend validator')
const vote = (round: number) =>
  encode(consensusMessageCodec, {
    kind: 'vote',
    vote: signVote(
      { type: VoteType.Prevote, height: 5, round, blockHash: new Uint8Array(32), networkId: 9, validator: v.address },
      v.secretKey,
    ),
  })

describe('re-sent consensus messages', () => {
  it('go out as new payloads that carry the same message; a first send goes out as it is', () => {
    const out: { topic: string; payload: Uint8Array }[] = []
    const p = new ConsensusPublisher((topic, payload) => out.push({ topic, payload }))
    const a = vote(0)
    const b = vote(1)
    p.send(a)
    p.send(b)
    p.send(a)
    p.send(a)
    expect(out.map((o) => o.topic)).toEqual(['vote', 'vote', 'vote', 'vote'])
    expect(out[0]?.payload).toBe(a)
    expect(out[1]?.payload).toBe(b)
    const [r1, r2] = [out[2]?.payload as Uint8Array, out[3]?.payload as Uint8Array]
    expect(r1[0]).toBe(RESEND_MARK)
    // Each re-send differs from the others (gossip would drop a repeat) but carries the same message.
    expect(Buffer.from(r1).equals(Buffer.from(r2))).toBe(false)
    for (const r of [r1, r2]) expect(Buffer.from(consensusMessageBytes(r)).equals(Buffer.from(a))).toBe(true)
    // A plain payload is its own message; the same view comes back for the same payload (decoded once).
    expect(consensusMessageBytes(a)).toBe(a)
    expect(consensusMessageBytes(r1)).toBe(consensusMessageBytes(r1))
    expect(decodeConsensusMessage(consensusMessageBytes(r1))).toEqual(decodeConsensusMessage(a))
  })

  it('pass the gossip checks as the message would, and a garbled one is still refused', () => {
    const ctx = {
      networkId: 9,
      committedHeight: 4,
      validatorsAt: () => ({ validators: [{ address: v.address, publicKey: v.publicKey, power: 1 }] }),
    }
    const out: Uint8Array[] = []
    const p = new ConsensusPublisher((_t, payload) => out.push(payload))
    const a = vote(0)
    p.send(a)
    p.send(a)
    expect(checkConsensusGossip(a, 'vote', ctx)).toBeUndefined()
    expect(checkConsensusGossip(out[1] as Uint8Array, 'vote', ctx)).toBeUndefined()
    const garbled = Uint8Array.from(out[1] as Uint8Array)
    garbled[5] = 0x7f // the message's tag byte
    expect(checkConsensusGossip(garbled, 'vote', ctx)?.code).toBe('UNDECODABLE')
  })
})

describe('re-sends passed on', () => {
  it('a re-send of a message accepted less than a second ago is dropped, however many counters wrap it; the first send and other messages are not', () => {
    let now = 1_000_000
    const filter = new ResendFilter(() => now)
    const out: Uint8Array[] = []
    const p = new ConsensusPublisher((_t, payload) => out.push(payload))
    const [a, b] = [vote(0), vote(1)]
    for (let i = 0; i < 4; i++) p.send(a)
    const [first, ...resent] = out as [Uint8Array, ...Uint8Array[]]
    // Nothing accepted yet: a re-send is checked like any message.
    expect(filter.repeats(resent[0] as Uint8Array)).toBe(false)
    filter.accept(first)
    now += 10
    // Every counter: the same message, dropped.
    for (const r of resent) expect(filter.repeats(r)).toBe(true)
    // A first send is never held back (gossip drops repeats of the same bytes by itself), nor is another message.
    expect(filter.repeats(first)).toBe(false)
    p.send(b)
    p.send(b)
    expect(filter.repeats(out[out.length - 1] as Uint8Array)).toBe(false)
    // Past the window a re-send goes on again, and starts the window anew.
    now += RESEND_FORWARD_MIN_MS
    expect(filter.repeats(resent[0] as Uint8Array)).toBe(false)
    filter.accept(resent[0] as Uint8Array)
    now += 500
    expect(filter.repeats(resent[1] as Uint8Array)).toBe(true)
  })
})

describe('decisions on gossip', () => {
  it('one for the height this node has committed (or below) is dropped unforwarded, whatever block it carries', () => {
    const ctx = {
      networkId: 9,
      committedHeight: 4,
      validatorsAt: () => ({ validators: [{ address: v.address, publicKey: v.publicKey, power: 1 }] }),
    }
    const decision = (height: number) =>
      encode(consensusMessageCodec, {
        kind: 'decision',
        decision: {
          block: new Uint8Array(1000).fill(7), // any bytes
          commit: { height, round: 0, blockHash: new Uint8Array(32).fill(1), signatures: [{ index: 0, signature: new Uint8Array(64) }] },
        },
      })
    for (const h of [3, 4]) expect(checkConsensusGossip(decision(h), 'vote', ctx)).toMatchObject({ action: 'ignore', code: 'STALE' })
    // The next height's decision is how a node learns of a commit it missed: delivered.
    expect(checkConsensusGossip(decision(5), 'vote', ctx)).toBeUndefined()
    // Unless its block is not the one its commit names: refused, and its sender blamed.
    const seen: string[] = []
    const strict = {
      ...ctx,
      blockMatches: (m: { kind: string }) => {
        seen.push(m.kind)
        return false
      },
    }
    expect(checkConsensusGossip(decision(5), 'vote', strict)).toMatchObject({ action: 'reject', code: 'BAD_BLOCK' })
    expect(seen).toEqual(['decision'])
    // A stale one is dropped before its block is looked at.
    expect(checkConsensusGossip(decision(4), 'vote', strict)).toMatchObject({ action: 'ignore', code: 'STALE' })
    expect(seen).toEqual(['decision'])
  })
})
