/**
 * Pause exits → sandbox records: the pod becomes NOTREADY and the dead pause task is deleted
 * (containerd's sandbox exit handling). The network stays until StopPodSandbox. Called by the
 * one task event monitor (cri/task-events.ts).
 */
import { isBerthError } from '../../errors.js';
import type { ExitEvent } from '../../runtime/index.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import { isCreating } from './common.js';
import { sandboxLockKey } from './stop.js';

export async function handlePauseExit(ctx: RuntimeContext, e: ExitEvent): Promise<void> {
  if (e.id !== '') return; // an exec process, not the init
  const ns = e.namespace;
  const first = ctx.sandboxes.get(ns, e.containerId);
  if (!first || isCreating(first)) return;
  await ctx.locks.run(sandboxLockKey(e.containerId), async () => {
    const rec = ctx.sandboxes.get(ns, e.containerId);
    if (!rec || isCreating(rec)) return;
    ctx.sandboxes.update(ns, rec.id, (r) => {
      r.state = 'notready';
      delete r.pid;
      r.exit = { status: e.exitStatus, at: e.exitedAt.toISOString() };
    });
    try {
      await ctx.tasks.delete(ns, rec.id);
    } catch (err) {
      if (!isBerthError(err, 'NotFound')) ctx.log.warn('could not delete exited pause task', { sandbox: rec.id, error: (err as Error).message });
    }
  });
}
