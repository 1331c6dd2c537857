/**
 * Certificates: the format and its id, the block-key signatures, the portable file, the compact
 * (QR) form, and verification in six named steps (docs/certificates.md). The registry record and
 * `certificateStatusKey` live with the state layout (exec/layout.ts).
 */
export * from './base45.js'
export * from './certificate.js'
export * from './file.js'
export * from './verify.js'
