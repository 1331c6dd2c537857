/**
 * The network view: the light client's connections, its verified height and the validator set in
 * force, when the last header arrived, and what the cross-check with a second node found.
 */
import { isoFromMicros, type SetInForce, totalPower } from '@loopchain/core'
import type { App } from '../app.js'
import { ago, h, localTime, replace, shorten } from '../dom.js'
import type { Route } from '../router.js'
import { headerHashHex, type Session, type SessionState } from '../session.js'

/** The network route. */
export function networkRoute(app: App): Route {
  return { path: '/network', label: 'Network', render: (main) => renderNetwork(main, app) }
}

const PHASE_WORDS: Record<SessionState['phase'], string> = {
  starting: 'Starting',
  connecting: 'Connecting…',
  online: 'Online',
  offline: 'Offline',
  failed: 'Not working',
}

function renderNetwork(main: HTMLElement, app: App): () => void {
  const body = h('div', { class: 'network-body' }, h('p', { class: 'working' }, 'Loading…'))
  const syncButton = h('button', { type: 'button', class: 'button' }, 'Sync now')
  main.append(
    h(
      'section',
      { class: 'page network' },
      h('div', { class: 'page-head' }, h('h1', { tabindex: -1 }, 'Network'), syncButton),
      h('p', { class: 'lede' }, 'What this browser’s light client knows, verified from the pinned genesis.'),
      body,
    ),
  )
  let off: (() => void) | undefined
  let timer: ReturnType<typeof setInterval> | undefined
  let closed = false
  void app.ready.then(() => {
    if (closed) return
    const s = app.session
    if (s === undefined) {
      replace(body, h('p', { class: 'error' }, `The light client is not running: ${app.error ?? 'unknown error'}.`))
      return
    }
    syncButton.addEventListener('click', () => void s.syncNow())
    off = s.subscribe((st) => draw(body, s, st))
    // "x s ago" ages: redraw every few seconds.
    timer = setInterval(() => draw(body, s, s.state), 5_000)
  })
  return () => {
    closed = true
    off?.()
    if (timer !== undefined) clearInterval(timer)
  }
}

