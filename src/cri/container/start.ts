/** RuntimeService/StartContainer: start the task created by CreateContainer. */
import { errors } from '../../errors.js';
import { faultable } from '../../fault.js';
import { containerLockKey, recordContainerExitFlushed } from './lifecycle.js';
import { findContainer, nowNanos, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';

/**
 * Follows the init process until it exits, as containerd's exit monitor does. The exit event
 * from the shim does the same; whichever comes first records it.
 */
function monitorExit(ctx: RuntimeContext, ns: string, id: string): void {
  ctx.tasks
    .wait(ns, id)
    .then((exit) => ctx.locks.run(containerLockKey(ns, id), () => recordContainerExitFlushed(ctx, ns, id, exit)))
    .catch((err: unknown) => ctx.log.debug('exit monitor ended', { id, error: err }));
}

export const startContainer =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['startContainer']> =>
  async (req, call) => {
    const ns = call.namespace;
    const c = findContainer(ctx, ns, req.containerId);
    await ctx.locks.run(containerLockKey(ns, c.id), async () => {
      const cur = ctx.containers.get(ns, c.id);
      if (!cur) throw errors.notFound('container.not_found', `container ${c.id} not found`);
      if (cur.state !== 'created')
        throw errors.failedPrecondition('container.not_created', `container ${c.id} is ${cur.state}, only a created container can be started`);
      const sb = ctx.sandboxes.get(ns, cur.sandboxId);
      if (!sb || sb.state !== 'ready') throw errors.failedPrecondition('sandbox.not_ready', `pod sandbox ${cur.sandboxId} of container ${c.id} is not ready`);
      let pid: number;
      const t0 = nowNanos();
      try {
        pid = await ctx.tracer.span(
          cur.sandboxId,
          'StartContainer.task_start',
          faultable('StartContainer.task_start', () => ctx.tasks.start(ns, c.id)),
          { container: c.id },
        );
      } catch (err) {
        // As containerd: a container that failed to start is exited with reason StartError.
        ctx.containers.update(ns, c.id, (r) => {
          r.state = 'exited';
          r.exitCode = 128;
          r.finishedAt = nowNanos().toString();
          r.reason = 'StartError';
          r.message = (err as Error).message;
        });
        throw err;
      }
      ctx.containers.update(ns, c.id, (r) => {
        // Taken before the start call: an exit recorded meanwhile must not precede it.
        r.startedAt = (r.finishedAt && BigInt(r.finishedAt) < t0 ? BigInt(r.finishedAt) : t0).toString();
        r.pid = pid;
        if (r.state === 'created') r.state = 'running';
      });
      ctx.events.publish({ kind: 'STARTED', namespace: ns, containerId: c.id, sandboxId: cur.sandboxId, createdAt: nowNanos() });
      monitorExit(ctx, ns, c.id);
    });
    return {};
  };
