/**
 * The part of RemoveContainer that runs after the reply: deleting the task (runc delete, the
 * bundle and its mounts), the rootfs snapshot and the container's dirs. The reply waits only
 * for the durable point (ContainerStore.retire: record deleted, name released, a pending
 * removal recorded, one transaction), as containerd's RemoveContainer leaves its snapshot to
 * the metadata garbage collector. Nothing is lost if berthd dies in between: recovery finishes
 * every pending removal before it reconciles anything else (finishPendingRemovals).
 *
 * The work runs under the container's lock key, so it is serialised after the RemoveContainer
 * that queued it; RemovePodSandbox waits for its containers' work (removalsSettled) so a pod
 * that is gone has nothing left on disk.
 */
import type { PendingContainerRemoval } from '../../core/metadata/records.js';
import { isBerthError } from '../../errors.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import { removeContainerDirs } from './io.js';
import { containerLockKey } from './lifecycle.js';
import { removeRootfsSnapshot } from './userns.js';

/** The removals one RuntimeContext runs now (ctx.removals), by namespace/id, with the pod they belonged to. */
export class DeferredRemovals {
  private readonly running = new Map<string, { sandboxId: string; done: Promise<void> }>();

  add(ns: string, id: string, sandboxId: string, done: Promise<void>): void {
    const key = `${ns}/${id}`;
    this.running.set(key, { sandboxId, done });
    void done.finally(() => {
      if (this.running.get(key)?.done === done) this.running.delete(key);
    });
  }

  /** Resolves once the removals running now (of one pod, or all of the namespace) have ended. */
  async settled(ns: string, sandboxId?: string): Promise<void> {
    const waits = [...this.running.entries()]
      .filter(([k, r]) => k.startsWith(`${ns}/`) && (sandboxId === undefined || r.sandboxId === sandboxId))
      .map(([, r]) => r.done);
    await Promise.all(waits);
  }

  get size(): number {
    return this.running.size;
  }
}

/** Task, rootfs snapshot and dirs of a retired container; then the pending removal is cleared. */
export async function finishRemoval(ctx: RuntimeContext, ns: string, p: PendingContainerRemoval): Promise<void> {
  try {
    await ctx.tasks.delete(ns, p.id);
  } catch (err) {
    if (!isBerthError(err, 'NotFound')) throw err;
  }
  await removeRootfsSnapshot(ctx, p.snapshotKey);
  await removeContainerDirs(ctx, ns, p.id);
  ctx.containers.removalDone(ns, p.id);
}

/** Queues finishRemoval after the current holder of the container's lock; failures wait for the next start. */
export function finishRemovalLater(ctx: RuntimeContext, ns: string, p: PendingContainerRemoval): void {
  const done = ctx.locks
    .run(containerLockKey(ns, p.id), () => finishRemoval(ctx, ns, p))
    .catch((err: unknown) => ctx.log.warn('container removal left unfinished; the next start finishes it', { id: p.id, error: (err as Error).message }));
  ctx.removals.add(ns, p.id, p.sandboxId, done);
}

/** Resolves once the deferred removals running now (of one pod, or all) have ended. */
export function removalsSettled(ctx: RuntimeContext, ns: string, sandboxId?: string): Promise<void> {
  return ctx.removals.settled(ns, sandboxId);
}

/** Start-up: finishes every pending removal (berthd died after a reply); returns their namespace/ids. */
export async function finishPendingRemovals(ctx: RuntimeContext): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const { namespace: ns, pending } of ctx.containers.pendingRemovals()) {
    ids.add(`${ns}/${pending.id}`);
    try {
      await ctx.locks.run(containerLockKey(ns, pending.id), () => finishRemoval(ctx, ns, pending));
      ctx.log.info('recovery: finished the removal of a container', { id: pending.id });
    } catch (err) {
      ctx.log.warn('recovery: a container removal could not be finished; kept for the next start', { id: pending.id, error: (err as Error).message });
    }
  }
  return ids;
}
