/** A minimal typed event emitter (the same in browsers and Node, no `EventTarget` subclassing). */
export class Emitter<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Set<(value: never) => void>>()

  /** Calls `listener` for each `event`; returns the function that removes it. */
  on<E extends keyof Events>(event: E, listener: (value: Events[E]) => void): () => void {
    let set = this.listeners.get(event)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(event, set)
    }
    set.add(listener as (value: never) => void)
    return () => set.delete(listener as (value: never) => void)
  }

  /** Calls every listener of `event`; a throwing listener does not stop the others. */
  emit<E extends keyof Events>(event: E, value: Events[E], onError: (err: unknown) => void): void {
    for (const l of this.listeners.get(event) ?? []) {
      try {
        ;(l as (value: Events[E]) => void)(value)
      } catch (err) {
        onError(err)
      }
    }
  }
}

/** Where a light client's log lines go. */
export interface LightLogger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
}

/** A logger that drops everything (the default). */
export const silentLightLogger: LightLogger = { debug() {}, info() {}, warn() {} }
