/**
 * Type declarations of the SCORE SDK, for developers who write contracts in TypeScript. The SDK
 * itself is JavaScript inside the sandbox (the engine's prelude, `engine/guest.ts`) and reaches a
 * contract as the global `loopchain`; these types describe it. A contract declares it once:
 *
 * ```ts
 * import type { ScoreManifest, ScoreSdk } from '@loopchain/core'
 * declare const loopchain: ScoreSdk
 * const { VarDB, DictDB, msg } = loopchain
 * ```
 *
 * and is compiled to one ES module with no imports (type-only imports vanish), e.g.
 * `tsc --target es2022 --module es2022` or `esbuild --format=esm`. See docs/writing-a-score.md.
 */
import type { Value } from '../../codec/value.js'
import type { AbiType } from '../abi.js'

/** An address in text form: `hx…` (account) or `cx…` (SCORE), 42 characters. */
export type ScoreAddress = string

/** Value types a storage container may declare. */
export type StorageType = 'int' | 'str' | 'bytes' | 'bool' | 'Address' | 'any'

/** The TypeScript type a storage container of type `T` holds. */
export type StorageValue<T extends StorageType> = T extends 'int'
  ? bigint
  : T extends 'str'
    ? string
    : T extends 'bool'
      ? boolean
      : T extends 'bytes'
        ? Uint8Array | null
        : T extends 'Address'
          ? ScoreAddress | null
          : Value

/** What may key a DictDB level: encoded as a canonical Value, so `1n` and `'1'` are different keys. */
export type StorageKey = string | bigint | boolean | Uint8Array

/** One value in storage. A missing value reads as the type's default (0n, '', false or null). */
export interface VarDB<V> {
  get(): V
  /** Stores `v`; storing the default value removes the slot. Throws TypeError on a wrong type. */
  set(v: V): void
  remove(): void
}

/** A map in storage; a nested one (depth > 1) is walked with {@link DictDB.at}. */
export interface DictDB<V> {
  /** The next level of a nested DictDB. Throws TypeError at the last level. */
  at(key: StorageKey): DictDB<V>
  get(key: StorageKey): V
  /** True when a value is stored (a default value is never stored). */
  has(key: StorageKey): boolean
  set(key: StorageKey, v: V): void
  remove(key: StorageKey): void
}

/** A list in storage. Indexes are checked: out of range throws RangeError. */
export interface ArrayDB<V> extends Iterable<V> {
  readonly length: number
  get(index: number | bigint): V
  set(index: number | bigint, v: V): void
  push(v: V): void
  /** Removes and returns the last item; RangeError when empty. */
  pop(): V
}

/** The `loopchain` global every contract sees. */
export interface ScoreSdk {
  /** `new VarDB('owner', 'Address')`. */
  readonly VarDB: new <T extends StorageType = 'any'>(
    name: string,
    type?: T,
  ) => VarDB<StorageValue<T>>
  /** `new DictDB('balances', 'int')`, `new DictDB('allowances', 'int', 2)`. */
  readonly DictDB: new <T extends StorageType = 'any'>(
    name: string,
    type?: T,
    depth?: number,
  ) => DictDB<StorageValue<T>>
  /** `new ArrayDB('holders', 'Address')`. */
  readonly ArrayDB: new <T extends StorageType = 'any'>(
    name: string,
    type?: T,
  ) => ArrayDB<StorageValue<T>>
  /** The caller (an account for the transaction's own call, the calling SCORE for a nested call) and the value sent. */
  readonly msg: { readonly sender: ScoreAddress; readonly value: bigint }
  /** The executing block's header: height and timestamp (microseconds). Never a clock. */
  readonly block: { readonly height: bigint; readonly timestamp: bigint }
  /** The transaction: its hash (null in a read-only query) and its signer. */
  readonly tx: { readonly hash: Uint8Array | null; readonly origin: ScoreAddress }
  /** This SCORE. */
  readonly self: { readonly address: ScoreAddress }
  /**
   * Calls an external method of another SCORE and returns its result. A failure throws an Error
   * whose message starts with the failure code (`NOT_PAYABLE: …`); its writes are already undone.
   */
  call(target: ScoreAddress | Uint8Array, method: string, params?: Value): Value
  /** Emits an event declared in the manifest, with exactly its fields. */
  emit(event: string, fields?: { readonly [field: string]: Value }): void
  /** Raw context facts by name: sender, value, origin, txHash, height, timestamp, address. */
  context(name: string): Value
  /** Raw storage (bytes to bytes). The containers above use keys starting with 0x01–0x03. */
  readonly storage: {
    get(key: Uint8Array): Uint8Array | null
    set(key: Uint8Array, value: Uint8Array): void
    delete(key: Uint8Array): void
  }
}

/** A parameter or event field in a manifest: `[name, type]`, or `[name, type, { optional: true }]` for a parameter. */
export type ManifestParam = readonly [string, AbiType] | readonly [string, AbiType, { readonly optional?: boolean }]

/** The manifest a SCORE module exports as `export const manifest = { … } satisfies ScoreManifest`. */
export interface ScoreManifest {
  readonly name: string
  readonly methods: {
    readonly [method: string]: {
      readonly params?: readonly ManifestParam[]
      readonly returns?: AbiType
      readonly readonly?: boolean
      readonly payable?: boolean
    }
  }
  readonly events?: {
    readonly [event: string]: { readonly indexed?: readonly ManifestParam[]; readonly data?: readonly ManifestParam[] }
  }
}
