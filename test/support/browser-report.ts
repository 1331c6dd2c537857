/**
 * The browser side of `runInChromium`: an entry module calls {@link report} with its work, and
 * the Node side reads the outcome from the page. Kept apart from chromium.ts so that a browser
 * bundle never pulls in Node modules.
 */

/** Runs `f` and publishes its result (or error) where `runInChromium` looks. */
export function report(f: () => unknown | Promise<unknown>): void {
  const g = globalThis as { __result?: unknown; __error?: string }
  Promise.resolve()
    .then(f)
    .then(
      (r) => {
        g.__result = r
      },
      (e: unknown) => {
        g.__error = e instanceof Error ? `${e.message}\n${e.stack}` : String(e)
      },
    )
}
