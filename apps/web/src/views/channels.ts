/**
 * The channels page: this browser's wallet (key, proven balance, test funds on a devnet), its
 * invite (text, link, QR code), opening a channel from someone's invite, and each channel —
 * balances, the count of states both signed, how the link to the peer runs, payments, private
 * chat, the watchtower, closing together or alone, and what the chain recorded.
 */
import type { ChannelWallet, WalletChannel, WalletState } from '@loopchain/light-client'
import qrcode from 'qrcode-generator'
import type { App } from '../app.js'
import { h, replace, shorten } from '../dom.js'
import type { Route } from '../router.js'
import { askFaucet, exportKey, getWallet, importKey } from '../wallet.js'
import { formatAmount, parseAmount } from './amount.js'

/** The channels route. */
export function channelsRoute(app: App): Route {
  return { path: '/channels', label: 'Channels', render: (main, params) => renderChannels(main, app, params) }
}

const LINK_WORDS: Record<WalletChannel['link'], string> = {
  direct: 'Direct link to the peer (WebRTC between browsers, or straight to a hub node): no relay in between',
  relayed: 'Relayed through a full node: no direct link could be made',
  none: 'Peer offline',
}

const PHASE_WORDS: Record<WalletChannel['phase'], string> = {
  proposed: 'Proposed',
  opening: 'Opening on chain…',
  open: 'Open',
  closing: 'Closing on chain…',
  closed: 'Closed',
}

function renderChannels(main: HTMLElement, app: App, params: URLSearchParams): () => void {
  const status = h('p', { class: 'working', role: 'status', 'aria-live': 'polite' }, 'Starting the wallet…')
  const walletCard = h('section', { class: 'card wallet', 'aria-label': 'Your wallet' })
  const inviteCard = h('section', { class: 'card invite', 'aria-label': 'Your invite' })
  const openCard = h('section', { class: 'card open', 'aria-label': 'Open a channel' })
  const list = h('div', { class: 'channel-list' })
  main.append(
    h(
      'section',
      { class: 'page channels' },
      h('h1', { tabindex: -1 }, 'Payment channels'),
      h(
        'p',
        { class: 'lede' },
        'Pay and message someone directly, browser to browser. Every payment is a state you both sign; the chain only sees the opening and the close.',
      ),
      status,
      walletCard,
      list,
      inviteCard,
      openCard,
    ),
  )
  let off: (() => void) | undefined
  let closed = false
  getWallet(app).then(
    (w) => {
      if (closed) return
      status.remove()
      const cards = new Map<string, ChannelCard>()
      openForm(openCard, w, params.get('invite') ?? '', app.config?.hubs ?? [])
      const walletView = walletSection(walletCard, app)
      const inviteView = inviteSection(inviteCard)
      off = w.subscribe((s) => {
        walletView(s)
        inviteView(s)
        for (const c of s.channels) {
          let card = cards.get(c.id)
          if (card === undefined) {
            // A channel renamed from its local id to the chain's id: replace its card.
            for (const [id, old] of cards)
              if (!s.channels.some((x) => x.id === id)) {
                old.el.remove()
                cards.delete(id)
              }
            card = channelCard(w, c)
            cards.set(c.id, card)
            list.prepend(card.el)
          }
          card.update(c, s)
        }
      })
    },
    (e: unknown) => replace(status, h('span', { class: 'error' }, `The wallet could not start: ${(e as Error).message}`)),
  )
  return () => {
    closed = true
    off?.()
  }
}

