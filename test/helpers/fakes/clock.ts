/**
 * A clock whose timers fire only when the test advances it: grace periods and kill waits run
 * in no real time.
 */
import type { Clock } from '../../../src/cri/server/ports.js';

export class ManualClock implements Clock {
  private nowMs = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.nowMs + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers waiting to fire. */
  pending(): number {
    return this.timers.size;
  }

  /** Moves time on by `ms`, firing (in order) every timer due by then. */
  advance(ms: number): void {
    this.nowMs += ms;
    const due = [...this.timers.entries()].filter(([, t]) => t.at <= this.nowMs).sort((a, b) => a[1].at - b[1].at);
    for (const [id, t] of due) {
      this.timers.delete(id);
      t.fn();
    }
  }
}
