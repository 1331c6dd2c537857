/**
 * The consensus module: a deterministic Tendermint-style state machine (messages, timeouts and
 * block answers in; messages, timers, WAL writes and commits out), its wire messages, proposer
 * rotation and the block production policy.
 */
export * from './evidence.js'
export * from './machine.js'
export * from './messages.js'
export * from './production.js'
export * from './proposer.js'
export { fastVoteSignBytes } from './sign-bytes.js'
export * from './types.js'
