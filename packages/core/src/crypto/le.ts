/** Little-endian bytes to a non-negative bigint (ed25519 scalars are little-endian). */
export function bytesToBigintLE(b: Uint8Array): bigint {
  let v = 0n
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number)
  return v
}
