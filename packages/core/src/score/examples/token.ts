/**
 * An IRC-2-style fungible token (ICON's token standard): name, symbol, decimals, totalSupply,
 * balanceOf and transfer with a Transfer event, and `tokenFallback` into a receiving SCORE. The
 * source is what a developer deploys: one ES module, no imports, the SDK from the `loopchain`
 * global. Load it with `loadScore(engine, TOKEN_SOURCE)`; deploy with `onInstall`.
 */
export const TOKEN_SOURCE = `// IRC-2-style token. Balances live in a DictDB keyed by address.
const { VarDB, DictDB, msg } = loopchain

export const manifest = {
  name: 'IRC2Token',
  methods: {
    onInstall: { params: [['_name', 'str'], ['_symbol', 'str'], ['_decimals', 'int'], ['_initialSupply', 'int']] },
    name: { readonly: true, returns: 'str' },
    symbol: { readonly: true, returns: 'str' },
    decimals: { readonly: true, returns: 'int' },
    totalSupply: { readonly: true, returns: 'int' },
    balanceOf: { readonly: true, params: [['_owner', 'Address']], returns: 'int' },
    transfer: { params: [['_to', 'Address'], ['_value', 'int'], ['_data', 'bytes', { optional: true }]], returns: 'bool' },
  },
  events: {
    Transfer: { indexed: [['_from', 'Address'], ['_to', 'Address'], ['_value', 'int']], data: [['_data', 'bytes']] },
  },
}

const name_ = new VarDB('name', 'str')
const symbol_ = new VarDB('symbol', 'str')
const decimals_ = new VarDB('decimals', 'int')
const totalSupply_ = new VarDB('totalSupply', 'int')
const balances = new DictDB('balances', 'int')

export function onInstall({ _name, _symbol, _decimals, _initialSupply }) {
  if (_decimals < 0n || _decimals > 21n) throw new Error('_decimals must be 0 to 21')
  if (_initialSupply < 0n) throw new Error('_initialSupply must not be negative')
  name_.set(_name)
  symbol_.set(_symbol)
  decimals_.set(_decimals)
  totalSupply_.set(_initialSupply)
  balances.set(msg.sender, _initialSupply)
}

export function name() { return name_.get() }
export function symbol() { return symbol_.get() }
export function decimals() { return decimals_.get() }
export function totalSupply() { return totalSupply_.get() }
export function balanceOf({ _owner }) { return balances.get(_owner) }

export function transfer({ _to, _value, _data }) {
  const from = msg.sender
  if (_value < 0n) throw new Error('_value must not be negative')
  const held = balances.get(from)
  if (held < _value) throw new Error('insufficient balance')
  balances.set(from, held - _value)
  balances.set(_to, balances.get(_to) + _value)
  const data = _data ?? new Uint8Array(0)
  loopchain.emit('Transfer', { _from: from, _to, _value, _data: data })
  // A SCORE receiving tokens is told, and may refuse them by throwing (which undoes the transfer).
  if (_to.startsWith('cx')) loopchain.call(_to, 'tokenFallback', { _from: from, _value, _data: data })
  return true
}
`
