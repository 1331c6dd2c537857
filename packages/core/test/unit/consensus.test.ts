/**
 * The consensus state machine, driven input by input: rotation, message formats, signature
 * checks, duplicate and conflicting votes, locking, the WAL, catch-up and the production policy.
 * Signatures are real ed25519 (the core's pure-JS provider).
 */
import { describe, expect, it } from 'vitest'
import { decode, encode } from '../../src/codec/codec.js'
import { toHex, utf8 } from '../../src/codec/hex.js'
import {
  blockProductionDue,
  type Consensus,
  type ConsensusConfig,
  ConsensusError,
  type ConsensusInput,
  type ConsensusMessage,
  type ConsensusOutput,
  consensusMessageCodec,
  createConsensus,
  MAX_FUTURE_BLOCK_BYTES,
  MAX_FUTURE_MESSAGES,
  MAX_PROPOSAL_LOOKAHEAD,
  MAX_SCHEDULE_LENGTH,
  proposalSignBytes,
  proposerIndex,
  proposerSchedule,
  signProposal,
  verifyEvidence,
  type WalEntry,
} from '../../src/consensus/index.js'
import { fastVoteSignBytes } from '../../src/consensus/sign-bytes.js'
import { sha256, ZERO_HASH } from '../../src/crypto/hash.js'
import { keyPairFromSecret } from '../../src/crypto/keys.js'
import { nobleCrypto } from '../../src/crypto/provider.js'
import { makeValidatorSet, type ValidatorSet } from '../../src/ledger/validators.js'
import { signVote, type Vote, VoteType, verifyCommit, voteSignBytes } from '../../src/ledger/vote.js'

const NET = 1
const keys = [0, 1, 2, 3].map((i) => keyPairFromSecret(sha256(utf8(`consensus-unit-${i}`))))
const set: ValidatorSet = makeValidatorSet(keys.map((k) => ({ address: k.address, publicKey: k.publicKey, power: 1 })))
/** Keys in validator-set order, so `v[i]` is the validator at index i. */
const v = set.validators.map((val) => keys.find((k) => k.address === val.address) as (typeof keys)[number])
const TIMEOUTS = {
  proposeMs: 1000,
  proposeDeltaMs: 100,
  prevoteMs: 500,
  prevoteDeltaMs: 50,
  precommitMs: 500,
  precommitDeltaMs: 50,
  rebroadcastMs: 3000,
  rebroadcastDeltaMs: 300,
}

function machine(i: number, wal: WalEntry[] = [], extra: Partial<ConsensusConfig> = {}): Consensus {
  const k = v[i] as (typeof v)[number]
  return createConsensus(
    {
      networkId: NET,
      signer: { address: k.address, secretKey: k.secretKey },
      crypto: nobleCrypto,
      hashBlock: sha256,
      timeouts: TIMEOUTS,
      ...extra,
    },
    wal,
  )
}

function voteMsg(i: number, type: Vote['type'], height: number, round: number, blockHash: Uint8Array): ConsensusMessage {
  const k = v[i] as (typeof v)[number]
  return { kind: 'vote', vote: signVote({ networkId: NET, type, height, round, blockHash, validator: k.address }, k.secretKey) }
}

function proposalMsg(i: number, height: number, round: number, block: Uint8Array, validRound = -1): ConsensusMessage {
  const k = v[i] as (typeof v)[number]
  return {
    kind: 'proposal',
    proposal: signProposal(
      { networkId: NET, height, round, blockHash: sha256(block), validRound, proposer: k.address },
      block,
      k.secretKey,
    ),
  }
}

const msg = (message: ConsensusMessage, from = 'peer'): ConsensusInput => ({ type: 'message', message, from })
const start = (height = 1): ConsensusInput => ({ type: 'start-height', height, validators: set })
const of = <T extends ConsensusOutput['type']>(outs: ConsensusOutput[], type: T) =>
  outs.filter((o): o is Extract<ConsensusOutput, { type: T }> => o.type === type)
const votesOut = (outs: ConsensusOutput[]) => of(outs, 'broadcast').flatMap((o) => (o.message.kind === 'vote' ? [o.message.vote.vote] : []))

/** Feeds an input and answers the machine's block questions (every block valid) until it is quiet. */
function feed(m: Consensus, input: ConsensusInput, valid = true): ConsensusOutput[] {
  const all: ConsensusOutput[] = []
  const queue = [input]
  while (queue.length > 0) {
    const outs = m.handle(queue.shift() as ConsensusInput)
    all.push(...outs)
    for (const o of outs) {
      if (o.type === 'validate-block') queue.push({ type: 'block-validity', height: o.height, blockHash: o.blockHash, valid })
      if (o.type === 'request-block')
        queue.push({ type: 'block', height: o.height, round: o.round, block: utf8(`block ${o.height}/${o.round}`) })
    }
  }
  return all
}

