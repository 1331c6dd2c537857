/**
 * An in-memory twin of peer links for tests and tools: wallets on one {@link MemoryLinkNetwork}
 * reach each other by name, frames are delivered in order on a later microtask (as a stream would),
 * and a link can be cut to test reconnects.
 */
import type { WalletLink, WalletLinks } from './channel-wallet.js'

class MemoryLink implements WalletLink {
  other: MemoryLink | undefined
  private readonly messageCbs: ((f: Uint8Array) => void)[] = []
  private readonly closeCbs: (() => void)[] = []
  private open = true
  constructor(
    readonly remotePeer: string,
    readonly kind: 'direct' | 'relayed',
  ) {}
  send(frame: Uint8Array): void {
    if (!this.open) throw new Error('the link is closed')
    const to = this.other
    const copy = frame.slice()
    queueMicrotask(() => to?.deliver(copy))
  }
  // Frames that arrive before anyone listens wait, as they would in a stream's buffer.
  private readonly early: Uint8Array[] = []
  deliver(frame: Uint8Array): void {
    if (!this.open) return
    if (this.messageCbs.length === 0) this.early.push(frame)
    for (const cb of this.messageCbs) cb(frame)
  }
  onMessage(cb: (frame: Uint8Array) => void): void {
    this.messageCbs.push(cb)
    for (const f of this.early.splice(0)) cb(f)
  }
  onClose(cb: () => void): void {
    // As a libp2p link (peer-link.ts): a link already closed says so at once.
    if (!this.open) cb()
    else this.closeCbs.push(cb)
  }
  close(): void {
    if (!this.open) return
    this.open = false
    for (const cb of this.closeCbs) cb()
    this.other?.close()
  }
}

/** A set of named endpoints that can link to each other. */
export class MemoryLinkNetwork {
  private readonly endpoints = new Map<string, (link: WalletLink) => void>()
  private readonly links: MemoryLink[] = []

  /** The {@link WalletLinks} of endpoint `name`; others dial it as `mem/<name>`. */
  endpoint(name: string): WalletLinks {
    const listeners: ((l: WalletLink) => void)[] = []
    this.endpoints.set(name, (l) => {
      for (const cb of listeners) cb(l)
    })
    return {
      myAddresses: () => [`mem/${name}`],
      selfId: () => `mem/${name}`,
      onLink: (cb) => {
        listeners.push(cb)
      },
      dial: async (address) => {
        const target = this.endpoints.get(address.replace(/^mem\//, ''))
        if (target === undefined) throw new Error(`nobody at ${address}`)
        const mine = new MemoryLink(address, 'direct')
        const theirs = new MemoryLink(`mem/${name}`, 'direct')
        mine.other = theirs
        theirs.other = mine
        this.links.push(mine, theirs)
        target(theirs)
        return mine
      },
    }
  }

  /** Cuts every link (both ends see it close). */
  cutAll(): void {
    for (const l of this.links.splice(0)) l.close()
  }

  /** Cuts the links between endpoints `a` and `b` (both ends see them close; either may dial again). */
  cut(a: string, b: string): void {
    const between = (l: MemoryLink) =>
      (l.remotePeer === `mem/${a}` && l.other?.remotePeer === `mem/${b}`) ||
      (l.remotePeer === `mem/${b}` && l.other?.remotePeer === `mem/${a}`)
    for (const l of this.links.filter(between)) l.close()
  }

  /** Takes endpoint `name` off the network (a closed page). */
  remove(name: string): void {
    this.endpoints.delete(name)
  }
}
