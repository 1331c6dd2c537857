/** Payment channels: the co-signed state, its checks, and the channel SCORE's ABI (docs/channels.md). */

export * from './driver.js'
export * from './session.js'
export * from './state.js'
