/**
 * RuntimeService/RemovePodSandbox: stop first (forcibly, as containerd does for a READY pod),
 * remove every container, the pause rootfs snapshot, the sandbox dirs, the record and the
 * name. Idempotent: an unknown id succeeds.
 */
import type { SandboxRecord } from '../../core/metadata/records.js';
import { isBerthError } from '../../errors.js';
import { removalsSettled } from '../container/deferred-remove.js';
import { removeContainerFully } from '../container/lifecycle.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { removeSandboxDirs, sandboxPaths } from './files.js';
import { findVisibleSandbox, sandboxLockKey, stopSandbox } from './stop.js';
import { removeRootfsSnapshot } from '../container/userns.js';
import { releaseImageVolumes } from '../container/image-volume.js';
import { forgetSandboxConfig } from './status.js';

/** Stop + remove everything of a sandbox. Call with the sandbox lock held. */
export async function removeSandbox(ctx: RuntimeContext, ns: string, rec: SandboxRecord): Promise<void> {
  await stopSandbox(ctx, ns, rec);
  for (const c of ctx.containers.bySandbox(ns, rec.id)) await removeContainerFully(ctx, ns, c);
  // A pod that is gone leaves nothing on disk: its containers' deferred removals end first.
  await removalsSettled(ctx, ns, rec.id);
  // Any image volume view of the pod still there (a failed removal earlier) goes with it.
  await releaseImageVolumes(ctx, ns, rec.id);
  await removeRootfsSnapshot(ctx, rec.snapshotKey ?? rec.id);
  await removeSandboxDirs(ctx.pods, sandboxPaths(ctx.settings, rec.id));
  ctx.sandboxes.delete(ns, rec.id);
  forgetSandboxConfig(rec.id);
  ctx.names.release(ns, rec.name, rec.id);
  ctx.tracer.drop(rec.id);
}

export const removePodSandbox =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['removePodSandbox']> =>
  async (req, call) => {
    const ns = call.namespace;
    let first: SandboxRecord;
    try {
      first = findVisibleSandbox(ctx, ns, req.podSandboxId);
    } catch (err) {
      if (isBerthError(err, 'NotFound')) {
        ctx.log.debug('RemovePodSandbox for a sandbox that does not exist', { id: req.podSandboxId });
        return {};
      }
      throw err;
    }
    await ctx.locks.run(sandboxLockKey(first.id), async () => {
      const rec = ctx.sandboxes.get(ns, first.id);
      if (rec) await removeSandbox(ctx, ns, rec);
    });
    return {};
  };
