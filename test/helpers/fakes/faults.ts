/**
 * Fault injection and call recording shared by the fakes: every fake call records a step name
 * (`tasks.create`, `cni.add`, `pods.unpin`, …) in one ordered log, and a test can make a step
 * fail (`fail`) or hold it until released (`hold`), to drive handler flows step by step.
 */
export class Faults {
  /** Every step in the order it was called. */
  readonly calls: string[] = [];
  private readonly failures = new Map<string, { err: Error; times: number }>();
  private readonly holds = new Map<string, { reached: Promise<void>; reach: () => void; release: Promise<void>; open: () => void }>();

  /** The next `times` calls of `step` throw `err`. */
  fail(step: string, err: Error = new Error(`injected ${step} failure`), times = Infinity): void {
    this.failures.set(step, { err, times });
  }

  /** The next call of `step` waits until `release()`; `reached` resolves once it is waiting. */
  hold(step: string): { reached: Promise<void>; release: () => void } {
    let reach!: () => void;
    let open!: () => void;
    const reached = new Promise<void>((r) => (reach = r));
    const release = new Promise<void>((r) => (open = r));
    this.holds.set(step, { reached, reach, release, open });
    return { reached, release: open };
  }

  count(step: string): number {
    return this.calls.filter((c) => c === step).length;
  }

  /** Called by a fake at the start of each step. */
  async hit(step: string): Promise<void> {
    this.calls.push(step);
    const h = this.holds.get(step);
    if (h) {
      this.holds.delete(step);
      h.reach();
      await h.release;
    }
    const f = this.failures.get(step);
    if (f && f.times > 0) {
      f.times--;
      if (f.times === 0) this.failures.delete(step);
      throw f.err;
    }
  }
}
