/**
 * Container lifecycle steps shared by several handlers (StopPodSandbox stops every container
 * of the pod; RemovePodSandbox removes them). Implemented with the container RPCs.
 */
import type { ContainerRecord } from '../core/metadata/records.js';
import { errors } from '../errors.js';
import type { RuntimeContext } from './runtime-context.js';

/** Stop a container: its stop signal, then SIGKILL after timeoutSec; idempotent. */
export async function stopContainerTask(_ctx: RuntimeContext, _ns: string, c: ContainerRecord, _timeoutSec: number): Promise<void> {
  throw errors.unimplemented('container.stop', `stopping container ${c.id} is not implemented yet`);
}

/** Remove a container (stopping it first): task, rootfs snapshot, log? (no: logs stay), record, name; idempotent. */
export async function removeContainerFully(_ctx: RuntimeContext, _ns: string, c: ContainerRecord): Promise<void> {
  throw errors.unimplemented('container.remove', `removing container ${c.id} is not implemented yet`);
}
