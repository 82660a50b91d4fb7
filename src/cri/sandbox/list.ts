/** RuntimeService/ListPodSandbox with every filter: id (full or unique prefix), state, labels; StreamPodSandboxes. */
import type { PodSandboxFilter } from '../../api/cri/runtime/v1/api_pb.js';
import type { SandboxRecord } from '../../core/metadata/records.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { isCreating } from './common.js';
import { criMetadata, criState } from './status.js';
import { writePages } from '../server/stream-pages.js';

/** Records matching a CRI filter (creating ones never match). */
export function filterSandboxes(ctx: RuntimeContext, ns: string, f: PodSandboxFilter | undefined): SandboxRecord[] {
  let id = f?.id ?? '';
  if (id) {
    // A unique prefix stands for its full id (containerd's truncindex); otherwise exact match.
    const ids = ctx.sandboxes.idsWithPrefix(ns, id);
    if (ids.length === 1) id = ids[0]!;
  }
  return ctx.sandboxes
    .list(ns)
    .filter((r) => !isCreating(r))
    .filter((r) => !id || r.id === id)
    .filter((r) => !f?.state || criState(r) === f.state.state)
    .filter((r) => Object.entries(f?.labelSelector ?? {}).every(([k, v]) => r.labels[k] === v))
    .sort((a, b) => (BigInt(a.createdAt) < BigInt(b.createdAt) ? -1 : 1));
}

export const listPodSandbox =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['listPodSandbox']> =>
  async (req, call) => ({
    items: filterSandboxes(ctx, call.namespace, req.filter).map((r) => ({
      id: r.id,
      metadata: criMetadata(r),
      state: criState(r),
      createdAt: BigInt(r.createdAt),
      labels: r.labels,
      annotations: r.annotations,
      runtimeHandler: r.runtimeHandler,
    })),
  });

/** RuntimeService/StreamPodSandboxes: ListPodSandbox's items and filter, in pages. */
export const streamPodSandboxes = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['streamPodSandboxes']> => {
  const list = listPodSandbox(ctx);
  return async (req, write, call) => {
    const { items } = await list({ $typeName: 'runtime.v1.ListPodSandboxRequest', filter: req.filter }, call);
    await writePages(items ?? [], (podSandboxes) => ({ podSandboxes }), write, call);
  };
};
