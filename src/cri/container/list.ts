/** RuntimeService/ListContainers: filters by id (prefix), state, pod sandbox id (prefix) and labels; StreamContainers. */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ContainerSchema } from '../../api/cri/runtime/v1/api_pb.js';
import { criState, imageViews, nanos } from './convert.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { writePages } from '../server/stream-pages.js';

export const listContainers =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['listContainers']> =>
  async (req, call) => {
    const ns = call.namespace;
    const f = req.filter;
    let records = f?.podSandboxId ? ctx.containers.list(ns).filter((c) => c.sandboxId.startsWith(f.podSandboxId)) : ctx.containers.list(ns);
    if (f?.id) records = records.filter((c) => c.id.startsWith(f.id));
    if (f?.state) records = records.filter((c) => criState[c.state] === f.state!.state);
    const selector = Object.entries(f?.labelSelector ?? {});
    if (selector.length) records = records.filter((c) => selector.every(([k, v]) => c.labels[k] === v));
    const containers: Array<MessageInitShape<typeof ContainerSchema>> = [];
    const imageView = imageViews(ctx, ns);
    for (const c of records) {
      const { image, imageRef } = await imageView(c);
      containers.push({
        id: c.id,
        podSandboxId: c.sandboxId,
        metadata: { name: c.meta.name, attempt: c.meta.attempt },
        image: { image, userSpecifiedImage: c.image },
        imageRef,
        imageId: c.imageId,
        state: criState[c.state],
        createdAt: nanos(c.createdAt),
        labels: c.labels,
        annotations: c.annotations,
      } satisfies MessageInitShape<typeof ContainerSchema>);
    }
    return { containers };
  };

/** RuntimeService/StreamContainers: ListContainers' items and filter, in pages. */
export const streamContainers = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['streamContainers']> => {
  const list = listContainers(ctx);
  return async (req, write, call) => {
    const { containers } = await list({ $typeName: 'runtime.v1.ListContainersRequest', filter: req.filter }, call);
    await writePages(containers ?? [], (page) => ({ containers: page }), write, call);
  };
};
