/**
 * The SCORE Store: the registry of every SCORE's versions (code hash, deploying account, audit,
 * activation height, status) and the rules that move a version through its life. A version is
 * registered by a deploy transaction; governance accepts or rejects it where the chain requires
 * audit; an accepted update serves from the block after its acceptance, once its `onUpdate` hook
 * has run at the start of that block (see docs/writing-a-score.md, "Deploying, auditing and
 * updating a SCORE").
 */

import { CERTIFICATE_REGISTRY_ABI } from '../cert/certificate.js'
import { CHANNEL_ABI } from '../channel/state.js'
import { decode, encode } from '../codec/codec.js'
import type { Value } from '../codec/value.js'
import type { Address } from '../crypto/address.js'
import { abiToValue, type ScoreAbi } from '../score/abi.js'
import { callScore, type LoadedScore, loadScore, type ScoreLookup, UPDATE_METHOD } from '../score/call.js'
import type { ContractEngine } from '../score/engine/types.js'
import type { StateOverlay } from '../score/overlay.js'
import type { StateSource } from '../state/state-tree.js'
import { GOVERNANCE_ABI } from './governance.js'
import {
  AuditStatus,
  CERTIFICATE_REGISTRY_ADDRESS,
  CHANNEL_ADDRESS,
  type ContractRecord,
  codeKey,
  contractKey,
  contractRecordCodec,
  GOVERNANCE_ADDRESS,
  SCHEDULED_UPDATES_KEY,
  type ScheduledUpdate,
  type ScoreVersion,
  scheduledUpdatesCodec,
  VersionStatus,
} from './layout.js'

/**
 * Steps an `onUpdate` hook may use. Nobody pays for them (the hook runs at the start of a block,
 * outside any transaction), so the bound is what keeps a migration from stalling every node: a
 * hundred million steps is a few seconds of interpretation, far more than a migration of a few
 * thousand slots needs.
 */
export const UPDATE_STEP_LIMIT = 100_000_000

/** A code hash as a map key. */
const codeId = (codeHash: Uint8Array): string => String.fromCharCode(...codeHash)

/** SCOREs compiled once per code hash: loading is deterministic, so a cache changes no outcome. */
export class ScoreCache {
  private readonly byCode = new Map<string, LoadedScore | null>()
  constructor(private readonly engine: ContractEngine) {}

  /** The loaded SCORE of `codeHash` if it was loaded before: null when it did not load, undefined when never tried. */
  peek(codeHash: Uint8Array): LoadedScore | null | undefined {
    return this.byCode.get(codeId(codeHash))
  }

  /** The loaded SCORE of `codeHash`, loading `code()` the first time; undefined when it does not load. */
  get(codeHash: Uint8Array, code: () => Uint8Array | undefined): LoadedScore | undefined {
    const id = codeId(codeHash)
    let s = this.byCode.get(id)
    if (s === undefined) {
      const bytes = code()
      if (bytes === undefined) return undefined
      const r = loadScore(this.engine, bytes)
      s = r.ok ? { contract: r.contract, abi: r.abi } : null
      this.byCode.set(id, s)
    }
    return s ?? undefined
  }
}

const caches = new WeakMap<ContractEngine, ScoreCache>()
/** The engine's shared {@link ScoreCache}. */
export function scoreCache(engine: ContractEngine): ScoreCache {
  let c = caches.get(engine)
  if (!c) {
    c = new ScoreCache(engine)
    caches.set(engine, c)
  }
  return c
}

/** The registry record of the SCORE at `a`, or undefined. */
export function readRecord(state: StateOverlay, a: Address): ContractRecord | undefined {
  const raw = state.get(contractKey(a))
  return raw === undefined ? undefined : decode(contractRecordCodec, raw)
}

/** Writes a registry record. */
export function writeRecord(state: StateOverlay, a: Address, r: ContractRecord): void {
  state.set(contractKey(a), encode(contractRecordCodec, r))
}

/** `r` with version `v.version` replaced by `v`. */
export function withVersion(r: ContractRecord, v: ScoreVersion, serving = r.serving): ContractRecord {
  return { ...r, serving, versions: r.versions.map((x) => (x.version === v.version ? v : x)) }
}