/** Runs four machines on a perfect network until every one has committed `heights` blocks. */
function network(machines: Consensus[], heights: number) {
  const commits: Extract<ConsensusOutput, { type: 'commit' }>[][] = machines.map(() => [])
  const outputs: ConsensusOutput[][] = machines.map(() => [])
  const queue: { to: number; input: ConsensusInput }[] = machines.map((_, i) => ({ to: i, input: start() }))
  while (queue.length > 0) {
    const { to, input } = queue.shift() as { to: number; input: ConsensusInput }
    const outs = feed(machines[to] as Consensus, input)
    outputs[to]?.push(...outs)
    for (const o of outs) {
      if (o.type === 'broadcast') {
        for (let j = 0; j < machines.length; j++) if (j !== to) queue.push({ to: j, input: msg(o.message, String(to)) })
      }
      if (o.type === 'commit') {
        commits[to]?.push(o)
        if (o.height < heights) queue.push({ to, input: start(o.height + 1) })
      }
    }
  }
  return { commits, outputs }
}

/** The index of the validator proposing at (height, round). */
const leader = (height: number, round: number) => proposerIndex(set, height, round)
/** Some validator other than the leader of (height, round) and not `not`. */
const follower = (height: number, round: number, not = -1) => [0, 1, 2, 3].find((i) => i !== leader(height, round) && i !== not) as number

describe('proposer rotation', () => {
  it('with equal powers rotates by one slot per height and per round', () => {
    for (let h = 1; h < 20; h++) for (let r = 0; r < 5; r++) expect(proposerIndex(set, h, r)).toBe((h + r) % 4)
  })

  it('gives each validator slots in proportion to its power, interleaved', () => {
    const weighted = makeValidatorSet(
      keys.map((k, i) => ({ address: k.address, publicKey: k.publicKey, power: [2, 1, 1, 1][i] as number })),
    )
    const s = proposerSchedule(weighted)
    expect(s.length).toBe(5)
    const heavy = weighted.validators.findIndex((x) => x.power === 2)
    expect(s.filter((x) => x === heavy).length).toBe(2)
    for (let i = 0; i < s.length; i++) expect(s[i] === heavy && s[(i + 1) % s.length] === heavy).toBe(false)
  })

  it('scales huge powers down to a bounded schedule that still names everyone', () => {
    const big = makeValidatorSet(
      keys.map((k, i) => ({ address: k.address, publicKey: k.publicKey, power: [2 ** 40, 7, 1, 2 ** 30][i] as number })),
    )
    const s = proposerSchedule(big)
    expect(s.length).toBeLessThanOrEqual(MAX_SCHEDULE_LENGTH + 4)
    expect(new Set(s).size).toBe(4)
  })
})

