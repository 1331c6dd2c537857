/**
 * Yamux window updates at half the window, as go-yamux and rust-yamux send them.
 *
 * `@libp2p/yamux` 8 answers every data frame it receives with a window-update frame, even when
 * nearly all of the 256 KiB receive window is still free. Gossip is a stream of small messages
 * (votes, transaction batches), so a node sent as many window updates as it received messages:
 * each one a yamux frame, a noise encryption and a socket write, ~1.5% of a loaded node's time in
 * `npm run bench -- net` profiles. The yamux spec leaves the timing to the receiver; here an
 * established stream grants credit once half of its window has been used, and every other case
 * (opening, acknowledging, pausing) goes through the library's own code unchanged.
 */
import { StreamState, YamuxStream } from '@libp2p/yamux/stream'

interface WindowFields {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

const proto = YamuxStream.prototype as unknown as { sendWindowUpdate?: () => void; __halfWindow?: true }
const original = proto.sendWindowUpdate
if (typeof original === 'function' && proto.__halfWindow === undefined) {
  proto.sendWindowUpdate = function (this: WindowFields) {
    if (this.state === StreamState.Established && this.recvWindowCapacity * 2 >= this.recvWindow) return
    original.call(this)
  }
  proto.__halfWindow = true
}
