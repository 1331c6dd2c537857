/**
 * IDONTWANT between three real hosts over TCP: a receiver of a forwarded message from the host's
 * `idontwantMinBytes` up tells its other mesh peers it has it; smaller ones go without. By
 * default (`IDONTWANT_MIN_BYTES`, 64 KiB) a proposal of a few hundred transfers goes without.
 */
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { sha256, utf8 } from '@loopchain/core'
import { afterEach, describe, expect, it } from 'vitest'
import { createNodeHost, IDONTWANT_MIN_BYTES, type NodeHost } from '../src/index.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const open: NodeHost[] = []
afterEach(async () => {
  for (const h of open.splice(0)) await h.stop().catch(() => undefined)
})

/** Three member hosts in a full mesh on `proposal`, each checking a proposal for 50 ms before it forwards it. */
async function mesh(tag: string, idontwantMinBytes?: number) {
  const keys = [0, 1, 2].map((i) => sha256(utf8(`idontwant ${tag} ${i}`)))
  const ids = await Promise.all(keys.map(async (k) => peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', k)).toString()))
  const check = async () => {
    await sleep(50)
    return 'accept' as const
  }
  const hosts: NodeHost[] = []
  const got = [0, 0, 0]
  for (const [i, nodeKey] of keys.entries()) {
    const h = await createNodeHost({
      chainId: 'idontwant-test',
      nodeKey,
      isMember: (id) => ids.includes(id),
      bootstrap: hosts.flatMap((x) => x.multiaddrs()),
      wsPort: false,
      relay: false,
      validators: { proposal: check },
      ...(idontwantMinBytes !== undefined ? { idontwantMinBytes } : {}),
    })
    open.push(h)
    hosts.push(h)
    h.subscribe('proposal', () => {
      got[i] = (got[i] as number) + 1
    })
  }
  const deadline = Date.now() + 20_000
  while (hosts.some((h) => h.meshPeers('proposal').length < 2)) {
    if (Date.now() > deadline) throw new Error('no full mesh within 20 s')
    await sleep(50)
  }
  /** IDONTWANTs each host has received, over all its peers. */
  const told = () =>
    hosts.map((h) => {
      const m = (h.libp2p.services as { pubsub: { idontwants: Map<string, Map<string, number>> } }).pubsub.idontwants
      return [...m.values()].reduce((n, ids) => n + ids.size, 0)
    })
  const publish = async (bytes: number) => {
    const before = [...got]
    const data = new Uint8Array(bytes)
    data.set(utf8(`${tag} ${bytes}`))
    await hosts[0]?.publish('proposal', data)
    while (got[1] === before[1] || got[2] === before[2]) {
      if (Date.now() > deadline + 10_000) throw new Error('the message did not reach both receivers')
      await sleep(10)
    }
    // The receivers' IDONTWANTs go out on receipt, before their 50 ms check; let them land.
    await sleep(100)
  }
  return { publish, told }
}

describe('IDONTWANT for large forwarded messages', () => {
  it('by default a 20 KB proposal goes without IDONTWANT', async () => {
    expect(IDONTWANT_MIN_BYTES).toBe(64 * 1024)
    const m = await mesh('default')
    await m.publish(20_000)
    expect(m.told()).toEqual([0, 0, 0])
  })

  it('with the threshold at 16 KiB, a 20 KB proposal makes each receiver tell the other it has it; a 2 KB one does not', async () => {
    const m = await mesh('16k', 16 * 1024)
    await m.publish(2_000)
    expect(m.told()).toEqual([0, 0, 0])
    await m.publish(20_000)
    // Hosts 1 and 2 each told the other (not the sender, whose copy it came from).
    expect(m.told()).toEqual([0, 1, 1])
  })
})
