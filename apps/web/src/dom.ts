/** A few DOM helpers: the app is plain TypeScript and DOM, no framework (a smaller page to load). */

type Child = Node | string | number | false | null | undefined
type Attrs = Record<string, string | number | boolean | EventListener | undefined>

/**
 * Makes an element: `attrs` are attributes (`class`, `aria-*`, `data-*`…), except `on…` keys,
 * which add event listeners; `true` sets an empty attribute, `false`/undefined none.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    if (typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  append(el, ...children)
  return el
}

/** Appends children, skipping empty ones; strings become text (never HTML). */
export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    el.append(c instanceof Node ? c : String(c))
  }
}

/** Replaces an element's content. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren()
  append(el, ...children)
}

/** A short form of a long hex string or id: the start and the end. */
export function shorten(s: string, head = 10, tail = 6): string {
  return s.length <= head + tail + 1 ? s : `${s.slice(0, head)}…${s.slice(-tail)}`
}

/** A time in microseconds since the epoch, in the reader's locale and zone. */
export function localTime(us: number): string {
  return new Date(Math.floor(us / 1000)).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

/** "12 s ago", "3 min ago": how long since a time in milliseconds. */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`
  return `${Math.round(s / 86_400)} d ago`
}
