/**
 * The EVM baseline of `npm run bench -- score`: ERC-20 transfers per second on `@ethereumjs/vm`,
 * through the path a node takes for each block it receives. The token is the committed fixture
 * `fixtures/erc20/token.json` (compiled once from Token.sol; never compiled here).
 *
 * Untimed: deploy the token, fund every account with ether and tokens (through the same block
 * path, which also warms the JIT), and sign every transfer, each serialized to bytes as it would
 * arrive from the network. Timed, per block: decode the raw transactions, recover each sender from
 * its signature, assemble the block, and `runBlock` it, which checks nonces and balances, charges
 * fees, executes the bytecode, writes storage, and computes the state, transactions and receipts
 * roots once.
 * After the clock stops every receipt, the return value of every call and every balance are
 * checked, so a failing transaction path can never pass for a fast one.
 *
 * Standalone: `npx tsx test/bench/evm.ts [transfers]`.
 */
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { createBlock } from '@ethereumjs/block'
import { Common, Hardfork, Mainnet } from '@ethereumjs/common'
import { Caches, MerkleStateManager } from '@ethereumjs/statemanager'
import { createFeeMarket1559Tx, createTxFromRLP, type TypedTransaction } from '@ethereumjs/tx'
import {
  type Address,
  bigIntToBytes,
  bytesToBigInt,
  bytesToHex,
  concatBytes,
  createAccount,
  createAddressFromPrivateKey,
  createContractAddress,
  equalsBytes,
  hexToBytes,
  setLengthLeft,
} from '@ethereumjs/util'
import { createVM, type RunBlockResult, runBlock, type VM } from '@ethereumjs/vm'

/** What {@link runEvmTransferBench} measured. */
export interface EvmTransferBenchResult {
  /** Transfers executed per second of wall-clock time, state roots included. */
  transfersPerSecond: number
  /** State roots computed in the timed part: one per block. */
  stateRootsComputed: number
  /**
   * Transfers per second of this process's CPU time: steadier than wall clock on a shared machine
   * (it also counts the garbage collector's threads, so it can come out below the wall-clock figure).
   */
  cpuTransfersPerSecond: number
  /** Fraction of the timed wall clock spent recovering senders from signatures. */
  senderRecoveryShare: number
  /** How the figure was made (hardfork, block size, what is in the timed path). */
  notes: string
}

/** Options of {@link runEvmTransferBench}. */
export interface EvmTransferBenchOptions {
  /** Transfers in the timed part. */
  transfers: number
  /** Transfers per block; one state root each. Default 500, a busy mainnet block's worth. */
  txsPerBlock?: number
  /** Token holders the transfers move between. Default 1,000. */
  accounts?: number
}

interface TokenFixture {
  bytecode: string
  deployedBytecode: string
  methodIdentifiers: Record<string, string>
  compiler: { version: string }
}

/** The committed ERC-20 fixture; `test/evm-fixture.test.ts` keeps it in step with Token.sol. */
export const TOKEN: TokenFixture = JSON.parse(readFileSync(new URL('./fixtures/erc20/token.json', import.meta.url), 'utf8'))

/** The hardfork of Ethereum mainnet today, and the `evmVersion` the fixture was compiled for. */
const HARDFORK = Hardfork.Osaka
/** Base fee of every block: 1 gwei; fees are real, so the sender's ether balance is checked and charged. */
const BASE_FEE = 1_000_000_000n
/** Tip over the base fee, as a real sender pays. */
const PRIORITY_FEE = 1_000_000_000n
/** Gas limit of a transfer: it uses 51,370 when the recipient's slot is new, 34,270 otherwise. */
const TRANSFER_GAS = 100_000n
/** Gas limit of the deployment: the creation code is 1.5 kB. */
const DEPLOY_GAS = 2_000_000n
/** Block gas limit: never the bottleneck, the block size is chosen by transaction count. */
const BLOCK_GAS_LIMIT = 1_000_000_000n
/** Ether of every account at genesis: enough gas money for any run. */
const GENESIS_WEI = 10n ** 24n
/** Tokens each holder gets before the clock starts; each timed transfer moves 1, so none runs dry. */
const HOLDER_TOKENS = 10n ** 12n
/** First private key; keys are consecutive integers, so every run uses the same accounts. */
const KEY_BASE = 0x10000n
/** Value an ERC-20 `transfer` returns on success: ABI-encoded `true`. */
const ABI_TRUE = setLengthLeft(Uint8Array.of(1), 32)

