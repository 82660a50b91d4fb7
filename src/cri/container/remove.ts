/** RuntimeService/RemoveContainer: kill if running, retire the record and name (the reply), then task, snapshot and dirs (deferred-remove.ts); idempotent. */
import { isBerthError } from '../../errors.js';
import { removeContainerFully } from './lifecycle.js';
import { findContainer, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';

export const removeContainer =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['removeContainer']> =>
  async (req, call) => {
    let c;
    try {
      c = findContainer(ctx, call.namespace, req.containerId);
    } catch (err) {
      if (isBerthError(err, 'NotFound')) return {};
      throw err;
    }
    await removeContainerFully(ctx, call.namespace, c);
    return {};
  };
