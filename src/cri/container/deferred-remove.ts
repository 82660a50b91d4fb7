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

/** Removals running now, by namespace/id, with the pod they belonged to. */
const running = new Map<string, { sandboxId: string; done: Promise<void> }>();

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
  const key = `${ns}/${p.id}`;
  const done = ctx.locks
    .run(containerLockKey(ns, p.id), () => finishRemoval(ctx, ns, p))
    .catch((err: unknown) => ctx.log.warn('container removal left unfinished; the next start finishes it', { id: p.id, error: (err as Error).message }))
    .finally(() => {
      if (running.get(key)?.done === done) running.delete(key);
    });
  running.set(key, { sandboxId: p.sandboxId, done });
}

/** Resolves once the deferred removals running now (of one pod, or all) have ended. */
export async function removalsSettled(ns: string, sandboxId?: string): Promise<void> {
  const waits = [...running.entries()]
    .filter(([k, r]) => k.startsWith(`${ns}/`) && (sandboxId === undefined || r.sandboxId === sandboxId))
    .map(([, r]) => r.done);
  await Promise.all(waits);
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