/** ABI-encodes a word. */
function word(v: bigint): Uint8Array {
  return setLengthLeft(bigIntToBytes(v), 32)
}

/** Calldata for `signature` with static arguments (addresses and uint256s only). */
function calldata(signature: string, ...args: (Address | bigint)[]): Uint8Array {
  const selector = TOKEN.methodIdentifiers[signature]
  if (selector === undefined) throw new Error(`token.json has no method ${signature}`)
  return concatBytes(hexToBytes(`0x${selector}`), ...args.map((a) => (typeof a === 'bigint' ? word(a) : setLengthLeft(a.bytes, 32))))
}

/** The chain the benchmark runs on: mainnet rules at {@link HARDFORK}. */
export function evmCommon(): Common {
  return new Common({ chain: Mainnet, hardfork: HARDFORK })
}

/**
 * A VM on in-memory Merkle state whose genesis gives each address {@link GENESIS_WEI}. The state
 * manager keeps account and storage caches, as the ethereumjs client does: writes reach the trie
 * when the block's state root is computed, not one by one (about 15% more transfers per second
 * than createVM's default of no caches).
 */
export async function createFundedVM(common: Common, funded: Address[]): Promise<VM> {
  const vm = await createVM({ common, stateManager: new MerkleStateManager({ common, caches: new Caches() }) })
  for (const a of funded) await vm.stateManager.putAccount(a, createAccount({ nonce: 0n, balance: GENESIS_WEI }))
  return vm
}

/** Signs a call to the token (or, with `to` undefined, a deployment) and returns it as wire bytes. */
function signedTx(common: Common, key: Uint8Array, nonce: bigint, to: Address | undefined, data: Uint8Array, gasLimit: bigint): Uint8Array {
  return createFeeMarket1559Tx(
    { nonce, to, data, gasLimit, maxFeePerGas: BASE_FEE + PRIORITY_FEE, maxPriorityFeePerGas: PRIORITY_FEE, chainId: common.chainId() },
    { common },
  )
    .sign(key)
    .serialize()
}

/** Time spent in parts of the timed path, for the notes. */
interface Split {
  recoveryMs: number
}

/** Executes raw transactions as block `number`, the way a node does: decode, assemble, run, root. */
async function runRawBlock(vm: VM, common: Common, number: bigint, raw: Uint8Array[], split?: Split): Promise<RunBlockResult> {
  const transactions: TypedTransaction[] = raw.map((r) => createTxFromRLP(r, { common }))
  // runTx would recover each sender itself; doing it first (decoded transactions are frozen, so
  // they keep the result) is the same work, but lets the notes say how much of the time it takes.
  const t = performance.now()
  for (const tx of transactions) tx.getSenderAddress()
  if (split !== undefined) split.recoveryMs += performance.now() - t
  const block = createBlock(
    { header: { number, timestamp: number * 12n, gasLimit: BLOCK_GAS_LIMIT, baseFeePerGas: BASE_FEE }, transactions },
    { common },
  )
  // No parent chain exists here, so header checks against a parent are skipped; `generate` makes
  // runBlock compute the state, transactions and receipts roots instead of comparing them.
  return runBlock(vm, { block, generate: true, skipHeaderValidation: true, skipBlockValidation: true })
}

