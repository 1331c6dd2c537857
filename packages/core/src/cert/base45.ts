/**
 * Base45 (RFC 9285): bytes as text in the 45 characters of a QR code's alphanumeric mode, which
 * stores 5.5 bits a character against 8 in byte mode, so the same payload makes a smaller code than
 * base64 would. Two bytes become three characters, a last single byte two.
 */
import { DecodeError } from '../errors.js'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:'
const INDEX: Record<string, number> = Object.fromEntries([...ALPHABET].map((c, i) => [c, i]))

/** Base45 text of `bytes`. */
export function toBase45(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    let n = (bytes[i] as number) * 256 + (bytes[i + 1] as number)
    const c = n % 45
    n = (n - c) / 45
    const d = n % 45
    const e = (n - d) / 45
    out += (ALPHABET[c] as string) + (ALPHABET[d] as string) + (ALPHABET[e] as string)
  }
  if (bytes.length % 2 === 1) {
    const n = bytes[bytes.length - 1] as number
    out += (ALPHABET[n % 45] as string) + (ALPHABET[Math.floor(n / 45)] as string)
  }
  return out
}

/**
 * The bytes of base45 `text`. Throws {@link DecodeError} for a character outside the alphabet, a
 * length that leaves one character over, or a group above its range (RFC 9285 §4.2: such text is
 * refused, so each byte string has exactly one encoding).
 */
export function fromBase45(text: string): Uint8Array {
  if (text.length % 3 === 1) throw new DecodeError('TRUNCATED', `base45 text of ${text.length} characters leaves one over`)
  const out = new Uint8Array(Math.floor(text.length / 3) * 2 + (text.length % 3 === 2 ? 1 : 0))
  const digit = (at: number): number => {
    const v = INDEX[text[at] as string]
    if (v === undefined)
      throw new DecodeError('INVALID_VALUE', `base45 text has ${JSON.stringify(text[at])} at ${at}, outside the alphabet`)
    return v
  }
  let o = 0
  for (let i = 0; i < text.length; i += 3) {
    if (i + 2 < text.length) {
      const n = digit(i) + digit(i + 1) * 45 + digit(i + 2) * 45 * 45
      if (n > 0xffff) throw new DecodeError('NON_CANONICAL', `base45 group at ${i} is ${n}, above 65535`)
      out[o++] = n >> 8
      out[o++] = n & 0xff
    } else {
      const n = digit(i) + digit(i + 1) * 45
      if (n > 0xff) throw new DecodeError('NON_CANONICAL', `base45 group at ${i} is ${n}, above 255`)
      out[o++] = n
    }
  }
  return out
}
