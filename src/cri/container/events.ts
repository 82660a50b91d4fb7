/**
 * GetContainerEvents: a server stream that delivers every container lifecycle event of the
 * caller's namespace (CREATED / STARTED / STOPPED / DELETED) with the pod's status and the
 * statuses of its containers, built by the PodSandboxStatus / ContainerStatus handlers so the
 * event carries exactly what those RPCs would answer. Events are sent in publish order. The
 * response headers go out as soon as the subscription is in place, so a client that waits for
 * them (grpc-js: the stream's 'metadata' event) misses nothing it causes afterwards.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ContainerEventType, type ContainerEventResponseSchema } from '../../api/cri/runtime/v1/api_pb.js';
import type { CallContext } from '../server/instrument.js';
import type { ContainerEvent, ContainerEventKind, RuntimeContext } from '../server/runtime-context.js';
import { podSandboxStatus } from '../sandbox/status.js';
import { podContainerStatuses } from './status.js';
import type { RuntimeHandlers } from '../server/server.js';

type EventInit = MessageInitShape<typeof ContainerEventResponseSchema>;

const KIND: Record<ContainerEventKind, ContainerEventType> = {
  CREATED: ContainerEventType.CONTAINER_CREATED_EVENT,
  STARTED: ContainerEventType.CONTAINER_STARTED_EVENT,
  STOPPED: ContainerEventType.CONTAINER_STOPPED_EVENT,
  DELETED: ContainerEventType.CONTAINER_DELETED_EVENT,
};

/** The event as CRI sends it; statuses of objects already gone are left out. */
export async function buildContainerEvent(ctx: RuntimeContext, e: ContainerEvent, signal: AbortSignal): Promise<EventInit> {
  const call: CallContext = { namespace: e.namespace, signal };
  const r = await podSandboxStatus(ctx)({ podSandboxId: e.sandboxId, verbose: false } as Parameters<ReturnType<typeof podSandboxStatus>>[0], call).catch(
    () => undefined,
  );
  // PodSandboxStatus carries the containers' statuses; without the pod, ask them directly.
  const pod = r?.status;
  const statuses = r?.containersStatuses ?? (await podContainerStatuses(ctx, e.sandboxId, call));
  return { containerId: e.containerId, containerEventType: KIND[e.kind], createdAt: e.createdAt, podSandboxStatus: pod, containersStatuses: statuses };
}

export const getContainerEvents =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['getContainerEvents']> =>
  async (_req, write, call) => {
    if (call.signal.aborted) return;
    let chain = Promise.resolve();
    const unsubscribe = ctx.events.subscribe((e) => {
      if (e.namespace !== call.namespace) return;
      chain = chain.then(async () => {
        if (call.signal.aborted) return;
        try {
          write(await buildContainerEvent(ctx, e, call.signal));
        } catch (err) {
          ctx.log.warn('container event not delivered', { container: e.containerId, error: err });
        }
      });
    });
    // Subscribed: the headers tell the client that every event from now on reaches it.
    call.open();
    try {
      await new Promise<void>((resolve) => call.signal.addEventListener('abort', () => resolve(), { once: true }));
    } finally {
      unsubscribe();
    }
  };
