/**
 * `npm run bench -- score`: IRC-2 token transfers per second through loopchain's whole block path,
 * next to the same ERC-20 transfer on `@ethereumjs/vm` in the same process ({@link runEvmTransferBench}),
 * plus contract steps per second, cold contract load time and engine start-up time.
 *
 * loopchain side. Untimed: a genesis with 1,000 funded holders and a deployer member, the token
 * deploy (`TOKEN_SOURCE`), a token grant to every holder (through blocks, which also warms the
 * JIT), and every transfer signed (native ed25519) and encoded to wire bytes. Timed, per block of
 * 500: decode each transaction from its wire bytes, the stateless checks with ed25519 signature
 * verification (`checkTransaction` with `nativeCrypto`: libsodium; OpenSSL where the two may differ), the transactions root,
 * `executeBlock` (nonce and balance checks, fees, the contract call in the metered QuickJS-ng wasm
 * engine, storage writes through the state tree, the state root commit, the receipts root), and
 * writing the commit's ops to a `MemoryKVStore`.
 *
 * The EVM side (see evm.ts) times RLP decode, secp256k1 sender recovery (pure-JS noble, the
 * ethereumjs default), `runBlock` and the state, transactions and receipts roots per block of 500.
 *
 * Order, for a noisy shared machine: loopchain run A, then the EVM, then loopchain run B from
 * genesis on a fresh engine and store with the same blocks. Run B is the determinism check (every
 * block's state and receipts roots must equal run A's), and the loopchain figure is over A and B
 * together, so it brackets the EVM run in time. Correctness is checked after the clock stops:
 * every receipt succeeded with one event, and every holder's token balance (`queryScore`) and
 * nonce are the ones expected.
 *
 * Standalone: `npx tsx test/bench/score.ts [transfers]`.
 */
import { pathToFileURL } from 'node:url'
import {
  type Address,
  applyGenesis,
  type Block,
  type BlockHeader,
  type ChainParams,
  CONTRACT_MEMORY_LIMIT,
  type ContractEngine,
  callDataCodec,
  checkTransaction,
  contractAddress,
  DEFAULT_PARAMS,
  decodeTransaction,
  deployDataCodec,
  encode,
  executeBlock,
  type Genesis,
  getAccount,
  type HostApi,
  initEngine,
  type KeyPair,
  keyPairFromSecret,
  loadScore,
  MemoryKVStore,
  makeValidatorSet,
  queryScore,
  type Receipt,
  ReceiptStatus,
  Right,
  StateTree,
  sha256,
  signTransaction,
  TOKEN_SOURCE,
  type Transaction,
  type TransactionBody,
  type TxCheckContext,
  TxKind,
  toHex,
  transactionCodec,
  transactionHash,
  transactionsRoot,
  utf8,
  type Value,
  ZERO_HASH,
} from '@loopchain/core'
import { nativeCrypto } from '@loopchain/node'
import { runEvmTransferBench } from './evm.js'
import { printer, type Report } from './report.js'

/** Options of {@link runScoreBench}. */
export interface ScoreBenchOptions {
  /** Transfers in the timed part, on each side. Default 2,000. */
  transfers?: number
}

/** Transactions per block on both sides. */
const TXS_PER_BLOCK = 500
/** Token holders the transfers move between, on both sides. */
const ACCOUNTS = 1_000
/** Network of the bench chain. */
const NETWORK_ID = 7
/** Genesis time (µs); every timestamp is derived from it, so both runs build identical blocks. */
const T0 = 1_767_225_600_000_000
/** Fees are real (as on the EVM side): each step costs 10, charged to the sender. */
const PARAMS: ChainParams = { ...DEFAULT_PARAMS, stepPrice: 10n }
/** Native balance of every account at genesis: covers any run's fees. */
const GENESIS_BALANCE = 10n ** 18n
/** Step limit of a token call: a transfer uses a few thousand. */
const CALL_STEP_LIMIT = 1_000_000
/** Tokens each holder gets before the clock starts; each timed transfer moves 1. */
const HOLDER_TOKENS = 10n ** 12n
/** Distinct never-seen contracts whose cold load is timed; the median is reported. */
const COLD_SAMPLES = 5
/** Iterations of the pure CPU loop contract. */
const SPIN_ITERATIONS = 2_000_000

const key = (label: string): KeyPair => keyPairFromSecret(sha256(utf8(`score bench ${label}`)), nativeCrypto)

