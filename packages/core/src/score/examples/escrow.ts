/**
 * A one-deal escrow over the IRC-2 token ({@link TOKEN_SOURCE}). The buyer deposits by
 * transferring exactly `amount` tokens to the escrow (the token calls `tokenFallback`); the buyer
 * releases them to the seller; the seller may refund the buyer at any time, and the buyer may take
 * them back from block height `deadline` on (read from the header through `block.height`).
 * Tokens rather than the native value, so every movement is an ordinary, rollback-safe SCORE call.
 */
export const ESCROW_SOURCE = `// Escrow for one deal, paid in an IRC-2 token.
const { VarDB, msg, block } = loopchain

export const manifest = {
  name: 'Escrow',
  methods: {
    onInstall: { params: [['token', 'Address'], ['buyer', 'Address'], ['seller', 'Address'], ['amount', 'int'], ['deadline', 'int']] },
    tokenFallback: { params: [['_from', 'Address'], ['_value', 'int'], ['_data', 'bytes', { optional: true }]] },
    release: { returns: 'bool' },
    refund: { returns: 'bool' },
    status: { readonly: true, returns: 'dict' },
  },
  events: {
    Deposited: { indexed: [['buyer', 'Address']], data: [['amount', 'int']] },
    Released: { indexed: [['seller', 'Address']], data: [['amount', 'int']] },
    Refunded: { indexed: [['buyer', 'Address']], data: [['amount', 'int']] },
  },
}

const token = new VarDB('token', 'Address')
const buyer = new VarDB('buyer', 'Address')
const seller = new VarDB('seller', 'Address')
const amount = new VarDB('amount', 'int')
const deadline = new VarDB('deadline', 'int')
// '' before install, then 'open' -> 'funded' -> 'released' | 'refunded'
const state = new VarDB('state', 'str')

export function onInstall(p) {
  if (p.amount <= 0n) throw new Error('amount must be positive')
  if (p.buyer === p.seller) throw new Error('buyer and seller must differ')
  token.set(p.token)
  buyer.set(p.buyer)
  seller.set(p.seller)
  amount.set(p.amount)
  deadline.set(p.deadline)
  state.set('open')
}

export function tokenFallback({ _from, _value }) {
  if (msg.sender !== token.get()) throw new Error('only the escrow token is accepted')
  if (state.get() !== 'open') throw new Error('the escrow does not take a deposit now')
  if (_from !== buyer.get()) throw new Error('only the buyer deposits')
  if (_value !== amount.get()) throw new Error('the deposit must be exactly ' + amount.get())
  state.set('funded')
  loopchain.emit('Deposited', { buyer: _from, amount: _value })
}

function payOut(to, next, event, who) {
  if (state.get() !== 'funded') throw new Error('the escrow is not funded')
  // State first: the token call cannot come back here (re-entry is refused), but this order is right anyway.
  state.set(next)
  loopchain.call(token.get(), 'transfer', { _to: to, _value: amount.get() })
  loopchain.emit(event, { [who]: to, amount: amount.get() })
  return true
}

export function release() {
  if (msg.sender !== buyer.get()) throw new Error('only the buyer releases')
  return payOut(seller.get(), 'released', 'Released', 'seller')
}

export function refund() {
  const sender = msg.sender
  if (sender === buyer.get()) {
    if (block.height < deadline.get()) throw new Error('the buyer can take a refund from height ' + deadline.get())
  } else if (sender !== seller.get()) {
    throw new Error('only the buyer or the seller refunds')
  }
  return payOut(buyer.get(), 'refunded', 'Refunded', 'buyer')
}

export function status() {
  return { state: state.get(), token: token.get(), buyer: buyer.get(), seller: seller.get(), amount: amount.get(), deadline: deadline.get() }
}
`
