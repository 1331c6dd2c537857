/**
 * `npm run bench -- core`: hashing and signature throughput for the pure-JavaScript (noble) and
 * native providers (the node's: libsodium first for verification; OpenSSL alone beside it), and the state tree against @ethereumjs/mpt on the same keys.
 */
import { nobleCrypto, sha3_256, sha256, utf8 } from '@loopchain/core'
import { nativeCrypto, opensslCrypto } from '@loopchain/node'
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js'
import { runStateBench } from './core-state.js'
import { opsPerSecond, printer, type Report } from './report.js'

/** Hash and signature figures. */
export function runCryptoBench(report: Report): void {
  const block = new Uint8Array(64 * 1024).map((_, i) => i & 0xff)
  const mb = block.length / 1e6
  // `sha256` is core's own (allocation-light, `state/sha256.ts`); noble's is measured beside it
  // because core used it before, and the native one for the node.
  report('sha256_core', opsPerSecond(() => sha256(block)) * mb, 'MB/s')
  report('sha256_noble', opsPerSecond(() => nobleSha256(block)) * mb, 'MB/s')
  report('sha256_native', opsPerSecond(() => nativeCrypto.sha256(block)) * mb, 'MB/s')
  report('sha3_256_noble', opsPerSecond(() => sha3_256(block)) * mb, 'MB/s')
  for (const size of [33, 65, 150]) {
    const small = new Uint8Array(size).map((_, i) => i)
    const core = opsPerSecond(() => sha256(small))
    const noble = opsPerSecond(() => nobleSha256(small))
    report(`sha256_${size}b_core`, core, 'hashes/s')
    report(`sha256_${size}b_noble`, noble, 'hashes/s')
    report(
      `sha256_${size}b_native`,
      opsPerSecond(() => nativeCrypto.sha256(small)),
      'hashes/s',
    )
    report(`sha256_${size}b_core_vs_noble_ratio`, core / noble, 'x')
  }
  const sk = sha256(utf8('bench key'))
  const pk = nobleCrypto.publicKey(sk)
  const msg = sha256(utf8('a transaction hash'))
  const sig = nobleCrypto.sign(msg, sk)
  const signNoble = opsPerSecond(() => nobleCrypto.sign(msg, sk))
  const signNative = opsPerSecond(() => nativeCrypto.sign(msg, sk))
  const verifyNoble = opsPerSecond(() => nobleCrypto.verify(sig, msg, pk))
  const verifyNative = opsPerSecond(() => nativeCrypto.verify(sig, msg, pk))
  const verifyOpenssl = opsPerSecond(() => opensslCrypto.verify(sig, msg, pk))
  report('ed25519_sign_noble', signNoble, 'ops/s')
  report('ed25519_sign_native', signNative, 'ops/s')
  report('ed25519_sign_native_vs_noble_ratio', signNative / signNoble, 'x')
  report('ed25519_verify_noble', verifyNoble, 'ops/s')
  report('ed25519_verify_native', verifyNative, 'ops/s')
  report('ed25519_verify_native_vs_noble_ratio', verifyNative / verifyNoble, 'x')
  report('ed25519_verify_openssl', verifyOpenssl, 'ops/s')
  report('ed25519_verify_native_vs_openssl_ratio', verifyNative / verifyOpenssl, 'x')
  // An invalid signature (one bit of S flipped): what a node pays for a forged transaction. The
  // native provider's libsodium refusal is final unless R might be of small order.
  const bad = Uint8Array.from(sig)
  bad[40] = (bad[40] as number) ^ 1
  const refuseNative = opsPerSecond(() => nativeCrypto.verify(bad, msg, pk))
  const refuseOpenssl = opsPerSecond(() => opensslCrypto.verify(bad, msg, pk))
  report('ed25519_refuse_native', refuseNative, 'ops/s')
  report('ed25519_refuse_openssl', refuseOpenssl, 'ops/s')
  report('ed25519_refuse_native_vs_openssl_ratio', refuseNative / refuseOpenssl, 'x')
}

/** The whole core suite. */
export async function runCoreBench(report: Report, sizes = [1e4, 1e5, 1e6]): Promise<void> {
  runCryptoBench(report)
  await runStateBench(report, { sizes })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sizes = process.argv.slice(2).map(Number)
  await runCoreBench(printer('core'), sizes.length ? sizes : undefined)
}
