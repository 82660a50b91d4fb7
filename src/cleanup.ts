/**
 * The one undo stack for multi-step operations (RunPodSandbox, CreateContainer,
 * TaskManager.create, the shim's Create): each step pushes its undo as soon as it starts making something, and a failure
 * unwinds them in reverse.
 *
 * Two kinds of undo, because unwinding must never orphan state:
 * - 'resource' undoes something real (CNI DEL, netns removal, unmount, task delete, snapshot
 *   removal). It always runs; when it fails, the failure is reported in the result (with the
 *   step's tag) and the unwinding goes on with the other resources.
 * - 'bookkeeping' forgets (deletes a record, frees a name, removes the bundle recovery reads).
 *   Once a resource undo has failed, bookkeeping undos are skipped: what is left must stay
 *   pointed at, so a later Stop/Remove or recovery can finish it.
 *
 * A forget that fails (on a full metadata disk even a DELETE fails: SQLite's WAL must grow)
 * orphans nothing, but a name it keeps reserved would fail the caller's retry for ever. So a
 * failed bookkeeping undo, and a resource undo pushed with `{ retry: true }`, comes back in
 * `retry` for BookkeepingRetries, which runs it again until it succeeds (each is idempotent).
 *
 * Imports nothing, so berth-shim loads it for the price of one small module.
 */

export type UndoKind = 'resource' | 'bookkeeping';

export interface UndoFailure<Tag extends string = string> {
  what: string;
  tag?: Tag;
  error: unknown;
}

export interface UnwindResult<Tag extends string = string> {
  /** Resource undos that failed, in the order they ran. */
  failed: UndoFailure<Tag>[];
  /** Bookkeeping undos skipped because of them. */
  skipped: string[];
  /** Failed undos worth running again later (see BookkeepingRetries), in the order they ran. */
  retry: RetryableUndo[];
}

export interface RetryableUndo {
  what: string;
  fn: () => Promise<unknown> | unknown;
  error: unknown;
}

interface Step<Tag extends string> {
  what: string;
  kind: UndoKind;
  tag?: Tag;
  fn: () => Promise<unknown> | unknown;
  retry: boolean;
}

export interface CleanupLog {
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export class Cleanup<Tag extends string = string> {
  private readonly steps: Step<Tag>[] = [];
  constructor(private readonly log?: CleanupLog) {}

  /** Push the undo of a resource (`tag` names it in the result, e.g. for a record's leftover). */
  push(what: string, fn: () => Promise<unknown> | unknown, tag?: Tag, opts: { retry?: boolean } = {}): void {
    this.steps.push({ what, kind: 'resource', fn, tag, retry: opts.retry ?? false });
  }

  /** Push an undo that only forgets (skipped when a resource undo failed; retried when it fails). */
  pushBookkeeping(what: string, fn: () => Promise<unknown> | unknown): void {
    this.steps.push({ what, kind: 'bookkeeping', fn, retry: true });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Run the undos in reverse; never throws. */
  async unwind(): Promise<UnwindResult<Tag>> {
    const result: UnwindResult<Tag> = { failed: [], skipped: [], retry: [] };
    while (this.steps.length) {
      const s = this.steps.pop()!;
      if (s.kind === 'bookkeeping' && result.failed.length > 0) {
        result.skipped.push(s.what);
        continue;
      }
      try {
        await s.fn();
      } catch (error) {
        this.log?.warn('cleanup step failed', { step: s.what, error });
        // A bookkeeping undo that fails orphans nothing (the object it names is still there).
        if (s.kind === 'resource') result.failed.push({ what: s.what, tag: s.tag, error });
        if (s.retry) result.retry.push({ what: s.what, fn: s.fn, error });
      }
    }
    return result;
  }

  /** Forget the steps (the operation succeeded). */
  commit(): void {
    this.steps.length = 0;
  }
}

/**
 * Failed forgets run again later (RuntimeContext.bookkeepingRetries): on every `flush()` —
 * RunPodSandbox and CreateContainer flush before reserving their name, so a retry of the call
 * that failed finds its name free as soon as the disk has room again — and every `intervalMs`
 * while any is left. The timer never keeps the process alive.
 *
 * One pass runs at a time: a flush that comes while a pass runs (the timer's) waits for it and
 * then makes its own, so when `flush()` resolves every undo pending when it was called has been
 * tried (a pass takes the undos out of `pending` while it runs them: an overlapping flush used
 * to find nothing and return before the name was released). The undos are forgets (a SQLite
 * statement each), so a pass is short. At most `maxPending` wait; past that the oldest is
 * dropped with a warning (recovery at the next start releases names nothing holds).
 */
export class BookkeepingRetries {
  private pending: Array<{ what: string; fn: () => Promise<unknown> | unknown; log?: CleanupLog }> = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private passing: Promise<void> | undefined;

  constructor(
    private readonly intervalMs = 2_000,
    private readonly maxPending = 1024,
  ) {}

  /** Undos still waiting for a successful run. */
  get size(): number {
    return this.pending.length;
  }

  add(undos: readonly RetryableUndo[], log?: CleanupLog): void {
    if (undos.length === 0) return;
    for (const u of undos) {
      log?.warn('an undo failed; it runs again later', { step: u.what, error: u.error });
      this.pending.push({ what: u.what, fn: u.fn, log });
    }
    this.trim();
    this.schedule();
  }

  /** Runs every pending undo once, in the order added; keeps those that fail again. Never throws. */
  flush(): Promise<void> {
    const run = (this.passing ?? Promise.resolve()).then(() => this.pass());
    this.passing = run;
    void run.then(() => {
      if (this.passing === run) this.passing = undefined;
    });
    return run;
  }

  /** Stops the timer (berthd stopping); pending undos are left to recovery at the next start. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async pass(): Promise<void> {
    const now = this.pending.splice(0);
    const again: typeof now = [];
    for (const u of now) {
      try {
        await u.fn();
      } catch {
        again.push(u);
      }
    }
    // Before any added meanwhile: the order they failed in.
    this.pending.unshift(...again);
    this.trim();
    this.schedule();
  }

  private trim(): void {
    while (this.pending.length > this.maxPending) {
      const u = this.pending.shift()!;
      u.log?.warn('too many undos waiting to run again; dropped (recovery finishes it at the next start)', { step: u.what });
    }
  }

  private schedule(): void {
    if (this.closed || this.timer !== undefined || this.pending.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.intervalMs);
    this.timer.unref?.();
  }
}
