/**
 * The core is isomorphic and pure: no Node built-ins, no clock, no randomness, no timers, no
 * host environment. Biome's lint rules catch most of this; this test is the backstop that also
 * runs where lint is skipped, and catches indirect forms the lint rule does not see.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const SRC = fileURLToPath(new URL('../../src', import.meta.url))

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

const FORBIDDEN: [RegExp, string][] = [
  [/from\s+['"]node:|import\(\s*['"]node:|require\(/, 'a Node built-in or require'],
  [/from\s+['"](fs|path|os|crypto|child_process|net|http|https|worker_threads|process)['"]/, 'a Node built-in'],
  [/\bDate\s*\.\s*now\b|\bnew\s+Date\b/, 'the clock (Date)'],
  [/\bperformance\s*\.\s*now\b/, 'the clock (performance.now)'],
  [/\bMath\s*\.\s*random\b/, 'randomness (Math.random)'],
  [/\bgetRandomValues\b|\brandomBytes\b|\brandomUUID\b/, 'randomness'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\s*\(/, 'a timer'],
  [/\bprocess\s*\.\s*(env|argv|hrtime|nextTick)\b/, 'the host environment'],
  [/\bfetch\s*\(|\bXMLHttpRequest\b|\bWebSocket\b|\bindexedDB\b|\blocalStorage\b/, 'I/O'],
]

describe('packages/core is pure', () => {
  it('no source file reaches a Node built-in, the clock, randomness, timers or I/O', () => {
    const offences: string[] = []
    for (const f of files(SRC)) {
      // Comments may mention what the code must not do, and the contract sandbox's prelude
      // deletes host globals (`delete Math.random`): naming a global to remove it is not a use.
      const code = readFileSync(f, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/(^|[^:])\/\/.*$/gm, '$1')
        .replace(/\bdelete\s+[\w.$]+/g, '')
      for (const [re, what] of FORBIDDEN) if (re.test(code)) offences.push(`${relative(SRC, f)}: ${what}`)
    }
    expect(offences).toEqual([])
  })

  it('the check itself flags an offending line', () => {
    const sample = "import { readFileSync } from 'node:fs'\nconst t = Date.now()\nconst r = Math.random()"
    expect(FORBIDDEN.filter(([re]) => re.test(sample)).length).toBe(3)
  })
})