describe('wire format', () => {
  it('round-trips proposals (including validRound -1), votes and decisions', () => {
    const p = proposalMsg(0, 5, 2, utf8('a block'))
    const p2 = proposalMsg(0, 5, 3, utf8('a block'), 2)
    const vo = voteMsg(1, VoteType.Precommit, 5, 2, sha256(utf8('a block')))
    const d: ConsensusMessage = {
      kind: 'decision',
      decision: {
        block: utf8('x'),
        commit: { height: 5, round: 2, blockHash: sha256(utf8('x')), signatures: [{ index: 1, signature: new Uint8Array(64).fill(7) }] },
      },
    }
    for (const m of [p, p2, vo, d]) expect(decode(consensusMessageCodec, encode(consensusMessageCodec, m))).toEqual(m)
  })

  it('keeps its bytes: golden encodings of a vote, a proposal and proposal sign bytes', () => {
    const golden = sha256(utf8('golden'))
    const k0 = keyPairFromSecret(sha256(utf8('consensus-unit-0')))
    expect(k0.address).toBe('hx4712c8dd3d5a55290856f0cca0eee57965cae29f')
    const p = { networkId: 1, height: 10, round: 2, blockHash: golden, validRound: -1, proposer: k0.address }
    expect(toHex(proposalSignBytes(p))).toBe('19c583d2ed5a76ae96e387c5d6cc3bc7f482f63961d54da6ee5a1b4742317836')
    const vote: ConsensusMessage = {
      kind: 'vote',
      vote: {
        vote: { networkId: 1, type: VoteType.Precommit, height: 300, round: 1, blockHash: golden, validator: k0.address },
        signature: new Uint8Array(64).fill(0x11),
      },
    }
    expect(toHex(encode(consensusMessageCodec, vote))).toBe(`020102ac0201${toHex(golden)}00${k0.address.slice(2)}${'11'.repeat(64)}`)
    const proposal: ConsensusMessage = {
      kind: 'proposal',
      proposal: { proposal: { ...p, validRound: 1 }, signature: new Uint8Array(64).fill(0x22), block: utf8('golden') },
    }
    expect(toHex(encode(consensusMessageCodec, proposal))).toBe(
      `01010a02${toHex(golden)}0200${k0.address.slice(2)}${'22'.repeat(64)}06${toHex(utf8('golden'))}`,
    )
    expect(toHex(golden)).toBe('dd56de4137951d9c92681b03416ec15f886b4482a27e3a517d32f085244cbe5d')
  })

  it('refuses an unknown message tag', () => {
    expect(() => decode(consensusMessageCodec, new Uint8Array([9]))).toThrow(/tag 9/)
  })

  it('computes vote sign bytes exactly as voteSignBytes does', () => {
    for (const [networkId, height, round] of [
      [0, 0, 0],
      [1, 127, 128],
      [300, 2 ** 31, 16_383],
      [2 ** 53 - 1, 2 ** 40 + 5, 1],
    ] as const) {
      for (const type of [VoteType.Prevote, VoteType.Precommit]) {
        for (const blockHash of [ZERO_HASH, sha256(utf8(`${height}`))]) {
          const vote: Vote = { networkId, type, height, round, blockHash, validator: keys[2]?.address as Vote['validator'] }
          expect(fastVoteSignBytes(vote, sha256)).toEqual(voteSignBytes(vote))
        }
      }
    }
  })
})

describe('a perfect network of four', () => {
  it('commits the same blocks everywhere with certificates that verify, writing the WAL before each send', () => {
    const { commits, outputs } = network(
      [0, 1, 2, 3].map((i) => machine(i)),
      3,
    )
    for (const c of commits) expect(c.map((x) => x.height)).toEqual([1, 2, 3])
    for (let h = 0; h < 3; h++) {
      const hashes = new Set(commits.map((c) => toHex(c[h]?.blockHash ?? new Uint8Array())))
      expect(hashes.size).toBe(1)
      const c = commits[0]?.[h]
      if (!c) throw new Error('missing commit')
      expect(c.round).toBe(0)
      expect(verifyCommit(c.commit, { networkId: NET, height: c.height, blockHash: c.blockHash }, set, nobleCrypto)).toBeGreaterThanOrEqual(
        3,
      )
    }
    // Every own vote and proposal is written to the WAL before it is broadcast.
    outputs.forEach((outs, i) => {
      const written = new Set<unknown>()
      for (const o of outs) {
        if (o.type === 'wal-write')
          written.add(o.entry.kind === 'vote' ? o.entry.vote : o.entry.kind === 'proposal' ? o.entry.proposal : undefined)
        if (o.type === 'broadcast' && o.message.kind === 'vote' && o.message.vote.vote.validator === v[i]?.address) {
          expect(written.has(o.message.vote)).toBe(true)
        }
        if (o.type === 'broadcast' && o.message.kind === 'proposal') expect(written.has(o.message.proposal)).toBe(true)
      }
    })
  })

  it('verifies each vote signature at most once per node: at most 2(n-1)+1 per height', () => {
    const ms = [0, 1, 2, 3].map((i) => machine(i))
    network(ms, 3)
    for (const m of ms) expect(m.status().verifications).toBeLessThanOrEqual(3 * (2 * 3 + 1))
  })
})

