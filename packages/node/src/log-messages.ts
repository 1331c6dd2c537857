/**
 * Log messages that say a condition the node warned of has ended. They are info lines, so a
 * reader that shows only warnings and errors (the devnet's terminal) would show a problem and
 * never its end: such readers match these too.
 */

/** A height the node warned had no block (`consensus: no block for this height yet`) has one. */
export const STALL_ENDED_MESSAGE = 'consensus: the height that had no block has one now'

/** A configured peer the node warned it could not reach is connected again. */
export const PEER_REACHED_MESSAGE = 'reached a configured peer again'

/** Every message above. */
export const ENDED_WARNING_MESSAGES: ReadonlySet<string> = new Set([STALL_ENDED_MESSAGE, PEER_REACHED_MESSAGE])
