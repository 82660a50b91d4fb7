/**
 * Task events (exit, OOM) → container records, called by the one task event monitor
 * (cri/task-events.ts). Every update is idempotent: an exit also arrives through Wait
 * (StopContainer, the exit monitor), and the shim may repeat events after a reconnect.
 */
import type { ExitEvent, TaskRef } from '../../runtime/index.js';
import { containerLockKey, recordContainerExitFlushed } from './lifecycle.js';
import { startLogForwarder } from './io.js';
import type { RuntimeContext } from '../server/runtime-context.js';

/**
 * An OOM kill of a container's task. No container lock here: a StopContainer holding it must
 * not delay the OOM mark.
 */
export function handleContainerOom(ctx: RuntimeContext, e: TaskRef): void {
  const c = ctx.containers.get(e.namespace, e.containerId);
  if (!c || c.extra.oomKilled === true) return;
  // Kept in the record so the exit that follows gets reason OOMKilled (even across restarts);
  // when the exit was recorded first, the reason is corrected (containerd does the same).
  ctx.containers.update(e.namespace, e.containerId, (r) => {
    r.extra.oomKilled = true;
    if (r.state === 'exited') r.reason = 'OOMKilled';
  });
}

/** The exit of a container's init process (exec exits are ExecSync's / exec's business). */
export async function handleContainerExit(ctx: RuntimeContext, e: ExitEvent): Promise<void> {
  if (e.id !== '' || !ctx.containers.get(e.namespace, e.containerId)) return;
  await ctx.locks.run(containerLockKey(e.namespace, e.containerId), async () => {
    if (!ctx.containers.get(e.namespace, e.containerId)) return;
    await recordContainerExitFlushed(ctx, e.namespace, e.containerId, { exitStatus: e.exitStatus, exitedAt: e.exitedAt, reason: e.reason });
  });
}

/**
 * After a berthd restart, the logs berthd forwards (shims that write raw bytes) must be read
 * again: the FIFOs outlived berthd, and the shim blocks once their buffers fill. Records that
 * recovery then finds dead are closed by recordContainerExit / removal as usual.
 */
export async function resumeLogForwarders(ctx: RuntimeContext): Promise<void> {
  for (const { namespace, record: c } of ctx.containers.all()) {
    if (c.extra.daemonLog !== true || c.logPath === '' || (c.state !== 'created' && c.state !== 'running')) continue;
    await startLogForwarder(ctx, namespace, c.id, c.logPath).catch((err: unknown) =>
      ctx.log.warn('could not resume a container log', { id: c.id, error: err }),
    );
  }
}