function walletSection(card: HTMLElement, app: App): (s: WalletState) => void {
  const address = h('code', { 'data-testid': 'wallet-address' })
  const balance = h('span', { class: 'num', 'data-testid': 'wallet-balance' }, '…')
  const asOf = h('span', { class: 'as-of' })
  const signer = h('span', { class: 'hint' })
  const note = h('p', { class: 'hint', role: 'status', 'aria-live': 'polite' })
  let current: WalletState | undefined
  /** The balance when test funds were asked for: the note says they arrived once it grows. */
  let fundedFrom: bigint | undefined
  const faucet = h(
    'button',
    {
      type: 'button',
      class: 'button',
      'data-testid': 'faucet',
      onclick: async () => {
        if (!current) return
        faucet.disabled = true
        try {
          const from = current.balance ?? 0n
          note.textContent = await askFaucet(current.address)
          fundedFrom = from
        } catch (e) {
          note.textContent = (e as Error).message
        } finally {
          faucet.disabled = false
        }
      },
    },
    'Get test funds',
  )
  const copy = h(
    'button',
    { type: 'button', class: 'button', onclick: () => current && void navigator.clipboard?.writeText(current.address) },
    'Copy',
  )
  const exportButton = h(
    'button',
    {
      type: 'button',
      class: 'button',
      onclick: async () => {
        if (!confirm('Show the wallet’s secret key? Anyone who sees it can spend from this wallet.')) return
        note.textContent = `Secret key: ${await exportKey()}`
      },
    },
    'Export key',
  )
  const importButton = h(
    'button',
    {
      type: 'button',
      class: 'button',
      onclick: async () => {
        const hex = prompt('Paste a secret key (64 hex digits). The page reloads with it.')
        if (!hex) return
        try {
          await importKey(hex, app)
        } catch (e) {
          note.textContent = (e as Error).message
        }
      },
    },
    'Import key',
  )
  replace(
    card,
    h('h2', {}, 'Your wallet'),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Address'),
      h('dd', {}, address, ' ', copy),
      h('dt', {}, 'Balance'),
      h('dd', {}, balance, ' ', asOf),
      h('dt', {}, 'Signatures'),
      h('dd', {}, signer),
    ),
    h('div', { class: 'actions' }, faucet, exportButton, importButton),
    note,
  )
  return (s) => {
    current = s
    address.textContent = s.address
    balance.textContent = s.balance === undefined ? '…' : formatAmount(s.balance)
    asOf.textContent = s.balanceAt === undefined ? '(not proven yet)' : `proven at height ${s.balanceAt}`
    if (fundedFrom !== undefined && s.balance !== undefined && s.balance > fundedFrom) {
      fundedFrom = undefined
      note.textContent = `Test funds arrived (proven at height ${s.balanceAt}).`
    }
    signer.textContent =
      s.signer === 'webcrypto' ? 'Ed25519 in this browser’s native WebCrypto' : 'Ed25519 in JavaScript (this browser has no native Ed25519)'
  }
}

function inviteSection(card: HTMLElement): (s: WalletState) => void {
  const text = h('textarea', { readonly: true, rows: 3, 'data-testid': 'invite-text', 'aria-label': 'Your invite', spellcheck: 'false' })
  const link = h('a', { 'data-testid': 'invite-link' }, 'Invite link')
  const qr = h('div', { class: 'qr', role: 'img', 'aria-label': 'QR code of your invite link' })
  const copy = h(
    'button',
    { type: 'button', class: 'button', onclick: () => void navigator.clipboard?.writeText(text.value) },
    'Copy invite',
  )
  const waiting = h('p', { class: 'hint' }, 'Waiting for a full node to relay for this browser…')
  replace(
    card,
    h('h2', {}, 'Your invite'),
    h('p', { class: 'hint' }, 'Someone who has it can open a channel with you. It says how to reach this browser, and your public key.'),
    waiting,
  )
  let shown = ''
  return (s) => {
    if (s.invite === undefined || s.invite === shown) return
    shown = s.invite
    text.value = s.invite
    const url = new URL(location.href)
    url.hash = `#/channels?invite=${encodeURIComponent(s.invite)}`
    link.href = url.href
    const q = qrcode(0, 'L')
    q.addData(url.href)
    q.make()
    qr.innerHTML = q.createSvgTag({ cellSize: 3, margin: 2, scalable: true })
    replace(
      card,
      h('h2', {}, 'Your invite'),
      h('p', { class: 'hint' }, 'Someone who has it can open a channel with you: send the link, show the QR code, or copy the text.'),
      h('div', { class: 'invite-row' }, qr, h('div', { class: 'invite-text' }, text, h('div', { class: 'actions' }, copy, link))),
    )
  }
}

