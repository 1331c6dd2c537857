/**
 * What every page of the app shares: the chain configuration and the light-client session, both
 * loaded once at start. Pages wait for {@link App.ready}; the session may be missing when the
 * browser lacks IndexedDB or libp2p could not start, and the pages then say what still works.
 */
import { type ChainConfig, loadChainConfig } from './config.js'
import { Session } from './session.js'

/** The shared state of the app. */
export interface App {
  /** Settles when the configuration (and, if it can start, the session) is loaded. */
  readonly ready: Promise<void>
  config: ChainConfig | undefined
  session: Session | undefined
  /** Why the configuration or the session could not be loaded. */
  error: string | undefined
}

/** Loads the configuration, then opens the session. */
export function startApp(): App {
  const app: App = { config: undefined, session: undefined, error: undefined, ready: Promise.resolve() }
  const load = async () => {
    try {
      app.config = await loadChainConfig()
    } catch (e) {
      app.error = (e as Error).message
      return
    }
    try {
      app.session = await Session.start(app.config)
    } catch (e) {
      app.error = `the light client could not start: ${(e as Error).message}`
    }
  }
  return Object.assign(app, { ready: load() })
}