/** The version that serves calls, or undefined while none does. */
export function servingVersion(r: ContractRecord): ScoreVersion | undefined {
  return r.serving === 0 ? undefined : r.versions[r.serving - 1]
}

/** True for a version that a read-only query may address: the serving one, or one that served before. */
export function isQueryable(v: ScoreVersion): boolean {
  return v.status === VersionStatus.Active || v.status === VersionStatus.Retired
}

/** A lookup of serving SCOREs over `state` (what calls and nested calls see). */
export function servingLookup(state: StateOverlay, cache: ScoreCache): ScoreLookup {
  return (a) => {
    const r = readRecord(state, a)
    const v = r && servingVersion(r)
    if (v === undefined) return undefined
    return cache.get(v.codeHash, () => state.get(codeKey(v.codeHash)))
  }
}

/** The scheduled-updates list. */
export function readScheduled(state: StateOverlay): ScheduledUpdate[] {
  const raw = state.get(SCHEDULED_UPDATES_KEY)
  return raw === undefined ? [] : decode(scheduledUpdatesCodec, raw)
}

/** Writes the scheduled-updates list (deleting the key when it is empty, so an idle chain's state is unchanged). */
export function writeScheduled(state: StateOverlay, list: readonly ScheduledUpdate[]): void {
  if (list.length === 0) state.delete(SCHEDULED_UPDATES_KEY)
  else state.set(SCHEDULED_UPDATES_KEY, encode(scheduledUpdatesCodec, [...list]))
}

/**
 * Governance's audit verdict on a pending version, in block `height`. Accepting the first version
 * to serve (a new SCORE, whose `onInstall` already ran at deploy) makes it serve at once; accepting
 * an update schedules it for `height + 1`. Rejecting leaves whatever serves serving. Returns why the
 * verdict does not apply, or undefined.
 */
export function decideAudit(state: StateOverlay, score: Address, version: number, accept: boolean, height: number): string | undefined {
  const r = readRecord(state, score)
  if (r === undefined) return `no SCORE at ${score}`
  const v = r.versions[version - 1]
  if (v === undefined) return `${score} has no version ${version}`
  if (v.audit !== AuditStatus.Pending) return `version ${version} of ${score} is not pending audit`
  if (!accept) {
    writeRecord(state, score, withVersion(r, { ...v, audit: AuditStatus.Rejected, status: VersionStatus.Rejected }))
    return undefined
  }
  if (r.serving === 0) {
    writeRecord(
      state,
      score,
      withVersion(r, { ...v, audit: AuditStatus.Accepted, status: VersionStatus.Active, activeFrom: height }, version),
    )
    return undefined
  }
  writeRecord(state, score, withVersion(r, { ...v, audit: AuditStatus.Accepted, status: VersionStatus.Scheduled, activeFrom: height + 1 }))
  writeScheduled(state, [...readScheduled(state), { score, version, activeFrom: height + 1 }])
  return undefined
}

/**
 * Runs at the start of block `block.height`, before its transactions: every update due by this
 * height runs its new code's `onUpdate` (if declared) over the SCORE's storage in its own overlay.
 * Success makes the version serve and retires the previous one; failure marks the version failed
 * with the hook's failure and leaves the previous version serving. Writes into `state`.
 */
export function activateDueUpdates(state: StateOverlay, cache: ScoreCache, block: { height: number; timestamp: number }): void {
  const scheduled = readScheduled(state)
  const due = scheduled.filter((u) => u.activeFrom <= block.height)
  if (due.length === 0) return
  writeScheduled(
    state,
    scheduled.filter((u) => u.activeFrom > block.height),
  )
  for (const u of due) {
    const r = readRecord(state, u.score)
    const v = r?.versions[u.version - 1]
    if (r === undefined || v === undefined || v.status !== VersionStatus.Scheduled) continue
    const loaded = cache.get(v.codeHash, () => state.get(codeKey(v.codeHash)))
    let failure: { code: string; message: string } | undefined
    const overlay = state.child()
    if (loaded === undefined) failure = { code: 'INVALID_CODE', message: 'the new code does not load' }
    else if (Object.hasOwn(loaded.abi.methods, UPDATE_METHOD)) {
      // The hook runs the new code: the lookup serves it at this address for the hook's frame only.
      const others = servingLookup(overlay, cache)
      const res = callScore({
        scores: (a) => (a === u.score ? loaded : others(a)),
        state: overlay,
        from: v.deployer,
        to: u.score,
        method: UPDATE_METHOD,
        params: v.params,
        block: { height: BigInt(block.height), timestamp: BigInt(block.timestamp) },
        limits: { stepLimit: UPDATE_STEP_LIMIT, memoryLimit: 4 * 1024 * 1024 },
        install: true,
      })
      if (!res.ok) failure = res.failure
    }
    if (failure !== undefined) {
      overlay.discard()
      writeRecord(state, u.score, withVersion(r, { ...v, status: VersionStatus.Failed, failure }))
      continue
    }
    overlay.commit()
    // Reread: the hook cannot touch the registry, but keep the record the one in state.
    const cur = readRecord(state, u.score) ?? r
    const old = servingVersion(cur)
    let next = withVersion(cur, { ...v, status: VersionStatus.Active }, v.version)
    if (old !== undefined && old.version !== v.version) next = withVersion(next, { ...old, status: VersionStatus.Retired })
    writeRecord(state, u.score, next)
  }
}

