/**
 * The public verification page: drop, choose or paste a certificate file, paste its QR text, or
 * scan the QR code; the page shows the verdict, each of the six steps with its reason, and the
 * height the status is as of.
 */
import { type CertificateStep, type CertificateStepName, isoFromMicros, type Member, to0x } from '@loopchain/core'
import type { App } from '../app.js'
import { h, localTime, replace } from '../dom.js'
import { qrSupport, readQrImage, scanWithCamera } from '../qr.js'
import type { Route } from '../router.js'
import { type Verification, verifyText } from '../verify.js'

/** What each step checks, in words for the page (the step's own name is shown beside it). */
export const STEP_LABELS: Record<CertificateStepName, string> = {
  'well-formed': 'The file is a well-formed certificate',
  'header-committed': 'Its block was committed by the validators',
  'block-key-signature': "The block's key signed it",
  'issuer-right': 'The issuer held the issuer right',
  status: 'Not revoked or renewed',
  'validity-window': 'Within its validity period',
}

/** What a failed step means, for the verdict. */
const FAILURES: Record<CertificateStepName, string> = {
  'well-formed': 'the file is not a certificate, or it was altered',
  'header-committed': 'its block is not one the chain’s validators committed',
  'block-key-signature': 'it is not signed by its block’s key',
  'issuer-right': 'its issuer was not allowed to issue certificates',
  status: 'the chain records it as revoked, renewed or never issued',
  'validity-window': 'it is outside its validity period',
}

const STATUS_WORDS: Record<CertificateStep['status'], string> = { pass: 'Passed', fail: 'Failed', skipped: 'Not checked' }
const STATUS_ICONS: Record<CertificateStep['status'], string> = { pass: '✓', fail: '✗', skipped: '–' }
// A certificate file is a few kilobytes; anything far larger is not one.
const MAX_INPUT_BYTES = 4 * 1024 * 1024

/** The verification route. */
export function verifyRoute(app: App): Route {
  return { path: '/verify', label: 'Verify', render: (main, params) => renderVerify(main, app, params) }
}

