/**
 * The one task event monitor of berthd (containerd's CRI has one handler with a switch too):
 * subscribes once to the task manager's exits and OOMs, before recovery, and hands each event to
 * the record it concerns — a pod sandbox's pause (sandbox/events.ts: the pod becomes NOTREADY)
 * or a container (container/task-events.ts: exit status, OOMKilled). Nothing else subscribes to
 * task exits; handler tables only build handlers.
 */
import type { ExitEvent, TaskRef } from '../runtime/index.js';
import type { RuntimeContext } from './server/runtime-context.js';
import { handlePauseExit } from './sandbox/events.js';
import { handleContainerExit, handleContainerOom, resumeLogForwarders } from './container/task-events.js';

/** What a task event's container id names. */
function subjectOf(ctx: RuntimeContext, e: TaskRef): 'sandbox' | 'container' | undefined {
  if (ctx.sandboxes.get(e.namespace, e.containerId)) return 'sandbox';
  if (ctx.containers.get(e.namespace, e.containerId)) return 'container';
  return undefined;
}

function onExit(ctx: RuntimeContext, e: ExitEvent): void {
  switch (subjectOf(ctx, e)) {
    case 'sandbox':
      handlePauseExit(ctx, e).catch((err: unknown) => ctx.log.warn('pause exit handling failed', { sandbox: e.containerId, error: (err as Error).message }));
      return;
    case 'container':
      handleContainerExit(ctx, e).catch((err: unknown) => ctx.log.warn('recording a task exit failed', { id: e.containerId, error: err }));
      return;
    default:
      // A task no record names (a ctr container in another namespace, one already removed).
      return;
  }
}

function onOom(ctx: RuntimeContext, e: TaskRef): void {
  if (subjectOf(ctx, e) !== 'container') return;
  try {
    handleContainerOom(ctx, e);
  } catch (err) {
    ctx.log.warn('recording an OOM event failed', { id: e.containerId, error: err });
  }
}

/** Subscribe once per context, before `tasks.init()` and recovery (services.ts does). */
export function watchTaskEvents(ctx: RuntimeContext): void {
  void resumeLogForwarders(ctx);
  ctx.tasks.on('exit', (e) => onExit(ctx, e));
  ctx.tasks.on('oom', (e) => onOom(ctx, e));
}
