/**
 * Keeps the ERC-20 fixture of the EVM baseline (`test/bench/fixtures/erc20/token.json`) honest
 * without compiling: it must come from the Token.sol beside it, its creation code must deploy
 * exactly its runtime code, and that code must move tokens as an ERC-20 does.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createFeeMarket1559Tx } from '@ethereumjs/tx'
import { bigIntToBytes, bytesToHex, concatBytes, createAddressFromPrivateKey, hexToBytes, setLengthLeft } from '@ethereumjs/util'
import { runTx } from '@ethereumjs/vm'
import { describe, expect, it } from 'vitest'
import { callWord, createFundedVM, deployToken, evmCommon, TOKEN } from './bench/evm.js'

const fixture = JSON.parse(readFileSync(new URL('./bench/fixtures/erc20/token.json', import.meta.url), 'utf8'))
const word = (v: bigint) => setLengthLeft(bigIntToBytes(v), 32)
const key = (n: bigint) => setLengthLeft(bigIntToBytes(n), 32)
const selector = (signature: string) => hexToBytes(`0x${TOKEN.methodIdentifiers[signature]}`)

describe('ERC-20 fixture', () => {
  it('was compiled from the Token.sol beside it, optimizer on with 200 runs', () => {
    const source = readFileSync(new URL('./bench/fixtures/erc20/Token.sol', import.meta.url), 'utf8')
    // A mismatch means Token.sol was edited without `npx tsx test/bench/fixtures/erc20/compile.ts`.
    expect(createHash('sha256').update(source).digest('hex')).toBe(fixture.sourceSha256)
    expect(fixture.compiler.settings.optimizer).toEqual({ enabled: true, runs: 200 })
    expect(TOKEN.methodIdentifiers['transfer(address,uint256)']).toBe('a9059cbb')
    expect(TOKEN.methodIdentifiers['balanceOf(address)']).toBe('70a08231')
  })

  it('deploys its runtime bytecode, mints to the deployer, and moves balances on transfer', async () => {
    const common = evmCommon()
    const deployerKey = key(0x10000n)
    const deployer = createAddressFromPrivateKey(deployerKey)
    const recipient = createAddressFromPrivateKey(key(0x10001n))
    const vm = await createFundedVM(common, [deployer])
    const token = await deployToken(vm, common, deployerKey, 1_000n)

    expect(bytesToHex(await vm.stateManager.getCode(token))).toBe(TOKEN.deployedBytecode)
    const balanceOf = (a: typeof deployer) => callWord(vm, token, concatBytes(selector('balanceOf(address)'), setLengthLeft(a.bytes, 32)))
    expect(await balanceOf(deployer)).toBe(1_000n)
    expect(await callWord(vm, token, selector('totalSupply()'))).toBe(1_000n)

    const transfer = (value: bigint, nonce: bigint) =>
      createFeeMarket1559Tx(
        {
          nonce,
          to: token,
          data: concatBytes(selector('transfer(address,uint256)'), setLengthLeft(recipient.bytes, 32), word(value)),
          gasLimit: 100_000n,
          maxFeePerGas: 10n ** 9n,
          chainId: common.chainId(),
        },
        { common },
      ).sign(deployerKey)

    const ok = await runTx(vm, { tx: transfer(250n, 1n) })
    expect(ok.execResult.exceptionError).toBeUndefined()
    expect(ok.execResult.returnValue).toEqual(word(1n))
    expect(ok.receipt.logs).toHaveLength(1)
    expect(await balanceOf(deployer)).toBe(750n)
    expect(await balanceOf(recipient)).toBe(250n)

    // An overdraft reverts and moves nothing: the path the benchmark measures can fail loudly.
    const overdraft = await runTx(vm, { tx: transfer(751n, 2n) })
    expect(overdraft.execResult.exceptionError?.error).toBe('revert')
    expect(await balanceOf(deployer)).toBe(750n)
    expect(await balanceOf(recipient)).toBe(250n)
  })
})
