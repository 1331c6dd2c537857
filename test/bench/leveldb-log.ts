/**
 * Reads LevelDB's own log (`LOG` in a database's directory) for the compactions that began in a
 * span of wall-clock time. A level-0 compaction merges the newest table files with all of level 1
 * they overlap; in a validator, whose state-tree nodes are keyed by hash, that is all of level 1,
 * tens of megabytes rewritten in a few seconds of one core (packages/node/docs/performance.md). A
 * `bench net` window that holds one on every node at once, or follows one, is not measuring the
 * same thing as one that does not, so the bench prints how many began in its warm-up and window.
 *
 * LevelDB stamps each line with the local time to the microsecond:
 * `2026/12/06-11:07:38.314176 7fb3c4fff6c0 Compacting 4@0 + 6@1 files`.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const COMPACTING = /^(\d{4})\/(\d\d)\/(\d\d)-(\d\d):(\d\d):(\d\d)\.(\d{6}) \S+ Compacting (\d+)@(\d+) \+ (\d+)@(\d+) files/gm

/** A compaction LevelDB logged as begun: when (ms since the epoch) and the level it took files from. */
export interface CompactionStart {
  readonly atMs: number
  readonly level: number
  readonly files: number
}

/** The compactions a LevelDB log's text records as begun, in order. */
export function compactionsIn(logText: string): CompactionStart[] {
  const out: CompactionStart[] = []
  for (const m of logText.matchAll(COMPACTING)) {
    const [, y, mo, d, h, mi, s, us, files, level, more] = m.map(Number) as number[]
    const atMs = new Date(y as number, (mo as number) - 1, d, h, mi, s, Math.floor((us as number) / 1000)).getTime()
    out.push({ atMs, level: level as number, files: (files as number) + (more as number) })
  }
  return out
}

/** When each level-0 compaction of the database at `dir` began (ms since the epoch); undefined when it has no log. */
export function levelZeroCompactionStarts(dir: string): number[] | undefined {
  let text: string
  try {
    text = readFileSync(join(dir, 'LOG'), 'utf8')
  } catch {
    return undefined
  }
  return compactionsIn(text)
    .filter((c) => c.level === 0)
    .map((c) => c.atMs)
}
