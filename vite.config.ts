import { defineConfig } from 'vitest/config'

/**
 * One config for the whole tree: Vitest runs every package's tests from here, and the web app
 * (apps/web) is built from here once it lands.
 */
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Property and fuzz suites run hundreds of thousands of cases; 2 cores is the machine's size.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // CI asks for a machine-readable report as well (see .ci/run).
    reporters: process.env.LOOPCHAIN_TEST_REPORT ? ['default', 'json'] : ['default'],
    outputFile: process.env.LOOPCHAIN_TEST_REPORT ? { json: process.env.LOOPCHAIN_TEST_REPORT } : {},
  },
})