describe('message checks', () => {
  const block = utf8('block A')
  const hash = sha256(block)

  it('rejects a vote with a bad signature (penalised) and does not count it', () => {
    const m = machine(follower(1, 0))
    feed(m, start())
    const good = voteMsg(leader(1, 0), VoteType.Prevote, 1, 0, hash)
    if (good.kind !== 'vote') throw new Error()
    const sig = good.vote.signature.slice()
    sig[3] = (sig[3] as number) ^ 1
    const outs = feed(m, msg({ kind: 'vote', vote: { vote: good.vote.vote, signature: sig } }))
    const rej = of(outs, 'rejected')
    expect(rej).toHaveLength(1)
    expect(rej[0]?.error).toBeInstanceOf(ConsensusError)
    expect(rej[0]?.error.code).toBe('BAD_SIGNATURE')
    expect(rej[0]?.error.penalize).toBe(true)
    // The genuine vote still counts afterwards (it was not mistaken for a duplicate).
    const before = m.status().verifications
    expect(of(feed(m, msg(good)), 'rejected')).toHaveLength(0)
    expect(m.status().verifications).toBe(before + 1)
  })

  it('tells whom it heard at the height in progress: a proposal, its own vote, a vote of another; not a forged one; a new height starts with no one', () => {
    const me = follower(1, 0)
    const other = follower(1, 0, me)
    const inSetOrder = (is: number[]) => set.validators.filter((_, i) => is.includes(i)).map((x) => x.address)
    const m = machine(me)
    feed(m, start())
    expect(m.heard()).toEqual([])
    // The leader's proposal, and this validator's prevote for it.
    const outs = feed(m, msg(proposalMsg(leader(1, 0), 1, 0, utf8('block 1/0'))))
    expect(votesOut(outs).map((x) => x.validator)).toEqual([v[me]?.address])
    expect(m.heard()).toEqual(inSetOrder([leader(1, 0), me]))
    // A vote in another's name with a broken signature is not hearing from it.
    const good = voteMsg(other, VoteType.Prevote, 1, 0, sha256(utf8('block 1/0')))
    if (good.kind !== 'vote') throw new Error()
    const sig = good.vote.signature.slice()
    sig[0] = (sig[0] as number) ^ 1
    feed(m, msg({ kind: 'vote', vote: { vote: good.vote.vote, signature: sig } }))
    expect(m.heard()).toEqual(inSetOrder([leader(1, 0), me]))
    feed(m, msg(good))
    expect(m.heard()).toEqual(inSetOrder([leader(1, 0), me, other]))
    feed(m, start(2))
    expect(m.heard()).toEqual([])
  })

  it('ignores a duplicate vote without verifying it again', () => {
    const m = machine(0)
    feed(m, start())
    const vote = voteMsg(1, VoteType.Prevote, 1, 0, hash)
    feed(m, msg(vote))
    const n = m.status().verifications
    expect(feed(m, msg(vote))).toEqual([])
    expect(m.status().verifications).toBe(n)
  })

  it('keeps conflicting votes of one validator as evidence', () => {
    const m = machine(0)
    feed(m, start())
    const a = voteMsg(2, VoteType.Precommit, 1, 0, hash)
    const b = voteMsg(2, VoteType.Precommit, 1, 0, ZERO_HASH)
    feed(m, msg(a))
    const ev = of(feed(m, msg(b)), 'evidence')
    expect(ev).toHaveLength(1)
    const e = ev[0]?.evidence
    if (e?.kind !== 'conflicting-votes') throw new Error('expected conflicting votes')
    expect(e.first).toBe(a.kind === 'vote' ? a.vote : undefined)
    expect(e.second).toBe(b.kind === 'vote' ? b.vote : undefined)
    // Reported once.
    expect(of(feed(m, msg(b)), 'evidence')).toHaveLength(0)
    // Anyone can check it against the validator set; a doctored copy fails.
    if (!e) throw new Error()
    expect(verifyEvidence(e, NET, set, nobleCrypto)).toBe(2)
    const doctored = { ...e, second: { ...e.second, vote: { ...e.second.vote, round: 1 } } }
    expect(() => verifyEvidence(doctored, NET, set, nobleCrypto)).toThrow(/same slot/)
    const forged = { ...e, second: { ...e.second, vote: { ...e.second.vote, blockHash: sha256(utf8('other')) } } }
    expect(() => verifyEvidence(forged, NET, set, nobleCrypto)).toThrow(/signature/)
  })

  it('reports a proposer that proposes two blocks in one round', () => {
    const m = machine(follower(1, 0))
    feed(m, start())
    feed(m, msg(proposalMsg(leader(1, 0), 1, 0, utf8('one'))))
    const ev = of(feed(m, msg(proposalMsg(leader(1, 0), 1, 0, utf8('two')))), 'evidence')
    expect(ev[0]?.evidence.kind).toBe('conflicting-proposals')
    if (!ev[0]) throw new Error()
    expect(verifyEvidence(ev[0].evidence, NET, set, nobleCrypto)).toBe(leader(1, 0))
  })

  it('rejects a proposal from the wrong proposer, with bytes that do not match its hash, or for another network', () => {
    const m = machine(follower(1, 0))
    feed(m, start())
    const wrong = follower(1, 0, follower(1, 0))
    expect(of(feed(m, msg(proposalMsg(wrong, 1, 0, block))), 'rejected')[0]?.error.code).toBe('WRONG_PROPOSER')
    const p = proposalMsg(leader(1, 0), 1, 0, block)
    if (p.kind !== 'proposal') throw new Error()
    const swapped: ConsensusMessage = { kind: 'proposal', proposal: { ...p.proposal, block: utf8('block B') } }
    expect(of(feed(m, msg(swapped)), 'rejected')[0]?.error.code).toBe('BLOCK_HASH_MISMATCH')
    const k = v[leader(1, 0)] as (typeof v)[number]
    const other = signProposal(
      { networkId: 99, height: 1, round: 0, blockHash: hash, validRound: -1, proposer: k.address },
      block,
      k.secretKey,
    )
    expect(of(feed(m, msg({ kind: 'proposal', proposal: other })), 'rejected')[0]?.error.code).toBe('WRONG_NETWORK')
  })

  it('refuses signed block bytes that are not a block (MALFORMED_BLOCK) and goes on, also when they wait for the next height', () => {
    // The application's hash throws on bytes it cannot decode, as a full node's does.
    const hashBlock = (b: Uint8Array) => {
      if (b[0] === 0xff) throw new Error('not a block')
      return sha256(b)
    }
    const junk = new Uint8Array([0xff, 1, 2])
    const m = machine(follower(1, 0, leader(2, 0)), [], { hashBlock })
    feed(m, start())
    // At the current height: refused, and the round's real proposal is still taken.
    expect(of(feed(m, msg(proposalMsg(leader(1, 0), 1, 0, junk))), 'rejected')[0]?.error.code).toBe('MALFORMED_BLOCK')
    expect(votesOut(feed(m, msg(proposalMsg(leader(1, 0), 1, 0, block))))).toHaveLength(1)
    // For the next height: refused at once (a block's bytes need no state to check), not held;
    // the height then starts with its own outputs, and its real proposal is taken.
    expect(of(feed(m, msg(proposalMsg(leader(2, 0), 2, 0, junk))), 'rejected')[0]?.error.code).toBe('MALFORMED_BLOCK')
    const outs = m.handle(start(2))
    expect(of(outs, 'rejected')).toEqual([])
    expect(of(outs, 'schedule-timeout').map((o) => o.timeout.height)).toContain(2)
    expect(votesOut(feed(m, msg(proposalMsg(leader(2, 0), 2, 0, utf8('block at 2')))))).toHaveLength(1)
  })

  it('holds one copy of a message for a later height: copies cannot crowd out the others', () => {
    const m = machine(follower(1, 0))
    feed(m, start())
    const copy = msg(voteMsg(leader(2, 0), VoteType.Prevote, 2, 0, sha256(utf8('some block'))))
    for (let i = 0; i < MAX_FUTURE_MESSAGES + 10; i++) m.handle(copy)
    // A proposal with other bytes under a signed proposal's hash is refused, and does not take
    // the place of the real one, which arrives after it.
    const real = proposalMsg(leader(2, 0), 2, 0, utf8('block at 2'))
    if (real.kind !== 'proposal') throw new Error('fixture')
    const swapped: ConsensusMessage = { kind: 'proposal', proposal: { ...real.proposal, block: utf8('other bytes') } }
    expect(of(feed(m, msg(swapped)), 'rejected')[0]?.error.code).toBe('BLOCK_HASH_MISMATCH')
    expect(feed(m, msg(real))).toEqual([])
    const asked = of(m.handle(start(2)), 'validate-block')
    expect(asked.map((o) => o.block)).toEqual([utf8('block at 2')])
  })

  it('keeps at most MAX_FUTURE_BLOCK_BYTES of blocks from messages for a later height', () => {
    const m = machine(follower(1, 0))
    feed(m, start())
    // Signed proposals for height 2, one per round it will look at first, 16 MiB of block each:
    // more than the bound holds.
    const size = 16 * 1024 * 1024
    const rounds = MAX_PROPOSAL_LOOKAHEAD + 1
    expect(rounds * size).toBeGreaterThan(MAX_FUTURE_BLOCK_BYTES)
    for (let r = 0; r < rounds; r++) {
      const big = new Uint8Array(size)
      big[0] = r
      expect(feed(m, msg(proposalMsg(leader(2, r), 2, r, big)))).toEqual([])
    }
    // When height 2 starts, only those that fitted are there to validate.
    const asked = of(m.handle(start(2)), 'validate-block')
    expect(asked).toHaveLength(Math.floor(MAX_FUTURE_BLOCK_BYTES / size))
  })

  it("keeps a later height's messages of its first rounds only: one validator's votes for thousands of rounds do not crowd out the others", () => {
    const m = machine(follower(2, 0))
    feed(m, start())
    const faulty = follower(2, 0, follower(2, 0))
    for (let r = 0; r < MAX_FUTURE_MESSAGES + 10; r++) m.handle(msg(voteMsg(faulty, VoteType.Prevote, 2, r, sha256(utf8('some block')))))
    expect(feed(m, msg(proposalMsg(leader(2, 0), 2, 0, utf8('block at 2'))))).toEqual([])
    expect(of(m.handle(start(2)), 'validate-block').map((o) => o.block)).toEqual([utf8('block at 2')])
  })

  it(`keeps proposals of at most ${MAX_PROPOSAL_LOOKAHEAD} rounds ahead: each may carry megabytes`, () => {
    const m = machine(follower(1, 0))
    feed(m, start())
    const asked = (r: number) => of(feed(m, msg(proposalMsg(leader(1, r), 1, r, utf8(`block of round ${r}`)))), 'validate-block').length
    expect(asked(MAX_PROPOSAL_LOOKAHEAD + 1)).toBe(0)
    expect(asked(MAX_PROPOSAL_LOOKAHEAD)).toBe(1)
  })

  it('rejects a vote from outside the validator set', () => {
    const m = machine(0)
    feed(m, start())
    const stranger = keyPairFromSecret(sha256(utf8('stranger')))
    const vote = signVote(
      { networkId: NET, type: VoteType.Prevote, height: 1, round: 0, blockHash: hash, validator: stranger.address },
      stranger.secretKey,
    )
    expect(of(feed(m, msg({ kind: 'vote', vote })), 'rejected')[0]?.error.code).toBe('UNKNOWN_VALIDATOR')
  })
})

