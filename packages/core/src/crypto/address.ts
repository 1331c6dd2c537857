/**
 * Addresses. An address is 21 bytes: a type byte (0 = account, 1 = contract) and 20 bytes of
 * hash. Its text form follows ICON's, which loopchain's successors use: `hx` + 40 hex digits for
 * an account, `cx` + 40 hex digits for a contract (SCORE). The text form is the one used in
 * TypeScript; the codec converts to and from the bytes.
 */
import { type Codec, fixedBytes, mapped } from '../codec/codec.js'
import { fromHex, hexInto, toHexRange } from '../codec/hex.js'
import { DecodeError } from '../errors.js'
import { Domain, taggedHash } from './hash.js'

/** An address in its canonical text form (`hx…` or `cx…`, lower-case). */
export type Address = string & { readonly __brand: 'Address' }

/** Bytes in an encoded address. */
export const ADDRESS_LENGTH = 21

const PREFIX = ['hx', 'cx'] as const
const ADDRESS_RE = /^(hx|cx)[0-9a-f]{40}$/

/** True for a canonical address string. */
export function isAddress(s: unknown): s is Address {
  return typeof s === 'string' && ADDRESS_RE.test(s)
}

/** Parses an address string; throws {@link DecodeError} unless it is canonical. */
export function parseAddress(s: string): Address {
  if (!isAddress(s))
    throw new DecodeError('INVALID_VALUE', `not an address: ${JSON.stringify(String(s).slice(0, 64))}`, { penalize: false })
  return s
}

/** True for a contract (SCORE) address. */
export function isContractAddress(a: Address): boolean {
  return a.startsWith('cx')
}

/** The 21 bytes of an address. */
export function addressToBytes(a: Address): Uint8Array {
  const out = new Uint8Array(ADDRESS_LENGTH)
  out[0] = a.startsWith('cx') ? 1 : 0
  // The common case parses in place; anything else takes the checked path and its errors.
  if (a.length === 2 + 2 * (ADDRESS_LENGTH - 1) && hexInto(a, 2, out, 1, ADDRESS_LENGTH - 1)) return out
  out.set(fromHex(a.slice(2)), 1)
  return out
}

/** The address of 21 bytes; throws {@link DecodeError} on an unknown type byte. */
export function addressFromBytes(b: Uint8Array): Address {
  const prefix = PREFIX[b[0] as number]
  if (b.length !== ADDRESS_LENGTH || prefix === undefined) {
    throw new DecodeError('INVALID_VALUE', `address bytes have an unknown type byte ${b[0]}`)
  }
  return `${prefix}${toHexRange(b, 1, ADDRESS_LENGTH)}` as Address
}

/** The account address of an ed25519 public key. */
export function accountAddress(publicKey: Uint8Array): Address {
  return `hx${toHexRange(taggedHash(Domain.AccountAddress, publicKey), 12, 32)}` as Address
}

/** The address of a contract created by transaction `txHash`, as its `index`-th creation. */
export function contractAddress(txHash: Uint8Array, index = 0): Address {
  const seed = new Uint8Array(txHash.length + 4)
  seed.set(txHash)
  new DataView(seed.buffer).setUint32(txHash.length, index)
  return `cx${toHexRange(taggedHash(Domain.ContractAddress, seed), 12, 32)}` as Address
}

/** Codec of an address as its 21 bytes. */
export const address: Codec<Address> = mapped(fixedBytes(ADDRESS_LENGTH), 'address', addressFromBytes, addressToBytes)