function renderVerify(main: HTMLElement, app: App, params: URLSearchParams): () => void {
  const fileInput = h('input', {
    type: 'file',
    id: 'cert-file',
    class: 'visually-hidden',
    tabindex: -1,
    'aria-hidden': 'true',
    accept: '.json,.txt,application/json,text/plain,image/*',
  })
  const chooseButton = h('button', { type: 'button', class: 'button', onclick: () => fileInput.click() }, 'Choose a file…')
  const drop = h(
    'div',
    { class: 'drop', id: 'drop-zone', role: 'group', 'aria-labelledby': 'drop-title', 'aria-describedby': 'drop-hint' },
    h('p', { id: 'drop-title', class: 'drop-title' }, 'Drop a certificate file here'),
    h('p', { id: 'drop-hint', class: 'hint' }, 'A .json certificate file, or a picture of its QR code where this browser can read one.'),
    chooseButton,
    fileInput,
    h('p', { class: 'hint file-name', id: 'file-name' }),
  )
  const paste = h('textarea', {
    id: 'cert-text',
    rows: 4,
    spellcheck: 'false',
    autocapitalize: 'off',
    autocomplete: 'off',
    'aria-describedby': 'paste-hint',
    placeholder: '{ "format": "loopchain-certificate/1", … }  or  LC1:…',
  })
  const verifyButton = h('button', { type: 'submit', class: 'button primary', id: 'verify-button' }, 'Verify')
  const scanButton = h('button', { type: 'button', class: 'button', id: 'scan-button', 'aria-describedby': 'scan-hint' }, 'Scan QR code')
  const scanHint = h('p', { id: 'scan-hint', class: 'hint' })
  const video = h('video', { playsinline: true, muted: true, 'aria-label': 'Camera preview' })
  const stopScan = h('button', { type: 'button', class: 'button' }, 'Stop scanning')
  const scanner = h('div', { class: 'scanner', hidden: true }, video, stopScan)
  const form = h(
    'form',
    { class: 'paste', 'aria-label': 'Paste a certificate' },
    h('label', { for: 'cert-text' }, 'Or paste the certificate'),
    h('p', { id: 'paste-hint', class: 'hint' }, 'The whole file (JSON), or the text under its QR code, starting LC1:'),
    paste,
    h('div', { class: 'actions' }, verifyButton, scanButton),
    scanHint,
    scanner,
  )
  const announce = h('p', { class: 'visually-hidden', role: 'status', 'aria-live': 'polite', id: 'announce' })
  const result = h('section', { id: 'result', class: 'result', 'aria-label': 'Verification result', hidden: true })

  main.append(
    h(
      'section',
      { class: 'page verify' },
      h('h1', { tabindex: -1 }, 'Verify a certificate'),
      h(
        'p',
        { class: 'lede' },
        'The check runs in this browser, against the validators of the chain pinned in this page. No server is trusted with the answer.',
      ),
      h('div', { class: 'card input' }, drop, h('div', { class: 'or', 'aria-hidden': 'true' }, 'or'), form),
      announce,
      result,
    ),
  )

  let runId = 0
  let scanAbort: AbortController | undefined

  const run = async (text: string, source: string) => {
    const id = ++runId
    result.hidden = false
    result.setAttribute('aria-busy', 'true')
    replace(result, h('p', { class: 'working' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), `Verifying the ${source}…`))
    announce.textContent = 'Verifying…'
    await app.ready
    if (app.config === undefined) {
      if (id !== runId) return
      result.removeAttribute('aria-busy')
      replace(result, h('p', { class: 'error' }, `This page cannot verify: ${app.error ?? 'it has no chain configuration'}.`))
      result.dataset.done = String(id)
      return
    }
    const s = app.session
    const v = await verifyText(text, {
      config: app.config,
      client: s?.client,
      peers: () => s?.peers() ?? [],
      sync: () => s?.syncNow() ?? Promise.resolve(false),
    })
    if (id !== runId) return
    result.removeAttribute('aria-busy')
    showResult(result, v, app.config.genesis.members)
    // How many verifications finished: lets a test (or a script) wait for this one.
    result.dataset.done = String(id)
    announce.textContent = `${verdictTitle(v)}. ${verdictLine(v)}`
    result.querySelector<HTMLElement>('h2')?.focus()
  }

  const readBlob = async (blob: Blob, name: string) => {
    // The paste box would otherwise still show another certificate than the one checked.
    paste.value = ''
    const shown = drop.querySelector('#file-name') as HTMLElement
    shown.textContent = `Checked: ${name}`
    if (blob.size > MAX_INPUT_BYTES) return run('', `file ${name} (too large to be a certificate)`)
    if (blob.type.startsWith('image/')) {
      const support = await qrSupport()
      if (!support.images) return run('', `picture ${name} (this browser cannot read QR codes)`)
      const text = await readQrImage(blob).catch(() => undefined)
      return run(text ?? '', text ? `QR code in ${name}` : `picture ${name} (no QR code found)`)
    }
    return run(await blob.text(), `file ${name}`)
  }

  fileInput.addEventListener('change', () => {
    const f = fileInput.files?.[0]
    if (f) void readBlob(f, f.name)
    fileInput.value = ''
  })
  drop.addEventListener('dragover', (e) => {
    e.preventDefault()
    drop.classList.add('over')
  })
  drop.addEventListener('dragleave', () => drop.classList.remove('over'))
  drop.addEventListener('drop', (e) => {
    e.preventDefault()
    drop.classList.remove('over')
    const dt = e.dataTransfer
    const f = dt?.files[0]
    if (f) void readBlob(f, f.name)
    else if (dt?.getData('text/plain')) void run(dt.getData('text/plain'), 'dropped text')
  })
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    if (paste.value.trim() === '') {
      paste.focus()
      return
    }
    ;(drop.querySelector('#file-name') as HTMLElement).textContent = ''
    void run(paste.value, 'pasted text')
  })

  scanButton.disabled = true
  scanHint.textContent = 'Checking whether this browser can scan QR codes…'
  void qrSupport().then((s) => {
    scanButton.disabled = !s.camera
    scanHint.textContent = s.camera ? 'Uses the camera; nothing leaves this device.' : (s.reason ?? '')
  })
  const endScan = () => {
    scanAbort?.abort(new Error('stopped'))
    scanAbort = undefined
    scanner.hidden = true
    scanButton.disabled = false
  }
  scanButton.addEventListener('click', () => {
    scanAbort = new AbortController()
    scanner.hidden = false
    scanButton.disabled = true
    scanWithCamera(video, scanAbort.signal).then(
      (text) => {
        endScan()
        paste.value = text
        void run(text, 'scanned QR code')
      },
      (e: unknown) => {
        const stopped = scanAbort === undefined
        endScan()
        if (!stopped) scanHint.textContent = `The camera could not be used: ${(e as Error).message}`
      },
    )
  })
  stopScan.addEventListener('click', endScan)

  // A link may carry the compact text: #/verify?c=LC1:…
  const fromLink = params.get('c')
  if (fromLink) {
    paste.value = fromLink
    void run(fromLink, 'certificate in the link')
  }
  return endScan
}

function verdictTitle(v: Verification): string {
  if (v.verdict === 'valid') return 'Valid certificate'
  if (v.verdict === 'partial') return v.kind === 'compact' && v.evidenceFrom === 'none' ? 'Not fully checked' : 'Verified offline only'
  return 'Not valid'
}