describe('rounds and locks', () => {
  it('prevotes a valid proposal, nil for an invalid one, and nil when the proposer is silent', () => {
    const a = machine(follower(1, 0))
    feed(a, start())
    expect(votesOut(feed(a, msg(proposalMsg(leader(1, 0), 1, 0, utf8('ok')))))[0]?.blockHash).toEqual(sha256(utf8('ok')))
    const b = machine(follower(1, 0))
    feed(b, start())
    expect(votesOut(feed(b, msg(proposalMsg(leader(1, 0), 1, 0, utf8('bad'))), false))[0]?.blockHash).toEqual(ZERO_HASH)
    const c = machine(follower(1, 0))
    feed(c, start())
    expect(votesOut(feed(c, { type: 'timeout', timeout: { kind: 'propose', height: 1, round: 0 } }))[0]?.blockHash).toEqual(ZERO_HASH)
  })

  it('grows timeouts linearly per round and resets them at a new height', () => {
    const m = machine(follower(1, 0))
    const t0 = of(feed(m, start()), 'schedule-timeout').find((o) => o.timeout.kind === 'propose')
    expect(t0?.delayMs).toBe(1000)
    feed(m, { type: 'timeout', timeout: { kind: 'propose', height: 1, round: 0 } })
    const others = [0, 1, 2, 3].filter((i) => i !== follower(1, 0))
    // Two more nil prevotes: a prevote quorum of anything starts the prevote timer.
    for (const i of others.slice(0, 2)) feed(m, msg(voteMsg(i, VoteType.Prevote, 1, 0, ZERO_HASH)))
    // Nil prevote quorum: precommit nil; nil precommit quorum: next round at once.
    let outs: ConsensusOutput[] = []
    for (const i of others.slice(0, 2)) outs = outs.concat(feed(m, msg(voteMsg(i, VoteType.Precommit, 1, 0, ZERO_HASH))))
    expect(m.status().round).toBe(1)
    expect(of(outs, 'schedule-timeout').find((o) => o.timeout.kind === 'propose' && o.timeout.round === 1)?.delayMs).toBe(1100)
  })

  it('a weak quorum (> 1/3) at a later round pulls a node forward', () => {
    const m = machine(0)
    feed(m, start())
    feed(m, msg(voteMsg(1, VoteType.Prevote, 1, 5, ZERO_HASH)))
    expect(m.status().round).toBe(0)
    feed(m, msg(voteMsg(2, VoteType.Prevote, 1, 5, ZERO_HASH)))
    expect(m.status().round).toBe(5)
  })

  /** Drives node `me` to lock on block A at round 0 of height 1. Returns the machine and its WAL. */
  function lockedOnA(me: number, extra: Partial<ConsensusConfig> = {}) {
    const m = machine(me, [], extra)
    const wal: WalEntry[] = []
    const record = (outs: ConsensusOutput[]) => {
      for (const o of outs) if (o.type === 'wal-write') wal.push(o.entry)
      return outs
    }
    const A = utf8('block A')
    record(feed(m, start()))
    record(feed(m, msg(proposalMsg(leader(1, 0), 1, 0, A))))
    const others = [0, 1, 2, 3].filter((i) => i !== me)
    let outs: ConsensusOutput[] = []
    for (const i of others.slice(0, 2)) outs = outs.concat(record(feed(m, msg(voteMsg(i, VoteType.Prevote, 1, 0, sha256(A))))))
    // Polka for A: the lock is written to the WAL before the precommit goes out.
    const lockAt = outs.findIndex((o) => o.type === 'wal-write' && o.entry.kind === 'lock')
    const sendAt = outs.findIndex(
      (o) => o.type === 'broadcast' && o.message.kind === 'vote' && o.message.vote.vote.type === VoteType.Precommit,
    )
    expect(lockAt).toBeGreaterThanOrEqual(0)
    expect(lockAt).toBeLessThan(sendAt)
    expect(m.status().lockedRound).toBe(0)
    // Round 0 fails (precommits for nil from the others), so round 1 starts.
    for (const i of others.slice(0, 2)) record(feed(m, msg(voteMsg(i, VoteType.Precommit, 1, 0, ZERO_HASH))))
    record(feed(m, { type: 'timeout', timeout: { kind: 'precommit', height: 1, round: 0 } }))
    expect(m.status().round).toBe(1)
    return { m, wal, A, others }
  }

  it('a locked node prevotes nil for a different fresh block in a later round', () => {
    const me = follower(1, 1, leader(1, 0))
    const { m } = lockedOnA(me)
    const outs = feed(m, msg(proposalMsg(leader(1, 1), 1, 1, utf8('block B'))))
    expect(votesOut(outs)[0]?.blockHash).toEqual(ZERO_HASH)
  })

  it('with locking deliberately switched off, the same node prevotes the different block', () => {
    const me = follower(1, 1, leader(1, 0))
    const { m } = lockedOnA(me, { unsafeTestOnly: { ignoreLocks: true } })
    const outs = feed(m, msg(proposalMsg(leader(1, 1), 1, 1, utf8('block B'))))
    expect(votesOut(outs)[0]?.blockHash).toEqual(sha256(utf8('block B')))
  })

  it('a locked node accepts another block re-proposed with a polka from a round at or after its lock', () => {
    const me = follower(1, 2, leader(1, 0))
    const { m, others } = lockedOnA(me)
    const B = utf8('block B')
    // Round 1 saw a polka for B (which this node missed); round 2's leader re-proposes B with validRound 1.
    for (const i of others) feed(m, msg(voteMsg(i, VoteType.Prevote, 1, 1, sha256(B))))
    feed(m, { type: 'timeout', timeout: { kind: 'precommit', height: 1, round: 1 } })
    for (const i of others) feed(m, msg(voteMsg(i, VoteType.Precommit, 1, 1, ZERO_HASH)))
    expect(m.status().round).toBe(2)
    const outs = feed(m, msg(proposalMsg(leader(1, 2), 1, 2, B, 1)))
    expect(votesOut(outs)[0]?.blockHash).toEqual(sha256(B))
  })

  it('after a restart from its WAL, a node keeps its lock and re-sends its recorded votes instead of signing new ones', () => {
    const me = follower(1, 1, leader(1, 0))
    const { wal } = lockedOnA(me)
    const restarted = machine(me, wal)
    const outs = feed(restarted, start())
    expect(restarted.status().lockedRound).toBe(0)
    // It resumes at the round its WAL shows (0) and re-sends the recorded prevote for A on a propose timeout.
    const t = feed(restarted, { type: 'timeout', timeout: { kind: 'propose', height: 1, round: 0 } })
    const sent = votesOut([...outs, ...t]).filter((x) => x.type === VoteType.Prevote && x.round === 0)
    expect(sent[0]?.blockHash).toEqual(sha256(utf8('block A')))
    expect(of(t, 'wal-write')).toHaveLength(0)
    // Its lock's polka came back from the WAL too: a stalled round re-sends it to peers that missed it.
    const re = feed(restarted, { type: 'timeout', timeout: { kind: 'rebroadcast', height: 1, round: 0 } })
    const shown = votesOut(re).filter((x) => x.type === VoteType.Prevote && x.round === 0 && x.validator !== v[me]?.address)
    expect(shown.length).toBe(2)
    for (const x of shown) expect(x.blockHash).toEqual(sha256(utf8('block A')))
    // In round 1 it still refuses a fresh different block.
    feed(restarted, { type: 'timeout', timeout: { kind: 'precommit', height: 1, round: 0 } })
    const r1 = feed(restarted, msg(proposalMsg(leader(1, 1), 1, 1, utf8('block B'))))
    expect(votesOut(r1).find((x) => x.round === 1)?.blockHash).toEqual(ZERO_HASH)
  })
})

