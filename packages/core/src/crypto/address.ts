/**
 * Addresses. An address is 21 bytes: a type byte (0 = account, 1 = contract) and 20 bytes of
 * hash. Its text form follows ICON's, which loopchain's successors use: `hx` + 40 hex digits for
 * an account, `cx` + 40 hex digits for a contract (SCORE). The text form is the one used in
 * TypeScript; the codec converts to and from the bytes.
 */
import { type Codec, fixedBytes, mapped } from '../codec/codec.js'
import { hexInto, toHexRange } from '../codec/hex.js'
import { DecodeError, EncodeError } from '../errors.js'
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

/**
 * The 21 bytes of an address; throws {@link EncodeError} for anything but `hx` or `cx` and 40 hex
 * digits. (It used to read any other prefix as `hx` and pad a short string with zeros, so a
 * malformed address could be encoded as a different, valid one.)
 */
export function addressToBytes(a: Address): Uint8Array {
  const out = new Uint8Array(ADDRESS_LENGTH)
  const type = typeof a === 'string' && a.length === 2 + 2 * (ADDRESS_LENGTH - 1) ? PREFIX.indexOf(a.slice(0, 2) as 'hx') : -1
  if (type < 0 || !hexInto(a, 2, out, 1, ADDRESS_LENGTH - 1)) {
    throw new EncodeError('INVALID_VALUE', `not an address: ${JSON.stringify(String(a).slice(0, 64))}`)
  }
  out[0] = type
  return out
}

function unknownType(type: number | undefined): DecodeError {
  return new DecodeError('INVALID_VALUE', `address bytes have an unknown type byte ${type}`)
}

/** The address of 21 bytes; throws {@link DecodeError} on an unknown type byte. */
export function addressFromBytes(b: Uint8Array): Address {
  const prefix = PREFIX[b[0] as number]
  if (b.length !== ADDRESS_LENGTH || prefix === undefined) throw unknownType(b[0])
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

/** {@link address} through its bytes: the reference the direct codec is checked against. */
export const addressViaBytes: Codec<Address> = mapped(fixedBytes(ADDRESS_LENGTH), 'address', addressFromBytes, addressToBytes)

/**
 * Codec of an address as its 21 bytes. It reads and writes the text form straight from and into
 * the codec's buffers — every transaction carries two addresses, decoded on arrival and again in
 * a proposal, and encoded for gossip and storage — and gives the same bytes and the same errors as
 * {@link addressViaBytes}, which non-canonical input still goes through.
 */
export const address: Codec<Address> = {
  name: 'address',
  minSize: ADDRESS_LENGTH,
  write(w, v) {
    if (typeof v === 'string' && v.length === 2 + 2 * (ADDRESS_LENGTH - 1)) {
      const type = v.startsWith('hx') ? 0 : v.startsWith('cx') ? 1 : -1
      if (type >= 0 && w.prefixedHex(type, v, 2, ADDRESS_LENGTH - 1)) return
    }
    addressViaBytes.write(w, v)
  },
  read(r) {
    // Fewer than 21 bytes left: the same error as reading them through the bytes.
    if (r.remaining < ADDRESS_LENGTH) return addressViaBytes.read(r)
    const type = r.u8()
    const prefix = PREFIX[type]
    if (prefix === undefined) throw unknownType(type)
    return `${prefix}${r.hex(ADDRESS_LENGTH - 1)}` as Address
  },
}