/** Throws unless every transaction of `result` succeeded, returned `true` (if a call) and logged. */
function assertAllSucceeded(result: RunBlockResult, what: string, expectReturn: Uint8Array | undefined): void {
  result.results.forEach((r, i) => {
    const receipt = result.receipts[i]
    const error = r.execResult.exceptionError
    if (error !== undefined) throw new Error(`${what} tx ${i} failed: ${error.error}`)
    if (receipt === undefined || !('status' in receipt) || receipt.status !== 1) throw new Error(`${what} tx ${i}: receipt status is not 1`)
    if (r.totalGasSpent <= 21_000n) throw new Error(`${what} tx ${i} used ${r.totalGasSpent} gas: no code ran`)
    if (receipt.logs.length !== 1) throw new Error(`${what} tx ${i} emitted ${receipt.logs.length} logs, expected one Transfer`)
    if (expectReturn !== undefined && !equalsBytes(r.execResult.returnValue, expectReturn)) {
      throw new Error(`${what} tx ${i} returned ${bytesToHex(r.execResult.returnValue)}, expected true`)
    }
  })
}

/** Calls a view function of the token (no transaction, no state change) and returns its word. */
export async function callWord(vm: VM, token: Address, data: Uint8Array): Promise<bigint> {
  const res = await vm.evm.runCall({ to: token, data, gasLimit: 1_000_000n })
  if (res.execResult.exceptionError !== undefined) throw new Error(`call reverted: ${res.execResult.exceptionError.error}`)
  return bytesToBigInt(res.execResult.returnValue)
}

/** Deploys the fixture from `deployerKey` (nonce 0) minting `supply`; returns the token's address. */
export async function deployToken(vm: VM, common: Common, deployerKey: Uint8Array, supply: bigint): Promise<Address> {
  const deployer = createAddressFromPrivateKey(deployerKey)
  const data = concatBytes(hexToBytes(TOKEN.bytecode as `0x${string}`), word(supply))
  const result = await runRawBlock(vm, common, 1n, [signedTx(common, deployerKey, 0n, undefined, data, DEPLOY_GAS)])
  assertAllSucceeded(result, 'deployment', undefined)
  const token = createContractAddress(deployer, 0n)
  const created = result.results[0]?.createdAddress
  if (created === undefined || !created.equals(token)) throw new Error('deployment created no contract at the expected address')
  return token
}

/**
 * Measures ERC-20 transfers per second on `@ethereumjs/vm`, in blocks, each with its state root.
 * Throws if any transfer fails or if the balances afterwards are not the ones expected.
 */
