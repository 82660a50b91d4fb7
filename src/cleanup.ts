/**
 * The one undo stack for multi-step operations (RunPodSandbox, CreateContainer, the shim's
 * Create): each step pushes its undo as soon as it starts making something, and a failure
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
}

interface Step<Tag extends string> {
  what: string;
  kind: UndoKind;
  tag?: Tag;
  fn: () => Promise<unknown> | unknown;
}

export interface CleanupLog {
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export class Cleanup<Tag extends string = string> {
  private readonly steps: Step<Tag>[] = [];
  constructor(private readonly log?: CleanupLog) {}

  /** Push the undo of a resource (`tag` names it in the result, e.g. for a record's leftover). */
  push(what: string, fn: () => Promise<unknown> | unknown, tag?: Tag): void {
    this.steps.push({ what, kind: 'resource', fn, tag });
  }

  /** Push an undo that only forgets (skipped when a resource undo failed). */
  pushBookkeeping(what: string, fn: () => Promise<unknown> | unknown): void {
    this.steps.push({ what, kind: 'bookkeeping', fn });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Run the undos in reverse; never throws. */
  async unwind(): Promise<UnwindResult<Tag>> {
    const result: UnwindResult<Tag> = { failed: [], skipped: [] };
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
      }
    }
    return result;
  }

  /** Forget the steps (the operation succeeded). */
  commit(): void {
    this.steps.length = 0;
  }
}