/** A token variant nobody has loaded yet: same code, a distinct trailing comment, so a distinct code hash. */
const tokenVariant = (tag: string): Uint8Array => utf8(`${TOKEN_SOURCE}\n// variant ${tag}\n`)

/** Everything both loopchain runs execute: the genesis and the blocks, transactions as wire bytes. */
interface Plan {
  genesis: Genesis
  deployer: KeyPair
  holders: KeyPair[]
  token: Address
  /** Untimed: the deploy block, then the grant blocks. */
  setup: Uint8Array[][]
  /** Timed: the transfer blocks. */
  timed: Uint8Array[][]
  /** Untimed, after the timed blocks: one deploy of a never-seen token (the cold deploy). */
  coldDeploy: Uint8Array[]
  /** Token balance and nonce each holder must end with. */
  expectedTokens: Map<Address, bigint>
  expectedNonces: Map<Address, number>
  supply: bigint
}

function buildPlan(transfers: number): Plan {
  const deployer = key('deployer')
  const validator = key('validator')
  const holders = Array.from({ length: ACCOUNTS }, (_, i) => key(`holder ${i}`))
  const genesis: Genesis = {
    chainId: 'score-bench',
    networkId: NETWORK_ID,
    timestamp: T0,
    validators: makeValidatorSet([{ address: validator.address, publicKey: validator.publicKey, power: 1 }]),
    members: [
      { id: 'issuer', name: 'Issuer', address: deployer.address, nodeKey: undefined, rights: Right.Deployer | Right.Issuer },
      { id: 'validator', name: 'Validator', address: validator.address, nodeKey: undefined, rights: Right.Validator },
    ],
    balances: [deployer, ...holders]
      .map((k) => ({ address: k.address, amount: GENESIS_BALANCE }))
      .sort((a, b) => (a.address < b.address ? -1 : 1)),
    params: PARAMS,
  }
  const nonces = new Map<Address, number>()
  const wire = (from: KeyPair, body: Pick<TransactionBody, 'kind' | 'to' | 'data'>): Uint8Array => {
    const nonce = nonces.get(from.address) ?? 0
    nonces.set(from.address, nonce + 1)
    const tx = signTransaction(
      {
        version: 1,
        networkId: NETWORK_ID,
        from: from.address,
        value: 0n,
        stepLimit: CALL_STEP_LIMIT,
        timestamp: T0 + 1_000 + nonce,
        nonce,
        ...body,
      },
      from,
      nativeCrypto,
    )
    return encode(transactionCodec, tx)
  }
  const deployTx = (tag: string, supply: bigint): { raw: Uint8Array; address: Address } => {
    const raw = wire(deployer, {
      kind: TxKind.Deploy,
      to: 'cx0000000000000000000000000000000000000000' as Address,
      data: encode(deployDataCodec, {
        contentType: 'application/javascript',
        code: tokenVariant(tag),
        params: { _name: 'Bench', _symbol: 'BNCH', _decimals: 18n, _initialSupply: supply },
      }),
    })
    return { raw, address: contractAddress(transactionHash(decodeTransaction(raw).body)) }
  }
  const supply = HOLDER_TOKENS * BigInt(ACCOUNTS) * 2n
  const deployed = deployTx('main', supply)
  const token = deployed.address
  const transfer = (from: KeyPair, to: Address, amount: bigint) =>
    wire(from, { kind: TxKind.Call, to: token, data: encode(callDataCodec, { method: 'transfer', params: { _to: to, _value: amount } }) })

  const expectedTokens = new Map<Address, bigint>([deployer, ...holders].map((k) => [k.address, 0n]))
  expectedTokens.set(deployer.address, supply)
  const move = (from: Address, to: Address, v: bigint) => {
    expectedTokens.set(from, expectedTokens.get(from)! - v)
    expectedTokens.set(to, expectedTokens.get(to)! + v)
  }
  const grants = holders.map((h) => {
    move(deployer.address, h.address, HOLDER_TOKENS)
    return transfer(deployer, h.address, HOLDER_TOKENS)
  })
  // The same pattern as the EVM side: holder i pays 1 to a holder 1..ACCOUNTS-1 places further on.
  const raw: Uint8Array[] = []
  for (let t = 0; t < transfers; t++) {
    const from = t % ACCOUNTS
    const to = (from + 1 + ((t * 7919) % (ACCOUNTS - 1))) % ACCOUNTS
    move(holders[from]!.address, holders[to]!.address, 1n)
    raw.push(transfer(holders[from]!, holders[to]!.address, 1n))
  }
  const cold = deployTx('cold deploy', 1n)
  return {
    genesis,
    deployer,
    holders,
    token,
    setup: [[deployed.raw], ...chunks(grants, TXS_PER_BLOCK)],
    timed: chunks(raw, TXS_PER_BLOCK),
    coldDeploy: [cold.raw],
    expectedTokens,
    expectedNonces: new Map(nonces),
    supply,
  }
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n))
  return out
}