function openForm(card: HTMLElement, w: ChannelWallet, invite: string, hubs: readonly string[]): void {
  const inviteInput = h('textarea', {
    id: 'open-invite',
    rows: 3,
    'data-testid': 'open-invite',
    spellcheck: 'false',
    placeholder: 'lcch1.…',
  })
  inviteInput.value = invite
  const deposit = h('input', { id: 'open-deposit', inputmode: 'numeric', 'data-testid': 'open-deposit', value: '10000' })
  const peerDeposit = h('input', { id: 'open-peer-deposit', inputmode: 'numeric', 'data-testid': 'open-peer-deposit', value: '0' })
  const period = h('input', { id: 'open-period', inputmode: 'numeric', 'data-testid': 'open-period', value: '20' })
  const label = h('input', { id: 'open-label', 'data-testid': 'open-label', placeholder: 'e.g. Alice' })
  const submit = h('button', { type: 'submit', class: 'button primary', 'data-testid': 'open-submit' }, 'Open channel')
  const note = h('p', { class: 'hint', role: 'status', 'aria-live': 'polite', 'data-testid': 'open-status' })
  const form = h(
    'form',
    {
      onsubmit: async (e: Event) => {
        e.preventDefault()
        submit.disabled = true
        note.textContent = 'Asking the peer, then opening on chain…'
        try {
          const id = await w.openChannel(inviteInput.value, {
            deposit: parseAmount(deposit.value, 'your deposit'),
            peerDeposit: parseAmount(peerDeposit.value, 'the peer’s deposit', true),
            challengePeriod: Number(parseAmount(period.value, 'the challenge period')),
            ...(label.value.trim() ? { label: label.value.trim() } : {}),
          })
          note.textContent = `Channel ${shorten(id)} is opening: it is open once the peer’s deposit is on chain.`
          inviteInput.value = ''
        } catch (err) {
          note.textContent = (err as Error).message
        } finally {
          submit.disabled = false
        }
      },
    },
    h('label', { for: 'open-invite' }, 'Their invite'),
    inviteInput,
    hubs[0] === undefined
      ? null
      : h(
          'p',
          { class: 'hint' },
          'Or open a channel with the network’s hub, a full node that forwards payments to anyone else who has a channel with it. ',
          h(
            'button',
            {
              type: 'button',
              class: 'button',
              'data-testid': 'use-hub',
              onclick: () => {
                inviteInput.value = hubs[0] as string
                label.value = 'Network hub'
                if (peerDeposit.value === '0') peerDeposit.value = deposit.value
              },
            },
            'Use the network’s hub',
          ),
        ),
    h(
      'div',
      { class: 'fields' },
      h('div', {}, h('label', { for: 'open-deposit' }, 'Your deposit'), deposit),
      h('div', {}, h('label', { for: 'open-peer-deposit' }, 'Their deposit'), peerDeposit),
      h('div', {}, h('label', { for: 'open-period' }, 'Challenge period (blocks)'), period),
      h('div', {}, h('label', { for: 'open-label' }, 'Name (for you)'), label),
    ),
    h('div', { class: 'actions' }, submit),
    note,
  )
  replace(card, h('h2', {}, 'Open a channel'), form)
}

interface ChannelCard {
  readonly el: HTMLElement
  update(c: WalletChannel, s: WalletState): void
}

