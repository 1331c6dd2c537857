/**
 * A hash router: `#/verify`, `#/network` (and later `#/channels`). Each route renders into the
 * main element and may return a cleanup function; the nav is built from the same list, so a new
 * page is one entry.
 */
import { h, replace } from './dom.js'

/** One page of the app. */
export interface Route {
  /** The path after `#`, e.g. `/verify`. */
  readonly path: string
  /** The nav label. */
  readonly label: string
  /** Renders the page into `main`; `params` are the query after the path (`#/verify?c=…`). Returns its cleanup. */
  readonly render: (main: HTMLElement, params: URLSearchParams) => () => void
}

/** Where the location's hash points: the route's path and its query. */
export function parseHash(hash: string): { path: string; params: URLSearchParams } {
  const raw = hash.replace(/^#/, '') || '/'
  const q = raw.indexOf('?')
  return { path: q < 0 ? raw : raw.slice(0, q), params: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) }
}

/** A hash that names a route (`#/…`, or none), not an in-page anchor. */
export const isRoute = (hash: string): boolean => hash === '' || hash === '#' || hash.startsWith('#/')

/** Starts the router: builds the nav into `nav`, renders the current route into `main` and follows hash changes. */
export function startRouter(routes: readonly Route[], nav: HTMLElement, main: HTMLElement): void {
  const links = routes.map((r) => h('a', { href: `#${r.path}` }, r.label))
  replace(nav, h('ul', {}, ...links.map((a) => h('li', {}, a))))
  let cleanup: (() => void) | undefined
  const show = () => {
    const { path, params } = parseHash(location.hash)
    const route = routes.find((r) => r.path === path) ?? (routes[0] as Route)
    cleanup?.()
    links.forEach((a, i) => {
      if (routes[i] === route) a.setAttribute('aria-current', 'page')
      else a.removeAttribute('aria-current')
    })
    main.replaceChildren()
    cleanup = route.render(main, params)
    document.title = `${route.label} · loopchain`
  }
  window.addEventListener('hashchange', () => {
    // An in-page anchor (the skip link's #main) is not a route: keep the page.
    if (!isRoute(location.hash)) return
    show()
    // Move focus to the new page's heading, as a page load would, for keyboard and screen-reader users.
    main.querySelector<HTMLElement>('h1')?.focus()
  })
  show()
}
