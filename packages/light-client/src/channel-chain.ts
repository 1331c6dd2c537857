/**
 * What the channel wallet reads from and writes to the chain, through the light client: account
 * and channel records proven with Merkle proofs against verified headers (no node is trusted to
 * say a channel is open or what it paid), and signed calls to the channel SCORE submitted over
 * libp2p. A node can refuse or drop a transaction, never forge its effect.
 */
import {
  type AccountState,
  type Address,
  accountKey,
  accountStateCodec,
  bytesEqual,
  type ChainParams,
  type ChannelRecord,
  channelCallTransaction,
  channelKey,
  channelRecordCodec,
  decode,
  EMPTY_ACCOUNT,
  type KeyPair,
  preimageKey,
  sha256,
  type Transaction,
  transactionHash,
  type Value,
} from '@loopchain/core'
import type { LightClient, VerifiedState } from './client.js'

/** One call of {@link ChannelCaller.call}, as each try signs and submits it. */
interface CallRequest {
  readonly method: string
  readonly params: Value
  readonly value: bigint
  readonly fromProven: boolean
  readonly beforeSubmit: ((hash: Uint8Array, nonce: number) => Promise<void>) | undefined
}

/** The chain access of a {@link LightClient}: its verified tip, proofs and transaction submission. */
export function chainAccessOf(client: LightClient): ChainAccess {
  return {
    get height() {
      return client.height
    },
    getStateProof: (k, o) => client.getStateProof(k, o),
    submitTransaction: (tx) => client.submitTransaction(tx),
  }
}

/** The light-client calls the wallet needs (a {@link LightClient} has them). */
export interface ChainAccess {
  /** Height of the verified tip. */
  readonly height: number
  getStateProof(key: Uint8Array, opts?: { height?: number }): Promise<VerifiedState>
  /** Submits a signed transaction to a full node; resolves with its hash once a node accepted it into its pool. */
  submitTransaction(tx: Transaction): Promise<Uint8Array>
}

/** A value proven against the verified header at `height` (the state after block `height − 1`). */
export interface Proven<T> {
  readonly value: T
  readonly height: number
}

/** The account of `a`, proven. */
export async function provenAccount(chain: ChainAccess, a: Address): Promise<Proven<AccountState>> {
  const v = await chain.getStateProof(accountKey(a))
  return { value: v.value === undefined ? EMPTY_ACCOUNT : decode(accountStateCodec, v.value), height: v.height }
}

/** The channel SCORE's record of channel `id`, proven (undefined: proven absent). */
export async function provenChannel(chain: ChainAccess, id: Uint8Array): Promise<Proven<ChannelRecord | undefined>> {
  const v = await chain.getStateProof(channelKey(id))
  return { value: v.value === undefined ? undefined : decode(channelRecordCodec, v.value), height: v.height }
}

/**
 * The preimage of `hashLock` a channel's `redeem` revealed on chain, proven (undefined: proven
 * absent). A value that does not hash to the lock cannot be in a verified state; it reads as absent.
 */
export async function provenPreimage(chain: ChainAccess, hashLock: Uint8Array): Promise<Proven<Uint8Array | undefined>> {
  const v = await chain.getStateProof(preimageKey(hashLock))
  const ok = v.value !== undefined && v.value.length === 32 && bytesEqual(sha256(v.value), hashLock)
  return { value: ok ? v.value : undefined, height: v.height }
}

const NONCE_RETRIES = 10
const NONCE_RETRY_MS = 500

/** Pool refusals that say the nonce tried is taken: the next one may be free. */
const TAKEN = new Set(['NONCE_POOLED', 'NONCE_TOO_LOW'])

/** The node's code for refusing a submission (`REFUSED` carries the pool's in its details), else the error's code. */
function refusalCode(e: unknown): string {
  const err = e as { code?: unknown; details?: { code?: unknown } }
  return String((err.code === 'REFUSED' ? err.details?.code : undefined) ?? err.code ?? '')
}

/**
 * Signs calls to the channel SCORE with one key. Nonces come from the proven account, and calls
 * sent since (still pending) are counted locally, so several can go out before a block lands.
 */
