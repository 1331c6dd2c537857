/**
 * Exact, deterministic step metering on QuickJS's own interrupt counter.
 *
 * QuickJS decrements a per-context counter (`JSContext.interrupt_counter`) at every "poll point"
 * — loop back-edges, function entry and return — and calls the runtime's interrupt handler when
 * it reaches zero, after resetting it to `JS_INTERRUPT_COUNTER_INIT` (10,000). The counter lives
 * in WebAssembly linear memory, so the host can read and write it: the meter writes the remaining
 * budget into it, and reads it back to know exactly how many steps ran. No callback happens on the
 * hot path, and the count is a property of the bytecode alone, identical on every machine.
 *
 * The meter never writes more than {@link CHUNK} (< 10,000), so a handler call that finds the
 * counter at exactly 10,000 is a chunk running out; any other reading is a poll from the regular
 * expression engine, which calls the handler directly without touching the counter.
 */

/** QuickJS resets the counter to this before calling the interrupt handler (quickjs.c). */
export const JS_INTERRUPT_COUNTER_INIT = 10_000
/** Largest budget written at once; below {@link JS_INTERRUPT_COUNTER_INIT} so the two cases above cannot be confused. */
const CHUNK = 8_192
/** Counter value while no call is metered (setup code): large, so the handler is never reached. */
const IDLE = 1 << 30

/** Reads and writes one int32 cell of wasm memory. */
export interface CounterCell {
  read(): number
  write(value: number): void
}

/** One call's step budget, kept in QuickJS's interrupt counter. */
export class StepMeter {
  private limit = 0
  private used = 0
  private chunk = 0
  private active = false
  /** True once the budget ran out; every later poll interrupts. */
  exhausted = false
  /** True once the host stopped the call ({@link halt}); every later poll interrupts. */
  halted = false

  constructor(
    private readonly cell: CounterCell,
    private readonly regexPollCost: number,
  ) {}

  /** Sets the counter out of reach (for unmetered setup). */
  idle(): void {
    this.active = false
    this.cell.write(IDLE)
  }

  /** Starts metering a budget of `limit` steps. */
  start(limit: number): void {
    this.limit = limit
    this.used = 0
    this.exhausted = false
    this.halted = false
    this.active = true
    this.arm()
  }

  /** Writes the next chunk: one more than what is left, so the poll that would exceed the limit is the one that trips. */
  private arm(): void {
    this.chunk = Math.min(this.limit - this.used + 1, CHUNK)
    this.cell.write(this.chunk)
  }

  /** Folds the steps run since the last write into `used`. */
  private sync(): void {
    this.used += this.chunk - this.cell.read()
    this.chunk = this.cell.read()
  }

  private exhaust(): void {
    this.exhausted = true
    this.used = this.limit
    // The next poll point trips the handler, which interrupts with an uncatchable error.
    this.chunk = 1
    this.cell.write(1)
  }

  /** The runtime's interrupt handler: true stops the contract with an uncatchable error. */
  onInterrupt(): boolean {
    if (!this.active) {
      this.cell.write(IDLE)
      return false
    }
    if (this.exhausted || this.halted) return true
    const reading = this.cell.read()
    if (reading === JS_INTERRUPT_COUNTER_INIT) {
      this.used += this.chunk
    } else {
      this.used += this.chunk - reading + this.regexPollCost
    }
    if (this.used > this.limit) {
      this.exhaust()
      return true
    }
    this.arm()
    return false
  }

  /** Charges `steps` for host work. Returns false (and exhausts the budget) when they do not fit. */
  charge(steps: number): boolean {
    if (!this.active) return true
    if (this.exhausted || this.halted) return false
    this.sync()
    this.used += steps
    if (this.used > this.limit) {
      this.exhaust()
      return false
    }
    this.arm()
    return true
  }

  /** Stops the call at the next poll point, keeping the steps used so far. */
  halt(): void {
    if (!this.active || this.exhausted || this.halted) return
    this.sync()
    this.halted = true
    this.chunk = 1
    this.cell.write(1)
  }

  /** Ends metering and returns the steps used (the limit itself when the budget ran out). */
  stop(): number {
    if (this.active && !this.exhausted && !this.halted) this.sync()
    this.active = false
    this.cell.write(IDLE)
    return this.exhausted ? this.limit : Math.min(this.used, this.limit)
  }

  /** Steps still available to a running call: what a nested call may use from the same budget. */
  get remaining(): number {
    return Math.max(0, this.limit - this.stepsUsed)
  }

  /** Steps used so far (for a running call). */
  get stepsUsed(): number {
    if (this.exhausted) return this.limit
    if (!this.active || this.halted) return this.used
    return this.used + this.chunk - this.cell.read()
  }
}
