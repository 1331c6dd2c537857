import {
  DEFAULT_PARAMS,
  type Genesis,
  genesisHash,
  genesisToJson,
  keyPairFromSecret,
  makeValidatorSet,
  Right,
  sha256,
  to0x,
  utf8,
} from '@loopchain/core'
import { describe, expect, it } from 'vitest'
import { CHAIN_CONFIG_FORMAT, ChainConfigError, parseChainConfig } from '../src/config.js'
import { isRoute, parseHash } from '../src/router.js'

const v = keyPairFromSecret(sha256(utf8('web config validator')))
const genesis: Genesis = {
  chainId: 'web-test',
  networkId: 7,
  timestamp: 1_767_225_600_000_000,
  validators: makeValidatorSet([{ address: v.address, publicKey: v.publicKey, power: 1 }]),
  members: [{ id: 'bank', name: 'Bank', address: v.address, nodeKey: undefined, rights: Right.Validator | Right.Issuer }],
  balances: [],
  params: { ...DEFAULT_PARAMS },
}
const NODE = '/ip4/127.0.0.1/tcp/27601/ws/p2p/12D3KooWLzCBnG3kT3mP8ScwCMmmgqpvCDDAHjpXxP7dzYKWFcy8'
const config = (o: object = {}) =>
  JSON.parse(JSON.stringify({ format: CHAIN_CONFIG_FORMAT, genesis: genesisToJson(genesis), bootstrap: [NODE], ...o }))

describe('chain.json', () => {
  it('pins the genesis it carries: the hash shown is the genesis hash, and plain ws:// to local nodes stays off unless asked', () => {
    const c = parseChainConfig(config())
    expect(c.genesis).toEqual(genesis)
    expect(c.genesisHash).toBe(to0x(genesisHash(genesis)))
    expect(c.bootstrap).toEqual([NODE])
    expect(c.allowLocal).toBe(false)
    expect(parseChainConfig(config({ allowLocal: true })).allowLocal).toBe(true)
  })

  it('refuses another format, a genesis that does not parse, and nodes without a peer id', () => {
    expect(() => parseChainConfig(config({ format: 'other/1' }))).toThrow(ChainConfigError)
    expect(() => parseChainConfig(config({ genesis: { ...(genesisToJson(genesis) as object), validators: [] } }))).toThrow(/genesis/)
    expect(() => parseChainConfig(config({ bootstrap: ['/ip4/127.0.0.1/tcp/27601/ws'] }))).toThrow(/p2p/)
    expect(() => parseChainConfig(null)).toThrow(ChainConfigError)
  })
})

describe('routes', () => {
  it('reads the page and its query from the hash, and tells routes from in-page anchors', () => {
    expect(parseHash('')).toMatchObject({ path: '/' })
    expect(parseHash('#/network').path).toBe('/network')
    const { path, params } = parseHash(`#/verify?c=${encodeURIComponent('LC1:AB CD+/%')}`)
    expect(path).toBe('/verify')
    expect(params.get('c')).toBe('LC1:AB CD+/%')
    expect(isRoute('#/verify')).toBe(true)
    expect(isRoute('')).toBe(true)
    expect(isRoute('#main')).toBe(false)
  })
})
