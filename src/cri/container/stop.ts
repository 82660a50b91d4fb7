/** RuntimeService/StopContainer: stop signal, SIGKILL after the timeout; idempotent. */
import { isBerthError } from '../../errors.js';
import { stopContainerTask } from './lifecycle.js';
import { findContainer, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';

export const stopContainer =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['stopContainer']> =>
  async (req, call) => {
    let c;
    try {
      c = findContainer(ctx, call.namespace, req.containerId);
    } catch (err) {
      // Stopping a container that is gone succeeds (the kubelet retries after restarts).
      if (isBerthError(err, 'NotFound')) return {};
      throw err;
    }
    const timeout = Number(req.timeout < 0n ? 0n : req.timeout);
    await stopContainerTask(ctx, call.namespace, c, timeout);
    return {};
  };
