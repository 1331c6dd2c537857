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
  },
})
