#!/usr/bin/env node
// Runs the TypeScript CLI through tsx (the packages export their sources; no build step).
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))
// tsx as this package resolves it, so the command works from any directory.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
const r = spawnSync(process.execPath, ['--import', tsx, main, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(r.status ?? 1)
