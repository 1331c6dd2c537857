/**
 * The wire: request-response framing, protocol and topic names, and the light-client protocols'
 * messages and serving logic, shared by full nodes and light clients in Node and browsers.
 */
export * from './errors.js'
export * from './frames.js'
export * from './light.js'
export * from './names.js'
