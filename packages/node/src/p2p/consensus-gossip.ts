/**
 * Gossip-time checks of consensus messages: the cheap tests that prove a proposal, vote or
 * decision invalid whatever this node's state, so gossipsub drops it before forwarding it and
 * lowers the score of the peer that sent it (peers that only relay valid-looking messages are
 * never blamed, because invalid ones are not relayed).
 *
 * Signatures are verified last, once the cheap checks passed (`signaturesValid`), and a node
 * remembers the valid ones so its consensus machine does not verify them again. The block a
 * proposal or decision carries is checked against its signed hash (`blockMatches`), header and
 * body, so a relay cannot swap its transactions.
 */
import {
  type Address,
  addNewest,
  bytesEqual,
  type ConsensusMessage,
  consensusMessageCodec,
  decode,
  isQuorum,
  memoByIdentity,
  messageHeight,
  proposerIndex,
  setNewest,
  totalPower,
  type ValidatorSet,
  ZERO_HASH,
} from '@loopchain/core'
import { bytesKey } from '../native-crypto.js'

/**
 * Decodes a consensus message, once per bytes object: gossip checks a message and then delivers
 * the same bytes to the node, which would decode them (a proposal's whole block) again.
 */
export const decodeConsensusMessage = memoByIdentity((data: Uint8Array): ConsensusMessage => decode(consensusMessageCodec, data))

/**
 * First byte of a re-sent consensus message on gossip (message tags are 1 to 3): the mark, a
 * 4-byte counter, then the message. Gossipsub here identifies a message by its bytes and drops a
 * publish of bytes it has seen in the last two minutes, so a node's re-send of a stalled round's
 * votes (the machine's `rebroadcast`) would never leave it — and a validator that restarted and
 * missed the originals would wait those two minutes. The counter makes each re-send new to
 * gossip; the consensus machine still counts the message once.
 */
export const RESEND_MARK = 0xf0
const RESEND_HEADER_BYTES = 5

/** The gossip payload of a re-send of `message` (number `counter` of this node's re-sends). */
export function resendPayload(message: Uint8Array, counter: number): Uint8Array {
  const out = new Uint8Array(RESEND_HEADER_BYTES + message.length)
  out[0] = RESEND_MARK
  new DataView(out.buffer).setUint32(1, counter >>> 0)
  out.set(message, RESEND_HEADER_BYTES)
  return out
}

/**
 * The consensus message in a gossip payload: the payload itself, or what follows a re-send's
 * header. The same view for the same payload object, so gossip checks and the node decode it once.
 */
export const consensusMessageBytes = memoByIdentity(
  (data: Uint8Array): Uint8Array => (data[0] === RESEND_MARK ? data.subarray(RESEND_HEADER_BYTES) : data),
)

/** A consensus message's identity for the sets below: its length and last 64 bytes (its signature). */
function messageKey(message: Uint8Array): string {
  return `${message.length}:${bytesKey(message.subarray(Math.max(0, message.length - 64)))}`
}

/** Least time between two copies of one consensus message that a node passes on when they are re-sends. */
export const RESEND_FORWARD_MIN_MS = 1_000
const RESENDS_TRACKED = 8192

/**
 * Which re-sends not to pass on. Each re-send is a new gossip message (its counter), checked and
 * forwarded by every node: a member could wrap one valid message — a proposal of megabytes — in
 * counter after counter and have the whole network decode, check and forward every copy. A re-send
 * of a message this node accepted (first or re-sent) less than {@link RESEND_FORWARD_MIN_MS} ago
 * is dropped without blame: this node has it, and honest nodes re-send a round's messages seconds
 * apart (the machine's `rebroadcastMs`). Only messages that passed every check are recorded, so
 * nobody can keep a message from being forwarded by sending a forgery first.
 */
export class ResendFilter {
  private readonly accepted = new Map<string, number>()
  constructor(
    private readonly now: () => number = Date.now,
    private readonly windowMs = RESEND_FORWARD_MIN_MS,
  ) {}

  /** True when `data` is a re-send of a message accepted within the window. Cheap: ask it first. */
  repeats(data: Uint8Array): boolean {
    if (data[0] !== RESEND_MARK) return false
    const at = this.accepted.get(messageKey(consensusMessageBytes(data)))
    return at !== undefined && this.now() - at < this.windowMs
  }

  /** Records a payload that passed the checks and goes on to this node and its peers. */
  accept(data: Uint8Array): void {
    const key = messageKey(consensusMessageBytes(data))
    setNewest(this.accepted, key, this.now(), RESENDS_TRACKED)
  }
}

/**
 * Publishes consensus messages, each new one as it is and any it has published before as a
 * re-send ({@link resendPayload}). What it has published is remembered by a message's length and
 * last 64 bytes (its signature), for the last 8,192 messages.
 */
