import { describe, expect, it } from 'vitest'
import { humanSeconds, statusLine } from '../src/status.js'

describe('loopchain status: the line --watch prints', () => {
  it('says a node in step with its peers is so, with its height and pool', () => {
    expect(
      statusLine({
        height: 12_345,
        role: 'validator',
        mempool: 7,
        sync: { target: 12_345, syncing: false, blocksPerSecond: 0, secondsLeft: null },
      }),
    ).toBe('validator, height 12,345, in step with its peers; 7 waiting in the pool')
  })

  it('gives a syncing node its progress, rate and time left', () => {
    expect(
      statusLine({
        height: 1_234,
        role: 'observer',
        mempool: 0,
        sync: { target: 10_000, syncing: true, blocksPerSecond: 171, secondsLeft: 52 },
      }),
    ).toBe('observer, syncing: height 1,234 of 10,000 (12.3%), 171 blocks/s, about 52 s left; 0 waiting in the pool')
    expect(statusLine({ height: 10, sync: { target: 900_000, syncing: true, blocksPerSecond: 50, secondsLeft: 17_999 } })).toBe(
      'syncing: height 10 of 900,000 (0.0%), 50 blocks/s, about 4 h 59 min left; 0 waiting in the pool',
    )
  })

  it('says a syncing node with no rate yet is waiting for blocks', () => {
    expect(statusLine({ height: 3, mempool: 1, sync: { target: 40, syncing: true, blocksPerSecond: 0, secondsLeft: null } })).toBe(
      'syncing: height 3 of 40 (7.5%), waiting for blocks from its peers; 1 waiting in the pool',
    )
  })

  it('says a node that has not heard from its peers yet is asking them', () => {
    expect(
      statusLine({ height: 0, role: 'observer', mempool: 0, sync: { target: 0, syncing: true, blocksPerSecond: 0, secondsLeft: null } }),
    ).toBe('observer, height 0, asking its peers how far the chain is; 0 waiting in the pool')
  })

  it('says a height that has had no block past three rounds is stalled: for how long, what was heard, and who is silent', () => {
    const consensus = {
      height: 24,
      seconds: 100,
      stalled: true,
      heard: ['hx57a3', 'hxe36b'],
      silentMembers: ['institution-2', 'institution-3'],
      powerHeard: 2,
      totalPower: 4,
    }
    const sync = { target: 23, syncing: false, blocksPerSecond: 0, secondsLeft: null }
    expect(statusLine({ height: 23, role: 'validator', mempool: 1, sync, consensus })).toBe(
      'validator, height 23, no block for height 24 in 1 min 40 s: heard from 2 of 4 validators (power 2 of 4; a block needs more than two thirds); silent: institution-2, institution-3; 1 waiting in the pool',
    )
    // Validators that voted and then stopped: heard, but their nodes are gone.
    expect(
      statusLine({
        height: 23,
        mempool: 1,
        sync,
        consensus: { ...consensus, heard: ['a', 'b', 'c', 'd'], silentMembers: [], powerHeard: 4, notConnectedMembers: ['institution-2'] },
      }),
    ).toBe(
      'height 23, no block for height 24 in 1 min 40 s: heard from 4 of 4 validators (power 4 of 4; a block needs more than two thirds); no connection to the node of: institution-2; 1 waiting in the pool',
    )
    expect(
      statusLine({
        height: 23,
        mempool: 1,
        sync,
        consensus: { ...consensus, heard: ['a', 'b', 'c', 'd'], silentMembers: [], powerHeard: 4 },
      }),
    ).toBe(
      'height 23, no block for height 24 in 1 min 40 s: heard from 4 of 4 validators (power 4 of 4; a block needs more than two thirds); every validator heard and connected: their votes do not agree yet; 1 waiting in the pool',
    )
    // Not yet past the three rounds, or idle: in step.
    expect(statusLine({ height: 23, mempool: 1, sync, consensus: { ...consensus, seconds: 3, stalled: false } })).toBe(
      'height 23, in step with its peers; 1 waiting in the pool',
    )
    expect(statusLine({ height: 23, mempool: 0, sync, consensus: null })).toBe('height 23, in step with its peers; 0 waiting in the pool')
  })

  it('reads durations as a person would', () => {
    expect([0, 59, 60, 200, 3599, 3600, 3660, 7500].map(humanSeconds)).toEqual([
      '0 s',
      '59 s',
      '1 min',
      '3 min 20 s',
      '59 min 59 s',
      '1 h',
      '1 h 1 min',
      '2 h 5 min',
    ])
  })
})
