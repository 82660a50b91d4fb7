/** Attach RPC: check the container runs, then hand out a streaming URL (stream/backend.ts attaches). */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { AttachRequest, AttachResponseSchema } from '../../api/cri/runtime/v1/api_pb.js';
import type { CallContext } from '../server/instrument.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import { checkStreams, runningContainer } from './exec.js';

export function attach(ctx: RuntimeContext) {
  return async (req: AttachRequest, call: CallContext): Promise<MessageInitShape<typeof AttachResponseSchema>> => {
    checkStreams(req);
    const c = runningContainer(ctx, call.namespace, req.containerId);
    return { url: ctx.streaming.getAttach({ containerId: c.id, stdin: req.stdin, tty: req.tty, stdout: req.stdout, stderr: req.stderr }) };
  };
}
