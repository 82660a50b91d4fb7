/** RuntimeService/ReopenContainerLog: reopen the CRI log after the kubelet rotated it. */
import { REOPEN_LOG_ANNOTATION } from '../../shim-protocol.js';
import { errors } from '../../errors.js';
import { findContainer, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';

export const reopenContainerLog =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['reopenContainerLog']> =>
  async (req, call) => {
    const ns = call.namespace;
    const c = findContainer(ctx, ns, req.containerId);
    if (c.state !== 'running')
      throw errors.failedPrecondition('container.not_running', `container ${c.id} is ${c.state}: only a running container's log can be reopened`);
    if (c.logPath === '') return {};
    if (await ctx.logForwarders.reopen(ns, c.id)) return {};
    await ctx.tasks.update(ns, c.id, {}, { [REOPEN_LOG_ANNOTATION]: 'true' });
    return {};
  };
