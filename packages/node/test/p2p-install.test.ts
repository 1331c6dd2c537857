import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('../../..', import.meta.url))

/** Every installed copy of a package: walks node_modules, scoped folders and nested node_modules. */
function installedVersions(name: string): { path: string; version: string }[] {
  const found: { path: string; version: string }[] = []
  const walk = (nm: string, depth: number) => {
    if (depth > 8 || !existsSync(nm)) return
    for (const entry of readdirSync(nm, { withFileTypes: true })) {
      if (!entry.isDirectory() && !entry.isSymbolicLink()) continue
      if (entry.name.startsWith('.')) continue
      const dirs = entry.name.startsWith('@')
        ? readdirSync(join(nm, entry.name)).map((s) => join(nm, entry.name, s))
        : [join(nm, entry.name)]
      for (const dir of dirs) {
        const pj = join(dir, 'package.json')
        if (existsSync(pj)) {
          const pkg = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string }
          if (pkg.name === name) found.push({ path: dir, version: pkg.version ?? '?' })
        }
        walk(join(dir, 'node_modules'), depth + 1)
      }
    }
  }
  walk(join(root, 'node_modules'), 0)
  for (const ws of ['packages', 'apps']) {
    if (!existsSync(join(root, ws))) continue
    for (const p of readdirSync(join(root, ws))) walk(join(root, ws, p, 'node_modules'), 0)
  }
  return found
}

describe('installed networking stack', () => {
  it('has exactly one version of @libp2p/interface (two copies make gossipsub fail silently)', () => {
    const copies = installedVersions('@libp2p/interface')
    expect(copies.length).toBeGreaterThan(0)
    expect([...new Set(copies.map((c) => c.version))]).toHaveLength(1)
  })

  it('has the browser-to-browser WebRTC dial race fixed in @libp2p/webrtc', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'node_modules/@libp2p/webrtc/package.json'), 'utf8')) as { version: string }
    // The patch is made against this exact version; a new version needs the patch redone (or dropped if fixed upstream).
    expect(pkg.version).toBe('6.0.33')
    expect(existsSync(join(root, '.patches', `@libp2p+webrtc+${pkg.version}.patch`))).toBe(true)
    const src = readFileSync(join(root, 'node_modules/@libp2p/webrtc/dist/src/private-to-private/initiate-connection.js'), 'utf8')
    expect(src).toContain("if (channel.readyState === 'connecting') {")
    expect(src).toContain("await pEvent(channel, ['open', 'close'], {")
    expect(src).toContain("if (channel.readyState !== 'closed') {")
    expect(src).not.toContain("if (channel.readyState !== 'open') {")
  })

  it('does not install react-native (pulled in as a peer of react-native-webrtc)', () => {
    expect(existsSync(join(root, 'node_modules/react-native'))).toBe(false)
    expect(readFileSync(join(root, '.npmrc'), 'utf8')).toMatch(/^legacy-peer-deps=true$/m)
  })
})