/** What one loopchain run from genesis produced. */
interface RunResult {
  /** Per block, in order: hex state root and receipts root. */
  roots: string[]
  timedSeconds: number
  timedCpuSeconds: number
  /** Part of the timed wall clock spent decoding and checking transactions (signatures included). */
  checkSeconds: number
  /** Sum of the timed receipts' steps. */
  steps: number
  coldDeployMs: number
  tree: StateTree
  height: number
  receipts: Receipt[]
}

function header(height: number, txs: readonly Transaction[]): BlockHeader {
  return {
    version: 1,
    networkId: NETWORK_ID,
    height,
    prevHash: ZERO_HASH,
    timestamp: T0 + height * 1_000_000,
    proposer: key('validator').address,
    round: 0,
    txRoot: transactionsRoot(txs),
    resultRoot: ZERO_HASH,
    validatorsHash: ZERO_HASH,
    nextValidatorsHash: ZERO_HASH,
    blockKey: new Uint8Array(32),
    lastCommitHash: ZERO_HASH,
  }
}

/** Runs the plan's blocks from genesis on `engine` and a fresh in-memory store. */
async function runChain(plan: Plan, engine: ContractEngine): Promise<RunResult> {
  const store = new MemoryKVStore()
  const tree = await StateTree.open(store)
  const g = await applyGenesis(tree, plan.genesis)
  await store.write(g.ops)
  tree.markPersisted(g)
  const check: TxCheckContext = {
    networkId: NETWORK_ID,
    now: T0 + 1_000_000,
    timestampWindow: PARAMS.txTimestampWindowMs * 1_000,
    maxStepLimit: PARAMS.maxStepLimit,
  }
  const roots: string[] = []
  let height = 0
  let checkSeconds = 0
  // The path of a block a node receives: wire bytes in, committed state out.
  const run = async (raw: Uint8Array[]): Promise<Receipt[]> => {
    const t = performance.now()
    const txs = raw.map((r) => {
      const tx = decodeTransaction(r)
      checkTransaction(tx, check, nativeCrypto)
      return tx
    })
    height++
    const block: Block = { header: header(height, txs), transactions: txs, lastCommit: undefined, certSignatures: [] }
    checkSeconds += (performance.now() - t) / 1000
    const ex = await executeBlock(tree, block, { params: PARAMS, engine })
    await store.write(ex.commit.ops)
    tree.markPersisted(ex.commit)
    roots.push(`${toHex(ex.result.stateRoot)}/${toHex(ex.result.receiptsRoot)}`)
    return ex.receipts
  }
  for (const [i, raw] of plan.setup.entries()) assertSucceeded(await run(raw), i === 0 ? 'deploy' : 'grant', i === 0 ? 0 : 1)
  checkSeconds = 0

  const receipts: Receipt[] = []
  const cpuStart = process.cpuUsage()
  const start = performance.now()
  for (const raw of plan.timed) receipts.push(...(await run(raw)))
  const timedSeconds = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpuStart)
  const timedCheckSeconds = checkSeconds
  assertSucceeded(receipts, 'transfer')

  // A never-seen contract's code to its first completed call (onInstall), in a block of its own.
  const c = performance.now()
  assertSucceeded(await run(plan.coldDeploy), 'cold deploy', 0)
  const coldDeployMs = performance.now() - c

  return {
    roots,
    timedSeconds,
    timedCpuSeconds: (cpu.user + cpu.system) / 1e6,
    checkSeconds: timedCheckSeconds,
    steps: receipts.reduce((s, r) => s + r.stepUsed, 0),
    coldDeployMs,
    tree,
    height,
    receipts,
  }
}

/** Throws unless every receipt succeeded and logged `events` events (one Transfer for a transfer, none for a deploy). */
function assertSucceeded(receipts: readonly Receipt[], what: string, events = 1): void {
  receipts.forEach((r, i) => {
    if (r.status !== ReceiptStatus.Success) throw new Error(`${what} tx ${i} failed: ${r.failure?.code} ${r.failure?.message}`)
    if (r.logs.length !== events) throw new Error(`${what} tx ${i} emitted ${r.logs.length} events, expected ${events}`)
  })
}