function verdictLine(v: Verification): string {
  const failed = v.report.steps.find((s) => s.status === 'fail')
  if (v.header.status === 'conflict') return 'Its block conflicts with the chain this browser follows (see below).'
  if (failed) return `Rejected: ${FAILURES[failed.name]} (step ${failed.name}).`
  if (v.verdict === 'valid') return 'All six checks passed.'
  const skipped = v.report.steps.filter((s) => s.status === 'skipped').map((s) => s.name)
  if (skipped.length === 1 && skipped[0] === 'status')
    return `Every check that works offline passed. Whether it was revoked or renewed could not be checked online${v.offlineReason ? `: ${brief(v.offlineReason)}` : ''}.`
  return 'The QR text carries no proofs, and they could not be fetched: only its form and validity period were checked. Use the certificate file, or try again online.'
}

/** The issuer's name from the pinned genesis when its member id there is the proven one; else the proven id. */
function issuerName(institution: string | undefined, address: string, members: readonly Member[]): string {
  if (institution === undefined) return ''
  const m = members.find((x) => x.address === address && x.id === institution)
  return m ? `${m.name} (${institution}) · ` : `${institution} · `
}

function showResult(result: HTMLElement, v: Verification, members: readonly Member[]): void {
  const r = v.report
  const c = r.certificate
  const verdict = h(
    'div',
    { class: `verdict ${v.verdict}`, id: 'verdict', 'data-verdict': v.verdict },
    h('span', { class: 'verdict-icon', 'aria-hidden': 'true' }, v.verdict === 'valid' ? '✓' : v.verdict === 'invalid' ? '✗' : '!'),
    h(
      'div',
      {},
      h('h2', { tabindex: -1 }, verdictTitle(v)),
      h('p', {}, verdictLine(v)),
      c
        ? h(
            'p',
            { class: 'as-of', id: 'as-of' },
            r.asOfHeight !== undefined ? `Status as of height ${r.asOfHeight}` : 'Status not checked online',
          )
        : null,
    ),
  )
  const facts = c
    ? h(
        'dl',
        { class: 'facts' },
        ...fact('Subject', h('strong', {}, c.subject)),
        ...c.attributes.flatMap((a) => fact(a.key, a.value)),
        ...fact('Issuer', issuerName(r.institution, c.issuer, members), h('code', { class: 'wrap' }, c.issuer)),
        ...fact('Issued', `at height ${c.height}`),
        ...fact(
          'Valid',
          h('time', { datetime: isoFromMicros(c.validFrom) }, localTime(c.validFrom)),
          ' – ',
          c.validUntil === undefined ? 'no end' : h('time', { datetime: isoFromMicros(c.validUntil) }, localTime(c.validUntil)),
        ),
        ...(c.replaces ? fact('Renews', h('code', { class: 'wrap' }, to0x(c.replaces))) : []),
        ...(r.id ? fact('Certificate id', h('code', { class: 'wrap' }, to0x(r.id))) : []),
      )
    : undefined
  const steps = h(
    'ol',
    { class: 'steps', 'aria-label': 'The six checks' },
    ...r.steps.map((s) =>
      h(
        'li',
        { class: `step ${s.status}`, 'data-step': s.name, 'data-status': s.status },
        h('span', { class: 'step-icon', 'aria-hidden': 'true' }, STATUS_ICONS[s.status]),
        h(
          'div',
          { class: 'step-body' },
          h(
            'p',
            { class: 'step-title' },
            h('strong', {}, STEP_LABELS[s.name]),
            ' ',
            h('span', { class: `badge ${s.status}` }, STATUS_WORDS[s.status]),
          ),
          h('p', { class: 'step-detail' }, h('code', { class: 'step-name' }, s.name), ' ', s.detail),
        ),
      ),
    ),
  )
  const notes = h(
    'ul',
    { class: 'notes' },
    v.header.detail ? h('li', { 'data-header': v.header.status, id: 'header-note' }, headerNote(v)) : null,
    v.evidenceFrom === 'network'
      ? h(
          'li',
          {},
          'The QR text carries no proofs: the issuing header and the proof of the issuer were fetched and verified by the light client.',
        )
      : null,
    v.offlineReason && v.kind !== 'unreadable' ? h('li', { id: 'offline-note' }, `Not checked online: ${tidy(v.offlineReason)}.`) : null,
  )
  replace(result, verdict, facts, h('h3', {}, 'Checks'), steps, notes)
}

/** An error message without the repeats of "no node answered (A; A; A)". */
/** The first clause of an error message: "no node answered (…)" → "no node answered". */
function brief(message: string): string {
  const open = message.indexOf(' (')
  return open < 0 ? message : message.slice(0, open)
}

function tidy(message: string): string {
  const open = message.indexOf(' (')
  if (open < 0 || !message.endsWith(')')) return message
  return `${message.slice(0, open)} (${[...new Set(message.slice(open + 2, -1).split('; '))].join('; ')})`
}

function fact(term: string, ...value: (Node | string)[]): HTMLElement[] {
  return [h('dt', {}, term), h('dd', {}, ...value)]
}

function headerNote(v: Verification): string {
  const d = v.header.detail
  if (v.header.status === 'match') return `Cross-checked: ${d}.`
  if (v.header.status === 'conflict') return `Warning: ${d}.`
  return `Not cross-checked: ${d}.`
}