function draw(body: HTMLElement, s: Session, st: SessionState): void {
  const tip = st.tip
  const peers = s.peers()
  const members = new Map(s.config.genesis.members.map((m) => [m.address as string, m]))
  const set = st.sets[st.sets.length - 1] as SetInForce
  const summary = h(
    'dl',
    { class: 'stats' },
    stat('Status', h('span', { class: `pill ${st.phase}`, id: 'net-phase', 'data-phase': st.phase }, PHASE_WORDS[st.phase])),
    stat('Connected full nodes', h('span', { id: 'net-peers' }, String(peers.length))),
    stat(
      'Verified height',
      h('span', { id: 'net-height', 'data-height': tip?.header.height ?? 0 }, tip ? String(tip.header.height) : '—'),
      st.fromStore ? h('small', { id: 'net-from-store', class: 'block' }, 'from this browser’s store') : null,
    ),
    stat(
      'Last header',
      tip
        ? h(
            'time',
            { datetime: isoFromMicros(tip.header.timestamp), title: localTime(tip.header.timestamp) },
            shortTime(tip.header.timestamp),
          )
        : '—',
      st.lastHeaderAt !== undefined ? h('small', { class: 'block' }, `received ${ago(st.lastHeaderAt)}`) : null,
    ),
    stat('Headers stored', String(st.storedHeaders)),
  )
  const conflicts = [...st.conflicts]
  const cross = st.crossCheck
  const crossText =
    cross === undefined
      ? peers.length < 2
        ? 'Not yet: it needs two connected full nodes.'
        : tip === undefined
          ? 'Not yet: nothing verified to compare (the chain has no block yet, or this browser has not synced).'
          : 'Not yet: it runs with the next sync.'
      : cross.status === 'agree'
        ? `Agrees with ${shorten(cross.peer, 8, 6)} at height ${cross.height}.`
        : cross.status === 'conflict'
          ? `Conflict with ${shorten(cross.peer, 8, 6)} at height ${cross.conflict.height}!`
          : cross.status === 'faulty'
            ? `${shorten(cross.peer, 8, 6)} sent a header that does not verify.`
            : 'No second node answered.'

  replace(
    body,
    st.phase === 'offline'
      ? h(
          'p',
          { class: 'notice', role: 'note' },
          'Offline: no full node is reachable. This is what this browser verified and stored earlier; the page keeps retrying.',
        )
      : st.error && st.phase !== 'online'
        ? h('p', { class: 'notice', role: 'note' }, st.error)
        : null,
    h('div', { class: 'card' }, summary),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'validators-title' },
      h('h2', { id: 'validators-title' }, 'Validator set'),
      h(
        'p',
        { class: 'hint' },
        `In force from height ${set.from}; total power ${totalPower(set.set)}; ${st.sets.length - 1} change${st.sets.length === 2 ? '' : 's'} since the genesis.`,
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { id: 'validators' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Institution'),
              h('th', { scope: 'col' }, 'Address'),
              h('th', { scope: 'col', class: 'num' }, 'Power'),
            ),
          ),
          h(
            'tbody',
            {},
            ...set.set.validators.map((v) =>
              h(
                'tr',
                {},
                h('td', {}, members.get(v.address)?.name ?? '—'),
                h('td', {}, h('code', { title: v.address }, shorten(v.address, 12, 6))),
                h('td', { class: 'num' }, String(v.power)),
              ),
            ),
          ),
        ),
      ),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'peers-title' },
      h('h2', { id: 'peers-title' }, 'Full nodes'),
      peers.length === 0
        ? h('p', { class: 'hint' }, 'None connected. The page keeps retrying; what is stored still verifies certificates.')
        : h(
            'ul',
            { class: 'peers', id: 'peer-list' },
            ...peers.map((p) =>
              h('li', {}, h('code', { title: p }, shorten(p, 12, 8)), h('span', { class: 'hint' }, s.addressOf(p) ?? '')),
            ),
          ),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'cross-title' },
      h('h2', { id: 'cross-title' }, 'Cross-check'),
      h('p', { id: 'cross-check', 'data-status': cross?.status ?? 'none' }, crossText),
      conflicts.length === 0
        ? h('p', { class: 'hint', id: 'conflicts', 'data-count': 0 }, 'No conflicting headers seen.')
        : h(
            'ul',
            { class: 'conflicts', id: 'conflicts', 'data-count': conflicts.length },
            ...conflicts.map((c) =>
              h(
                'li',
                {},
                `Height ${c.height}: node ${shorten(c.peer, 8, 6)} has ${shorten(headerHashHex(c.theirs))}, this browser ${shorten(headerHashHex(c.ours))}`,
              ),
            ),
          ),
      st.faults.length > 0
        ? h('ul', { class: 'faults' }, ...st.faults.map((f) => h('li', {}, `${shorten(f.peer, 8, 6)}: ${f.message}`)))
        : null,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'genesis-title' },
      h('h2', { id: 'genesis-title' }, 'Pinned genesis'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Chain'),
        h('dd', {}, s.config.genesis.chainId, ` (network ${s.config.genesis.networkId})`),
        h('dt', {}, 'Genesis hash'),
        h('dd', {}, h('code', { class: 'wrap', id: 'genesis-hash' }, s.config.genesisHash)),
        tip ? h('dt', {}, 'Tip hash') : null,
        tip ? h('dd', {}, h('code', { class: 'wrap' }, headerHashHex(tip))) : null,
      ),
      h(
        'p',
        { class: 'hint' },
        'Compare the genesis hash with the one your institution publishes: it is the root of every check on this page.',
      ),
    ),
  )
}

/** A header time: the time of day when it is today, else the date too. */
function shortTime(us: number): string {
  const d = new Date(Math.floor(us / 1000))
  const today = d.toDateString() === new Date().toDateString()
  return today ? d.toLocaleTimeString() : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' })
}

function stat(term: string, ...value: (Node | string | null)[]): HTMLElement {
  return h('div', { class: 'stat' }, h('dt', {}, term), h('dd', {}, ...value))
}
