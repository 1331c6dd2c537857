import { PEER_REACHED_MESSAGE, STALL_ENDED_MESSAGE } from '@loopchain/node/client'
import { describe, expect, it } from 'vitest'
import { devnetLine } from '../src/devnet-output.js'

const log = (level: string, msg: string, fields: Record<string, unknown> = {}) =>
  JSON.stringify({ t: '2026-12-07T20:00:00.000Z', level, node: 'node-1', msg, ...fields })

describe("what the devnet's terminal shows of its nodes' logs", () => {
  it('shows readiness, each height once, warnings, errors and the end of what was warned of; hides other info lines', () => {
    const shown = { height: 0 }
    expect(devnetLine('node-1', log('info', 'node ready', { height: 3, rpc: 'http://127.0.0.1:8545/' }), shown)).toBe(
      'node-1   ready at height 3  JSON-RPC http://127.0.0.1:8545/  (ws ws://127.0.0.1:8545/ws)',
    )
    expect(devnetLine('node-1', log('info', 'block committed', { height: 4 }), shown)).toBe('block 4 committed')
    // The same height from another node, or an older one, is not shown again.
    expect(devnetLine('node-2', log('info', 'block committed', { height: 4 }), shown)).toBeUndefined()
    expect(devnetLine('node-2', log('info', 'block committed', { height: 3 }), shown)).toBeUndefined()
    expect(devnetLine('node-2', log('info', 'block committed', { height: 5 }), shown)).toBe('block 5 committed')

    // Warnings and errors: the level, the message and the other fields, without the timestamp.
    const stalled = log('warn', 'consensus: no block for this height yet', { height: 6, silent: ['hx01'] })
    expect(devnetLine('node-1', stalled, shown)).toBe(
      'node-1   warn: consensus: no block for this height yet  {"height":6,"silent":["hx01"]}',
    )
    const failed = log('error', 'consensus: driver failed', { error: 'boom' })
    expect(devnetLine('observer', failed, shown)).toBe('observer error: consensus: driver failed  {"error":"boom"}')
    expect(devnetLine('node-0', log('warn', 'stopping'), shown)).toBe('node-0   warn: stopping')
    for (const msg of [STALL_ENDED_MESSAGE, PEER_REACHED_MESSAGE])
      expect(devnetLine('node-1', log('info', msg, { seconds: 90 }), shown)).toBe(`node-1   info: ${msg}  {"seconds":90}`)
    expect(devnetLine('node-1', log('info', 'sync: progress', { height: 2, target: 9 }), shown)).toBeUndefined()
    expect(devnetLine('node-1', log('debug', 'consensus: timeout'), shown)).toBeUndefined()
  })

  it('shows a line that is not a JSON log line as it is (a stack trace, a library printing)', () => {
    const shown = { height: 7 }
    for (const line of ['    at FullNode.commit (full-node.ts:1700:5)', '42', 'null', '{"msg":'])
      expect(devnetLine('node-0', line, shown)).toBe(`node-0   ${line}`)
    expect(shown.height).toBe(7)
  })
})
