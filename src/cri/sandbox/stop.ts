/**
 * RuntimeService/StopPodSandbox: stop every container of the pod (timeout 0, as containerd),
 * kill + delete the pause task (if any), unmount /dev/shm, CNI DEL and unpin the pod's
 * namespaces; state NOTREADY. It also finishes what a failed RunPodSandbox could not undo
 * (the record's `leftover`: every step here is idempotent). Idempotent: a stopped pod, or an id that names no pod (already
 * removed, never created), succeeds, as the CRI asks and containerd 2.x does. An empty or
 * ambiguous id is still InvalidArgument.
 */
import type { SandboxRecord } from '../../core/metadata/records.js';
import { errors, isBerthError } from '../../errors.js';
import { stopContainerTask } from '../container/lifecycle.js';
import { findSandbox, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { isCreating, sandboxConfigOf } from './common.js';
import { sandboxPaths } from './files.js';
import { killAndDeletePause, teardownNetwork, unpinSandbox } from './teardown.js';
import { faultPoint } from '../../fault.js';

/**
 * Key of the per-sandbox lock (KeyedLock) held by Run/Stop/Remove and the pause exit handler.
 * stopContainerTask / removeContainerFully are called while it is held: they must not take it.
 */
export function sandboxLockKey(id: string): string {
  return `sandbox/${id}`;
}

/** A visible (fully created) sandbox by id or unique prefix; NotFound otherwise. */
export function findVisibleSandbox(ctx: RuntimeContext, ns: string, id: string): SandboxRecord {
  const rec = findSandbox(ctx, ns, id);
  if (isCreating(rec)) throw errors.notFound('sandbox.not_found', `pod sandbox ${id} not found`);
  return rec;
}

/** The stop steps; each is idempotent. Call with the sandbox lock held. */
export async function stopSandbox(ctx: RuntimeContext, ns: string, rec: SandboxRecord): Promise<void> {
  const id = rec.id;
  await faultPoint?.('StopPodSandbox.containers');
  for (const c of ctx.containers.bySandbox(ns, id)) {
    if (c.state !== 'exited') await stopContainerTask(ctx, ns, c, 0);
  }
  await faultPoint?.('StopPodSandbox.pause');
  await killAndDeletePause(ctx, ns, id);
  await faultPoint?.('StopPodSandbox.record');
  ctx.sandboxes.update(ns, id, (r) => {
    r.state = 'notready';
    delete r.pid;
  });
  await faultPoint?.('StopPodSandbox.shm');
  await ctx.pods.unmountShm(sandboxPaths(ctx.settings, id).shmPath);
  if (!rec.hostNetwork && !rec.networkDown) {
    await faultPoint?.('StopPodSandbox.network');
    await teardownNetwork(ctx, { id, netnsPath: rec.netnsPath, config: sandboxConfigOf(rec) });
    ctx.sandboxes.update(ns, id, (r) => {
      r.ips = [];
      r.networkDown = true;
    });
  }
  // After CNI DEL (which wants the netns): the IPC, UTS and user namespaces go too.
  await faultPoint?.('StopPodSandbox.unpin');
  await unpinSandbox(ctx, rec);
  // What a failed RunPodSandbox could not undo is done now, but for what Remove does.
  if (rec.leftover?.length) {
    ctx.sandboxes.update(ns, id, (r) => {
      const rest = (r.leftover ?? []).filter((s) => s === 'snapshot' || s === 'sandbox-dirs');
      if (rest.length > 0) r.leftover = rest;
      else delete r.leftover;
    });
  }
}

export const stopPodSandbox =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['stopPodSandbox']> =>
  async (req, call) => {
    const ns = call.namespace;
    let first: SandboxRecord;
    try {
      first = findVisibleSandbox(ctx, ns, req.podSandboxId);
    } catch (err) {
      if (isBerthError(err, 'NotFound')) return {};
      throw err;
    }
    await ctx.locks.run(sandboxLockKey(first.id), async () => {
      // Re-read under the lock: a concurrent Stop/Remove may have changed or removed it (gone
      // meanwhile is stopped too).
      const rec = ctx.sandboxes.get(ns, first.id);
      if (rec) await stopSandbox(ctx, ns, rec);
    });
    return {};
  };
