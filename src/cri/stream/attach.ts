/** Attach RPC: check the container runs, then hand out a streaming URL (stream/backend.ts attaches). */
import type { RuntimeContext } from '../server/runtime-context.js';
import { checkStreams, runningContainer } from './exec.js';
import type { RuntimeHandlers } from '../server/server.js';

export const attach =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['attach']> =>
  async (req, call) => {
    checkStreams(req);
    const c = runningContainer(ctx, call.namespace, req.containerId);
    return { url: ctx.streaming.getAttach({ containerId: c.id, stdin: req.stdin, tty: req.tty, stdout: req.stdout, stderr: req.stderr }) };
  };