export class ConsensusPublisher {
  private readonly sent = new Set<string>()
  // From a random start: after a restart, counters of the last run's re-sends (still in peers'
  // seen caches) would make the first re-sends of the same messages look old again.
  private resends = globalThis.crypto.getRandomValues(new Uint32Array(1))[0] as number
  constructor(private readonly publish: (topic: ConsensusTopic, payload: Uint8Array) => void) {}

  send(message: Uint8Array): void {
    const topic: ConsensusTopic = message[0] === 1 ? 'proposal' : 'vote'
    const key = messageKey(message)
    if (!this.sent.has(key)) {
      addNewest(this.sent, key, 8192)
      this.publish(topic, message)
      return
    }
    this.resends = (this.resends + 1) >>> 0
    this.publish(topic, resendPayload(message, this.resends))
  }
}

/** The gossip topics consensus messages travel on: proposals on one, votes and decisions on the other. */
export type ConsensusTopic = 'proposal' | 'vote'

/**
 * Why a consensus message was dropped at the gossip layer.
 *
 * - `UNDECODABLE`: not a consensus message.
 * - `WRONG_TOPIC`: a proposal on the vote topic or a vote on the proposal topic.
 * - `WRONG_NETWORK`: signed for another network id.
 * - `BAD_HEIGHT`: height 0 (the genesis is not voted on).
 * - `UNKNOWN_VALIDATOR`: the signer is not in the validator set in force at that height.
 * - `WRONG_PROPOSER`: the proposer does not lead that height and round.
 * - `BAD_VALID_ROUND`: a proposal's valid round is not below its round.
 * - `BAD_COMMIT`: a decision's certificate cannot prove anything (nil block, unsorted or
 *   unknown signers, less than a quorum of power), signatures aside.
 * - `BAD_SIGNATURE`: a signature does not verify.
 * - `BAD_BLOCK`: a proposal's or decision's block bytes do not hash to the signed block hash, or
 *   the header does not commit to the rest of them (transactions swapped under the same header).
 * - `STALE`: a message of a height below this node's last commit, or a decision for that commit; not a fault.
 * - `AHEAD`: a message of a height whose validator set this node cannot know yet, so it can
 *   check neither signer nor signature; not a fault, delivered here only (see `local`).
 */
export type ConsensusGossipCode =
  | 'UNDECODABLE'
  | 'WRONG_TOPIC'
  | 'WRONG_NETWORK'
  | 'BAD_HEIGHT'
  | 'UNKNOWN_VALIDATOR'
  | 'WRONG_PROPOSER'
  | 'BAD_VALID_ROUND'
  | 'BAD_COMMIT'
  | 'BAD_SIGNATURE'
  | 'BAD_BLOCK'
  | 'STALE'
  | 'AHEAD'

/**
 * A consensus message the gossip layer does not forward. `reject` penalises the peer that sent it
 * (the message is invalid for everyone); `ignore` drops it without blame (it is merely useless to
 * us); `local` hands it to this node but forwards it to no one: what this node could not check, it
 * must not pass on, or a peer that can check it would blame this node for someone else's message.
 */
export interface ConsensusGossipFault {
  readonly action: 'reject' | 'ignore' | 'local'
  readonly code: ConsensusGossipCode
  readonly message: string
}

/** What {@link checkConsensusGossip} knows about the chain. */
export interface ConsensusGossipContext {
  readonly networkId: number
  /**
   * The validator set in force at a height, or `undefined` when this node cannot know it yet
   * (then membership and proposer are left to the consensus machine).
   */
  validatorsAt(height: number): ValidatorSet | undefined
  /** This node's last committed height: every message of an earlier height is decided already. */
  readonly committedHeight: number
  /**
   * Whether the message's signatures verify (`undefined`: cannot tell yet). The costly check, so
   * it runs last, once the cheap ones passed. A bad signature is the forwarder's fault: honest
   * peers verify before they forward.
   */
  signaturesValid?(m: ConsensusMessage): boolean | undefined
  /**
   * Whether a proposal's or decision's block bytes are the block its signed hash names (the
   * header commits to the rest). Independent of the chain, so checked at any height.
   */
  blockMatches?(m: ConsensusMessage): boolean
}

// Validator sets are immutable and live for many heights; index them once.
const indexes = new WeakMap<ValidatorSet, Map<Address, number>>()
function indexOf(set: ValidatorSet, a: Address): number | undefined {
  let m = indexes.get(set)
  if (m === undefined) {
    m = new Map(set.validators.map((v, i) => [v.address, i]))
    indexes.set(set, m)
  }
  return m.get(a)
}

const reject = (code: ConsensusGossipCode, message: string): ConsensusGossipFault => ({ action: 'reject', code, message })

