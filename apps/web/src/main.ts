/**
 * The loopchain web app: certificate verification, payment channels and a network view, on a light
 * client that runs in this page (libp2p to full nodes, headers in IndexedDB). Pages are routes of a
 * hash router.
 */
import { startApp } from './app.js'
import { h, replace } from './dom.js'
import { type Route, startRouter } from './router.js'
import type { SessionState } from './session.js'
import { channelsRoute } from './views/channels.js'
import { networkRoute } from './views/network.js'
import { verifyRoute } from './views/verify.js'

const app = startApp()
const routes: Route[] = [verifyRoute(app), channelsRoute(app), networkRoute(app)]

const nav = document.getElementById('nav') as HTMLElement
const main = document.getElementById('main') as HTMLElement
const badge = document.getElementById('chain-status') as HTMLElement
startRouter(routes, nav, main)

const words: Record<SessionState['phase'], string> = {
  starting: 'starting',
  connecting: 'connecting',
  online: 'online',
  offline: 'offline',
  failed: 'not working',
}
void app.ready.then(() => {
  const s = app.session
  if (s === undefined) {
    badge.className = 'chain-status failed'
    replace(badge, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'no chain')
    badge.title = app.error ?? ''
    return
  }
  s.subscribe((st) => {
    badge.className = `chain-status ${st.phase}`
    badge.dataset.phase = st.phase
    const height = st.tip ? `height ${st.tip.header.height}` : 'no headers yet'
    replace(badge, h('span', { class: 'dot', 'aria-hidden': 'true' }), `${words[st.phase]} · ${height}`)
    badge.title = `${s.config.genesis.chainId}: ${st.peers.length} full node${st.peers.length === 1 ? '' : 's'} connected`
  })
})
