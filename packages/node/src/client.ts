/**
 * What a client command needs from the node package — native signing and the JSON forms of SCORE
 * parameters — without libp2p, LevelDB or the rest of the runtime, whose loading alone takes
 * most of two seconds: `loopchain status`, `tx` and `cert` import this, not the package root.
 */
export { ENDED_WARNING_MESSAGES, PEER_REACHED_MESSAGE, STALL_ENDED_MESSAGE } from './log-messages.js'
export { nativeCrypto, verifiesWithSodium } from './native-crypto.js'
export { paramsFromJson, valueFromJson } from './node/json.js'
export type { Json } from './rpc/json-rpc.js'
export { RPC_LIMIT_DEFAULTS, type RpcLimitName, type RpcLimits } from './rpc/limits.js'