function checkMessage(m: ConsensusMessage, topic: ConsensusTopic, ctx: ConsensusGossipContext): ConsensusGossipFault | undefined {
  if ((m.kind === 'proposal') !== (topic === 'proposal')) return reject('WRONG_TOPIC', `a ${m.kind} on the ${topic} topic`)
  if (m.kind === 'vote') {
    const v = m.vote.vote
    if (v.networkId !== ctx.networkId) return reject('WRONG_NETWORK', `vote for network ${v.networkId}`)
    if (v.height === 0) return reject('BAD_HEIGHT', 'vote at height 0')
    const set = ctx.validatorsAt(v.height)
    if (set && indexOf(set, v.validator) === undefined)
      return reject('UNKNOWN_VALIDATOR', `${v.validator} is not a validator at height ${v.height}`)
    return undefined
  }
  if (m.kind === 'proposal') {
    const p = m.proposal.proposal
    if (p.networkId !== ctx.networkId) return reject('WRONG_NETWORK', `proposal for network ${p.networkId}`)
    if (p.height === 0) return reject('BAD_HEIGHT', 'proposal at height 0')
    if (p.validRound < -1 || p.validRound >= p.round) return reject('BAD_VALID_ROUND', `valid round ${p.validRound} in round ${p.round}`)
    const set = ctx.validatorsAt(p.height)
    if (set) {
      if (indexOf(set, p.proposer) === undefined)
        return reject('UNKNOWN_VALIDATOR', `${p.proposer} is not a validator at height ${p.height}`)
      if (set.validators[proposerIndex(set, p.height, p.round)]?.address !== p.proposer)
        return reject('WRONG_PROPOSER', `${p.proposer} does not lead round ${p.round} at height ${p.height}`)
    }
    return undefined
  }
  const c = m.decision.commit
  if (c.height === 0) return reject('BAD_HEIGHT', 'decision at height 0')
  if (bytesEqual(c.blockHash, ZERO_HASH)) return reject('BAD_COMMIT', 'a commit cannot be for nil')
  const set = ctx.validatorsAt(c.height)
  if (set) {
    // What verifyCommit checks before the signatures: distinct, known signers with a quorum of power.
    let power = 0
    let prev = -1
    for (const s of c.signatures) {
      const v = set.validators[s.index]
      if (s.index <= prev || v === undefined) return reject('BAD_COMMIT', `commit signer index ${s.index} is out of order or unknown`)
      prev = s.index
      power += v.power
    }
    if (!isQuorum(power, totalPower(set))) return reject('BAD_COMMIT', `commit carries ${power} of ${totalPower(set)} voting power`)
  }
  return undefined
}

/**
 * Checks one consensus gossip message without verifying signatures; returns why to drop it, or
 * `undefined` to deliver and forward it. Messages that are invalid for everyone are `reject`ed;
 * messages of heights below `committedHeight` are `ignore`d (a peer still at such a height catches
 * up by block sync, not by votes). Messages of later heights are delivered: they are how a node
 * learns that it fell behind; those too far ahead to check are delivered here only (`local`).
 */
export function checkConsensusGossip(
  data: Uint8Array,
  topic: ConsensusTopic,
  ctx: ConsensusGossipContext,
): ConsensusGossipFault | undefined {
  let m: ConsensusMessage
  try {
    m = decodeConsensusMessage(consensusMessageBytes(data))
  } catch (e) {
    return reject('UNDECODABLE', e instanceof Error ? e.message : String(e))
  }
  const fault = checkMessage(m, topic, ctx)
  if (fault) return fault
  const h = messageHeight(m)
  if (h < ctx.committedHeight)
    return { action: 'ignore', code: 'STALE', message: `height ${h} is below the last commit ${ctx.committedHeight}` }
  // A decision for the height this node has committed is news to no one it could reach (a node
  // behind catches up by block sync), and its block is not checked against the commit here: were
  // it forwarded, anyone could have the network relay any bytes under the tip's public commit.
  if (m.kind === 'decision' && h === ctx.committedHeight)
    return { action: 'ignore', code: 'STALE', message: `a decision for height ${h}, which this node has committed` }
  if (ctx.validatorsAt(h) === undefined)
    return { action: 'local', code: 'AHEAD', message: `height ${h} is past what this node can check (last commit ${ctx.committedHeight})` }
  if (ctx.signaturesValid?.(m) === false) return reject('BAD_SIGNATURE', `a signature of the ${m.kind} does not verify`)
  // Last: it decodes the whole block (kept for the consensus machine, which needs it next).
  if (ctx.blockMatches?.(m) === false) return reject('BAD_BLOCK', `the ${m.kind}'s block bytes are not the block its signed hash names`)
  return undefined
}
