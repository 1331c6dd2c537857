/**
 * Light-client trust: signed headers, validator-set changes followed from the pinned genesis.
 */
export * from './headers.js'
