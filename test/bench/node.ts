/**
 * `npm run bench -- node`: one validator in this process, on LevelDB in a temp dir, no network —
 * the CPU a node spends per transaction from its wire bytes to its committed block (mempool checks
 * and signature, proposal, execution, the state tree, the atomic block write), next to the CPU of
 * verifying the same transactions' signatures alone, measured in the same run. Their ratio shows
 * how much of a node's own work per transaction is the signature check it cannot skip; `bench net`
 * adds the network and three more validators on the same cores. Also the CPU per put of a
 * block-sized LevelDB batch, chained (what the store uses) vs array. Option: `--txs N` (default 20,000).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  DEFAULT_PARAMS,
  decodeTransaction,
  encode,
  type Genesis,
  keyPairFromSecret,
  makeValidatorSet,
  Right,
  sha256,
  transactionCodec,
  transactionHash,
  utf8,
} from '@loopchain/core'
import { FullNode, LevelKVStore, nativeCrypto } from '@loopchain/node'
import { ClassicLevel } from 'classic-level'
import type { Report } from './report.js'
import { benchSenders, benchTransfer } from './transfers.js'

const SENDERS = 1000

export async function runNodeBench(report: Report, opts: { txs?: number } = {}): Promise<void> {
  const total = opts.txs ?? 20_000
  const senders = benchSenders('bench-node-sender', SENDERS)
  const validator = keyPairFromSecret(sha256(utf8('bench-node-validator')), nativeCrypto)
  const genesis: Genesis = {
    chainId: 'bench-node',
    networkId: 7,
    timestamp: Date.now() * 1000 - 1_000_000,
    validators: makeValidatorSet([{ address: validator.address, publicKey: validator.publicKey, power: 1 }]),
    members: [{ id: 'bank-0', name: 'Bank 0', address: validator.address, nodeKey: undefined, rights: Right.Validator }],
    balances: senders.map((s) => ({ address: s.address, amount: 10n ** 20n })).sort((a, b) => (a.address < b.address ? -1 : 1)),
    params: { ...DEFAULT_PARAMS },
  }
  const now = Date.now() * 1000
  const wire = Array.from({ length: total }, (_, j) => encode(transactionCodec, benchTransfer(senders, 7, j, now)))

  // Baseline: the same transactions' signatures verified alone (same keys, same messages).
  const decoded = wire.slice(0, 5000).map((b) => decodeTransaction(b))
  const hashes = decoded.map((t) => transactionHash(t.body))
  for (let i = 0; i < 1000; i++)
    nativeCrypto.verify(
      (decoded[i] as (typeof decoded)[number]).signature,
      hashes[i] as Uint8Array,
      (decoded[i] as (typeof decoded)[number]).publicKey,
    )
  const v0 = process.cpuUsage()
  for (let i = 0; i < decoded.length; i++) {
    const t = decoded[i] as (typeof decoded)[number]
    if (!nativeCrypto.verify(t.signature, hashes[i] as Uint8Array, t.publicKey)) throw new Error('a benchmark transaction does not verify')
  }
  const v = process.cpuUsage(v0)
  const verifyUs = (v.user + v.system) / decoded.length

  await storeBatchFigures(report)

  const dir = mkdtempSync(join(tmpdir(), 'loopchain-bench-node-'))
  const node = await FullNode.open({ dataDir: dir, genesis, validatorSecret: validator.secretKey })
  try {
    node.start()
    let committed = 0
    let blocks = 0
    node.onBlock((b) => {
      committed += b.block.transactions.length
      if (b.block.transactions.length > 0) blocks++
    })
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    // A thousand at a time, as JSON-RPC batches from many clients would arrive; each sender's
    // nonces stay in order because a group is pooled before the next is sent.
    for (let k = 0; k < total; k += SENDERS) {
      await Promise.all(wire.slice(k, k + SENDERS).map((b) => node.submit(b)))
      if (k % (5 * SENDERS) === 0) console.error(`node: submitted ${k + SENDERS} / ${total}, committed ${committed}`)
    }
    while (committed < total) await new Promise((r) => setTimeout(r, 5))
    const wallS = (performance.now() - t0) / 1000
    const c = process.cpuUsage(c0)
    const pipelineUs = (c.user + c.system) / total
    report('txs', total, 'txs')
    report('blocks', blocks, 'blocks')
    report('verify_us_per_tx', verifyUs, 'µs')
    report('pipeline_cpu_us_per_tx', pipelineUs, 'µs')
    report('pipeline_vs_verify_ratio', pipelineUs / verifyUs, 'x')
    report('committed_tps_one_process', total / wallS, 'tx/s')
    // LevelDB's table-file writes (flushes and compactions) over what the node wrote: small in a
    // run this short, whose database stays within LevelDB's first levels (`bench net` runs longer).
    const w = node.store.writeStats?.()
    if (w) {
      report('store_written_bytes_per_tx', w.writtenBytes / total, 'B')
      report('store_write_amplification', w.tableBytesWritten / w.writtenBytes, 'x')
    }
  } finally {
    await node.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * CPU per put of a block-sized LevelDB batch: the store's chained batch (what the node writes
 * with) against classic-level's array batch (what it wrote with before) — 10 batches of 10,000.
 */
async function storeBatchFigures(report: Report): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'loopchain-bench-store-'))
  const store = await LevelKVStore.open(join(dir, 'store'), { sync: false })
  const raw = new ClassicLevel<Uint8Array, Uint8Array>(join(dir, 'raw'), { keyEncoding: 'view', valueEncoding: 'view' })
  await raw.open()
  try {
    const ops = () =>
      Array.from({ length: 10_000 }, (_, i) => ({
        type: 'put' as const,
        key: globalThis.crypto.getRandomValues(new Uint8Array(40)),
        value: new Uint8Array(100 + (i % 7)),
      }))
    const perPut = async (write: (batch: ReturnType<typeof ops>) => Promise<void>) => {
      const batches = Array.from({ length: 10 }, ops)
      await write(ops()) // warm-up
      const c0 = process.cpuUsage()
      for (const b of batches) await write(b)
      const c = process.cpuUsage(c0)
      return (c.user + c.system) / (batches.length * 10_000)
    }
    const chained = await perPut((b) => store.write(b))
    const array = await perPut((b) => raw.batch(b, { sync: false }))
    report('store_put_cpu_us_chained', chained, 'µs')
    report('store_put_cpu_us_array', array, 'µs')
    report('store_put_array_vs_chained_ratio', array / chained, 'x')
  } finally {
    await store.close()
    await raw.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