function channelCard(w: ChannelWallet, first: WalletChannel): ChannelCard {
  const id = first.id
  const title = h('h2', {})
  const phase = h('span', { class: 'pill', 'data-testid': 'channel-phase' })
  const mine = h('span', { class: 'num big', 'data-testid': 'my-balance' })
  const theirs = h('span', { class: 'num', 'data-testid': 'peer-balance' })
  const seq = h('span', { 'data-testid': 'state-seq' })
  const link = h('span', { 'data-testid': 'link-kind' })
  const onchain = h('p', { class: 'hint', 'data-testid': 'onchain-status' })
  const error = h('p', { class: 'error', role: 'alert', hidden: true, 'data-testid': 'channel-error' })
  const note = h('p', { class: 'hint', role: 'status', 'aria-live': 'polite' })
  const amount = h('input', { inputmode: 'numeric', 'aria-label': 'Amount to pay', 'data-testid': 'pay-amount', placeholder: 'Amount' })
  const pay = h('button', { type: 'submit', class: 'button primary', 'data-testid': 'pay-submit' }, 'Pay')
  const chatList = h('ol', { class: 'chat', 'aria-live': 'polite', 'aria-label': 'Messages', 'data-testid': 'chat-list' })
  const chatInput = h('input', { 'aria-label': 'Message', 'data-testid': 'chat-input', placeholder: 'A private message', maxlength: 2000 })
  const chatSend = h('button', { type: 'submit', class: 'button', 'data-testid': 'chat-send' }, 'Send')
  const act = (label: string, testid: string, f: () => Promise<unknown>, ask?: string) =>
    h(
      'button',
      {
        type: 'button',
        class: 'button',
        'data-testid': testid,
        onclick: async (e: Event) => {
          if (ask && !confirm(ask)) return
          const b = e.currentTarget as HTMLButtonElement
          b.disabled = true
          try {
            await f()
            note.textContent = `${label}: done.`
          } catch (err) {
            note.textContent = `${label}: ${(err as Error).message}`
          } finally {
            b.disabled = false
          }
        },
      },
      label,
    )
  const invoiceAmount = h('input', {
    inputmode: 'numeric',
    'aria-label': 'Amount to request',
    'data-testid': 'invoice-amount',
    placeholder: 'Amount',
  })
  const invoiceOut = h('textarea', { readonly: true, rows: 2, hidden: true, 'data-testid': 'invoice-text', 'aria-label': 'Your invoice' })
  const invoiceForm = h(
    'form',
    {
      class: 'pay',
      onsubmit: (e: Event) => {
        e.preventDefault()
        try {
          invoiceOut.value = w.createInvoice(parseAmount(invoiceAmount.value, 'the amount'))
          invoiceOut.hidden = false
          note.textContent = 'Send this invoice to the payer: they pay it through their channel with the hub.'
        } catch (err) {
          note.textContent = (err as Error).message
        }
      },
    },
    invoiceAmount,
    h('button', { type: 'submit', class: 'button', 'data-testid': 'invoice-create' }, 'Request'),
  )
  const payInvoiceText = h('input', { 'aria-label': 'Invoice to pay', 'data-testid': 'pay-invoice-text', placeholder: 'lcinv1.…' })
  const payInvoiceButton = h('button', { type: 'submit', class: 'button', 'data-testid': 'pay-invoice' }, 'Pay invoice')
  const payInvoiceForm = h(
    'form',
    {
      class: 'pay',
      onsubmit: async (e: Event) => {
        e.preventDefault()
        payInvoiceButton.disabled = true
        note.textContent = 'Paying through the hub…'
        try {
          await w.payInvoice(id, payInvoiceText.value)
          note.textContent = 'The invoice is paid: the payee showed its secret, and every hop settled.'
          payInvoiceText.value = ''
        } catch (err) {
          note.textContent = (err as Error).message
        } finally {
          payInvoiceButton.disabled = false
        }
      },
    },
    payInvoiceText,
    payInvoiceButton,
  )
  const routed = h(
    'details',
    { class: 'routed' },
    h('summary', {}, 'Payments through a hub (invoices)'),
    h(
      'p',
      { class: 'hint' },
      'Request a payment from anyone with a channel to the same hub, or pay their invoice: the hub forwards it, locked so that it cannot keep it.',
    ),
    invoiceForm,
    invoiceOut,
    payInvoiceForm,
  )
  const watch = act('Hand latest state to watchtower', 'watch', () => w.watch(id))
  const closeCoop = act('Close together', 'close-coop', () => w.closeCooperative(id))
  const closeAlone = act(
    'Close alone',
    'close-alone',
    () => w.closeUnilateral(id),
    'Close without the peer? Your latest state both signed goes on chain; the peer has the challenge period to show a newer one. Closing with an old state loses everything in the channel.',
  )
  const withdraw = act('Withdraw', 'withdraw', () => w.withdraw(id))
  const cancel = act(
    'Cancel and take back my deposit',
    'cancel-open',
    () => w.cancelOpen(id),
    'Cancel this channel? The peer has not joined it yet; your deposit comes back to your account.',
  )
  const payForm = h(
    'form',
    {
      class: 'pay',
      onsubmit: async (e: Event) => {
        e.preventDefault()
        pay.disabled = true
        try {
          const v = parseAmount(amount.value, 'the amount')
          await w.pay(id, v)
          note.textContent = `Paid ${formatAmount(v)}.`
          amount.value = ''
        } catch (err) {
          note.textContent = (err as Error).message
        } finally {
          pay.disabled = false
        }
      },
    },
    amount,
    pay,
  )
  const chatForm = h(
    'form',
    {
      class: 'chat-form',
      onsubmit: async (e: Event) => {
        e.preventDefault()
        const text = chatInput.value.trim()
        if (!text) return
        chatSend.disabled = true
        try {
          await w.sendMessage(id, text)
          chatInput.value = ''
        } catch (err) {
          note.textContent = (err as Error).message
        } finally {
          chatSend.disabled = false
        }
      },
    },
    chatInput,
    chatSend,
  )
  const el = h(
    'article',
    { class: 'card channel', 'data-testid': 'channel' },
    h('div', { class: 'page-head' }, title, phase),
    h(
      'div',
      { class: 'stats' },
      h('div', { class: 'stat' }, h('span', { class: 'hint' }, 'You'), mine),
      h('div', { class: 'stat' }, h('span', { class: 'hint' }, 'Peer'), theirs),
      h('div', { class: 'stat' }, h('span', { class: 'hint' }, 'Signed by both'), seq),
    ),
    h('p', { class: 'hint' }, link),
    payForm,
    routed,
    h('h3', {}, 'Messages'),
    chatList,
    chatForm,
    h('div', { class: 'actions' }, watch, closeCoop, closeAlone, withdraw, cancel),
    onchain,
    error,
    note,
  )
  let shownMessages = 0
  return {
    el,
    update(c, s) {
      el.dataset.channel = c.id
      el.dataset.phase = c.phase
      // The peer revoked its states below this number (a close with one of them is penalised).
      el.dataset.peerRevoked = String(c.peerRevokedBelow ?? 0)
      title.textContent = c.peer.label ? `With ${c.peer.label}` : `With ${shorten(c.peer.address)}`
      phase.textContent = PHASE_WORDS[c.phase]
      mine.textContent = formatAmount(c.myBalance)
      theirs.textContent = formatAmount(c.peerBalance)
      seq.textContent = c.seq === 0 ? 'state #0 (the deposits)' : `state #${c.seq}`
      seq.dataset.seq = String(c.seq)
      link.textContent = c.phase === 'open' ? LINK_WORDS[c.link] : ''
      link.dataset.kind = c.link
      const open = c.phase === 'open'
      amount.disabled = pay.disabled = !open || c.link === 'none'
      chatInput.disabled = chatSend.disabled = !open || c.link === 'none'
      closeCoop.disabled = !open || c.link === 'none'
      closeAlone.disabled = !open
      watch.disabled = !open || c.seq === 0
      watch.textContent = c.watchedSeq === undefined ? 'Hand latest state to watchtower' : `Watchtower holds state #${c.watchedSeq}`
      const oc = c.onChain
      const height = s.balanceAt
      // Only once the chain shows the channel waiting for the peer's deposit.
      cancel.hidden = !(c.me === 0 && c.phase === 'opening' && oc?.status === 'opening')
      withdraw.hidden = !(oc?.status === 'closing' && oc.deadline !== undefined && height !== undefined && height > oc.deadline)
      onchain.dataset.status = oc?.status ?? ''
      onchain.textContent = oc === undefined ? 'Not on chain yet.' : onChainWords(c, oc)
      error.hidden = c.error === undefined
      error.textContent = c.error ?? ''
      for (const m of c.messages.slice(shownMessages))
        chatList.append(
          h('li', { class: m.from === 'me' ? 'me' : 'peer' }, h('span', { class: 'who' }, m.from === 'me' ? 'You' : 'Peer'), ' ', m.text),
        )
      shownMessages = c.messages.length
    },
  }
}

function onChainWords(c: WalletChannel, oc: NonNullable<WalletChannel['onChain']>): string {
  const at = `(proven at height ${oc.provenAt})`
  switch (oc.status) {
    case 'opening':
      return `Opened by ${c.me === 0 ? 'you' : 'the peer'}; waiting for the other deposit ${at}.`
    case 'open':
      return `Open on chain, deposits ${formatAmount(c.deposits[0])} and ${formatAmount(c.deposits[1])} ${at}.`
    case 'closing':
      return `Closed alone by ${oc.closer === c.me ? 'you' : 'the peer'}; state #${oc.closedSeq} on record (a newer one shown by a challenge replaces it); challenges until height ${oc.deadline} ${at}.`
    default:
      return oc.outcome === 'cooperative'
        ? `Settled together: you received ${formatAmount(c.myBalance)} ${at}.`
        : oc.outcome === 'penalised'
          ? `Settled by a challenge: a close with an old state was penalised, and the honest side received the whole channel ${at}.`
          : `Settled (${oc.outcome ?? 'closed'}) ${at}.`
  }
}