/** Checks every holder's token balance and nonce, and that the balances sum to the supply. */
async function assertFinalState(plan: Plan, r: RunResult, engine: ContractEngine): Promise<void> {
  if (r.receipts.length !== plan.timed.reduce((s, b) => s + b.length, 0)) throw new Error('not every timed transfer has a receipt')
  let sum = 0n
  for (const [owner, want] of plan.expectedTokens) {
    const q = await queryScore(
      r.tree,
      { params: PARAMS, engine },
      {
        from: owner,
        to: plan.token,
        method: 'balanceOf',
        params: { _owner: owner },
        height: r.height,
        timestamp: T0 + r.height * 1_000_000,
      },
    )
    if (!q.ok) throw new Error(`balanceOf(${owner}) failed: ${q.failure.code} ${q.failure.message}`)
    if (q.result !== want) throw new Error(`balanceOf(${owner}) is ${String(q.result)}, expected ${want}`)
    sum += want
    const acc = await getAccount(r.tree, owner)
    const nonce = plan.expectedNonces.get(owner) ?? 0
    if (acc.nonce !== nonce) throw new Error(`nonce of ${owner} is ${acc.nonce}, expected ${nonce}`)
  }
  if (sum !== plan.supply) throw new Error(`balances sum to ${sum}, minted ${plan.supply}`)
}