export async function runEvmTransferBench(opts: EvmTransferBenchOptions): Promise<EvmTransferBenchResult> {
  const { transfers, txsPerBlock = 500, accounts = 1_000 } = opts
  for (const [name, v] of Object.entries({ transfers, txsPerBlock, accounts })) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`)
  }
  if (accounts < 2) throw new RangeError('accounts must be at least 2: a transfer needs a sender and another recipient')

  const common = evmCommon()
  const deployerKey = setLengthLeft(bigIntToBytes(KEY_BASE), 32)
  const keys = Array.from({ length: accounts }, (_, i) => setLengthLeft(bigIntToBytes(KEY_BASE + 1n + BigInt(i)), 32))
  const deployer = createAddressFromPrivateKey(deployerKey)
  const holders = keys.map((k) => createAddressFromPrivateKey(k))
  const vm = await createFundedVM(common, [deployer, ...holders])
  const supply = HOLDER_TOKENS * BigInt(accounts) * 2n
  const token = await deployToken(vm, common, deployerKey, supply)

  // The expected token balance of every address, kept alongside the chain and compared at the end.
  const expected = new Map<Address, bigint>([deployer, ...holders].map((a) => [a, 0n]))
  expected.set(deployer, supply)
  const move = (from: Address, to: Address, v: bigint) => {
    expected.set(from, expected.get(from)! - v)
    expected.set(to, expected.get(to)! + v)
  }
  let number = 2n

  // Untimed: the deployer gives every holder tokens, through the same path as the timed blocks.
  let deployerNonce = 1n
  const funding = holders.map((h) => {
    move(deployer, h, HOLDER_TOKENS)
    return signedTx(common, deployerKey, deployerNonce++, token, calldata('transfer(address,uint256)', h, HOLDER_TOKENS), TRANSFER_GAS)
  })
  for (let i = 0; i < funding.length; i += txsPerBlock) {
    assertAllSucceeded(await runRawBlock(vm, common, number++, funding.slice(i, i + txsPerBlock)), 'funding', ABI_TRUE)
  }

  // Untimed: sign every transfer. Holder i pays 1 unit to a holder 1..accounts-1 places further on,
  // stepping by a prime so recipients spread over all holders and never equal the sender.
  const nonces = new Array<bigint>(accounts).fill(0n)
  const raw: Uint8Array[] = []
  for (let t = 0; t < transfers; t++) {
    const from = t % accounts
    const to = (from + 1 + ((t * 7919) % (accounts - 1))) % accounts
    move(holders[from]!, holders[to]!, 1n)
    raw.push(signedTx(common, keys[from]!, nonces[from]!, token, calldata('transfer(address,uint256)', holders[to]!, 1n), TRANSFER_GAS))
    nonces[from]! += 1n
  }

  // Timed: block after block, each with its state root.
  const results: RunBlockResult[] = []
  const split: Split = { recoveryMs: 0 }
  const cpuStart = process.cpuUsage()
  const start = performance.now()
  for (let i = 0; i < raw.length; i += txsPerBlock) {
    results.push(await runRawBlock(vm, common, number++, raw.slice(i, i + txsPerBlock), split))
  }
  const seconds = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpuStart)
  const cpuSeconds = (cpu.user + cpu.system) / 1e6

  // Untimed: the run must have done what it claims.
  let executed = 0
  const roots = new Set<string>()
  for (const r of results) {
    assertAllSucceeded(r, 'transfer', ABI_TRUE)
    executed += r.results.length
    roots.add(bytesToHex(r.stateRoot))
  }
  if (executed !== transfers) throw new Error(`executed ${executed} transfers, expected ${transfers}`)
  if (roots.size !== results.length) throw new Error('two blocks of transfers ended on the same state root')
  let sum = 0n
  for (const [address, want] of expected) {
    const got = await callWord(vm, token, calldata('balanceOf(address)', address))
    if (got !== want) throw new Error(`balanceOf(${address}) is ${got}, expected ${want}`)
    sum += got
  }
  const totalSupply = await callWord(vm, token, calldata('totalSupply()'))
  if (sum !== supply || totalSupply !== supply) throw new Error(`balances sum to ${sum}, totalSupply() is ${totalSupply}, minted ${supply}`)

  return {
    transfersPerSecond: transfers / seconds,
    stateRootsComputed: results.length,
    cpuTransfersPerSecond: transfers / cpuSeconds,
    senderRecoveryShare: split.recoveryMs / 1000 / seconds,
    notes:
      `@ethereumjs/vm ${HARDFORK}, solc ${TOKEN.compiler.version.split('+')[0]} optimized ERC-20, ` +
      `${transfers} EIP-1559 transfers among ${accounts} holders in blocks of ${txsPerBlock}, in-memory Merkle state with caches; ` +
      'timed: decode, sender recovery (pure-JS secp256k1, ethereumjs default), execution, storage writes, one state root per block; ' +
      `sender recovery ${Math.round((100 * split.recoveryMs) / 1000 / seconds)}% of the time`,
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const transfers = Number(process.argv[2] ?? 2_000)
  const r = await runEvmTransferBench({ transfers })
  console.log(`BENCH score.evm_transfers_per_s ${Math.round(r.transfersPerSecond)} tx/s`)
  console.log(`BENCH score.evm_transfers_per_cpu_s ${Math.round(r.cpuTransfersPerSecond)} tx/s`)
  console.log(`# ${r.notes}; ${r.stateRootsComputed} state roots`)
}