export class ChannelCaller {
  private nextNonce = 0
  /**
   * Calls pick their nonce and submit one at a time: two at once (a redeem and a withdraw from one
   * poll) read the same proven account and counter, and took the same nonce.
   */
  private queue: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly chain: ChainAccess,
    private readonly key: KeyPair,
    private readonly networkId: number,
    private readonly params: Pick<ChainParams, 'stepPrice'>,
    /** Microseconds since the Unix epoch for transaction timestamps (the page's clock). */
    private readonly nowMicros: () => number = () => Date.now() * 1000,
  ) {}

  /**
   * Signs and submits `method(params)` with `value`; resolves with the transaction's hash once a
   * node accepted it. The proven nonce lags the node by a block or two: a nonce the node has seen
   * (`NONCE_POOLED`: another transaction of this account with it is pooled, sent by another page of
   * the account, say; `NONCE_TOO_LOW`: used on chain since the proof) is retried at once with the
   * next one; another nonce refusal starts again from the proven nonce, a moment later, once newer
   * headers may be verified. A few times in all.
   *
   * `fromProven`: at the proven nonce itself, not after the calls counted since — for a call sent
   * again because the one before left no trace. That one may be lost with its nonce, and every
   * later call waits behind the gap until something fills it. Only this call takes the proven
   * nonce (others keep counting on); a refusal is not retried, the caller decides again later.
   *
   * `beforeSubmit`: given each signed transaction's hash and nonce before it leaves (again for each retry);
   * the submission waits for it, and does not happen if it throws. What must survive a crash
   * right after the node took the transaction is saved there.
   */
  async call(
    method: string,
    params: Value,
    value = 0n,
    fromProven = false,
    beforeSubmit?: (hash: Uint8Array, nonce: number) => Promise<void>,
  ): Promise<Uint8Array> {
    const request: CallRequest = { method, params, value, fromProven, beforeSubmit }
    if (fromProven) return this.callOnce(request)
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.callOnce(request)
      } catch (e) {
        const code = refusalCode(e)
        const nonceProblem = /NONCE/.test(code) || /nonce/i.test((e as Error).message)
        if (!nonceProblem || attempt >= NONCE_RETRIES) throw e
        // Taken: the counter already moved past the nonce tried (signAndSubmit), and the next one
        // is tried at once. Otherwise the counter is wrong (too far ahead): the proven nonce
        // again. The counter is shared, so the calls queued behind this one follow.
        if (TAKEN.has(code)) continue
        this.nextNonce = 0
        await new Promise((r) => setTimeout(r, NONCE_RETRY_MS))
      }
    }
  }

  private callOnce(request: CallRequest): Promise<Uint8Array> {
    const run = this.queue.then(() => this.signAndSubmit(request))
    this.queue = run.catch(() => undefined)
    return run
  }

  private async signAndSubmit({ method, params, value, fromProven, beforeSubmit }: CallRequest): Promise<Uint8Array> {
    const account = await provenAccount(this.chain, this.key.address)
    const nonce = fromProven ? account.value.nonce : Math.max(account.value.nonce, this.nextNonce)
    const tx = channelCallTransaction({
      key: this.key,
      networkId: this.networkId,
      nonce,
      method,
      params,
      value,
      timestamp: this.nowMicros(),
    })
    const fee = BigInt(tx.body.stepLimit) * this.params.stepPrice
    if (account.value.balance < value + fee)
      throw new RangeError(`the account holds ${account.value.balance} (as of height ${account.height}); this needs ${value + fee}`)
    await beforeSubmit?.(transactionHash(tx.body), nonce)
    let hash: Uint8Array
    try {
      hash = await this.chain.submitTransaction(tx)
    } catch (e) {
      // Taken already (in the pool, or on chain since the proof): the next try starts after it.
      if (TAKEN.has(refusalCode(e))) this.nextNonce = Math.max(this.nextNonce, nonce + 1)
      throw e
    }
    this.nextNonce = Math.max(this.nextNonce, nonce + 1)
    return hash
  }
}