describe('catching up', () => {
  it('commits from a decision (block and certificate) and rejects a forged one', () => {
    const { commits } = network(
      [0, 1, 2, 3].map((i) => machine(i)),
      1,
    )
    const c = commits[0]?.[0]
    if (!c) throw new Error('no commit')
    const late = machine(0)
    feed(late, start())
    const forged = { ...c.commit, signatures: c.commit.signatures.map((s, i) => (i === 0 ? { ...s, signature: new Uint8Array(64) } : s)) }
    expect(of(feed(late, msg({ kind: 'decision', decision: { block: c.block, commit: forged } })), 'rejected')[0]?.error.code).toBe(
      'BAD_COMMIT',
    )
    const outs = feed(late, msg({ kind: 'decision', decision: { block: c.block, commit: c.commit } }))
    expect(of(outs, 'commit')[0]?.blockHash).toEqual(c.blockHash)
  })

  it('keeps messages of a later height until that height starts', () => {
    const m = machine(follower(2, 0))
    feed(m, start())
    expect(of(feed(m, msg(proposalMsg(leader(2, 0), 2, 0, utf8('h2')))), 'validate-block')).toHaveLength(0)
    const outs = m.handle(start(2))
    expect(of(outs, 'validate-block')).toHaveLength(1)
  })

  it('tells the driver when a peer sends a vote of an earlier height', () => {
    const m = machine(0)
    feed(m, start(5))
    const outs = feed(m, msg(voteMsg(1, VoteType.Prevote, 3, 0, ZERO_HASH), 'peer-7'))
    expect(of(outs, 'peer-behind')).toEqual([{ type: 'peer-behind', from: 'peer-7', validator: v[1]?.address, height: 3 }])
  })

  it('an observer without a key follows the votes and commits without sending anything', () => {
    const ms = [0, 1, 2, 3].map((i) => machine(i))
    const observer = createConsensus({ networkId: NET, crypto: nobleCrypto, hashBlock: sha256, timeouts: TIMEOUTS })
    feed(observer, start())
    const { outputs } = network(ms, 1)
    let committed = false
    outputs.forEach((outs) => {
      for (const o of outs) {
        if (o.type !== 'broadcast') continue
        const r = feed(observer, msg(o.message))
        expect(of(r, 'broadcast')).toHaveLength(0)
        if (of(r, 'commit').length > 0) committed = true
      }
    })
    expect(committed).toBe(true)
  })
})

describe('block production policy', () => {
  const policy = { minIntervalMs: 1000, emptyBlocks: false }
  it('produces as soon as transactions wait, but not before the minimum interval', () => {
    expect(blockProductionDue(policy, { pendingTxs: 3, lastCommitTimeMs: 10_000, nowMs: 10_500 })).toEqual({
      due: false,
      recheckAtMs: 11_000,
    })
    expect(blockProductionDue(policy, { pendingTxs: 3, lastCommitTimeMs: 10_000, nowMs: 11_000 })).toEqual({ due: true })
  })
  it('produces no empty blocks unless configured, then one per interval', () => {
    expect(blockProductionDue(policy, { pendingTxs: 0, lastCommitTimeMs: 0, nowMs: 60_000 })).toEqual({ due: false })
    const empty = { minIntervalMs: 1000, emptyBlocks: true, emptyBlockIntervalMs: 5000 }
    expect(blockProductionDue(empty, { pendingTxs: 0, lastCommitTimeMs: 0, nowMs: 2000 })).toEqual({ due: false, recheckAtMs: 5000 })
    expect(blockProductionDue(empty, { pendingTxs: 0, lastCommitTimeMs: 0, nowMs: 5000 })).toEqual({ due: true })
  })
})