/** A SCORE's registry entry as a reader sees it: its address plus its {@link ContractRecord}. */
export interface ScoreInfo extends ContractRecord {
  readonly address: Address
}

/** The registry entry of the SCORE at `address` in `tree`'s current state, or undefined. */
export async function getScoreInfo(tree: StateSource, address: Address): Promise<ScoreInfo | undefined> {
  const raw = await tree.get(contractKey(address))
  return raw === undefined ? undefined : { address, ...decode(contractRecordCodec, raw) }
}

const AUDIT_NAMES = ['pending', 'accepted', 'rejected'] as const
const STATUS_NAMES = ['pending', 'scheduled', 'active', 'retired', 'failed', 'rejected'] as const

/** A {@link ScoreInfo} as a Value (for JSON-RPC and the governance SCORE's `getScoreInfo`). */
export function scoreInfoToValue(info: ScoreInfo): Value {
  return {
    address: info.address,
    deployer: info.deployer,
    serving: BigInt(info.serving),
    versions: info.versions.map((v) => {
      const out: { [key: string]: Value } = {
        version: BigInt(v.version),
        codeHash: v.codeHash,
        deployer: v.deployer,
        deployedAt: BigInt(v.deployedAt),
        audit: AUDIT_NAMES[v.audit],
        status: STATUS_NAMES[v.status],
        activeFrom: v.activeFrom === undefined ? null : BigInt(v.activeFrom),
        failure: v.failure === undefined ? null : { code: v.failure.code, message: v.failure.message },
      }
      return out
    }),
  }
}

/**
 * The ABI of a SCORE's serving version (or of `version`, any registered one); undefined when
 * there is no such SCORE or version. The native SCOREs (governance, certificate registry, payment
 * channels) answer at their addresses.
 */
export async function getScoreAbi(
  tree: StateSource,
  engine: ContractEngine,
  address: Address,
  version?: number,
): Promise<ScoreAbi | undefined> {
  if (address === GOVERNANCE_ADDRESS) return version === undefined ? GOVERNANCE_ABI : undefined
  if (address === CERTIFICATE_REGISTRY_ADDRESS) return version === undefined ? CERTIFICATE_REGISTRY_ABI : undefined
  if (address === CHANNEL_ADDRESS) return version === undefined ? CHANNEL_ABI : undefined
  const info = await getScoreInfo(tree, address)
  if (info === undefined) return undefined
  const v = version === undefined ? servingVersion(info) : info.versions[version - 1]
  if (v === undefined) return undefined
  // Code is read (up to MAX_CODE_BYTES) only when no loaded SCORE has it.
  const cache = scoreCache(engine)
  const held = cache.peek(v.codeHash)
  if (held !== undefined) return held?.abi
  const code = await tree.get(codeKey(v.codeHash))
  return cache.get(v.codeHash, () => code)?.abi
}

/** {@link getScoreAbi} as `abiToValue` gives it, for a `getScoreApi` endpoint. */
export async function getScoreApi(
  tree: StateSource,
  engine: ContractEngine,
  address: Address,
  version?: number,
): Promise<Value | undefined> {
  const abi = await getScoreAbi(tree, engine, address, version)
  return abi === undefined ? undefined : abiToValue(abi)
}