/** A host for engine-level calls: storage in a map, no events kept, a fixed sender. */
function memoryHost(sender: string): HostApi {
  const store = new Map<string, Uint8Array>()
  return {
    storageGet: (k) => store.get(toHex(k)),
    storageSet: (k, v) => void store.set(toHex(k), v),
    storageDelete: (k) => void store.delete(toHex(k)),
    emit: () => {},
    call: () => null,
    context: (name) => (name === 'sender' || name === 'origin' ? sender : null),
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/**
 * Cold load: from the code of a contract the engine has never seen to its first completed call
 * (compile check and manifest as the executor does with `loadScore`, then the first call, which
 * evaluates the module and saves its image). Median over {@link COLD_SAMPLES} distinct contracts.
 */
function coldLoadMs(engine: ContractEngine, owner: Address): number {
  const times: number[] = []
  for (let i = 0; i < COLD_SAMPLES; i++) {
    const code = tokenVariant(`cold ${i}`)
    const t = performance.now()
    const loaded = loadScore(engine, code)
    if (!loaded.ok) throw new Error(`cold load: ${loaded.failure.code} ${loaded.failure.message}`)
    const r = loaded.contract.call('balanceOf', { _owner: owner }, memoryHost(owner), {
      stepLimit: 1_000_000,
      memoryLimit: CONTRACT_MEMORY_LIMIT,
    })
    times.push(performance.now() - t)
    if (!r.ok) throw new Error(`cold call: ${r.failure.code} ${r.failure.message}`)
  }
  return median(times)
}

const SPIN_SOURCE = `export function spin({ n }) {
  let x = 0
  const m = Number(n)
  for (let i = 0; i < m; i++) x = (x + i * 7) % 1000003
  return BigInt(x)
}
`

/** Steps per second of a pure CPU loop contract (no host calls), warm; best of three calls. */
function spinStepsPerSecond(engine: ContractEngine): { stepsPerSecond: number; steps: number } {
  const loaded = engine.load(SPIN_SOURCE)
  if (!loaded.ok) throw new Error(`spin contract: ${loaded.failure.code} ${loaded.failure.message}`)
  const args: Value = { n: BigInt(SPIN_ITERATIONS) }
  const limits = { stepLimit: 100 * SPIN_ITERATIONS, memoryLimit: CONTRACT_MEMORY_LIMIT }
  const host = memoryHost('hx0000000000000000000000000000000000000000')
  const first = loaded.contract.call('spin', { n: 1000n }, host, limits)
  if (!first.ok) throw new Error(`spin: ${first.failure.code} ${first.failure.message}`)
  let best = 0
  let steps = 0
  for (let i = 0; i < 3; i++) {
    const t = performance.now()
    const r = loaded.contract.call('spin', args, host, limits)
    const s = (performance.now() - t) / 1000
    if (!r.ok) throw new Error(`spin: ${r.failure.code} ${r.failure.message}`)
    steps = r.stepsUsed
    best = Math.max(best, r.stepsUsed / s)
  }
  return { stepsPerSecond: best, steps }
}

/** Runs the suite and reports its figures; throws if either side is wrong or loopchain is not deterministic. */
export async function runScoreBench(report: Report, opts: ScoreBenchOptions = {}): Promise<void> {
  const transfers = opts.transfers ?? 2_000
  if (!Number.isSafeInteger(transfers) || transfers < 1) throw new RangeError(`transfers must be a positive integer, got ${transfers}`)

  const e = performance.now()
  const engineA = await initEngine()
  const initEngineMs = performance.now() - e

  const plan = buildPlan(transfers)

  const a = await runChain(plan, engineA)
  await assertFinalState(plan, a, engineA)

  const evm = await runEvmTransferBench({ transfers, txsPerBlock: TXS_PER_BLOCK, accounts: ACCOUNTS })

  // Determinism: the same blocks from genesis on a fresh engine and store give the same roots.
  const engineB = await initEngine()
  const b = await runChain(plan, engineB)
  if (a.roots.length !== b.roots.length) throw new Error('the two runs executed different numbers of blocks')
  a.roots.forEach((root, i) => {
    if (root !== b.roots[i]) throw new Error(`not deterministic: block ${i + 1} has roots ${root} in run A and ${b.roots[i]} in run B`)
  })
  await assertFinalState(plan, b, engineB)

  const cold = coldLoadMs(engineA, plan.deployer.address)
  const spin = spinStepsPerSecond(engineA)

  const seconds = a.timedSeconds + b.timedSeconds
  const cpuSeconds = a.timedCpuSeconds + b.timedCpuSeconds
  const tps = (2 * transfers) / seconds
  const cpuTps = (2 * transfers) / cpuSeconds
  report('transfers_per_s', tps, 'tx/s')
  report('evm_transfers_per_s', evm.transfersPerSecond, 'tx/s')
  report('transfer_vs_evm_ratio', tps / evm.transfersPerSecond, 'x')
  report('transfers_per_cpu_s', cpuTps, 'tx/s')
  report('evm_transfers_per_cpu_s', evm.cpuTransfersPerSecond, 'tx/s')
  report('transfer_vs_evm_cpu_ratio', cpuTps / evm.cpuTransfersPerSecond, 'x')
  report('steps_per_s', (a.steps + b.steps) / seconds, 'steps/s')
  report('loop_steps_per_s', spin.stepsPerSecond, 'steps/s')
  report('cold_load_ms', cold, 'ms')
  report('cold_deploy_ms', median([a.coldDeployMs, b.coldDeployMs]), 'ms')
  report('init_engine_ms', initEngineMs, 'ms')
  console.log(
    `# loopchain: ${transfers} IRC-2 transfers among ${ACCOUNTS} holders in blocks of ${TXS_PER_BLOCK}, timed twice ` +
      `(run A ${Math.round(transfers / a.timedSeconds)} tx/s before the EVM run, run B ${Math.round(transfers / b.timedSeconds)} tx/s after it, ` +
      `fresh engine and store; ${a.roots.length} blocks with identical state and receipts roots); ` +
      `timed: wire decode, stateless checks with ed25519 verification (native, OpenSSL), tx root, executeBlock ` +
      `(QuickJS-ng wasm contract calls, state tree writes, state root with the core's JS SHA-256, receipts root), ` +
      `commit ops to MemoryKVStore; decode+checks ${Math.round((100 * (a.checkSeconds + b.checkSeconds)) / seconds)}% of the time; ` +
      `${Math.round((a.steps + b.steps) / (2 * transfers))} steps per transfer (receipt steps: 1,000 base + payload bytes + contract); ` +
      `loop contract ${spin.steps} steps per call`,
  )
  // Without the signature work of either side (ed25519 verify with decode here, secp256k1 recovery there).
  const execTps = (2 * transfers) / (seconds - a.checkSeconds - b.checkSeconds)
  const evmExecTps = evm.transfersPerSecond / (1 - evm.senderRecoveryShare)
  console.log(
    `# without signatures: loopchain ${Math.round(execTps)} tx/s, EVM ${Math.round(evmExecTps)} tx/s, ` +
      `ratio ${(execTps / evmExecTps).toFixed(2)} (not a BENCH figure)`,
  )
  console.log(`# EVM: ${evm.notes}`)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const arg = process.argv[2]
  await runScoreBench(printer('score'), arg === undefined ? {} : { transfers: Number(arg) })
}
