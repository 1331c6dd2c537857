/**
 * The logger the networking layer writes to. Libraries take a logger instead of using `console`
 * (STYLE.md); the node's CLI decides where lines go.
 */
export interface NodeLogger {
  /** Rare, useful lifecycle facts (listening, stopped). */
  info(message: string, fields?: Record<string, unknown>): void
  /** Something a peer did wrong, or a retry. */
  warn(message: string, fields?: Record<string, unknown>): void
  /** A failure of our own that needs an operator. */
  error(message: string, fields?: Record<string, unknown>): void
  /** Per-message or per-dial detail, off in production. */
  debug(message: string, fields?: Record<string, unknown>): void
}

/** A logger that drops everything: the default, so tests and embedders stay quiet. */
export const silentLogger: NodeLogger = {
  info: () => {},
  warn: () => {},
  error: () => {},
  debug: () => {},
}
