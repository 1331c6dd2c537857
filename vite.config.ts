import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Plugin } from 'vite'
import { defineConfig, type ViteUserConfig } from 'vitest/config'
import type { TestSpecification } from 'vitest/node'

/** The web app's directory: `vite` serves it and `vite build` writes apps/web/dist. */
export const WEB_ROOT = fileURLToPath(new URL('./apps/web', import.meta.url))

/**
 * The dev server's chain.json: the one `loopchain devnet` writes into its directory
 * (LOOPCHAIN_DEVNET_DIR, default ./.devnet), so `npm run web:dev` beside a running devnet just works.
 * A production deployment ships its own chain.json with the built page (apps/web/README.md).
 */
function devnetChainJson(): Plugin {
  return {
    name: 'loopchain-devnet-chain-json',
    configureServer(server) {
      server.middlewares.use('/chain.json', (_req, res) => {
        const file = resolve(process.env.LOOPCHAIN_DEVNET_DIR ?? '.devnet', 'web', 'chain.json')
        if (!existsSync(file)) {
          res.statusCode = 404
          res.end(`no ${file}: start 'npm run devnet' first (or set LOOPCHAIN_DEVNET_DIR)`)
          return
        }
        res.setHeader('content-type', 'application/json')
        res.setHeader('cache-control', 'no-store')
        res.end(readFileSync(file))
      })
    },
  }
}

/**
 * Drops emitted assets no chunk refers to. The core's contract engine brings a QuickJS .wasm that
 * the bundler emits as soon as it sees the import, even when tree-shaking then removes every use:
 * the page never loads it, so it should not ship.
 */
function dropUnreferencedAssets(): Plugin {
  return {
    name: 'loopchain-drop-unreferenced-assets',
    apply: 'build',
    generateBundle(_options, bundle) {
      const code = Object.values(bundle)
        .map((f) => (f.type === 'chunk' ? f.code : typeof f.source === 'string' ? f.source : ''))
        .join('\n')
      for (const [name, f] of Object.entries(bundle)) {
        if (f.type === 'asset' && f.fileName.endsWith('.wasm') && !code.includes(f.fileName.split('/').pop() as string)) delete bundle[name]
      }
    },
  }
}

/**
 * One config for the whole tree. Under Vitest (mode `test`) it runs every package's tests; for
 * `vite` and `vite build` (npm run web:dev / web:build) it serves and builds the web app.
 */
/**
 * The in-process files that take longest (the fuzz and consensus suites) start first: sorted by
 * size, as Vitest does without a cache (a fresh clone, CI), the fuzz suite started last and ran
 * its 45 s alone on one core.
 */
const LONG_FIRST = [
  'packages/core/test/unit/fuzz.test.ts',
  'packages/core/test/unit/consensus.test.ts',
  'test/sim/consensus-sim.test.ts',
  'packages/node/test/native-crypto.test.ts',
]

export default defineConfig(async ({ mode }): Promise<ViteUserConfig> => {
  // Vitest runs in mode `test`; not process.env.VITEST, which a test's child processes inherit
  // (the devnet a test starts builds the page with this config in mode `production`).
  if (mode === 'test') {
    const { BaseSequencer } = await import('vitest/node')
    class LongFirst extends BaseSequencer {
      override async sort(files: TestSpecification[]) {
        const rank = (f: TestSpecification) => {
          const i = LONG_FIRST.findIndex((p) => f.moduleId.endsWith(p))
          return i < 0 ? LONG_FIRST.length : i
        }
        const sorted = await super.sort(files)
        const order = new Map(sorted.map((f, i) => [f, i]))
        const group = (f: TestSpecification) => f.project.config.sequence.groupOrder
        return sorted.toSorted((a, b) => group(a) - group(b) || rank(a) - rank(b) || (order.get(a) ?? 0) - (order.get(b) ?? 0))
      }
    }
    // Files that run in their process alone (no child processes, sockets, browsers or timing): two
    // at a time, on both cores. Everything else runs after them, one file at a time, as on a
    // 2-core machine a file of real node processes needs the other core.
    const inProcess = [
      // (Not channel-session: its drivers' timers are checked against sleeps of 20–30 ms.)
      'packages/core/test/unit/!(channel-session).test.ts',
      'packages/light-client/test/**/*.test.ts',
      'apps/web/test/**/*.test.ts',
      'test/sim/**/*.test.ts',
      'test/bench/report.test.ts',
      ...['chain-store', 'consensus-resend', 'mempool', 'native-crypto', 'p2p-unit', 'wal'].map((f) => `packages/node/test/${f}.test.ts`),
    ]
    return {
      test: {
        // Property and fuzz suites run hundreds of thousands of cases; 2 cores is the machine's size.
        testTimeout: 120_000,
        hookTimeout: 120_000,
        pool: 'forks',
        sequence: { sequencer: LongFirst },
        // CI asks for a machine-readable report as well (see .ci/run).
        reporters: process.env.LOOPCHAIN_TEST_REPORT ? ['default', 'json'] : ['default'],
        outputFile: process.env.LOOPCHAIN_TEST_REPORT ? { json: process.env.LOOPCHAIN_TEST_REPORT } : {},
        projects: [
          { extends: true, test: { name: 'unit', include: inProcess, maxWorkers: 2, sequence: { groupOrder: 0 } } },
          {
            extends: true,
            test: {
              name: 'system',
              include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
              exclude: [...inProcess, '**/node_modules/**'],
              maxWorkers: 1,
              sequence: { groupOrder: 1 },
            },
          },
        ],
      },
    }
  }
  return {
    root: WEB_ROOT,
    // The repository's cache, which `postinstall` clears after patching dependencies (not apps/web/node_modules/.vite).
    cacheDir: fileURLToPath(new URL('./node_modules/.vite', import.meta.url)),
    // Relative asset URLs: the built page works from any path it is deployed under.
    base: './',
    build: {
      outDir: 'dist',
      emptyOutDir: true,
      // libp2p's Node shims use top-level await (ES2022); every browser that runs WebRTC has it.
      target: 'es2022',
      // The benchmark target is 300 kB gzipped for the whole page; warn well before.
      chunkSizeWarningLimit: 1200,
      // Error classes name themselves after their class (LoopchainError sets name from new.target):
      // keep class names through minification so messages read RequestError, not a mangled name.
      rolldownOptions: { output: { keepNames: true } },
    },
    server: { host: '127.0.0.1' },
    preview: { host: '127.0.0.1' },
    plugins: [devnetChainJson(), dropUnreferencedAssets()],
  }
})
